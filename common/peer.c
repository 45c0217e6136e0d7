/* peer.c: framed protocol connections on a libuv loop (see peer.h).
 *
 * Happy path, dialled side: peer_connect() resolves the address and starts
 * uv_tcp_connect(); once connected the peer reads and sends HELLO_REQ as an
 * ordinary pending request (with its own timeout); HELLO_REP completes it,
 * the peer becomes READY, requests queued meanwhile are written and
 * on_ready runs.  Accepted side: the listener accepts, the peer waits for
 * HELLO_REQ, picks the highest common version, asks on_hello, answers
 * HELLO_REP and is READY.  From then on both sides send requests (one
 * pending entry per request id, in a hash table) and answer the other's
 * (peer_reply()), in any order.
 *
 * Secure links (§3.7): when HELLO asked for one and AUTH succeeded, both
 * sides go to TLS and start a TLS 1.3 session (seclink.c) keyed from the
 * handshake; READY comes when it is up, and from then on frames are
 * sealed on the way out and opened on the way in ("Secure link", below).
 *
 * Authentication (docs/protocol.md §3.2): a listener given methods with
 * peer_listener_set_auth() answers HELLO_REQ with the method it chose and
 * a fresh nonce and waits in AUTH_WAIT for AUTH_REQ; on_auth names the key
 * the identity's proof must be made with, auth_verify() checks it, and
 * AUTH_REP carries the responder's own proof.  A dialled peer given a
 * credential (peer_set_cred()) answers the challenge and becomes READY
 * only when the responder's proof is right: both sides prove themselves.
 *
 * Failure modes (docs/protocol.md §2, §3):
 * - no common version: the accepted side answers PROTO_EVERSION and
 *   closes once the answer is written; the dialled side, given that
 *   answer, closes with -EPROTONOSUPPORT.
 * - on_hello refuses: the answer carries its error, then the same close.
 * - a request before HELLO, or a second HELLO: answered PROTO_EHANDSHAKE;
 *   the connection stays open.
 * - a bad frame header (magic, frame version, flags, status, length), an
 *   undecodable HELLO, or a reply to a request id never sent: the
 *   connection closes with -EPROTO.  A reply to a request that timed out
 *   here arrives late and is dropped (ids only count upwards, so the two
 *   are told apart by the id).
 * - authentication required and not offered, an unknown identity, a
 *   wrong proof, a ticket that does not open or expired: the accepted side
 *   answers PROTO_EAUTH and closes; the dialled side closes with
 *   -EKEYREJECTED, as it does when the responder's proof is wrong or the
 *   responder skips authentication although this side has a credential.
 * - with limits (peer_listener_set_limits()): an address that holds its
 *   limit of connections when one more is accepted: HELLO_REQ is answered
 *   ELIMIT and the connection closes (as a refusal); an identity that
 *   holds its limit of sessions: the same at AUTH_REQ.
 * - no HELLO and AUTH within the listener's handshake timeout (5 s by
 *   default), or no HELLO_REP within 10 s: the connection closes with
 *   -ETIMEDOUT.
 * - EOF, read or write errors: the connection closes; pending requests get
 *   -ECONNRESET, then on_close runs.
 * - a peer that sends requests faster than it reads the answers: once
 *   more than the write limit waits in the write queue we stop reading
 *   from it, so it cannot make us buffer without bound.
 *
 * Each write is one malloc'd frame (header and payload together) handed
 * to uv_write() and freed in its callback; the frames written while one
 * read is handled go out together ("Corking", below).  Input goes straight into
 * the frame reader's buffer (proto_reader_space/commit/next).  What a message
 * means is left to the daemons' on_request; this file only knows HELLO.
 *
 *   peer_connect()                          listener accepts
 *        |                                         |
 *   CONNECTING --connected--> HELLO_SENT      HELLO_WAIT
 *                                 |  HELLO_REP     |  HELLO_REQ, answered
 *                                 | (method)       | (method)
 *                                 v                v
 *                             AUTH_SENT        AUTH_WAIT
 *                                 | AUTH_REP       | AUTH_REQ, verified
 *                                 +----> READY <---+
 *                                 | (secure link)  |
 *                                 +-----> TLS -----+--> READY once the TLS
 *                                                       handshake is done
 *   (without authentication HELLO_SENT and HELLO_WAIT go to READY)
 *   HELLO_WAIT --refused/EVERSION--> DRAINING --shutdown done--+
 *   any --error, EOF, peer_close()--> CLOSING <----------------+
 *   CLOSING --uv_close callback--> CLOSED
 *
 *   FROM -> TO                  [function]
 *   CONNECTING -> HELLO_SENT    [on_connect]
 *   HELLO_SENT -> READY         [on_hello_rep -> become_ready]
 *   HELLO_SENT -> AUTH_SENT     [on_hello_rep -> send_auth]
 *   AUTH_SENT -> READY          [on_auth_rep -> become_ready]
 *   HELLO_WAIT -> READY         [on_hello_req -> become_ready]
 *   HELLO_WAIT -> AUTH_WAIT     [on_hello_req]
 *   AUTH_WAIT -> READY          [on_auth_req -> become_ready]
 *   AUTH_SENT -> TLS            [on_auth_rep -> tls_start]
 *   AUTH_WAIT -> TLS            [on_auth_req -> tls_start]
 *   TLS -> READY                [tls_read -> tls_handshake_step]
 *   HELLO_WAIT -> DRAINING      [on_hello_req -> close_after_flush]
 *   AUTH_WAIT -> DRAINING       [on_auth_req -> close_after_flush]
 *   any -> CLOSING              [close_now]
 *   CLOSING -> CLOSED           [on_tcp_closed]
 *
 * Invariants:
 * 1. The connection holds one reference from uv_tcp_init() until the tcp
 *    close callback, and the handshake timer one from uv_timer_init()
 *    until its own, so a peer is valid in every callback on its handles.
 * 2. A pending entry is in the table exactly while its callback has not
 *    run; its timer is stopped when it leaves the table.
 * 3. Frames wait in the queue only before READY; they are written, in
 *    order, when the peer becomes READY and freed if it closes instead.
 */
#include "peer.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conn_limit.h"
#include "log.h"
#include "net.h"
#include "opcount.h"
#include "seclink.h"

#define PEER_WRITE_LIMIT ((size_t)64 << 20)
/* Requests of one peer being served (handed to on_request, not yet
 * answered) before reading from it stops: what one connection can make a
 * daemon hold is bounded; reading resumes at half. */
#define PEER_SERVE_LIMIT 4096u
#define PEER_HELLO_TIMEOUT_MS 5000u
#define PEER_HELLO_REP_TIMEOUT_MS 10000u
#define PEER_READ_CHUNK 65536
#define PEER_BACKLOG 128
#define PEER_NAME_MAX 255 /* of a HELLO name we keep */

#define container_of(ptr, type, member)                                        \
    ((type *)((char *)(ptr)-offsetof(type, member)))

enum peer_state {
    ST_CONNECTING,
    ST_HELLO_SENT,
    ST_HELLO_WAIT,
    ST_AUTH_SENT,
    ST_AUTH_WAIT,
    ST_TLS, /* the secure link's TLS handshake (§3.7) */
    ST_READY,
    ST_DRAINING,
    ST_CLOSING,
    ST_CLOSED,
};

