/* Tests for common/rpc.c: the blocking client against a peer listener
 * running on its own uv loop in a server thread (stopped and restarted on
 * the same port for the reconnect cases), and against a raw fake server
 * for handshake refusals.  The asynchronous calls are tested against the
 * same server: answers, error answers, timeouts, a lost connection with
 * calls in flight, and a reply for a request id nobody waits for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "metrics.h"
#include "net.h"
#include "peer.h"
#include "proto.h"
#include "auth.h"
#include "rpc.h"

#define DELAY_BIT (1ull << 63) /* PING cookie: answer after 50 ms */
#define MAX_PEERS 64

/* ---- The server thread ------------------------------------------------- */

struct srv {
    uv_loop_t loop;
    uv_async_t stop;
    struct peer_listener *l;
    pthread_t thread;
    int port;
    uint64_t instance;
    bool answer_statfs;
    bool secure; /* authenticate "client.a" (key 0x11...), require --secure */
    /* A metad replica that does not lead: every request but PING is
     * answered ENOTLEADER naming @leader ("" names none). */
    bool follower;
    char leader[64];
    int redirected;
    struct peer *peers[MAX_PEERS];
    int npeers;
    pthread_mutex_t mu; /* the counters below, read by the test thread */
    pthread_cond_t cv;
    bool started;
    int start_rc;
    int statfs_seen;
    uint64_t statfs_id;
};

struct delayed {
    uv_timer_t timer;
    struct peer *peer;
    uint64_t req_id;
    uint8_t payload[8];
};

struct callback_req { /* a SESSION_OPEN that asks the client back */
    struct peer *peer;
    uint64_t req_id;
};

static void on_delayed_closed(uv_handle_t *h)
{
    struct delayed *d = (struct delayed *)h;
    peer_unref(d->peer);
    free(d);
}

static void on_delay(uv_timer_t *t)
{
    struct delayed *d = (struct delayed *)t;
    peer_reply(d->peer, d->req_id, PROTO_MSG_PING_REP, 0, d->payload, 8);
    uv_close((uv_handle_t *)t, on_delayed_closed);
}

/* The client answered the server's PING: answer the SESSION_OPEN that
 * caused it with the same status and payload. */
static void on_client_answer(struct peer *p, int status, const uint8_t *payload,
                             size_t len, void *arg)
{
    struct callback_req *cb = arg;
    (void)p;
    peer_reply(cb->peer, cb->req_id, PROTO_MSG_SESSION_OPEN_REP, status,
               payload, len);
    peer_unref(cb->peer);
    free(cb);
}

/* How long the server's loop hangs on STATUS_REQ: past the watchdog's
 * silence and probe (2 s each). */
#define STALL_SLEEP_US 5000000

