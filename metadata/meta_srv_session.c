/* meta_srv_session.c: client sessions on the daemon side: SESSION_OPEN,
 * SESSION_RENEW, SESSION_CLOSE and lease expiry.
 *
 * Sessions themselves are rows in the database, created and dropped by
 * operation records (SESSION_OPEN_REQ, SESSION_CLOSE_REQ,
 * META_OP_SESSION_EXPIRE).  Lease deadlines are not: they live here, in
 * memory, because a renewal every few seconds per client must not cost a
 * synchronous commit (docs/architecture.md, "Sessions").
 *
 *   (none) --OPEN--> live --RENEW--> live (deadline = now + lease)
 *                     |  \--CLOSE--> (none)     [meta_srv_session_close]
 *                     \--deadline passed--> (none) [meta_srv_session_tick]
 *
 * After a restart every session in the database gets a full lease
 * (meta_srv_session_restore), so clients have the whole lease to reconnect
 * and renew before anything expires.
 *
 * A closed connection does not end its session: the client may dial again
 * and renew.  Only the lease decides.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

struct meta_srv_session *meta_srv_session_find(struct meta_srv *srv,
                                               uint64_t id)
{
    for (size_t i = 0; i < srv->nsessions; i++)
        if (srv->sessions[i].id == id)
            return &srv->sessions[i];
    return NULL;
}

/* Track session @id, granted @lease_ms, with a deadline @grace_ms from
 * now.  @name and @host are borrowed (copied, truncated to fit). */
static int session_add(struct meta_srv *srv, uint64_t id, const char *name,
                       size_t name_len, const char *host, size_t host_len,
                       uint32_t lease_ms, uint32_t grace_ms)
{
    struct meta_srv_session *s = meta_srv_session_find(srv, id);
    uint64_t now = uv_now(srv->loop);
    int rc;

    if (!s) {
        rc = meta_srv_grow((void **)&srv->sessions, &srv->csessions,
                           srv->nsessions + 1, sizeof(*s));
        if (rc < 0)
            return rc;
        s = &srv->sessions[srv->nsessions++];
        memset(s, 0, sizeof(*s));
        s->id = id;
    }
    snprintf(s->name, sizeof(s->name), "%.*s", (int)name_len, name);
    snprintf(s->host, sizeof(s->host), "%.*s", (int)host_len, host);
    s->lease_ms = lease_ms;
    s->deadline = now + grace_ms;
    s->last_seen = now;
    return 0;
}

/* Forget session @id: its entry and every connection bound to it. */
static void session_remove(struct meta_srv *srv, uint64_t id)
{
    for (size_t i = 0; i < srv->nsessions; i++) {
        if (srv->sessions[i].id == id) {
            srv->sessions[i] = srv->sessions[--srv->nsessions];
            break;
        }
    }
    for (struct meta_srv_conn *c = srv->conns; c; c = c->next)
        if (c->session_id == id)
            c->session_id = 0;
}

/* A session from the database keeps the lease it was granted for its
 * renewals, but gets the restart grace (at least that lease) now.
 * Sessions opened before leases were stored (0) get the grace as their
 * lease. */
static int restore_one(uint64_t id, const char *name, const char *host,
                       uint32_t lease_ms, void *arg)
{
    struct meta_srv *srv = arg;
    uint32_t lease = lease_ms ? lease_ms : srv->lease_ms;

    return session_add(srv, id, name, strlen(name), host, strlen(host), lease,
                       lease > srv->lease_ms ? lease : srv->lease_ms);
}

int meta_srv_session_restore(struct meta_srv *srv)
{
    int rc = meta_session_foreach(srv->db, restore_one, srv);

    if (rc < 0)
        return rc;
    if (srv->nsessions)
        log_info("metad: restored %zu sessions with a full lease of %u ms",
                 srv->nsessions, srv->lease_ms);
    return 0;
}

static void on_opened(struct meta_propose *req, int rc,
                      const struct proto_wbuf *result)
{
    struct meta_srv_call *call = req->data;
    struct meta_srv *srv = call->srv;
    struct meta_srv_conn *c = peer_data(call->peer);
    struct proto_session_open_req q;
    struct proto_session_open_rep rep;

    /* The payload decoded before it was proposed. */
    if (rc == 0)
        rc = proto_session_open_req_decode(call->payload, call->len, &q);
    if (rc == 0)
        rc = proto_session_open_rep_decode(result->p, result->len, &rep);
    if (rc == 0) {
        if (rep.lease_ms == 0)
            rep.lease_ms = srv->lease_ms;
        rc =
            session_add(srv, rep.session_id, q.client_name.p, q.client_name.len,
                        q.host.p, q.host.len, rep.lease_ms, rep.lease_ms);
    }
    if (rc == 0) {
        /* A connection gone meanwhile leaves the session to its lease. */
        if (c)
            c->session_id = rep.session_id;
        log_info("metad: session opened: id=%llu name=%.*s host=%.*s "
                 "lease_ms=%u peer=%s",
                 (unsigned long long)rep.session_id, (int)q.client_name.len,
                 q.client_name.p, (int)q.host.len, q.host.p, rep.lease_ms,
                 peer_name(call->peer));
    } else {
        log_warn("metad: session open failed: %s peer=%s", strerror(-rc),
                 peer_name(call->peer));
    }
    if (c)
        meta_srv_reply(call->peer, call->req_id, PROTO_MSG_SESSION_OPEN_REQ, rc,
                       result);
    meta_srv_call_free(call);
}