/* One request this side sent and has not seen answered. */
struct pending {
    uv_timer_t timer;     /* initialised only when @timed */
    struct pending *next; /* hash chain */
    struct peer *peer;
    uint64_t id;
    uint16_t opcode;
    bool timed;
    peer_reply_cb cb;
    void *arg;
};

/* One frame on its way out: header and payload in @data. */
struct wreq {
    uv_write_t req;
    struct peer *peer;
    struct wreq *next; /* in the pre-READY queue */
    size_t len;
    uint8_t data[];
};

struct peer {
    uv_tcp_t tcp;
    uint64_t last_read_ms;  /* uv_now() of the last bytes read; 0: none */
    uv_timer_t hello_timer; /* accepted peers: HELLO must come in time */
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_loop_t *loop;
    const struct peer_ops *ops;
    void *data, *listener_data;
    int refs;
    enum peer_state state;
    bool dialled;
    bool hello_timer_on; /* @hello_timer initialised, not yet closed */
    bool paused;         /* reading stopped by the write limit */
    bool serve_paused;   /* reading stopped by the serve limit */
    bool silent;         /* never reported to the owner: no on_close */
    int close_status;
    size_t write_limit;
    uint32_t serving, serve_limit; /* requests handed to on_request, open */
    char name[64];                       /* remote address */
    char remote_name[PEER_NAME_MAX + 1]; /* from HELLO */
    char *local_name;                    /* what we send in HELLO */
    uint64_t local_instance, remote_instance;
    uint16_t version;
    uint8_t role;
    /* Authentication: the methods an accepted peer requires (0: none),
     * the one chosen, the responder's challenge, the responder's proof a
     * dialled peer expects, its credential, and the identity proven. */
    uint32_t auth_methods;
    uint8_t auth_method;
    uint8_t nonce[PROTO_AUTH_NONCE_SIZE];
    uint8_t expect[PROTO_AUTH_PROOF_SIZE];
    struct auth_cred *cred;
    char identity[PROTO_AUTH_NAME_MAX + 1];
    uint32_t rights; /* the owner's word: peer_set_rights() */
    /* Limits (conn_limit.h): the listener's table (borrowed), this
     * peer's address key, and which counts it holds; @over_limit: the
     * address held its limit at accept, HELLO_REQ gets ELIMIT. */
    struct conn_limit *limits;
    char addr_key[64];
    bool addr_counted, identity_counted, over_limit;
    /* Secure link (§3.7): asked for and granted in HELLO; its key, from
     * AUTH until the TLS session takes it; the session, and the buffer
     * ciphertext is read into; @tls_up once its handshake is done (every
     * frame is sealed from then on).  @secure_required: the listener
     * refuses peers that do not ask. */
    bool secure, secure_required, tls_up;
    uint8_t link_key[AUTH_KEY_SIZE];
    struct seclink *tls;
    uint8_t *tls_in;
    struct proto_reader rd;
    uint64_t next_id;
    struct pending **tab;
    size_t nbuckets, npending;
    struct wreq *qhead, *qtail;
    /* Frames held while the loop handles one read (see "Corking"). */
    struct wreq *ck_head, *ck_tail;
    size_t ck_n;
    struct peer *ck_next; /* on the thread's corked list, with a ref */
    bool ck_listed;
};

struct peer_listener {
    uv_tcp_t tcp;
    uint64_t last_read_ms; /* uv_now() of the last bytes read; 0: none */
    const struct peer_ops *ops;
    void *data;
    char *name;
    uint64_t instance;
    unsigned hello_timeout_ms;
    uint32_t auth_methods;
    struct conn_limit *limits; /* borrowed; NULL: no limits */
    bool secure_required;
};

static const struct peer_ops no_ops;

static void on_tcp_closed(uv_handle_t *h);
static int send_hello(struct peer *p);
static int send_auth(struct peer *p);

/* ---- Instance id ------------------------------------------------------- */

static uint64_t instance_id;
static pthread_once_t instance_once = PTHREAD_ONCE_INIT;

static void instance_init(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
            ((uint64_t)getpid() << 32);
    }
    instance_id = v ? v : 1;
}

uint64_t peer_instance_id(void)
{
    pthread_once(&instance_once, instance_init);
    return instance_id;
}

/* ---- Pending table ----------------------------------------------------- */

static struct pending **bucket(struct peer *p, uint64_t id)
{
    return &p->tab[id & (p->nbuckets - 1)];
}

/* Double the table when it gets crowded; a failed grow leaves it as is. */
static void table_grow(struct peer *p)
{
    size_t n = p->nbuckets ? p->nbuckets * 2 : 64;
    struct pending **tab = calloc(n, sizeof(*tab));

    if (!tab)
        return;
    for (size_t i = 0; i < p->nbuckets; i++) {
        struct pending *pd = p->tab[i], *next;
        for (; pd; pd = next) {
            next = pd->next;
            pd->next = tab[pd->id & (n - 1)];
            tab[pd->id & (n - 1)] = pd;
        }
    }
    free(p->tab);
    p->tab = tab;
    p->nbuckets = n;
}

static int table_insert(struct peer *p, struct pending *pd)
{
    if (p->npending >= p->nbuckets)
        table_grow(p);
    if (!p->nbuckets)
        return -ENOMEM;
    struct pending **b = bucket(p, pd->id);
    pd->next = *b;
    *b = pd;
    p->npending++;
    return 0;
}

static struct pending *table_remove(struct peer *p, uint64_t id)
{
    if (!p->nbuckets)
        return NULL;
    for (struct pending **at = bucket(p, id); *at; at = &(*at)->next) {
        struct pending *pd = *at;
        if (pd->id == id) {
            *at = pd->next;
            p->npending--;
            return pd;
        }
    }
    return NULL;
}

static void on_pending_timer_closed(uv_handle_t *h)
{
    free(container_of((uv_timer_t *)h, struct pending, timer));
}

/* @pd has left the table: stop its timer and free it (invariant 2). */
static void pending_release(struct pending *pd)
{
    if (pd->timed)
        uv_close((uv_handle_t *)&pd->timer, on_pending_timer_closed);
    else
        free(pd);
}

/* Run @pd's callback once and release it.  @pd is out of the table. */
static void pending_complete(struct pending *pd, int status,
                             const uint8_t *payload, size_t len)
{
    if (pd->timed)
        uv_timer_stop(&pd->timer);
    pd->cb(pd->peer, status, payload, len, pd->arg);
    pending_release(pd);
}

static void fail_all(struct peer *p, int status)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        struct pending *pd;
        while ((pd = p->tab[i])) {
            p->tab[i] = pd->next;
            p->npending--;
            pending_complete(pd, status, NULL, 0);
        }
    }
}

static void on_request_timeout(uv_timer_t *t)
{
    struct pending *pd = container_of(t, struct pending, timer);
    struct peer *p = pd->peer;

    if (table_remove(p, pd->id) != pd)
        return; /* cannot happen: invariant 2 */
    log_debug("peer", "request timed out: op=%s id=%llu peer=%s",
              proto_msg_name(pd->opcode) ? proto_msg_name(pd->opcode) : "?",
              (unsigned long long)pd->id, p->name);
    pending_complete(pd, -ETIMEDOUT, NULL, 0);
}

