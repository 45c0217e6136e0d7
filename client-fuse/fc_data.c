/* fc_data.c: file bytes over chunks: read, write, sync, truncate, zero.
 *
 * docs/architecture.md, "Data flow", from the client's side.  A byte range
 * is cut into per-chunk pieces (fc_range.c) of at most PROTO_MAX_DATA.
 *
 * Read, per piece: find the chunk in the location cache (filled by one
 * CHUNK_LOCATE for up to PROTO_LOCATE_MAX chunks, to the end of the file);
 * a hole reads as zeros; otherwise CHUNK_READ from the first replica.  On
 * any error (server down, EOLDVER, checksum) try the next replica; when all
 * fail, refetch the locations once and go round again, then give EIO.
 * Reads are clamped to the size this mount knows (fc_handle.c).
 *
 * Write, per piece: a write lease on the chunk (CHUNK_WRITE_BEGIN, reused
 * for FC_LEASE_RENEW_MS), then CHUNK_WRITE to chain[0] carrying chain[1..]
 * for forwarding; a success means every replica has the data.  On an error
 * other than "out of space" the lease is fetched again and the piece sent
 * once more (a version bump by another writer shows up as EOLDVER).  When
 * the write extends the file CHUNK_WRITE_END reports the new size at once;
 * otherwise the new mtime waits for the next fsync or flush.
 *
 * Sync: CHUNK_SYNC along the chain of every chunk written since the last
 * sync, then the pending CHUNK_WRITE_END.  Errors are reported once.
 *
 * Truncate: shrinking to a size inside a chunk zeroes that chunk's tail on
 * each replica (WRITE_BEGIN, then CHUNK_TRUNCATE to every replica) before
 * fc_ops.c sends SETATTR; metad drops the chunks past the end.
 */
#include "fc_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SYNC_BATCH 64
#define ZERO_PIECE (1u << 20)

/* The location of chunk @index of @ino: from the cache unless @force, else
 * from metad with @count chunks prefetched. */
static int get_loc(struct fc_fs *fs, uint64_t ino, uint64_t index,
                   uint64_t count, bool force, struct fc_chunk *out)
{
    if (!force && fc_loc_get(fs->loc, ino, index, fc_now_ms(), out) == 0)
        return 0;
    if (count == 0)
        count = 1;
    if (count > PROTO_LOCATE_MAX)
        count = PROTO_LOCATE_MAX;
    int rc = fc_meta_locate(fs, ino, index, (uint32_t)count);
    if (rc < 0)
        return rc;
    if (fc_loc_get(fs->loc, ino, index, fc_now_ms(), out) == 0)
        return 0;
    /* Evicted between put and get by a full cache: ask for this one. */
    rc = fc_meta_locate(fs, ino, index, 1);
    if (rc < 0)
        return rc;
    return fc_loc_get(fs->loc, ino, index, fc_now_ms(), out) == 0 ? 0 : -EIO;
}

static void chain_fill(const struct fc_chunk *c, uint32_t from,
                       struct proto_replica *chain, uint32_t *n)
{
    *n = 0;
    for (uint32_t i = from; i < c->nreplicas; i++) {
        chain[*n].server_id = c->server_id[i];
        chain[*n].addr.p = c->addr[i];
        chain[*n].addr.len = (uint32_t)strlen(c->addr[i]);
        (*n)++;
    }
}

/* Send a request already encoded in @w to the chunk server @addr; the reply
 * body is decoded into @out when not NULL, and the reply is kept in @rep
 * (caller frees) only then. */
static int chunk_call(struct fc_fs *fs, const char *addr, uint16_t opcode,
                      struct proto_wbuf *w, struct rpc_reply *rep, void *out)
{
    struct rpc_client *c;
    if (w->err)
        return w->err;
    int rc = fc_pool_get(fs->pool, addr, &c);
    if (rc < 0)
        return rc;
    struct proto_empty empty;
    struct rpc_reply tmp;
    rc = rpc_call_msg(c, opcode, w, out ? rep : &tmp, out ? out : &empty);
    if (rc == 0 && !out)
        rpc_reply_free(&tmp);
    return rc;
}

