/* chunk_write.c: CHUNK_WRITE_REQ and CHUNK_SYNC_REQ, with fan-out
 * replication (docs/architecture.md "Writing", docs/protocol.md §7.3).
 *
 * Happy path of a write: decode the request in place (its payload is
 * borrowed only during on_request), copy it once into the body to forward
 * (the same fields with an empty chain, then the data), send that same
 * body to every replica of the chain at once, and submit the local write
 * of the data, which lies inside the same buffer, as an exclusive job on
 * the chunk; with PROTO_CHUNK_WRITE_SYNC the job also fdatasyncs.  The
 * local write and the forwards run side by side (§7.3, step 2); when all
 * have finished the upstream gets one answer: OK only when the local
 * write and every forward succeeded, so an OK means the data is on every
 * replica of the chain (durably with SYNC).  A replica that receives a
 * forward (nchain 0) writes locally only, so a write costs two network
 * round trips at any replication goal: client -> first server, first
 * server -> every other replica, all at once.  CHUNK_SYNC works the same
 * way with an fdatasync in place of the write; its forward is encoded once
 * with an empty chain, and nothing of it is kept past on_request.
 *
 * A write without SYNC is first tried on the loop thread without
 * blocking (chunk_store_write_nowait(), via chunk_job.c): whole cached
 * blocks whose space is reserved, on a file system that takes buffered
 * RWF_NOWAIT writes.  Otherwise, or when the try would block, the job
 * goes to the thread pool, which redoes the write whole.  SYNC writes and
 * syncs always go to the pool.
 *
 * Failure modes: a bad body is answered EPROTO; a version mismatch here
 * or on another replica EOLDVER; a checksum failure while merging a
 * partial block ECHECKSUM (and the replica is reported bad,
 * chunk_meta_report_bad()); ENOSPC as ENOSPC; a replica that cannot be
 * dialled, closes, or does not answer within 30 s fails the whole
 * request.  The first error seen is the one answered.  When a forward
 * cannot even be sent, the rest of the chain and the local write are not
 * started, and the answer waits for the forwards already sent.  A failed
 * write may have been applied on some replicas and not others; the client
 * retries or metad bumps the version, which makes the laggards stale.
 *
 *   received --+--> forwarded to chain[0] -------+
 *              +--> forwarded to chain[1] -------+
 *              |    ... (nchain > 0)             +--> all done --> answered
 *              +--> local job submitted ---------+
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* chunk_id, version, offset, flags, nchain: the fixed head of the body. */
#define WRITE_HEAD 28u

struct write_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    uint16_t opcode;
    /* Owned: the allocation holding the body forwarded to the chain of a
     * write, which holds its data (m.w.data points into it).  NULL for a
     * sync. */
    void *buf;
    /* The decoded request.  Its chain points into the borrowed payload:
     * used only inside write_start(), cleared before it returns. */
    union {
        struct proto_chunk_write_req w;
        struct proto_chunk_sync_req s;
    } m;
    int pending; /* local job + forward replies still to come */
    int status;  /* first error */
};

static void op_step(struct write_op *op, int rc)
{
    if (rc < 0 && op->status == 0)
        op->status = rc;
    if (--op->pending > 0)
        return;
    chunk_req_finish(&op->req, op->status, NULL, 0);
    free(op->buf);
    free(op);
}

static int write_run(struct chunk_job *j)
{
    struct write_op *op = (struct write_op *)j;
    struct chunk_store *s = j->srv->store;

    if (op->opcode == PROTO_MSG_CHUNK_SYNC_REQ)
        return chunk_store_sync(s, op->m.s.chunk_id, op->m.s.version);
    return chunk_store_write(s, op->m.w.chunk_id, op->m.w.version,
                             op->m.w.offset, op->m.w.data.p, op->m.w.data.len,
                             op->m.w.flags & PROTO_CHUNK_WRITE_SYNC);
}

