/* chunk_manage.c: the chunk life-cycle messages metad sends:
 * CHUNK_SETVERSION_REQ (create at a version, or bump it), CHUNK_TRUNCATE_REQ
 * (a client shrinking a file zeroes the tail of the boundary chunk),
 * CHUNK_DELETE_REQ and CHUNK_CLONE_REQ (a local copy of a chunk shared by
 * a snapshot or clone, before its first write; docs/protocol.md §12.4).
 *
 * Each is decoded, run as an exclusive job on its chunk after every
 * earlier operation on it, and answered with an empty body.  The version
 * rules are the store's (chunk_store.c): a setversion whose old version
 * does not match is EOLDVER, and one that finds the new version already
 * in place succeeds, so metad may retry.  Deleting a chunk this server
 * does not have succeeds.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

struct manage_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    uint16_t opcode;
    union {
        struct proto_chunk_setversion_req sv;
        struct proto_chunk_truncate_req tr;
        struct proto_chunk_ref del;
        struct proto_chunk_clone_req cl;
    } m;
};

static int manage_run(struct chunk_job *j)
{
    struct manage_op *op = (struct manage_op *)j;
    struct chunk_store *s = j->srv->store;

    switch (op->opcode) {
    case PROTO_MSG_CHUNK_SETVERSION_REQ:
        return chunk_store_setversion(
            s, op->m.sv.chunk_id, op->m.sv.old_version, op->m.sv.new_version);
    case PROTO_MSG_CHUNK_TRUNCATE_REQ:
        return chunk_store_truncate(s, op->m.tr.chunk_id, op->m.tr.version,
                                    op->m.tr.length);
    case PROTO_MSG_CHUNK_CLONE_REQ:
        /* docs/protocol.md §12.4: durable before the reply. */
        return chunk_store_clone(s, op->m.cl.src_id, op->m.cl.src_version,
                                 op->m.cl.new_id, op->m.cl.new_version);
    default:
        return chunk_store_delete(s, op->m.del.chunk_id, op->m.del.version);
    }
}

static void manage_done(struct chunk_job *j, int rc)
{
    struct manage_op *op = (struct manage_op *)j;

    if (rc < 0 && rc != -ESTALE)
        log_warn("chunk %s: failed: chunk=%016llx err=%d peer=%s",
                 proto_msg_name(op->opcode), (unsigned long long)j->chunk_id,
                 rc, peer_name(op->req.p));
    chunk_req_finish(&op->req, rc, NULL, 0);
    free(op);
}

static void manage_start(struct chunk_server *srv, struct peer *p,
                         uint16_t opcode, uint64_t req_id,
                         const uint8_t *payload, size_t len)
{
    struct manage_op *op = calloc(1, sizeof(*op));
    int rc;

    if (!op) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, -ENOMEM, NULL, 0);
        return;
    }
    op->opcode = opcode;
    rc = proto_msg_decode(opcode, payload, len, &op->m);
    if (rc < 0) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, rc, NULL, 0);
        free(op);
        return;
    }
    op->job.srv = srv;
    /* The chunk id is the first field of every body (the source's for a
     * clone: the copy waits for earlier operations on it). */
    op->job.chunk_id = op->m.sv.chunk_id;
    op->job.shared = false;
    op->job.run = manage_run;
    op->job.done = manage_done;
    chunk_req_start(&op->req, p, opcode, req_id);
    rc = chunk_job_submit(srv->jobs, &op->job);
    if (rc < 0) {
        chunk_req_finish(&op->req, rc, NULL, 0);
        free(op);
    }
}

void chunk_setversion_handle(struct chunk_server *srv, struct peer *p,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len)
{
    manage_start(srv, p, PROTO_MSG_CHUNK_SETVERSION_REQ, req_id, payload, len);
}

void chunk_truncate_handle(struct chunk_server *srv, struct peer *p,
                           uint64_t req_id, const uint8_t *payload, size_t len)
{
    manage_start(srv, p, PROTO_MSG_CHUNK_TRUNCATE_REQ, req_id, payload, len);
}

void chunk_delete_handle(struct chunk_server *srv, struct peer *p,
                         uint64_t req_id, const uint8_t *payload, size_t len)
{
    manage_start(srv, p, PROTO_MSG_CHUNK_DELETE_REQ, req_id, payload, len);
}

void chunk_clone_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len)
{
    manage_start(srv, p, PROTO_MSG_CHUNK_CLONE_REQ, req_id, payload, len);
}
