/* proto_server.c: codecs for storage server membership (docs/protocol.md
 * §9: SERVER_REGISTER, SERVER_HEARTBEAT, SERVER_INVENTORY, CHUNK_USAGE) and
 * for the admin STATUS reply (§10).
 *
 * An inventory or usage message carries a fixed-size array, checked by
 * length alone and read by index with proto_inv_entry_get() or
 * proto_usage_entry_get().  A STATUS reply
 * carries key/value string pairs, checked whole by the decoder and then
 * walked with proto_kv_next(); build one by appending pairs with
 * proto_kv_put() to a separate wbuf and encoding with that buffer as @raw.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_server_register_req_encode(struct proto_wbuf *w,
                                      const struct proto_server_register_req *m)
{
    proto_put_raw(w, m->uuid, sizeof(m->uuid));
    proto_put_str(w, m->addr.p, m->addr.len);
    proto_put_u64(w, m->capacity);
    proto_put_u64(w, m->free);
}

int proto_server_register_req_decode(const uint8_t *p, size_t n,
                                     struct proto_server_register_req *m)
{
    struct proto_rbuf r;
    const uint8_t *uuid;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    uuid = proto_get_raw(&r, sizeof(m->uuid));
    if (uuid)
        memcpy(m->uuid, uuid, sizeof(m->uuid));
    proto_str_get(&r, &m->addr);
    m->capacity = proto_get_u64(&r);
    m->free = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_server_register_rep_encode(struct proto_wbuf *w,
                                      const struct proto_server_register_rep *m)
{
    proto_put_u32(w, m->server_id);
}

int proto_server_register_rep_decode(const uint8_t *p, size_t n,
                                     struct proto_server_register_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_server_heartbeat_req_encode(
    struct proto_wbuf *w, const struct proto_server_heartbeat_req *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u64(w, m->capacity);
    proto_put_u64(w, m->free);
    proto_put_u32(w, m->chunks);
    proto_put_u64(w, m->used);
}

int proto_server_heartbeat_req_decode(const uint8_t *p, size_t n,
                                      struct proto_server_heartbeat_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->capacity = proto_get_u64(&r);
    m->free = proto_get_u64(&r);
    m->chunks = proto_get_u32(&r);
    m->used = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

/* Entry @i of @count entries of @size bytes in @raw, as a reader in *r;
 * false past the entries.  The decoder checked @raw's length against
 * @count, so an entry below @count lies inside it. */
static bool entry_at(const struct proto_str *raw, uint32_t count, uint32_t i,
                     size_t size, struct proto_rbuf *r)
{
    if (i >= count || (uint64_t)(i + 1) * size > raw->len)
        return false;
    proto_rbuf_init(r, raw->p + (size_t)i * size, size);
    return true;
}

/* The bytes after the fixed fields of a message that carries an array. */
static void rest_get(struct proto_rbuf *r, size_t n, struct proto_str *raw)
{
    raw->len = (uint32_t)(n - r->off);
    raw->p = (const char *)proto_get_raw(r, raw->len);
}

static int inventory_check(const struct proto_server_inventory_req *m)
{
    if (m->last > 1 || m->count > PROTO_INV_MAX)
        return -EPROTO;
    if (m->raw.len != (uint64_t)m->count * PROTO_INV_ENTRY_SIZE)
        return -EPROTO;
    return 0;
}

void proto_server_inventory_req_encode(
    struct proto_wbuf *w, const struct proto_server_inventory_req *m)
{
    if (!proto_wbuf_check(w, inventory_check(m)))
        return;
    proto_put_u32(w, m->server_id);
    proto_put_u8(w, m->last);
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_server_inventory_req_decode(const uint8_t *p, size_t n,
                                      struct proto_server_inventory_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->last = proto_get_u8(&r);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    rest_get(&r, n, &m->raw);
    return proto_rbuf_finish(&r, inventory_check(m));
}

/* An @i past the entries reads as all zeros rather than past the end. */
void proto_inv_entry_get(const struct proto_server_inventory_req *req,
                         uint32_t i, struct proto_inv_entry *e)
{
    struct proto_rbuf r;

    memset(e, 0, sizeof(*e));
    if (!entry_at(&req->raw, req->count, i, PROTO_INV_ENTRY_SIZE, &r))
        return;
    e->chunk_id = proto_get_u64(&r);
    e->version = proto_get_u64(&r);
    e->length = proto_get_u64(&r);
}

static int usage_check(const struct proto_chunk_usage_req *m)
{
    if (m->count > PROTO_USAGE_MAX ||
        m->raw.len != (uint64_t)m->count * PROTO_USAGE_ENTRY_SIZE)
        return -EPROTO;
    return 0;
}

void proto_chunk_usage_req_encode(struct proto_wbuf *w,
                                  const struct proto_chunk_usage_req *m)
{
    if (!proto_wbuf_check(w, usage_check(m)))
        return;
    proto_put_u32(w, m->server_id);
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_chunk_usage_req_decode(const uint8_t *p, size_t n,
                                 struct proto_chunk_usage_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    rest_get(&r, n, &m->raw);
    return proto_rbuf_finish(&r, usage_check(m));
}

/* As proto_inv_entry_get(): an @i past the entries reads as zeros. */
void proto_usage_entry_get(const struct proto_chunk_usage_req *req, uint32_t i,
                           struct proto_usage_entry *e)
{
    struct proto_rbuf r;

    memset(e, 0, sizeof(*e));
    if (!entry_at(&req->raw, req->count, i, PROTO_USAGE_ENTRY_SIZE, &r))
        return;
    e->chunk_id = proto_get_u64(&r);
    e->bytes = proto_get_u64(&r);
}

static int status_check(const struct proto_status_rep *m)
{
    struct proto_rbuf r;
    struct proto_str k, v;

    proto_rbuf_init(&r, m->raw.p, m->raw.len);
    for (uint32_t i = 0; i < m->count; i++)
        if (proto_str_get(&r, &k) || proto_str_get(&r, &v))
            return -EPROTO;
    return proto_rbuf_done(&r);
}

void proto_status_rep_encode(struct proto_wbuf *w,
                             const struct proto_status_rep *m)
{
    if (!proto_wbuf_check(w, status_check(m)))
        return;
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_status_rep_decode(const uint8_t *p, size_t n,
                            struct proto_status_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    m->raw.len = (uint32_t)(n - r.off);
    m->raw.p = (const char *)proto_get_raw(&r, m->raw.len);
    return proto_rbuf_finish(&r, status_check(m));
}

/* @key and @value are borrowed NUL-terminated strings. */
void proto_kv_put(struct proto_wbuf *w, const char *key, const char *value)
{
    proto_put_str(w, key, strlen(key));
    proto_put_str(w, value, strlen(value));
}

void proto_kv_iter_init(struct proto_kv_iter *it,
                        const struct proto_status_rep *rep)
{
    proto_rbuf_init(&it->r, rep->raw.p, rep->raw.len);
    it->left = rep->count;
}

bool proto_kv_next(struct proto_kv_iter *it, struct proto_str *key,
                   struct proto_str *value)
{
    if (it->left == 0 || it->r.err)
        return false;
    it->left--;
    proto_str_get(&it->r, key);
    proto_str_get(&it->r, value);
    return it->r.err == 0;
}