/* The same write on the loop thread, when it can be done without
 * blocking; -EAGAIN otherwise (then write_run() redoes it whole). */
static int write_run_nowait(struct chunk_job *j)
{
    struct write_op *op = (struct write_op *)j;

    return chunk_store_write_nowait(j->srv->store, op->m.w.chunk_id,
                                    op->m.w.version, op->m.w.offset,
                                    op->m.w.data.p, op->m.w.data.len);
}

static void write_done(struct chunk_job *j, int rc)
{
    struct write_op *op = (struct write_op *)j;

    if (rc == -EBADMSG)
        chunk_meta_report_bad(j->srv, j->chunk_id,
                              op->opcode == PROTO_MSG_CHUNK_SYNC_REQ
                                  ? op->m.s.version
                                  : op->m.w.version,
                              PROTO_REPORT_CHECKSUM);
    else if (rc < 0 && rc != -ESTALE)
        log_warn("chunk %s: local failed: chunk=%016llx err=%d",
                 op->opcode == PROTO_MSG_CHUNK_SYNC_REQ ? "sync" : "write",
                 (unsigned long long)j->chunk_id, rc);
    op_step(op, rc);
}

static void fwd_reply(struct peer *p, int status, const uint8_t *payload,
                      size_t len, void *arg)
{
    struct write_op *op = arg;

    (void)payload;
    (void)len;
    if (status < 0 && status != -ESTALE)
        log_warn("chunk %s: replica failed: chunk=%016llx err=%d peer=%s",
                 op->opcode == PROTO_MSG_CHUNK_SYNC_REQ ? "sync" : "write",
                 (unsigned long long)op->job.chunk_id, status, peer_name(p));
    op_step(op, status);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

int chunk_write_fwd_build(const uint8_t *payload, size_t len,
                          const struct proto_chunk_write_req *m, void **out,
                          const uint8_t **body, size_t *body_len,
                          const uint8_t **data)
{
    /* docs/protocol.md §7.3: head, chain (u32 server id, u16 length and
     * the address each), u32 length and the data, exactly.  The forwarded
     * body drops the whole chain and keeps the length and the data, so it
     * is measured from the end. */
    size_t keep = 4 + (size_t)m->data.len, n, lead = 0;
    uint8_t *a, *b;

    if (keep > len)
        return -EINVAL; /* cannot happen for a decoded @m */
    n = WRITE_HEAD + keep;
    if (m->data.len >= FWD_ALIGN_MIN) {
        /* The data at a page boundary: the store can write it with
         * O_DIRECT without copying it again (chunk_store.c). */
        lead = (FWD_ALIGN - (WRITE_HEAD + 4) % FWD_ALIGN) % FWD_ALIGN;
        if (posix_memalign((void **)&a, FWD_ALIGN, lead + n) != 0)
            a = NULL;
    } else {
        a = malloc(n);
    }
    if (!a)
        return -ENOMEM;
    b = a + lead;
    put_be64(b, m->chunk_id);
    put_be64(b + 8, m->version);
    put_be32(b + 16, m->offset);
    put_be32(b + 20, m->flags);
    put_be32(b + 24, 0); /* nchain */
    memcpy(b + WRITE_HEAD, payload + (len - keep), keep);
    *out = a;
    *body = b;
    *body_len = n;
    *data = b + n - m->data.len;
    return 0;
}

/* Send @body (@len bytes, copied for each) to every replica of @chain
 * (@n of them) at once.  Stops at the first that cannot be sent. */
static int fwd_all(struct chunk_server *srv, struct write_op *op,
                   const struct proto_replica *chain, uint32_t n,
                   const void *body, size_t len)
{
    for (uint32_t i = 0; i < n; i++) {
        int rc = chunk_chain_request(srv->chain, chain[i].addr, op->opcode,
                                     body, len, fwd_reply, op);
        if (rc < 0) {
            log_warn("chunk forward: failed: chunk=%016llx addr=%.*s err=%d",
                     (unsigned long long)op->job.chunk_id,
                     (int)chain[i].addr.len, chain[i].addr.p, rc);
            return rc;
        }
        op->pending++;
    }
    return 0;
}

/* Forward a sync: encoded once with an empty chain, sent to every
 * replica. */
static int fwd_sync(struct chunk_server *srv, struct write_op *op)
{
    struct proto_chunk_sync_req f = {
        .chunk_id = op->m.s.chunk_id,
        .version = op->m.s.version,
    };
    struct proto_wbuf w;
    int rc;

    if (op->m.s.nchain == 0)
        return 0;
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &f);
    rc = w.err;
    if (rc == 0)
        rc = fwd_all(srv, op, op->m.s.chain, op->m.s.nchain, w.p, w.len);
    proto_wbuf_free(&w);
    return rc;
}

