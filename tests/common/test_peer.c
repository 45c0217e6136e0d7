/* Tests for common/peer.c: a listener and dialled peers on one uv loop in
 * this thread, plus raw blocking sockets for the misbehaving-client cases
 * (the loop is run between their writes and reads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "conn_limit.h"
#include "net.h"
#include "peer.h"
#include "proto.h"

#define MAX_STASH 128

/* What the hooks saw on one side (server = accepted peers). */
struct side {
    int ready, closed, close_status, hello_calls, requests;
    int hello_rc;         /* what on_hello returns */
    int results_at_close; /* completed results when on_close ran */
    struct peer *peer;    /* last peer seen on this side */
    int nstash;           /* STATFS requests kept unanswered */
    uint64_t stash_id[MAX_STASH];
    uint32_t big_reply; /* CHUNK_READ reply size */
};

/* One reply callback's record. */
struct result {
    int calls, status, order;
    size_t len;
    uint8_t data[64];
};

struct fix {
    uv_loop_t loop;
    uv_timer_t tick;
    struct peer_listener *l;
    char addr[64];
    struct side srv, cli;
    struct peer *client;
    int seq, completed;
};

static struct fix *F;

static struct side *side_of(struct peer *p)
{
    return peer_get_listener_data(p) ? &F->srv : &F->cli;
}

/* Keep a reference to the last peer each side saw, so tests may look at
 * it after on_close; teardown drops it. */
static void remember(struct side *s, struct peer *p)
{
    if (s->peer == p)
        return;
    peer_unref(s->peer);
    peer_ref(p);
    s->peer = p;
}

static int on_hello(struct peer *p, const struct proto_hello_req *hello)
{
    (void)hello;
    F->srv.hello_calls++;
    remember(&F->srv, p);
    return F->srv.hello_rc;
}

static void on_ready(struct peer *p)
{
    struct side *s = side_of(p);
    s->ready++;
    remember(s, p);
}

static void on_request(struct peer *p, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len)
{
    struct side *s = side_of(p);
    static uint8_t *big;

    s->requests++;
    switch (opcode) {
    case PROTO_MSG_PING_REQ:
        peer_reply(p, req_id, PROTO_MSG_PING_REP, 0, payload, len);
        break;
    case PROTO_MSG_STATFS_REQ:
        assert_true(s->nstash < MAX_STASH);
        s->stash_id[s->nstash++] = req_id;
        break;
    case PROTO_MSG_GETATTR_REQ:
        peer_reply(p, req_id, PROTO_MSG_GETATTR_REP, -ENOENT, "x", 1);
        break;
    case PROTO_MSG_CHUNK_READ_REQ:
        big = calloc(1, s->big_reply);
        assert_non_null(big);
        peer_reply(p, req_id, PROTO_MSG_CHUNK_READ_REP, 0, big, s->big_reply);
        free(big);
        break;
    default:
        peer_reply(p, req_id, (uint16_t)(opcode + 1), -ENOSYS, NULL, 0);
    }
}

static void on_close(struct peer *p, int status)
{
    struct side *s = side_of(p);
    s->closed++;
    s->close_status = status;
    s->results_at_close = F->completed;
}

/* The listener's one identity: "client.a" with key 0x11... */
static int on_auth(struct peer *p, const struct proto_auth_req *req,
                   uint8_t key[32])
{
    (void)p;
    if (req->name.len != 8 || memcmp(req->name.p, "client.a", 8) != 0)
        return -EKEYREJECTED;
    memset(key, 0x11, 32);
    return 0;
}

static const struct peer_ops ops = {
    .on_hello = on_hello,
    .on_auth = on_auth,
    .on_ready = on_ready,
    .on_request = on_request,
    .on_close = on_close,
};

