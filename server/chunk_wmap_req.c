/* chunk_wmap_req.c: the two block maps of a chunk a peer may ask for:
 * CHUNK_WMAP_REQ -> CHUNK_WMAP_REP, the written-block map (docs/protocol.md
 * §12.8), and CHUNK_DATAMAP_REQ -> CHUNK_DATAMAP_REP, the blocks that may
 * hold data (§12.9), which a server copying the chunk reads alone.
 *
 * Decoded, run as a shared job on the chunk after every earlier write to
 * it, answered with the PROTO_WMAP_BYTES bytes of the map.  ENODATA when
 * this replica does not know the chunk's history (the written-block map
 * only: chunk_wmap.c), EOLDVER when its version is not the one asked for,
 * ENOENT when it does not hold the chunk, ECHECKSUM when it is marked bad:
 * the asker then tries another replica, takes the whole chunk as changed
 * (WMAP), or fails its copy (DATAMAP).
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>

/* The u32 length in front of a bytes field. */
#define REP_HEAD 4u

struct map_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    struct proto_chunk_ref m;
    bool data; /* the data map, not the written-block map */
    uint8_t body[REP_HEAD + PROTO_WMAP_BYTES];
};

static int map_run(struct chunk_job *j)
{
    struct map_op *op = (struct map_op *)j;

    return (op->data ? chunk_store_datamap : chunk_store_wmap)(
        j->srv->store, op->m.chunk_id, op->m.version, op->body + REP_HEAD);
}

static void map_done(struct chunk_job *j, int rc)
{
    struct map_op *op = (struct map_op *)j;

    for (int i = 0; i < 4; i++)
        op->body[i] = (uint8_t)(PROTO_WMAP_BYTES >> (24 - 8 * i));
    chunk_req_finish(&op->req, rc, op->body, rc == 0 ? sizeof(op->body) : 0);
    free(op);
}

static void map_handle(struct chunk_server *srv, struct peer *p,
                       uint16_t opcode, uint64_t req_id, const uint8_t *payload,
                       size_t len)
{
    struct map_op *op = calloc(1, sizeof(*op));
    int rc;

    if (!op) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, -ENOMEM, NULL, 0);
        return;
    }
    rc = proto_chunk_ref_decode(payload, len, &op->m);
    if (rc < 0) {
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, rc, NULL, 0);
        free(op);
        return;
    }
    op->data = opcode == PROTO_MSG_CHUNK_DATAMAP_REQ;
    op->job.srv = srv;
    op->job.chunk_id = op->m.chunk_id;
    op->job.shared = true;
    op->job.run = map_run;
    op->job.done = map_done;
    chunk_req_start(&op->req, p, opcode, req_id);
    rc = chunk_job_submit(srv->jobs, &op->job);
    if (rc < 0) {
        chunk_req_finish(&op->req, rc, NULL, 0);
        free(op);
    }
}

void chunk_wmap_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len)
{
    map_handle(srv, p, PROTO_MSG_CHUNK_WMAP_REQ, req_id, payload, len);
}

void chunk_datamap_handle(struct chunk_server *srv, struct peer *p,
                          uint64_t req_id, const uint8_t *payload, size_t len)
{
    map_handle(srv, p, PROTO_MSG_CHUNK_DATAMAP_REQ, req_id, payload, len);
}