/* Take the data of a write out of the borrowed @payload: the one copy made
 * of it here, into the body to forward (built with nchain 0 also when
 * there is nothing to forward: one path, 32 bytes more), which is sent to
 * the chain now. */
static int write_take(struct chunk_server *srv, struct write_op *op,
                      const uint8_t *payload, size_t len)
{
    const uint8_t *body, *data;
    size_t n;
    int rc;

    rc = chunk_write_fwd_build(payload, len, &op->m.w, &op->buf, &body, &n,
                               &data);
    if (rc < 0)
        return rc;
    op->m.w.data.p = (const char *)data;
    return fwd_all(srv, op, op->m.w.chain, op->m.w.nchain, body, n);
}

static void write_start(struct chunk_server *srv, struct peer *p,
                        uint16_t opcode, uint64_t req_id,
                        const uint8_t *payload, size_t len)
{
    struct write_op *op = calloc(1, sizeof(*op));
    int rc = op ? 0 : -ENOMEM;

    if (rc == 0) {
        op->opcode = opcode;
        rc = proto_msg_decode(opcode, payload, len, &op->m);
    }
    if (rc < 0) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, rc, NULL, 0);
        free(op);
        return;
    }
    op->job.srv = srv;
    op->job.chunk_id = op->m.w.chunk_id; /* first field of both bodies */
    op->job.shared = opcode == PROTO_MSG_CHUNK_SYNC_REQ;
    op->job.run = write_run;
    /* docs/protocol.md §7.3: SYNC needs fdatasync, which blocks. */
    if (opcode == PROTO_MSG_CHUNK_WRITE_REQ &&
        !(op->m.w.flags & PROTO_CHUNK_WRITE_SYNC))
        op->job.run_nowait = write_run_nowait;
    op->job.done = write_done;
    chunk_req_start(&op->req, p, opcode, req_id);

    /* One count for the code below, dropped at the end, so that an
     * answer cannot go out before every part is started.  The forwards go
     * first: they are on the wire before the local job is submitted,
     * which may complete it at once (chunk_job_submit()). */
    op->pending = 1;
    if (opcode == PROTO_MSG_CHUNK_SYNC_REQ) {
        rc = fwd_sync(srv, op);
        op->m.s.nchain = 0;
        memset(op->m.s.chain, 0, sizeof(op->m.s.chain));
    } else {
        rc = write_take(srv, op, payload, len);
        op->m.w.nchain = 0;
        memset(op->m.w.chain, 0, sizeof(op->m.w.chain));
    }
    if (rc < 0)
        op->status = rc;
    if (rc == 0) {
        /* Counted before: @done may run inside the submit. */
        op->pending++;
        rc = chunk_job_submit(srv->jobs, &op->job);
        if (rc < 0) {
            op->pending--;
            op->status = rc;
        }
    }
    op_step(op, 0);
}

void chunk_write_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len)
{
    write_start(srv, p, PROTO_MSG_CHUNK_WRITE_REQ, req_id, payload, len);
}

void chunk_sync_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len)
{
    write_start(srv, p, PROTO_MSG_CHUNK_SYNC_REQ, req_id, payload, len);
}