static void srv_on_request(struct peer *p, uint16_t opcode, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct srv *s = peer_get_listener_data(p);

    if (s->follower && opcode != PROTO_MSG_PING_REQ) {
        struct proto_not_leader m = {
            .leader = {s->leader, (uint32_t)strlen(s->leader)}};
        struct proto_wbuf w;
        proto_wbuf_init(&w);
        proto_not_leader_encode(&w, &m);
        peer_reply_wire(p, req_id, (uint16_t)(opcode + 1), PROTO_ENOTLEADER,
                        w.p, w.len);
        proto_wbuf_free(&w);
        pthread_mutex_lock(&s->mu);
        s->redirected++;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    switch (opcode) {
    case PROTO_MSG_PING_REQ: {
        struct proto_ping m;
        if (proto_ping_decode(payload, len, &m) == 0 &&
            (m.cookie & DELAY_BIT)) {
            struct delayed *d = calloc(1, sizeof(*d));
            assert_non_null(d);
            d->peer = p;
            peer_ref(p);
            d->req_id = req_id;
            memcpy(d->payload, payload, 8);
            uv_timer_init(&s->loop, &d->timer);
            uv_timer_start(&d->timer, on_delay, 50, 0);
            return;
        }
        peer_reply(p, req_id, PROTO_MSG_PING_REP, 0, payload, len);
        return;
    }
    case PROTO_MSG_GETATTR_REQ:
        peer_reply(p, req_id, PROTO_MSG_GETATTR_REP, -ENOENT, NULL, 0);
        return;
    case PROTO_MSG_MKDIR_REQ: /* a late answer first, then the real one */
        peer_reply(p, req_id - 1, PROTO_MSG_MKDIR_REP, 0, "stray", 5);
        peer_reply(p, req_id, PROTO_MSG_MKDIR_REP, 0, "mkdir", 5);
        return;
    case PROTO_MSG_RMDIR_REQ: /* an answer to an id never sent, first */
        peer_reply(p, req_id + 1000, PROTO_MSG_RMDIR_REP, 0, "stray", 5);
        peer_reply(p, req_id, PROTO_MSG_RMDIR_REP, 0, "rmdir", 5);
        return;
    case PROTO_MSG_LOOKUP_REQ: /* wrong reply opcode on purpose */
        peer_reply(p, req_id, PROTO_MSG_GETATTR_REP, 0, NULL, 0);
        return;
    case PROTO_MSG_STATFS_REQ:
        pthread_mutex_lock(&s->mu);
        s->statfs_seen++;
        s->statfs_id = req_id;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (s->answer_statfs)
            peer_reply(p, req_id, PROTO_MSG_STATFS_REP, 0, "statfs", 6);
        return;
    case PROTO_MSG_SESSION_OPEN_REQ: {
        struct callback_req *cb = calloc(1, sizeof(*cb));
        assert_non_null(cb);
        cb->peer = p;
        peer_ref(p);
        cb->req_id = req_id;
        assert_int_equal(peer_request(p, PROTO_MSG_PING_REQ, payload, len, 2000,
                                      on_client_answer, cb),
                         0);
        return;
    }
    case PROTO_MSG_STATUS_REQ: /* a server that hangs for a while */
        usleep(STALL_SLEEP_US);
        peer_reply(p, req_id, PROTO_MSG_STATUS_REP, 0, "up", 2);
        return;
    default:
        peer_reply(p, req_id, (uint16_t)(opcode + 1), -ENOSYS, NULL, 0);
    }
}

static void srv_on_ready(struct peer *p)
{
    struct srv *s = peer_get_listener_data(p);
    assert_true(s->npeers < MAX_PEERS);
    peer_ref(p);
    s->peers[s->npeers++] = p;
}

static void srv_on_close(struct peer *p, int status)
{
    struct srv *s = peer_get_listener_data(p);
    (void)status;
    for (int i = 0; i < s->npeers; i++) {
        if (s->peers[i] == p) {
            s->peers[i] = s->peers[--s->npeers];
            peer_unref(p);
            return;
        }
    }
}

static int srv_on_auth(struct peer *p, const struct proto_auth_req *req,
                       uint8_t key[32])
{
    (void)p;
    if (req->name.len != 8 || memcmp(req->name.p, "client.a", 8) != 0)
        return -EKEYREJECTED;
    memset(key, 0x11, 32);
    return 0;
}

static const struct peer_ops srv_ops = {
    .on_auth = srv_on_auth,
    .on_ready = srv_on_ready,
    .on_request = srv_on_request,
    .on_close = srv_on_close,
};

static void on_stop(uv_async_t *a)
{
    struct srv *s = a->data;
    struct peer *copy[MAX_PEERS];
    int n = s->npeers;

    memcpy(copy, s->peers, sizeof(copy));
    for (int i = 0; i < n; i++)
        peer_close(copy[i]);
    peer_listener_close(s->l);
    uv_close((uv_handle_t *)a, NULL);
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    char addr[64];
    int rc;

    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", s->port);
    rc = peer_listen(&s->loop, addr, &srv_ops, s, &s->l);
    if (rc == 0) {
        peer_listener_set_identity(s->l, "test-srv", s->instance);
        s->port = peer_listener_port(s->l);
        if (s->secure) {
            peer_listener_set_auth(s->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
            peer_listener_set_secure(s->l, true);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->started = true;
    s->start_rc = rc;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        uv_close((uv_handle_t *)&s->stop, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    return NULL;
}

/* Start a server on @port (0: any) answering with @instance; @secure:
 * it authenticates and requires secure links. */
static struct srv *srv_start_opts(int port, uint64_t instance,
                                  bool answer_statfs, bool secure)
{
    struct srv *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    s->secure = secure;
    s->port = port;
    s->instance = instance;
    s->answer_statfs = answer_statfs;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    pthread_mutex_lock(&s->mu);
    while (!s->started)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(s->start_rc, 0);
    return s;
}

static struct srv *srv_start(int port, uint64_t instance, bool answer_statfs)
{
    return srv_start_opts(port, instance, answer_statfs, false);
}

static void srv_stop(struct srv *s)
{
    if (!s)
        return;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static void srv_wait_statfs(struct srv *s, int n)
{
    pthread_mutex_lock(&s->mu);
    while (s->statfs_seen < n)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

/* ---- Fixture ----------------------------------------------------------- */

struct fix {
    struct srv *srv;
    struct rpc_client *c;
    char addr[160]; /* one address, or a list */
    struct rpc_opts opts;
    int requests, reconnects, reconnect_ping;
};

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_on_request(struct rpc_client *c, uint16_t opcode,
                              uint64_t req_id, const uint8_t *payload,
                              size_t len, void *arg)
{
    struct fix *f = arg;
    f->requests++;
    assert_int_equal(opcode, PROTO_MSG_PING_REQ);
    rpc_reply_send(c, req_id, PROTO_MSG_PING_REP, 0, payload, len);
}

static void client_on_reconnect(struct rpc_client *c, void *arg)
{
    struct fix *f = arg;
    struct proto_ping m = {.cookie = 77};
    struct proto_wbuf w;
    struct rpc_reply rep;

    f->reconnects++;
    proto_wbuf_init(&w);
    proto_ping_encode(&w, &m);
    if (rpc_call_raw(c, PROTO_MSG_PING_REQ, w.p, w.len, &rep) == 0) {
        f->reconnect_ping = rep.len == w.len;
        rpc_reply_free(&rep);
    }
    proto_wbuf_free(&w);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->srv = srv_start(0, 0xAAAA, false);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", f->srv->port);
    f->opts.role = PROTO_ROLE_CLIENT;
    f->opts.name = "test-rpc";
    f->opts.call_timeout_ms = 5000;
    f->opts.on_request = client_on_request;
    f->opts.arg = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    rpc_client_close(f->c);
    srv_stop(f->srv);
    free(f);
    return 0;
}

static void open_client(struct fix *f)
{
    assert_int_equal(rpc_client_open(f->addr, &f->opts, &f->c), 0);
}

static int ping(struct rpc_client *c, uint64_t cookie)
{
    struct proto_ping m = {.cookie = cookie}, out;
    struct proto_wbuf w;
    struct rpc_reply rep;
    int rc;

    proto_wbuf_init(&w);
    proto_ping_encode(&w, &m);
    rc = rpc_call_msg(c, PROTO_MSG_PING_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    rc = out.cookie == cookie ? 0 : -EBADMSG;
    rpc_reply_free(&rep);
    return rc;
}

/* ---- Tests ------------------------------------------------------------- */

static void test_rpc_call_ping(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;
    uint8_t cookie[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    open_client(f);
    assert_int_equal(rpc_server_instance(f->c), 0xAAAA);
    assert_int_equal(rpc_call(f->c, PROTO_MSG_PING_REQ, cookie, 8, &rep), 0);
    assert_int_equal(rep.opcode, PROTO_MSG_PING_REP);
    assert_int_equal(rep.status, 0);
    assert_int_equal(rep.len, 8);
    assert_memory_equal(rep.payload, cookie, 8);
    rpc_reply_free(&rep);
    assert_null(rep.payload);
}

static void test_rpc_call_msg_decodes_reply(void **state)
{
    struct fix *f = *state;
    struct proto_wbuf w;
    struct rpc_reply rep;
    struct proto_ping out;

    open_client(f);
    assert_int_equal(ping(f->c, 0x0102030405060708ull), 0);
    /* An encoder error is returned without a call. */
    proto_wbuf_init(&w);
    w.err = -EMSGSIZE;
    assert_int_equal(rpc_call_msg(f->c, PROTO_MSG_PING_REQ, &w, &rep, &out),
                     -EMSGSIZE);
    /* A reply that does not decode as its body is -EPROTO. */
    proto_wbuf_init(&w);
    proto_put_u8(&w, 1);
    assert_int_equal(rpc_call_msg(f->c, PROTO_MSG_PING_REQ, &w, &rep, &out),
                     -EPROTO);
    assert_null(rep.payload);
    proto_wbuf_free(&w);
}

static void test_rpc_call_error_status(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;

    open_client(f);
    assert_int_equal(rpc_call(f->c, PROTO_MSG_GETATTR_REQ, "12345678", 8, &rep),
                     -ENOENT);
    assert_null(rep.payload);
    assert_int_equal(rep.len, 0);
    assert_int_equal(rpc_call(f->c, 0x7F01, NULL, 0, &rep), -ENOSYS);
}

static void test_rpc_call_wrong_reply_opcode(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;

    open_client(f);
    assert_int_equal(rpc_call(f->c, PROTO_MSG_LOOKUP_REQ, NULL, 0, &rep),
                     -EPROTO);
    assert_null(rep.payload);
}

static void test_rpc_call_timeout(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;
    uint64_t t0;

    f->opts.call_timeout_ms = 100;
    open_client(f);
    t0 = ms_now();
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep),
                     -ETIMEDOUT);
    assert_true(ms_now() - t0 >= 90);
    assert_int_equal(ping(f->c, 5), 0); /* still usable */
}

struct worker {
    struct rpc_client *c;
    int id, ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 100; i++) {
        uint64_t cookie = ((uint64_t)w->id << 32) | (uint64_t)i;
        if (i % 25 == 0)
            cookie |= DELAY_BIT;
        if (ping(w->c, cookie) == 0)
            w->ok++;
    }
    return NULL;
}

static void test_rpc_call_concurrent_threads(void **state)
{
    struct fix *f = *state;
    struct worker w[8];
    pthread_t t[8];

    open_client(f);
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.c = f->c, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 100);
    }
}

struct slow {
    struct rpc_client *c;
    int rc;
    volatile int done;
};

static void *slow_main(void *arg)
{
    struct slow *s = arg;
    s->rc = ping(s->c, DELAY_BIT | 42);
    s->done = 1;
    return NULL;
}

static void test_rpc_call_replies_out_of_order(void **state)
{
    struct fix *f = *state;
    struct slow s = {0};
    pthread_t t;

    open_client(f);
    s.c = f->c;
    assert_int_equal(pthread_create(&t, NULL, slow_main, &s), 0);
    usleep(10000);
    assert_int_equal(ping(f->c, 43), 0); /* answered before the slow one */
    assert_int_equal(s.done, 0);
    pthread_join(t, NULL);
    assert_int_equal(s.rc, 0);
}

static void test_rpc_on_request_from_server(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;

    open_client(f);
    assert_int_equal(
        rpc_call(f->c, PROTO_MSG_SESSION_OPEN_REQ, "cookie!!", 8, &rep), 0);
    assert_int_equal(rep.len, 8);
    assert_memory_equal(rep.payload, "cookie!!", 8);
    rpc_reply_free(&rep);
    assert_int_equal(f->requests, 1);
}

static void test_rpc_on_request_unset_answers_enosys(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;

    f->opts.on_request = NULL;
    open_client(f);
    assert_int_equal(
        rpc_call(f->c, PROTO_MSG_SESSION_OPEN_REQ, "cookie!!", 8, &rep),
        -ENOSYS);
}

struct pending_call {
    struct rpc_client *c;
    int rc;
    struct rpc_reply rep;
};

static void *statfs_main(void *arg)
{
    struct pending_call *pc = arg;
    pc->rc = rpc_call(pc->c, PROTO_MSG_STATFS_REQ, NULL, 0, &pc->rep);
    return NULL;
}

static void test_rpc_reconnect_resends_pending(void **state)
{
    struct fix *f = *state;
    struct pending_call pc = {0};
    uint64_t first_id;
    int port = f->srv->port;
    pthread_t t;

    f->opts.reconnect_ms = 5000;
    f->opts.on_reconnect = client_on_reconnect;
    open_client(f);
    pc.c = f->c;
    assert_int_equal(pthread_create(&t, NULL, statfs_main, &pc), 0);
    srv_wait_statfs(f->srv, 1); /* the first server never answers it */
    first_id = f->srv->statfs_id;
    srv_stop(f->srv);
    f->srv = NULL;
    usleep(100000);
    f->srv = srv_start(port, 0xBBBB, true);
    pthread_join(t, NULL);
    assert_int_equal(pc.rc, 0);
    assert_int_equal(pc.rep.len, 6);
    assert_memory_equal(pc.rep.payload, "statfs", 6);
    rpc_reply_free(&pc.rep);
    assert_int_equal(f->srv->statfs_seen, 1);
    assert_int_equal(f->srv->statfs_id, first_id); /* same request id */
    assert_int_equal(f->reconnects, 1);
    assert_int_equal(f->reconnect_ping, 1);
    assert_int_equal(rpc_server_instance(f->c), 0xBBBB);
    assert_int_equal(ping(f->c, 9), 0);
}

static int cred_secure(void *arg, struct auth_cred *out)
{
    (void)arg;
    memset(out, 0, sizeof(*out));
    out->method = PROTO_AUTH_KEY;
    strcpy(out->name, "client.a");
    memset(out->key, 0x11, sizeof(out->key));
    out->secure = true;
    return 0;
}

static int cred_plain(void *arg, struct auth_cred *out)
{
    int rc = cred_secure(arg, out);
    out->secure = false;
    return rc;
}

/* Over a secure link: calls from many threads, a reconnect, and a plain
 * client refused by the server that requires secure links. */
static void test_rpc_secure_link(void **state)
{
    struct fix *f = *state;
    struct pending_call pc = {0};
    int port;
    pthread_t t;

    srv_stop(f->srv);
    f->srv = srv_start_opts(0, 0xAAAA, false, true);
    port = f->srv->port;
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", port);
    f->opts.get_cred = cred_plain;
    assert_int_equal(rpc_client_open(f->addr, &f->opts, &f->c), -ENOPROTOOPT);
    f->c = NULL;
    f->opts.get_cred = cred_secure;
    f->opts.reconnect_ms = 5000;
    open_client(f);
    for (uint64_t i = 1; i <= 50; i++)
        assert_int_equal(ping(f->c, i), 0);
    pc.c = f->c;
    assert_int_equal(pthread_create(&t, NULL, statfs_main, &pc), 0);
    srv_wait_statfs(f->srv, 1);
    srv_stop(f->srv);
    f->srv = srv_start_opts(port, 0xBBBB, true, true);
    pthread_join(t, NULL);
    assert_int_equal(pc.rc, 0);
    assert_memory_equal(pc.rep.payload, "statfs", 6);
    rpc_reply_free(&pc.rep);
    assert_int_equal(rpc_server_instance(f->c), 0xBBBB);
    assert_int_equal(ping(f->c, 99), 0);
}

static void test_rpc_reconnect_disabled_fails(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;

    open_client(f);
    srv_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep),
                     -ENOTCONN);
    assert_int_equal(ping(f->c, 1), -ENOTCONN);
}

static void test_rpc_reconnect_gives_up(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;
    uint64_t t0;

    f->opts.reconnect_ms = 300;
    open_client(f);
    srv_stop(f->srv);
    f->srv = NULL;
    t0 = ms_now();
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep),
                     -ENOTCONN);
    assert_true(ms_now() - t0 >= 250);
    assert_true(ms_now() - t0 < 3000);
    /* Raw calls never wait for a connection. */
    assert_int_equal(rpc_call_raw(f->c, PROTO_MSG_PING_REQ, NULL, 0, &rep),
                     -ENOTCONN);
}

