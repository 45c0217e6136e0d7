/* meta_srv_state.c: each storage server's state as metad sees it, failure
 * detection, and the announcement of every change to the clients.
 *
 * Happy path: a chunkd heartbeats every second on its control connection;
 * each heartbeat (and the registration) stamps last_hb and the server is
 * up.  Every META_SRV_LIVE_TICK_MS the liveness of each server is checked:
 * after --suspect-ms without a heartbeat it is suspect and metad sends an
 * are-you-up probe (PING_REQ on the control connection, META_SRV_PROBE_MS
 * timeout); an answer counts as a heartbeat.  After --down-ms without
 * either, or as soon as the control connection closes, it is down.
 *
 *              heartbeat / probe answer
 *        +-------------------------------------+
 *        v                                     |
 *       UP ---(age > suspect_ms)---> SUSPECT --+
 *        ^  \                          |
 *        |   \--(connection closed)--\ | (age > down_ms, or closed)
 *        |                            vv
 *        +------(registers again)---- DOWN
 *
 *   DRAINING is UP (or SUSPECT, DOWN underneath) with the persisted
 *   draining flag (META_OP_SERVER_STATE); REMOVED is announced once when
 *   the server is forgotten.
 *
 *   FROM     -> TO        [function]
 *   UP       -> SUSPECT   [meta_srv_state_tick: probe sent]
 *   SUSPECT  -> UP        [on_probe, meta_srv_server_heartbeat]
 *   UP/SUSP. -> DOWN      [meta_srv_state_tick, meta_srv_server_detach]
 *   DOWN     -> UP        [meta_srv_server_register, heartbeat]
 *   UP       -> DRAINING  [meta_srv_server_ctl DRAIN]
 *   DRAINING -> UP        [meta_srv_server_ctl UNDRAIN]
 *   DOWN     -> REMOVED   [meta_srv_server_ctl REMOVE]
 *
 * Invariants:
 *   1. s->state is a function of (s->live, s->draining): DOWN and SUSPECT
 *      win over DRAINING, which wins over UP.
 *   2. Every change of s->state is logged once and broadcast once, with
 *      the wall-clock time of the change kept in s->since_ns.
 *
 * Failure modes: a probe that times out or fails changes nothing by
 * itself (the heartbeat age decides); a broadcast that a client does not
 * answer is ignored: the client also learns by failing on the server.
 * The down time is in memory only: after a metad restart every server is
 * down until it registers again.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *meta_srv_state_name(uint32_t state)
{
    switch (state) {
    case PROTO_SERVER_UP:
        return "up";
    case PROTO_SERVER_SUSPECT:
        return "suspect";
    case PROTO_SERVER_DOWN:
        return "down";
    case PROTO_SERVER_DRAINING:
        return "draining";
    case PROTO_SERVER_REMOVED:
        return "removed";
    default:
        return "?";
    }
}

static void on_notified(struct peer *p, int status, const uint8_t *payload,
                        size_t len, void *arg)
{
    (void)p;
    (void)status;
    (void)payload;
    (void)len;
    (void)arg;
}

void meta_srv_state_broadcast(struct meta_srv *srv,
                              const struct meta_srv_server *s, uint32_t state)
{
    struct proto_server_state_req req = {
        .server_id = s->id,
        .state = state,
        .addr = {s->addr, (uint32_t)strlen(s->addr)},
    };
    struct proto_wbuf w;
    unsigned n = 0;

    proto_wbuf_init(&w);
    proto_server_state_req_encode(&w, &req);
    for (struct meta_srv_conn *c = srv->conns; w.err == 0 && c; c = c->next) {
        if (!c->session_id || peer_is_closed(c->peer))
            continue;
        if (peer_request(c->peer, PROTO_MSG_SERVER_STATE_REQ, w.p, w.len,
                         META_SRV_NOTIFY_MS, on_notified, NULL) == 0)
            n++;
    }
    proto_wbuf_free(&w);
    log_debug("meta.state", "announced: server=%u state=%s sessions=%u", s->id,
              meta_srv_state_name(state), n);
}

/* Liveness from the connection and the heartbeat age alone. */
static uint32_t liveness(struct meta_srv *srv, const struct meta_srv_server *s)
{
    uint64_t age;

    if (!s->peer || peer_is_closed(s->peer))
        return PROTO_SERVER_DOWN;
    age = uv_now(srv->loop) - s->last_hb;
    if (age > srv->down_ms)
        return PROTO_SERVER_DOWN;
    if (age > srv->suspect_ms)
        return PROTO_SERVER_SUSPECT;
    return PROTO_SERVER_UP;
}

void meta_srv_state_update(struct meta_srv *srv, struct meta_srv_server *s)
{
    uint32_t old = s->state, state;

    s->live = liveness(srv, s);
    /* Invariant 1. */
    state = s->live != PROTO_SERVER_UP ? s->live
            : s->draining              ? PROTO_SERVER_DRAINING
                                       : PROTO_SERVER_UP;
    if (state == old)
        return;
    s->state = state;
    s->since_ns = meta_srv_now_ns();
    /* Invariant 2. */
    if (state == PROTO_SERVER_DOWN || state == PROTO_SERVER_SUSPECT)
        log_warn("metad: server %s: id=%u addr=%s was=%s heartbeat_age_ms=%llu",
                 meta_srv_state_name(state), s->id, s->addr,
                 meta_srv_state_name(old),
                 (unsigned long long)(uv_now(srv->loop) - s->last_hb));
    else
        log_info("metad: server %s: id=%u addr=%s was=%s",
                 meta_srv_state_name(state), s->id, s->addr,
                 meta_srv_state_name(old));
    if (state == PROTO_SERVER_DOWN)
        meta_srv_write_server_down(srv, s->id);
    meta_srv_state_broadcast(srv, s, state);
}

struct probe {
    struct meta_srv *srv;
    uint32_t server_id;
    struct peer *peer;
};

static void on_probe(struct peer *p, int status, const uint8_t *payload,
                     size_t len, void *arg)
{
    struct probe *pr = arg;
    struct meta_srv_server *s = meta_srv_server_find(pr->srv, pr->server_id);

    (void)payload;
    (void)len;
    if (s && s->peer == p) {
        s->probing = false;
        if (status == 0 && !pr->srv->stopping) {
            s->last_hb = uv_now(pr->srv->loop);
            meta_srv_state_update(pr->srv, s);
        }
    }
    free(pr);
}

static void probe_send(struct meta_srv *srv, struct meta_srv_server *s)
{
    struct proto_ping ping = {.cookie = s->last_hb};
    struct probe *pr = malloc(sizeof(*pr));
    struct proto_wbuf w;

    if (!pr)
        return;
    pr->srv = srv;
    pr->server_id = s->id;
    pr->peer = s->peer;
    proto_wbuf_init(&w);
    proto_ping_encode(&w, &ping);
    if (w.err == 0 && peer_request(s->peer, PROTO_MSG_PING_REQ, w.p, w.len,
                                   META_SRV_PROBE_MS, on_probe, pr) == 0)
        s->probing = true;
    else
        free(pr);
    proto_wbuf_free(&w);
}

void meta_srv_state_tick(struct meta_srv *srv)
{
    for (size_t i = 0; i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];

        meta_srv_state_update(srv, s);
        if (s->live == PROTO_SERVER_SUSPECT && !s->probing)
            probe_send(srv, s);
    }
}
