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
 * Write: under write-through (or with O_SYNC) the bytes go to the servers
 * now, up to WRITE_WINDOW pieces in flight at once on the fast path
 * (cl_fast.c) once the chunk's lease is held; under the delayed policies
 * they become delayed writes (cl_cache.c) and the call returns at once.
 * Writing them back later (cl_file_writeback) sends all of an inode's
 * delayed writes through one such window.  Either way CHUNK_WRITE_END (the new
 * size and mtime) waits for the next flush, sync, close or the flush thread's
 * scan: a metad round trip per extending write would cost more than the
 * write.  Until then this client's size for the file is the larger one
 * (cl_inode_size), which the mount shows in its own attributes.  A write
 * that fails part way returns the bytes written before the failure.
 *
 * Flush (close, the flush thread, a recall): write back the delayed
 * writes, then the pending CHUNK_WRITE_END.  Sync (fsync): the same with
 * CHUNK_SYNC on every replica of every chunk written since the last sync
 * before the WRITE_END.  Both report, once, the first error a delayed
 * write met since the last of them (n->werr).  Syncs of one inode are
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
 *
 * Release: when the last handle this client had on a file that metad
 * holds for it (docs/protocol.md §6.22) closes, the hold lingers
 * CL_LINGER_MS (an open meanwhile takes it over without a record at
 * metad); then the flusher sends RELEASE under the inode's hold lock, and
 * an unlinked file is reclaimed once no client has it open.  The caller
 * flushes first: after RELEASE an unlinked file's data is gone.
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

/* Whether a read past @n's known size should ask metad for the size: with
 * callbacks when a break marked it stale, else every CL_SIZE_CHECK_MS at
 * most.  Clears the mark: a break during the GETATTR sets it again. */
static bool size_check_due(struct cl_client *c, struct cl_inode *n)
{
    bool callbacks = cl_cb_enabled(c);
    uint64_t now = cl_now_ms();

    pthread_mutex_lock(&n->lock);
    bool due = callbacks ? n->size_stale : now - n->size_ms >= CL_SIZE_CHECK_MS;
    if (due) {
        n->size_stale = false;
        n->size_ms = now;
    }
    pthread_mutex_unlock(&n->lock);
    return due;
}

/* The size a read of [@off, @off + @len) is cut at.  Past the size we know,
 * another client may have extended the file since (docs/caching.md §3):
 * ask metad when that may be so.  A failed GETATTR keeps the size known. */
static uint64_t read_size(struct cl_client *c, struct cl_inode *n, uint64_t off,
                          size_t len)
{
    uint64_t size = cl_inode_size(n);
    struct proto_attr a;

    if (off + len <= size || !size_check_due(c, n) ||
        cl_meta_getattr(c, n->ino, &a) < 0)
        return size;
    return cl_inode_grow_seen(n, a.size);
}

int cl_file_read(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 size_t len, uint8_t *buf)
{
    uint64_t size = read_size(c, n, off, len);
    uint64_t want = cl_range_clamp(off, len, size);
    if (want == 0)
        return 0;

    /* A write-back that lands while the pieces are read may leave the
     * cache before the overlay: the servers were asked too early to
     * have it, so the read is made again.  Past a few tries (a file
     * written back in many small batches) it is made under the inode's
     * sync lock, which every write-back holds: then nothing leaves. */
    uint64_t asked = want, gen;
    bool locked = false;
    for (int tries = 0;; tries++) {
        struct cl_range_iter it;
        struct cl_piece p;
        if (tries == 3) {
            blocking_mutex_lock(&n->sync_lock);
            locked = true;
        }
        want = asked;
        gen = cl_cache_gen(n);
        cl_range_init(&it, off, want, PROTO_MAX_DATA);
        while (cl_range_next(&it, &p)) {
            int rc = cl_chunk_read(c, n->ino, &p, to_end(size, p.index),
                                   buf + p.buf_off);
            if (rc < 0) {
                want = p.buf_off;
                if (want == 0) {
                    if (locked)
                        pthread_mutex_unlock(&n->sync_lock);
                    return cl_errno(rc);
                }
                break;
            }
        }
        if (cl_cache_overlay(n, off, (size_t)want, buf, gen))
            break;
    }
    if (locked)
        pthread_mutex_unlock(&n->sync_lock);
    return (int)want;
}