/* ---- Closing ----------------------------------------------------------- */

static void on_hello_timer_closed(uv_handle_t *h)
{
    peer_unref(container_of((uv_timer_t *)h, struct peer, hello_timer));
}

/* The timer holds its own reference until its close callback. */
static void hello_timer_close(struct peer *p)
{
    if (!p->hello_timer_on)
        return;
    p->hello_timer_on = false;
    uv_close((uv_handle_t *)&p->hello_timer, on_hello_timer_closed);
}

static void close_now(struct peer *p, int status)
{
    if (p->state >= ST_CLOSING)
        return;
    p->state = ST_CLOSING;
    p->close_status = status;
    hello_timer_close(p);
    uv_close((uv_handle_t *)&p->tcp, on_tcp_closed);
}

/* Close because of @status, logging the cause once. */
static void peer_fail(struct peer *p, int status, const char *what)
{
    if (p->state >= ST_CLOSING)
        return;
    log_warn("peer: %s: %s peer=%s", what, strerror(-status), p->name);
    close_now(p, status);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct peer *p = container_of(req, struct peer, shutdown);

    (void)status; /* closing either way */
    close_now(p, p->close_status);
}

/* Stop taking input and close once every queued write went out, so a
 * refusal reaches the other side before the connection goes. */
static void cork_flush_peer(struct peer *p);

static void close_after_flush(struct peer *p, int status)
{
    if (p->state >= ST_DRAINING)
        return;
    if (p->ck_n) /* held frames (the refusal) go before the shutdown */
        cork_flush_peer(p);
    uv_read_stop((uv_stream_t *)&p->tcp);
    p->state = ST_DRAINING;
    p->close_status = status;
    if (uv_shutdown(&p->shutdown, (uv_stream_t *)&p->tcp, on_shutdown) < 0)
        close_now(p, status);
}

/* Give back the counts @p holds in its listener's limits. */
static void limits_release(struct peer *p)
{
    if (p->addr_counted)
        conn_limit_put(p->limits, CONN_LIMIT_ADDR, p->addr_key);
    if (p->identity_counted)
        conn_limit_put(p->limits, CONN_LIMIT_IDENTITY, p->identity);
    p->addr_counted = p->identity_counted = false;
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct peer *p = container_of((uv_tcp_t *)h, struct peer, tcp);

    p->state = ST_CLOSED;
    limits_release(p);
    fail_all(p, -ECONNRESET);
    while (p->qhead) {
        struct wreq *w = p->qhead;
        p->qhead = w->next;
        free(w);
    }
    p->qtail = NULL;
    if (!p->silent && p->ops->on_close)
        p->ops->on_close(p, p->close_status);
    peer_unref(p); /* the connection's reference (invariant 1) */
}

void peer_close(struct peer *p)
{
    if (p)
        close_now(p, 0);
}

bool peer_is_closed(const struct peer *p)
{
    return p->state >= ST_DRAINING;
}

uint64_t peer_last_read_ms(const struct peer *p)
{
    return p->last_read_ms;
}

/* ---- Writing ----------------------------------------------------------- */

static struct wreq *frame_new(struct peer *p, uint8_t flags, uint16_t opcode,
                              uint64_t id, int32_t status, const void *payload,
                              size_t len)
{
    struct proto_hdr h = {
        .version = PROTO_FRAME_VERSION,
        .flags = flags,
        .opcode = opcode,
        .req_id = id,
        .status = status,
        .length = (uint32_t)len,
    };
    struct wreq *w = malloc(sizeof(*w) + PROTO_HDR_SIZE + len);

    if (!w)
        return NULL;
    w->peer = p;
    w->next = NULL;
    w->len = PROTO_HDR_SIZE + len;
    proto_hdr_encode(&h, w->data);
    if (len)
        memcpy(w->data + PROTO_HDR_SIZE, payload, len);
    return w;
}

static size_t write_queue(struct peer *p)
{
    return uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static int read_start(struct peer *p)
{
    return uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
}

/* Reading goes on once neither limit holds it. */
static void read_resume(struct peer *p)
{
    if (p->paused || p->serve_paused || p->state >= ST_DRAINING)
        return;
    int rc = read_start(p);
    if (rc < 0)
        peer_fail(p, rc, "read");
}

static void write_done(struct peer *p, int status);

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = container_of(req, struct wreq, req);
    struct peer *p = w->peer;

    free(w);
    write_done(p, status);
}

/* ---- Secure link (docs/protocol.md §3.7) ---------------------------------
 *
 * Once the TLS handshake is done every frame goes through the session:
 * frame_write() and cork_flush_peer() seal the frames they would have
 * written into one buffer of ciphertext and write that instead; on_read()
 * hands what it read to the session and the plaintext to the frame
 * reader.  The session's own handshake flights go out as they come. */

/* What the session wrote, as one wreq (NULL: nothing, or no memory with
 * *rc set). */
static struct wreq *tls_output(struct peer *p, int *rc)
{
    size_t n = seclink_output_len(p->tls);
    struct wreq *w;

    if (n == 0)
        return NULL;
    w = malloc(sizeof(*w) + n);
    if (!w) {
        *rc = -ENOMEM;
        return NULL;
    }
    w->peer = p;
    w->next = NULL;
    w->len = n;
    seclink_output_take(p->tls, w->data);
    return w;
}

/* Seal the frames from @head on (linked by next; taken, also on error)
 * into one wreq of ciphertext: 0 with *out set, or -errno. */
static int tls_seal(struct peer *p, struct wreq *head, struct wreq **out)
{
    int rc = 0;

    while (head) {
        struct wreq *next = head->next;
        if (!rc)
            rc = seclink_send(p->tls, head->data, head->len);
        free(head);
        head = next;
    }
    *out = rc ? NULL : tls_output(p, &rc);
    return *out ? 0 : rc ? rc : -EIO;
}

/* ---- Corking ------------------------------------------------------------
 *
 * While on_read() hands one read's frames to the daemon, every frame the
 * daemon writes in answer (replies, forwarded requests), to this peer or
 * to any other of the thread's loop, is held on its peer; when on_read()
 * is done, each peer's held frames go out in one uv_write() of many
 * buffers, one writev() instead of one write() per frame.  Nothing waits
 * past the read being handled, so a lone request is answered as soon as
 * before.  Frames written at any other time (timers, the thread pool's
 * completions) go out at once.  Each loop runs on one thread, so the
 * state is per thread. */
static __thread int cork_depth;
static __thread struct peer *cork_list;

/* Many frames in one write; frees them in on_batch_write. */
struct wbatch {
    uv_write_t req;
    struct peer *peer;
    size_t n;
    struct wreq *frames[];
};

static void write_done(struct peer *p, int status)
{
    if (status < 0) {
        if (status != UV_ECANCELED)
            peer_fail(p, status, "write");
        return;
    }
    if (p->paused && p->state < ST_DRAINING &&
        write_queue(p) <= p->write_limit / 4) {
        p->paused = false;
        read_resume(p);
    }
}

static void on_batch_write(uv_write_t *req, int status)
{
    struct wbatch *b = container_of(req, struct wbatch, req);
    struct peer *p = b->peer;

    for (size_t i = 0; i < b->n; i++)
        free(b->frames[i]);
    free(b);
    write_done(p, status);
}

