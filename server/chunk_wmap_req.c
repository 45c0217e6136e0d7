/* chunk_wmap_req.c: CHUNK_WMAP_REQ -> CHUNK_WMAP_REP (bytes): the
 * written-block map of one chunk (docs/protocol.md §12.8).
 *
 * Decoded, run as a shared job on the chunk after every earlier write to
 * it, answered with the PROTO_WMAP_BYTES bytes of the map.  ENODATA when
 * this replica does not know the chunk's history (chunk_wmap.c), EOLDVER
 * when its version is not the one asked for, ENOENT when it does not hold
 * the chunk: the client then asks another replica, or takes the whole
 * chunk as changed.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>

/* The u32 length in front of a bytes field. */
#define REP_HEAD 4u

struct wmap_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    struct proto_chunk_ref m;
    uint8_t body[REP_HEAD + PROTO_WMAP_BYTES];
};

static int wmap_run(struct chunk_job *j)
{
    struct wmap_op *op = (struct wmap_op *)j;

    return chunk_store_wmap(j->srv->store, op->m.chunk_id, op->m.version,
                            op->body + REP_HEAD);
}

static void wmap_done(struct chunk_job *j, int rc)
{
    struct wmap_op *op = (struct wmap_op *)j;

    for (int i = 0; i < 4; i++)
        op->body[i] = (uint8_t)(PROTO_WMAP_BYTES >> (24 - 8 * i));
    chunk_req_finish(&op->req, rc, op->body, rc == 0 ? sizeof(op->body) : 0);
    free(op);
}

void chunk_wmap_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct wmap_op *op = calloc(1, sizeof(*op));
    int rc;

    if (!op) {
        chunk_reply(p, PROTO_MSG_CHUNK_WMAP_REP, req_id, -ENOMEM, NULL, 0);
        return;
    }
    rc = proto_chunk_ref_decode(payload, len, &op->m);
    if (rc < 0) {
        chunk_reply(p, PROTO_MSG_CHUNK_WMAP_REP, req_id, rc, NULL, 0);
        free(op);
        return;
    }
    op->job.srv = srv;
    op->job.chunk_id = op->m.chunk_id;
    op->job.shared = true;
    op->job.run = wmap_run;
    op->job.done = wmap_done;
    chunk_req_start(&op->req, p, PROTO_MSG_CHUNK_WMAP_REQ, req_id);
    rc = chunk_job_submit(srv->jobs, &op->job);
    if (rc < 0) {
        chunk_req_finish(&op->req, rc, NULL, 0);
        free(op);
    }
}