/* A client closing (rpc_client_wind_down()) does not wait out a server
 * that answers nothing: the call gives up once it was silent for the
 * bound, not at call_timeout_ms, and the next call gives up at once. */
static void test_rpc_wind_down_silent_server(void **state)
{
    struct fix *f = *state;
    struct rpc_reply rep;
    uint64_t t0;

    f->opts.call_timeout_ms = 20000;
    open_client(f);
    rpc_client_wind_down(f->c, 200);
    t0 = ms_now();
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep),
                     -ETIMEDOUT);
    assert_true(ms_now() - t0 >= 150);
    assert_true(ms_now() - t0 < 10000);
    t0 = ms_now();
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep),
                     -ETIMEDOUT);
    assert_true(ms_now() - t0 < 150);
}

struct waiter {
    struct rpc_client *c;
    int rc;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct rpc_reply rep;

    w->rc = rpc_call(w->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep);
    return NULL;
}

/* A call already waiting for a server that is gone takes the bound at
 * once: it fails once the server has been down that long, not after
 * reconnect_ms. */
static void test_rpc_wind_down_waiting_call(void **state)
{
    struct fix *f = *state;
    struct waiter w = {.rc = 1};
    pthread_t th;
    uint64_t t0;

    f->opts.reconnect_ms = 20000;
    open_client(f);
    srv_stop(f->srv);
    f->srv = NULL;
    w.c = f->c;
    t0 = ms_now();
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    usleep(100 * 1000);
    rpc_client_wind_down(f->c, 200);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, -ENOTCONN);
    assert_true(ms_now() - t0 < 10000);
}