/* Report the pending size and mtime to metad.  The size sent is the end
 * of the furthest write since the last report; metad keeps the larger of
 * it and what it has. */
static int write_end(struct cl_client *c, struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    bool pending = n->end_pending;
    uint64_t index = n->end_index, chunk = n->end_chunk, size = n->end_size;
    uint64_t unended = n->unended_bytes;
    n->end_pending = false;
    n->end_size = 0;
    pthread_mutex_unlock(&n->lock);
    if (!pending)
        return 0;

    /* The time of the last write, which the mount showed meanwhile
     * (merge_writes()), however long after it this report goes: a
     * delayed write's comes up to flush_interval later. */
    int64_t mtime = cl_inode_wmtime(n);
    if (!mtime)
        mtime = cl_now_ns();
    int rc = cl_meta_write_end(c, n->ino, index, chunk, size, mtime);
    if (rc == -ESTALE) {
        /* The slot moved to another chunk since (a copy-on-write or a
         * recovery): report against the chunk it holds now. */
        struct cl_chunk ch;
        cl_loc_invalidate(c->loc, n->ino, index);
        if (cl_file_locate(c, n->ino, index, 1, &ch) == 0 && ch.chunk_id)
            rc = cl_meta_write_end(c, n->ino, index, ch.chunk_id, size, mtime);
    }
    if (rc == 0) {
        /* metad counts those bytes now (its st_blocks counts a chunk not
         * reported yet up to the size), and so do the attributes its
         * reply left (cl_meta_write_end()). */
        pthread_mutex_lock(&n->lock);
        n->unended_bytes -=
            unended < n->unended_bytes ? unended : n->unended_bytes;
        pthread_mutex_unlock(&n->lock);
    }
    if (rc < 0) {
        log_error("write end: metad refused: %s ino=%llu size=%llu",
                  strerror(-rc), (unsigned long long)n->ino,
                  (unsigned long long)size);
        pthread_mutex_lock(&n->lock);
        if (!n->end_pending) {
            n->end_pending = true;
            n->end_index = index;
            n->end_chunk = chunk;
        }
        if (size > n->end_size)
            n->end_size = size;
        pthread_mutex_unlock(&n->lock);
    }
    return rc;
}

void cl_file_mark_end(struct cl_inode *n, uint64_t index, uint64_t chunk_id,
                      uint64_t end)
{
    pthread_mutex_lock(&n->lock);
    if (!n->end_pending)
        n->end_ms = cl_now_ms();
    n->end_pending = true;
    n->end_index = index;
    n->end_chunk = chunk_id;
    if (end > n->end_size)
        n->end_size = end;
    pthread_mutex_unlock(&n->lock);
}

/* The delayed-write error to report now, forgotten once taken. */
static int take_werr(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    int err = n->werr;
    n->werr = 0;
    pthread_mutex_unlock(&n->lock);
    return err;
}

int cl_file_write(struct cl_client *c, struct cl_inode *n, uint64_t off,
                  const uint8_t *buf, size_t len, bool sync)
{
    if (len == 0)
        return 0;
    if (off > UINT64_MAX - len || off + len > (uint64_t)INT64_MAX)
        return -EFBIG;
    pthread_mutex_lock(&n->lock);
    n->wmtime_ns = cl_now_ns();
    pthread_mutex_unlock(&n->lock);
    bool delayed = cl_file_delays(c, n);
    if (sync && delayed) {
        /* Older delayed writes to the same bytes must not be written back
         * over this one later: they go first.  Their error, if any, stays
         * in werr for the next fsync or close, as for any write-back. */
        blocking_mutex_lock(&n->sync_lock);
        cl_file_writeback(c, n);
        pthread_mutex_unlock(&n->sync_lock);
    }
    if (sync || !delayed)
        return cl_file_write_now(c, n, off, buf, len, sync);
    if (len > (size_t)INT32_MAX)
        len = (size_t)INT32_MAX;
    int rc = cl_cache_write(c, n, off, buf, len, true);
    return rc < 0 ? cl_errno(rc) : (int)len;
}

