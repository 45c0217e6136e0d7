/* meta_server.c: metad's network side: the listener, one struct
 * meta_srv_conn per accepted connection, and the dispatch of requests to
 * the engine (records proposed to srv->log for mutations, meta_query() for
 * reads) or to the daemon's own handlers in meta_srv_*.c.
 *
 * A request is answered with its opcode + 1.  A mutation becomes a record
 * proposed to the log (meta_srv_apply(), meta_propose.h) and is answered
 * in the proposal's callback, only after the record was applied, that is
 * after its transaction committed with synchronous=FULL
 * (docs/architecture.md, "Operation records"), so an acknowledged change
 * survives kill -9.  The request (payload, victims of its callback
 * breaks) is kept in a struct meta_srv_call until then; a connection
 * closed meanwhile gets no answer.  Dispatch follows the operation
 * table (meta_ops.def): its serve column names the daemon handler, or
 * none and the request goes to the engine; its callers and session
 * columns are checked first (admit()).  Every role may connect; requests
 * that only a storage server may send are refused to the others with
 * EPERM.  Namespace requests are served with or without a session: the
 * admin CLI and the tests use them bare, and the operation record carries
 * session id 0 then.
 *
 * One timer, every META_SRV_TICK_MS, drives the periodic work: session
 * expiry, write lease expiry, garbage collection and the repair scan; a
 * second one, every META_SRV_LIVE_TICK_MS, the storage servers' failure
 * detection (meta_srv_state.c).  Shutdown
 * (meta_srv_stop) closes the listener, every connection and the timer;
 * requests still waiting on a storage server then fail with ECONNRESET and
 * their replies are dropped, so the loop runs down by itself.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "meta_op.h"

int meta_srv_grow(void **p, size_t *cap, size_t n, size_t size)
{
    size_t ncap;
    void *np;

    if (n <= *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    while (ncap < n)
        ncap *= 2;
    np = realloc(*p, ncap * size);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = ncap;
    return 0;
}

int64_t meta_srv_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_later(uv_timer_t *t)
{
    struct meta_srv *srv = t->data;

    meta_log_flush(&srv->log);
}

/* A turn of the loop: prepare, wait for I/O, the I/O callbacks, check.
 * The records proposed by the turn's callbacks are appended together, and
 * the frames they write (the answers of records committed in the turn,
 * above all) wait for the check and leave in one writev() per peer. */
static void turn_uncork(struct meta_srv *srv)
{
    if (srv->corked) {
        srv->corked = false;
        peer_cork_end();
    }
}

static void on_turn_check(uv_check_t *h)
{
    struct meta_srv *srv = h->data;

    meta_log_flush_due(&srv->log);
    turn_uncork(srv);
}

static void on_turn_prepare(uv_prepare_t *h)
{
    struct meta_srv *srv = h->data;

    meta_log_flush_due(&srv->log);
    if (!srv->corked) {
        srv->corked = true;
        peer_cork_begin();
    }
}

/* The commit column of meta_ops.def: a LATER record waits in the log for
 * the next one, or META_SRV_LATER_MS.  Any other waits, in a log that
 * gathers, for the end of this loop turn (meta_propose_soon()), so that
 * the records of the requests read in one turn go in one append. */
static int propose(struct meta_srv *srv, struct meta_propose *req,
                   const struct meta_op *op, meta_propose_cb cb)
{
    int i = meta_optab_index(op->opcode);
    int rc;

    if (i < 0 || meta_optab[i].commit != META_COMMIT_LATER)
        return srv->log.gather ? meta_propose_soon(&srv->log, req, op, cb)
                               : meta_propose(&srv->log, req, op, cb);
    bool first = !meta_log_waiting(&srv->log);
    rc = meta_propose_later(&srv->log, req, op, cb);
    if (rc == 0 && first)
        uv_timer_start(&srv->later, on_later, META_SRV_LATER_MS, 0);
    return rc;
}

int meta_srv_apply(struct meta_srv *srv, struct meta_propose *req,
                   uint16_t opcode, uint64_t session_id, const void *payload,
                   size_t len, meta_propose_cb cb)
{
    return meta_srv_apply_request(srv, req, opcode, session_id, 0, payload,
                                  len, cb);
}