static void on_result(struct peer *p, int status, const uint8_t *payload,
                      size_t len, void *arg)
{
    struct result *r = arg;

    (void)p;
    r->calls++;
    r->status = status;
    r->order = ++F->seq;
    r->len = len;
    if (len && len <= sizeof(r->data))
        memcpy(r->data, payload, len);
    F->completed++;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until @cond holds, for at most 5 s. */
#define RUN_UNTIL(cond)                                                        \
    do {                                                                       \
        uint64_t until_ = uv_now(&F->loop) + 5000;                             \
        while (!(cond) && uv_now(&F->loop) < until_)                           \
            uv_run(&F->loop, UV_RUN_ONCE);                                     \
        assert_true(cond);                                                     \
    } while (0)

/* Run the loop for @ms milliseconds. */
static void run_for(unsigned ms)
{
    uint64_t until = uv_now(&F->loop) + ms;
    while (uv_now(&F->loop) < until)
        uv_run(&F->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    F = calloc(1, sizeof(*F));
    assert_non_null(F);
    assert_int_equal(uv_loop_init(&F->loop), 0);
    uv_timer_init(&F->loop, &F->tick);
    uv_timer_start(&F->tick, on_tick, 5, 5);
    assert_int_equal(peer_listen(&F->loop, "127.0.0.1:0", &ops, F, &F->l), 0);
    assert_int_equal(peer_listener_set_identity(F->l, "test-server", 0x1234),
                     0);
    snprintf(F->addr, sizeof(F->addr), "127.0.0.1:%d",
             peer_listener_port(F->l));
    *state = F;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (F->client) {
        peer_close(F->client);
        peer_unref(F->client);
    }
    if (F->srv.peer)
        peer_close(F->srv.peer);
    if (F->l)
        peer_listener_close(F->l);
    uv_close((uv_handle_t *)&F->tick, NULL);
    uv_run(&F->loop, UV_RUN_DEFAULT);
    peer_unref(F->srv.peer);
    peer_unref(F->cli.peer);
    assert_int_equal(uv_loop_close(&F->loop), 0); /* every handle closed */
    free(F);
    F = NULL;
    return 0;
}

static void connect_ready(void)
{
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT,
                                  "test-client", &ops, F, &F->client),
                     0);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
}

/* Dial as "client.a" with key bytes @fill (0: no credential). */
static void connect_auth(uint8_t fill)
{
    struct auth_cred c = {.method = PROTO_AUTH_KEY, .name = "client.a"};

    memset(c.key, fill, sizeof(c.key));
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT,
                                  "test-client", &ops, F, &F->client),
                     0);
    if (fill)
        assert_int_equal(peer_set_cred(F->client, &c), 0);
}

/* Dial as "client.a" with key bytes @fill asking for a secure link. */
static void connect_secure(uint8_t fill)
{
    struct auth_cred c = {
        .method = PROTO_AUTH_KEY, .name = "client.a", .secure = true};

    memset(c.key, fill, sizeof(c.key));
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT,
                                  "test-client", &ops, F, &F->client),
                     0);
    assert_int_equal(peer_set_cred(F->client, &c), 0);
}

/* The dialled peer closes with @status, never READY on the server. */
static void expect_refused(int status)
{
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, status);
    assert_int_equal(F->srv.ready, 0);
}

/* ---- Raw sockets ------------------------------------------------------- */

static int raw_connect(void)
{
    int fd = net_connect(F->addr, 1000);
    assert_true(fd >= 0);
    return fd;
}

static void raw_send(int fd, uint8_t flags, uint16_t opcode, uint64_t id,
                     const void *payload, size_t len)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    struct proto_hdr h = {PROTO_FRAME_VERSION, flags, opcode, id, 0,
                          (uint32_t)len};

    proto_hdr_encode(&h, hdr);
    assert_int_equal(net_write_all(fd, hdr, sizeof(hdr)), 0);
    if (len)
        assert_int_equal(net_write_all(fd, payload, len), 0);
}

static void raw_hello(int fd, uint64_t id, uint16_t min, uint16_t max)
{
    struct proto_hello_req m = {min, max, PROTO_ROLE_ADMIN, 0, 0, {"raw", 3}};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    assert_int_equal(w.err, 0);
    raw_send(fd, 0, PROTO_MSG_HELLO_REQ, id, w.p, w.len);
    proto_wbuf_free(&w);
}

/* Read exactly @n bytes from @fd, running the loop while none are
 * available.  0, -ECONNRESET on EOF, -ETIMEDOUT after 5 s. */
static int raw_read(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    uint64_t until = uv_now(&F->loop) + 5000;

    while (n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) == 1) {
            ssize_t k = recv(fd, p, n, 0);
            if (k <= 0)
                return -ECONNRESET;
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (uv_now(&F->loop) >= until)
            return -ETIMEDOUT;
        uv_run(&F->loop, UV_RUN_ONCE);
    }
    return 0;
}

/* Read one frame's header; skip up to @cap payload bytes into @payload. */
static void raw_frame(int fd, struct proto_hdr *h, void *payload, size_t cap)
{
    uint8_t hdr[PROTO_HDR_SIZE];

    assert_int_equal(raw_read(fd, hdr, sizeof(hdr)), 0);
    assert_int_equal(proto_hdr_decode(hdr, h), 0);
    assert_true(h->length <= cap);
    if (h->length)
        assert_int_equal(raw_read(fd, payload, h->length), 0);
}

/* ---- Tests ------------------------------------------------------------- */

