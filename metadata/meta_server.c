/* meta_server.c: metad's network side: the listener, one struct
 * meta_srv_conn per accepted connection, and the dispatch of requests to
 * the engine (meta_apply() for mutations, meta_query() for reads) or to
 * the daemon's own handlers in meta_srv_*.c.
 *
 * A request is answered with its opcode + 1.  A mutation is answered only
 * after meta_apply() returned, that is after its transaction committed
 * with synchronous=FULL (docs/architecture.md, "Operation records"), so an
 * acknowledged change survives kill -9.  Every role may connect; requests
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

int meta_srv_apply(struct meta_srv *srv, uint16_t opcode, uint64_t session_id,
                   const void *payload, size_t len, struct proto_wbuf *reply)
{
    struct meta_op op = {
        .opcode = opcode,
        .now = meta_srv_now_ns(),
        .session_id = session_id,
        .payload = payload,
        .len = len,
    };
    int rc = meta_apply(srv->db, &op, reply);

    log_debug("meta.srv", "apply: op=0x%04x session=%llu rc=%d", opcode,
              (unsigned long long)session_id, rc);
    return rc;
}

void meta_srv_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int rc,
                    const struct proto_wbuf *body)
{
    if (rc == 0 && body && body->err)
        rc = body->err;
    if (rc == 0 && body)
        peer_reply(p, req_id, opcode + 1, 0, body->p, body->len);
    else
        peer_reply(p, req_id, opcode + 1, rc, NULL, 0);
}

/* ---- Requests ----------------------------------------------------------- */