static void write_pressure(struct peer *p);
static int frame_write_now(struct peer *p, struct wreq *w);

/* Write @p's held frames in one uv_write (in order). */
static void cork_flush_peer(struct peer *p)
{
    struct wreq *w = p->ck_head;
    size_t n = p->ck_n;
    struct wbatch *b = NULL;
    uv_buf_t *bufs = NULL;
    int rc = -ENOMEM;

    p->ck_head = p->ck_tail = NULL;
    p->ck_n = 0;
    if (p->tls_up && p->state < ST_CLOSING) {
        struct wreq *sealed;
        rc = tls_seal(p, w, &sealed);
        if (rc == 0)
            rc = frame_write_now(p, sealed);
        if (rc < 0)
            peer_fail(p, rc, "write");
        return;
    }
    if (p->state >= ST_CLOSING)
        rc = UV_ECANCELED;
    else if ((b = malloc(sizeof(*b) + n * sizeof(b->frames[0]))) &&
             (bufs = calloc(n, sizeof(*bufs)))) {
        b->peer = p;
        b->n = n;
        for (size_t i = 0; i < n; i++, w = w->next) {
            b->frames[i] = w;
            bufs[i] = uv_buf_init((char *)w->data, (unsigned)w->len);
        }
        rc = uv_write(&b->req, (uv_stream_t *)&p->tcp, bufs, (unsigned)n,
                      on_batch_write);
        free(bufs); /* libuv copied the buffer list */
        if (rc == 0) {
            write_pressure(p);
            return;
        }
        w = b->frames[0];
        for (size_t i = 0; i + 1 < n; i++)
            b->frames[i]->next = b->frames[i + 1];
    }
    free(b);
    while (w) {
        struct wreq *next = w->next;
        free(w);
        w = next;
    }
    if (rc != UV_ECANCELED)
        peer_fail(p, rc, "write");
}

static void cork_begin(void)
{
    cork_depth++;
}

void peer_cork_begin(void)
{
    cork_begin();
}

static void cork_end(void)
{
    if (--cork_depth > 0)
        return;
    while (cork_list) {
        struct peer *p = cork_list;
        cork_list = p->ck_next;
        p->ck_next = NULL;
        p->ck_listed = false;
        if (p->ck_n)
            cork_flush_peer(p);
        peer_unref(p);
    }
}

void peer_cork_end(void)
{
    cork_end();
}

/* Stop reading from @p while the other side does not read what we send. */
static void write_pressure(struct peer *p)
{
    if (!p->paused && write_queue(p) > p->write_limit) {
        /* The other side is not reading what we send: stop reading what
         * it sends until the queue drains (on_write). */
        log_debug("peer",
                  "write queue full, reading paused: bytes=%zu "
                  "peer=%s",
                  write_queue(p), p->name);
        p->paused = true;
        uv_read_stop((uv_stream_t *)&p->tcp);
    }
}

/* Hand @w to libuv.  Takes ownership of @w, also on error. */
static int frame_write(struct peer *p, struct wreq *w)
{
    if (cork_depth > 0) {
        w->next = NULL;
        if (p->ck_tail)
            p->ck_tail->next = w;
        else
            p->ck_head = w;
        p->ck_tail = w;
        p->ck_n++;
        if (!p->ck_listed) {
            peer_ref(p); /* held until cork_end() */
            p->ck_listed = true;
            p->ck_next = cork_list;
            cork_list = p;
        }
        return 0;
    }

    if (p->tls_up) {
        w->next = NULL;
        int rc = tls_seal(p, w, &w);
        if (rc < 0)
            return rc;
    }
    return frame_write_now(p, w);
}

/* uv_write @w as it is.  Takes ownership of @w, also on error. */
static int frame_write_now(struct peer *p, struct wreq *w)
{
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    int rc = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_write);

    if (rc < 0) {
        free(w);
        return rc;
    }
    write_pressure(p);
    return 0;
}

/* Send a reply frame now (replies are never queued).  Dropped once the
 * peer is closing. */
static int reply_send(struct peer *p, uint64_t id, uint16_t opcode,
                      int32_t wire, const void *payload, size_t len)
{
    if (p->state >= ST_DRAINING)
        return 0;
    /* docs/protocol.md §2.2: an error reply has no body, except
     * ENOTLEADER's (§5.3). */
    if (wire != 0 && wire != PROTO_ENOTLEADER)
        len = 0;
    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    if (p->serving > 0 && --p->serving <= p->serve_limit / 2 &&
        p->serve_paused) {
        p->serve_paused = false;
        read_resume(p);
    }
    opcount_reply_wire(&opcount_served, (uint16_t)(opcode - 1), wire, len);
    struct wreq *w =
        frame_new(p, PROTO_FLAG_REPLY, opcode, id, wire, payload, len);
    if (!w)
        return -ENOMEM;
    int rc = frame_write(p, w);
    if (rc < 0)
        peer_fail(p, rc, "write");
    return rc;
}

int peer_reply_wire(struct peer *p, uint64_t req_id, uint16_t opcode,
                    int32_t wire_status, const void *payload, size_t len)
{
    if (!proto_err_valid(wire_status))
        return -EINVAL;
    return reply_send(p, req_id, opcode, wire_status, payload, len);
}

int peer_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int status,
               const void *payload, size_t len)
{
    return reply_send(p, req_id, opcode, proto_err_to_wire(status), payload,
                      len);
}

/* ---- Requests ---------------------------------------------------------- */

/* Register a pending request and write it, or queue it before READY
 * (invariant 3).  @now writes even before READY (the HELLO itself). */
static int request_send(struct peer *p, uint16_t opcode, const void *payload,
                        size_t len, unsigned timeout_ms, peer_reply_cb cb,
                        void *arg, bool now)
{
    struct pending *pd;
    struct wreq *w;
    int rc;

    if (p->state >= ST_DRAINING)
        return -ENOTCONN;
    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    pd = calloc(1, sizeof(*pd));
    if (!pd)
        return -ENOMEM;
    pd->peer = p;
    pd->id = ++p->next_id;
    pd->opcode = opcode;
    pd->cb = cb;
    pd->arg = arg;
    w = frame_new(p, 0, opcode, pd->id, 0, payload, len);
    if (!w || table_insert(p, pd) < 0) {
        free(w);
        free(pd);
        return -ENOMEM;
    }
    if (timeout_ms) {
        uv_timer_init(p->loop, &pd->timer);
        pd->timed = true;
        uv_timer_start(&pd->timer, on_request_timeout, timeout_ms, 0);
    }
    if (!now && p->state != ST_READY) {
        if (p->qtail)
            p->qtail->next = w;
        else
            p->qhead = w;
        p->qtail = w;
        return 0;
    }
    rc = frame_write(p, w);
    if (rc < 0) {
        table_remove(p, pd->id);
        pending_release(pd);
        peer_fail(p, rc, "write");
    }
    return rc;
}

int peer_request(struct peer *p, uint16_t opcode, const void *payload,
                 size_t len, unsigned timeout_ms, peer_reply_cb cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    return request_send(p, opcode, payload, len, timeout_ms, cb, arg, false);
}

/* ---- Handshake (docs/protocol.md §3) ------------------------------------ */