static void test_peer_connect_handshake(void **state)
{
    char want[64];

    (void)state;
    connect_ready();
    assert_int_equal(F->srv.hello_calls, 1);
    assert_int_equal(peer_role(F->srv.peer), PROTO_ROLE_CLIENT);
    assert_string_equal(peer_remote_name(F->srv.peer), "test-client");
    assert_string_equal(peer_remote_name(F->client), "test-server");
    assert_int_equal(peer_remote_instance(F->client), 0x1234);
    assert_int_equal(peer_version(F->client), PROTO_VERSION_MAX);
    assert_int_equal(peer_version(F->srv.peer), PROTO_VERSION_MAX);
    assert_string_equal(peer_name(F->client), F->addr);
    assert_ptr_equal(peer_data(F->client), F);
    assert_ptr_equal(peer_get_listener_data(F->srv.peer), F);
    assert_null(peer_data(F->srv.peer));
    snprintf(want, sizeof(want), "127.0.0.1:");
    assert_memory_equal(peer_name(F->srv.peer), want, strlen(want));
    assert_false(peer_is_closed(F->client));
}

static void test_peer_auth_right_key(void **state)
{
    struct result r = {0};

    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    connect_auth(0x11);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
    assert_string_equal(peer_identity(F->srv.peer), "client.a");
    assert_string_equal(peer_identity(F->client), "");
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, "x", 1, 0, on_result, &r),
        0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
}

/* A wrong key is refused with EAUTH and the listener goes on serving the
 * next peer. */
static void test_peer_auth_wrong_key(void **state)
{
    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    connect_auth(0x12);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, -EKEYREJECTED);
    assert_int_equal(F->cli.ready, 0);
    assert_int_equal(F->srv.ready, 0);
    peer_unref(F->client);
    connect_auth(0x11);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
}

static void test_peer_auth_no_key(void **state)
{
    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    connect_auth(0);
    expect_refused(-EKEYREJECTED);
}

/* A peer with a key does not talk to a responder that does not prove it
 * knows the key too. */
static void test_peer_auth_responder_must_prove(void **state)
{
    (void)state;
    connect_auth(0x11);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, -EKEYREJECTED);
    assert_int_equal(F->cli.ready, 0);
}

/* A peer that says HELLO and never answers the challenge is cut off. */
static void test_peer_auth_silent_cut_off(void **state)
{
    struct proto_hello_req m = {
        1, 1, PROTO_ROLE_ADMIN, 0, PROTO_AUTH_BIT(PROTO_AUTH_KEY), {"raw", 3}};
    uint8_t buf[512];
    struct proto_hello_rep rep;
    struct proto_wbuf w;
    struct proto_hdr h;
    int fd;

    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    peer_listener_set_hello_timeout(F->l, 200);
    fd = raw_connect();
    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    raw_send(fd, 0, PROTO_MSG_HELLO_REQ, 1, w.p, w.len);
    proto_wbuf_free(&w);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.status, 0);
    assert_int_equal(proto_hello_rep_decode(buf, h.length, &rep), 0);
    assert_int_equal(rep.auth_method, PROTO_AUTH_KEY);
    /* A request before AUTH is refused, then the timer cuts it off. */
    raw_send(fd, 0, PROTO_MSG_PING_REQ, 2, "12345678", 8);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.status, PROTO_EHANDSHAKE);
    assert_int_equal(raw_read(fd, buf, 1), -ECONNRESET);
    close(fd);
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -ETIMEDOUT);
}

static void test_peer_request_reply(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_PING_REQ, "hello", 5, 0,
                                  on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    assert_int_equal(F->srv.requests, 1);
}

static void test_peer_request_from_server(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->srv.peer, PROTO_MSG_PING_REQ, "back", 4,
                                  1000, on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.len, 4);
    assert_memory_equal(r.data, "back", 4);
    assert_int_equal(F->cli.requests, 1);
    assert_int_equal(F->srv.requests, 0);
}

static void test_peer_reply_out_of_order(void **state)
{
    struct result r[3] = {{0}};

    (void)state;
    connect_ready();
    for (int i = 0; i < 3; i++)
        assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0,
                                      0, on_result, &r[i]),
                         0);
    RUN_UNTIL(F->srv.nstash == 3);
    /* Answer newest first, each with its own index as payload. */
    for (int i = 2; i >= 0; i--) {
        uint8_t b = (uint8_t)i;
        assert_int_equal(peer_reply(F->srv.peer, F->srv.stash_id[i],
                                    PROTO_MSG_STATFS_REP, 0, &b, 1),
                         0);
    }
    RUN_UNTIL(F->completed == 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].len, 1);
        assert_int_equal(r[i].data[0], i);
        assert_int_equal(r[i].order, 3 - i);
    }
}

static void test_peer_reply_error_status(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_GETATTR_REQ, "12345678",
                                  8, 0, on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, -ENOENT);
    assert_int_equal(r.len, 0); /* an error reply carries no payload */
}

