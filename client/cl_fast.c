/* cl_fast.c: the non-blocking fast path of reads and writes.
 *
 * A 4 KiB guest I/O in steady state needs nothing from metad: the chunk's
 * location is cached (reads) or its write lease is held (writes), and the
 * connection to the chunk server is up.  Then the request is encoded on
 * the caller's thread, sent with rpc_call_async(), and completed on the
 * thread that reads that server's connection, which runs the caller's
 * callback: no thread is woken but the one the reply arrives on
 * (docs/architecture.md, "The fast path").
 *
 * Anything else is declined with -EAGAIN before anything is sent, and the
 * caller takes the blocking path (cl_file_read()/cl_file_write()), which
 * locates, takes leases, dials, fails over and recovers:
 *
 *   - the range crosses a chunk, is longer than PROTO_MAX_DATA, or (reads)
 *     reaches past the size known;
 *   - (reads) the range meets a delayed write (reads must see it:
 *     cl_cache.c); (writes, write-through) the inode holds delayed writes;
 *   - (writes, delayed policies) a SYNC write, or the client holds
 *     dirty_max: otherwise the write joins the delayed writes here, at
 *     once, and is complete;
 *   - no cached location / no valid, fresh lease on the chunk;
 *   - no connection to the replica yet, or it is down (writes: to any
 *     replica of the chain);
 *   - (writes) another write of this client to some of the same bytes is
 *     in flight (cl_wrange.c).
 *
 * A read goes to one replica.  A write goes to the head of the lease's
 * chain, which forwards it; or, when the client allows it for its size
 * (cl_opts.direct_write_max), to every replica at once, each copy with an
 * empty chain, and completes when all have answered.
 *
 * A fast operation that fails after it was sent (an error answer, a lost
 * connection, a timeout) completes with that error and changes nothing in
 * the client's books; the caller then runs the same operation on the
 * blocking path, which retries it on another replica, or reports the failed
 * one to metad and writes again on a new chain (cl_chunk.c).  Rewriting the
 * same bytes is harmless, so a write that reached some replicas before
 * failing needs nothing special.
 *
 * A write's success is recorded exactly as cl_file_write_now() records
 * it: the lease's chunk is dirty (the next sync reaches it), a WRITE_END
 * is owed, and the size known grows; only then does the caller hear of it.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lat.h"
#include "log.h"

/* From a fast request's send to its completion: the chunk servers' part
 * of the latency budget, round trip included (docs/performance.md). */
static struct lat_stage st_read = {.name = "cl.chunk.read"};
static struct lat_stage st_write = {.name = "cl.chunk.write"};

void cl_stats_register(void)
{
    lat_stage_register(&st_read);
    lat_stage_register(&st_write);
    cl_nsq_stats_register();
}

/* One fast read in flight.  Allocated when it is sent, freed by its
 * completion. */
struct fast_op {
    struct cl_piece p;
    uint64_t chunk_id;
    uint8_t *buf;  /* where the bytes go, borrowed from the caller */
    uint64_t t0;   /* lat_now_ns() at the send */
    cl_done_cb cb;
    void *arg;
};

/* The single piece [@off, @off + @len) makes, or false when it would take
 * more than one. */
static bool one_piece(uint64_t off, uint32_t len, struct cl_piece *p)
{
    struct cl_range_iter it;

    if (len == 0 || len > PROTO_MAX_DATA || off > UINT64_MAX - len)
        return false;
    cl_range_init(&it, off, len, PROTO_MAX_DATA);
    return cl_range_next(&it, p) && p->len == len;
}

/* Does @n hold delayed writes (being written back or not)? */
static bool has_delayed(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    bool any = n->next > 0 || n->nfl > 0;
    pthread_mutex_unlock(&n->lock);
    return any;
}

/* The connected client for replica @r of @ch, or NULL.  Never dials. */
static struct rpc_client *replica_conn(struct cl_client *c,
                                       const struct cl_chunk *ch, uint32_t r)
{
    if (cl_downset_has(&c->down, ch->server_id[r]))
        return NULL;
    return cl_pool_find(c->pool, ch->addr[r]);
}

/* ---- Read -------------------------------------------------------------- */