int meta_srv_apply_request(struct meta_srv *srv, struct meta_propose *req,
                           uint16_t opcode, uint64_t session_id,
                           uint64_t req_id, const void *payload, size_t len,
                           meta_propose_cb cb)
{
    struct meta_op op = {
        .format = META_OP_FORMAT,
        .opcode = opcode,
        .now = meta_srv_now_ns(),
        .session_id = session_id,
        .req_id = session_id ? req_id : 0,
        .payload = payload,
        .len = len,
    };
    int rc = propose(srv, req, &op, cb);

    log_debug("meta.srv", "propose: op=0x%04x session=%llu rc=%d", opcode,
              (unsigned long long)session_id, rc);
    return rc;
}

void meta_srv_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int rc,
                    const struct proto_wbuf *body)
{
    if (rc == 0 && body && body->err)
        rc = body->err;
    /* docs/protocol.md §3.4: a version 1 peer gets the version 1 layout. */
    if (rc == 0 && body)
        peer_reply(p, req_id, opcode + 1, 0, body->p,
                   proto_rep_len_for_version((uint16_t)(opcode + 1),
                                             peer_version(p), body->len));
    else
        peer_reply(p, req_id, opcode + 1, rc, NULL, 0);
}

/* ---- Requests ----------------------------------------------------------- */

static void meta_srv_ping(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct proto_ping ping;
    struct proto_wbuf w;
    int rc = proto_ping_decode(payload, len, &ping);

    proto_wbuf_init(&w);
    if (rc == 0)
        proto_ping_encode(&w, &ping);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_PING_REQ, rc, &w);
    proto_wbuf_free(&w);
}

int meta_srv_call_propose(struct meta_srv_conn *c, uint16_t opcode,
                          uint64_t session_id, uint64_t req_id,
                          const uint8_t *payload, size_t len,
                          meta_propose_cb cb)
{
    struct meta_srv_call *call = malloc(sizeof(*call) + len);
    int rc = -ENOMEM;

    if (call) {
        call->req.data = call;
        call->srv = c->srv;
        call->peer = c->peer;
        peer_ref(call->peer);
        call->opcode = opcode;
        call->req_id = req_id;
        meta_srv_cb_victims_take(c->srv, &call->victims);
        call->len = len;
        if (len)
            memcpy(call->payload, payload, len);
        rc = meta_srv_apply_request(c->srv, &call->req, opcode, session_id,
                                    req_id, call->payload, len, cb);
        if (rc < 0)
            peer_unref(call->peer);
    }
    if (rc < 0) {
        free(call);
        log_warn("metad: %s: proposing the record failed: %s peer=%s",
                 proto_msg_name(opcode), strerror(-rc), peer_name(c->peer));
        meta_srv_reply(c->peer, req_id, opcode, rc, NULL);
    }
    return rc;
}

void meta_srv_call_free(struct meta_srv_call *call)
{
    peer_unref(call->peer);
    free(call);
}

static void on_engine_applied(struct meta_propose *req, int status,
                              const struct proto_wbuf *result)
{
    struct meta_srv_call *call = req->data;
    struct meta_srv_conn *c = peer_data(call->peer);

    /* A connection closed meanwhile gets no answer. */
    if (c && !peer_is_closed(call->peer))
        meta_srv_cb_reply(c, call->opcode, call->req_id, call->payload,
                          call->len, status, &call->victims, result);
    meta_srv_call_free(call);
}

/* Namespace and chunk map requests: straight into the engine, as a record
 * or as a query (meta_op_records()). */
static void handle_engine(struct meta_srv_conn *c, uint16_t opcode,
                          uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct meta_srv_cb_victims victims;
    struct proto_wbuf w;
    int rc;

    rc = meta_op_records(c->srv->db, c->session_id, opcode, payload, len);
    if (rc > 0) {
        meta_srv_call_propose(c, opcode, c->session_id, req_id, payload, len,
                              on_engine_applied);
        return;
    }
    meta_srv_cb_victims_take(c->srv, &victims);
    proto_wbuf_init(&w);
    if (rc == 0)
        rc = meta_query(c->srv->db, opcode, payload, len, &w);
    meta_srv_cb_reply(c, opcode, req_id, payload, len, rc, &victims, &w);
    proto_wbuf_free(&w);
}