static void test_peer_reply_wire_own_error(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0, 0,
                                  on_result, &r),
                     0);
    RUN_UNTIL(F->srv.nstash == 1);
    assert_int_equal(peer_reply_wire(F->srv.peer, F->srv.stash_id[0],
                                     PROTO_MSG_STATFS_REP, PROTO_EOLDVER, NULL,
                                     0),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, proto_err_from_wire(PROTO_EOLDVER));
    assert_int_equal(
        peer_reply_wire(F->srv.peer, 1, PROTO_MSG_STATFS_REP, 999999, NULL, 0),
        -EINVAL);
}

static void test_peer_reply_wrong_opcode(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0, 0,
                                  on_result, &r),
                     0);
    RUN_UNTIL(F->srv.nstash == 1);
    peer_reply(F->srv.peer, F->srv.stash_id[0], PROTO_MSG_PING_REP, 0, "x", 1);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, -EPROTO);
}

static void test_peer_request_unknown_opcode(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, 0x7F01, NULL, 0, 0, on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, -ENOSYS);
}

static void test_peer_request_before_ready_queued(void **state)
{
    struct result r = {0};

    (void)state;
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CHUNKD, "q",
                                  &ops, F, &F->client),
                     0);
    assert_int_equal(peer_request(F->client, PROTO_MSG_PING_REQ, "early", 5, 0,
                                  on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.data, "early", 5);
    assert_int_equal(F->cli.ready, 1);
    assert_int_equal(peer_role(F->srv.peer), PROTO_ROLE_CHUNKD);
}

static void test_peer_request_timeout(void **state)
{
    struct result r = {0}, ping = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0, 50,
                                  on_result, &r),
                     0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, -ETIMEDOUT);
    /* The late answer is ignored and the connection stays usable. */
    assert_int_equal(F->srv.nstash, 1);
    peer_reply(F->srv.peer, F->srv.stash_id[0], PROTO_MSG_STATFS_REP, 0, NULL,
               0);
    assert_int_equal(peer_request(F->client, PROTO_MSG_PING_REQ, "p", 1, 0,
                                  on_result, &ping),
                     0);
    RUN_UNTIL(ping.calls == 1);
    assert_int_equal(ping.status, 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(F->cli.closed, 0);
}

static void test_peer_request_answered_before_timeout(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, "t", 1, 100, on_result, &r),
        0);
    RUN_UNTIL(r.calls == 1);
    run_for(150); /* the timer must be gone: no second call */
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
}

static void test_peer_close_fails_pending(void **state)
{
    struct result r[3] = {{0}};

    (void)state;
    connect_ready();
    for (int i = 0; i < 3; i++)
        assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0,
                                      i == 1 ? 10000 : 0, on_result, &r[i]),
                         0);
    RUN_UNTIL(F->srv.nstash == 3);
    peer_close(F->client);
    assert_true(peer_is_closed(F->client));
    assert_int_equal(peer_request(F->client, PROTO_MSG_PING_REQ, NULL, 0, 0,
                                  on_result, &r[0]),
                     -ENOTCONN);
    RUN_UNTIL(F->cli.closed == 1 && F->srv.closed == 1);
    run_for(20);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, -ECONNRESET);
    }
    assert_int_equal(F->cli.closed, 1);
    assert_int_equal(F->cli.close_status, 0);
    assert_int_equal(F->cli.results_at_close, 3);
    assert_int_equal(F->srv.close_status, -ECONNRESET);
    /* Answers to a closed peer are dropped. */
    assert_int_equal(peer_reply(F->srv.peer, F->srv.stash_id[0],
                                PROTO_MSG_STATFS_REP, 0, NULL, 0),
                     0);
}

static void test_peer_remote_close_fails_pending(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0, 0,
                                  on_result, &r),
                     0);
    RUN_UNTIL(F->srv.nstash == 1);
    peer_close(F->srv.peer);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -ECONNRESET);
    assert_int_equal(F->cli.close_status, -ECONNRESET);
    assert_int_equal(F->srv.close_status, 0);
}

static void test_peer_hello_refused_by_hook(void **state)
{
    (void)state;
    F->srv.hello_rc = -EACCES;
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT, "c",
                                  &ops, F, &F->client),
                     0);
    RUN_UNTIL(F->cli.closed == 1 && F->srv.closed == 1);
    assert_int_equal(F->cli.ready, 0);
    assert_int_equal(F->srv.ready, 0);
    assert_int_equal(F->cli.close_status, -EACCES);
    assert_int_equal(F->srv.close_status, -EACCES);
}

static void test_peer_connect_refused(void **state)
{
    struct result r = {0};
    struct peer_listener *l2;
    char addr[64];

    (void)state;
    /* A port that was just free: listen on it, then close it. */
    assert_int_equal(peer_listen(&F->loop, "127.0.0.1:0", NULL, NULL, &l2), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", peer_listener_port(l2));
    peer_listener_close(l2);
    run_for(10);
    assert_int_equal(peer_connect(&F->loop, addr, PROTO_ROLE_CLIENT, "c", &ops,
                                  F, &F->client),
                     0);
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, NULL, 0, 0, on_result, &r),
        0);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, -ECONNREFUSED);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, -ECONNRESET);
    assert_int_equal(F->cli.ready, 0);
}