static int read_replica(struct fc_fs *fs, const struct fc_chunk *c, uint32_t r,
                        const struct fc_piece *p, uint8_t *buf)
{
    struct proto_chunk_read_req req = {
        .chunk_id = c->chunk_id,
        .version = c->version,
        .offset = p->off,
        .length = p->len,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_read_req_encode(&w, &req);
    struct rpc_reply rep;
    struct proto_bytes_rep out;
    int rc =
        chunk_call(fs, c->addr[r], PROTO_MSG_CHUNK_READ_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    if (out.data.len > p->len) {
        rpc_reply_free(&rep);
        return -EPROTO;
    }
    memcpy(buf, out.data.p, out.data.len);
    memset(buf + out.data.len, 0, p->len - out.data.len);
    rpc_reply_free(&rep);
    return 0;
}

static int read_piece(struct fc_fs *fs, uint64_t ino, const struct fc_piece *p,
                      uint64_t prefetch, uint8_t *buf)
{
    struct fc_chunk c;
    int rc = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        rc = get_loc(fs, ino, p->index, prefetch, attempt > 0, &c);
        if (rc < 0)
            return rc;
        if (c.chunk_id == 0) {
            memset(buf, 0, p->len);
            return 0;
        }
        rc = -EIO;
        for (uint32_t r = 0; r < c.nreplicas; r++) {
            rc = read_replica(fs, &c, r, p, buf);
            if (rc == 0)
                return 0;
            log_debug("fc.data",
                      "read: replica failed: %s chunk=%016llx addr=%s",
                      strerror(-rc), (unsigned long long)c.chunk_id, c.addr[r]);
        }
        fc_loc_invalidate(fs->loc, ino, p->index);
    }
    log_error("read: every replica failed: %s ino=%llu index=%llu",
              strerror(-rc), (unsigned long long)ino,
              (unsigned long long)p->index);
    return rc;
}

int fc_data_read(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                 size_t len, uint8_t *buf)
{
    struct fc_inode *n = h->node;
    uint64_t size = fc_inode_size(n);
    uint64_t want = fc_range_clamp(off, len, size);
    if (want == 0)
        return 0;

    struct fc_range_iter it;
    struct fc_piece p;
    fc_range_init(&it, off, want, PROTO_MAX_DATA);
    while (fc_range_next(&it, &p)) {
        /* Prefetch locations up to the end of the file. */
        uint64_t prefetch = (size - 1) / PROTO_CHUNK_SIZE - p.index + 1;
        int rc = read_piece(fs, n->ino, &p, prefetch, buf + p.buf_off);
        if (rc < 0)
            return p.buf_off > 0 ? (int)p.buf_off : fc_data_errno(rc);
    }
    return (int)want;
}

static int write_chain(struct fc_fs *fs, const struct fc_chunk *c,
                       const struct fc_piece *p, const uint8_t *data, bool sync)
{
    if (c->nreplicas == 0)
        return -EIO;
    struct proto_chunk_write_req req = {
        .chunk_id = c->chunk_id,
        .version = c->version,
        .offset = p->off,
        .flags = sync ? PROTO_CHUNK_WRITE_SYNC : 0,
        .data = {(const char *)data, p->len},
    };
    chain_fill(c, 1, req.chain, &req.nchain);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &req);
    int rc =
        chunk_call(fs, c->addr[0], PROTO_MSG_CHUNK_WRITE_REQ, &w, NULL, NULL);
    proto_wbuf_free(&w);
    return rc;
}

static bool write_error_final(int rc)
{
    return rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG || rc == -EROFS ||
           rc == -EACCES || rc == -EPERM;
}

