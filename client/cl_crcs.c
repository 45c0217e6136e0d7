/* cl_crcs.c: the CRC32C of every 4 KiB block of one chunk slot of a file,
 * as the storage servers' checksums record what the blocks read as
 * (CHUNK_CRCS, docs/protocol.md §12.10), without reading the blocks.
 * `tessera image diff` and `apply-diff` make an image's content digest of
 * them (docs/vmdisk.md, "Incremental diffs"): two images whose slots give
 * the same checksums hold the same bytes, short of a CRC32C collision,
 * and that costs a 1,024th of reading them.
 *
 * A hole reads as zeros: every block gets the CRC32C of a zero block, as
 * a server gives for a block never written, so a slot that is a hole in
 * one cluster and an allocated chunk of zeros in another give the same.
 * The replicas are asked in turn; when none answers (the location cached
 * is stale: EOLDVER, ENOENT), the slot is located again once.  Blocking;
 * any thread.
 */
#include "cl_internal.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"

/* Ask the replicas of @ch in turn; 0 once one gave the checksums. */
static int crcs_ask(struct cl_client *c, const struct cl_chunk *ch,
                    uint8_t *out)
{
    struct proto_chunk_ref ref = {.chunk_id = ch->chunk_id,
                                  .version = ch->version};
    int rc = -EIO;

    for (uint32_t i = 0; i < ch->nreplicas; i++) {
        struct rpc_client *srv;
        struct rpc_reply rep;
        struct proto_bytes_rep b;
        struct proto_wbuf w;

        if ((rc = cl_pool_get(c->pool, ch->addr[i], &srv)) < 0)
            continue;
        proto_wbuf_init(&w);
        proto_chunk_ref_encode(&w, &ref);
        rc = w.err ? w.err
                   : rpc_call_msg(srv, PROTO_MSG_CHUNK_CRCS_REQ, &w, &rep, &b);
        proto_wbuf_free(&w);
        if (rc < 0)
            continue;
        if (b.data.len == PROTO_CRCS_BYTES)
            memcpy(out, b.data.p, PROTO_CRCS_BYTES);
        rpc_reply_free(&rep);
        if (b.data.len == PROTO_CRCS_BYTES)
            return 0;
        rc = -EPROTO;
    }
    return rc;
}

int cl_file_crcs(struct cl_client *c, uint64_t ino, uint64_t index,
                 uint8_t *out)
{
    static const uint8_t zero[PROTO_WMAP_BLOCK];
    struct cl_chunk ch;
    int rc = -EIO;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            cl_loc_invalidate(c->loc, ino, index);
        if ((rc = cl_file_locate(c, ino, index, PROTO_LOCATE_MAX, &ch)) < 0)
            return rc;
        if (ch.chunk_id == 0) {
            uint32_t crc = crc32c(0, zero, sizeof(zero));
            for (uint32_t b = 0; b < PROTO_WMAP_BITS; b++)
                for (int i = 0; i < 4; i++)
                    out[4 * b + i] = (uint8_t)(crc >> (24 - 8 * i));
            return 0;
        }
        if ((rc = crcs_ask(c, &ch, out)) == 0)
            return 0;
    }
    return rc;
}