typedef void (*serve_fn)(struct meta_srv_conn *c, uint64_t req_id,
                         const uint8_t *payload, size_t len);

/* The serve column of meta_ops.def, in its order (meta_optab_index()). */
static const serve_fn serve_fns[] = {
#define X(opcode, kind, callers, session, serve, apply, query, records,        \
          before, after, cb, commit)                                           \
    serve,
#include "meta_ops.def"
#undef X
};

/* The row's callers and session columns: 0, or the request is answered
 * here.  Internal records are refused ENOSYS (as any unknown opcode) and
 * requests needing a session without one ENOSESSION.  Who may call: with
 * authentication, the callers the identity proven in the handshake may act
 * as (meta_srv_auth_callers()), EPERM otherwise; with --no-auth, only what
 * was always refused: storage-server requests from another HELLO role. */
static int admit(struct meta_srv_conn *c, const struct meta_optab_row *row,
                 uint64_t req_id)
{
    unsigned from = meta_optab_caller_of_role(peer_role(c->peer));
    bool refused;

    if (row->callers == 0) {
        meta_srv_reply(c->peer, req_id, row->opcode, -ENOSYS, NULL);
        return -ENOSYS;
    }
    if (c->srv->no_auth)
        refused =
            row->callers == META_CALLER_CHUNKD && from != META_CALLER_CHUNKD;
    else
        refused = !(row->callers & meta_srv_auth_callers(c));
    if (refused) {
        log_warn("metad: %s not permitted: peer=%s identity=%s",
                 proto_msg_name(row->opcode), peer_name(c->peer), c->identity);
        meta_srv_reply(c->peer, req_id, row->opcode, -EPERM, NULL);
        return -EPERM;
    }
    if (row->session == META_SESSION_NEEDED &&
        (!c->session_id || !meta_srv_session_find(c->srv, c->session_id))) {
        peer_reply_wire(c->peer, req_id, row->opcode + 1, PROTO_ENOSESSION,
                        NULL, 0);
        return -ENOTCONN;
    }
    return 0;
}

static void dispatch(struct meta_srv_conn *c, uint16_t opcode, uint64_t req_id,
                     const uint8_t *payload, size_t len);

bool meta_srv_follower_serves(uint16_t opcode)
{
    return opcode == PROTO_MSG_PING_REQ || opcode == PROTO_MSG_META_STATUS_REQ;
}

/* docs/protocol.md §5.3: a replica that does not lead answers ENOTLEADER
 * with the leader's client address, as the members table knows it. */
static void reply_not_leader(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id)
{
    struct proto_not_leader m = {{"", 0}};
    struct meta_raft_info info;
    struct meta_member leader;
    struct proto_wbuf w;

    if (c->srv->raft) {
        meta_raft_info(c->srv->raft, &info);
        if (info.leader_id && info.leader_id != info.id &&
            meta_member_get(c->srv->db, info.leader_id, &leader) == 0)
            m.leader = (struct proto_str){leader.client_addr,
                                          (uint32_t)strlen(leader.client_addr)};
    }
    proto_wbuf_init(&w);
    proto_not_leader_encode(&w, &m);
    log_debug("meta.srv", "not leader: %s answered with leader=%.*s peer=%s",
              proto_msg_name(opcode), (int)m.leader.len, m.leader.p,
              peer_name(c->peer));
    peer_reply_wire(c->peer, req_id, opcode + 1, PROTO_ENOTLEADER,
                    w.err ? NULL : w.p, w.err ? 0 : w.len);
    proto_wbuf_free(&w);
}

/* Every request passes the gate of its identity's rights first
 * (meta_srv_auth.c). */