static int write_piece(struct fc_fs *fs, struct fc_handle *h,
                       const struct fc_piece *p, const uint8_t *data)
{
    struct fc_inode *n = h->node;
    bool sync = (h->flags & (O_SYNC | O_DSYNC)) != 0;
    struct fc_chunk c;
    int rc = 0;

    for (int attempt = 0; attempt < 2; attempt++) {
        uint64_t now = fc_now_ms();
        if (attempt > 0 || fc_inode_lease_get(n, p->index, now, &c) < 0) {
            rc = fc_meta_write_begin(fs, n->ino, p->index, &c);
            if (rc < 0)
                return rc;
            rc = fc_inode_lease_put(n, &c, now);
            if (rc < 0)
                return rc;
        }
        rc = write_chain(fs, &c, p, data, sync);
        if (rc == 0) {
            fc_inode_lease_dirty(n, p->index);
            pthread_mutex_lock(&n->lock);
            n->end_pending = true;
            n->end_index = p->index;
            n->end_chunk = c.chunk_id;
            pthread_mutex_unlock(&n->lock);
            return 0;
        }
        log_debug("fc.data", "write: chain failed: %s chunk=%016llx addr=%s",
                  strerror(-rc), (unsigned long long)c.chunk_id, c.addr[0]);
        if (write_error_final(rc))
            return rc;
        fc_loc_invalidate(fs->loc, n->ino, p->index);
    }
    log_error("write: failed after a new lease: %s ino=%llu index=%llu",
              strerror(-rc), (unsigned long long)n->ino,
              (unsigned long long)p->index);
    return rc;
}

/* Report a pending size and mtime to metad.  @grew_to is the new size when
 * the file grew, else 0. */
static int write_end(struct fc_fs *fs, struct fc_inode *n, uint64_t grew_to)
{
    pthread_mutex_lock(&n->lock);
    bool pending = n->end_pending;
    uint64_t index = n->end_index, chunk = n->end_chunk;
    n->end_pending = false;
    pthread_mutex_unlock(&n->lock);
    if (!pending)
        return 0;

    int rc = fc_meta_write_end(fs, n->ino, index, chunk, grew_to, fc_now_ns());
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

int fc_data_write(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                  const uint8_t *buf, size_t len)
{
    struct fc_inode *n = h->node;
    struct fc_range_iter it;
    struct fc_piece p;
    uint64_t done = 0;
    int rc = 0;

    if (len == 0)
        return 0;
    if (off > UINT64_MAX - len || off + len > (uint64_t)INT64_MAX)
        return -EFBIG;

    fc_range_init(&it, off, len, PROTO_MAX_DATA);
    while (fc_range_next(&it, &p)) {
        rc = write_piece(fs, h, &p, buf + p.buf_off);
        if (rc < 0)
            break;
        done += p.len;
    }
    if (done == 0)
        return fc_data_errno(rc);

    uint64_t end = off + done;
    bool grew = false;
    pthread_mutex_lock(&n->lock);
    if (end > n->size) {
        n->size = end;
        grew = true;
    }
    pthread_mutex_unlock(&n->lock);
    if (grew) {
        int erc = write_end(fs, n, end);
        if (erc < 0)
            return fc_data_errno(erc);
    }
    return (int)done;
}

static int sync_chunk(struct fc_fs *fs, const struct fc_chunk *c)
{
    if (c->nreplicas == 0)
        return -EIO;
    struct proto_chunk_sync_req req = {
        .chunk_id = c->chunk_id,
        .version = c->version,
    };
    chain_fill(c, 1, req.chain, &req.nchain);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &req);
    int rc =
        chunk_call(fs, c->addr[0], PROTO_MSG_CHUNK_SYNC_REQ, &w, NULL, NULL);
    proto_wbuf_free(&w);
    return rc;
}

