/* meta_srv_state.c: each storage server's state as metad sees it, failure
 * detection, and the announcement of every change to the clients.
 *
 * Happy path: a chunkd heartbeats every second on its control connection;
 * each heartbeat (and the registration, and any other frame it sends)
 * is a sign of life and the server is up.  Every META_SRV_LIVE_TICK_MS the
 * liveness of each server is checked (the decision is meta_live.c's):
 * after --suspect-ms without a sign of life (more when its heartbeats are
 * seen to come irregularly) it is suspect and metad sends an
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

void meta_srv_answer_ignored(struct peer *p, int status, const uint8_t *payload,
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
                         META_SRV_NOTIFY_MS, meta_srv_answer_ignored,
                         NULL) == 0)
            n++;
    }
    proto_wbuf_free(&w);
    log_debug("meta.state", "announced: server=%u state=%s sessions=%u", s->id,
              meta_srv_state_name(state), n);
}

uint32_t meta_srv_server_liveness(struct meta_srv *srv,
                                  const struct meta_srv_server *s)
{
    struct meta_live_limits lim = {srv->suspect_ms, srv->down_ms};
    struct meta_live seen = s->seen;

    if (!s->peer || peer_is_closed(s->peer))
        return PROTO_SERVER_DOWN;
    /* meta_live.c rule 1: any frame read is a sign of life. */
    meta_live_seen(&seen, peer_last_read_ms(s->peer));
    switch (meta_live_judge(&seen, &lim, uv_now(srv->loop))) {
    case META_LIVE_UP:
        return PROTO_SERVER_UP;
    case META_LIVE_SUSPECT:
        return PROTO_SERVER_SUSPECT;
    default:
        return PROTO_SERVER_DOWN;
    }
}

void meta_srv_state_update(struct meta_srv *srv, struct meta_srv_server *s)
{
    uint32_t old = s->state, state;

    s->live = meta_srv_server_liveness(srv, s);
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
        log_warn("metad: server %s: id=%u addr=%s was=%s silent_ms=%llu "
                 "heartbeat_age_ms=%llu suspect_after_ms=%u",
                 meta_srv_state_name(state), s->id, s->addr,
                 meta_srv_state_name(old),
                 (unsigned long long)(uv_now(srv->loop) - s->seen.last_seen),
                 (unsigned long long)(uv_now(srv->loop) - s->seen.last_hb),
                 meta_live_suspect_after(
                     &s->seen, &(struct meta_live_limits){srv->suspect_ms,
                                                          srv->down_ms}));
    else
        log_info("metad: server %s: id=%u addr=%s was=%s",
                 meta_srv_state_name(state), s->id, s->addr,
                 meta_srv_state_name(old));
    if (state == PROTO_SERVER_DOWN) {
        meta_srv_write_server_down(srv, s->id);
        meta_srv_pool_server_down(srv, s->id);
    }
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
            meta_live_seen(&s->seen, uv_now(pr->srv->loop));
            meta_srv_state_update(pr->srv, s);
        }
    }
    free(pr);
}

static void probe_send(struct meta_srv *srv, struct meta_srv_server *s)
{
    struct proto_ping ping = {.cookie = s->seen.last_seen};
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
    /* meta_live.c rule 3: a late check waits for the sockets to be read. */
    if (meta_live_check_late(&srv->live_checked, uv_now(srv->loop),
                             META_SRV_LIVE_TICK_MS))
        return;
    for (size_t i = 0; i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];

        meta_srv_state_update(srv, s);
        if (s->live == PROTO_SERVER_SUSPECT && !s->probing)
            probe_send(srv, s);
    }
}