/* A follower of a metad group that names @leader ("" none). */
static struct srv *follower_start(const char *leader)
{
    struct srv *s = srv_start(0, 0xF011, false);
    snprintf(s->leader, sizeof(s->leader), "%s", leader);
    s->follower = true; /* read by the server thread from its next request */
    return s;
}

/* Open f->addr, whose first replica is the follower @fol, and STATFS:
 * answered by the leader f->srv after one redirect; @fol stops. */
static void statfs_through(struct fix *f, struct srv *fol)
{
    struct rpc_reply rep;

    open_client(f);
    assert_int_equal(rpc_call(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, &rep), 0);
    assert_int_equal(rep.len, 6);
    assert_memory_equal(rep.payload, "statfs", 6);
    rpc_reply_free(&rep);
    assert_int_equal(fol->redirected, 1);
    assert_int_equal(f->srv->statfs_seen, 1);
    rpc_client_close(f->c);
    f->c = NULL;
    srv_stop(fol);
}

/* docs/protocol.md §5.3: a call answered ENOTLEADER goes to the leader
 * the answer names and is answered there, even by a client that does not
 * redial lost connections (the admin tool). */
static void test_rpc_follows_not_leader(void **state)
{
    struct fix *f = *state;
    struct srv *fol;

    f->srv->answer_statfs = true;
    fol = follower_start(f->addr);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", fol->port);
    statfs_through(f, fol);
}

