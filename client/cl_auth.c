/* cl_auth.c: a client's credentials (docs/security.md): its identity's
 * key, for metad, and the ticket metad vouches for it with, for the chunk
 * servers.
 *
 * Happy path: the program loads its key file (cl_auth_open()); every dial
 * to metad authenticates with the key (cl_auth_key_cred() as the rpc
 * client's get_cred); once a session is open the client asks metad for a
 * ticket (cl_auth_ticket_fetch(): AUTH_TICKET, §3.5) and opens the sealed
 * session key with its own key; every dial to a chunk server then
 * authenticates with the ticket (cl_auth_ticket_cred()).  The session's
 * renew thread fetches a new ticket once half of the old one's life has
 * gone (cl_auth_ticket_due()), so a dial never presents an expired one.
 *
 * cl_auth_rights() is how a program that serves several identities (an
 * NBD export whose TLS user names one) learns what one may reach: AUTH_LIST
 * of that name (§10.2), parsed; auth_caps_reach() then places a path.
 *
 * Failure modes: a ticket that cannot be fetched leaves the old one (the
 * next renewal tries again); without any ticket a dial to a chunk server
 * fails with -EKEYREJECTED.  Thread-safe: the ticket is under @lock.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cl_auth {
    struct auth_key key;
    pthread_mutex_t lock;
    struct auth_cred ticket; /* method 0 until the first ticket */
    uint64_t issued_ms, expires_ms;
    bool secure; /* every link asks for a secure link (--secure) */
};

int cl_auth_open(const char *path, struct cl_auth **out)
{
    struct cl_auth *a;
    int rc;

    *out = NULL;
    if (!path)
        return 0;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    rc = auth_key_load(path, &a->key);
    if (rc < 0) {
        free(a);
        return rc;
    }
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return 0;
}

void cl_auth_free(struct cl_auth *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    memset(a, 0, sizeof(*a));
    free(a);
}

void cl_auth_set_secure(struct cl_auth *a, bool on)
{
    a->secure = on;
}

const char *cl_auth_name(const struct cl_auth *a)
{
    return a ? a->key.name : "";
}

int cl_auth_key_cred(void *arg, struct auth_cred *out)
{
    const struct cl_auth *a = arg;

    memset(out, 0, sizeof(*out));
    out->method = PROTO_AUTH_KEY;
    memcpy(out->name, a->key.name, sizeof(out->name));
    memcpy(out->key, a->key.secret, AUTH_KEY_SIZE);
    out->secure = a->secure;
    return 0;
}

int cl_auth_unseal(const struct cl_auth *a, const char *label,
                   const uint8_t *sealed, size_t n, uint8_t *out, size_t size)
{
    return auth_open(a->key.secret, label, sealed, n, out, size);
}

int cl_auth_ticket_cred(void *arg, struct auth_cred *out)
{
    struct cl_auth *a = arg;
    int rc = 0;

    pthread_mutex_lock(&a->lock);
    if (a->ticket.method == PROTO_AUTH_TICKET) {
        *out = a->ticket;
        out->secure = a->secure;
    } else {
        rc = -EKEYREJECTED;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

bool cl_auth_ticket_due(struct cl_auth *a)
{
    uint64_t now = auth_now_ms();
    bool due;

    pthread_mutex_lock(&a->lock);
    due = a->ticket.method != PROTO_AUTH_TICKET ||
          now >= a->issued_ms + (a->expires_ms - a->issued_ms) / 2;
    pthread_mutex_unlock(&a->lock);
    return due;
}

int cl_auth_ticket_fetch(struct cl_auth *a, struct rpc_client *rpc, bool raw)
{
    struct proto_auth_ticket_rep m;
    struct auth_cred t = {.method = PROTO_AUTH_TICKET};
    struct rpc_reply rep;
    int rc;

    rc = raw ? rpc_call_raw(rpc, PROTO_MSG_AUTH_TICKET_REQ, NULL, 0, &rep)
             : rpc_call(rpc, PROTO_MSG_AUTH_TICKET_REQ, NULL, 0, &rep);
    if (rc < 0)
        return rc;
    rc = proto_auth_ticket_rep_decode(rep.payload, rep.len, &m);
    if (rc == 0 && m.ticket.len > sizeof(t.ticket))
        rc = -EPROTO;
    if (rc == 0) {
        int n = auth_open(a->key.secret, AUTH_LABEL_SESSION_KEY,
                          (const uint8_t *)m.sealed_key.p, m.sealed_key.len,
                          t.key, sizeof(t.key));
        rc = n == AUTH_KEY_SIZE ? 0 : n < 0 ? n : -EBADMSG;
    }
    if (rc == 0) {
        memcpy(t.name, a->key.name, sizeof(t.name));
        memcpy(t.ticket, m.ticket.p, m.ticket.len);
        t.ticket_len = m.ticket.len;
        pthread_mutex_lock(&a->lock);
        a->ticket = t;
        a->issued_ms = auth_now_ms();
        a->expires_ms =
            m.expires_ms > a->issued_ms ? m.expires_ms : a->issued_ms;
        pthread_mutex_unlock(&a->lock);
    }
    memset(&t, 0, sizeof(t));
    rpc_reply_free(&rep);
    return rc;
}

int cl_auth_rights(struct rpc_client *rpc, const char *name,
                   struct auth_caps *out)
{
    struct proto_auth_name_req q = {.name = {name, (uint32_t)strlen(name)}};
    char text[PROTO_AUTH_CAPS_MAX + 1];
    struct proto_status_rep m;
    struct proto_kv_iter it;
    struct proto_str k, v;
    struct rpc_reply rep;
    struct proto_wbuf w;
    int rc;

    if (auth_name_check(name) < 0)
        return -EINVAL;
    proto_wbuf_init(&w);
    proto_auth_name_req_encode(&w, &q);
    rc = w.err ? w.err
               : rpc_call(rpc, PROTO_MSG_AUTH_LIST_REQ, w.p, w.len, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    rc = proto_status_rep_decode(rep.payload, rep.len, &m);
    if (rc == 0) {
        proto_kv_iter_init(&it, &m);
        rc = proto_kv_next(&it, &k, &v) && v.len <= PROTO_AUTH_CAPS_MAX
                 ? 0
                 : -EPROTO;
    }
    if (rc == 0) {
        snprintf(text, sizeof(text), "%.*s", (int)v.len, v.p);
        rc = auth_caps_parse(text, out, NULL) < 0 ? -EPROTO : 0;
    }
    rpc_reply_free(&rep);
    return rc;
}
