/* chunk_wmap_req.c: the per-block facts of a chunk a peer may ask for:
 * CHUNK_WMAP_REQ -> CHUNK_WMAP_REP, the written-block map (docs/protocol.md
 * §12.8), CHUNK_DATAMAP_REQ -> CHUNK_DATAMAP_REP, the blocks that may hold
 * data (§12.9), which a server copying the chunk reads alone, and
 * CHUNK_CRCS_REQ -> CHUNK_CRCS_REP, the CRC32C of every block (§12.10),
 * from which `tessera image diff` and `apply-diff` tell an image's
 * contents apart without reading them.
 *
 * Decoded, run as a shared job on the chunk after every earlier write to
 * it, answered with the map's bytes (PROTO_WMAP_BYTES, or PROTO_CRCS_BYTES
 * for the checksums).  ENODATA when this replica does not know the
 * chunk's history (the written-block map only: chunk_wmap.c), EOLDVER
 * when its version is not the one asked for, ENOENT when it does not hold
 * the chunk, ECHECKSUM when it is marked bad: the asker then tries
 * another replica, takes the whole chunk as changed (WMAP), fails its
 * copy (DATAMAP) or its check (CRCS).
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>

/* The u32 length in front of a bytes field. */
#define REP_HEAD 4u

/* One row per message: how its answer is made and how long it is. */
static const struct {
    uint16_t opcode;
    int (*get)(struct chunk_store *s, uint64_t id, uint64_t ver, uint8_t *out);
    uint32_t bytes;
} kinds[] = {
    {PROTO_MSG_CHUNK_WMAP_REQ, chunk_store_wmap, PROTO_WMAP_BYTES},
    {PROTO_MSG_CHUNK_DATAMAP_REQ, chunk_store_datamap, PROTO_WMAP_BYTES},
    {PROTO_MSG_CHUNK_CRCS_REQ, chunk_store_crcs, PROTO_CRCS_BYTES},
};

struct map_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    struct proto_chunk_ref m;
    size_t kind;    /* its row of kinds[] */
    uint8_t body[]; /* REP_HEAD + kinds[kind].bytes */
};

static int map_run(struct chunk_job *j)
{
    struct map_op *op = (struct map_op *)j;

    return kinds[op->kind].get(j->srv->store, op->m.chunk_id, op->m.version,
                               op->body + REP_HEAD);
}

static void map_done(struct chunk_job *j, int rc)
{
    struct map_op *op = (struct map_op *)j;
    uint32_t n = kinds[op->kind].bytes;

    for (int i = 0; i < 4; i++)
        op->body[i] = (uint8_t)(n >> (24 - 8 * i));
    chunk_req_finish(&op->req, rc, op->body, rc == 0 ? REP_HEAD + n : 0);
    free(op);
}

static void map_handle(struct chunk_server *srv, struct peer *p,
                       uint16_t opcode, uint64_t req_id, const uint8_t *payload,
                       size_t len)
{
    size_t k = 0;
    struct map_op *op;
    int rc;

    while (kinds[k].opcode != opcode)
        k++; /* the handlers below pass only the opcodes of kinds[] */
    op = calloc(1, sizeof(*op) + REP_HEAD + kinds[k].bytes);
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
    op->kind = k;
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

void chunk_crcs_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len)
{
    map_handle(srv, p, PROTO_MSG_CHUNK_CRCS_REQ, req_id, payload, len);
}
