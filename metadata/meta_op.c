/* meta_op.c: the codecs of operation records (meta_op.h).
 *
 * Each internal payload has one encoder, used by the daemon that makes the
 * record (meta_srv_*.c), and one decoder, used by the engine that applies
 * it (meta_apply.c and the handlers it calls) and by the fuzz target.  The
 * record envelope codec is what a log entry holds.  Client request bodies
 * are not decoded here: the protocol decoders own them.
 *
 * Everything is built on protocol/'s bounded readers and writers; no
 * database, no logging.
 */
#include "meta_op.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static_assert(META_OP_RECORD_HEADER ==
                  sizeof(uint8_t) + sizeof(uint16_t) + 3 * sizeof(uint64_t),
              "record header: format, opcode, now, session_id, req_id");

static void replicas_put(struct proto_wbuf *w, const struct meta_op_replicas *s)
{
    if (s->n > PROTO_MAX_REPLICAS) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_u32(w, s->n);
    for (uint32_t i = 0; i < s->n; i++)
        proto_put_u32(w, s->servers[i]);
}

static int replicas_get(struct proto_rbuf *r, struct meta_op_replicas *s)
{
    s->n = proto_get_u32(r);
    if (r->err || s->n > PROTO_MAX_REPLICAS)
        return -EPROTO;
    for (uint32_t i = 0; i < s->n; i++)
        s->servers[i] = proto_get_u32(r);
    return r->err ? -EPROTO : 0;
}

/* ---- META_OP_SESSION_EXPIRE: u64 session_id ---------------------------- */

void meta_op_session_expire_encode(struct proto_wbuf *w,
                                   const struct meta_op_session_expire *m)
{
    proto_put_u64(w, m->session_id);
}

int meta_op_session_expire_decode(const uint8_t *p, size_t n,
                                  struct meta_op_session_expire *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    m->session_id = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

/* ---- META_OP_CHUNK_SET: u64 ino, index, chunk_id, old_version,
 * new_version, u32 n, n x u32 server_id ------------------------------------ */

void meta_op_chunk_set_encode(struct proto_wbuf *w,
                              const struct meta_op_chunk_set *m)
{
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->index);
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->old_version);
    proto_put_u64(w, m->new_version);
    replicas_put(w, &m->set);
}

int meta_op_chunk_set_decode(const uint8_t *p, size_t n,
                             struct meta_op_chunk_set *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->index = proto_get_u64(&r);
    m->chunk_id = proto_get_u64(&r);
    m->old_version = proto_get_u64(&r);
    m->new_version = proto_get_u64(&r);
    if (replicas_get(&r, &m->set) < 0)
        return -EPROTO;
    return proto_rbuf_done(&r);
}

/* ---- META_OP_GC_DONE: u64 chunk_id, u32 server_id ----------------------- */

void meta_op_gc_done_encode(struct proto_wbuf *w,
                            const struct meta_op_gc_done *m)
{
    proto_put_u64(w, m->chunk_id);
    proto_put_u32(w, m->server_id);
}