/* A follower that knows no leader (an election): the next address. */
static void test_rpc_not_leader_unnamed_tries_next(void **state)
{
    struct fix *f = *state;
    struct srv *fol = follower_start("");
    char leader[64];

    f->srv->answer_statfs = true;
    snprintf(leader, sizeof(leader), "%.63s", f->addr);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d,%s", fol->port, leader);
    f->opts.reconnect_ms = 5000;
    statfs_through(f, fol);
}

/* A list whose first address is down: the open dials the next. */
static void test_rpc_open_tries_each_address(void **state)
{
    struct fix *f = *state;
    struct srv *gone = srv_start(0, 0xDEAD, false);
    char up[64];

    snprintf(up, sizeof(up), "%.63s", f->addr);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d,%s", gone->port, up);
    srv_stop(gone);
    open_client(f);
    assert_int_equal(ping(f->c, 5), 0);
    assert_int_equal(rpc_server_instance(f->c), 0xAAAA);
}

static void test_rpc_open_refused(void **state)
{
    struct fix *f = *state;
    struct rpc_client *c;
    char addr[64];
    int port = f->srv->port;

    srv_stop(f->srv);
    f->srv = NULL;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(rpc_client_open(addr, &f->opts, &c), -ECONNREFUSED);
    assert_int_equal(rpc_client_open("bad address", &f->opts, &c), -EINVAL);
}