static void handle_ping(struct meta_srv_conn *c, uint64_t req_id,
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

static bool is_engine_request(uint16_t opcode)
{
    return (opcode >= PROTO_MSG_LOOKUP_REQ && opcode <= PROTO_MSG_OPEN_REQ &&
            (opcode & 1)) ||
           opcode == PROTO_MSG_GOAL_SET_REQ ||
           opcode == PROTO_MSG_IMAGE_INFO_REQ ||
           opcode == PROTO_MSG_RELEASE_REQ ||
           opcode == PROTO_MSG_IMAGE_LIST_REQ ||
           opcode == PROTO_MSG_IMAGE_CHANGES_REQ ||
           opcode == PROTO_MSG_IMAGE_FLATTEN_REQ ||
           opcode == PROTO_MSG_CHUNK_WRITE_END_REQ;
}

/* 1 when @opcode changes the state and so becomes an operation record, 0
 * when meta_query() answers it, or -errno.  OPEN is a record only when it
 * takes a hold the session does not have yet (docs/protocol.md §6.22). */
static int engine_records(struct meta_srv_conn *c, uint16_t opcode,
                          const uint8_t *payload, size_t len)
{
    if (opcode == PROTO_MSG_OPEN_REQ)
        return meta_open_records(c->srv->db, c->session_id, payload, len);
    return meta_op_is_mutation(opcode);
}

/* Namespace and chunk map requests: straight into the engine. */
static void handle_engine(struct meta_srv_conn *c, uint16_t opcode,
                          uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    rc = engine_records(c, opcode, payload, len);
    if (rc > 0)
        rc = meta_srv_apply(c->srv, opcode, c->session_id, payload, len, &w);
    else if (rc == 0)
        rc = meta_query(c->srv->db, opcode, payload, len, &w);
    meta_srv_cb_reply(c, opcode, req_id, payload, len, rc, &w);
    proto_wbuf_free(&w);
}

static bool from_chunkd(struct meta_srv_conn *c, uint16_t opcode,
                        uint64_t req_id)
{
    if (peer_role(c->peer) == PROTO_ROLE_CHUNKD)
        return true;
    log_warn("metad: %s from a peer that is not a storage server: peer=%s",
             proto_msg_name(opcode), peer_name(c->peer));
    meta_srv_reply(c->peer, req_id, opcode, -EPERM, NULL);
    return false;
}

static void on_request(struct peer *p, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len)
{
    struct meta_srv_conn *c = peer_data(p);

    if (!c || c->srv->stopping) {
        peer_reply(p, req_id, opcode + 1, -EAGAIN, NULL, 0);
        return;
    }
    log_debug("meta.srv", "request: %s id=%llu len=%zu peer=%s",
              proto_msg_name(opcode) ? proto_msg_name(opcode) : "?",
              (unsigned long long)req_id, len, peer_name(p));
    if (meta_srv_cb_before(c, opcode, req_id, payload, len))
        return; /* held until callback breaks are answered */
    switch (opcode) {
    case PROTO_MSG_PING_REQ:
        handle_ping(c, req_id, payload, len);
        break;
    case PROTO_MSG_STATUS_REQ:
        meta_srv_status(c, req_id);
        break;
    case PROTO_MSG_SESSION_OPEN_REQ:
        meta_srv_session_open(c, req_id, payload, len);
        break;
    case PROTO_MSG_SESSION_RENEW_REQ:
        meta_srv_session_renew(c, req_id, payload, len);
        break;
    case PROTO_MSG_SESSION_CLOSE_REQ:
        meta_srv_session_close(c, req_id, payload, len);
        break;
    case PROTO_MSG_SERVER_REGISTER_REQ:
        if (from_chunkd(c, opcode, req_id))
            meta_srv_server_register(c, req_id, payload, len);
        break;
    case PROTO_MSG_SERVER_HEARTBEAT_REQ:
        if (from_chunkd(c, opcode, req_id))
            meta_srv_server_heartbeat(c, req_id, payload, len);
        break;
    case PROTO_MSG_SERVER_INVENTORY_REQ:
        if (from_chunkd(c, opcode, req_id))
            meta_srv_server_inventory(c, req_id, payload, len);
        break;
    case PROTO_MSG_CHUNK_WRITE_BEGIN_REQ:
        if (meta_srv_lease_write_ok(c, req_id, payload, len))
            meta_srv_write_begin(c, req_id, payload, len);
        break;
    case PROTO_MSG_IMAGE_LEASE_REQ:
        meta_srv_lease_request(c, req_id, payload, len);
        break;
    case PROTO_MSG_IMAGE_LEASE_WAIT_REQ:
        meta_srv_lease_wait(c, req_id, payload, len);
        break;
    case PROTO_MSG_CHUNK_LOCATE_REQ:
        meta_srv_locate(c, req_id, payload, len);
        break;
    case PROTO_MSG_CHUNK_REPORT_REQ:
        meta_srv_chunk_report(c, req_id, payload, len);
        break;
    case PROTO_MSG_SCRUB_STATUS_REQ:
        if (from_chunkd(c, opcode, req_id))
            meta_srv_server_scrub(c, req_id, payload, len);
        break;
    case PROTO_MSG_SERVER_CTL_REQ:
        meta_srv_server_ctl(c, req_id, payload, len);
        break;
    case PROTO_MSG_ADMIN_ACTION_REQ:
        meta_srv_admin_action(c, req_id, payload, len);
        break;
    case PROTO_MSG_CALLBACK_REGISTER_REQ:
        meta_srv_cb_register(c, req_id, payload, len);
        break;
    case PROTO_MSG_SNAPSHOT_REQ:
    case PROTO_MSG_CLONE_REQ:
        meta_srv_image_snapshot(c, opcode, req_id, payload, len);
        break;
    case PROTO_MSG_IMAGE_ROLLBACK_REQ:
        meta_srv_image_rollback(c, req_id, payload, len);
        break;
    default:
        if (is_engine_request(opcode))
            handle_engine(c, opcode, req_id, payload, len);
        else
            meta_srv_reply(p, req_id, opcode, -ENOSYS, NULL);
        break;
    }
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
    .on_request = on_request,
    .on_close = on_close,
};

/* ---- Lifecycle ---------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    struct meta_srv *srv = t->data;

    if (srv->stopping)
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

    if (!srv->stopping)
        meta_srv_state_tick(srv);
}

static uint64_t random_u64(void)
{
    uint64_t v = 0;

    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = (uint64_t)meta_srv_now_ns() ^ (uint64_t)getpid() << 32;
    return v;
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
    srv->instance_id = random_u64();
    srv->start_ms = uv_now(loop);
    srv->next_chunk_id = meta_chunk_max_id(db);
    srv->suspect_ms = opts->suspect_ms ? opts->suspect_ms : META_SRV_SUSPECT_MS;
    srv->down_ms = opts->down_ms ? opts->down_ms : META_SRV_DOWN_MS;
    if (srv->down_ms < srv->suspect_ms)
        srv->down_ms = srv->suspect_ms;

    rc = meta_srv_cb_init(srv);
    if (rc == 0)
        rc = meta_srv_server_load(srv);
    if (rc == 0)
        rc = meta_srv_session_restore(srv);
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
    meta_srv_repair_stop(srv);
    meta_srv_lease_free(srv);
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
