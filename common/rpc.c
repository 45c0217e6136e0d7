/* rpc.c: the blocking, thread-safe protocol client (see rpc.h).
 *
 * Happy path: rpc_client_open() dials, runs the HELLO handshake on the
 * caller's thread and starts a reader thread.  rpc_call() puts a call on
 * the client's list under @lock, writes its frame under @send_lock (so
 * frames from many threads never interleave) and sleeps on the call's own
 * condition variable; the reader thread reads each reply, finds the call
 * by request id, hands it the payload and wakes it.  Requests from the
 * server go to on_request on the reader thread.
 *
 * Asynchronous calls (rpc_call_async()) are the data path's fast path:
 * the frame is written on the caller's thread and the reply completes the
 * call on the reader thread, which runs its callback there; nobody waits
 * and no thread is woken but the one reading the socket.  They are sent
 * once, never resent: a lost connection completes them with -ENOTCONN
 * (on the reader thread, in connection_lost()), and the keeper thread
 * completes those older than call_timeout_ms with -ETIMEDOUT; a late
 * answer is then dropped like any reply for an unknown id.  The caller
 * goes back to its blocking path for anything that failed.
 *
 * Failure modes:
 * - the connection drops (read or write error, EOF): the reader closes the
 *   socket and marks the client DOWN.  No call fails at once.  The
 *   keeper thread redials with backoff (50 ms doubling to 1 s) and runs
 *   the handshake; then the client is RESTORING while on_reconnect runs
 *   (only rpc_call_raw() may send), then READY.  Every waiting call sees
 *   the new connection generation and sends itself again, with the same
 *   request id.  A call that has waited for a connection longer than
 *   reconnect_ms fails with -ENOTCONN; the thread keeps redialling, so a
 *   later call succeeds once the server is back.
 * - reconnect_ms 0: the client is DEAD after the first drop and every
 *   call fails with -ENOTCONN.
 *
 * A metad group (docs/protocol.md §5.3): @addr may list several
 * addresses, "a,b,c".  The first dial tries them in order; a redial
 * after a lost connection or a failed dial goes to the next.  A reply
 * ENOTLEADER is not an answer: the call stays waiting, the connection is
 * dropped as if lost, and the keeper dials the leader the reply names
 * (or, when it names none, the next address after RPC_FOLLOW_WAIT_MS);
 * the call is then sent again there, with the same id.  A follower
 * applied nothing, so sending again is safe.  A client with
 * reconnect_ms 0 follows such a redirect too, for up to RPC_FOLLOW_MS.
 * - a call not answered within call_timeout_ms fails with -ETIMEDOUT; a
 *   late answer is dropped.  A frame that cannot be written within the
 *   same time breaks the connection (a half-written frame cannot be
 *   taken back).
 *
 * The keeper thread redials (when reconnect_ms > 0) and expires
 * asynchronous calls.
 *
 *   open --handshake--> READY --drop--> DOWN --redial--> RESTORING
 *                         ^   (reconnect_ms 0: DEAD)        |
 *                         +------- on_reconnect returned ---+
 *
 *   FROM -> TO            [function]
 *   READY -> DOWN/DEAD     [connection_lost]
 *   RESTORING -> DOWN/DEAD [connection_lost]
 *   DOWN -> RESTORING      [keeper_main, when on_reconnect is set]
 *   DOWN -> READY          [keeper_main]
 *   RESTORING -> READY     [keeper_main]
 *
 * Invariants:
 * 1. @fd and @gen change only with both @send_lock and @lock held, so
 *    either lock is enough to read them.  Lock order: @send_lock, @lock.
 * 2. Only the reader thread closes a connected socket (rpc_client_close()
 *    after joining it); others only shutdown() it to wake the reader.
 * 3. A blocking call is on the list from its first send until its caller
 *    returns; its payload is borrowed from the blocked caller and so stays
 *    valid.  An asynchronous call is on the list from its send until the
 *    one thread that unlinks it (reply, loss, expiry) completes it.
 */
#include "rpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "blocking.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "opcount.h"
#include "seclink.h"

#define RPC_CONNECT_TIMEOUT_MS 5000
#define RPC_CALL_TIMEOUT_MS 30000
#define RPC_BACKOFF_MIN_MS 50
#define RPC_BACKOFF_MAX_MS 1000
#define RPC_SMALL_FRAME 8192 /* copied into one write below this */
#define RPC_ADDR_MAX 256
#define RPC_FOLLOW_MS 15000    /* redirects followed without reconnect_ms */
#define RPC_FOLLOW_WAIT_MS 100 /* before the next replica when none leads */

enum rpc_state { CS_READY, CS_RESTORING, CS_DOWN, CS_DEAD };

/* One call waiting for its reply.  A blocking call lives on its caller's
 * stack and has @cv; an asynchronous one is allocated and has @cb. */
struct call {
    struct call *next, *prev;
    uint64_t id;
    uint16_t opcode;
    bool raw;
    bool done;
    uint64_t sent_gen; /* connection it was last sent on; 0 = none */
    int status;
    struct rpc_reply rep;
    pthread_cond_t cv;
    rpc_done_cb cb; /* asynchronous: completion */
    void *cb_arg;
    uint64_t deadline; /* asynchronous: monotonic ms, UINT64_MAX = none */
    uint64_t since;    /* monotonic ms the call was put on the list */
};

