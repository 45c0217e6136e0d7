/* meta_srv_admin.c: the operator's requests about storage servers and
 * the cluster: SERVER_CTL (drain, undrain, remove) and ADMIN_ACTION
 * (scrub, rebalance, fsck, progress), docs/protocol.md §11.5 and §11.6.
 *
 * SERVER_CTL changes the persisted part of a server's state with a
 * META_OP_SERVER_STATE record, then updates the in-memory state, which
 * logs and announces the change (meta_srv_state.c).  Draining itself is
 * repair's work (meta_srv_repair.c): a draining server takes no new chunk
 * and its copies stop counting, so they are copied elsewhere and then
 * dropped.  REMOVE is refused with EBUSY unless the server is down, or
 * draining with no replica left; the record drops whatever the database
 * still lists on it and repair restores the goal.
 *
 * ADMIN_ACTION answers with key/value pairs like STATUS, always ending
 * with the progress pairs, so the CLI can follow a long action by asking
 * PROGRESS once a second:
 *   SCRUB      SCRUB_START_REQ to the chosen up server(s); scrub.sent.
 *   REBALANCE  starts rebalancing (repair runs it when nothing is under
 *              goal); rebalance.active 1 until balanced.
 *   FSCK       compares the database with the servers' last inventories:
 *              fsck.chunks, fsck.ok, fsck.under_goal, fsck.over_goal,
 *              fsck.missing (no live copy), fsck.orphans (copies on a
 *              server that no chunk lists there and that are not queued
 *              for deletion), fsck.gc_pending, up to 32 "fsck.missing.N"
 *              lines naming chunks; with arg 1 (repair) orphans are
 *              deleted and a repair scan runs at once: fsck.repaired.
 */
#include "meta_srv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

#define FSCK_LIST_MAX 32

/* A SERVER_CTL whose META_OP_SERVER_STATE record is proposed. */
struct ctl_call {
    struct meta_propose req;
    struct meta_srv *srv;
    struct peer *peer; /* referenced */
    uint64_t req_id;
    uint32_t server_id, action;
};

static void ctl_finish(struct peer *peer, uint64_t req_id,
                       const struct proto_server_ctl_req *req, int rc)
{
    if (rc < 0 && rc != -ENOENT)
        log_warn("metad: server control failed: %s server=%u action=%u",
                 strerror(-rc), req->server_id, req->action);
    meta_srv_reply(peer, req_id, PROTO_MSG_SERVER_CTL_REQ, rc, NULL);
}

/* The state change is recorded: the in-memory state follows. */
static void ctl_applied(struct meta_srv *srv, uint32_t id, uint32_t action,
                        const char *peer)
{
    struct meta_srv_server *s = meta_srv_server_find(srv, id);
    struct meta_srv_server copy;

    if (!s)
        return;
    if (action != PROTO_SERVER_REMOVE) {
        bool drain = action == PROTO_SERVER_DRAIN;
        s->draining = drain;
        log_info("metad: server %s: id=%u addr=%s peer=%s",
                 drain ? "drain started" : "drain cancelled", s->id, s->addr,
                 peer);
        meta_srv_state_update(srv, s);
        return;
    }
    copy = *s;
    /* A connection still bound to it must register again (as a new
     * server) before it is used. */
    for (struct meta_srv_conn *c = srv->conns; c; c = c->next)
        if (c->server_id == id)
            c->server_id = 0;
    log_info("metad: server removed: id=%u addr=%s replicas_dropped=%" PRIu64,
             copy.id, copy.addr, copy.replicas);
    meta_srv_state_broadcast(srv, &copy, PROTO_SERVER_REMOVED);
    meta_srv_server_forget(srv, copy.id);
}

