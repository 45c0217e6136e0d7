/* cl_file.c: an inode's bytes over chunks: read, write, sync, truncate,
 * zero.
 *
 * docs/architecture.md, "Data flow", from the client's side.  A byte range
 * is cut into per-chunk pieces (cl_range.c) of at most PROTO_MAX_DATA and
 * each piece goes to cl_chunk.c, which picks the replicas and recovers
 * from failed ones.  This file keeps the inode's books: the size known
 * (reads are clamped to it), the pending CHUNK_WRITE_END, and the dirty
 * chunks a sync owes.
 *
 * Write: when a write extends the file CHUNK_WRITE_END reports the new
 * size at once; otherwise the new mtime waits for the next sync.  A write
 * that fails part way returns the bytes written before the failure.
 *
 * Sync: CHUNK_SYNC along the chain of every chunk written since the last
 * sync, then the pending CHUNK_WRITE_END.  Syncs of one inode are
 * serialised (the inode's sync_lock), so a sync that finds nothing dirty
 * because another one took the chunks still waits for that one to end.
 * A chunk whose sync failed stays dirty; the error is returned once.
 *
 * Truncate: shrinking to a size inside a chunk zeroes that chunk's tail on
 * each replica (CHUNK_TRUNCATE under a lease) before the caller sends
 * SETATTR; metad drops the chunks past the end.
 *
 * Zero: holes are skipped; a piece that runs to the end of its chunk, or
 * past the end of the file, is cut off with CHUNK_TRUNCATE (the servers
 * may free the space, and it is durable at once); other pieces are
 * written with zeros.  There is no message that turns a chunk back into a
 * hole, so a zeroed chunk stays allocated in the file map.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SYNC_BATCH 64
#define ZERO_PIECE (1u << 20)

/* Chunks from @index to the end of a file of @size, for prefetching. */
static uint64_t to_end(uint64_t size, uint64_t index)
{
    uint64_t last = size ? (size - 1) / PROTO_CHUNK_SIZE : 0;
    return last >= index ? last - index + 1 : 1;
}

int cl_file_read(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 size_t len, uint8_t *buf)
{
    uint64_t size = cl_inode_size(n);
    uint64_t want = cl_range_clamp(off, len, size);
    if (want == 0)
        return 0;

    struct cl_range_iter it;
    struct cl_piece p;
    cl_range_init(&it, off, want, PROTO_MAX_DATA);
    while (cl_range_next(&it, &p)) {
        int rc = cl_chunk_read(c, n->ino, &p, to_end(size, p.index),
                               buf + p.buf_off);
        if (rc < 0)
            return p.buf_off > 0 ? (int)p.buf_off : cl_errno(rc);
    }
    return (int)want;
}

/* Report a pending size and mtime to metad.  @grew_to is the new size when
 * the file grew, else 0. */
static int write_end(struct cl_client *c, struct cl_inode *n, uint64_t grew_to)
{
    pthread_mutex_lock(&n->lock);
    bool pending = n->end_pending;
    uint64_t index = n->end_index, chunk = n->end_chunk;
    n->end_pending = false;
    pthread_mutex_unlock(&n->lock);
    if (!pending)
        return 0;

    int rc = cl_meta_write_end(c, n->ino, index, chunk, grew_to, cl_now_ns());
    if (rc < 0) {
        log_error("write end: metad refused: %s ino=%llu size=%llu",
                  strerror(-rc), (unsigned long long)n->ino,
                  (unsigned long long)grew_to);
        pthread_mutex_lock(&n->lock);
        n->end_pending = true;
        pthread_mutex_unlock(&n->lock);
    }
    return rc;
}

/* A CHUNK_WRITE_END is owed for chunk @chunk_id at @index. */
static void mark_end(struct cl_inode *n, uint64_t index, uint64_t chunk_id)
{
    pthread_mutex_lock(&n->lock);
    n->end_pending = true;
    n->end_index = index;
    n->end_chunk = chunk_id;
    pthread_mutex_unlock(&n->lock);
}

int cl_file_write(struct cl_client *c, struct cl_inode *n, uint64_t off,
                  const uint8_t *buf, size_t len, bool sync)
{
    struct cl_range_iter it;
    struct cl_piece p;
    uint64_t done = 0;
    int rc = 0;

    if (len == 0)
        return 0;
    if (off > UINT64_MAX - len || off + len > (uint64_t)INT64_MAX)
        return -EFBIG;

    cl_range_init(&it, off, len, PROTO_MAX_DATA);
    while (cl_range_next(&it, &p)) {
        struct cl_chunk used;
        rc = cl_chunk_write(c, n, &p, buf + p.buf_off, sync, &used);
        if (rc < 0)
            break;
        mark_end(n, p.index, used.chunk_id);
        done += p.len;
    }
    if (done == 0)
        return cl_errno(rc);

    uint64_t end = off + done;
    bool grew = false;
    pthread_mutex_lock(&n->lock);
    if (end > n->size) {
        n->size = end;
        grew = true;
    }
    pthread_mutex_unlock(&n->lock);
    if (grew) {
        int erc = write_end(c, n, end);
        if (erc < 0)
            return cl_errno(erc);
    }
    return (int)done;
}