/* A fake server that answers the HELLO with @status, on a raw socket. */
struct fake {
    int lfd, port;
    int32_t status;
};

static void *fake_main(void *arg)
{
    struct fake *fk = arg;
    uint8_t hdr[PROTO_HDR_SIZE], buf[512];
    struct proto_hdr h;
    int fd = accept(fk->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    if (net_read_all(fd, hdr, sizeof(hdr)) == 0 &&
        proto_hdr_decode(hdr, &h) == 0 && h.length <= sizeof(buf) &&
        net_read_all(fd, buf, h.length) == 0) {
        struct proto_hdr r = {PROTO_FRAME_VERSION, PROTO_FLAG_REPLY,
                              PROTO_MSG_HELLO_REP, h.req_id,
                              fk->status,          0};
        proto_hdr_encode(&r, hdr);
        net_write_all(fd, hdr, sizeof(hdr));
    }
    close(fd);
    return NULL;
}

static void open_against_fake(int32_t status, int want)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    struct fake fk = {.status = status};
    struct rpc_opts opts = {.role = PROTO_ROLE_ADMIN, .name = "x"};
    struct rpc_client *c = NULL;
    char addr[64];
    pthread_t t;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fk.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fk.lfd >= 0);
    assert_int_equal(bind(fk.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fk.lfd, 1), 0);
    getsockname(fk.lfd, (struct sockaddr *)&sa, &sl);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&t, NULL, fake_main, &fk), 0);
    assert_int_equal(rpc_client_open(addr, &opts, &c), want);
    assert_null(c);
    pthread_join(t, NULL);
    close(fk.lfd);
}

static void test_rpc_open_version_mismatch(void **state)
{
    (void)state;
    open_against_fake(PROTO_EVERSION, -EPROTONOSUPPORT);
}

static void test_rpc_open_hello_status_ok_without_body(void **state)
{
    (void)state;
    /* A HELLO_REP with status 0 but no body is malformed. */
    open_against_fake(PROTO_OK, -EPROTO);
}

/* ---- Asynchronous calls ------------------------------------------------ */

#define ASYNC_MAX 8

/* What the completions of a test saw, filled on the client's threads. */
struct async_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    int status[ASYNC_MAX];
    uint32_t len[ASYNC_MAX];
    char data[ASYNC_MAX][16];
    bool on_caller[ASYNC_MAX];
    pthread_t caller;
};

struct async_slot {
    struct async_log *log;
    int i;
};

static void async_log_init(struct async_log *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->caller = pthread_self();
}

static void async_done(void *arg, int status, struct rpc_reply *rep)
{
    struct async_slot *s = arg;
    struct async_log *l = s->log;

    pthread_mutex_lock(&l->mu);
    l->status[s->i] = status;
    l->len[s->i] = rep->len;
    if (rep->len && rep->len < sizeof(l->data[0]))
        memcpy(l->data[s->i], rep->payload, rep->len);
    l->on_caller[s->i] = pthread_equal(pthread_self(), l->caller);
    l->n++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    rpc_reply_free(rep);
}