static void test_peer_listen_bad_address(void **state)
{
    struct peer_listener *l2;
    struct peer *p;

    (void)state;
    assert_int_equal(peer_listen(&F->loop, "nonsense", NULL, NULL, &l2),
                     -EINVAL);
    assert_int_equal(peer_listen(&F->loop, "127.0.0.1:99999", NULL, NULL, &l2),
                     -EINVAL);
    assert_int_equal(peer_connect(&F->loop, "127.0.0.1", PROTO_ROLE_CLIENT, "c",
                                  &ops, F, &p),
                     -EINVAL);
    /* The port is taken by the fixture's listener. */
    assert_int_equal(peer_listen(&F->loop, F->addr, NULL, NULL, &l2),
                     -EADDRINUSE);
}

static void test_peer_version_mismatch_refused(void **state)
{
    struct proto_hdr h;
    uint8_t buf[256], c;
    int fd;

    (void)state;
    fd = raw_connect();
    raw_hello(fd, 7, PROTO_VERSION_MAX + 1, PROTO_VERSION_MAX + 5);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_true(h.flags & PROTO_FLAG_REPLY);
    assert_int_equal(h.opcode, PROTO_MSG_HELLO_REP);
    assert_int_equal(h.req_id, 7);
    assert_int_equal(h.status, PROTO_EVERSION);
    assert_int_equal(h.length, 0);
    assert_int_equal(raw_read(fd, &c, 1), -ECONNRESET); /* then closed */
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -EPROTONOSUPPORT);
    assert_int_equal(F->srv.ready, 0);
    assert_int_equal(F->srv.hello_calls, 0);
    close(fd);
}

static void test_peer_request_before_hello_refused(void **state)
{
    struct proto_hdr h;
    uint8_t buf[256];
    int fd;

    (void)state;
    fd = raw_connect();
    raw_send(fd, 0, PROTO_MSG_PING_REQ, 3, "12345678", 8);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_true(h.flags & PROTO_FLAG_REPLY);
    assert_int_equal(h.opcode, PROTO_MSG_PING_REP);
    assert_int_equal(h.req_id, 3);
    assert_int_equal(h.status, PROTO_EHANDSHAKE);
    assert_int_equal(F->srv.requests, 0);
    /* The connection stays: a HELLO now succeeds. */
    raw_hello(fd, 4, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.req_id, 4);
    assert_int_equal(h.status, 0);
    struct proto_hello_rep rep;
    assert_int_equal(proto_hello_rep_decode(buf, h.length, &rep), 0);
    assert_int_equal(rep.instance_id, 0x1234);
    assert_int_equal(rep.version, PROTO_VERSION_MAX);
    RUN_UNTIL(F->srv.ready == 1);
    close(fd);
    RUN_UNTIL(F->srv.closed == 1);
}

static void test_peer_hello_twice_refused(void **state)
{
    struct proto_hdr h;
    uint8_t buf[256];
    int fd;

    (void)state;
    fd = raw_connect();
    raw_hello(fd, 1, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.status, 0);
    raw_hello(fd, 2, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.req_id, 2);
    assert_int_equal(h.status, PROTO_EHANDSHAKE);
    assert_int_equal(F->srv.hello_calls, 1);
    /* Still open and working. */
    raw_send(fd, 0, PROTO_MSG_PING_REQ, 3, "abcdefgh", 8);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.req_id, 3);
    assert_int_equal(h.status, 0);
    assert_memory_equal(buf, "abcdefgh", 8);
    assert_int_equal(F->srv.closed, 0);
    close(fd);
    RUN_UNTIL(F->srv.closed == 1);
}

static void test_peer_bad_magic_closes(void **state)
{
    uint8_t junk[PROTO_HDR_SIZE], c;
    int fd;

    (void)state;
    memset(junk, 0xAB, sizeof(junk));
    fd = raw_connect();
    assert_int_equal(net_write_all(fd, junk, sizeof(junk)), 0);
    assert_int_equal(raw_read(fd, &c, 1), -ECONNRESET);
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -EPROTO);
    close(fd);
}

static void test_peer_bad_hello_closes(void **state)
{
    uint8_t c, junk[3] = {1, 2, 3};
    int fd;

    (void)state;
    fd = raw_connect();
    raw_send(fd, 0, PROTO_MSG_HELLO_REQ, 1, junk, sizeof(junk));
    assert_int_equal(raw_read(fd, &c, 1), -ECONNRESET);
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -EPROTO);
    close(fd);
}