static void set_remote_name(struct peer *p, const struct proto_str *s)
{
    size_t n = s->len > PEER_NAME_MAX ? PEER_NAME_MAX : s->len;
    if (n)
        memcpy(p->remote_name, s->p, n);
    p->remote_name[n] = '\0';
}

static void become_ready(struct peer *p)
{
    p->state = ST_READY;
    hello_timer_close(p);
    while (p->qhead && p->state == ST_READY) {
        struct wreq *w = p->qhead;
        p->qhead = w->next;
        if (!p->qhead)
            p->qtail = NULL;
        int rc = frame_write(p, w);
        if (rc < 0)
            peer_fail(p, rc, "write");
    }
    if (p->state == ST_READY && p->ops->on_ready)
        p->ops->on_ready(p);
}

/* Write what the TLS session has to send (a handshake flight). */
static int tls_flush(struct peer *p)
{
    int rc = 0;
    struct wreq *w = tls_output(p, &rc);

    return w ? frame_write_now(p, w) : rc;
}

/* One step of the TLS handshake on the input given; READY when done. */
static int tls_handshake_step(struct peer *p)
{
    int rc = seclink_handshake(p->tls);
    int frc = tls_flush(p);

    if (rc == -EAGAIN)
        return frc;
    if (rc < 0)
        return rc;
    if (frc < 0)
        return frc;
    p->tls_up = true;
    log_debug("peer", "secure link up: %s identity=%s peer=%s",
              seclink_describe(p->tls), p->dialled ? "-" : p->identity,
              p->name);
    become_ready(p);
    return 0;
}

/* §3.7: AUTH is done; the link continues as TLS keyed with p->link_key,
 * PSK identity @name.  The initiator sends the first flight now. */
static int tls_start(struct peer *p, enum seclink_side side, const char *name)
{
    int rc;

    if (p->rd.len > p->rd.taken)
        return -EPROTO; /* bytes after AUTH_REQ: TLS before AUTH_REP */
    rc = seclink_new(side, name, p->link_key, -1, &p->tls);
    memset(p->link_key, 0, sizeof(p->link_key));
    if (rc < 0)
        return rc;
    p->tls_in = malloc(PEER_READ_CHUNK);
    if (!p->tls_in)
        return -ENOMEM;
    p->state = ST_TLS;
    if (side == SECLINK_SERVER)
        return 0;
    seclink_input(p->tls, NULL, 0);
    return tls_handshake_step(p);
}

/* What on_read() read into p->tls_in, on a peer with a TLS session. */
static int tls_read(struct peer *p, size_t n)
{
    seclink_input(p->tls, p->tls_in, n);
    if (p->state == ST_TLS) {
        int rc = tls_handshake_step(p);
        if (rc < 0 || p->state != ST_READY)
            return rc;
    }
    for (;;) {
        size_t avail = 0;
        uint8_t *at = proto_reader_space(&p->rd, PEER_READ_CHUNK, &avail);
        if (!at)
            return -ENOMEM;
        ssize_t k = seclink_recv(p->tls, at, avail);
        if (k == -EAGAIN)
            return 0;
        if (k < 0)
            return (int)k;
        proto_reader_commit(&p->rd, (size_t)k);
    }
}

static void on_hello_rep(struct peer *p, int status, const uint8_t *payload,
                         size_t len, void *arg)
{
    struct proto_hello_rep rep;

    (void)arg;
    if (p->state != ST_HELLO_SENT)
        return; /* closing: the connection's own status is reported */
    if (status == -ETIMEDOUT) {
        peer_fail(p, status, "handshake timed out");
        return;
    }
    if (status < 0) {
        peer_fail(p, status, "handshake refused");
        return;
    }
    if (proto_hello_rep_decode(payload, len, &rep) < 0 ||
        rep.version < PROTO_VERSION_MIN || rep.version > PROTO_VERSION_MAX) {
        peer_fail(p, -EPROTO, "handshake: bad HELLO_REP");
        return;
    }
    p->version = rep.version;
    p->remote_instance = rep.instance_id;
    set_remote_name(p, &rep.name);
    /* §3.2: with a credential, only a responder that proves itself will
     * do; without one, only a responder that asks for nothing. */
    if (rep.auth_method == PROTO_AUTH_NONE && !p->cred) {
        become_ready(p);
        return;
    }
    if (rep.auth_method == PROTO_AUTH_NONE) {
        peer_fail(p, -EKEYREJECTED,
                  "handshake: the responder did not authenticate");
        return;
    }
    if (!p->cred || rep.auth_method != p->cred->method) {
        peer_fail(p, -EKEYREJECTED,
                  "handshake: authentication required and no key for it");
        return;
    }
    /* §3.7: a secure link exactly when asked for. */
    p->secure = rep.features & PROTO_FEATURE_SECURE;
    if (p->secure != p->cred->secure) {
        peer_fail(p, p->secure ? -EPROTO : -ENOPROTOOPT,
                  p->secure ? "handshake: a secure link not asked for"
                            : "handshake: the responder offers no secure "
                              "link");
        return;
    }
    memcpy(p->nonce, rep.nonce, sizeof(p->nonce));
    int rc = send_auth(p);
    if (rc < 0)
        peer_fail(p, rc, "handshake");
}

static void on_auth_rep(struct peer *p, int status, const uint8_t *payload,
                        size_t len, void *arg)
{
    struct proto_auth_rep rep;

    (void)arg;
    if (p->state != ST_AUTH_SENT)
        return;
    if (status < 0) {
        peer_fail(p, status, "handshake: authentication refused");
        return;
    }
    if (proto_auth_rep_decode(payload, len, &rep) < 0) {
        peer_fail(p, -EPROTO, "handshake: bad AUTH_REP");
        return;
    }
    if (!auth_proof_equal(rep.proof, p->expect)) {
        peer_fail(p, -EKEYREJECTED,
                  "handshake: the responder's proof is wrong");
        return;
    }
    if (p->secure) {
        int rc = tls_start(p, SECLINK_CLIENT, p->cred->name);
        if (rc < 0)
            peer_fail(p, rc, "secure link");
        return;
    }
    become_ready(p);
}

/* §3.2: answer the challenge in p->nonce with our credential. */
static int send_auth(struct peer *p)
{
    struct proto_auth_req req;
    struct proto_wbuf w;
    int rc;

    rc = auth_answer(p->cred, p->role, p->nonce, &req, p->expect);
    if (rc == 0 && p->secure)
        rc = auth_link_key(p->cred->key, p->role, p->nonce, &req,
                           p->link_key);
    if (rc < 0)
        return rc;
    proto_wbuf_init(&w);
    proto_auth_req_encode(&w, &req);
    rc = w.err;
    if (!rc)
        rc = request_send(p, PROTO_MSG_AUTH_REQ, w.p, w.len,
                          PEER_HELLO_REP_TIMEOUT_MS, on_auth_rep, NULL, true);
    proto_wbuf_free(&w);
    if (!rc)
        p->state = ST_AUTH_SENT;
    return rc;
}