int cl_file_sync(struct cl_client *c, struct cl_inode *n)
{
    uint64_t batch[SYNC_BATCH];
    int err = 0;
    size_t k;

    pthread_mutex_lock(&n->sync_lock);
    while ((k = cl_inode_take_dirty(n, batch, SYNC_BATCH)) > 0) {
        for (size_t i = 0; i < k; i++) {
            int rc = cl_chunk_sync(c, n, batch[i]);
            if (rc < 0) {
                log_error("sync: chunk sync failed: %s ino=%llu index=%llu",
                          strerror(-rc), (unsigned long long)n->ino,
                          (unsigned long long)batch[i]);
                if (!err)
                    err = rc;
            }
        }
        if (err) {
            /* Give back what failed and what was not tried: the next sync
             * owes them still. */
            for (size_t i = 0; i < k; i++)
                cl_inode_lease_dirty(n, batch[i]);
            break;
        }
    }
    int rc = write_end(c, n, 0);
    pthread_mutex_unlock(&n->sync_lock);
    if (!err)
        err = rc;
    return err < 0 ? cl_errno(err) : 0;
}

int cl_file_truncate_prepare(struct cl_client *c, uint64_t ino,
                             struct cl_inode *n, uint64_t old_size,
                             uint64_t new_size)
{
    if (new_size >= old_size || new_size % PROTO_CHUNK_SIZE == 0)
        return 0;

    uint64_t index = new_size / PROTO_CHUNK_SIZE;
    struct cl_chunk ch;
    cl_loc_invalidate(c->loc, ino, index);
    int rc = cl_file_locate(c, ino, index, 1, &ch);
    if (rc < 0)
        return cl_errno(rc);
    if (ch.chunk_id == 0)
        return 0; /* a hole has no tail to zero */
    rc = cl_chunk_truncate(c, ino, n, index,
                           (uint32_t)(new_size % PROTO_CHUNK_SIZE));
    return rc < 0 ? cl_errno(rc) : 0;
}

void cl_file_truncate_done(struct cl_client *c, uint64_t ino,
                           struct cl_inode *n, uint64_t new_size)
{
    uint64_t first =
        new_size / PROTO_CHUNK_SIZE + (new_size % PROTO_CHUNK_SIZE != 0);
    cl_loc_invalidate_from(c->loc, ino, first);
    if (n) {
        cl_inode_lease_drop_from(n, first);
        cl_inode_set_size(n, new_size);
    }
}

int cl_file_zero(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 uint64_t len)
{
    uint64_t size = cl_inode_size(n);
    uint64_t want = cl_range_clamp(off, len, size);
    if (want == 0)
        return 0;

    uint8_t *zeros = NULL;
    struct cl_range_iter it;
    struct cl_piece p;
    int rc = 0;
    /* Whole chunks at a time: most of them are cut off or skipped. */
    cl_range_init(&it, off, want, 0);
    while (rc == 0 && cl_range_next(&it, &p)) {
        struct cl_chunk ch;
        rc = cl_file_locate(c, n->ino, p.index, to_end(size, p.index), &ch);
        if (rc < 0)
            break;
        if (ch.chunk_id == 0)
            continue; /* already reads as zeros */
        uint64_t chunk_start = p.index * (uint64_t)PROTO_CHUNK_SIZE;
        uint64_t piece_end = chunk_start + p.off + p.len;
        if (p.off + p.len == PROTO_CHUNK_SIZE || piece_end >= size) {
            rc = cl_chunk_truncate(c, n->ino, n, p.index, p.off);
            if (rc == 0)
                mark_end(n, p.index, ch.chunk_id);
            continue;
        }
        if (!zeros && !(zeros = calloc(1, ZERO_PIECE))) {
            rc = -ENOMEM;
            break;
        }
        struct cl_range_iter sub;
        struct cl_piece q;
        cl_range_init(&sub, chunk_start + p.off, p.len, ZERO_PIECE);
        while (rc == 0 && cl_range_next(&sub, &q)) {
            struct cl_chunk used;
            rc = cl_chunk_write(c, n, &q, zeros, false, &used);
            if (rc == 0)
                mark_end(n, q.index, used.chunk_id);
        }
    }
    free(zeros);
    return rc < 0 ? cl_errno(rc) : 0;
}
