/* proto_hello.c: codecs for the connection and session messages
 * (docs/protocol.md §3 and §6): the empty body, HELLO, PING and the
 * SESSION_* family.
 *
 * Version negotiation, the one-HELLO rule and session binding are the
 * callers' business; these functions only check that each payload is
 * well formed: exact length, known role, zero feature and flag words.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_empty_encode(struct proto_wbuf *w, const struct proto_empty *m)
{
    (void)w;
    (void)m;
}

int proto_empty_decode(const uint8_t *p, size_t n, struct proto_empty *m)
{
    (void)p;
    memset(m, 0, sizeof(*m));
    return n == 0 ? 0 : -EPROTO;
}

/* §3.1: a version range must be non-empty and start at 1 or later; the
 * only feature bit is SECURE, which needs an authentication method
 * (§3.7). */
static int hello_req_check(const struct proto_hello_req *m)
{
    if (m->min_version == 0 || m->min_version > m->max_version)
        return -EPROTO;
    if (m->role < PROTO_ROLE_CLIENT || m->role > PROTO_ROLE_METAD)
        return -EPROTO;
    if (m->features & ~PROTO_FEATURES_KNOWN)
        return -EPROTO;
    if ((m->features & PROTO_FEATURE_SECURE) && m->auth_methods == 0)
        return -EPROTO;
    return 0;
}

void proto_hello_req_encode(struct proto_wbuf *w,
                            const struct proto_hello_req *m)
{
    if (!proto_wbuf_check(w, hello_req_check(m)))
        return;
    proto_put_u16(w, m->min_version);
    proto_put_u16(w, m->max_version);
    proto_put_u8(w, m->role);
    proto_put_u32(w, m->features);
    proto_put_u32(w, m->auth_methods);
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_hello_req_decode(const uint8_t *p, size_t n,
                           struct proto_hello_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->min_version = proto_get_u16(&r);
    m->max_version = proto_get_u16(&r);
    m->role = proto_get_u8(&r);
    m->features = proto_get_u32(&r);
    m->auth_methods = proto_get_u32(&r);
    proto_str_get(&r, &m->name);
    return proto_rbuf_finish(&r, hello_req_check(m));
}

/* §3.1: a reply names one version and known features; §3.2: one known
 * authentication method; §3.7: SECURE only with one. */
static int hello_rep_check(const struct proto_hello_rep *m)
{
    if (m->version == 0 || (m->features & ~PROTO_FEATURES_KNOWN))
        return -EPROTO;
    if (m->auth_method > PROTO_AUTH_TICKET)
        return -EPROTO;
    if ((m->features & PROTO_FEATURE_SECURE) &&
        m->auth_method == PROTO_AUTH_NONE)
        return -EPROTO;
    return 0;
}

void proto_hello_rep_encode(struct proto_wbuf *w,
                            const struct proto_hello_rep *m)
{
    if (!proto_wbuf_check(w, hello_rep_check(m)))
        return;
    proto_put_u16(w, m->version);
    proto_put_u32(w, m->features);
    proto_put_u32(w, m->auth_method);
    proto_put_u64(w, m->instance_id);
    proto_put_str(w, m->name.p, m->name.len);
    if (m->auth_method != PROTO_AUTH_NONE)
        proto_put_raw(w, m->nonce, sizeof(m->nonce));
}

int proto_hello_rep_decode(const uint8_t *p, size_t n,
                           struct proto_hello_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->version = proto_get_u16(&r);
    m->features = proto_get_u32(&r);
    m->auth_method = proto_get_u32(&r);
    m->instance_id = proto_get_u64(&r);
    proto_str_get(&r, &m->name);
    if (m->auth_method != PROTO_AUTH_NONE) {
        const uint8_t *nonce = proto_get_raw(&r, sizeof(m->nonce));
        if (nonce)
            memcpy(m->nonce, nonce, sizeof(m->nonce));
    }
    return proto_rbuf_finish(&r, hello_rep_check(m));
}

void proto_ping_encode(struct proto_wbuf *w, const struct proto_ping *m)
{
    proto_put_u64(w, m->cookie);
}

int proto_ping_decode(const uint8_t *p, size_t n, struct proto_ping *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->cookie = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_session_open_req_encode(struct proto_wbuf *w,
                                   const struct proto_session_open_req *m)
{
    if (!proto_wbuf_check(w, m->flags ? -EINVAL : 0))
        return;
    proto_put_u32(w, m->lease_ms);
    proto_put_u32(w, m->flags);
    proto_put_str(w, m->client_name.p, m->client_name.len);
    proto_put_str(w, m->host.p, m->host.len);
}

int proto_session_open_req_decode(const uint8_t *p, size_t n,
                                  struct proto_session_open_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->lease_ms = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    proto_str_get(&r, &m->client_name);
    proto_str_get(&r, &m->host);
    return proto_rbuf_finish(&r, m->flags ? -EPROTO : 0);
}

void proto_session_open_rep_encode(struct proto_wbuf *w,
                                   const struct proto_session_open_rep *m)
{
    proto_put_u64(w, m->session_id);
    proto_put_u32(w, m->lease_ms);
}

int proto_session_open_rep_decode(const uint8_t *p, size_t n,
                                  struct proto_session_open_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->session_id = proto_get_u64(&r);
    m->lease_ms = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_session_id_encode(struct proto_wbuf *w,
                             const struct proto_session_id *m)
{
    proto_put_u64(w, m->session_id);
}

int proto_session_id_decode(const uint8_t *p, size_t n,
                            struct proto_session_id *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->session_id = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_session_renew_rep_encode(struct proto_wbuf *w,
                                    const struct proto_session_renew_rep *m)
{
    proto_put_u32(w, m->lease_ms);
}

int proto_session_renew_rep_decode(const uint8_t *p, size_t n,
                                   struct proto_session_renew_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->lease_ms = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}