int meta_op_gc_done_decode(const uint8_t *p, size_t n,
                           struct meta_op_gc_done *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->server_id = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

/* ---- META_OP_AUTH_ADD: str name, str caps, 32 bytes secret ------------- */

void meta_op_auth_add_encode(struct proto_wbuf *w,
                             const struct meta_op_auth_add *m)
{
    if (m->name.len == 0 || m->name.len > PROTO_AUTH_NAME_MAX ||
        m->caps.len > PROTO_AUTH_CAPS_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_str(w, m->caps.p, m->caps.len);
    proto_put_raw(w, m->secret, sizeof(m->secret));
}

int meta_op_auth_add_decode(const uint8_t *p, size_t n,
                            struct meta_op_auth_add *m)
{
    struct proto_rbuf r;
    const uint8_t *secret;

    proto_rbuf_init(&r, p, n);
    if (proto_str_get(&r, &m->name) < 0 || proto_str_get(&r, &m->caps) < 0)
        return -EPROTO;
    if (m->name.len == 0 || m->name.len > PROTO_AUTH_NAME_MAX ||
        m->caps.len > PROTO_AUTH_CAPS_MAX)
        return -EPROTO;
    secret = proto_get_raw(&r, sizeof(m->secret));
    if (proto_rbuf_done(&r) < 0)
        return -EPROTO;
    memcpy(m->secret, secret, sizeof(m->secret));
    return 0;
}

/* ---- META_OP_SERVICE_KEY: u32 id, 32 bytes secret ----------------------- */

void meta_op_service_key_encode(struct proto_wbuf *w,
                                const struct meta_op_service_key *m)
{
    proto_put_u32(w, m->id);
    proto_put_raw(w, m->secret, sizeof(m->secret));
}

int meta_op_service_key_decode(const uint8_t *p, size_t n,
                               struct meta_op_service_key *m)
{
    struct proto_rbuf r;
    const uint8_t *secret;

    proto_rbuf_init(&r, p, n);
    m->id = proto_get_u32(&r);
    secret = proto_get_raw(&r, sizeof(m->secret));
    if (proto_rbuf_done(&r) < 0)
        return -EPROTO;
    memcpy(m->secret, secret, sizeof(m->secret));
    return 0;
}

/* ---- META_OP_REPLICA_ADD / _DROP: u64 chunk_id, u64 version,
 * u32 server_id ---------------------------------------------------------- */

void meta_op_replica_encode(struct proto_wbuf *w,
                            const struct meta_op_replica *m)
{
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->server_id);
}

int meta_op_replica_decode(const uint8_t *p, size_t n,
                           struct meta_op_replica *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->server_id = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

/* ---- META_OP_SERVER_STATE: u32 server_id, u32 state --------------------- */

void meta_op_server_state_encode(struct proto_wbuf *w,
                                 const struct meta_op_server_state *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u32(w, m->state);
}

int meta_op_server_state_decode(const uint8_t *p, size_t n,
                                struct meta_op_server_state *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->state = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

/* ---- META_OP_CHUNK_COW: u64 ino, index, src_id, src_version, new_id,
 * new_version, u32 n, n x u32 server_id; optional trailer u64
 * src_new_version, u32 m, m x u32 server_id ------------------------------ */

void meta_op_chunk_cow_encode(struct proto_wbuf *w,
                              const struct meta_op_chunk_cow *m)
{
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->index);
    proto_put_u64(w, m->src_id);
    proto_put_u64(w, m->src_version);
    proto_put_u64(w, m->new_id);
    proto_put_u64(w, m->new_version);
    replicas_put(w, &m->set);
    if (!m->bump)
        return;
    proto_put_u64(w, m->src_new_version);
    replicas_put(w, &m->src);
}

int meta_op_chunk_cow_decode(const uint8_t *p, size_t n,
                             struct meta_op_chunk_cow *m)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    memset(m, 0, sizeof(*m));
    m->ino = proto_get_u64(&r);
    m->index = proto_get_u64(&r);
    m->src_id = proto_get_u64(&r);
    m->src_version = proto_get_u64(&r);
    m->new_id = proto_get_u64(&r);
    m->new_version = proto_get_u64(&r);
    if (replicas_get(&r, &m->set) < 0)
        return -EPROTO;
    if (r.off == r.len)
        return 0;
    m->bump = true;
    m->src_new_version = proto_get_u64(&r);
    if (replicas_get(&r, &m->src) < 0)
        return -EPROTO;
    return proto_rbuf_done(&r);
}

/* ---- The record --------------------------------------------------------- */

/* ---- META_OP_MEMBER: u64 id, str client_addr, str raft_addr ------------- */

#define MEMBER_ADDR_MAX 255

static bool member_ok(const struct meta_op_member *m)
{
    return m->id && m->client_addr.len <= MEMBER_ADDR_MAX &&
           m->raft_addr.len <= MEMBER_ADDR_MAX;
}

void meta_op_member_encode(struct proto_wbuf *w, const struct meta_op_member *m)
{
    if (!member_ok(m)) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_u64(w, m->id);
    proto_put_str(w, m->client_addr.p, m->client_addr.len);
    proto_put_str(w, m->raft_addr.p, m->raft_addr.len);
}

int meta_op_member_decode(const uint8_t *p, size_t n, struct meta_op_member *m)
{
    struct proto_rbuf r;

    proto_rbuf_init(&r, p, n);
    m->id = proto_get_u64(&r);
    if (proto_str_get(&r, &m->client_addr) < 0 ||
        proto_str_get(&r, &m->raft_addr) < 0 || proto_rbuf_done(&r) < 0 ||
        !member_ok(m))
        return -EPROTO;
    return 0;
}

/* ---- META_OP_CHUNK_USAGE: u32 n, n x (u64 chunk_id, u64 bytes) -------- */

void meta_op_chunk_usage_encode(struct proto_wbuf *w,
                                const struct meta_op_chunk_usage *m)
{
    if (m->n == 0 || m->n > META_OP_USAGE_MAX) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_u32(w, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        proto_put_u64(w, m->v[i].chunk_id);
        proto_put_u64(w, m->v[i].bytes);
    }
}

int meta_op_chunk_usage_decode(const uint8_t *p, size_t n,
                               struct meta_op_chunk_usage *m)
{
    struct proto_rbuf r;

    proto_rbuf_init(&r, p, n);
    m->n = proto_get_u32(&r);
    if (r.err || m->n == 0 || m->n > META_OP_USAGE_MAX)
        return -EPROTO;
    for (uint32_t i = 0; i < m->n; i++) {
        m->v[i].chunk_id = proto_get_u64(&r);
        m->v[i].bytes = proto_get_u64(&r);
    }
    return proto_rbuf_done(&r);
}

void meta_op_record_encode(struct proto_wbuf *w, const struct meta_op *op)
{
    proto_put_u8(w, op->format);
    proto_put_u16(w, op->opcode);
    proto_put_i64(w, op->now);
    proto_put_u64(w, op->session_id);
    if (op->format >= 2)
        proto_put_u64(w, op->req_id);
    proto_put_raw(w, op->payload, op->len);
}

int meta_op_record_decode(const uint8_t *p, size_t n, struct meta_op *op)
{
    struct proto_rbuf r;
    proto_rbuf_init(&r, p, n);
    op->format = proto_get_u8(&r);
    op->opcode = proto_get_u16(&r);
    op->now = proto_get_i64(&r);
    op->session_id = proto_get_u64(&r);
    op->req_id = 0;
    if (op->format >= 2)
        op->req_id = proto_get_u64(&r);
    if (r.err || op->format < 1 || op->format > META_OP_FORMAT)
        return -EPROTO;
    op->payload = p + r.off;
    op->len = n - r.off;
    return 0;
}

static size_t entry_size(size_t n)
{
    size_t all = 4 + n;

    return (all + META_OP_ENTRY_ALIGN - 1) / META_OP_ENTRY_ALIGN *
           META_OP_ENTRY_ALIGN;
}

void meta_op_entry_wrap(struct proto_wbuf *w, const uint8_t *rec, size_t n)
{
    static const uint8_t zeros[META_OP_ENTRY_ALIGN];

    if (n > UINT32_MAX) {
        w->err = -EMSGSIZE;
        return;
    }
    proto_put_u32(w, (uint32_t)n);
    proto_put_raw(w, rec, n);
    proto_put_raw(w, zeros, entry_size(n) - 4 - n);
}

int meta_op_entry_unwrap(const uint8_t *p, size_t n, const uint8_t **rec,
                         size_t *len)
{
    struct proto_rbuf r;
    uint32_t reclen;

    proto_rbuf_init(&r, p, n);
    reclen = proto_get_u32(&r);
    if (r.err || n % META_OP_ENTRY_ALIGN || reclen > n - 4 ||
        entry_size(reclen) != n)
        return -EPROTO;
    for (size_t i = 4 + (size_t)reclen; i < n; i++)
        if (p[i])
            return -EPROTO;
    *rec = p + 4;
    *len = reclen;
    return 0;
}