static void read_done(void *arg, int status, struct rpc_reply *rep)
{
    struct fast_op *op = arg;
    struct proto_bytes_rep out;

    lat_hist_record_since(&st_read.h, op->t0);
    if (status == 0) {
        status = proto_msg_decode(PROTO_MSG_CHUNK_READ_REP, rep->payload,
                                  rep->len, &out);
        if (status == 0 && out.data.len > op->p.len)
            status = -EPROTO;
        if (status == 0) {
            memcpy(op->buf, out.data.p, out.data.len);
            memset(op->buf + out.data.len, 0, op->p.len - out.data.len);
        }
    }
    rpc_reply_free(rep);
    if (status < 0)
        log_debug("cl.fast", "read: failed, the caller retries: %s "
                  "chunk=%016llx",
                  strerror(-status), (unsigned long long)op->chunk_id);
    op->cb(op->arg, status);
    free(op);
}

int cl_file_read_async(struct cl_client *c, struct cl_inode *n, uint64_t off,
                       uint32_t len, uint8_t *buf, cl_done_cb cb, void *arg)
{
    struct cl_piece p;
    struct cl_chunk ch;
    struct rpc_client *rpc = NULL;

    if (!one_piece(off, len, &p) || off + len > cl_inode_size(n) ||
        cl_cache_overlaps(n, off, len))
        return -EAGAIN;
    if (cl_loc_get(c->loc, n->ino, p.index, cl_now_ms(), &ch) < 0)
        return -EAGAIN;
    if (ch.chunk_id == 0) { /* a hole: nothing to ask anyone */
        memset(buf, 0, len);
        cb(arg, 0);
        return 0;
    }
    for (uint32_t r = 0; r < ch.nreplicas && !rpc; r++)
        rpc = replica_conn(c, &ch, r);
    if (!rpc)
        return -EAGAIN;

    struct fast_op *op = malloc(sizeof(*op));
    if (!op)
        return -EAGAIN;
    *op = (struct fast_op){.p = p, .chunk_id = ch.chunk_id,
                           .buf = buf, .cb = cb, .arg = arg,
                           .t0 = lat_now_ns()};
    struct proto_chunk_read_req req = {
        .chunk_id = ch.chunk_id,
        .version = ch.version,
        .offset = p.off,
        .length = p.len,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_read_req_encode(&w, &req);
    int rc = w.err ? w.err
                   : rpc_call_async(rpc, PROTO_MSG_CHUNK_READ_REQ, w.p, w.len,
                                    read_done, op);
    proto_wbuf_free(&w);
    if (rc < 0) {
        free(op);
        return -EAGAIN;
    }
    return 0;
}

/* ---- Write ------------------------------------------------------------- */

/* One fast write in flight: a copy sent to every replica of the lease's
 * chain.  Allocated when it is sent, freed by the last answer. */
struct fast_write {
    struct cl_inode *n;
    struct cl_wrange wr; /* its range, held until the last answer */
    uint64_t index;      /* chunk index */
    uint64_t chunk_id;
    uint64_t end; /* end of the range in the file */
    uint64_t t0;  /* lat_now_ns() at the first send */
    atomic_int pending; /* copies not yet answered, + 1 while sending */
    atomic_int status;  /* the first error */
    cl_done_cb cb;
    void *arg;
};

static void write_step(struct fast_write *op, int status)
{
    int none = 0;

    if (status < 0)
        atomic_compare_exchange_strong(&op->status, &none, status);
    if (atomic_fetch_sub(&op->pending, 1) != 1)
        return;
    status = atomic_load(&op->status);
    lat_hist_record_since(&st_write.h, op->t0);
    /* The range goes back before the caller hears: a retry of the same
     * bytes on the blocking path must not wait for itself. */
    cl_wrange_end(op->n, &op->wr);
    if (status == 0) {
        cl_inode_lease_dirty(op->n, op->index);
        cl_file_mark_end(op->n, op->index, op->chunk_id, op->end);
        cl_inode_grow(op->n, op->end);
    } else {
        log_debug("cl.fast", "write: failed, the caller retries: %s "
                  "chunk=%016llx",
                  strerror(-status), (unsigned long long)op->chunk_id);
    }
    op->cb(op->arg, status);
    free(op);
}

static void write_done(void *arg, int status, struct rpc_reply *rep)
{
    rpc_reply_free(rep);
    write_step(arg, status);
}

/* A fast write of up to c->direct_write_max bytes goes straight to every
 * replica, each copy with an empty chain (docs/protocol.md §7.3, direct
 * writes): one round trip whatever the goal, where a chain write takes
 * two.  A larger one goes to the first replica with the rest of the
 * chain.  Its range is held from the first send to the last answer
 * (cl_wrange.c), which keeps the replicas equal however the write
 * travels; a write that overlaps one in flight is declined. */
int cl_fast_write_piece(struct cl_client *c, struct cl_inode *n,
                        const struct cl_piece *p, uint64_t end,
                        const uint8_t *data, bool sync, cl_done_cb cb,
                        void *arg)
{
    struct rpc_client *rpc[PROTO_MAX_REPLICAS];
    struct cl_chunk ch;
    uint64_t off = p->index * PROTO_CHUNK_SIZE + p->off;

    if (cl_inode_lease_get(n, p->index, cl_now_ms(), &ch) < 0 ||
        ch.nreplicas == 0 || ch.nreplicas > PROTO_MAX_REPLICAS)
        return -EAGAIN;
    bool direct = p->len <= c->direct_write_max;
    uint32_t ncopies = direct ? ch.nreplicas : 1;
    for (uint32_t r = 0; r < ncopies; r++)
        if (!(rpc[r] = replica_conn(c, &ch, r)))
            return -EAGAIN;

    struct fast_write *op = malloc(sizeof(*op));
    if (!op)
        return -EAGAIN;
    *op = (struct fast_write){.n = n, .index = p->index,
                              .chunk_id = ch.chunk_id, .end = end, .cb = cb,
                              .arg = arg, .t0 = lat_now_ns()};
    if (!cl_wrange_try(n, &op->wr, off, off + p->len)) {
        free(op);
        return -EAGAIN;
    }
    struct proto_chunk_write_req req = {
        .chunk_id = ch.chunk_id,
        .version = ch.version,
        .offset = p->off,
        .flags = sync ? PROTO_CHUNK_WRITE_SYNC : 0,
        .data = {(const char *)data, p->len},
    };
    if (!direct)
        cl_chunk_chain_fill(&ch, 1, req.chain, &req.nchain);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &req);
    int rc = w.err;
    if (rc < 0) {
        proto_wbuf_free(&w);
        cl_wrange_end(n, &op->wr);
        free(op);
        return -EAGAIN;
    }
    atomic_init(&op->pending, 1);
    atomic_init(&op->status, 0);
    for (uint32_t r = 0; r < ncopies && rc == 0; r++) {
        atomic_fetch_add(&op->pending, 1);
        rc = rpc_call_async(rpc[r], PROTO_MSG_CHUNK_WRITE_REQ, w.p, w.len,
                            write_done, op);
        if (rc < 0)
            atomic_fetch_sub(&op->pending, 1);
        if (rc < 0 && r == 0) {
            /* Nothing sent: declined, as if never tried. */
            proto_wbuf_free(&w);
            cl_wrange_end(n, &op->wr);
            free(op);
            return -EAGAIN;
        }
    }
    proto_wbuf_free(&w);
    /* Copies already sent complete it with the error when they answer; a
     * copy that could not be sent fails it, and the caller writes again
     * the blocking way. */
    write_step(op, rc);
    return 0;
}

int cl_file_write_async(struct cl_client *c, struct cl_inode *n, uint64_t off,
                        uint32_t len, const uint8_t *buf, bool sync,
                        cl_done_cb cb, void *arg)
{
    struct cl_piece p;
    bool delayed = cl_file_delays(c, n);

    if (!one_piece(off, len, &p) || off + len > (uint64_t)INT64_MAX ||
        (delayed ? sync : has_delayed(n)))
        return -EAGAIN; /* a sync write under a delayed policy: cl_file.c */
    if (delayed && cl_cache_write(c, n, off, buf, len, false) < 0)
        return -EAGAIN; /* over dirty_max: wait on the blocking path */
    pthread_mutex_lock(&n->lock);
    n->wmtime_ns = cl_now_ns();
    pthread_mutex_unlock(&n->lock);
    if (delayed) {
        cb(arg, 0);
        return 0;
    }
    return cl_fast_write_piece(c, n, &p, off + len, buf, sync, cb, arg);
}