int fc_data_sync(struct fc_fs *fs, struct fc_inode *n)
{
    struct fc_chunk *batch = malloc(SYNC_BATCH * sizeof(*batch));
    int err = 0;
    size_t k;

    if (!batch)
        return -ENOMEM;
    while ((k = fc_inode_take_dirty(n, batch, SYNC_BATCH)) > 0) {
        for (size_t i = 0; i < k; i++) {
            int rc = sync_chunk(fs, &batch[i]);
            if (rc < 0) {
                log_error("sync: chunk sync failed: %s chunk=%016llx",
                          strerror(-rc), (unsigned long long)batch[i].chunk_id);
                if (!err)
                    err = rc;
            }
        }
    }
    free(batch);
    int rc = write_end(fs, n, 0);
    if (!err)
        err = rc;
    return err < 0 ? fc_data_errno(err) : 0;
}

static int truncate_replica(struct fc_fs *fs, const struct fc_chunk *c,
                            uint32_t r, uint32_t length)
{
    struct proto_chunk_truncate_req req = {
        .chunk_id = c->chunk_id,
        .version = c->version,
        .length = length,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_truncate_req_encode(&w, &req);
    int rc = chunk_call(fs, c->addr[r], PROTO_MSG_CHUNK_TRUNCATE_REQ, &w, NULL,
                        NULL);
    proto_wbuf_free(&w);
    return rc;
}

int fc_data_truncate_prepare(struct fc_fs *fs, uint64_t ino, struct fc_inode *n,
                             uint64_t old_size, uint64_t new_size)
{
    if (new_size >= old_size || new_size % PROTO_CHUNK_SIZE == 0)
        return 0;

    uint64_t index = new_size / PROTO_CHUNK_SIZE;
    struct fc_chunk c;
    int rc = get_loc(fs, ino, index, 1, true, &c);
    if (rc < 0)
        return fc_data_errno(rc);
    if (c.chunk_id == 0)
        return 0; /* a hole has no tail to zero */

    rc = fc_meta_write_begin(fs, ino, index, &c);
    if (rc < 0)
        return fc_data_errno(rc);
    if (n)
        fc_inode_lease_put(n, &c, fc_now_ms());
    uint32_t length = (uint32_t)(new_size % PROTO_CHUNK_SIZE);
    for (uint32_t r = 0; r < c.nreplicas; r++) {
        rc = truncate_replica(fs, &c, r, length);
        if (rc < 0) {
            log_error("truncate: replica refused: %s chunk=%016llx addr=%s",
                      strerror(-rc), (unsigned long long)c.chunk_id, c.addr[r]);
            fc_loc_invalidate(fs->loc, ino, index);
            return fc_data_errno(rc);
        }
    }
    return 0;
}

void fc_data_truncate_done(struct fc_fs *fs, uint64_t ino, struct fc_inode *n,
                           uint64_t new_size)
{
    uint64_t first =
        new_size / PROTO_CHUNK_SIZE + (new_size % PROTO_CHUNK_SIZE != 0);
    fc_loc_invalidate_from(fs->loc, ino, first);
    if (n) {
        fc_inode_lease_drop_from(n, first);
        fc_inode_set_size(n, new_size);
    }
}

int fc_data_zero(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                 uint64_t len)
{
    struct fc_inode *n = h->node;
    uint64_t size = fc_inode_size(n);
    uint64_t want = fc_range_clamp(off, len, size);
    if (want == 0)
        return 0;

    uint8_t *zeros = calloc(1, ZERO_PIECE);
    if (!zeros)
        return -ENOMEM;

    struct fc_range_iter it;
    struct fc_piece p;
    int rc = 0;
    fc_range_init(&it, off, want, ZERO_PIECE);
    while (fc_range_next(&it, &p)) {
        struct fc_chunk c;
        uint64_t prefetch = (size - 1) / PROTO_CHUNK_SIZE - p.index + 1;
        rc = get_loc(fs, n->ino, p.index, prefetch, false, &c);
        if (rc < 0)
            break;
        if (c.chunk_id == 0)
            continue; /* already reads as zeros */
        rc = write_piece(fs, h, &p, zeros);
        if (rc < 0)
            break;
    }
    free(zeros);
    return rc < 0 ? fc_data_errno(rc) : 0;
}