static void on_ctl_applied(struct meta_propose *req, int rc,
                           const struct proto_wbuf *result)
{
    struct ctl_call *call = req->data;
    struct proto_server_ctl_req q = {.server_id = call->server_id,
                                     .action = call->action};

    (void)result; /* empty */
    if (rc == 0)
        ctl_applied(call->srv, call->server_id, call->action,
                    peer_name(call->peer));
    ctl_finish(call->peer, call->req_id, &q, rc);
    peer_unref(call->peer);
    free(call);
}

/* Propose @state for server @id; on_ctl_applied() answers. */
static int ctl_propose(struct meta_srv_conn *c, uint64_t req_id,
                       const struct proto_server_ctl_req *req, uint32_t state)
{
    struct ctl_call *call = malloc(sizeof(*call));
    struct proto_wbuf payload;
    int rc;

    if (!call)
        return -ENOMEM;
    proto_wbuf_init(&payload);
    meta_op_server_state_encode(
        &payload, &(struct meta_op_server_state){.server_id = req->server_id,
                                                 .state = state});
    call->req.data = call;
    call->srv = c->srv;
    call->peer = c->peer;
    peer_ref(call->peer);
    call->req_id = req_id;
    call->server_id = req->server_id;
    call->action = req->action;
    rc = payload.err;
    if (rc == 0)
        rc = meta_srv_apply(c->srv, &call->req, META_OP_SERVER_STATE, 0,
                            payload.p, payload.len, on_ctl_applied);
    proto_wbuf_free(&payload);
    if (rc < 0) {
        peer_unref(call->peer);
        free(call);
    }
    return rc;
}

void meta_srv_server_ctl(struct meta_srv_conn *c, uint64_t req_id,
                         const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_server_ctl_req req;
    struct meta_srv_server *s = NULL;
    uint32_t state = 0;
    int rc;

    rc = proto_server_ctl_req_decode(payload, len, &req);
    if (rc == 0 && !(s = meta_srv_server_find(srv, req.server_id)))
        rc = -ENOENT;
    if (rc == 0) {
        switch (req.action) {
        case PROTO_SERVER_DRAIN:
        case PROTO_SERVER_UNDRAIN:
            if (s->draining == (req.action == PROTO_SERVER_DRAIN))
                break; /* already so: nothing to record */
            state = req.action == PROTO_SERVER_DRAIN ? PROTO_SERVER_DRAINING
                                                     : PROTO_SERVER_UP;
            break;
        case PROTO_SERVER_REMOVE:
            meta_srv_server_usage(srv);
            if (meta_srv_server_alive(srv, s) &&
                !(s->draining && s->replicas == 0))
                rc = -EBUSY;
            else
                state = PROTO_SERVER_REMOVED;
            break;
        default:
            rc = -EINVAL;
        }
    }
    if (rc == 0 && state)
        rc = ctl_propose(c, req_id, &req, state);
    if (rc < 0 || !state)
        ctl_finish(c->peer, req_id, &req, rc);
}

/* ---- Scrub -------------------------------------------------------------- */

static void on_scrub(struct peer *p, int status, const uint8_t *payload,
                     size_t len, void *arg)
{
    (void)payload;
    (void)len;
    (void)arg;
    if (status < 0)
        log_warn("metad: scrub start failed: %s peer=%s", strerror(-status),
                 peer_name(p));
}

static int scrub(struct meta_srv *srv, uint32_t id, struct meta_srv_kv *o)
{
    struct proto_scrub_start_req req = {.rate_mb = 0};
    struct proto_wbuf w;
    uint32_t sent = 0;

    if (id && !meta_srv_server_find(srv, id))
        return -ENOENT;
    proto_wbuf_init(&w);
    proto_scrub_start_req_encode(&w, &req);
    for (size_t i = 0; w.err == 0 && i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];

        if ((id && s->id != id) || !meta_srv_server_up(srv, s))
            continue;
        if (peer_request(s->peer, PROTO_MSG_SCRUB_START_REQ, w.p, w.len,
                         META_SRV_CTL_TIMEOUT_MS, on_scrub, NULL) == 0)
            sent++;
    }
    proto_wbuf_free(&w);
    if (id && sent == 0)
        return -EAGAIN; /* that server is not up */
    srv->repair.scrubs += sent;
    log_info("metad: scrub requested: servers=%u", sent);
    meta_srv_kv_u64(o, "scrub.sent", sent);
    return 0;
}

