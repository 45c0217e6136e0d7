/* cl_changes.c: which blocks of one file may differ from another, from
 * metadata alone (docs/vmdisk.md "Incremental diffs"): the chunk maps and
 * copy-on-write lineage metad keeps (IMAGE_CHANGES) and the written-block
 * maps the chunk servers keep (CHUNK_WMAP).  `tessera image diff` and
 * tessera-nbd's tessera:changes-since: metadata context both ask here.
 *
 * For each slot metad lists, the changed blocks are: every block (WHOLE,
 * ZERO), or the union of the written-block maps of the chunks metad names
 * (BLOCKS).  A map is asked of each replica of a chunk in turn; when none
 * answers with one (servers down, a replica of unknown history answers
 * ENODATA, a version moved meanwhile), the slot counts as whole.  So the
 * answer may say too much, never too little.
 *
 * Nothing is cached: each call asks again.  Blocking; any thread.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* OR the written-block map of @loc, from the first replica that has one,
 * into @bits; -ENODATA when none gave one. */
static int wmap_or(struct cl_client *c, const struct proto_chunk_loc *loc,
                   uint8_t *bits)
{
    struct proto_chunk_ref ref = {.chunk_id = loc->chunk_id,
                                  .version = loc->version};
    int rc = -ENODATA;

    for (uint32_t i = 0; i < loc->nreplicas; i++) {
        char addr[CL_ADDR_MAX];
        struct rpc_client *rc_srv;
        struct rpc_reply rep;
        struct proto_bytes_rep b;
        struct proto_wbuf w;

        if (loc->replicas[i].addr.len >= sizeof(addr))
            continue;
        memcpy(addr, loc->replicas[i].addr.p, loc->replicas[i].addr.len);
        addr[loc->replicas[i].addr.len] = '\0';
        if (cl_pool_get(c->pool, addr, &rc_srv) < 0)
            continue;
        proto_wbuf_init(&w);
        proto_chunk_ref_encode(&w, &ref);
        rc = w.err
                 ? w.err
                 : rpc_call_msg(rc_srv, PROTO_MSG_CHUNK_WMAP_REQ, &w, &rep, &b);
        proto_wbuf_free(&w);
        if (rc < 0)
            continue;
        if (b.data.len == PROTO_WMAP_BYTES) {
            for (uint32_t k = 0; k < PROTO_WMAP_BYTES; k++)
                bits[k] |= (uint8_t)b.data.p[k];
            rpc_reply_free(&rep);
            return 0;
        }
        rpc_reply_free(&rep);
        rc = -EPROTO;
    }
    return rc;
}

static void slot_fill(struct cl_changes *ch, uint64_t index)
{
    memset(ch->bits + (index - ch->first) * PROTO_WMAP_BYTES, 0xFF,
           PROTO_WMAP_BYTES);
}

void cl_changes_apply(struct cl_changes *ch,
                      const struct proto_changes_entry *e,
                      cl_wmap_fetch_cb fetch, void *arg)
{
    uint8_t *bits;

    if (e->index < ch->first || e->index - ch->first >= ch->count)
        return; /* metad answers only for what was asked */
    bits = ch->bits + (e->index - ch->first) * PROTO_WMAP_BYTES;
    if (e->kind != PROTO_CHANGES_BLOCKS) {
        slot_fill(ch, e->index);
        return;
    }
    for (uint32_t i = 0; i < e->nchain; i++) {
        if (fetch(arg, &e->chain[i], bits) < 0) {
            slot_fill(ch, e->index);
            return;
        }
    }
}

static int wmap_fetch(void *arg, const struct proto_chunk_loc *loc,
                      uint8_t *bits)
{
    return wmap_or(arg, loc, bits);
}

int cl_changes_get(struct cl_client *c, uint64_t from, uint64_t to,
                   uint64_t first, uint32_t count, struct cl_changes *out)
{
    struct proto_image_changes_req q = {
        .from = from, .to = to, .first = first, .count = count};
    struct proto_image_changes_rep rep_body;
    struct proto_changes_entry *e;
    struct proto_changes_iter it;
    struct rpc_reply rep;
    struct proto_wbuf w;
    int rc;

    memset(out, 0, sizeof(*out));
    if (count == 0 || count > PROTO_LOCATE_MAX)
        return -EINVAL;
    out->bits = calloc(count, PROTO_WMAP_BYTES);
    e = malloc(sizeof(*e));
    if (!out->bits || !e) {
        free(e);
        cl_changes_free(out);
        return -ENOMEM;
    }
    out->first = first;
    out->count = count;
    proto_wbuf_init(&w);
    proto_image_changes_req_encode(&w, &q);
    rc = cl_meta_call(c, PROTO_MSG_IMAGE_CHANGES_REQ, &w, &rep, &rep_body);
    proto_wbuf_free(&w);
    if (rc < 0) {
        free(e);
        cl_changes_free(out);
        return rc;
    }
    out->from_size = rep_body.from_size;
    out->to_size = rep_body.to_size;
    proto_changes_iter_init(&it, &rep_body);
    while (proto_changes_next(&it, e))
        cl_changes_apply(out, e, wmap_fetch, c);
    rpc_reply_free(&rep);
    free(e);
    return 0;
}

void cl_changes_free(struct cl_changes *ch)
{
    if (!ch)
        return;
    free(ch->bits);
    ch->bits = NULL;
    ch->count = 0;
}

bool cl_changes_block(const struct cl_changes *ch, uint64_t block)
{
    const uint64_t per_slot = PROTO_WMAP_BITS;
    uint64_t slot = block / per_slot;

    if (slot < ch->first || slot - ch->first >= ch->count)
        return false;
    uint64_t b = (slot - ch->first) * per_slot + block % per_slot;
    return ch->bits[b / 8] & (1u << (b % 8));
}
