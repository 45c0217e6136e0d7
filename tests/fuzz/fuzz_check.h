/* fuzz_check.h: what the fuzz targets assert about one decoded payload.
 *
 * For a payload of a given opcode: decode it into a buffer big and aligned
 * enough for any body; a failure must be -EPROTO.  On success, walk every
 * array the body carries to its end (the iterators must yield exactly the
 * announced count), then re-encode the value: the wire format has one
 * encoding per value, so the bytes must come back identical.  Any
 * violation aborts, which the fuzzer reports as a crash.
 */
#ifndef TESSERA_FUZZ_CHECK_H
#define TESSERA_FUZZ_CHECK_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

/* Room for any body named in proto_msgs.def. */
union fuzz_body {
    max_align_t align;
#define X(name, id, body) struct proto_##body m_##name;
#include "proto_msgs.def"
#undef X
};

typedef void (*fuzz_encode_fn)(struct proto_wbuf *w, const void *m);

#define X(name, id, body)                                                      \
    static void fuzz_enc_##name(struct proto_wbuf *w, const void *m)           \
    {                                                                          \
        proto_##body##_encode(w, m);                                           \
    }
#include "proto_msgs.def"
#undef X

static const struct {
    uint16_t id;
    fuzz_encode_fn encode;
} fuzz_msgs[] = {
#define X(name, id, body) {id, fuzz_enc_##name},
#include "proto_msgs.def"
#undef X
};

#define FUZZ_NMSGS (sizeof(fuzz_msgs) / sizeof(fuzz_msgs[0]))

static void fuzz_require(int cond)
{
    if (!cond)
        abort();
}

static void fuzz_walk(uint16_t opcode, const union fuzz_body *u)
{
    uint32_t n = 0;

    switch (opcode) {
    case PROTO_MSG_READDIR_REP: {
        struct proto_dirent_iter it;
        struct proto_dirent d;
        proto_dirent_iter_init(&it, &u->m_READDIR_REP);
        while (proto_dirent_next(&it, &d)) {
            fuzz_require(d.cookie != 0 && d.name.len > 0);
            fuzz_require(d.name.len <= PROTO_NAME_MAX);
            n++;
        }
        fuzz_require(n == u->m_READDIR_REP.count);
        break;
    }
    case PROTO_MSG_CHUNK_LOCATE_REP:
    case PROTO_MSG_CHUNK_WRITE_BEGIN_REP: {
        struct proto_chunk_loc_iter it;
        struct proto_chunk_loc c;
        proto_chunk_loc_iter_init(&it, &u->m_CHUNK_LOCATE_REP);
        while (proto_chunk_loc_next(&it, &c)) {
            fuzz_require(c.nreplicas <= PROTO_MAX_REPLICAS);
            n++;
        }
        fuzz_require(n == u->m_CHUNK_LOCATE_REP.count);
        break;
    }
    case PROTO_MSG_STATUS_REP:
    case PROTO_MSG_ADMIN_ACTION_REP: {
        struct proto_kv_iter it;
        struct proto_str k, v;
        proto_kv_iter_init(&it, &u->m_STATUS_REP);
        while (proto_kv_next(&it, &k, &v))
            n++;
        fuzz_require(n == u->m_STATUS_REP.count);
        break;
    }
    case PROTO_MSG_SERVER_INVENTORY_REQ: {
        const struct proto_server_inventory_req *r = &u->m_SERVER_INVENTORY_REQ;
        struct proto_inv_entry e;
        fuzz_require(r->raw.len == r->count * PROTO_INV_ENTRY_SIZE);
        for (uint32_t i = 0; i < r->count; i++)
            proto_inv_entry_get(r, i, &e);
        break;
    }
    case PROTO_MSG_CHUNK_USAGE_REQ: {
        const struct proto_chunk_usage_req *r = &u->m_CHUNK_USAGE_REQ;
        struct proto_usage_entry e;
        fuzz_require(r->count <= PROTO_USAGE_MAX);
        fuzz_require(r->raw.len == r->count * PROTO_USAGE_ENTRY_SIZE);
        for (uint32_t i = 0; i < r->count; i++)
            proto_usage_entry_get(r, i, &e);
        break;
    }
    default:
        break;
    }
}

/* Decode @n bytes at @p as @opcode and check the properties above. */
static void fuzz_check_payload(uint16_t opcode, const uint8_t *p, size_t n)
{
    static union fuzz_body u;
    struct proto_wbuf w;
    int rc;

    memset(&u, 0xa5, sizeof(u));
    rc = proto_msg_decode(opcode, p, n, &u);
    if (rc) {
        fuzz_require(rc == -EPROTO);
        return;
    }
    fuzz_walk(opcode, &u);
    for (size_t i = 0; i < FUZZ_NMSGS; i++) {
        if (fuzz_msgs[i].id != opcode)
            continue;
        proto_wbuf_init(&w);
        fuzz_msgs[i].encode(&w, &u);
        fuzz_require(w.err == 0);
        fuzz_require(w.len == n);
        fuzz_require(n == 0 || memcmp(w.p, p, n) == 0);
        proto_wbuf_free(&w);
        return;
    }
    abort(); /* decoded an opcode the table does not know */
}

#endif
