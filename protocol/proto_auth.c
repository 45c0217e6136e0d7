/* proto_auth.c: codecs for authentication (docs/protocol.md §3.2, §3.5,
 * §3.6) and for the identity admin messages (§10.2).
 *
 * These functions only check that each payload is well formed: exact
 * length, a known method, an identity name of 1..PROTO_AUTH_NAME_MAX
 * bytes, blobs within their bounds.  What a proof or a ticket is worth is
 * decided by common/auth.c and the daemons.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

static int name_check(const struct proto_str *name, bool may_be_empty)
{
    if (name->len == 0)
        return may_be_empty ? 0 : -EPROTO;
    if (name->len > PROTO_AUTH_NAME_MAX)
        return -EPROTO;
    /* Names end up in key files and logs: printable, no blanks. */
    for (uint32_t i = 0; i < name->len; i++)
        if (name->p[i] <= ' ' || name->p[i] > '~')
            return -EPROTO;
    return 0;
}

static void get_fixed(struct proto_rbuf *r, uint8_t *out, size_t n)
{
    const uint8_t *p = proto_get_raw(r, n);
    if (p)
        memcpy(out, p, n);
}

/* ---- AUTH (§3.2) ----------------------------------------------------- */

static int auth_req_check(const struct proto_auth_req *m)
{
    if (m->method != PROTO_AUTH_KEY && m->method != PROTO_AUTH_TICKET)
        return -EPROTO;
    if (name_check(&m->name, false) < 0)
        return -EPROTO;
    if (m->ticket.len > PROTO_AUTH_TICKET_MAX)
        return -EPROTO;
    if ((m->method == PROTO_AUTH_KEY) != (m->ticket.len == 0))
        return -EPROTO;
    return 0;
}

void proto_auth_req_encode(struct proto_wbuf *w, const struct proto_auth_req *m)
{
    if (!proto_wbuf_check(w, auth_req_check(m)))
        return;
    proto_put_u8(w, m->method);
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_bytes(w, m->ticket.p, m->ticket.len);
    proto_put_raw(w, m->nonce, sizeof(m->nonce));
    proto_put_raw(w, m->proof, sizeof(m->proof));
}

int proto_auth_req_decode(const uint8_t *p, size_t n, struct proto_auth_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->method = proto_get_u8(&r);
    proto_str_get(&r, &m->name);
    proto_bytes_get(&r, &m->ticket);
    get_fixed(&r, m->nonce, sizeof(m->nonce));
    get_fixed(&r, m->proof, sizeof(m->proof));
    if (r.err)
        return -EPROTO;
    return proto_rbuf_finish(&r, auth_req_check(m));
}

void proto_auth_rep_encode(struct proto_wbuf *w, const struct proto_auth_rep *m)
{
    proto_put_raw(w, m->proof, sizeof(m->proof));
}

int proto_auth_rep_decode(const uint8_t *p, size_t n, struct proto_auth_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    get_fixed(&r, m->proof, sizeof(m->proof));
    return proto_rbuf_done(&r);
}

/* ---- AUTH_TICKET (§3.5) ---------------------------------------------- */

static int ticket_rep_check(const struct proto_auth_ticket_rep *m)
{
    if (m->ticket.len == 0 || m->ticket.len > PROTO_AUTH_TICKET_MAX)
        return -EPROTO;
    if (m->sealed_key.len == 0 || m->sealed_key.len > PROTO_AUTH_SEALED_MAX)
        return -EPROTO;
    return 0;
}

void proto_auth_ticket_rep_encode(struct proto_wbuf *w,
                                  const struct proto_auth_ticket_rep *m)
{
    if (!proto_wbuf_check(w, ticket_rep_check(m)))
        return;
    proto_put_u64(w, m->expires_ms);
    proto_put_bytes(w, m->ticket.p, m->ticket.len);
    proto_put_bytes(w, m->sealed_key.p, m->sealed_key.len);
}

int proto_auth_ticket_rep_decode(const uint8_t *p, size_t n,
                                 struct proto_auth_ticket_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->expires_ms = proto_get_u64(&r);
    proto_bytes_get(&r, &m->ticket);
    proto_bytes_get(&r, &m->sealed_key);
    if (r.err)
        return -EPROTO;
    return proto_rbuf_finish(&r, ticket_rep_check(m));
}

/* ---- AUTH_SERVICE (§3.6) --------------------------------------------- */

static int service_rep_check(const struct proto_auth_service_rep *m)
{
    if (m->count == 0 || m->count > PROTO_AUTH_SERVICE_MAX)
        return -EPROTO;
    for (uint32_t i = 0; i < m->count; i++)
        if (m->keys[i].sealed.len == 0 ||
            m->keys[i].sealed.len > PROTO_AUTH_SEALED_MAX)
            return -EPROTO;
    return 0;
}

void proto_auth_service_rep_encode(struct proto_wbuf *w,
                                   const struct proto_auth_service_rep *m)
{
    if (!proto_wbuf_check(w, service_rep_check(m)))
        return;
    proto_put_u32(w, m->count);
    for (uint32_t i = 0; i < m->count; i++) {
        proto_put_u32(w, m->keys[i].id);
        proto_put_bytes(w, m->keys[i].sealed.p, m->keys[i].sealed.len);
    }
}

int proto_auth_service_rep_decode(const uint8_t *p, size_t n,
                                  struct proto_auth_service_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->count = proto_get_u32(&r);
    if (m->count == 0 || m->count > PROTO_AUTH_SERVICE_MAX)
        return -EPROTO;
    for (uint32_t i = 0; i < m->count && !r.err; i++) {
        m->keys[i].id = proto_get_u32(&r);
        proto_bytes_get(&r, &m->keys[i].sealed);
    }
    if (r.err)
        return -EPROTO;
    return proto_rbuf_finish(&r, service_rep_check(m));
}

/* ---- Identity admin (§10.2) ------------------------------------------ */

static int set_req_check(const struct proto_auth_set_req *m)
{
    if (name_check(&m->name, false) < 0)
        return -EPROTO;
    if (m->caps.len > PROTO_AUTH_CAPS_MAX)
        return -EPROTO;
    if (m->flags & ~PROTO_AUTH_ADD_GET)
        return -EPROTO;
    return 0;
}

void proto_auth_set_req_encode(struct proto_wbuf *w,
                               const struct proto_auth_set_req *m)
{
    if (!proto_wbuf_check(w, set_req_check(m)))
        return;
    proto_put_str(w, m->name.p, m->name.len);
    proto_put_str(w, m->caps.p, m->caps.len);
    proto_put_u32(w, m->flags);
}

int proto_auth_set_req_decode(const uint8_t *p, size_t n,
                              struct proto_auth_set_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_str_get(&r, &m->name);
    proto_str_get(&r, &m->caps);
    m->flags = proto_get_u32(&r);
    if (r.err)
        return -EPROTO;
    return proto_rbuf_finish(&r, set_req_check(m));
}

void proto_auth_name_req_encode(struct proto_wbuf *w,
                                const struct proto_auth_name_req *m)
{
    if (!proto_wbuf_check(w, name_check(&m->name, true)))
        return;
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_auth_name_req_decode(const uint8_t *p, size_t n,
                               struct proto_auth_name_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_str_get(&r, &m->name);
    if (r.err)
        return -EPROTO;
    return proto_rbuf_finish(&r, name_check(&m->name, true));
}
