/* chunk_write.c: CHUNK_WRITE_REQ and CHUNK_SYNC_REQ, with chain
 * replication (docs/architecture.md "Writing").
 *
 * Happy path of a write: copy the request (its payload is borrowed only
 * during on_request), forward it at once to chain[0] with chain[1..] and
 * the same flags, and queue the local write as an exclusive job on the
 * chunk; with PROTO_CHUNK_WRITE_SYNC the job also fdatasyncs.  The two run
 * side by side; when both have finished the upstream gets one answer: OK
 * only when the local write and everything downstream succeeded, so an OK
 * means the data is on every replica of the chain (durably with SYNC).
 * CHUNK_SYNC works the same way with an fdatasync in place of the write.
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

struct write_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    uint16_t opcode;
    uint8_t *payload; /* owned copy; the decoded fields point into it */
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
    free(op->payload);
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

/* Encode the request for chain[0]: the same body with the chain shifted
 * by one. */
static int fwd_encode(struct write_op *op, struct proto_wbuf *w)
{
    if (op->opcode == PROTO_MSG_CHUNK_SYNC_REQ) {
        struct proto_chunk_sync_req f = op->m.s;
        f.nchain = op->m.s.nchain - 1;
        memcpy(f.chain, op->m.s.chain + 1, f.nchain * sizeof(f.chain[0]));
        proto_chunk_sync_req_encode(w, &f);
    } else {
        struct proto_chunk_write_req f = op->m.w;
        f.nchain = op->m.w.nchain - 1;
        memcpy(f.chain, op->m.w.chain + 1, f.nchain * sizeof(f.chain[0]));
        proto_chunk_write_req_encode(w, &f);
    }
    return w->err;
}

static int fwd_start(struct chunk_server *srv, struct write_op *op)
{
    uint32_t nchain = op->opcode == PROTO_MSG_CHUNK_SYNC_REQ ? op->m.s.nchain
                                                             : op->m.w.nchain;
    struct proto_str next = op->opcode == PROTO_MSG_CHUNK_SYNC_REQ
                                ? op->m.s.chain[0].addr
                                : op->m.w.chain[0].addr;
    struct proto_wbuf w;
    int rc;

    if (nchain == 0)
        return 0;
    proto_wbuf_init(&w);
    rc = fwd_encode(op, &w);
    if (rc == 0)
        rc = chunk_chain_request(srv->chain, next, op->opcode, w.p, w.len,
                                 fwd_reply, op);
    proto_wbuf_free(&w);
    if (rc == 0)
        op->pending++;
    else
        log_warn("chunk forward: failed: chunk=%016llx addr=%.*s err=%d",
                 (unsigned long long)op->job.chunk_id, (int)next.len, next.p,
                 rc);
    return rc;
}

static void write_start(struct chunk_server *srv, struct peer *p,
                        uint16_t opcode, uint64_t req_id,
                        const uint8_t *payload, size_t len)
{
    struct write_op *op = calloc(1, sizeof(*op));
    int rc = op ? 0 : -ENOMEM;

    if (rc == 0 && !(op->payload = malloc(len ? len : 1)))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(op->payload, payload, len);
        op->opcode = opcode;
        rc = proto_msg_decode(opcode, op->payload, len, &op->m);
    }
    if (rc < 0) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, rc, NULL, 0);
        if (op)
            free(op->payload);
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
     * answer cannot go out before both halves are started. */
    op->pending = 1;
    rc = fwd_start(srv, op);
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