void meta_srv_session_open(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct proto_session_open_req req;
    int rc = proto_session_open_req_decode(payload, len, &req);

    if (rc < 0) {
        log_warn("metad: session open failed: %s peer=%s", strerror(-rc),
                 peer_name(c->peer));
        meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_OPEN_REQ, rc, NULL);
        return;
    }
    meta_srv_call_propose(c, PROTO_MSG_SESSION_OPEN_REQ, 0, req_id, payload,
                          len, on_opened);
}

void meta_srv_session_renew(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct meta_srv_session *s;
    struct proto_session_id req;
    struct proto_session_renew_rep rep;
    struct proto_wbuf w;
    int rc;

    rc = proto_session_id_decode(payload, len, &req);
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_RENEW_REQ, rc, NULL);
        return;
    }
    s = meta_srv_session_find(srv, req.session_id);
    if (!s) {
        /* Expired or never opened: the client must open a new one. */
        peer_reply_wire(c->peer, req_id, PROTO_MSG_SESSION_RENEW_REP,
                        PROTO_ENOSESSION, NULL, 0);
        return;
    }
    s->last_seen = uv_now(srv->loop);
    s->deadline = s->last_seen + s->lease_ms;
    c->session_id = s->id;
    rep.lease_ms = s->lease_ms;
    proto_wbuf_init(&w);
    proto_session_renew_rep_encode(&w, &rep);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_RENEW_REQ, 0, &w);
    proto_wbuf_free(&w);
}

static void on_closed(struct meta_propose *req, int rc,
                      const struct proto_wbuf *result)
{
    struct meta_srv_call *call = req->data;
    struct proto_session_id q;

    if ((rc == 0 || rc == -ENOENT) &&
        proto_session_id_decode(call->payload, call->len, &q) == 0) {
        session_remove(call->srv, q.session_id);
        if (rc == 0)
            log_info("metad: session closed: id=%llu peer=%s",
                     (unsigned long long)q.session_id, peer_name(call->peer));
    }
    if (peer_data(call->peer))
        meta_srv_reply(call->peer, call->req_id, PROTO_MSG_SESSION_CLOSE_REQ,
                       rc, result);
    meta_srv_call_free(call);
}

void meta_srv_session_close(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len)
{
    struct proto_session_id req;
    int rc = proto_session_id_decode(payload, len, &req);

    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_CLOSE_REQ, rc, NULL);
        return;
    }
    meta_srv_call_propose(c, PROTO_MSG_SESSION_CLOSE_REQ, c->session_id, req_id,
                          payload, len, on_closed);
}

/* A META_OP_SESSION_EXPIRE proposed, until it is applied. */
struct expire_call {
    struct meta_propose req;
    struct meta_srv *srv;
    uint64_t id;
    uint64_t now; /* uv_now() of the tick that found it expired */
};

/* -ENOENT means the database had already dropped the session, which is as
 * good. */
static void on_expired(struct meta_propose *req, int rc,
                       const struct proto_wbuf *result)
{
    struct expire_call *call = req->data;
    struct meta_srv_session *s = meta_srv_session_find(call->srv, call->id);

    (void)result; /* empty */
    if (rc == -ENOENT)
        rc = 0;
    if (rc < 0) {
        /* Keep it: the next tick tries again. */
        log_error("metad: session expire: %s session=%llu", strerror(-rc),
                  (unsigned long long)call->id);
        if (s)
            s->expiring = false;
    } else if (s) {
        log_info("metad: session expired: id=%llu name=%s host=%s "
                 "idle_ms=%llu",
                 (unsigned long long)call->id, s->name, s->host,
                 (unsigned long long)(call->now - s->last_seen));
        session_remove(call->srv, call->id);
    }
    free(call);
}

/* Propose the expiry of session @s (marked expiring until it is applied). */
static void session_expire(struct meta_srv *srv, struct meta_srv_session *s,
                           uint64_t now)
{
    struct expire_call *call = malloc(sizeof(*call));
    struct proto_wbuf payload;
    int rc = -ENOMEM;

    proto_wbuf_init(&payload);
    meta_op_session_expire_encode(
        &payload, &(struct meta_op_session_expire){.session_id = s->id});
    if (call && payload.err == 0) {
        call->req.data = call;
        call->srv = srv;
        call->id = s->id;
        call->now = now;
        s->expiring = true;
        rc = meta_srv_apply(srv, &call->req, META_OP_SESSION_EXPIRE, 0,
                            payload.p, payload.len, on_expired);
        if (rc < 0)
            s->expiring = false;
    } else if (payload.err) {
        rc = payload.err;
    }
    proto_wbuf_free(&payload);
    if (rc < 0) {
        log_error("metad: session expire: %s session=%llu", strerror(-rc),
                  (unsigned long long)s->id);
        free(call);
    }
}

void meta_srv_session_tick(struct meta_srv *srv)
{
    uint64_t now = uv_now(srv->loop);
    uint64_t *due = NULL;
    size_t ndue = 0, cap = 0;

    /* Collect first: an expiry applied at once removes its entry. */
    for (size_t i = 0; i < srv->nsessions; i++) {
        const struct meta_srv_session *s = &srv->sessions[i];
        if (s->deadline > now || s->expiring)
            continue;
        if (meta_srv_grow((void **)&due, &cap, ndue + 1, sizeof(*due)) < 0)
            break; /* the rest at the next tick */
        due[ndue++] = s->id;
    }
    for (size_t i = 0; i < ndue; i++) {
        struct meta_srv_session *s = meta_srv_session_find(srv, due[i]);
        if (s)
            session_expire(srv, s, now);
    }
    free(due);
}