/* ---- Fsck --------------------------------------------------------------- */

struct fsck {
    struct meta_srv *srv;
    struct meta_srv_kv *o;
    uint64_t last, chunks, ok, under, over, missing, listed;
};

static int fsck_one(const struct meta_chunk_info *ci, void *arg)
{
    struct fsck *f = arg;
    uint32_t good = meta_srv_repair_good(f->srv, &ci->c), alive = 0;
    char key[64], val[128];

    f->last = ci->c.chunk_id;
    f->chunks++;
    for (uint32_t i = 0; i < ci->c.nreplicas; i++) {
        struct meta_srv_server *s =
            meta_srv_server_find(f->srv, ci->c.servers[i]);

        alive += s && meta_srv_server_alive(f->srv, s);
    }
    if (alive == 0) {
        f->missing++;
        if (f->listed++ < FSCK_LIST_MAX) {
            snprintf(key, sizeof(key), "fsck.missing.%016" PRIx64,
                     ci->c.chunk_id);
            snprintf(val, sizeof(val), "ino=%" PRIu64 " index=%" PRIu64
                     " version=%" PRIu64 " replicas=%u",
                     ci->c.ino, ci->c.index, ci->c.version, ci->c.nreplicas);
            meta_srv_kv(f->o, key, val);
        }
    } else if (good < ci->goal) {
        f->under++;
    } else if (good > ci->goal || good < ci->c.nreplicas) {
        f->over++;
    } else {
        f->ok++;
    }
    return 0;
}

/* Is inventory entry @e of @s an orphan: no chunk lists it there, no
 * deletion queued, no write creating it? */
static bool orphan(struct meta_srv *srv, const struct meta_srv_server *s,
                   const struct proto_inv_entry *e)
{
    struct meta_chunk ch;
    int rc;

    if (meta_srv_write_pending(srv, e->chunk_id) ||
        meta_srv_repair_busy(srv, e->chunk_id) ||
        meta_gc_has(srv->db, e->chunk_id, s->id) != 0)
        return false;
    rc = meta_chunk_get(srv->db, e->chunk_id, &ch);
    if (rc == -ENOENT)
        return true;
    if (rc < 0)
        return false;
    for (uint32_t i = 0; i < ch.nreplicas; i++)
        if (ch.servers[i] == s->id)
            return false;
    return true;
}

static void on_orphan_deleted(struct peer *p, int status,
                              const uint8_t *payload, size_t len, void *arg)
{
    (void)payload;
    (void)len;
    (void)arg;
    if (status < 0 && status != -ENOENT)
        log_warn("metad: fsck: orphan delete failed: %s peer=%s",
                 strerror(-status), peer_name(p));
}

static int fsck_orphans(struct meta_srv *srv, bool repair, uint64_t *found,
                        uint64_t *fixed)
{
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    for (size_t i = 0; i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];
        size_t k = 0;

        for (size_t j = 0; j < s->inv.n; j++) {
            struct proto_inv_entry *e = &s->inv.v[j];
            struct proto_chunk_ref ref = {e->chunk_id, e->version};

            if (!orphan(srv, s, e)) {
                s->inv.v[k++] = *e;
                continue;
            }
            (*found)++;
            if (!repair || !meta_srv_server_up(srv, s)) {
                s->inv.v[k++] = *e;
                continue;
            }
            proto_wbuf_reset(&w);
            proto_chunk_ref_encode(&w, &ref);
            if (w.err == 0 &&
                peer_request(s->peer, PROTO_MSG_CHUNK_DELETE_REQ, w.p, w.len,
                             META_SRV_CTL_TIMEOUT_MS, on_orphan_deleted,
                             NULL) == 0) {
                (*fixed)++;
                log_info("metad: fsck: deleting orphan: chunk=%016" PRIx64
                         " version=%" PRIu64 " server=%u",
                         e->chunk_id, e->version, s->id);
            } else {
                s->inv.v[k++] = *e;
            }
        }
        s->inv.n = k;
    }
    proto_wbuf_free(&w);
    return 0;
}