static int send_hello(struct peer *p)
{
    struct proto_hello_req m = {
        .min_version = PROTO_VERSION_MIN,
        .max_version = PROTO_VERSION_MAX,
        .role = p->role,
        .features = p->cred && p->cred->secure ? PROTO_FEATURE_SECURE : 0,
        .auth_methods = p->cred ? PROTO_AUTH_BIT(p->cred->method) : 0,
        .name = {p->local_name, (uint32_t)strlen(p->local_name)},
    };
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    rc = w.err;
    if (!rc)
        rc = request_send(p, PROTO_MSG_HELLO_REQ, w.p, w.len,
                          PEER_HELLO_REP_TIMEOUT_MS, on_hello_rep, NULL, true);
    proto_wbuf_free(&w);
    return rc;
}

/* Answer @id with a wire error and close once the answer is out. */
static void refuse(struct peer *p, uint64_t id, int32_t wire, int status)
{
    reply_send(p, id,
               p->state == ST_AUTH_WAIT ? PROTO_MSG_AUTH_REP
                                        : PROTO_MSG_HELLO_REP,
               wire, NULL, 0);
    close_after_flush(p, status);
}

static void on_hello_req(struct peer *p, const struct proto_hdr *h,
                         const uint8_t *payload)
{
    struct proto_hello_req m;
    struct proto_hello_rep rep;
    struct proto_wbuf w;
    int lo, hi, rc;

    if (p->dialled || p->state != ST_HELLO_WAIT) {
        /* §3: HELLO is sent once, by the side that dialled. */
        reply_send(p, h->req_id, PROTO_MSG_HELLO_REP, PROTO_EHANDSHAKE, NULL,
                   0);
        return;
    }
    if (proto_hello_req_decode(payload, h->length, &m) < 0) {
        peer_fail(p, -EPROTO, "handshake: bad HELLO_REQ");
        return;
    }
    lo = m.min_version > PROTO_VERSION_MIN ? m.min_version : PROTO_VERSION_MIN;
    hi = m.max_version < PROTO_VERSION_MAX ? m.max_version : PROTO_VERSION_MAX;
    if (lo > hi) {
        log_warn("peer: handshake: no common version: offered=%u..%u "
                 "supported=%u..%u peer=%s",
                 m.min_version, m.max_version, PROTO_VERSION_MIN,
                 PROTO_VERSION_MAX, p->name);
        refuse(p, h->req_id, PROTO_EVERSION, -EPROTONOSUPPORT);
        return;
    }
    p->role = m.role;
    p->version = (uint16_t)hi;
    set_remote_name(p, &m.name);
    if (p->over_limit) {
        /* Logged at accept; the answer tells the other side why. */
        refuse(p, h->req_id, PROTO_ELIMIT, -EUSERS);
        return;
    }
    if (p->ops->on_hello) {
        rc = p->ops->on_hello(p, &m);
        if (rc < 0) {
            log_warn("peer: handshake refused: %s role=%u name=%s peer=%s",
                     strerror(-rc), m.role, p->remote_name, p->name);
            refuse(p, h->req_id, proto_err_to_wire(rc), rc);
            return;
        }
        if (p->state != ST_HELLO_WAIT)
            return; /* on_hello closed it */
    }
    rep.version = (uint16_t)hi;
    rep.features = 0;
    rep.auth_method = PROTO_AUTH_NONE;
    if (p->auth_methods) {
        /* §3.2: the first method both sides know, or a refusal. */
        uint32_t both = p->auth_methods & m.auth_methods;
        if (!both) {
            log_warn("peer: handshake refused: authentication required and "
                     "not offered: role=%u name=%s peer=%s",
                     m.role, p->remote_name, p->name);
            refuse(p, h->req_id, PROTO_EAUTH, -EKEYREJECTED);
            return;
        }
        rep.auth_method = both & PROTO_AUTH_BIT(PROTO_AUTH_KEY)
                              ? PROTO_AUTH_KEY
                              : PROTO_AUTH_TICKET;
        if (auth_random(p->nonce, sizeof(p->nonce)) < 0) {
            refuse(p, h->req_id, PROTO_EIO, -EIO);
            return;
        }
        memcpy(rep.nonce, p->nonce, sizeof(rep.nonce));
        p->auth_method = (uint8_t)rep.auth_method;
        /* §3.7: granted when asked for; keyed by AUTH. */
        p->secure = m.features & PROTO_FEATURE_SECURE;
        rep.features = p->secure ? PROTO_FEATURE_SECURE : 0;
    }
    if (p->secure_required && !p->secure) {
        log_warn("peer: handshake refused: a secure link (--secure) is "
                 "required and was not asked for: role=%u name=%s peer=%s",
                 m.role, p->remote_name, p->name);
        refuse(p, h->req_id, PROTO_ESECURE, -ENOPROTOOPT);
        return;
    }
    rep.instance_id = p->local_instance;
    rep.name.p = p->local_name;
    rep.name.len = (uint32_t)strlen(p->local_name);
    proto_wbuf_init(&w);
    proto_hello_rep_encode(&w, &rep);
    rc = w.err ? w.err
               : reply_send(p, h->req_id, PROTO_MSG_HELLO_REP, 0, w.p, w.len);
    proto_wbuf_free(&w);
    if (rc < 0) {
        peer_fail(p, rc, "handshake");
        return;
    }
    if (p->auth_method)
        p->state = ST_AUTH_WAIT; /* the handshake timer still runs */
    else
        become_ready(p);
}

/* §3.2: the initiator's answer to our challenge. */
static void on_auth_req(struct peer *p, const struct proto_hdr *h,
                        const uint8_t *payload)
{
    uint8_t key[AUTH_KEY_SIZE];
    struct proto_auth_rep rep;
    struct proto_auth_req m;
    struct proto_wbuf w;
    int rc;

    if (p->dialled || p->state != ST_AUTH_WAIT) {
        reply_send(p, h->req_id, PROTO_MSG_AUTH_REP, PROTO_EHANDSHAKE, NULL, 0);
        return;
    }
    if (proto_auth_req_decode(payload, h->length, &m) < 0) {
        peer_fail(p, -EPROTO, "handshake: bad AUTH_REQ");
        return;
    }
    snprintf(p->identity, sizeof(p->identity), "%.*s", (int)m.name.len,
             m.name.p);
    rc = m.method == p->auth_method ? 0 : -EKEYREJECTED;
    if (!rc)
        rc = p->ops->on_auth ? p->ops->on_auth(p, &m, key) : -EKEYREJECTED;
    if (!rc)
        rc = auth_verify(key, p->role, p->nonce, &m, rep.proof);
    if (!rc && p->secure)
        rc = auth_link_key(key, p->role, p->nonce, &m, p->link_key);
    memset(key, 0, sizeof(key));
    if (rc < 0) {
        log_warn("peer: authentication refused: %s identity=%s role=%u "
                 "name=%s peer=%s",
                 rc == -EKEYREJECTED ? "wrong key, unknown identity or "
                                       "invalid ticket"
                                     : strerror(-rc),
                 p->identity, p->role, p->remote_name, p->name);
        p->identity[0] = '\0';
        refuse(p, h->req_id, PROTO_EAUTH, -EKEYREJECTED);
        return;
    }
    if (p->limits) {
        rc = conn_limit_take(p->limits, CONN_LIMIT_IDENTITY, p->identity);
        if (rc < 0) {
            log_warn("peer: session refused: %s: identity=%s limit=%u "
                     "peer=%s",
                     rc == -EUSERS ? "too many sessions of this identity"
                                   : strerror(-rc),
                     p->identity,
                     conn_limit_max(p->limits, CONN_LIMIT_IDENTITY), p->name);
            refuse(p, h->req_id, proto_err_to_wire(rc), rc);
            p->identity[0] = '\0';
            return;
        }
        p->identity_counted = true;
    }
    proto_wbuf_init(&w);
    proto_auth_rep_encode(&w, &rep);
    rc = w.err ? w.err
               : reply_send(p, h->req_id, PROTO_MSG_AUTH_REP, 0, w.p, w.len);
    proto_wbuf_free(&w);
    if (rc < 0) {
        peer_fail(p, rc, "handshake");
        return;
    }
    if (p->secure) {
        /* AUTH_REP goes out in the clear, before the TLS records. */
        if (p->ck_n)
            cork_flush_peer(p);
        rc = tls_start(p, SECLINK_SERVER, p->identity);
        if (rc < 0)
            peer_fail(p, rc, "secure link");
        return;
    }
    become_ready(p);
}