struct rpc_client {
    char *addrs, *name;      /* addrs: the list given to rpc_client_open() */
    size_t naddrs, cur;      /* its length, and the item @addr was taken from */
    char addr[RPC_ADDR_MAX]; /* dialled now (written by the keeper) */
    /* ENOTLEADER (§5.3): the leader to dial next ("" when none was
     * named), whether a redirect is being followed, and whether to wait
     * before the next dial because no replica leads. */
    char redirect[RPC_ADDR_MAX];
    bool following, follow_wait;
    uint64_t follow_since; /* ms of the first ENOTLEADER since an answer */
    struct rpc_opts opts;
    pthread_mutex_t lock;
    pthread_mutex_t send_lock;
    pthread_cond_t state_cv; /* state changes, for the two threads */
    int fd;                  /* -1 while not connected */
    struct seclink *tls;     /* with @fd on a secure link (§3.7), or NULL */
    uint64_t gen;            /* bumped on every (re)connect */
    enum rpc_state state;
    bool closing;
    uint64_t down_since; /* ms, monotonic */
    uint64_t next_id;
    uint64_t instance;
    struct call *calls;
    unsigned nasync; /* asynchronous calls on @calls */
    /* Watchdog (stall_check()): ms of the last reply, and since when the
     * server has answered nothing while calls wait (0: it answers). */
    uint64_t last_reply, stalled_since, stall_logged;
    uint64_t probe_sent; /* ms of the watchdog's last PING */
    /* rpc_client_wind_down(): how long the server may be away before a
     * call gives up (0: not winding down), when the last call gave up
     * that way, and how many did. */
    uint32_t wind_down_ms;
    uint64_t gave_up_at;
    unsigned gave_up;
    pthread_t reader, keeper;
    bool have_reader, have_keeper;
};

/* Process-wide, for the owner's metrics (rpc_metrics_render()). */
static _Atomic uint64_t stalled_now, stalls_total;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rc;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return -rc;
}

/* Wait on @cv until @deadline (monotonic ms; UINT64_MAX = forever). */
static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *m,
                            uint64_t deadline)
{
    struct timespec ts;

    if (deadline == UINT64_MAX) {
        blocking_cond_wait(cv, m);
        return;
    }
    ts.tv_sec = (time_t)(deadline / 1000);
    ts.tv_nsec = (long)(deadline % 1000) * 1000000;
    blocking_cond_timedwait(cv, m, &ts);
}

static void wake_calls(struct rpc_client *c)
{
    for (struct call *cl = c->calls; cl; cl = cl->next)
        if (!cl->cb)
            pthread_cond_signal(&cl->cv);
}

static void call_unlink(struct rpc_client *c, struct call *cl)
{
    if (cl->prev)
        cl->prev->next = cl->next;
    else
        c->calls = cl->next;
    if (cl->next)
        cl->next->prev = cl->prev;
    cl->next = cl->prev = NULL;
}

/* Take every asynchronous call whose deadline is at or before @now off
 * the list, under @lock, chained through ->next into the returned list. */
static struct call *async_take(struct rpc_client *c, uint64_t now)
{
    struct call *out = NULL, *cl = c->calls, *next;

    for (; cl; cl = next) {
        next = cl->next;
        if (!cl->cb || cl->deadline > now)
            continue;
        call_unlink(c, cl);
        c->nasync--;
        cl->next = out;
        out = cl;
    }
    return out;
}

/* Complete the calls of a list from async_take() with @status, with no
 * lock held (the callbacks may call in again). */
static void async_fail(struct call *list, int status)
{
    while (list) {
        struct call *next = list->next;
        struct rpc_reply rep = {0};
        opcount_reply_status(&opcount_called, list->opcode, status, 0);
        list->cb(list->cb_arg, status, &rep);
        free(list);
        list = next;
    }
}

/* ---- Frames on a blocking socket -------------------------------------- */

/* Read one frame.  Caller owns *payload (NULL when empty). */
static int read_frame(int fd, struct proto_hdr *h, uint8_t **payload)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    uint8_t *p = NULL;
    int rc;

    *payload = NULL;
    rc = net_read_all(fd, hdr, sizeof(hdr));
    if (rc < 0)
        return rc;
    rc = proto_hdr_decode(hdr, h);
    if (rc < 0)
        return rc;
    if (h->length) {
        p = malloc(h->length);
        if (!p)
            return -ENOMEM;
        rc = net_read_all(fd, p, h->length);
        if (rc < 0) {
            free(p);
            return rc;
        }
    }
    *payload = p;
    return 0;
}

/* The byte stream of a connection: the socket, or its secure link.
 * Some bytes, at most @n: their count or -errno (-ECONNRESET at EOF). */
static ssize_t link_recv(int fd, struct seclink *tls, void *p, size_t n)
{
    ssize_t k;

    if (tls)
        return seclink_recv(tls, p, n);
    do {
        k = recv(fd, p, n, 0);
    } while (k < 0 && errno == EINTR);
    return k < 0 ? -errno : k == 0 ? -ECONNRESET : k;
}