static void test_peer_hello_timeout_closes(void **state)
{
    struct peer_listener *l2;
    char addr[64], c;
    int fd;

    (void)state;
    assert_int_equal(peer_listen(&F->loop, "127.0.0.1:0", &ops, F, &l2), 0);
    peer_listener_set_hello_timeout(l2, 50);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", peer_listener_port(l2));
    fd = net_connect(addr, 1000);
    assert_true(fd >= 0);
    assert_int_equal(raw_read(fd, &c, 1), -ECONNRESET); /* sent nothing */
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -ETIMEDOUT);
    peer_listener_close(l2);
    close(fd);
}

/* docs/protocol.md §2.2: a reply to an id this side never sent is
 * malformed, and the connection closes. */
static void test_peer_reply_unknown_id_closes(void **state)
{
    struct proto_hdr h;
    uint8_t buf[256], c;
    int fd;

    (void)state;
    fd = raw_connect();
    raw_hello(fd, 1, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
    raw_frame(fd, &h, buf, sizeof(buf));
    raw_send(fd, PROTO_FLAG_REPLY, PROTO_MSG_PING_REP, 999, "zzzzzzzz", 8);
    assert_int_equal(raw_read(fd, &c, 1), -ECONNRESET);
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.close_status, -EPROTO);
    close(fd);
}

/* A client that sends requests without reading the answers: the server
 * stops reading it once its write queue passes the limit, and resumes when
 * the client reads. */
static void test_peer_write_limit_pauses_reading(void **state)
{
    enum { N = 64, BIG = 1 << 20 };
    uint8_t hdr[PROTO_HDR_SIZE], buf[256], *sink;
    struct proto_hdr h;
    int fd, seen;

    (void)state;
    F->srv.big_reply = BIG;
    fd = raw_connect();
    raw_hello(fd, 1, PROTO_VERSION_MIN, PROTO_VERSION_MAX);
    raw_frame(fd, &h, buf, sizeof(buf));
    RUN_UNTIL(F->srv.ready == 1);
    peer_set_write_limit(F->srv.peer, 256 << 10);
    for (int i = 0; i < N; i++)
        raw_send(fd, 0, PROTO_MSG_CHUNK_READ_REQ, 100 + (uint64_t)i, NULL, 0);
    RUN_UNTIL(peer_read_paused(F->srv.peer));
    run_for(100);
    seen = F->srv.requests;
    assert_true(seen < N);
    run_for(100);
    assert_int_equal(F->srv.requests, seen); /* stays paused */

    sink = malloc(BIG);
    assert_non_null(sink);
    for (int i = 0; i < N; i++) {
        assert_int_equal(raw_read(fd, hdr, sizeof(hdr)), 0);
        assert_int_equal(proto_hdr_decode(hdr, &h), 0);
        assert_int_equal(h.req_id, 100 + (uint64_t)i);
        assert_int_equal(h.length, BIG);
        assert_int_equal(raw_read(fd, sink, BIG), 0);
    }
    free(sink);
    assert_int_equal(F->srv.requests, N);
    assert_false(peer_read_paused(F->srv.peer));
    close(fd);
    RUN_UNTIL(F->srv.closed == 1);
}

/* A client that pipelines requests the server holds unanswered: the
 * server stops reading it at the serve limit (what one read brought in is
 * still served), and reads again once half of them are answered. */
static void test_peer_serve_limit_pauses_reading(void **state)
{
    enum { LIMIT = 8, FIRST = 10, N = 20 };
    struct result r[N];

    (void)state;
    memset(r, 0, sizeof(r));
    connect_ready();
    peer_set_serve_limit(F->srv.peer, LIMIT);
    for (int i = 0; i < FIRST; i++)
        assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0,
                                      0, on_result, &r[i]),
                         0);
    RUN_UNTIL(peer_read_paused(F->srv.peer) && F->srv.nstash >= LIMIT);
    run_for(50);
    int held = F->srv.nstash;
    /* Sent while reading is stopped: not read. */
    for (int i = FIRST; i < N; i++)
        assert_int_equal(peer_request(F->client, PROTO_MSG_STATFS_REQ, NULL, 0,
                                      0, on_result, &r[i]),
                         0);
    run_for(100);
    assert_int_equal(F->srv.nstash, held);
    assert_true(peer_read_paused(F->srv.peer));
    /* Answer down to half the limit: reading resumes, the rest arrive. */
    int answered = 0;
    for (; answered < held - LIMIT / 2; answered++)
        assert_int_equal(peer_reply(F->srv.peer, F->srv.stash_id[answered],
                                    PROTO_MSG_STATFS_REP, 0, NULL, 0),
                         0);
    RUN_UNTIL(F->srv.nstash == N);
    for (; answered < N; answered++)
        assert_int_equal(peer_reply(F->srv.peer, F->srv.stash_id[answered],
                                    PROTO_MSG_STATFS_REP, 0, NULL, 0),
                         0);
    RUN_UNTIL(F->completed == N);
    assert_false(peer_read_paused(F->srv.peer));
}