static void on_request(struct peer *p, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len)
{
    struct meta_srv_conn *c = peer_data(p);

    if (!c || c->srv->stopping) {
        peer_reply(p, req_id, opcode + 1, -EAGAIN, NULL, 0);
        return;
    }
    if (!c->srv->leading && !meta_srv_follower_serves(opcode)) {
        reply_not_leader(c, opcode, req_id);
        return;
    }
    log_debug("meta.srv", "request: %s id=%llu len=%zu peer=%s",
              proto_msg_name(opcode) ? proto_msg_name(opcode) : "?",
              (unsigned long long)req_id, len, peer_name(p));
    struct proto_wbuf scratch;
    proto_wbuf_init(&scratch);
    int rc = meta_srv_auth_gate(c, opcode, &payload, &len, &scratch);
    if (rc < 0)
        meta_srv_reply(p, req_id, opcode, rc, NULL);
    else
        dispatch(c, opcode, req_id, payload, len);
    proto_wbuf_free(&scratch);
}

static void dispatch(struct meta_srv_conn *c, uint16_t opcode, uint64_t req_id,
                     const uint8_t *payload, size_t len)
{
    struct peer *p = c->peer;
    int i;

    if (meta_srv_cb_before(c, opcode, req_id, payload, len))
        return; /* held until callback breaks are answered */
    i = meta_optab_index(opcode);
    if (i < 0) {
        meta_srv_reply(p, req_id, opcode, -ENOSYS, NULL);
        return;
    }
    if (admit(c, &meta_optab[i], req_id) < 0)
        return;
    if (serve_fns[i])
        serve_fns[i](c, req_id, payload, len);
    else
        handle_engine(c, opcode, req_id, payload, len);
}

/* ---- Connections -------------------------------------------------------- */

static int on_hello(struct peer *p, const struct proto_hello_req *hello)
{
    struct meta_srv *srv = peer_get_listener_data(p);
    struct meta_srv_conn *c;

    if (srv->stopping)
        return -EAGAIN;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->srv = srv;
    c->peer = p;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    peer_set_data(p, c);
    meta_srv_auth_conn_init(c);
    log_info("metad: connection: peer=%s role=%u name=%.*s", peer_name(p),
             hello->role, (int)hello->name.len, hello->name.p);
    return 0;
}