/* Wait until @n completions came, for at most @ms; returns how many. */
static int async_wait(struct async_log *l, int n, int ms)
{
    uint64_t end = ms_now() + (uint64_t)ms;
    int got;

    pthread_mutex_lock(&l->mu);
    while (l->n < n && ms_now() < end) {
        pthread_mutex_unlock(&l->mu);
        usleep(2000);
        pthread_mutex_lock(&l->mu);
    }
    got = l->n;
    pthread_mutex_unlock(&l->mu);
    return got;
}

static void async_log_destroy(struct async_log *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

static void test_rpc_async_answers_on_reader_thread(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s[2] = {{&l, 0}, {&l, 1}};
    struct proto_ping m = {.cookie = 42};
    struct proto_wbuf w;

    async_log_init(&l);
    open_client(f);
    proto_wbuf_init(&w);
    proto_ping_encode(&w, &m);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_PING_REQ, w.p, w.len, async_done, &s[0]),
        0);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_GETATTR_REQ, NULL, 0, async_done, &s[1]),
        0);
    proto_wbuf_free(&w);
    assert_int_equal(async_wait(&l, 2, 5000), 2);
    assert_int_equal(l.status[0], 0);
    assert_int_equal(l.len[0], 8);
    assert_false(l.on_caller[0]);
    assert_int_equal(l.status[1], -ENOENT); /* an error answer */
    assert_int_equal(l.len[1], 0);
    async_log_destroy(&l);
}

static void test_rpc_async_wrong_reply_opcode(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s = {&l, 0};

    async_log_init(&l);
    open_client(f);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_LOOKUP_REQ, NULL, 0, async_done, &s), 0);
    assert_int_equal(async_wait(&l, 1, 5000), 1);
    assert_int_equal(l.status[0], -EPROTO);
    async_log_destroy(&l);
}

static void test_rpc_async_reply_for_unknown_id_is_dropped(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s = {&l, 0};

    async_log_init(&l);
    open_client(f);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_MKDIR_REQ, NULL, 0, async_done, &s), 0);
    assert_int_equal(async_wait(&l, 1, 5000), 1);
    usleep(20000); /* nothing else may complete */
    assert_int_equal(l.n, 1);
    assert_int_equal(l.status[0], 0);
    assert_int_equal(l.len[0], 5);
    assert_memory_equal(l.data[0], "mkdir", 5);
    assert_int_equal(ping(f->c, 3), 0); /* the connection lives on */
    async_log_destroy(&l);
}

/* docs/protocol.md §2.2: a reply to an id never sent is malformed: the
 * connection closes and the call fails, its real answer unread. */
static void test_rpc_async_reply_for_never_sent_id_closes(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s = {&l, 0};

    async_log_init(&l);
    f->opts.reconnect_ms = 5000;
    open_client(f);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_RMDIR_REQ, NULL, 0, async_done, &s), 0);
    assert_int_equal(async_wait(&l, 1, 5000), 1);
    assert_int_equal(l.status[0], -ENOTCONN);
    assert_int_equal(ping(f->c, 5), 0); /* a new connection serves */
    async_log_destroy(&l);
}

/* The value of the unlabelled sample @name in rpc_metrics_render(). */
static long stall_metric(const char *name)
{
    struct metrics_buf b;
    char key[128];
    long v = -1;

    metrics_buf_init(&b);
    rpc_metrics_render(&b);
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = b.p ? strstr(b.p, key) : NULL;
    if (at)
        v = strtol(at + strlen(key), NULL, 10);
    metrics_buf_free(&b);
    return v;
}

/* A call that waits long while the server answers other calls (a long
 * poll) is no stall; a server whose loop hangs and so answers nothing, a
 * PING included, is counted stalled (and logged) until it answers
 * again. */