static void test_peer_listener_close_keeps_peers(void **state)
{
    struct result r = {0};

    (void)state;
    connect_ready();
    peer_listener_close(F->l);
    F->l = NULL;
    run_for(10);
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, "k", 1, 0, on_result, &r),
        0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
}

static void test_peer_ref_keeps_memory(void **state)
{
    struct peer *p;

    (void)state;
    connect_ready();
    p = F->srv.peer;
    peer_ref(p);
    peer_close(p);
    RUN_UNTIL(F->srv.closed == 1);
    /* Still readable after on_close thanks to the reference. */
    assert_true(peer_is_closed(p));
    assert_int_equal(peer_reply(p, 1, PROTO_MSG_PING_REP, 0, NULL, 0), 0);
    peer_unref(p);
}

/* A second connection from an address that holds its limit is answered
 * ELIMIT; the first keeps working, and once it is gone there is room. */
static void test_peer_limit_per_address(void **state)
{
    struct conn_limit *t;
    struct result r = {0};
    struct peer *two;

    (void)state;
    assert_int_equal(conn_limit_new(1, 0, &t), 0);
    peer_listener_set_limits(F->l, t);
    connect_ready();
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT, "two",
                                  &ops, F, &two),
                     0);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, -EUSERS);
    assert_int_equal(F->srv.ready, 1);
    peer_unref(two);
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, "k", 1, 0, on_result, &r),
        0);
    RUN_UNTIL(r.calls == 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, "127.0.0.1"), 1);

    peer_close(F->client);
    peer_unref(F->client);
    F->client = NULL;
    RUN_UNTIL(conn_limit_count(t, CONN_LIMIT_ADDR, "127.0.0.1") == 0);
    connect_ready();
    peer_close(F->client);
    peer_unref(F->client);
    F->client = NULL;
    peer_close(F->srv.peer);
    RUN_UNTIL(F->srv.closed == 3);
    conn_limit_free(t);
}

/* A second session of one identity is answered ELIMIT at AUTH. */
static void test_peer_limit_per_identity(void **state)
{
    struct auth_cred c = {.method = PROTO_AUTH_KEY, .name = "client.a"};
    struct conn_limit *t;
    struct peer *two;

    (void)state;
    memset(c.key, 0x11, sizeof(c.key));
    assert_int_equal(conn_limit_new(0, 1, &t), 0);
    peer_listener_set_limits(F->l, t);
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    connect_auth(0x11);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
    assert_int_equal(peer_connect(&F->loop, F->addr, PROTO_ROLE_CLIENT, "two",
                                  &ops, F, &two),
                     0);
    assert_int_equal(peer_set_cred(two, &c), 0);
    RUN_UNTIL(F->cli.closed == 1);
    assert_int_equal(F->cli.close_status, -EUSERS);
    assert_int_equal(F->srv.ready, 1);
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_IDENTITY, "client.a"), 1);
    peer_unref(two);

    peer_close(F->client);
    peer_unref(F->client);
    F->client = NULL;
    RUN_UNTIL(conn_limit_count(t, CONN_LIMIT_IDENTITY, "client.a") == 0);
    connect_auth(0x11);
    RUN_UNTIL(F->cli.ready == 2 && F->srv.ready == 2);
    peer_close(F->client);
    peer_unref(F->client);
    F->client = NULL;
    peer_close(F->srv.peer);
    RUN_UNTIL(conn_limit_count(t, CONN_LIMIT_IDENTITY, "client.a") == 0);
    run_for(20);
    conn_limit_free(t);
}

/* A secure link: requests both ways, small and large (many TLS records),
 * and the server knows the identity as before. */
static void test_peer_secure_link(void **state)
{
    struct result r1 = {0}, r2 = {0}, r3 = {0};

    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    connect_secure(0x11);
    /* Queued before READY: sent sealed once the TLS handshake is done. */
    assert_int_equal(
        peer_request(F->client, PROTO_MSG_PING_REQ, "abc", 3, 0, on_result,
                     &r1),
        0);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
    assert_string_equal(peer_identity(F->srv.peer), "client.a");
    RUN_UNTIL(r1.calls == 1);
    assert_int_equal(r1.status, 0);
    assert_memory_equal(r1.data, "abc", 3);
    F->srv.big_reply = 3 << 20;
    assert_int_equal(peer_request(F->client, PROTO_MSG_CHUNK_READ_REQ, NULL, 0,
                                  0, on_result, &r2),
                     0);
    RUN_UNTIL(r2.calls == 1);
    assert_int_equal(r2.status, 0);
    assert_int_equal(r2.len, 3 << 20);
    assert_int_equal(peer_request(F->srv.peer, PROTO_MSG_PING_REQ, "xy", 2, 0,
                                  on_result, &r3),
                     0);
    RUN_UNTIL(r3.calls == 1);
    assert_int_equal(r3.status, 0);
    assert_memory_equal(r3.data, "xy", 2);
}

