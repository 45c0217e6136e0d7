/* meta_srv_storage.c: the storage servers as metad sees them:
 * SERVER_REGISTER, SERVER_HEARTBEAT, SERVER_INVENTORY and liveness.
 *
 * A chunkd dials metad, registers (an operation record: the same uuid
 * always gets the same server id) and then heartbeats.  Its connection is
 * also the control channel: metad sends CHUNK_SETVERSION and CHUNK_DELETE
 * back on it (docs/architecture.md).  A server is up while that connection
 * is open and its last heartbeat (or registration) is younger than
 * --suspect-ms, alive (up or suspect) while younger than --down-ms;
 * capacity, free space and chunk counts are kept in
 * memory only, refreshed by every heartbeat.
 *
 * Inventory: the server lists the chunks it holds.  A replica is stale,
 * and is deleted on that server at once, when the database does not know
 * the chunk or knows a newer version, or does not list this server among
 * its replicas.  The exception to the last rule is reintegration: a copy
 * at the current version that the database dropped (the server was down
 * long enough for repair to start) counts again (META_OP_REPLICA_ADD)
 * while the chunk is under its goal and the copy is not listed for
 * deletion.  The entries kept are remembered as the server's inventory
 * for fsck.  Server states and failure detection are meta_srv_state.c's. Chunks
 * that a WRITE_BEGIN is creating or bumping right now are skipped: the database
 * learns about them only when the servers have answered.  Unknown ids above the
 * next id to hand out (from attempts lost in a restart) move that counter past
 * them, so an id is never given to two chunks.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

struct meta_srv_server *meta_srv_server_find(struct meta_srv *srv, uint32_t id)
{
    for (size_t i = 0; i < srv->nservers; i++)
        if (srv->servers[i].id == id)
            return &srv->servers[i];
    return NULL;
}

bool meta_srv_server_up(struct meta_srv *srv, const struct meta_srv_server *s)
{
    return meta_srv_server_liveness(srv, s) == PROTO_SERVER_UP;
}

bool meta_srv_server_alive(struct meta_srv *srv,
                           const struct meta_srv_server *s)
{
    return meta_srv_server_liveness(srv, s) != PROTO_SERVER_DOWN;
}

bool meta_srv_server_full(const struct meta_srv_server *s)
{
    return s->free < META_SRV_FULL_FREE;
}

static void inv_free(struct meta_srv_inv *inv)
{
    free(inv->v);
    memset(inv, 0, sizeof(*inv));
}

void meta_srv_server_forget(struct meta_srv *srv, uint32_t id)
{
    for (size_t i = 0; i < srv->nservers; i++) {
        if (srv->servers[i].id != id)
            continue;
        inv_free(&srv->servers[i].inv);
        inv_free(&srv->servers[i].inv_next);
        srv->servers[i] = srv->servers[--srv->nservers];
        return;
    }
}

void meta_srv_server_free_all(struct meta_srv *srv)
{
    for (size_t i = 0; i < srv->nservers; i++) {
        inv_free(&srv->servers[i].inv);
        inv_free(&srv->servers[i].inv_next);
    }
}

static int usage_one(uint32_t server_id, uint64_t replicas, uint64_t bytes,
                     void *arg)
{
    struct meta_srv_server *s = meta_srv_server_find(arg, server_id);

    if (s) {
        s->replicas = replicas;
        s->used = bytes;
    }
    return 0;
}

void meta_srv_server_usage(struct meta_srv *srv)
{
    int rc;

    for (size_t i = 0; i < srv->nservers; i++)
        srv->servers[i].replicas = srv->servers[i].used = 0;
    rc = meta_server_usage_foreach(srv->db, usage_one, srv);
    if (rc < 0)
        log_error("metad: server usage: %s", strerror(-rc));
}

/* Whether servers @a and @b are on one host: their addresses are equal
 * but for the port. */
static bool same_host(const char *a, const char *b)
{
    const char *pa = strrchr(a, ':'), *pb = strrchr(b, ':');
    size_t la = pa ? (size_t)(pa - a) : strlen(a);
    size_t lb = pb ? (size_t)(pb - b) : strlen(b);

    return la == lb && memcmp(a, b, la) == 0;
}