static int gc_count(uint64_t chunk_id, uint64_t version, uint32_t server_id,
                    void *arg)
{
    (void)chunk_id;
    (void)version;
    (void)server_id;
    (*(uint64_t *)arg)++;
    return 0;
}

static int fsck(struct meta_srv *srv, bool repair, struct meta_srv_kv *o)
{
    struct fsck f = {.srv = srv, .o = o};
    uint64_t orphans = 0, fixed = 0, gc = 0, before;
    int rc;

    do {
        before = f.chunks;
        rc = meta_chunk_foreach(srv->db, f.last, 1024, fsck_one, &f);
    } while (rc == 0 && f.chunks - before == 1024);
    if (rc == 0)
        rc = fsck_orphans(srv, repair, &orphans, &fixed);
    if (rc == 0)
        rc = meta_gc_foreach(srv->db, 0, INT32_MAX, gc_count, &gc);
    if (rc < 0)
        return rc;
    if (repair) /* under- and over-goal chunks: repair's job, now */
        meta_srv_repair_tick(srv);
    meta_srv_kv_u64(o, "fsck.chunks", f.chunks);
    meta_srv_kv_u64(o, "fsck.ok", f.ok);
    meta_srv_kv_u64(o, "fsck.under_goal", f.under);
    meta_srv_kv_u64(o, "fsck.over_goal", f.over);
    meta_srv_kv_u64(o, "fsck.missing", f.missing);
    meta_srv_kv_u64(o, "fsck.orphans", orphans);
    meta_srv_kv_u64(o, "fsck.gc_pending", gc);
    meta_srv_kv_u64(o, "fsck.repaired", fixed);
    log_info("metad: fsck: chunks=%" PRIu64 " ok=%" PRIu64
             " under=%" PRIu64 " over=%" PRIu64 " missing=%" PRIu64
             " orphans=%" PRIu64 " repaired=%" PRIu64,
             f.chunks, f.ok, f.under, f.over, f.missing, orphans, fixed);
    return 0;
}

void meta_srv_admin_action(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_admin_action_req req;
    struct meta_srv_kv o;
    int rc;

    proto_wbuf_init(&o.w);
    o.n = 0;
    rc = proto_admin_action_req_decode(payload, len, &req);
    if (rc == 0) {
        switch (req.action) {
        case PROTO_ADMIN_SCRUB:
            rc = scrub(srv, req.arg, &o);
            break;
        case PROTO_ADMIN_REBALANCE:
            if (!srv->repair.rebalance)
                log_info("metad: rebalance started: peer=%s",
                         peer_name(c->peer));
            srv->repair.rebalance = true;
            meta_srv_repair_tick(srv);
            break;
        case PROTO_ADMIN_FSCK:
            rc = req.arg > 1 ? -EINVAL : fsck(srv, req.arg == 1, &o);
            break;
        case PROTO_ADMIN_PROGRESS:
            break;
        default:
            rc = -EINVAL;
        }
    }
    if (rc < 0) {
        proto_wbuf_free(&o.w);
        meta_srv_reply(c->peer, req_id, PROTO_MSG_ADMIN_ACTION_REQ, rc, NULL);
        return;
    }
    meta_srv_kv_progress(srv, &o);
    meta_srv_kv_reply(c->peer, req_id, PROTO_MSG_ADMIN_ACTION_REQ, &o);
}