/* A wrong key fails at AUTH as before, secure or not. */
static void test_peer_secure_wrong_key(void **state)
{
    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    peer_listener_set_secure(F->l, true);
    connect_secure(0x12);
    expect_refused(-EKEYREJECTED);
}

/* A listener that requires secure links refuses a plain peer with
 * ESECURE and goes on serving secure ones. */
static void test_peer_secure_required_refuses_plain(void **state)
{
    (void)state;
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    peer_listener_set_secure(F->l, true);
    connect_auth(0x11);
    expect_refused(-ENOPROTOOPT);
    peer_unref(F->client);
    connect_secure(0x11);
    RUN_UNTIL(F->cli.ready == 1 && F->srv.ready == 1);
}

/* A raw peer that sends frames in the clear after AUTH on a secure link
 * is cut off: they are no TLS records. */
static void test_peer_secure_plain_frames_after_auth_refused(void **state)
{
    struct proto_hello_req m = {1,
                                1,
                                PROTO_ROLE_CLIENT,
                                PROTO_FEATURE_SECURE,
                                PROTO_AUTH_BIT(PROTO_AUTH_KEY),
                                {"raw", 3}};
    struct auth_cred c = {.method = PROTO_AUTH_KEY, .name = "client.a"};
    uint8_t buf[512], expect[PROTO_AUTH_PROOF_SIZE];
    struct proto_hello_rep rep;
    struct proto_auth_req req;
    struct proto_wbuf w;
    struct proto_hdr h;
    int fd;

    (void)state;
    memset(c.key, 0x11, sizeof(c.key));
    peer_listener_set_auth(F->l, PROTO_AUTH_BIT(PROTO_AUTH_KEY));
    fd = raw_connect();
    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    raw_send(fd, 0, PROTO_MSG_HELLO_REQ, 1, w.p, w.len);
    proto_wbuf_free(&w);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(proto_hello_rep_decode(buf, h.length, &rep), 0);
    assert_int_equal(rep.features, PROTO_FEATURE_SECURE);
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, rep.nonce, &req,
                                 expect),
                     0);
    proto_wbuf_init(&w);
    proto_auth_req_encode(&w, &req);
    raw_send(fd, 0, PROTO_MSG_AUTH_REQ, 2, w.p, w.len);
    proto_wbuf_free(&w);
    raw_frame(fd, &h, buf, sizeof(buf));
    assert_int_equal(h.status, 0);
    raw_send(fd, 0, PROTO_MSG_PING_REQ, 3, "12345678", 8);
    /* The server answers with a TLS alert record at most, never a frame. */
    if (raw_read(fd, buf, 1) == 0)
        assert_int_equal(buf[0], 21); /* ContentType alert */
    close(fd);
    RUN_UNTIL(F->srv.closed == 1);
    assert_int_equal(F->srv.ready, 0);
}

int test_peer(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_peer_connect_handshake),
        T(test_peer_request_reply),
        T(test_peer_request_from_server),
        T(test_peer_reply_out_of_order),
        T(test_peer_reply_error_status),
        T(test_peer_reply_wire_own_error),
        T(test_peer_reply_wrong_opcode),
        T(test_peer_request_unknown_opcode),
        T(test_peer_request_before_ready_queued),
        T(test_peer_request_timeout),
        T(test_peer_request_answered_before_timeout),
        T(test_peer_close_fails_pending),
        T(test_peer_remote_close_fails_pending),
        T(test_peer_hello_refused_by_hook),
        T(test_peer_connect_refused),
        T(test_peer_listen_bad_address),
        T(test_peer_version_mismatch_refused),
        T(test_peer_request_before_hello_refused),
        T(test_peer_hello_twice_refused),
        T(test_peer_bad_magic_closes),
        T(test_peer_bad_hello_closes),
        T(test_peer_hello_timeout_closes),
        T(test_peer_reply_unknown_id_closes),
        T(test_peer_write_limit_pauses_reading),
        T(test_peer_serve_limit_pauses_reading),
        T(test_peer_listener_close_keeps_peers),
        T(test_peer_ref_keeps_memory),
        T(test_peer_auth_right_key),
        T(test_peer_auth_wrong_key),
        T(test_peer_auth_no_key),
        T(test_peer_auth_responder_must_prove),
        T(test_peer_auth_silent_cut_off),
        T(test_peer_limit_per_address),
        T(test_peer_limit_per_identity),
        T(test_peer_secure_link),
        T(test_peer_secure_wrong_key),
        T(test_peer_secure_required_refuses_plain),
        T(test_peer_secure_plain_frames_after_auth_refused),
#undef T
    };
    return cmocka_run_group_tests_name("common/peer", tests, NULL, NULL);
}