void meta_srv_capacity(struct meta_srv *srv, uint64_t *capacity, uint64_t *free,
                       uint32_t *disks)
{
    *capacity = *free = 0;
    *disks = 0;
    for (size_t i = 0; i < srv->nservers; i++) {
        const struct meta_srv_server *s = &srv->servers[i];
        bool seen = false;

        if (!meta_srv_server_alive(srv, s))
            continue;
        for (size_t k = 0; k < i && !seen; k++) {
            const struct meta_srv_server *o = &srv->servers[k];

            seen = meta_srv_server_alive(srv, o) &&
                   o->capacity == s->capacity && same_host(o->addr, s->addr);
        }
        if (seen)
            continue;
        *capacity += s->capacity;
        *free += s->free;
        (*disks)++;
    }
}

/* Find server @id or add it (down, unknown address).  Returns a pointer
 * owned by @srv, or NULL when out of memory. */
static struct meta_srv_server *server_get(struct meta_srv *srv, uint32_t id)
{
    struct meta_srv_server *s = meta_srv_server_find(srv, id);

    if (s)
        return s;
    if (meta_srv_grow((void **)&srv->servers, &srv->cservers, srv->nservers + 1,
                      sizeof(*s)) < 0)
        return NULL;
    s = &srv->servers[srv->nservers++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->state = s->live = PROTO_SERVER_DOWN;
    s->since_ns = meta_srv_now_ns();
    return s;
}

static int load_one(const struct meta_server *ms, void *arg)
{
    struct meta_srv *srv = arg;
    struct meta_srv_server *s = server_get(srv, ms->id);

    if (!s)
        return -ENOMEM;
    snprintf(s->addr, sizeof(s->addr), "%s", ms->addr);
    s->draining = ms->draining;
    s->state = s->live = PROTO_SERVER_DOWN;
    s->since_ns = ms->state_time ? ms->state_time : meta_srv_now_ns();
    return 0;
}

int meta_srv_server_load(struct meta_srv *srv)
{
    return meta_server_foreach(srv->db, load_one, srv);
}

/* The connection that currently speaks for @s, if any. */
static struct meta_srv_conn *server_conn(struct meta_srv *srv,
                                         const struct meta_srv_server *s)
{
    for (struct meta_srv_conn *c = srv->conns; c; c = c->next)
        if (c->peer == s->peer && c->server_id == s->id)
            return c;
    return NULL;
}

static void on_registered(struct meta_propose *req, int rc,
                          const struct proto_wbuf *result)
{
    struct meta_srv_call *call = req->data;
    struct meta_srv *srv = call->srv;
    struct meta_srv_conn *c = peer_data(call->peer);
    struct proto_server_register_req q;
    struct proto_server_register_rep rep;
    struct meta_srv_server *s = NULL;
    struct meta_srv_conn *old;

    /* A connection gone meanwhile: the server registers again. */
    if (rc == 0 && !c)
        rc = -ECONNRESET;
    if (rc == 0)
        rc = proto_server_register_req_decode(call->payload, call->len, &q);
    if (rc == 0)
        rc = proto_server_register_rep_decode(result->p, result->len, &rep);
    if (rc == 0) {
        s = server_get(srv, rep.server_id);
        if (!s)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        log_warn("metad: server register failed: %s peer=%s", strerror(-rc),
                 peer_name(call->peer));
        meta_srv_reply(call->peer, call->req_id, PROTO_MSG_SERVER_REGISTER_REQ,
                       rc, NULL);
        goto out;
    }
    /* A server that reconnected before its old connection was noticed
     * dead: the new connection takes over the control channel. */
    if (s->peer && s->peer != c->peer) {
        old = server_conn(srv, s);
        if (old)
            old->server_id = 0;
    }
    snprintf(s->addr, sizeof(s->addr), "%.*s", (int)q.addr.len, q.addr.p);
    s->peer = c->peer;
    s->capacity = q.capacity;
    s->free = q.free;
    s->seen = (struct meta_live){0}; /* a new connection: gaps start over */
    meta_live_heartbeat(&s->seen, uv_now(srv->loop));
    s->probing = false;
    s->inv_next.n = 0;
    c->server_id = s->id;
    log_info("metad: server registered: id=%u addr=%s capacity=%llu "
             "free=%llu peer=%s",
             s->id, s->addr, (unsigned long long)s->capacity,
             (unsigned long long)s->free, peer_name(c->peer));
    meta_srv_state_update(srv, s);
    meta_srv_reply(c->peer, call->req_id, PROTO_MSG_SERVER_REGISTER_REQ, 0,
                   result);
out:
    meta_srv_call_free(call);
}

void meta_srv_server_register(struct meta_srv_conn *c, uint64_t req_id,
                              const uint8_t *payload, size_t len)
{
    struct proto_server_register_req req;
    int rc = proto_server_register_req_decode(payload, len, &req);

    if (rc < 0) {
        log_warn("metad: server register failed: %s peer=%s", strerror(-rc),
                 peer_name(c->peer));
        meta_srv_reply(c->peer, req_id, PROTO_MSG_SERVER_REGISTER_REQ, rc,
                       NULL);
        return;
    }
    meta_srv_call_propose(c, PROTO_MSG_SERVER_REGISTER_REQ, 0, req_id, payload,
                          len, on_registered);
}

/* The server @id as registered on connection @c, or NULL when @c has not
 * registered it (the server must register again). */
struct meta_srv_server *meta_srv_server_bound(struct meta_srv_conn *c,
                                              uint32_t id)
{
    struct meta_srv_server *s = meta_srv_server_find(c->srv, id);

    if (!s || c->server_id != id || s->peer != c->peer)
        return NULL;
    return s;
}

void meta_srv_server_heartbeat(struct meta_srv_conn *c, uint64_t req_id,
                               const uint8_t *payload, size_t len)
{
    struct proto_server_heartbeat_req req;
    struct meta_srv_server *s;
    int rc;

    rc = proto_server_heartbeat_req_decode(payload, len, &req);
    if (rc == 0) {
        s = meta_srv_server_bound(c, req.server_id);
        if (!s) {
            rc = -ENOENT;
        } else {
            s->capacity = req.capacity;
            s->free = req.free;
            s->chunks = req.chunks;
            s->stored = req.used;
            meta_live_heartbeat(&s->seen, uv_now(c->srv->loop));
            meta_srv_state_update(c->srv, s);
        }
    }
    meta_srv_reply(c->peer, req_id, PROTO_MSG_SERVER_HEARTBEAT_REQ, rc, NULL);
}

/* docs/protocol.md §9.4: kept for STATUS, nothing else depends on it. */
void meta_srv_server_scrub(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct proto_scrub_status_req req;
    struct meta_srv_server *s;
    int rc;

    rc = proto_scrub_status_req_decode(payload, len, &req);
    if (rc == 0) {
        s = meta_srv_server_bound(c, req.server_id);
        if (s)
            s->scrub = req;
        else
            rc = -ENOENT;
    }
    meta_srv_reply(c->peer, req_id, PROTO_MSG_SCRUB_STATUS_REQ, rc, NULL);
}

static void on_stale_deleted(struct peer *p, int status, const uint8_t *payload,
                             size_t len, void *arg)
{
    (void)payload;
    (void)len;
    (void)arg;
    if (status < 0 && status != -ENOENT)
        log_warn("metad: stale replica delete failed: %s peer=%s",
                 strerror(-status), peer_name(p));
}

/* What to do with inventory entry @e of server @server_id. */
enum inv_verdict { INV_KEEP, INV_STALE, INV_READD };

/* Is the replica @e on server @server_id stale, or a current copy that the
 * database lost and now needs again?  (See the top of file.) */
static enum inv_verdict replica_check(struct meta_srv *srv, uint32_t server_id,
                                      const struct proto_inv_entry *e)
{
    struct meta_chunk ch;
    uint32_t goal = 0;
    int rc;

    if (meta_srv_write_pending(srv, e->chunk_id) ||
        meta_srv_repair_busy(srv, e->chunk_id))
        return INV_KEEP;
    rc = meta_chunk_get(srv->db, e->chunk_id, &ch);
    if (rc == -ENOENT) {
        /* An id handed out before a restart whose chunk was never
         * recorded: never hand it out again. */
        if (e->chunk_id > srv->next_chunk_id)
            srv->next_chunk_id = e->chunk_id;
        return INV_STALE;
    }
    if (rc < 0) {
        log_error("metad: inventory: chunk lookup: %s chunk=%016llx",
                  strerror(-rc), (unsigned long long)e->chunk_id);
        return INV_KEEP;
    }
    if (e->version < ch.version)
        return INV_STALE;
    for (uint32_t i = 0; i < ch.nreplicas; i++)
        if (ch.servers[i] == server_id)
            return INV_KEEP;
    /* Reintegration: a current copy the database dropped counts again
     * while the chunk is under its goal, unless it was listed for deletion
     * (reported bad, or dropped as surplus). */
    if (e->version == ch.version &&
        meta_gc_has(srv->db, e->chunk_id, server_id) == 0 &&
        meta_chunk_goal(srv->db, e->chunk_id, &goal) == 0 &&
        meta_srv_repair_good(srv, &ch) < goal &&
        !meta_srv_write_busy(srv, e->chunk_id))
        return INV_READD;
    return INV_STALE;
}

static int inv_cmp(const void *a, const void *b)
{
    const struct proto_inv_entry *x = a, *y = b;

    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* Keep @e in the inventory being received; the last message makes it the
 * server's inventory (fsck reads it). */
static void inv_keep(struct meta_srv_server *s, const struct proto_inv_entry *e)
{
    struct meta_srv_inv *inv = &s->inv_next;

    if (meta_srv_grow((void **)&inv->v, &inv->cap, inv->n + 1,
                      sizeof(*inv->v)) == 0)
        inv->v[inv->n++] = *e;
}

static void inv_finish(struct meta_srv_server *s)
{
    struct meta_srv_inv tmp = s->inv;

    if (s->inv_next.n > 1) /* an empty inventory has no array at all */
        qsort(s->inv_next.v, s->inv_next.n, sizeof(*s->inv_next.v), inv_cmp);
    s->inv = s->inv_next;
    s->inv_next = tmp;
    s->inv_next.n = 0;
    s->inv_valid = true;
}

/* One SERVER_INVENTORY message being worked through, entry by entry.  A
 * copy that counts again is recorded (META_OP_REPLICA_ADD) before the next
 * entry is looked at, since that record changes what the next check sees.
 * The loop is a trampoline: a record applied at once resumes the loop;
 * one applied later calls inv_step() again. */
struct inv_job {
    struct meta_propose req;
    struct meta_srv *srv;
    struct peer *peer; /* referenced */
    uint64_t req_id;
    struct proto_server_inventory_req q; /* points into @payload */
    uint32_t i, stale, back;
    bool stepping; /* inside inv_step() */
    bool proposed; /* entry i's REPLICA_ADD is waiting for its outcome */
    bool answered; /* ... and has it in @readd_rc */
    int readd_rc;
    size_t len;
    uint8_t payload[];
};

static void inv_job_free(struct inv_job *j)
{
    peer_unref(j->peer);
    free(j);
}

/* Ask for the deletion of the stale copy @e on the job's server. */
static void inv_stale(struct inv_job *j, const struct proto_inv_entry *e)
{
    struct proto_chunk_ref ref = {.chunk_id = e->chunk_id,
                                  .version = e->version};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &ref);
    if (w.err == 0 &&
        peer_request(j->peer, PROTO_MSG_CHUNK_DELETE_REQ, w.p, w.len,
                     META_SRV_CTL_TIMEOUT_MS, on_stale_deleted, NULL) == 0)
        j->stale++;
    proto_wbuf_free(&w);
    log_debug("meta.srv",
              "inventory: stale replica: chunk=%016llx "
              "version=%llu server=%u",
              (unsigned long long)e->chunk_id, (unsigned long long)e->version,
              j->q.server_id);
}

static void on_readd(struct meta_propose *req, int rc,
                     const struct proto_wbuf *result);

/* Propose META_OP_REPLICA_ADD for the reintegrated copy @e. */
static int inv_readd(struct inv_job *j, const struct proto_inv_entry *e)
{
    struct proto_wbuf payload;
    int rc;

    proto_wbuf_init(&payload);
    meta_op_replica_encode(
        &payload, &(struct meta_op_replica){.chunk_id = e->chunk_id,
                                            .version = e->version,
                                            .server_id = j->q.server_id});
    rc = payload.err;
    j->req.data = j;
    j->proposed = true;
    if (rc == 0)
        rc = meta_srv_apply(j->srv, &j->req, META_OP_REPLICA_ADD, 0, payload.p,
                            payload.len, on_readd);
    proto_wbuf_free(&payload);
    if (rc < 0)
        j->proposed = false;
    return rc;
}

static void inv_step(struct inv_job *j)
{
    struct meta_srv_conn *c = peer_data(j->peer);
    struct meta_srv_server *s =
        c ? meta_srv_server_bound(c, j->q.server_id) : NULL;
    struct proto_inv_entry e;

    if (!s) { /* the connection or its registration went meanwhile */
        inv_job_free(j);
        return;
    }
    j->stepping = true;
    while (j->i < j->q.count) {
        enum inv_verdict v;

        if (j->proposed && !j->answered) {
            j->stepping = false; /* on_readd() resumes */
            return;
        }
        proto_inv_entry_get(&j->q, j->i, &e);
        if (j->proposed) {
            j->proposed = j->answered = false;
            v = INV_STALE;
            if (j->readd_rc == 0) {
                j->back++;
                log_info("metad: inventory: replica counts again: "
                         "chunk=%016llx version=%llu server=%u",
                         (unsigned long long)e.chunk_id,
                         (unsigned long long)e.version, j->q.server_id);
                v = INV_KEEP;
            }
        } else {
            v = replica_check(j->srv, j->q.server_id, &e);
            if (v == INV_READD && inv_readd(j, &e) == 0)
                continue; /* its outcome decides */
        }
        if (v == INV_KEEP)
            inv_keep(s, &e);
        else
            inv_stale(j, &e);
        j->i++;
    }
    if (j->q.last)
        inv_finish(s);
    log_info("metad: inventory: server=%u entries=%u stale=%u counted=%u%s",
             j->q.server_id, j->q.count, j->stale, j->back,
             j->q.last ? " (last)" : "");
    meta_srv_reply(j->peer, j->req_id, PROTO_MSG_SERVER_INVENTORY_REQ, 0, NULL);
    inv_job_free(j);
}

static void on_readd(struct meta_propose *req, int rc,
                     const struct proto_wbuf *result)
{
    struct inv_job *j = req->data;

    (void)result; /* the status alone decides, as it always has */
    j->answered = true;
    j->readd_rc = rc;
    if (!j->stepping)
        inv_step(j);
}

void meta_srv_server_inventory(struct meta_srv_conn *c, uint64_t req_id,
                               const uint8_t *payload, size_t len)
{
    struct inv_job *j = NULL;
    int rc = -ENOMEM;

    if (len <= PROTO_MAX_PAYLOAD)
        j = calloc(1, sizeof(*j) + len);
    if (j) {
        memcpy(j->payload, payload, len);
        rc = proto_server_inventory_req_decode(j->payload, len, &j->q);
    }
    if (rc == 0 && !meta_srv_server_bound(c, j->q.server_id))
        rc = -ENOENT;
    if (rc < 0) {
        free(j);
        meta_srv_reply(c->peer, req_id, PROTO_MSG_SERVER_INVENTORY_REQ, rc,
                       NULL);
        return;
    }
    j->srv = c->srv;
    j->peer = c->peer;
    peer_ref(j->peer);
    j->req_id = req_id;
    j->len = len;
    inv_step(j);
}

void meta_srv_server_detach(struct meta_srv_conn *c)
{
    struct meta_srv_server *s;

    if (!c->server_id)
        return;
    s = meta_srv_server_find(c->srv, c->server_id);
    if (s && s->peer == c->peer) {
        s->peer = NULL;
        s->probing = false;
        log_info("metad: server connection closed: id=%u addr=%s", s->id,
                 s->addr);
        if (!c->srv->stopping)
            meta_srv_state_update(c->srv, s);
    }
    c->server_id = 0;
}
