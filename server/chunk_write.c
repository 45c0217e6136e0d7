/* chunk_write.c: CHUNK_WRITE_REQ and CHUNK_SYNC_REQ, with chain
 * replication (docs/architecture.md "Writing").
 *
 * Happy path of a write: decode the request in place (its payload is
 * borrowed only during on_request), copy it once into the body to forward
 * (the same fields with chain[1..] as the chain, then the data; with no
 * chain only the data is kept), send that to chain[0] at once, and queue
 * the local write of the data, which lies inside the same buffer, as an
 * exclusive job on the chunk; with PROTO_CHUNK_WRITE_SYNC the job also
 * fdatasyncs.  The two run side by side (docs/protocol.md §7.3, step 2);
 * when both have finished the upstream gets one answer: OK only when the
 * local write and everything downstream succeeded, so an OK means the
 * data is on every replica of the chain (durably with SYNC).  CHUNK_SYNC
 * works the same way with an fdatasync in place of the write; it has no
 * data, so nothing of it is kept past on_request.
 *
 * Failure modes: a bad body is answered EPROTO; a version mismatch here
 * or downstream EOLDVER; a checksum failure while merging a partial block
 * ECHECKSUM (and the replica is reported bad, chunk_meta_report_bad());
 * ENOSPC as ENOSPC; a downstream server that cannot be dialled,
 * closes, or does not answer within 30 s fails the whole request.  The
 * first error seen is the one answered.  A failed write may have been
 * applied on some replicas and not others; the client retries or metad
 * bumps the version, which makes the laggards stale.
 *
 *   received --> forwarded (if nchain > 0) --+--> both done --> answered
 *            \-> local job queued -----------+
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
    /* Owned: the data of a write (m.w.data points into it), inside the
     * body forwarded downstream when there is a chain.  NULL for a sync. */
    uint8_t *buf;
    /* The decoded request.  Its chain points into the borrowed payload:
     * used only inside write_start(), cleared before it returns. */
    union {
        struct proto_chunk_write_req w;
        struct proto_chunk_sync_req s;
    } m;
    int pending; /* local job + downstream reply still to come */
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
        log_warn("chunk %s: downstream failed: chunk=%016llx err=%d peer=%s",
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
                          const struct proto_chunk_write_req *m, uint8_t **out,
                          size_t *out_len, const uint8_t **data)
{
    /* docs/protocol.md §7.3: head, chain (u32 server id, u16 length and
     * the address each), u32 length and the data, exactly.  The forwarded
     * body keeps everything from chain[1] on, so it is measured from the
     * end. */
    size_t keep = 4 + (size_t)m->data.len, n;
    uint8_t *b;

    if (m->nchain == 0)
        return -EINVAL;
    for (uint32_t i = 1; i < m->nchain; i++)
        keep += 6 + (size_t)m->chain[i].addr.len;
    if (keep > len)
        return -EINVAL; /* cannot happen for a decoded @m */
    n = WRITE_HEAD + keep;
    b = malloc(n);
    if (!b)
        return -ENOMEM;
    put_be64(b, m->chunk_id);
    put_be64(b + 8, m->version);
    put_be32(b + 16, m->offset);
    put_be32(b + 20, m->flags);
    put_be32(b + 24, m->nchain - 1);
    memcpy(b + WRITE_HEAD, payload + (len - keep), keep);
    *out = b;
    *out_len = n;
    *data = b + n - m->data.len;
    return 0;
}

/* Send @body (@len bytes, copied) to the chain's next server. */
static int fwd_send(struct chunk_server *srv, struct write_op *op,
                    struct proto_str next, const void *body, size_t len)
{
    int rc = chunk_chain_request(srv->chain, next, op->opcode, body, len,
                                 fwd_reply, op);

    if (rc == 0)
        op->pending++;
    else
        log_warn("chunk forward: failed: chunk=%016llx addr=%.*s err=%d",
                 (unsigned long long)op->job.chunk_id, (int)next.len, next.p,
                 rc);
    return rc;
}

/* Forward a sync: re-encode it with the chain shifted by one. */
static int fwd_sync(struct chunk_server *srv, struct write_op *op)
{
    struct proto_chunk_sync_req f = op->m.s;
    struct proto_wbuf w;
    int rc;

    if (op->m.s.nchain == 0)
        return 0;
    f.nchain = op->m.s.nchain - 1;
    memmove(f.chain, op->m.s.chain + 1, f.nchain * sizeof(f.chain[0]));
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &f);
    rc = w.err;
    if (rc == 0)
        rc = fwd_send(srv, op, op->m.s.chain[0].addr, w.p, w.len);
    proto_wbuf_free(&w);
    return rc;
}

/* Take the data of a write out of the borrowed @payload: the one copy made
 * of it here.  With a chain it is built into the body to forward, which is
 * sent now. */
static int write_take(struct chunk_server *srv, struct write_op *op,
                      const uint8_t *payload, size_t len)
{
    const uint8_t *data;
    size_t n;
    int rc;

    if (op->m.w.nchain == 0) {
        op->buf = malloc(op->m.w.data.len ? op->m.w.data.len : 1);
        if (!op->buf)
            return -ENOMEM;
        memcpy(op->buf, op->m.w.data.p, op->m.w.data.len);
        op->m.w.data.p = (const char *)op->buf;
        return 0;
    }
    rc = chunk_write_fwd_build(payload, len, &op->m.w, &op->buf, &n, &data);
    if (rc < 0)
        return rc;
    op->m.w.data.p = (const char *)data;
    return fwd_send(srv, op, op->m.w.chain[0].addr, op->buf, n);
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
    op->job.done = write_done;
    chunk_req_start(&op->req, p, opcode, req_id);

    /* One count for the code below, dropped at the end, so that an
     * answer cannot go out before both halves are started.  The forward
     * goes first: it is on the wire before the local job is queued. */
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
        rc = chunk_job_submit(srv->jobs, &op->job);
        if (rc == 0)
            op->pending++;
        else
            op->status = rc;
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