static void on_close(struct peer *p, int status)
{
    struct meta_srv_conn *c = peer_data(p);

    if (!c)
        return;
    peer_set_data(p, NULL);
    log_info("metad: connection closed: peer=%s cause=%s", peer_name(p),
             status ? strerror(-status) : "closed here");
    meta_srv_server_detach(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

void meta_srv_redispatch(struct peer *p, uint16_t opcode, uint64_t req_id,
                         const uint8_t *payload, size_t len)
{
    on_request(p, opcode, req_id, payload, len);
}

static const struct peer_ops srv_peer_ops = {
    .on_hello = on_hello,
    .on_auth = meta_srv_auth_key,
    .on_request = on_request,
    .on_close = on_close,
};

/* ---- Lifecycle ---------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    struct meta_srv *srv = t->data;

    if (srv->stopping || !srv->leading)
        return;
    meta_srv_session_tick(srv);
    meta_srv_cb_tick(srv);
    meta_srv_write_tick(srv);
    meta_srv_gc_tick(srv);
    meta_srv_repair_tick(srv);
    meta_srv_lease_tick(srv);
}

static void on_live_tick(uv_timer_t *t)
{
    struct meta_srv *srv = t->data;

    if (!srv->stopping && srv->leading)
        meta_srv_state_tick(srv);
}

static uint64_t random_u64(void)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = (uint64_t)meta_srv_now_ns() ^ (uint64_t)getpid() << 32;
    return v;
}

static void on_member_recorded(struct meta_propose *req, int status,
                               const struct proto_wbuf *result)
{
    (void)result;
    if (status < 0)
        log_warn("metad: cannot record this replica's addresses: %s",
                 strerror(-status));
    free(req);
}

/* A leader records its own client and raft addresses, so that followers
 * send clients to it (docs/protocol.md §5.3). */
static int member_record_self(struct meta_srv *srv)
{
    struct meta_raft_info info;
    struct meta_op_member m = {0};
    struct meta_propose *req;
    struct proto_wbuf rec;
    int rc;

    if (!srv->raft)
        return 0;
    meta_raft_info(srv->raft, &info);
    m.id = info.id;
    m.client_addr =
        (struct proto_str){srv->listen, (uint32_t)strlen(srv->listen)};
    for (size_t i = 0; i < info.nmembers; i++)
        if (info.members[i].id == info.id)
            m.raft_addr =
                (struct proto_str){info.members[i].raft_addr,
                                   (uint32_t)strlen(info.members[i].raft_addr)};
    req = calloc(1, sizeof(*req));
    proto_wbuf_init(&rec);
    meta_op_member_encode(&rec, &m);
    rc = !req ? -ENOMEM : rec.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, req, META_OP_MEMBER, 0, rec.p, rec.len,
                            on_member_recorded);
    proto_wbuf_free(&rec);
    if (rc < 0)
        free(req);
    return rc;
}

/* Become the serving metad: the in-memory state from the database, as
 * after a restart (docs/architecture.md, "Leadership"). */
static int lead_begin(struct meta_srv *srv)
{
    int rc;

    srv->nsessions = 0;
    srv->nwleases = 0;
    /* Never an id the last leadership may have given out unrecorded. */
    srv->proposed_chunk_id = meta_chunk_max_id(srv->db);
    srv->next_chunk_id = srv->proposed_chunk_id + META_SRV_CHUNK_ID_GAP;
    srv->leading = true;
    srv->lead_ms = uv_now(srv->loop);
    rc = meta_srv_auth_init(srv);
    if (rc == 0)
        rc = member_record_self(srv);
    if (rc == 0)
        rc = meta_srv_server_load(srv);
    if (rc == 0)
        rc = meta_srv_session_restore(srv);
    return rc;
}

bool meta_srv_servers_returning(struct meta_srv *srv)
{
    if (uv_now(srv->loop) - srv->lead_ms >= srv->down_ms)
        return false;
    for (size_t i = 0; i < srv->nservers; i++)
        if (srv->servers[i].state == PROTO_SERVER_DOWN)
            return true;
    return false;
}

void meta_srv_lead(struct meta_srv *srv, bool leading)
{
    struct meta_srv_conn *c, *next;
    int rc;

    if (srv->stopping || srv->leading == leading)
        return;
    if (leading) {
        rc = lead_begin(srv);
        if (rc < 0)
            log_error("metad: cannot load state to lead: %s", strerror(-rc));
        return;
    }
    srv->leading = false;
    for (c = srv->conns; c; c = next) {
        next = c->next;
        peer_close(c->peer);
    }
    /* Records held back never reached the log: their connections are
     * closed, so their clients send them again to the next leader. */
    uv_timer_stop(&srv->later);
    meta_log_drop(&srv->log, -EREMCHG);
    meta_srv_lease_free(srv);
    meta_srv_cb_forget(srv);
    meta_srv_pool_drop(srv);
}

int meta_srv_start(uv_loop_t *loop, struct meta_db *db,
                   const struct meta_srv_opts *opts, struct meta_srv **out)
{
    struct meta_srv *srv;
    int rc;

    srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    srv->loop = loop;
    srv->db = db;
    snprintf(srv->data_dir, sizeof(srv->data_dir), "%s",
             opts->data_dir ? opts->data_dir : "");
    snprintf(srv->listen, sizeof(srv->listen), "%s", opts->listen);
    srv->lease_ms = opts->lease_ms ? opts->lease_ms : META_SRV_LEASE_MS;
    srv->ticket_ms = opts->ticket_ms ? opts->ticket_ms : META_SRV_TICKET_MS;
    srv->promise_ms =
        opts->promise_ms ? opts->promise_ms : META_SRV_CB_LEASE_MS;
    srv->no_auth = opts->no_auth;
    srv->pool.size = opts->chunk_pool;
    srv->limits = opts->limits;
    srv->secure = opts->secure;
    srv->instance_id = random_u64();
    srv->start_ms = uv_now(loop);
    srv->raft = opts->raft;
    if (opts->log)
        srv->log = *opts->log;
    else
        meta_log_local_init(&srv->log, db);
    srv->suspect_ms = opts->suspect_ms ? opts->suspect_ms : META_SRV_SUSPECT_MS;
    srv->down_ms = opts->down_ms ? opts->down_ms : META_SRV_DOWN_MS;
    if (srv->down_ms < srv->suspect_ms)
        srv->down_ms = srv->suspect_ms;

    rc = meta_srv_cb_init(srv);
    if (rc == 0 && !opts->log)
        rc = lead_begin(srv);
    if (rc < 0) {
        meta_srv_free(srv);
        return rc;
    }
    uv_timer_init(loop, &srv->tick);
    srv->tick.data = srv;
    uv_timer_start(&srv->tick, on_tick, META_SRV_TICK_MS, META_SRV_TICK_MS);
    uv_timer_init(loop, &srv->live_tick);
    srv->live_tick.data = srv;
    uv_timer_start(&srv->live_tick, on_live_tick, META_SRV_LIVE_TICK_MS,
                   META_SRV_LIVE_TICK_MS);
    uv_timer_init(loop, &srv->later);
    srv->later.data = srv;
    /* Unreferenced: they run on every turn but keep no loop alive. */
    uv_check_init(loop, &srv->turn_check);
    srv->turn_check.data = srv;
    uv_check_start(&srv->turn_check, on_turn_check);
    uv_unref((uv_handle_t *)&srv->turn_check);
    uv_prepare_init(loop, &srv->turn_prepare);
    srv->turn_prepare.data = srv;
    uv_prepare_start(&srv->turn_prepare, on_turn_prepare);
    uv_unref((uv_handle_t *)&srv->turn_prepare);
    meta_srv_repair_init(srv, opts->repair_rate, opts->repair_mbps);
    *out = srv;
    return 0;
}

int meta_srv_listen(struct meta_srv *srv)
{
    int rc, port;

    rc =
        peer_listen(srv->loop, srv->listen, &srv_peer_ops, srv, &srv->listener);
    if (rc < 0)
        return rc;
    /* HELLO_REP carries the same instance id as STATUS. */
    rc = peer_listener_set_identity(srv->listener, "tessera-metad",
                                    srv->instance_id);
    if (!srv->no_auth)
        peer_listener_set_auth(srv->listener, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    peer_listener_set_limits(srv->listener, srv->limits);
    peer_listener_set_secure(srv->listener, srv->secure);
    if (rc < 0) {
        peer_listener_close(srv->listener);
        srv->listener = NULL;
        return rc;
    }
    /* Show the port actually bound when asked for port 0. */
    port = peer_listener_port(srv->listener);
    if (port > 0) {
        char *colon = strrchr(srv->listen, ':');

        if (colon && strcmp(colon, ":0") == 0)
            snprintf(colon, sizeof(srv->listen) - (size_t)(colon - srv->listen),
                     ":%d", port);
    }
    return 0;
}

void meta_srv_stop(struct meta_srv *srv)
{
    struct meta_srv_conn *c, *next;

    if (srv->stopping)
        return;
    srv->stopping = true;
    if (srv->listener)
        peer_listener_close(srv->listener);
    srv->listener = NULL;
    for (c = srv->conns; c; c = next) {
        next = c->next;
        peer_close(c->peer);
    }
    uv_timer_stop(&srv->tick);
    uv_close((uv_handle_t *)&srv->tick, NULL);
    uv_timer_stop(&srv->live_tick);
    uv_close((uv_handle_t *)&srv->live_tick, NULL);
    uv_timer_stop(&srv->later);
    uv_close((uv_handle_t *)&srv->later, NULL);
    uv_check_stop(&srv->turn_check);
    uv_close((uv_handle_t *)&srv->turn_check, NULL);
    turn_uncork(srv);
    uv_prepare_stop(&srv->turn_prepare);
    uv_close((uv_handle_t *)&srv->turn_prepare, NULL);
    meta_log_drop(&srv->log, -ECANCELED);
    meta_srv_repair_stop(srv);
    meta_srv_lease_free(srv);
    meta_srv_pool_drop(srv);
}

/* The timer embedded in @srv was closed by meta_srv_stop() and its close
 * has completed once uv_run() returned, so @srv may go now. */
void meta_srv_free(struct meta_srv *srv)
{
    if (!srv)
        return;
    meta_srv_lease_free(srv);
    free(srv->sessions);
    meta_srv_server_free_all(srv);
    free(srv->servers);
    free(srv->wleases);
    meta_srv_cb_free(srv);
    free(srv);
}