static int link_read_all(int fd, struct seclink *tls, void *p, size_t n)
{
    uint8_t *at = p;

    if (!tls)
        return net_read_all(fd, p, n);
    while (n > 0) {
        ssize_t k = seclink_recv(tls, at, n);
        if (k < 0)
            return (int)k;
        at += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Write @h (its length set from @len) and @payload as one frame. */
static int write_frame(int fd, struct seclink *tls, const struct proto_hdr *h,
                       const void *payload, size_t len)
{
    uint8_t small[PROTO_HDR_SIZE + RPC_SMALL_FRAME];
    struct proto_hdr copy = *h;
    int rc;

    copy.length = (uint32_t)len;
    proto_hdr_encode(&copy, small);
    if (len <= RPC_SMALL_FRAME) {
        if (len)
            memcpy(small + PROTO_HDR_SIZE, payload, len);
        return tls ? seclink_send(tls, small, PROTO_HDR_SIZE + len)
                   : net_write_all(fd, small, PROTO_HDR_SIZE + len);
    }
    if (tls) { /* records of both, in one send() */
        struct iovec iov[2] = {{small, PROTO_HDR_SIZE},
                               {(void *)payload, len}};
        return seclink_sendv(tls, iov, 2);
    }
    rc = net_write_all(fd, small, PROTO_HDR_SIZE);
    if (!rc)
        rc = net_write_all(fd, payload, len);
    return rc;
}

/* Write a frame on the current connection; @gen non-zero: only if that
 * connection is still the current one.  A failed write breaks the
 * connection for the reader to notice (invariant 2). */
static int send_frame(struct rpc_client *c, uint64_t gen, uint8_t flags,
                      uint16_t opcode, uint64_t id, int32_t status,
                      const void *payload, size_t len)
{
    struct proto_hdr h = {
        .version = PROTO_FRAME_VERSION,
        .flags = flags,
        .opcode = opcode,
        .req_id = id,
        .status = status,
        .length = (uint32_t)len,
    };
    int rc;

    pthread_mutex_lock(&c->send_lock);
    if (c->fd < 0 || (gen && c->gen != gen)) {
        pthread_mutex_unlock(&c->send_lock);
        return -ENOTCONN;
    }
    rc = write_frame(c->fd, c->tls, &h, payload, len);
    if (rc < 0)
        shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* Send request @opcode (@w's bytes) as @id on @fd and wait for its reply,
 * with nothing else reading @fd.  On 0 the caller owns *payload. */
static int handshake_call(int fd, uint16_t opcode, uint64_t id,
                          const struct proto_wbuf *w, struct proto_hdr *h,
                          uint8_t **payload)
{
    struct proto_hdr q = {
        .version = PROTO_FRAME_VERSION, .opcode = opcode, .req_id = id};
    int rc = w->err ? w->err : write_frame(fd, NULL, &q, w->p, w->len);

    while (!rc) {
        rc = read_frame(fd, h, payload);
        if (rc < 0)
            return rc;
        if ((h->flags & PROTO_FLAG_REPLY) && h->req_id == id)
            break;
        free(*payload); /* nothing else is expected yet */
    }
    if (rc < 0)
        return rc;
    if (h->status != 0) { /* EVERSION: EPROTONOSUPPORT, EAUTH: EKEYREJECTED */
        free(*payload);
        return proto_err_from_wire(h->status);
    }
    if (h->opcode != opcode + 1) {
        free(*payload);
        return -EPROTO;
    }
    return 0;
}

/* §3.2: answer the challenge of @hello as @cred and check the responder's
 * proof. */
static int authenticate(struct rpc_client *c, int fd, uint64_t id,
                        const struct proto_hello_rep *hello,
                        const struct auth_cred *cred,
                        uint8_t link_key[AUTH_KEY_SIZE])
{
    uint8_t expect[PROTO_AUTH_PROOF_SIZE];
    struct proto_auth_req req;
    struct proto_auth_rep rep;
    struct proto_hdr h;
    struct proto_wbuf w;
    uint8_t *payload;
    int rc;

    if (hello->auth_method != cred->method)
        return -EKEYREJECTED;
    rc = auth_answer(cred, c->opts.role, hello->nonce, &req, expect);
    if (rc == 0 && cred->secure)
        rc = auth_link_key(cred->key, c->opts.role, hello->nonce, &req,
                           link_key);
    if (rc < 0)
        return rc;
    proto_wbuf_init(&w);
    proto_auth_req_encode(&w, &req);
    rc = handshake_call(fd, PROTO_MSG_AUTH_REQ, id, &w, &h, &payload);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    if (proto_auth_rep_decode(payload, h.length, &rep) < 0)
        rc = -EPROTO;
    else if (!auth_proof_equal(rep.proof, expect))
        rc = -EKEYREJECTED; /* not the server we share the key with */
    free(payload);
    return rc;
}

/* §3.7: the TLS session that carries the connection from now on. */
static int secure_start(int fd, const char *name,
                        const uint8_t key[AUTH_KEY_SIZE], struct seclink **out)
{
    int rc = seclink_new(SECLINK_CLIENT, name, key, fd, out);

    if (rc == 0 && (rc = seclink_handshake(*out)) < 0) {
        seclink_free(*out);
        *out = NULL;
    }
    return rc;
}

/* docs/protocol.md §3: send HELLO_REQ as request @id, wait for its
 * HELLO_REP and, when the server asks for it, authenticate (§3.2). */
static int handshake(struct rpc_client *c, int fd, uint64_t id,
                     uint64_t *instance, struct seclink **tls)
{
    uint8_t link_key[AUTH_KEY_SIZE];
    struct auth_cred *cred = NULL;
    struct proto_hello_req m = {
        .min_version = PROTO_VERSION_MIN,
        .max_version =
            c->opts.max_version ? c->opts.max_version : PROTO_VERSION_MAX,
        .role = c->opts.role,
        .name = {c->name, (uint32_t)strlen(c->name)},
    };
    struct proto_hello_rep rep;
    struct proto_hdr h;
    struct proto_wbuf w;
    uint8_t *payload;
    int rc = 0;

    if (c->opts.get_cred) {
        cred = malloc(sizeof(*cred));
        rc = cred ? c->opts.get_cred(c->opts.cred_arg, cred) : -ENOMEM;
        if (rc < 0)
            goto out;
        m.auth_methods = PROTO_AUTH_BIT(cred->method);
        m.features = cred->secure ? PROTO_FEATURE_SECURE : 0;
    }
    set_timeout(fd, SO_RCVTIMEO, c->opts.connect_timeout_ms);
    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    rc = handshake_call(fd, PROTO_MSG_HELLO_REQ, id, &w, &h, &payload);
    proto_wbuf_free(&w);
    if (rc < 0)
        goto out;
    if (proto_hello_rep_decode(payload, h.length, &rep) < 0 ||
        rep.version < PROTO_VERSION_MIN || rep.version > m.max_version)
        rc = -EPROTO;
    else if ((rep.auth_method == PROTO_AUTH_NONE) != !cred)
        /* §3.2: a key and a server that does not prove itself, or a
         * server that wants a key we do not have. */
        rc = -EKEYREJECTED;
    else if (cred && cred->secure != !!(rep.features & PROTO_FEATURE_SECURE))
        /* §3.7: a secure link exactly when asked for. */
        rc = cred->secure ? -ENOPROTOOPT : -EPROTO;
    else if (cred)
        rc = authenticate(c, fd, id, &rep, cred, link_key);
    if (!rc && cred && cred->secure)
        rc = secure_start(fd, cred->name, link_key, tls);
    if (!rc)
        *instance = rep.instance_id;
    free(payload);
out:
    if (cred) {
        memset(cred, 0, sizeof(*cred));
        free(cred);
    }
    memset(link_key, 0, sizeof(link_key));
    set_timeout(fd, SO_RCVTIMEO, 0);
    if (rc == -EAGAIN || rc == -EWOULDBLOCK)
        rc = -ETIMEDOUT;
    return rc;
}

/* Connect and shake hands.  Returns a connected socket or -errno; *tls
 * is its secure link, or NULL.  The caller owns both. */
static int dial(struct rpc_client *c, uint64_t *instance,
                struct seclink **tls)
{
    uint64_t id;
    int fd, rc;

    fd = net_connect(c->addr, c->opts.connect_timeout_ms);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&c->lock);
    id = ++c->next_id;
    pthread_mutex_unlock(&c->lock);
    *tls = NULL;
    rc = handshake(c, fd, id, instance, tls);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (c->opts.call_timeout_ms > 0)
        set_timeout(fd, SO_SNDTIMEO, c->opts.call_timeout_ms);
    return fd;
}

/* ---- Reader thread ----------------------------------------------------- */

/* Run the callback of an asynchronous call answered by @h and free it.
 * @payload is owned: it goes to the callback or is freed. */
static void async_complete(struct call *cl, const struct proto_hdr *h,
                           uint8_t *payload)
{
    struct rpc_reply rep = {0};
    int status = proto_err_from_wire(h->status);

    if (status == 0 && h->opcode != (uint16_t)(cl->opcode + 1))
        status = -EPROTO;
    if (status == 0) {
        rep.opcode = h->opcode;
        rep.payload = payload;
        rep.len = h->length;
        payload = NULL;
    }
    free(payload);
    opcount_reply_status(&opcount_called, cl->opcode, status, rep.len);
    cl->cb(cl->cb_arg, status, &rep);
    free(cl);
}

/* Under @lock: an ENOTLEADER reply (docs/protocol.md §5.3) names the
 * leader in @payload, or none. */
static void follow_redirect(struct rpc_client *c, const uint8_t *payload,
                            size_t len)
{
    struct proto_not_leader m;

    if (!c->following)
        c->follow_since = now_ms();
    c->following = true;
    if (proto_not_leader_decode(payload, len, &m) == 0 && m.leader.len &&
        m.leader.len < sizeof(c->redirect)) {
        memcpy(c->redirect, m.leader.p, m.leader.len);
        c->redirect[m.leader.len] = '\0';
        c->follow_wait = false;
    } else {
        c->redirect[0] = '\0';
        c->follow_wait = true;
    }
    log_info("rpc: not the leader: peer=%s leader=%s", c->addr,
             c->redirect[0] ? c->redirect : "(none yet)");
}

/* Returns -EPROTO for a reply to an id never sent (docs/protocol.md §2.2:
 * malformed, the connection closes), -EREMCHG for ENOTLEADER (the
 * connection is dropped and the calls go to the leader); a reply to a
 * call that gave up is dropped. */
static int on_reply(struct rpc_client *c, const struct proto_hdr *h,
                    uint8_t *payload)
{
    struct call *cl;

    pthread_mutex_lock(&c->lock);
    if (h->req_id == 0 || h->req_id > c->next_id) {
        pthread_mutex_unlock(&c->lock);
        free(payload);
        return -EPROTO;
    }
    if (h->status == PROTO_ENOTLEADER) {
        follow_redirect(c, payload, h->length);
        pthread_mutex_unlock(&c->lock);
        free(payload);
        return -EREMCHG;
    }
    for (cl = c->calls; cl; cl = cl->next)
        if (cl->id == h->req_id && !cl->done)
            break;
    /* A replica that serves answered (a follower answers PING too). */
    if (cl && cl->opcode != PROTO_MSG_PING_REQ)
        c->following = false;
    c->last_reply = now_ms();
    if (c->stalled_since) {
        log_info("rpc: answering again after %llu ms: peer=%s",
                 (unsigned long long)(c->last_reply - c->stalled_since),
                 c->addr);
        c->stalled_since = 0;
        atomic_fetch_sub(&stalled_now, 1);
    }
    if (cl && cl->cb) {
        call_unlink(c, cl);
        c->nasync--;
        pthread_mutex_unlock(&c->lock);
        async_complete(cl, h, payload);
        return 0;
    }
    if (cl) {
        cl->done = true;
        cl->status = proto_err_from_wire(h->status);
        cl->rep.opcode = h->opcode;
        cl->rep.status = cl->status;
        cl->rep.payload = cl->status ? NULL : payload;
        cl->rep.len = cl->status ? 0 : h->length;
        if (!cl->status)
            payload = NULL;
        pthread_cond_signal(&cl->cv);
    }
    pthread_mutex_unlock(&c->lock);
    free(payload); /* unknown id: a call that gave up */
    return 0;
}

static void on_server_request(struct rpc_client *c, const struct proto_hdr *h,
                              const uint8_t *payload)
{
    if (c->opts.on_request)
        c->opts.on_request(c, h->opcode, h->req_id, payload, h->length,
                           c->opts.arg);
    else
        send_frame(c, 0, PROTO_FLAG_REPLY, (uint16_t)(h->opcode + 1), h->req_id,
                   PROTO_ENOSYS, NULL, 0);
}

/* The reader thread's input buffer: one recv() takes whatever has arrived,
 * often several whole frames, so a reply costs one system call or less
 * instead of two (header, then payload). */
#define RPC_RBUF_SIZE (64u << 10)

struct rbuf {
    uint8_t *p;
    size_t off, len; /* unread bytes: [off, len) */
};

/* Make at least @need unread bytes available in @b. */
static int rbuf_need(int fd, struct seclink *tls, struct rbuf *b, size_t need)
{
    if (b->len - b->off >= need)
        return 0;
    memmove(b->p, b->p + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
    while (b->len < need) {
        ssize_t k = link_recv(fd, tls, b->p + b->len, RPC_RBUF_SIZE - b->len);
        if (k < 0)
            return (int)k;
        b->len += (size_t)k;
    }
    return 0;
}

/* read_frame() through @b.  Caller owns *payload (NULL when empty). */
static int read_frame_buffered(int fd, struct seclink *tls, struct rbuf *b,
                               struct proto_hdr *h, uint8_t **payload)
{
    int rc = rbuf_need(fd, tls, b, PROTO_HDR_SIZE);

    *payload = NULL;
    if (rc < 0)
        return rc;
    rc = proto_hdr_decode(b->p + b->off, h);
    if (rc < 0)
        return rc;
    b->off += PROTO_HDR_SIZE;
    if (h->length == 0)
        return 0;
    uint8_t *p = malloc(h->length);
    if (!p)
        return -ENOMEM;
    size_t have = b->len - b->off;
    size_t take = have < h->length ? have : h->length;
    memcpy(p, b->p + b->off, take);
    b->off += take;
    /* The rest of a large payload goes straight to its buffer. */
    rc = take < h->length
             ? link_read_all(fd, tls, p + take, h->length - take)
             : 0;
    if (rc < 0) {
        free(p);
        return rc;
    }
    *payload = p;
    return 0;
}

static int read_loop(struct rpc_client *c, int fd, struct seclink *tls)
{
    struct rbuf b = {.p = malloc(RPC_RBUF_SIZE)};
    struct proto_hdr h;
    uint8_t *payload;
    int rc;

    if (!b.p)
        return -ENOMEM;
    for (;;) {
        rc = read_frame_buffered(fd, tls, &b, &h, &payload);
        if (rc < 0) {
            free(b.p);
            return rc;
        }
        if (h.flags & PROTO_FLAG_REPLY) {
            rc = on_reply(c, &h, payload);
            if (rc < 0) {
                free(b.p);
                return rc;
            }
        } else {
            on_server_request(c, &h, payload);
            free(payload);
        }
    }
}

/* Under @lock. */
static bool may_redial(const struct rpc_client *c)
{
    return c->opts.reconnect_ms > 0 || c->following;
}

/* Under @lock: until when a call that started at @start may wait for a
 * connection that went down at @down (RPC_FOLLOW_MS from the first of a
 * run of redirects for a client that does not redial otherwise). */
static uint64_t redial_give_up(const struct rpc_client *c, uint64_t start,
                               uint64_t down)
{
    uint64_t since = down > start ? down : start;

    if (c->opts.reconnect_ms > 0)
        return since + (uint64_t)c->opts.reconnect_ms;
    return c->following ? c->follow_since + RPC_FOLLOW_MS : since;
}

/* Under @lock: make item @i of the address list the one to dial. */
static void addr_select(struct rpc_client *c, size_t i)
{
    c->cur = i % c->naddrs;
    net_addr_list_item(c->addrs, c->cur, c->addr, sizeof(c->addr));
}

/* Under @lock, before a redial: the leader a redirect named, else the
 * next address when the last dial failed or no replica led. */
static void addr_next(struct rpc_client *c, bool failed)
{
    if (c->redirect[0]) {
        memcpy(c->addr, c->redirect, sizeof(c->addr));
        c->redirect[0] = '\0';
    } else if (failed || c->following) {
        addr_select(c, c->cur + 1);
    }
}

static void connection_lost(struct rpc_client *c, int fd, int cause)
{
    struct call *lost;

    shutdown(fd, SHUT_RDWR); /* unblocks a sender stuck on it */
    pthread_mutex_lock(&c->send_lock);
    pthread_mutex_lock(&c->lock);
    seclink_free(c->tls); /* nobody sends or reads on it now */
    c->tls = NULL;
    close(fd);
    c->fd = -1;
    if (!c->closing && cause != -EREMCHG)
        log_warn("rpc: connection lost: %s peer=%s", strerror(-cause), c->addr);
    if (!c->closing && may_redial(c)) {
        c->state = CS_DOWN;
        c->down_since = now_ms();
    } else {
        c->state = CS_DEAD;
    }
    lost = async_take(c, UINT64_MAX);
    wake_calls(c);
    pthread_cond_broadcast(&c->state_cv);
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->send_lock);
    async_fail(lost, -ENOTCONN); /* never resent: see the top */
}

static void *reader_main(void *arg)
{
    struct rpc_client *c = arg;

    for (;;) {
        struct seclink *tls;
        int fd, rc;

        pthread_mutex_lock(&c->lock);
        while (!c->closing && c->state == CS_DOWN)
            pthread_cond_wait(&c->state_cv, &c->lock);
        if (c->closing || c->state == CS_DEAD) {
            pthread_mutex_unlock(&c->lock);
            break;
        }
        fd = c->fd;
        tls = c->tls;
        pthread_mutex_unlock(&c->lock);
        rc = read_loop(c, fd, tls);
        connection_lost(c, fd, rc);
    }
    return NULL;
}

/* ---- Keeper thread -------------------------------------------------- */

/* Install @fd (and its secure link @tls) as the new connection; returns
 * its generation. */
static uint64_t install(struct rpc_client *c, int fd, struct seclink *tls,
                        uint64_t instance)
{
    uint64_t gen;

    pthread_mutex_lock(&c->send_lock);
    pthread_mutex_lock(&c->lock);
    c->fd = fd;
    c->tls = tls;
    gen = ++c->gen;
    c->instance = instance;
    c->state = c->opts.on_reconnect ? CS_RESTORING : CS_READY;
    pthread_cond_broadcast(&c->state_cv); /* the reader starts reading */
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->send_lock);
    return gen;
}

/* How long the keeper may sleep: until the next redial, or a while when
 * asynchronous calls may expire (their deadlines are checked coarsely). */
#define RPC_EXPIRE_TICK_MS 100
/* The watchdog looks every tick; a server that answered nothing for
 * RPC_STALL_WARN_MS while a call waits is said so, again every
 * RPC_STALL_REPEAT_MS while it lasts. */
#define RPC_STALL_TICK_MS 500
#define RPC_STALL_WARN_MS 2000
#define RPC_STALL_REPEAT_MS 10000

/* Under @lock.  The calls themselves are bounded (call_timeout_ms while
 * connected, reconnect_ms while not); this only makes the wait visible:
 * a log line, and rpc_metrics_render() for the owner's metrics.  A call
 * may wait long on purpose (a long poll), so silence alone proves
 * nothing: after RPC_STALL_WARN_MS without any answer while calls wait,
 * a PING goes out, and only when that is not answered within as long
 * either is the server stalled.  Returns true when the PING is due. */
static bool stall_check(struct rpc_client *c, uint64_t now)
{
    uint64_t oldest = UINT64_MAX, quiet;
    unsigned n = 0;

    for (struct call *cl = c->calls; cl; cl = cl->next) {
        if (cl->done)
            continue;
        n++;
        if (cl->since < oldest)
            oldest = cl->since;
    }
    if (n == 0)
        return false;
    if (!c->stalled_since) {
        quiet = oldest > c->last_reply ? oldest : c->last_reply;
        if (now < quiet + RPC_STALL_WARN_MS)
            return false;
        if (c->state == CS_READY && c->probe_sent <= quiet) {
            c->probe_sent = now;
            return true;
        }
        if (c->state == CS_READY && now < c->probe_sent + RPC_STALL_WARN_MS)
            return false;
        c->stalled_since = quiet;
        c->stall_logged = 0;
        atomic_fetch_add(&stalled_now, 1);
        atomic_fetch_add(&stalls_total, 1);
    }
    if (now < c->stall_logged + RPC_STALL_REPEAT_MS)
        return false;
    c->stall_logged = now;
    log_warn("rpc: no answer for %llu ms (%s): %u calls waiting, each "
             "fails after %d ms: peer=%s",
             (unsigned long long)(now - c->stalled_since),
             c->state == CS_READY ? "connected" : "not connected", n,
             c->state == CS_READY ? c->opts.call_timeout_ms
                                  : c->opts.reconnect_ms,
             c->addr);
    return false;
}

static void on_probe(void *arg, int status, struct rpc_reply *rep)
{
    (void)arg;
    (void)status;
    rpc_reply_free(rep); /* the answer's arrival is what counted */
}

/* The watchdog's PING (stall_check()), sent without @lock. */
static void probe_send(struct rpc_client *c)
{
    uint8_t cookie[8] = {0};

    rpc_call_async(c, PROTO_MSG_PING_REQ, cookie, sizeof(cookie), on_probe,
                   NULL);
}

void rpc_metrics_render(struct metrics_buf *b)
{
    metrics_family(b, "tessera_client_stalled_connections", METRICS_GAUGE,
                   "Connections to metad or a chunk server that answered "
                   "nothing for 2 s or more while calls waited.");
    metrics_sample_u64(b, "tessera_client_stalled_connections", NULL, 0,
                       atomic_load(&stalled_now));
    metrics_family(b, "tessera_client_stalls_total", METRICS_COUNTER,
                   "Times a connection started to answer nothing while "
                   "calls waited.");
    metrics_sample_u64(b, "tessera_client_stalls_total", NULL, 0,
                       atomic_load(&stalls_total));
}

static void *keeper_main(void *arg)
{
    struct rpc_client *c = arg;
    uint64_t next_try = 0, instance = 0, gen;
    struct seclink *tls = NULL;
    unsigned backoff = 0;
    bool failed = false; /* the last dial failed: try the next address */
    int fd;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        uint64_t now = now_ms(), wake = now + RPC_STALL_TICK_MS;
        if (stall_check(c, now)) {
            pthread_mutex_unlock(&c->lock);
            probe_send(c);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        if (c->nasync) {
            struct call *expired = async_take(c, now);
            if (expired) {
                pthread_mutex_unlock(&c->lock);
                async_fail(expired, -ETIMEDOUT);
                pthread_mutex_lock(&c->lock);
                continue;
            }
            wake = now + RPC_EXPIRE_TICK_MS;
        }
        if (c->closing)
            break;
        if (c->state != CS_DOWN || !may_redial(c)) {
            cond_wait_until(&c->state_cv, &c->lock, wake);
            continue;
        }
        if (c->follow_wait) {
            /* No replica named a leader: an election is on. */
            c->follow_wait = false;
            next_try = now + RPC_FOLLOW_WAIT_MS;
        }
        if (now < next_try) {
            cond_wait_until(&c->state_cv, &c->lock,
                            next_try < wake ? next_try : wake);
            continue;
        }
        addr_next(c, failed);
        pthread_mutex_unlock(&c->lock);
        fd = dial(c, &instance, &tls);
        failed = fd < 0;
        if (fd < 0) {
            log_debug("rpc", "redial failed: %s peer=%s", strerror(-fd),
                      c->addr);
            backoff = backoff ? backoff * 2 : RPC_BACKOFF_MIN_MS;
            if (backoff > RPC_BACKOFF_MAX_MS)
                backoff = RPC_BACKOFF_MAX_MS;
            next_try = now_ms() + backoff;
            pthread_mutex_lock(&c->lock);
            continue;
        }
        backoff = 0;
        next_try = 0;
        pthread_mutex_lock(&c->lock);
        if (c->closing) {
            seclink_free(tls);
            close(fd);
            break;
        }
        pthread_mutex_unlock(&c->lock);
        gen = install(c, fd, tls, instance);
        log_info("rpc: reconnected: peer=%s", c->addr);
        if (c->opts.on_reconnect)
            c->opts.on_reconnect(c, c->opts.arg);
        pthread_mutex_lock(&c->lock);
        if (c->gen == gen && c->state == CS_RESTORING)
            c->state = CS_READY;
        wake_calls(c); /* each resends itself on the new connection */
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* ---- Calls ------------------------------------------------------------- */

/* Under @lock, while winding down: until when @cl may wait.  The server
 * is away since it went down (not connected), or since the later of the
 * call's start and its last answer (connected but silent); once a call
 * gave up, the next ones do at once until the server answers again. */
static uint64_t wind_down_until(const struct rpc_client *c,
                                const struct call *cl, bool sendable)
{
    uint64_t away;

    if (c->gave_up_at && c->gave_up_at >= c->last_reply)
        return 0;
    if (!sendable)
        away = c->down_since;
    else
        away = cl->since > c->last_reply ? cl->since : c->last_reply;
    return away + c->wind_down_ms;
}

/* Under @lock: @cl gives up on a server that is away (logged once per
 * run of calls given up; rpc_client_close() logs how many). */
static int wind_down_give_up(struct rpc_client *c, const struct call *cl,
                             uint64_t now)
{
    if (!c->gave_up_at || c->gave_up_at < c->last_reply)
        log_warn("rpc: closing: gave up on %s after %u ms without an "
                 "answer (%s): peer=%s",
                 proto_msg_name(cl->opcode), c->wind_down_ms,
                 c->state == CS_READY ? "connected" : "not connected",
                 c->addr);
    c->gave_up_at = now;
    c->gave_up++;
    return c->state == CS_READY ? -ETIMEDOUT : -ENOTCONN;
}

/* Wait, under @lock, until @cl is answered or must give up. */
static int call_wait(struct rpc_client *c, struct call *cl, const void *payload,
                     size_t len, uint64_t start)
{
    uint64_t call_deadline = UINT64_MAX;

    if (c->opts.call_timeout_ms > 0)
        call_deadline = start + (uint64_t)c->opts.call_timeout_ms;
    for (;;) {
        bool sendable;
        uint64_t now, deadline;

        if (cl->done)
            return 0;
        if (c->closing || c->state == CS_DEAD)
            return -ENOTCONN;
        sendable =
            c->state == CS_READY || (cl->raw && c->state == CS_RESTORING);
        if (sendable && cl->sent_gen != c->gen) {
            /* First send, or a resend on a new connection with the same
             * request id; a failed write shows up as a lost connection. */
            uint64_t gen = c->gen;
            cl->sent_gen = gen;
            pthread_mutex_unlock(&c->lock);
            send_frame(c, gen, 0, cl->opcode, cl->id, 0, payload, len);
            pthread_mutex_lock(&c->lock);
            continue;
        }
        now = now_ms();
        if (now >= call_deadline)
            return -ETIMEDOUT;
        deadline = call_deadline;
        if (c->wind_down_ms) {
            uint64_t until = wind_down_until(c, cl, sendable);
            if (now >= until)
                return wind_down_give_up(c, cl, now);
            if (until < deadline)
                deadline = until;
        }
        if (!sendable) {
            uint64_t give_up;
            if (cl->raw)
                return -ENOTCONN;
            give_up = redial_give_up(c, start, c->down_since);
            /* A client that redials only to follow redirects and found
             * no replica leading meanwhile says so (docs/protocol.md
             * §5.3: a majority of the group is down, or electing). */
            if (now >= give_up)
                return c->following && c->opts.reconnect_ms <= 0 ? -EREMCHG
                                                                 : -ENOTCONN;
            if (give_up < deadline)
                deadline = give_up;
        }
        cond_wait_until(&cl->cv, &c->lock, deadline);
    }
}

static int do_call(struct rpc_client *c, uint16_t opcode, const void *payload,
                   size_t len, bool raw, struct rpc_reply *rep)
{
    struct call cl;
    int rc;

    memset(rep, 0, sizeof(*rep));
    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    memset(&cl, 0, sizeof(cl));
    rc = cond_init(&cl.cv);
    if (rc < 0)
        return rc;
    opcount_request(&opcount_called, opcode, len);
    cl.opcode = opcode;
    cl.raw = raw;
    pthread_mutex_lock(&c->lock);
    cl.id = ++c->next_id;
    cl.since = now_ms();
    cl.next = c->calls;
    if (c->calls)
        c->calls->prev = &cl;
    c->calls = &cl;
    rc = call_wait(c, &cl, payload, len, now_ms());
    call_unlink(c, &cl);
    pthread_mutex_unlock(&c->lock);
    pthread_cond_destroy(&cl.cv);
    if (rc == 0)
        rc = cl.status;
    if (rc == 0 && cl.rep.opcode != (uint16_t)(opcode + 1)) {
        free(cl.rep.payload);
        rc = -EPROTO;
    }
    opcount_reply_status(&opcount_called, opcode, rc, rc == 0 ? cl.rep.len : 0);
    if (rc == 0)
        *rep = cl.rep;
    return rc;
}

int rpc_call(struct rpc_client *c, uint16_t opcode, const void *payload,
             size_t len, struct rpc_reply *rep)
{
    return do_call(c, opcode, payload, len, false, rep);
}

int rpc_call_raw(struct rpc_client *c, uint16_t opcode, const void *payload,
                 size_t len, struct rpc_reply *rep)
{
    return do_call(c, opcode, payload, len, true, rep);
}

int rpc_call_async(struct rpc_client *c, uint16_t opcode, const void *payload,
                   size_t len, rpc_done_cb cb, void *arg)
{
    struct call *cl;
    uint64_t gen;
    bool first;

    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    cl = calloc(1, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    cl->opcode = opcode;
    cl->cb = cb;
    cl->cb_arg = arg;
    cl->deadline = UINT64_MAX;
    pthread_mutex_lock(&c->lock);
    if (c->closing || c->state != CS_READY) {
        pthread_mutex_unlock(&c->lock);
        free(cl);
        return -ENOTCONN;
    }
    if (c->opts.call_timeout_ms > 0)
        cl->deadline = now_ms() + (uint64_t)c->opts.call_timeout_ms;
    cl->id = ++c->next_id;
    cl->since = now_ms();
    cl->sent_gen = gen = c->gen;
    cl->next = c->calls;
    if (c->calls)
        c->calls->prev = cl;
    c->calls = cl;
    first = c->nasync++ == 0;
    if (first)
        pthread_cond_broadcast(&c->state_cv); /* the keeper starts expiring */
    pthread_mutex_unlock(&c->lock);
    /* From here @cl belongs to whoever completes it.  A failed write shuts
     * the connection down, and connection_lost() completes the call. */
    opcount_request(&opcount_called, opcode, len);
    send_frame(c, gen, 0, opcode, cl->id, 0, payload, len);
    return 0;
}

void rpc_reply_free(struct rpc_reply *rep)
{
    if (!rep)
        return;
    free(rep->payload);
    memset(rep, 0, sizeof(*rep));
}

int rpc_call_msg(struct rpc_client *c, uint16_t opcode,
                 const struct proto_wbuf *req, struct rpc_reply *rep, void *out)
{
    int rc;

    memset(rep, 0, sizeof(*rep));
    if (req->err)
        return req->err;
    rc = rpc_call(c, opcode, req->p, req->len, rep);
    if (rc < 0)
        return rc;
    rc = proto_msg_decode((uint16_t)(opcode + 1), rep->payload, rep->len, out);
    if (rc < 0)
        rpc_reply_free(rep);
    return rc;
}

int rpc_reply_send(struct rpc_client *c, uint64_t req_id, uint16_t opcode,
                   int status, const void *payload, size_t len)
{
    if (status)
        len = 0;
    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    return send_frame(c, 0, PROTO_FLAG_REPLY, opcode, req_id,
                      proto_err_to_wire(status), payload, len);
}

uint64_t rpc_server_instance(struct rpc_client *c)
{
    uint64_t v;

    pthread_mutex_lock(&c->lock);
    v = c->instance;
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* ---- Open and close ---------------------------------------------------- */

static void client_free(struct rpc_client *c)
{
    seclink_free(c->tls);
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->send_lock);
    pthread_cond_destroy(&c->state_cv);
    free(c->addrs);
    free(c->name);
    free(c);
}

int rpc_client_open(const char *addr, const struct rpc_opts *opts,
                    struct rpc_client **out)
{
    struct rpc_client *c;
    struct seclink *tls = NULL;
    uint64_t instance = 0;
    int fd, rc;

    blocking_note(); /* a connect and a handshake */
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->opts = *opts;
    if (c->opts.connect_timeout_ms <= 0)
        c->opts.connect_timeout_ms = RPC_CONNECT_TIMEOUT_MS;
    if (c->opts.call_timeout_ms < 0)
        c->opts.call_timeout_ms = RPC_CALL_TIMEOUT_MS;
    if (c->opts.reconnect_ms < 0)
        c->opts.reconnect_ms = 0;
    c->fd = -1;
    c->addrs = strdup(addr);
    c->name = strdup(opts->name ? opts->name : "");
    c->opts.name = NULL; /* borrowed only during open */
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->send_lock, NULL);
    rc = cond_init(&c->state_cv);
    if (rc < 0 || !c->addrs || !c->name) {
        client_free(c);
        return rc < 0 ? rc : -ENOMEM;
    }
    c->naddrs = net_addr_list_count(c->addrs);
    /* No other thread runs yet: @lock is not needed. */
    fd = -EINVAL;
    for (size_t i = 0; i < c->naddrs && fd < 0 && fd != -EKEYREJECTED; i++) {
        addr_select(c, i);
        fd = dial(c, &instance, &tls);
    }
    if (fd < 0) {
        client_free(c);
        return fd;
    }
    c->fd = fd;
    c->tls = tls;
    c->gen = 1;
    c->instance = instance;
    c->state = CS_READY;
    rc = -pthread_create(&c->reader, NULL, reader_main, c);
    if (rc < 0) {
        client_free(c);
        return rc;
    }
    c->have_reader = true;
    rc = -pthread_create(&c->keeper, NULL, keeper_main, c);
    if (rc < 0) {
        rpc_client_close(c);
        return rc;
    }
    c->have_keeper = true;
    *out = c;
    return 0;
}

void rpc_client_wind_down(struct rpc_client *c, uint32_t away_ms)
{
    pthread_mutex_lock(&c->lock);
    c->wind_down_ms = away_ms ? away_ms : 1;
    wake_calls(c); /* each looks at its new bound */
    pthread_mutex_unlock(&c->lock);
}

void rpc_client_close(struct rpc_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->gave_up)
        log_warn("rpc: closing: %u calls given up, the server away: peer=%s",
                 c->gave_up, c->addr);
    c->closing = true;
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR); /* the reader closes it (invariant 2) */
    wake_calls(c);
    pthread_cond_broadcast(&c->state_cv);
    pthread_mutex_unlock(&c->lock);
    if (c->have_reader)
        pthread_join(c->reader, NULL);
    if (c->have_keeper)
        pthread_join(c->keeper, NULL);
    /* The reader's connection_lost() completed the asynchronous calls,
     * unless it stopped before it ever read (closing seen first): complete
     * what is left.  None can start once closing is set. */
    pthread_mutex_lock(&c->lock);
    struct call *left = async_take(c, UINT64_MAX);
    if (c->stalled_since)
        atomic_fetch_sub(&stalled_now, 1);
    pthread_mutex_unlock(&c->lock);
    async_fail(left, -ENOTCONN);
    client_free(c);
}