/* Writes in flight: up to WRITE_WINDOW pieces (and WRITE_WINDOW_BYTES)
 * at once on the fast path (cl_fast.c); a piece it declines, and every
 * piece that failed there, goes one at a time the blocking way with its
 * recovery.  The pieces may come from many ranges: a write-back sends all
 * of an inode's delayed writes through one window. */
#define WRITE_WINDOW 32
#define WRITE_WINDOW_BYTES (16u << 20)

/* One range to write: @len bytes from @data to [@off, @off + @len). */
struct wseg {
    uint64_t off;
    const uint8_t *data;
    size_t len;
};

struct wwin {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
    uint64_t bytes; /* in flight */
    int8_t *state;  /* per piece: 0 not sent, 1 in flight, 2 done, -1 failed */
};

struct wpiece {
    struct wwin *w;
    size_t i;
    uint32_t len;
};

static void piece_done(void *arg, int status)
{
    struct wpiece *wp = arg;
    struct wwin *w = wp->w;

    pthread_mutex_lock(&w->mu);
    w->state[wp->i] = status == 0 ? 2 : -1;
    w->inflight--;
    w->bytes -= wp->len;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Write piece @p of the range at @off, whose bytes are at @buf, the
 * blocking way; on success the WRITE_END is owed. */
static int piece_write(struct cl_client *c, struct cl_inode *n,
                       const struct cl_piece *p, uint64_t off,
                       const uint8_t *buf, bool sync)
{
    struct cl_chunk used;
    int rc = cl_chunk_write(c, n, p, buf + p->buf_off, sync, &used);
    if (rc == 0)
        cl_file_mark_end(n, p->index, used.chunk_id, off + p->buf_off + p->len);
    return rc;
}

static size_t count_pieces(const struct wseg *sg, size_t nsg)
{
    struct cl_range_iter it;
    struct cl_piece p;
    size_t np = 0;

    for (size_t k = 0; k < nsg; k++) {
        cl_range_init(&it, sg[k].off, sg[k].len, PROTO_MAX_DATA);
        while (cl_range_next(&it, &p))
            np++;
    }
    return np;
}

/* Write @nsg ranges (each inside [0, INT64_MAX]) through one window.
 * Returns 0 when every piece is written, else the error of the first
 * piece that is not; *@done (may be NULL) gets the bytes of the pieces
 * written before it, in order over the ranges. */
static int write_segs(struct cl_client *c, struct cl_inode *n,
                      const struct wseg *sg, size_t nsg, bool sync,
                      uint64_t *done)
{
    struct cl_range_iter it;
    struct cl_piece p;
    size_t np = count_pieces(sg, nsg), i = 0;
    int rc = 0, err = -EIO;

    if (done)
        *done = 0;
    if (np == 0)
        return 0;
    struct wpiece *wp = calloc(np, sizeof(*wp));
    int8_t *state = calloc(np, 1);
    if (!wp || !state) {
        free(wp);
        free(state);
        return -ENOMEM;
    }
    struct wwin w = {.state = state};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    for (size_t k = 0; k < nsg && rc == 0; k++) {
        cl_range_init(&it, sg[k].off, sg[k].len, PROTO_MAX_DATA);
        for (; rc == 0 && cl_range_next(&it, &p); i++) {
            pthread_mutex_lock(&w.mu);
            while (w.inflight >= WRITE_WINDOW ||
                   (w.inflight > 0 && w.bytes + p.len > WRITE_WINDOW_BYTES))
                blocking_cond_wait(&w.cv, &w.mu);
            w.inflight++;
            w.bytes += p.len;
            w.state[i] = 1;
            pthread_mutex_unlock(&w.mu);
            wp[i] = (struct wpiece){&w, i, p.len};
            uint64_t end = sg[k].off + p.buf_off + p.len;
            if (cl_fast_write_piece(c, n, &p, end, sg[k].data + p.buf_off, sync,
                                    piece_done, &wp[i]) < 0) {
                /* No lease or connection yet: the blocking way takes
                 * them, and the next pieces of the chunk go fast.  A
                 * failure there is final (it has recovered already):
                 * nothing more is sent. */
                rc = piece_write(c, n, &p, sg[k].off, sg[k].data, sync);
                piece_done(&wp[i], rc);
                if (rc < 0) {
                    w.state[i] = -2;
                    err = rc;
                }
            }
        }
    }
    pthread_mutex_lock(&w.mu);
    while (w.inflight > 0)
        blocking_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);

    /* Pieces that failed on the fast path go again the blocking way,
     * which recovers; the count stops at the first piece that is not
     * written. */
    i = 0;
    rc = 0;
    for (size_t k = 0; k < nsg && rc == 0; k++) {
        cl_range_init(&it, sg[k].off, sg[k].len, PROTO_MAX_DATA);
        for (; rc == 0 && cl_range_next(&it, &p); i++) {
            if (w.state[i] == -1)
                rc = piece_write(c, n, &p, sg[k].off, sg[k].data, sync);
            else if (w.state[i] != 2)
                rc = err; /* the blocking failure that stopped the sends */
            if (rc == 0 && done)
                *done += p.len;
        }
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    free(state);
    free(wp);
    return rc;
}

int cl_file_write_now(struct cl_client *c, struct cl_inode *n, uint64_t off,
                      const uint8_t *buf, size_t len, bool sync)
{
    struct wseg sg = {off, buf, len};
    uint64_t done;

    if (len == 0)
        return 0;
    if (off > UINT64_MAX - len || off + len > (uint64_t)INT64_MAX)
        return -EFBIG;
    if (len > (size_t)INT32_MAX)
        sg.len = len = (size_t)INT32_MAX;
    int rc = write_segs(c, n, &sg, 1, sync, &done);
    if (done == 0)
        return cl_errno(rc);
    cl_inode_grow(n, off + done);
    return (int)done;
}

/* Write back the first @count extents of n->fl and give them back. */
static int writeback_batch(struct cl_client *c, struct cl_inode *n,
                           size_t count)
{
    struct wseg *sg = calloc(count, sizeof(*sg));
    uint64_t done = 0, total = 0;
    int err = sg ? 0 : -ENOMEM;

    for (size_t i = 0; i < count && sg; i++) {
        sg[i] = (struct wseg){n->fl[i].off, n->fl[i].data, n->fl[i].len};
        total += n->fl[i].len;
    }
    if (sg)
        err = write_segs(c, n, sg, count, false, &done);
    if (err == 0 && done > 0)
        cl_inode_grow(n, n->fl[count - 1].off + n->fl[count - 1].len);
    if (err < 0)
        /* The rest are dropped: the error stands for them. */
        log_error("writeback: delayed writes failed: %s ino=%llu "
                  "extents=%zu bytes=%llu written=%llu",
                  strerror(-err), (unsigned long long)n->ino, count,
                  (unsigned long long)total, (unsigned long long)done);
    free(sg);
    cl_cache_release(c->cache, n, count, err);
    return err;
}

int cl_file_writeback(struct cl_client *c, struct cl_inode *n)
{
    if (!cl_cache_take(n))
        return 0;
    /* A batch at a time, each given back once written, so that writers
     * refill the cache meanwhile.  n->fl shrinks from the front only
     * here (the caller holds sync_lock), so reading it without the inode
     * lock is safe. */
    uint64_t batch = cl_cache_batch(c->cache);
    int err = 0;
    while (n->nfl > 0) {
        size_t count = 1;
        uint64_t bytes = n->fl[0].len;
        while (count < n->nfl && bytes + n->fl[count].len <= batch)
            bytes += n->fl[count++].len;
        int rc = writeback_batch(c, n, count);
        if (rc < 0 && !err)
            err = rc;
    }
    return err;
}

/* Write back delayed writes and the pending WRITE_END, without
 * CHUNK_SYNC. */
static int flush_delayed(struct cl_client *c, struct cl_inode *n)
{
    blocking_mutex_lock(&n->sync_lock);
    int err = cl_file_writeback(c, n);
    int rc = write_end(c, n);
    pthread_mutex_unlock(&n->sync_lock);
    int werr = take_werr(n);
    if (werr)
        err = werr;
    if (!err)
        err = rc;
    return err < 0 ? cl_errno(err) : 0;
}

void cl_file_mtime_prepare(struct cl_client *c, struct cl_inode *n)
{
    blocking_mutex_lock(&n->sync_lock);
    int err = cl_file_writeback(c, n); /* its failures are in werr */
    int rc = write_end(c, n);
    pthread_mutex_unlock(&n->sync_lock);
    if (err == 0 && rc < 0) {
        pthread_mutex_lock(&n->lock);
        if (!n->werr)
            n->werr = rc;
        pthread_mutex_unlock(&n->lock);
    }
}

void cl_file_mtime_done(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    n->wmtime_ns = 0;
    pthread_mutex_unlock(&n->lock);
}

int cl_file_flush(struct cl_client *c, struct cl_inode *n)
{
    /* Write-through keeps what close always did: durable at close. */
    if (c->mode == CL_CACHE_WRITETHROUGH)
        return cl_file_sync(c, n);
    return flush_delayed(c, n);
}

/* cl_file_sync()'s WRITE_END, sent while the first syncs are in flight. */
struct sync_end {
    struct cl_client *c;
    struct cl_inode *n;
    bool sent;
    int rc;
};

static void sync_end_send(void *arg)
{
    struct sync_end *e = arg;

    e->rc = write_end(e->c, e->n);
    e->sent = true;
}

/* fsync: the delayed writes go out, every chunk written since the last
 * sync is synced on every replica, and the size and mtime are recorded.
 * The WRITE_END goes while the first chunk syncs are in flight: it waits
 * for nothing they do (it records what the writes made, as a close's
 * does without any sync), and an fsync returns only when both are done,
 * so it waits for the longer of the two instead of their sum. */
int cl_file_sync(struct cl_client *c, struct cl_inode *n)
{
    uint64_t batch[SYNC_BATCH];
    struct sync_end end = {c, n, false, 0};
    int err = 0;
    size_t k;

    blocking_mutex_lock(&n->sync_lock);
    err = cl_file_writeback(c, n);
    while (!err && (k = cl_inode_take_dirty(n, batch, SYNC_BATCH)) > 0) {
        int rcs[SYNC_BATCH];

        err = cl_chunk_sync_many(c, n, batch, k, rcs,
                                 end.sent ? NULL : sync_end_send, &end);
        for (size_t i = 0; i < k; i++)
            if (rcs[i] < 0)
                log_error("sync: chunk sync failed: %s ino=%llu index=%llu",
                          strerror(-rcs[i]), (unsigned long long)n->ino,
                          (unsigned long long)batch[i]);
        if (err) {
            /* Give back what failed and what was not tried: the next sync
             * owes them still. */
            for (size_t i = 0; i < k; i++)
                cl_inode_lease_dirty(n, batch[i]);
            break;
        }
    }
    /* Not sent yet (nothing to sync, or the writeback failed): now.
     * Sent: a refusal stands, and what a recovery owed since goes now
     * (write_end() returns at once when nothing is owed). */
    int rc = end.sent && end.rc < 0 ? end.rc : write_end(c, n);
    pthread_mutex_unlock(&n->sync_lock);
    int werr = take_werr(n);
    if (werr)
        err = werr;
    if (!err)
        err = rc;
    if (!err)
        __atomic_store_n(&n->synced, true, __ATOMIC_RELEASE);
    return err < 0 ? cl_errno(err) : 0;
}

int cl_file_truncate_prepare(struct cl_client *c, uint64_t ino,
                             struct cl_inode *n, uint64_t old_size,
                             uint64_t new_size)
{
    /* Delayed writes and the size they owe go first: the SETATTR that
     * follows decides the size. */
    if (n) {
        int frc = flush_delayed(c, n);
        if (frc < 0)
            return frc;
    }
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

void cl_file_release(struct cl_client *c, struct cl_inode *n, bool held)
{
    if (!n)
        return;
    cl_inode_hold_begin(n);
    /* The last handle: the linger keeps its reference, unless metad never
     * learnt of the hold (cl_nsq_hold_here()): then there is nothing to
     * release. */
    bool linger =
        held && cl_inode_hold_drop(n) && !cl_nsq_hold_end(c->nsq, n->ino);
    if (linger)
        cl_inode_linger_set(n, true, cl_now_ms());
    cl_inode_hold_end(c, n, false);
    if (!linger)
        cl_inode_put(c, n);
}

void cl_file_linger_end(struct cl_client *c, struct cl_inode *n,
                        uint64_t now_ms)
{
    cl_inode_hold_begin(n);
    bool due = cl_inode_linger_due(n, now_ms);
    if (due) {
        /* Queued behind any change answered locally (cl_nsq.c), and
         * ahead of the next OPEN, which waits for the queue. */
        struct proto_ino_req req = {.ino = n->ino};
        struct proto_wbuf w;
        proto_wbuf_init(&w);
        proto_ino_req_encode(&w, &req);
        int rc = cl_nsq_push(c->nsq, 0, n->ino, PROTO_MSG_RELEASE_REQ, &w);
        proto_wbuf_free(&w);
        if (rc < 0)
            rc = cl_meta_release(c, n->ino);
        if (rc < 0)
            log_warn("release: %s ino=%llu (metad drops the hold with the "
                     "session)",
                     strerror(-rc), (unsigned long long)n->ino);
        cl_inode_linger_set(n, false, 0);
    }
    cl_inode_hold_end(c, n, false);
    if (due)
        cl_inode_put(c, n); /* the linger's reference */
}

void cl_file_truncate_done(struct cl_client *c, uint64_t ino,
                           struct cl_inode *n, uint64_t new_size)
{
    uint64_t first =
        new_size / PROTO_CHUNK_SIZE + (new_size % PROTO_CHUNK_SIZE != 0);
    cl_loc_invalidate_from(c->loc, ino, first);
    if (n) {
        cl_cache_cut(c, n, new_size);
        cl_inode_lease_drop_from(n, first);
        cl_inode_set_size(n, new_size);
    }
}

int cl_file_zero(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 uint64_t len)
{
    int frc = flush_delayed(c, n);
    if (frc < 0)
        return frc;
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
                cl_file_mark_end(n, p.index, ch.chunk_id, 0);
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
                cl_file_mark_end(n, q.index, used.chunk_id, 0);
        }
    }
    free(zeros);
    return rc < 0 ? cl_errno(rc) : 0;
}

int cl_file_unshare(struct cl_client *c, uint64_t ino, uint64_t index)
{
    struct cl_chunk chunk;
    int rc = cl_meta_write_begin(c, ino, index, &chunk);

    /* Cached locations of the slot name the shared chunk no longer. */
    cl_loc_invalidate(c->loc, ino, index);
    return rc;
}
