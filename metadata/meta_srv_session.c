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

void meta_srv_session_open(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_session_open_req req;
    struct proto_session_open_rep rep;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    rc = proto_session_open_req_decode(payload, len, &req);
    if (rc == 0)
        rc = meta_srv_apply(srv, PROTO_MSG_SESSION_OPEN_REQ, 0, payload, len,
                            &w);
    if (rc == 0)
        rc = proto_session_open_rep_decode(w.p, w.len, &rep);
    if (rc == 0) {
        if (rep.lease_ms == 0)
            rep.lease_ms = srv->lease_ms;
        rc = session_add(srv, rep.session_id, req.client_name.p,
                         req.client_name.len, req.host.p, req.host.len,
                         rep.lease_ms, rep.lease_ms);
    }
    if (rc == 0) {
        c->session_id = rep.session_id;
        log_info("metad: session opened: id=%llu name=%.*s host=%.*s "
                 "lease_ms=%u peer=%s",
                 (unsigned long long)rep.session_id, (int)req.client_name.len,
                 req.client_name.p, (int)req.host.len, req.host.p, rep.lease_ms,
                 peer_name(c->peer));
    } else {
        log_warn("metad: session open failed: %s peer=%s", strerror(-rc),
                 peer_name(c->peer));
    }
    meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_OPEN_REQ, rc, &w);
    proto_wbuf_free(&w);
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

void meta_srv_session_close(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_session_id req;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    rc = proto_session_id_decode(payload, len, &req);
    if (rc == 0)
        rc = meta_srv_apply(srv, PROTO_MSG_SESSION_CLOSE_REQ, c->session_id,
                            payload, len, &w);
    if (rc == 0 || rc == -ENOENT) {
        session_remove(srv, req.session_id);
        if (rc == 0)
            log_info("metad: session closed: id=%llu peer=%s",
                     (unsigned long long)req.session_id, peer_name(c->peer));
    }
    meta_srv_reply(c->peer, req_id, PROTO_MSG_SESSION_CLOSE_REQ, rc, &w);
    proto_wbuf_free(&w);
}

/* Apply META_OP_SESSION_EXPIRE for @id.  -ENOENT means the database had
 * already dropped it, which is as good. */
static int session_expire(struct meta_srv *srv, uint64_t id)
{
    struct proto_wbuf payload, reply;
    int rc;

    proto_wbuf_init(&payload);
    proto_wbuf_init(&reply);
    meta_op_session_expire_encode(
        &payload, &(struct meta_op_session_expire){.session_id = id});
    rc = payload.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, META_OP_SESSION_EXPIRE, 0, payload.p,
                            payload.len, &reply);
    proto_wbuf_free(&payload);
    proto_wbuf_free(&reply);
    return rc == -ENOENT ? 0 : rc;
}

void meta_srv_session_tick(struct meta_srv *srv)
{
    uint64_t now = uv_now(srv->loop);
    size_t i = 0;

    while (i < srv->nsessions) {
        struct meta_srv_session *s = &srv->sessions[i];
        uint64_t id = s->id;
        int rc;

        if (s->deadline > now) {
            i++;
            continue;
        }
        rc = session_expire(srv, id);
        if (rc < 0) {
            /* Keep it: the next tick tries again. */
            log_error("metad: session expire: %s session=%llu", strerror(-rc),
                      (unsigned long long)id);
            i++;
            continue;
        }
        log_info("metad: session expired: id=%llu name=%s host=%s "
                 "idle_ms=%llu",
                 (unsigned long long)id, s->name, s->host,
                 (unsigned long long)(now - s->last_seen));
        session_remove(srv, id); /* moves the last entry to index i */
    }
}