/* ---- Reading ----------------------------------------------------------- */

static void on_reply_frame(struct peer *p, const struct proto_hdr *h,
                           const uint8_t *payload)
{
    struct pending *pd = table_remove(p, h->req_id);
    int status;

    if (!pd && (h->req_id == 0 || h->req_id > p->next_id)) {
        /* docs/protocol.md §2.2: an id this side never sent is malformed. */
        peer_fail(p, -EPROTO, "reply to a request never sent");
        return;
    }
    if (!pd) {
        /* §2.2: a late answer to a request this side gave up on (its
         * timeout ran out), which the responder could not know. */
        log_debug("peer", "late reply dropped: op=%u id=%llu peer=%s",
                  h->opcode, (unsigned long long)h->req_id, p->name);
        return;
    }
    status = proto_err_from_wire(h->status);
    if (status == 0 && h->opcode != (uint16_t)(pd->opcode + 1))
        status = -EPROTO;
    if (status < 0)
        pending_complete(pd, status, NULL, 0);
    else
        pending_complete(pd, 0, payload, h->length);
}

static void dispatch(struct peer *p, const struct proto_hdr *h,
                     const uint8_t *payload)
{
    if (h->flags & PROTO_FLAG_REPLY) {
        on_reply_frame(p, h, payload);
        return;
    }
    opcount_request(&opcount_served, h->opcode, h->length);
    if (h->opcode == PROTO_MSG_HELLO_REQ) {
        on_hello_req(p, h, payload);
        return;
    }
    if (h->opcode == PROTO_MSG_AUTH_REQ) {
        on_auth_req(p, h, payload);
        return;
    }
    if (p->state != ST_READY) {
        /* §3: nothing but HELLO before the handshake. */
        reply_send(p, h->req_id, (uint16_t)(h->opcode + 1), PROTO_EHANDSHAKE,
                   NULL, 0);
        return;
    }
    if (!p->ops->on_request) {
        reply_send(p, h->req_id, (uint16_t)(h->opcode + 1), PROTO_ENOSYS, NULL,
                   0);
        return;
    }
    if (++p->serving >= p->serve_limit && !p->serve_paused) {
        log_warn("peer: %u requests open, reading paused until answers "
                 "go out: peer=%s",
                 p->serving, p->name);
        p->serve_paused = true;
        uv_read_stop((uv_stream_t *)&p->tcp);
    }
    p->ops->on_request(p, h->opcode, h->req_id, payload, h->length);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct peer *p = container_of((uv_tcp_t *)h, struct peer, tcp);
    size_t avail = 0;

    if (p->tls) { /* ciphertext: tls_read() turns it into frames */
        *buf = uv_buf_init((char *)p->tls_in, PEER_READ_CHUNK);
        return;
    }
    uint8_t *at = proto_reader_space(&p->rd, PEER_READ_CHUNK, &avail);

    (void)suggested;
    if (avail > UINT32_MAX)
        avail = UINT32_MAX;
    /* A NULL base makes libuv report UV_ENOBUFS to on_read. */
    *buf = uv_buf_init((char *)at, at ? (unsigned)avail : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer *p = container_of((uv_tcp_t *)s, struct peer, tcp);
    struct proto_hdr h;
    const uint8_t *payload;
    int rc;

    (void)buf;
    if (nread == UV_EOF) {
        log_debug("peer", "connection closed by peer: peer=%s", p->name);
        close_now(p, -ECONNRESET);
        return;
    }
    if (nread < 0) {
        peer_fail(p, (int)nread, "read");
        return;
    }
    if (nread == 0)
        return;
    p->last_read_ms = uv_now(p->loop);
    /* The peer stays valid through the hooks (invariant 1); stop at once
     * if one of them closed it. */
    cork_begin();
    if (!p->tls) {
        proto_reader_commit(&p->rd, (size_t)nread);
    } else if ((rc = tls_read(p, (size_t)nread)) < 0) {
        if (rc == -ECONNRESET)
            close_now(p, rc); /* close_notify: the other side closed */
        else
            peer_fail(p, rc, "secure link");
    }
    /* Frames stop at the switch to TLS (tls_start()). */
    while (p->state < ST_DRAINING && p->state != ST_TLS) {
        rc = proto_reader_next(&p->rd, &h, &payload);
        if (rc == 0)
            break;
        if (rc < 0) {
            peer_fail(p, -EPROTO, "bad frame");
            break;
        }
        dispatch(p, &h, payload);
    }
    cork_end();
}

/* ---- Peers ------------------------------------------------------------- */

static struct peer *peer_alloc(uv_loop_t *loop, const struct peer_ops *ops)
{
    struct peer *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->loop = loop;
    p->ops = ops ? ops : &no_ops;
    p->write_limit = PEER_WRITE_LIMIT;
    p->serve_limit = PEER_SERVE_LIMIT;
    p->close_status = 0;
    proto_reader_init(&p->rd);
    uv_tcp_init(loop, &p->tcp); /* cannot fail for AF_UNSPEC */
    p->refs = 1;                /* the connection's (invariant 1) */
    return p;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct peer *p = container_of(req, struct peer, connect);
    int rc;

    if (status == UV_ECANCELED || p->state != ST_CONNECTING)
        return;
    if (status < 0) {
        peer_fail(p, status, "connect");
        return;
    }
    uv_tcp_nodelay(&p->tcp, 1);
    p->state = ST_HELLO_SENT;
    rc = read_start(p);
    if (!rc)
        rc = send_hello(p);
    if (rc < 0)
        peer_fail(p, rc, "handshake");
}

int peer_connect(uv_loop_t *loop, const char *addr, uint8_t role,
                 const char *name, const struct peer_ops *ops, void *data,
                 struct peer **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct peer *p;
    int rc;

    rc = net_addr_parse(addr, &ss, &sl);
    if (rc < 0)
        return rc;
    p = peer_alloc(loop, ops);
    if (!p)
        return -ENOMEM;
    p->dialled = true;
    p->rights = PEER_RIGHTS_ALL; /* we chose to talk to it */
    p->role = role;
    p->data = data;
    p->state = ST_CONNECTING;
    p->local_name = strdup(name ? name : "");
    net_addr_format((struct sockaddr *)&ss, p->name, sizeof(p->name));
    rc = p->local_name ? 0 : -ENOMEM;
    if (!rc)
        rc = uv_tcp_connect(&p->connect, &p->tcp, (struct sockaddr *)&ss,
                            on_connect);
    if (rc < 0) {
        p->silent = true;
        close_now(p, rc);
        return rc;
    }
    p->refs++; /* the caller's */
    *out = p;
    return 0;
}

void peer_ref(struct peer *p)
{
    p->refs++;
}

void peer_unref(struct peer *p)
{
    if (!p)
        return;
    assert(p->refs > 0);
    if (--p->refs > 0)
        return;
    assert(p->state == ST_CLOSED); /* invariant 1 */
    proto_reader_free(&p->rd);
    free(p->tab);
    free(p->local_name);
    if (p->cred)
        memset(p->cred, 0, sizeof(*p->cred));
    free(p->cred);
    seclink_free(p->tls);
    free(p->tls_in);
    memset(p->link_key, 0, sizeof(p->link_key));
    free(p);
}

void *peer_data(struct peer *p)
{
    return p->data;
}

void peer_set_data(struct peer *p, void *data)
{
    p->data = data;
}

void *peer_get_listener_data(struct peer *p)
{
    return p->listener_data;
}

const char *peer_name(struct peer *p)
{
    return p->name;
}

uint8_t peer_role(struct peer *p)
{
    return p->state >= ST_READY || p->dialled ? p->role : 0;
}

int peer_set_cred(struct peer *p, const struct auth_cred *cred)
{
    if (p->state != ST_CONNECTING)
        return -EINVAL;
    if (!p->cred && !(p->cred = malloc(sizeof(*p->cred))))
        return -ENOMEM;
    *p->cred = *cred;
    return 0;
}

void peer_set_rights(struct peer *p, uint32_t rights)
{
    p->rights = rights;
}

uint32_t peer_rights(const struct peer *p)
{
    return p->rights;
}

const char *peer_identity(struct peer *p)
{
    return p->state >= ST_READY && !p->dialled ? p->identity : "";
}

uint16_t peer_version(struct peer *p)
{
    return p->version;
}

const char *peer_remote_name(struct peer *p)
{
    return p->remote_name;
}

uint64_t peer_remote_instance(struct peer *p)
{
    return p->remote_instance;
}

void peer_set_write_limit(struct peer *p, size_t bytes)
{
    p->write_limit = bytes;
}

void peer_set_serve_limit(struct peer *p, uint32_t requests)
{
    p->serve_limit = requests ? requests : 1;
}

bool peer_read_paused(const struct peer *p)
{
    return p->paused || p->serve_paused;
}

/* ---- Listener ---------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    struct peer_listener *l =
        container_of((uv_tcp_t *)h, struct peer_listener, tcp);
    free(l->name);
    free(l);
}

static void on_hello_timeout(uv_timer_t *t)
{
    struct peer *p = container_of(t, struct peer, hello_timer);
    peer_fail(p, -ETIMEDOUT, "handshake timed out");
}

/* Count @p against its address's limit; over it, @p is kept only to
 * answer its HELLO with ELIMIT (a clear error rather than a silent
 * close), which the handshake timer bounds. */
static void limits_take_addr(struct peer *p, struct conn_limit *t)
{
    int rc;

    p->limits = t;
    conn_limit_addr_key(p->name, p->addr_key, sizeof(p->addr_key));
    rc = conn_limit_take(t, CONN_LIMIT_ADDR, p->addr_key);
    if (rc == 0) {
        p->addr_counted = true;
        return;
    }
    p->over_limit = true;
    log_warn("peer: connection refused: %s: limit=%u peer=%s",
             rc == -EUSERS ? "too many connections from this address"
                           : strerror(-rc),
             conn_limit_max(t, CONN_LIMIT_ADDR), p->name);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct peer_listener *l =
        container_of((uv_tcp_t *)server, struct peer_listener, tcp);
    struct sockaddr_storage ss;
    int sl = sizeof(ss), rc;
    struct peer *p;

    if (status < 0) {
        log_warn("peer: accept: %s", uv_strerror(status));
        return;
    }
    p = peer_alloc(server->loop, l->ops);
    if (!p) {
        log_warn("peer: accept: %s", uv_strerror(-ENOMEM));
        return;
    }
    p->listener_data = l->data;
    p->auth_methods = l->auth_methods;
    p->secure_required = l->secure_required;
    p->local_instance = l->instance;
    p->local_name = strdup(l->name);
    p->state = ST_HELLO_WAIT;
    rc = p->local_name ? 0 : -ENOMEM;
    if (!rc)
        rc = uv_accept(server, (uv_stream_t *)&p->tcp);
    if (rc < 0) {
        log_warn("peer: accept: %s", uv_strerror(rc));
        p->silent = true;
        close_now(p, rc);
        return;
    }
    if (uv_tcp_getpeername(&p->tcp, (struct sockaddr *)&ss, &sl) == 0)
        net_addr_format((struct sockaddr *)&ss, p->name, sizeof(p->name));
    else
        strcpy(p->name, "?");
    if (l->limits)
        limits_take_addr(p, l->limits);
    uv_tcp_nodelay(&p->tcp, 1);
    if (l->hello_timeout_ms) {
        uv_timer_init(server->loop, &p->hello_timer);
        p->hello_timer_on = true;
        p->refs++; /* the timer's, dropped in its close callback */
        uv_timer_start(&p->hello_timer, on_hello_timeout, l->hello_timeout_ms,
                       0);
    }
    rc = read_start(p);
    if (rc < 0)
        peer_fail(p, rc, "read");
}

int peer_listen(uv_loop_t *loop, const char *addr, const struct peer_ops *ops,
                void *data, struct peer_listener **out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    struct peer_listener *l;
    int rc;

    rc = net_addr_parse(addr, &ss, &sl);
    if (rc < 0)
        return rc;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->ops = ops ? ops : &no_ops;
    l->data = data;
    l->instance = peer_instance_id();
    l->hello_timeout_ms = PEER_HELLO_TIMEOUT_MS;
    l->name = strdup("tessera");
    uv_tcp_init(loop, &l->tcp);
    rc = l->name ? 0 : -ENOMEM;
    if (!rc)
        rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&l->tcp, PEER_BACKLOG, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    *out = l;
    return 0;
}

int peer_listener_set_identity(struct peer_listener *l, const char *name,
                               uint64_t instance_id)
{
    if (name) {
        char *n = strdup(name);
        if (!n)
            return -ENOMEM;
        free(l->name);
        l->name = n;
    }
    if (instance_id)
        l->instance = instance_id;
    return 0;
}

void peer_listener_set_hello_timeout(struct peer_listener *l, unsigned ms)
{
    l->hello_timeout_ms = ms;
}

void peer_listener_set_auth(struct peer_listener *l, uint32_t methods)
{
    l->auth_methods = methods;
}

void peer_listener_set_limits(struct peer_listener *l, struct conn_limit *t)
{
    l->limits = t;
}

void peer_listener_set_secure(struct peer_listener *l, bool required)
{
    l->secure_required = required;
}

void peer_listener_close(struct peer_listener *l)
{
    if (l)
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

int peer_listener_port(struct peer_listener *l)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);

    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &sl) < 0)
        return -EINVAL;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