static void test_rpc_stalled_server_is_reported(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s[2] = {{&l, 0}, {&l, 1}};
    long total;

    async_log_init(&l);
    f->opts.call_timeout_ms = 20000;
    open_client(f);
    assert_int_equal(stall_metric("tessera_client_stalled_connections"), 0);
    total = stall_metric("tessera_client_stalls_total");
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, async_done, &s[0]),
        0);
    usleep(4500000); /* past the silence and the probe */
    assert_int_equal(stall_metric("tessera_client_stalls_total"), total);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_STATUS_REQ, NULL, 0, async_done, &s[1]),
        0);
    for (int i = 0;
         i < 100 && stall_metric("tessera_client_stalled_connections") == 0;
         i++)
        usleep(100000);
    assert_int_equal(stall_metric("tessera_client_stalled_connections"), 1);
    assert_int_equal(stall_metric("tessera_client_stalls_total"), total + 1);
    assert_int_equal(async_wait(&l, 1, 10000), 1); /* STATUS answered */
    assert_int_equal(l.status[1], 0);
    assert_int_equal(stall_metric("tessera_client_stalled_connections"), 0);
    rpc_client_close(f->c);
    f->c = NULL;
    assert_int_equal(async_wait(&l, 2, 5000), 2);
    assert_int_equal(l.status[0], -ENOTCONN);
    async_log_destroy(&l);
}

static void test_rpc_async_timeout(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s = {&l, 0};
    uint64_t t0;

    async_log_init(&l);
    f->opts.call_timeout_ms = 150;
    open_client(f);
    t0 = ms_now();
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, async_done, &s), 0);
    assert_int_equal(async_wait(&l, 1, 5000), 1);
    assert_int_equal(l.status[0], -ETIMEDOUT);
    assert_true(ms_now() - t0 >= 140);
    assert_false(l.on_caller[0]);
    assert_int_equal(ping(f->c, 4), 0); /* still usable */
    async_log_destroy(&l);
}

static void test_rpc_async_connection_lost_in_flight(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s[3] = {{&l, 0}, {&l, 1}, {&l, 2}};
    int port = f->srv->port;

    async_log_init(&l);
    f->opts.reconnect_ms = 5000;
    open_client(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rpc_call_async(f->c, PROTO_MSG_STATFS_REQ, NULL, 0,
                                        async_done, &s[i]),
                         0);
    srv_wait_statfs(f->srv, 3); /* all three are unanswered on the server */
    srv_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(async_wait(&l, 3, 5000), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l.status[i], -ENOTCONN);
    /* While down, a new asynchronous call is refused at once. */
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, async_done, &s[0]),
        -ENOTCONN);
    /* The calls are not resent to the next server. */
    f->srv = srv_start(port, 0xCCCC, true);
    assert_int_equal(ping(f->c, 8), 0);
    assert_int_equal(f->srv->statfs_seen, 0);
    assert_int_equal(l.n, 3);
    async_log_destroy(&l);
}

static void test_rpc_async_close_completes_pending(void **state)
{
    struct fix *f = *state;
    struct async_log l;
    struct async_slot s = {&l, 0};

    async_log_init(&l);
    open_client(f);
    assert_int_equal(
        rpc_call_async(f->c, PROTO_MSG_STATFS_REQ, NULL, 0, async_done, &s), 0);
    srv_wait_statfs(f->srv, 1);
    rpc_client_close(f->c);
    f->c = NULL;
    assert_int_equal(l.n, 1);
    assert_int_equal(l.status[0], -ENOTCONN);
    async_log_destroy(&l);
}

int test_rpc(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_rpc_call_ping),
        T(test_rpc_call_msg_decodes_reply),
        T(test_rpc_call_error_status),
        T(test_rpc_call_wrong_reply_opcode),
        T(test_rpc_call_timeout),
        T(test_rpc_call_concurrent_threads),
        T(test_rpc_call_replies_out_of_order),
        T(test_rpc_on_request_from_server),
        T(test_rpc_on_request_unset_answers_enosys),
        T(test_rpc_reconnect_resends_pending),
        T(test_rpc_secure_link),
        T(test_rpc_reconnect_disabled_fails),
        T(test_rpc_reconnect_gives_up),
        T(test_rpc_wind_down_silent_server),
        T(test_rpc_wind_down_waiting_call),
        T(test_rpc_follows_not_leader),
        T(test_rpc_not_leader_unnamed_tries_next),
        T(test_rpc_open_tries_each_address),
        T(test_rpc_open_refused),
        T(test_rpc_async_answers_on_reader_thread),
        T(test_rpc_async_wrong_reply_opcode),
        T(test_rpc_async_reply_for_unknown_id_is_dropped),
        T(test_rpc_async_reply_for_never_sent_id_closes),
        T(test_rpc_stalled_server_is_reported),
        T(test_rpc_async_timeout),
        T(test_rpc_async_connection_lost_in_flight),
        T(test_rpc_async_close_completes_pending),
        cmocka_unit_test(test_rpc_open_version_mismatch),
        cmocka_unit_test(test_rpc_open_hello_status_ok_without_body),
#undef T
    };
    return cmocka_run_group_tests_name("common/rpc", tests, NULL, NULL);
}
