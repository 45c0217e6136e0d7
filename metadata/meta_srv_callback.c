/* meta_srv_callback.c: callback promises and their breaks (docs/caching.md,
 * docs/protocol.md §14).
 *
 * A client session that sent CALLBACK_REGISTER (flag ON) caches under
 * callbacks: every LOOKUP, GETATTR, OPEN, READDIR, CHUNK_LOCATE it sends,
 * and every attribute reply it gets, grants it a promise on the inode
 * concerned, valid srv->promise_ms (--promise-ms) and renewed by further
 * access.  While the session holds the file open (meta_hold.c) the
 * promise does not expire (promise_live): the client may serve an open
 * file from the kernel's pages for as long as it likes without asking
 * metad again, so only a break can tell it the file changed.
 * An OPEN for writing, a create, a WRITE_BEGIN or a WRITE_END makes the
 * promise a writer's: that session may hold delayed writes to the file.
 * A DIR_DELEGATE makes a session's promise on a directory a writer's too,
 * a *delegation*: that session may answer creates and unlinks in the
 * directory itself and send them to metad afterwards, in order.
 *
 * Breaks.  Before metad acknowledges a change by one session, every other
 * session holding a promise on an inode the change touches gets a
 * CALLBACK_BREAK_REQ and loses the promise (unless only the attributes
 * changed, invariant 3); the change's reply waits for their answers:
 *
 *   writer A              metad                    caching B
 *     |--- UNLINK d/f ------>|                          |
 *     |                      |-- apply (commit)         |
 *     |                      |-- CALLBACK_BREAK d "f" ->|  drops its caches
 *     |                      |<-------- answer ---------|
 *     |<----- UNLINK_REP ----|                          |
 *
 * Namespace mutations and CHUNK_WRITE_END are applied first and broken
 * after (meta_srv_cb_reply); so are the chunks' new figures on disk
 * (CHUNK_USAGE, meta_srv_cb_break_attr()), whose breaks nobody waits for, so a
 * client that refetches after the break sees the new state.  CHUNK_WRITE_BEGIN
 * (the data is about to change, and with copy-on-write the file's chunk moves),
 * SNAPSHOT and CLONE are broken before they run (meta_srv_cb_before): the
 * request waits, then is dispatched again.
 *
 * Recall.  A GETATTR, OPEN or LOOKUP of a file on which another session
 * holds a writer's promise first sends that session a break with RECALL;
 * it writes its delayed data back (CHUNK_WRITE_BEGIN ... CHUNK_WRITE_END)
 * and answers, then the request is dispatched again and sees the data.
 * SNAPSHOT and CLONE recall the same way before their breaks.  The holder
 * of an image's writer lease (meta_srv_lease.c) counts as a writer of the
 * image whenever it takes callbacks: an NBD writer with a write-back
 * cache may hold delayed writes without having opened the file lately.
 *
 * Delegated directories (docs/protocol.md §14.3).  Any request of another
 * session that reads or changes a delegated directory's entries or
 * attributes (LOOKUP and READDIR in it; GETATTR, OPEN, ACCESS, SETATTR
 * and the extended attribute requests of it; MKNOD, MKDIR, SYMLINK, LINK
 * into it; UNLINK, RMDIR in it; RENAME from or into it; RMDIR or RENAME
 * of it) first recalls the holder: it sends the changes it answered alone,
 * has their replies, and answers; the request is dispatched again and
 * sees them.  The answer ends the delegation (delegation_end()); until
 * then it stays, so that every other request about the directory waits
 * for the same recall.  A DIR_DELEGATE is granted only while no other
 * session holds a live promise on the directory (meta_srv_cb_delegate(),
 * EBUSY otherwise): nobody else then caches anything of it (its kernel
 * entries and negative entries live inside a promise), so none of what
 * the holder answers alone can contradict another client's cache, and
 * nothing needs breaking.  Two clients at work in one directory both go
 * the ordinary way, with breaks of each name, rather than take the
 * delegation from each other.
 *
 *   (none) --DIR_DELEGATE, no other promise on it--> DELEGATED
 *   DELEGATED --the holder's own requests, replies granting it--> DELEGATED
 *   DELEGATED --another session's request about it, recall answered--> (none)
 *             (a reader's promise stays)
 *   DELEGATED --recall unanswered, connection gone, promise expired--> (none)
 *
 *   FROM      -> TO        [function]
 *   (none)    -> DELEGATED [meta_srv_cb_delegate]
 *   DELEGATED -> DELEGATED [grant: a renewal keeps the writer's mark]
 *   DELEGATED -> (none)    [on_answer: delegation_end; drop_session;
 *                           meta_srv_cb_tick]
 *
 * Life of a held request (struct cb_wait):
 *
 *   before/reply --breaks sent--> WAIT --last answer or timeout--> DONE
 *        \--none to send---------------------------------------/
 *
 *   FROM   -> TO     [function]
 *   (new)  -> WAIT   [meta_srv_cb_before, meta_srv_cb_reply: wait_start]
 *   WAIT   -> DONE   [on_answer: left reaches 0]
 *   DONE   -> (freed) [wait_finish: dispatch again, or send the reply]
 *
 * Failure modes: a session that does not answer within its timeout
 * (META_SRV_CB_BREAK_MS, META_SRV_CB_RECALL_MS for a recall, and never
 * past the promise's own expiry) or answers with an error loses every
 * promise it holds, and is sent a break of ALL saying so (send_all()); a
 * session without a connection loses its promises at once.  So no client blocks
 * another for longer than a promise lasts. Promises live in memory only: after
 * a metad restart there are none, and the clients' sessions (and with them
 * their caches) start over.
 *
 * Invariants:
 *   1. A promise exists only for a session registered ON.
 *   2. A session is never sent a break for its own change.
 *   3. A session that caches a file's data holds a promise on it: a break
 *      that drops the data ends the promise, one of attributes alone
 *      (SETATTR without a size, the extended attributes, CHUNK_USAGE)
 *      does not.
 *   4. metad never serves another session from a directory's state while
 *      a session holds its delegation: every such request recalls the
 *      holder first, and an answered recall ends the delegation; the
 *      holder keeps a reader's promise, so the change that follows breaks
 *      what it caches of the directory as for any other client.
 *   5. A delegation is granted only while no other session holds a live
 *      promise on the directory.
 */
#include "meta_srv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NBUCKETS 65536u
#define MAX_BREAKS 6

struct cb_promise {
    uint64_t ino, session;
    uint64_t expiry; /* uv_now() ms */
    bool writer;
    bool delegated; /* DIR_DELEGATE: a writer's promise on a directory */
    struct cb_promise *next;
};

/* A session registered for callbacks and its counters. */
struct cb_sess {
    uint64_t id;
    uint64_t promises;
    uint64_t sent, answered, timedout, recalls;
};

struct meta_srv_cb {
    struct cb_promise *buckets[NBUCKETS];
    uint64_t npromises;
    struct cb_sess *sess;
    size_t nsess, csess;
    /* Inodes the UNLINK, RMDIR or RENAME just seen by
     * meta_srv_cb_before() will drop or replace, until its dispatcher
     * takes them (meta_srv_cb_victims_take). */
    struct meta_srv_cb_victims victims;
    bool resuming; /* a held request is being dispatched again */
    uint64_t sent, answered, timedout, recalls;
};

/* A request held until its breaks are answered. */
struct cb_wait {
    struct meta_srv *srv;
    struct peer *peer; /* referenced */
    unsigned left;
    bool resume; /* dispatch the request again; else send @reply */
    uint16_t opcode;
    uint64_t req_id;
    uint8_t *payload;
    size_t len;
    int rc;
    struct proto_wbuf reply;
};

struct cb_call {
    struct cb_wait *w;
    uint64_t session;
    uint64_t ino;
    bool recall;
};

/* One break to send: @name is borrowed. */
struct cb_break {
    uint64_t ino;
    uint32_t flags;
    struct proto_str name;
};

/* ---- Tables ------------------------------------------------------------- */

static struct cb_promise **bucket(struct meta_srv_cb *cb, uint64_t ino)
{
    return &cb->buckets[(ino * 0x9E3779B97F4A7C15ull) >> 48];
}

static struct cb_sess *sess_find(struct meta_srv_cb *cb, uint64_t id)
{
    if (!id)
        return NULL;
    for (size_t i = 0; i < cb->nsess; i++)
        if (cb->sess[i].id == id)
            return &cb->sess[i];
    return NULL;
}

static void promise_unlink(struct meta_srv_cb *cb, struct cb_promise **pp)
{
    struct cb_promise *p = *pp;
    struct cb_sess *s = sess_find(cb, p->session);

    if (s && s->promises)
        s->promises--;
    cb->npromises--;
    *pp = p->next;
    free(p);
}

/* Drop every promise of @session; returns how many there were. */
static size_t drop_session(struct meta_srv_cb *cb, uint64_t session)
{
    size_t n = 0;

    for (size_t b = 0; b < NBUCKETS; b++) {
        struct cb_promise **pp = &cb->buckets[b];
        while (*pp) {
            if ((*pp)->session == session) {
                promise_unlink(cb, pp);
                n++;
            } else {
                pp = &(*pp)->next;
            }
        }
    }
    return n;
}

/* True when @p is valid at @now.  An expired promise of a session that
 * holds the file open is renewed instead (the file header); a database
 * error counts as not held. */
static bool promise_live(struct meta_srv *srv, struct cb_promise *p,
                         uint64_t now)
{
    if (p->expiry > now)
        return true;
    if (meta_hold_has(srv->db, p->session, p->ino) <= 0)
        return false;
    p->expiry = now + srv->promise_ms;
    return true;
}

/* Does @session hold a promise not lapsed yet (one on a file it holds
 * open never lapses)?  Nothing is renewed. */
static bool has_live(struct meta_srv *srv, uint64_t session)
{
    uint64_t now = uv_now(srv->loop);

    for (size_t b = 0; b < NBUCKETS; b++)
        for (struct cb_promise *p = srv->cb->buckets[b]; p; p = p->next)
            if (p->session == session &&
                (p->expiry > now ||
                 meta_hold_has(srv->db, p->session, p->ino) > 0))
                return true;
    return false;
}

/* @session's promise on @ino, or NULL. */
static struct cb_promise *promise_find(struct meta_srv_cb *cb, uint64_t session,
                                       uint64_t ino)
{
    for (struct cb_promise *p = *bucket(cb, ino); p; p = p->next)
        if (p->ino == ino && p->session == session)
            return p;
    return NULL;
}

/* Grant (or renew) @session's promise on @ino; @writer marks a possible
 * holder of delayed writes.  A renewal never takes the writer's mark (or
 * a delegation) away: only a break ends them.  Invariant 1: only
 * registered sessions.  Returns the promise, or NULL when none was
 * granted. */
static struct cb_promise *grant(struct meta_srv *srv, uint64_t session,
                                uint64_t ino, bool writer)
{
    struct meta_srv_cb *cb = srv->cb;
    struct cb_sess *s = sess_find(cb, session);
    struct cb_promise *p;

    if (!s || !ino)
        return NULL;
    p = promise_find(cb, session, ino);
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return NULL; /* no promise: the client just gets no breaks */
        p->ino = ino;
        p->session = session;
        p->next = *bucket(cb, ino);
        *bucket(cb, ino) = p;
        cb->npromises++;
        s->promises++;
    }
    p->expiry = uv_now(srv->loop) + srv->promise_ms;
    p->writer = p->writer || writer;
    return p;
}

static struct meta_srv_conn *conn_of(struct meta_srv *srv, uint64_t session)
{
    for (struct meta_srv_conn *c = srv->conns; c; c = c->next)
        if (c->session_id == session && !peer_is_closed(c->peer))
            return c;
    return NULL;
}

/* ---- Held requests ------------------------------------------------------ */

static struct cb_wait *wait_new(struct meta_srv_conn *c, uint16_t opcode,
                                uint64_t req_id, const uint8_t *payload,
                                size_t len, bool resume)
{
    struct cb_wait *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->payload = malloc(len ? len : 1);
    if (!w->payload) {
        free(w);
        return NULL;
    }
    memcpy(w->payload, payload, len);
    w->len = len;
    w->srv = c->srv;
    w->peer = c->peer;
    peer_ref(c->peer);
    w->resume = resume;
    w->opcode = opcode;
    w->req_id = req_id;
    proto_wbuf_init(&w->reply);
    return w;
}

static void wait_finish(struct cb_wait *w)
{
    struct meta_srv *srv = w->srv;

    if (!w->peer) {
        /* meta_srv_cb_break_attr(): nobody waits for the answers. */
    } else if (w->resume) {
        if (peer_data(w->peer) && !peer_is_closed(w->peer) && !srv->stopping) {
            srv->cb->resuming = true;
            meta_srv_redispatch(w->peer, w->opcode, w->req_id, w->payload,
                                w->len);
            srv->cb->resuming = false;
        }
    } else {
        meta_srv_reply(w->peer, w->req_id, w->opcode, w->rc, &w->reply);
    }
    if (w->peer)
        peer_unref(w->peer);
    proto_wbuf_free(&w->reply);
    free(w->payload);
    free(w);
}

/* A recall of a delegated directory ends the delegation once answered
 * (invariant 4): the holder has sent what it answered alone, and from now
 * on metad answers for the directory.  Until the answer the delegation
 * stays, so that every other request about the directory recalls it too
 * and waits for the same write-back.  The promise stays a reader's: the
 * holder still caches the directory's names (its kernel's entries), and
 * the change the recall let through must break them. */
static void delegation_end(struct meta_srv_cb *cb, uint64_t session,
                           uint64_t ino)
{
    for (struct cb_promise *p = *bucket(cb, ino); p; p = p->next)
        if (p->ino == ino && p->session == session) {
            if (p->delegated)
                p->delegated = p->writer = false;
            return;
        }
}

/* Tell @session that metad dropped every promise it held (§14.1, ALL), so
 * that it stops trusting what it caches under them now rather than when
 * they would have lapsed: nothing it caches is broken any more.  Nobody
 * waits for the answer; a session that cannot be reached starts over
 * anyway when its connection comes back (a resumed session registers
 * again). */
static void send_all(struct meta_srv *srv, uint64_t session)
{
    struct meta_srv_conn *c = conn_of(srv, session);
    struct proto_callback_break_req req = {.ino = 0, .flags = PROTO_CB_ALL};
    struct proto_wbuf pw;

    if (!c)
        return;
    proto_wbuf_init(&pw);
    proto_callback_break_req_encode(&pw, &req);
    if (!pw.err)
        (void)peer_request(c->peer, PROTO_MSG_CALLBACK_BREAK_REQ, pw.p, pw.len,
                           META_SRV_CB_BREAK_MS, meta_srv_answer_ignored, NULL);
    proto_wbuf_free(&pw);
}

static void on_answer(struct peer *p, int status, const uint8_t *payload,
                      size_t len, void *arg)
{
    struct cb_call *call = arg;
    struct cb_wait *w = call->w;
    struct meta_srv_cb *cb = w->srv->cb;
    struct cb_sess *s = sess_find(cb, call->session);

    (void)p;
    (void)payload;
    (void)len;
    if (status == 0) {
        cb->answered++;
        if (s)
            s->answered++;
        if (call->recall)
            delegation_end(cb, call->session, call->ino);
    } else {
        cb->timedout++;
        if (s)
            s->timedout++;
        log_warn("metad: callback break not answered, dropping the "
                 "session's promises: %s session=%" PRIu64 " recall=%d",
                 strerror(-status), call->session, call->recall);
        /* The break itself is still on its way to the session; what
         * else it still held must be forgotten too.  Promises already
         * lapsed (the tick has not removed them yet) need no telling. */
        bool live = has_live(w->srv, call->session);
        drop_session(cb, call->session);
        if (live)
            send_all(w->srv, call->session);
    }
    free(call);
    if (--w->left == 0)
        wait_finish(w);
}

/* Send one break to @session for @b; counts it in @w.  @expiry bounds the
 * wait. */
static void send_one(struct meta_srv *srv, struct cb_wait *w, uint64_t session,
                     uint64_t expiry, const struct cb_break *b)
{
    struct meta_srv_cb *cb = srv->cb;
    struct meta_srv_conn *c = conn_of(srv, session);
    struct proto_callback_break_req req = {
        .ino = b->ino, .flags = b->flags, .name = b->name};
    bool recall = (b->flags & PROTO_CB_RECALL) != 0;
    uint64_t now = uv_now(srv->loop);
    uint64_t limit = recall ? META_SRV_CB_RECALL_MS : META_SRV_CB_BREAK_MS;
    struct cb_sess *s = sess_find(cb, session);
    struct cb_call *call;
    struct proto_wbuf pw;

    if (!c) {
        drop_session(cb, session); /* unreachable: nothing it caches holds */
        return;
    }
    if (expiry > now && expiry - now < limit)
        limit = expiry - now;
    if (limit == 0)
        limit = 1;
    call = calloc(1, sizeof(*call));
    if (!call) {
        drop_session(cb, session);
        return;
    }
    call->w = w;
    call->session = session;
    call->ino = b->ino;
    call->recall = recall;
    proto_wbuf_init(&pw);
    proto_callback_break_req_encode(&pw, &req);
    if (pw.err || peer_request(c->peer, PROTO_MSG_CALLBACK_BREAK_REQ, pw.p,
                               pw.len, (unsigned)limit, on_answer, call) < 0) {
        free(call);
        drop_session(cb, session);
    } else {
        w->left++;
        cb->sent++;
        if (s)
            s->sent++;
        if (recall) {
            cb->recalls++;
            if (s)
                s->recalls++;
        }
    }
    proto_wbuf_free(&pw);
}

/* A break of attributes alone to every session other than @except with
 * a live promise on @b->ino, whose promises stay: the data they may cache
 * did not change, and a session holding the file open may read it from
 * the kernel's pages long after, learning of a later change of the data
 * only through a break (invariant 3).  False when there was no memory to
 * note the sessions: the caller breaks the promises instead. */
static bool send_attr_notes(struct meta_srv *srv, struct cb_wait *w,
                            uint64_t except, const struct cb_break *b)
{
    uint64_t now = uv_now(srv->loop);
    uint64_t *targets, *expiries;
    size_t n = 0, max = 0;

    for (struct cb_promise *p = *bucket(srv->cb, b->ino); p; p = p->next)
        max += p->ino == b->ino;
    if (max == 0)
        return true;
    targets = calloc(max, sizeof(*targets));
    expiries = calloc(max, sizeof(*expiries));
    if (!targets || !expiries) {
        free(targets);
        free(expiries);
        return false;
    }
    for (struct cb_promise *p = *bucket(srv->cb, b->ino); p; p = p->next)
        if (p->ino == b->ino && p->session != except &&
            promise_live(srv, p, now)) {
            targets[n] = p->session;
            expiries[n++] = p->expiry;
        }
    /* send_one() may drop a session's promises: the list is not walked
     * any more. */
    for (size_t i = 0; i < n; i++)
        send_one(srv, w, targets[i], expiries[i], b);
    free(targets);
    free(expiries);
    return true;
}

/* Break every promise on @b->ino of a session other than @except
 * (invariant 2).  Promises broken are gone, except under a break of
 * attributes alone (send_attr_notes()). */
static void send_breaks(struct meta_srv *srv, struct cb_wait *w,
                        uint64_t except, const struct cb_break *b)
{
    struct meta_srv_cb *cb = srv->cb;
    uint64_t now = uv_now(srv->loop);
    struct cb_promise **pp = bucket(cb, b->ino);

    if (b->flags == PROTO_CB_ATTR && send_attr_notes(srv, w, except, b))
        return;
    while (*pp) {
        struct cb_promise *p = *pp;
        if (p->ino != b->ino || p->session == except) {
            pp = &p->next;
            continue;
        }
        bool live = promise_live(srv, p, now);
        uint64_t session = p->session, expiry = p->expiry;
        promise_unlink(cb, pp);
        if (live)
            send_one(srv, w, session, expiry, b);
        /* send_one may have dropped this session's promises: restart. */
        pp = bucket(cb, b->ino);
    }
}

/* The holder of @ino's image writer lease (an NBD writer, which may hold
 * delayed writes), when it takes callbacks and is not @except; else 0. */
static uint64_t image_writer(struct meta_srv *srv, uint64_t except,
                             uint64_t ino)
{
    uint64_t h = meta_srv_lease_holder(srv, ino);

    return h && h != except && sess_find(srv->cb, h) ? h : 0;
}

/* Recall delayed writes to @ino from every writer other than @except:
 * the sessions holding a writer's promise on it and the image's writer. */
static void send_recalls(struct meta_srv *srv, struct cb_wait *w,
                         uint64_t except, uint64_t ino)
{
    struct meta_srv_cb *cb = srv->cb;
    uint64_t now = uv_now(srv->loop);
    uint64_t targets[16], expiries[16];
    uint64_t img = image_writer(srv, except, ino);
    size_t n = 0;

    for (struct cb_promise *p = *bucket(cb, ino); p && n < 16; p = p->next)
        if (p->ino == ino && p->writer && p->session != except &&
            promise_live(srv, p, now)) {
            targets[n] = p->session;
            expiries[n++] = p->expiry;
            if (p->session == img)
                img = 0;
        }
    if (img && n < 16) {
        targets[n] = img;
        expiries[n++] = now + META_SRV_CB_RECALL_MS;
    }
    struct cb_break b = {.ino = ino, .flags = PROTO_CB_RECALL};
    for (size_t i = 0; i < n; i++)
        send_one(srv, w, targets[i], expiries[i], &b);
}

static bool recall_needed(struct meta_srv *srv, uint64_t except, uint64_t ino)
{
    uint64_t now = uv_now(srv->loop);

    if (image_writer(srv, except, ino))
        return true;

    for (struct cb_promise *p = *bucket(srv->cb, ino); p; p = p->next)
        if (p->ino == ino && p->writer && p->session != except &&
            promise_live(srv, p, now))
            return true;
    return false;
}

/* True when a session other than @except holds a live promise on @ino;
 * with @delegation, a live delegation of directory @ino (a writer's
 * promise DIR_DELEGATE granted). */
static bool held_elsewhere(struct meta_srv *srv, uint64_t except, uint64_t ino,
                           bool delegation)
{
    uint64_t now = uv_now(srv->loop);

    for (struct cb_promise *p = *bucket(srv->cb, ino); p; p = p->next)
        if (p->ino == ino && p->session != except &&
            (p->delegated || !delegation) && promise_live(srv, p, now))
            return true;
    return false;
}

/* A wait for the request (a copy), which is dispatched again once the
 * breaks hold_end() counts are answered; NULL when out of memory (then
 * the request is served without waiting). */
static struct cb_wait *hold_begin(struct meta_srv_conn *c, uint16_t opcode,
                                  uint64_t req_id, const uint8_t *payload,
                                  size_t len)
{
    struct cb_wait *w = wait_new(c, opcode, req_id, payload, len, true);

    if (w)
        w->left = 1; /* ours, until everything is sent */
    return w;
}

/* Everything for @w was sent: true when something was (the request now
 * belongs to the wait), false when nothing was (@w is freed, and the
 * request is served now). */
static bool hold_end(struct cb_wait *w)
{
    if (w->left == 1) {
        w->resume = false; /* nothing sent: drop without dispatching */
        w->rc = 0;
        peer_unref(w->peer);
        proto_wbuf_free(&w->reply);
        free(w->payload);
        free(w);
        return false;
    }
    if (--w->left == 0)
        wait_finish(w);
    return true;
}

/* Hold the request: recalls on @recall_ino (when not 0) or @n breaks.
 * True when something was sent (the request now belongs to the wait). */
static bool hold(struct meta_srv_conn *c, uint16_t opcode, uint64_t req_id,
                 const uint8_t *payload, size_t len, uint64_t recall_ino,
                 const struct cb_break *b, size_t n)
{
    struct cb_wait *w = hold_begin(c, opcode, req_id, payload, len);

    if (!w)
        return false;
    if (recall_ino)
        send_recalls(c->srv, w, c->session_id, recall_ino);
    for (size_t i = 0; i < n; i++)
        send_breaks(c->srv, w, c->session_id, &b[i]);
    return hold_end(w);
}

/* Hold the request while the delegations other sessions hold of the
 * directories @dirs (@n of them, repeats allowed) are recalled: a
 * request that reads or changes a delegated directory's entries or
 * attributes (docs/protocol.md §14.3).  The requester's own delegations
 * are not recalled (invariant 2).  True when held. */
static bool recall_dirs(struct meta_srv_conn *c, uint16_t opcode,
                        uint64_t req_id, const uint8_t *payload, size_t len,
                        const uint64_t *dirs, size_t n)
{
    struct meta_srv *srv = c->srv;
    struct cb_wait *w = NULL;

    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i; j++)
            seen = seen || dirs[j] == dirs[i];
        if (seen || !dirs[i] ||
            !held_elsewhere(srv, c->session_id, dirs[i], true))
            continue;
        if (!w)
            w = hold_begin(c, opcode, req_id, payload, len);
        if (!w)
            return false;
        send_recalls(srv, w, c->session_id, dirs[i]);
    }
    return w && hold_end(w);
}

/* ---- Hooks -------------------------------------------------------------- */

int meta_srv_cb_init(struct meta_srv *srv)
{
    srv->cb = calloc(1, sizeof(*srv->cb));
    return srv->cb ? 0 : -ENOMEM;
}

/* Free every promise of @cb. */
static void promises_free(struct meta_srv_cb *cb)
{
    for (size_t b = 0; b < NBUCKETS; b++) {
        struct cb_promise *p = cb->buckets[b];
        while (p) {
            struct cb_promise *next = p->next;
            free(p);
            p = next;
        }
        cb->buckets[b] = NULL;
    }
    cb->npromises = 0;
}

void meta_srv_cb_free(struct meta_srv *srv)
{
    struct meta_srv_cb *cb = srv->cb;

    if (!cb)
        return;
    promises_free(cb);
    free(cb->sess);
    free(cb);
    srv->cb = NULL;
}

void meta_srv_cb_forget(struct meta_srv *srv)
{
    promises_free(srv->cb);
    srv->cb->nsess = 0; /* every session registers again (invariant 1) */
}

void meta_srv_cb_register(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct meta_srv_cb *cb = c->srv->cb;
    struct proto_callback_register_req req;
    struct proto_callback_register_rep rep = {.lease_ms = c->srv->promise_ms};
    struct proto_wbuf w;
    int rc = proto_callback_register_req_decode(payload, len, &req);

    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CALLBACK_REGISTER_REQ, rc,
                       NULL);
        return;
    }
    /* meta_ops.def: session NEEDED, so a live session is bound. */
    struct cb_sess *s = sess_find(cb, c->session_id);
    if ((req.flags & PROTO_CALLBACK_ON) && !s) {
        rc = meta_srv_grow((void **)&cb->sess, &cb->csess, cb->nsess + 1,
                           sizeof(*cb->sess));
        if (rc == 0) {
            s = &cb->sess[cb->nsess++];
            memset(s, 0, sizeof(*s));
            s->id = c->session_id;
        }
    } else if (!(req.flags & PROTO_CALLBACK_ON) && s) {
        drop_session(cb, s->id);
        *s = cb->sess[--cb->nsess];
    }
    log_info("metad: session callbacks: session=%" PRIu64 " on=%u rc=%d",
             c->session_id, req.flags & PROTO_CALLBACK_ON, rc);
    proto_wbuf_init(&w);
    proto_callback_register_rep_encode(&w, &rep);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_CALLBACK_REGISTER_REQ, rc, &w);
    proto_wbuf_free(&w);
}

/* Look up @name under @parent with @cred (a lookup_req built from the
 * request's fields) and remember the inode as a victim. */
static void victim_lookup(struct meta_srv *srv, const struct proto_cred *cred,
                          uint64_t parent, struct proto_str name)
{
    struct meta_srv_cb *cb = srv->cb;
    struct proto_lookup_req lk = {
        .cred = *cred, .parent = parent, .name = name};
    struct proto_wbuf q, rep;
    struct proto_attr_rep a;

    if (cb->victims.n >= 2)
        return;
    proto_wbuf_init(&q);
    proto_wbuf_init(&rep);
    proto_lookup_req_encode(&q, &lk);
    if (q.err == 0 &&
        meta_query(srv->db, PROTO_MSG_LOOKUP_REQ, q.p, q.len, &rep) == 0 &&
        proto_attr_rep_decode(rep.p, rep.len, &a) == 0)
        cb->victims.ino[cb->victims.n++] = a.attr.ino;
    proto_wbuf_free(&q);
    proto_wbuf_free(&rep);
}

/* The before column of meta_ops.def: callback work before request
 * @opcode is dispatched.  True when the request was held (it is
 * dispatched again once the breaks are answered); @may_hold is false
 * while a held request is dispatched again. */
typedef bool (*before_fn)(struct meta_srv_conn *c, uint16_t opcode,
                          uint64_t req_id, const uint8_t *payload, size_t len,
                          bool may_hold);
/* The after column: the breaks a successful mutation with request
 * @payload owes, filled into @b (at most MAX_BREAKS - 2, leaving room for
 * the victims); returns how many.  Names point into @payload. */
typedef size_t (*after_fn)(const uint8_t *payload, size_t len,
                           struct cb_break *b);

#define DIR_BREAK (PROTO_CB_ENTRY | PROTO_CB_ATTR)

/* GETATTR: a writer elsewhere is recalled first; then a promise. */
static bool cb_getattr_before(struct meta_srv_conn *c, uint16_t opcode,
                              uint64_t req_id, const uint8_t *payload,
                              size_t len, bool may_hold)
{
    struct proto_ino_req m;
    if (proto_ino_req_decode(payload, len, &m) < 0)
        return false;
    if (may_hold && recall_needed(c->srv, c->session_id, m.ino) &&
        hold(c, opcode, req_id, payload, len, m.ino, NULL, 0))
        return true;
    grant(c->srv, c->session_id, m.ino, false);
    return false;
}

/* OPEN: as GETATTR; opened for writing, the promise is a writer's. */
static bool cb_open_before(struct meta_srv_conn *c, uint16_t opcode,
                           uint64_t req_id, const uint8_t *payload, size_t len,
                           bool may_hold)
{
    struct proto_access_req m;
    if (proto_access_req_decode(payload, len, &m) < 0)
        return false;
    if (may_hold && recall_needed(c->srv, c->session_id, m.ino) &&
        hold(c, opcode, req_id, payload, len, m.ino, NULL, 0))
        return true;
    grant(c->srv, c->session_id, m.ino,
          (m.mask & 3) != 0 /* O_WRONLY, O_RDWR */);
    return false;
}

/* The requests below read or change a directory's entries or
 * attributes: another session's delegation of it is recalled first
 * (recall_dirs()), unless @may_hold is false (the request is being
 * dispatched again after its recalls). */
#define RECALL_DIRS(dirs, n)                                                   \
    (may_hold && recall_dirs(c, opcode, req_id, payload, len, (dirs), (n)))

/* LOOKUP: the directory's delegation elsewhere is recalled; a promise on
 * the directory (the entry's own after the reply). */
static bool cb_lookup_before(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len, bool may_hold)
{
    struct proto_lookup_req m;
    if (proto_lookup_req_decode(payload, len, &m) < 0)
        return false;
    if (RECALL_DIRS(&m.parent, 1))
        return true;
    grant(c->srv, c->session_id, m.parent, false);
    return false;
}

/* UNLINK, RMDIR: the directory's delegation elsewhere is recalled, and
 * that of the directory RMDIR removes; the inode that goes is a victim,
 * broken after. */
static bool cb_remove_before(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len, bool may_hold)
{
    struct meta_srv_cb_victims *v = &c->srv->cb->victims;
    struct proto_lookup_req m;
    uint64_t dirs[2];
    if (proto_lookup_req_decode(payload, len, &m) < 0)
        return false;
    victim_lookup(c->srv, &m.cred, m.parent, m.name);
    dirs[0] = m.parent;
    dirs[1] = v->n > 0 ? v->ino[0] : 0;
    return RECALL_DIRS(dirs, 2);
}

/* RENAME: the delegations elsewhere of both directories, of the moved
 * inode and of the one it replaces (when directories) are recalled; the
 * moved inode and the replaced one are victims. */
static bool cb_rename_before(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len, bool may_hold)
{
    struct meta_srv_cb_victims *v = &c->srv->cb->victims;
    struct proto_rename_req m;
    uint64_t dirs[4] = {0};
    if (proto_rename_req_decode(payload, len, &m) < 0)
        return false;
    victim_lookup(c->srv, &m.cred, m.parent, m.name);
    victim_lookup(c->srv, &m.cred, m.newparent, m.newname);
    dirs[0] = m.parent;
    dirs[1] = m.newparent;
    for (size_t i = 0; i < v->n && i < 2; i++)
        dirs[2 + i] = v->ino[i];
    return RECALL_DIRS(dirs, 4);
}

static bool cb_readdir_before(struct meta_srv_conn *c, uint16_t opcode,
                              uint64_t req_id, const uint8_t *payload,
                              size_t len, bool may_hold)
{
    struct proto_readdir_req m;
    if (proto_readdir_req_decode(payload, len, &m) < 0)
        return false;
    if (RECALL_DIRS(&m.ino, 1))
        return true;
    grant(c->srv, c->session_id, m.ino, false);
    return false;
}

/* ACCESS, SETATTR, LISTXATTR, GETXATTR and REMOVEXATTR, SETXATTR of a
 * delegated directory, and MKNOD, MKDIR, SYMLINK, LINK into one: the
 * delegation elsewhere is recalled first.  @fn decodes request @body and
 * recalls the directory in its field @dir. */
#define RECALL_DIR_BEFORE(fn, body, dir)                                       \
    static bool fn(struct meta_srv_conn *c, uint16_t opcode, uint64_t req_id,  \
                   const uint8_t *payload, size_t len, bool may_hold)          \
    {                                                                          \
        struct proto_##body m;                                                 \
        return proto_##body##_decode(payload, len, &m) == 0 &&                 \
               RECALL_DIRS(&m.dir, 1);                                         \
    }
RECALL_DIR_BEFORE(cb_access_before, access_req, ino)
RECALL_DIR_BEFORE(cb_setattr_before, setattr_req, ino)
RECALL_DIR_BEFORE(cb_listxattr_before, ino_req, ino)
RECALL_DIR_BEFORE(cb_xattr_name_before, xattr_name_req, ino)
RECALL_DIR_BEFORE(cb_setxattr_before, setxattr_req, ino)
RECALL_DIR_BEFORE(cb_mknod_before, mknod_req, parent)
RECALL_DIR_BEFORE(cb_mkdir_before, mkdir_req, parent)
RECALL_DIR_BEFORE(cb_symlink_before, symlink_req, parent)
RECALL_DIR_BEFORE(cb_link_before, link_req, newparent)
#undef RECALL_DIR_BEFORE

/* Whether @c's session may hold a delegation of @ino: 0, -EOPNOTSUPP
 * (not registered for callbacks, or a peer older than protocol version
 * 2), -ENOENT, -ENOTDIR. */
static int delegate_check(struct meta_srv_conn *c, uint64_t ino)
{
    struct proto_attr a;
    int rc;

    if (!sess_find(c->srv->cb, c->session_id) ||
        peer_version(c->peer) < PROTO_VERSION_DIR_DELEGATE)
        return -EOPNOTSUPP;
    rc = meta_srv_inode_attr(c->srv, ino, &a);
    if (rc < 0)
        return rc;
    return (a.mode & 0170000) == 0040000 ? 0 : -ENOTDIR;
}

/* DIR_DELEGATE (docs/protocol.md §14.3): granted unless another session
 * holds a live promise on the directory (a delegation included): EBUSY
 * then, and nothing is broken or recalled. */
void meta_srv_cb_delegate(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct proto_dir_delegate_req req;
    struct proto_callback_register_rep rep = {.lease_ms = c->srv->promise_ms};
    struct proto_wbuf w;
    int rc = proto_dir_delegate_req_decode(payload, len, &req);

    if (rc == 0)
        rc = delegate_check(c, req.ino);
    if (rc == 0 && held_elsewhere(c->srv, c->session_id, req.ino, false))
        rc = -EBUSY;
    if (rc == 0) {
        struct cb_promise *p = grant(c->srv, c->session_id, req.ino, true);
        if (p)
            p->delegated = true;
        else
            rc = -ENOMEM;
    }
    log_debug("meta.cb",
              "dir delegate: session=%" PRIu64 " ino=%" PRIu64 " rc=%d",
              c->session_id, req.ino, rc);
    proto_wbuf_init(&w);
    if (rc == 0)
        proto_callback_register_rep_encode(&w, &rep);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_DIR_DELEGATE_REQ, rc, &w);
    proto_wbuf_free(&w);
}

static bool cb_locate_before(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len, bool may_hold)
{
    struct proto_chunk_locate_req m;
    (void)opcode, (void)req_id, (void)may_hold;
    if (proto_chunk_locate_req_decode(payload, len, &m) == 0)
        grant(c->srv, c->session_id, m.ino, false);
    return false;
}

/* CHUNK_WRITE_BEGIN: the data is about to change and, for a shared chunk,
 * to move to a copy: cached pages and locations of the file go first. */
static bool cb_write_begin_before(struct meta_srv_conn *c, uint16_t opcode,
                                  uint64_t req_id, const uint8_t *payload,
                                  size_t len, bool may_hold)
{
    struct proto_chunk_write_begin_req m;
    if (proto_chunk_write_begin_req_decode(payload, len, &m) < 0)
        return false;
    struct cb_break b = {.ino = m.ino, .flags = PROTO_CB_DATA | PROTO_CB_ATTR};
    if (may_hold && hold(c, opcode, req_id, payload, len, 0, &b, 1))
        return true;
    grant(c->srv, c->session_id, m.ino, true);
    return false;
}

/* SNAPSHOT, CLONE: delayed writes are recalled first, so the snapshot
 * holds every write acknowledged before it, on any client; then the new
 * name's directory and the source's caches are broken. */
static bool cb_snapshot_before(struct meta_srv_conn *c, uint16_t opcode,
                               uint64_t req_id, const uint8_t *payload,
                               size_t len, bool may_hold)
{
    struct proto_snapshot_req m;
    if (proto_snapshot_req_decode(payload, len, &m) < 0)
        return false;
    struct cb_break b[2] = {
        {.ino = m.parent, .flags = DIR_BREAK, .name = m.name},
        {.ino = m.ino, .flags = PROTO_CB_DATA | PROTO_CB_ATTR},
    };
    return may_hold && hold(c, opcode, req_id, payload, len, m.ino, b, 2);
}

/* IMAGE_ROLLBACK: the image's content and size change.  Delayed writes
 * are written back first (they then belong to the state rolled away
 * from), cached pages and locations dropped. */
static bool cb_rollback_before(struct meta_srv_conn *c, uint16_t opcode,
                               uint64_t req_id, const uint8_t *payload,
                               size_t len, bool may_hold)
{
    struct proto_image_pair_req m;
    if (proto_image_pair_req_decode(payload, len, &m) < 0)
        return false;
    struct cb_break b = {.ino = m.ino, .flags = PROTO_CB_DATA | PROTO_CB_ATTR};
    return may_hold && hold(c, opcode, req_id, payload, len, m.ino, &b, 1);
}

static size_t cb_setattr_after(const uint8_t *payload, size_t len,
                               struct cb_break *b)
{
    struct proto_setattr_req m;
    if (proto_setattr_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){
        .ino = m.ino,
        .flags = PROTO_CB_ATTR |
                 ((m.valid & PROTO_SETATTR_SIZE) ? PROTO_CB_DATA : 0)};
    return 1;
}

static size_t cb_mknod_after(const uint8_t *payload, size_t len,
                             struct cb_break *b)
{
    struct proto_mknod_req m;
    if (proto_mknod_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.parent, DIR_BREAK, m.name};
    return 1;
}

static size_t cb_mkdir_after(const uint8_t *payload, size_t len,
                             struct cb_break *b)
{
    struct proto_mkdir_req m;
    if (proto_mkdir_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.parent, DIR_BREAK, m.name};
    return 1;
}

static size_t cb_symlink_after(const uint8_t *payload, size_t len,
                               struct cb_break *b)
{
    struct proto_symlink_req m;
    if (proto_symlink_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.parent, DIR_BREAK, m.name};
    return 1;
}

static size_t cb_link_after(const uint8_t *payload, size_t len,
                            struct cb_break *b)
{
    struct proto_link_req m;
    if (proto_link_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.newparent, DIR_BREAK, m.newname};
    b[1] = (struct cb_break){m.ino, PROTO_CB_ATTR, {NULL, 0}};
    return 2;
}

/* UNLINK, RMDIR. */
static size_t cb_remove_after(const uint8_t *payload, size_t len,
                              struct cb_break *b)
{
    struct proto_lookup_req m;
    if (proto_lookup_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.parent, DIR_BREAK, m.name};
    return 1;
}

static size_t cb_rename_after(const uint8_t *payload, size_t len,
                              struct cb_break *b)
{
    struct proto_rename_req m;
    if (proto_rename_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.parent, DIR_BREAK, m.name};
    b[1] = (struct cb_break){m.newparent, DIR_BREAK, m.newname};
    return 2;
}

static size_t cb_setxattr_after(const uint8_t *payload, size_t len,
                                struct cb_break *b)
{
    struct proto_setxattr_req m;
    if (proto_setxattr_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.ino, PROTO_CB_ATTR, {NULL, 0}};
    return 1;
}

static size_t cb_removexattr_after(const uint8_t *payload, size_t len,
                                   struct cb_break *b)
{
    struct proto_xattr_name_req m;
    if (proto_xattr_name_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.ino, PROTO_CB_ATTR, {NULL, 0}};
    return 1;
}

static size_t cb_write_end_after(const uint8_t *payload, size_t len,
                                 struct cb_break *b)
{
    struct proto_chunk_write_end_req m;
    if (proto_chunk_write_end_req_decode(payload, len, &m) < 0)
        return 0;
    b[0] = (struct cb_break){m.ino, PROTO_CB_ATTR | PROTO_CB_DATA, {NULL, 0}};
    return 1;
}

/* The cb column's bits. */
#define CB_ATTR 1u   /* the reply's attributes are cached: grant */
#define CB_WRITER 2u /* ... as a writer's, for a regular file */
#define CB_RECALL 4u /* the looked-up inode's writer is recalled first */
#define CB_ENTRY 8u  /* CB_ATTR of an entry reply, whose directory too */
#define CB_DIRS 16u  /* the reply's directories are cached: grant */

/* The inode (into @a: 0 when none) and the directories (into @dirs) that
 * a successful reply under cb rule @rule describes.  0, or -EPROTO when
 * there is nothing to grant. */
static int reply_inodes(unsigned rule, const struct proto_wbuf *body,
                        struct proto_attr_rep *a, uint64_t *dirs, size_t *ndirs)
{
    *ndirs = 0;
    if (rule & CB_ENTRY) {
        struct proto_entry_rep e;
        if (proto_entry_rep_decode(body->p, body->len, &e) < 0)
            return -EPROTO;
        a->attr = e.attr;
        if (e.has_dir)
            dirs[(*ndirs)++] = e.dir.ino;
        return 0;
    }
    if (rule & CB_ATTR)
        return proto_attr_rep_decode(body->p, body->len, a);
    if (rule & CB_DIRS) {
        struct proto_dirs_rep d;
        memset(a, 0, sizeof(*a));
        if (proto_dirs_rep_decode(body->p, body->len, &d) < 0)
            return -EPROTO;
        for (uint32_t i = 0; i < d.ndirs; i++)
            dirs[(*ndirs)++] = d.dir[i].ino;
        return 0;
    }
    return -EPROTO;
}

/* The before, after and cb columns of meta_ops.def, in its order
 * (meta_optab_index()). */
static const struct {
    before_fn before;
    after_fn after;
    unsigned cb;
} cb_rules[] = {
#define X(opcode, kind, callers, session, serve, apply, query, records,        \
          before, after, cb, commit)                                           \
    {before, after, cb},
#include "meta_ops.def"
#undef X
};

bool meta_srv_cb_before(struct meta_srv_conn *c, uint16_t opcode,
                        uint64_t req_id, const uint8_t *payload, size_t len)
{
    int i = meta_optab_index(opcode);

    c->srv->cb->victims.n = 0;
    if (i < 0 || !cb_rules[i].before)
        return false;
    return cb_rules[i].before(c, opcode, req_id, payload, len,
                              !c->srv->cb->resuming);
}

void meta_srv_cb_victims_take(struct meta_srv *srv,
                              struct meta_srv_cb_victims *out)
{
    *out = srv->cb->victims;
    srv->cb->victims.n = 0;
}

/* The breaks a successful mutation in row @row with request @payload owes,
 * @victims included; returns how many were filled into @b.  Names point
 * into @payload. */
static size_t breaks_of(int row, const uint8_t *payload, size_t len,
                        const struct meta_srv_cb_victims *victims,
                        struct cb_break *b)
{
    size_t n = 0;

    if (cb_rules[row].after)
        n = cb_rules[row].after(payload, len, b);
    for (size_t i = 0; victims && i < victims->n && n < MAX_BREAKS; i++)
        b[n++] = (struct cb_break){victims->ino[i], PROTO_CB_ATTR, {NULL, 0}};
    return n;
}

void meta_srv_cb_reply(struct meta_srv_conn *c, uint16_t opcode,
                       uint64_t req_id, const uint8_t *payload, size_t len,
                       int rc, const struct meta_srv_cb_victims *victims,
                       const struct proto_wbuf *body)
{
    struct meta_srv *srv = c->srv;
    struct meta_srv_cb *cb = srv->cb;
    uint64_t sess = c->session_id;
    struct proto_attr_rep a;
    uint64_t dirs[PROTO_DIRS_MAX];
    size_t ndirs = 0;

    if (rc < 0 || body->err) {
        meta_srv_reply(c->peer, req_id, opcode, rc, body);
        return;
    }
    int row = meta_optab_index(opcode);
    unsigned rule = row >= 0 ? cb_rules[row].cb : 0;
    if (reply_inodes(rule, body, &a, dirs, &ndirs) == 0) {
        /* A LOOKUP of a file another session is writing to: recall
         * first, then look it up again. */
        if ((rule & CB_RECALL) && !cb->resuming &&
            recall_needed(srv, sess, a.attr.ino) &&
            hold(c, opcode, req_id, payload, len, a.attr.ino, NULL, 0))
            return;
        bool writer = (rule & CB_WRITER) && (a.attr.mode & 0170000) == 0100000;
        grant(srv, sess, a.attr.ino, writer);
    }
    /* The directories a mutation's reply describes may be cached by the
     * client (docs/caching.md): it must hear of the next change. */
    for (size_t i = 0; i < ndirs; i++)
        if (peer_version(c->peer) >= PROTO_VERSION_DIR_ATTRS)
            grant(srv, sess, dirs[i], false);

    struct cb_break b[MAX_BREAKS];
    size_t n = row >= 0 && meta_optab[row].kind == META_OPKIND_MUTATION
                   ? breaks_of(row, payload, len, victims, b)
                   : 0;
    if (n == 0) {
        meta_srv_reply(c->peer, req_id, opcode, rc, body);
        return;
    }
    struct cb_wait *w = wait_new(c, opcode, req_id, payload, len, false);
    if (!w) {
        meta_srv_reply(c->peer, req_id, opcode, rc, body);
        return;
    }
    /* The names in @b point into @payload, which the wait copied and
     * keeps until it is done; the encoder copies them again. */
    w->left = 1;
    w->rc = rc;
    proto_put_raw(&w->reply, body->p, body->len);
    for (size_t i = 0; i < n; i++)
        send_breaks(srv, w, sess, &b[i]);
    if (--w->left == 0)
        wait_finish(w);
}

void meta_srv_cb_break_attr(struct meta_srv *srv, uint64_t ino)
{
    struct cb_break b = {.ino = ino, .flags = PROTO_CB_ATTR};
    struct cb_wait *w = calloc(1, sizeof(*w));

    if (!w)
        return; /* the promises lapse on their own */
    w->srv = srv;
    proto_wbuf_init(&w->reply);
    w->left = 1;
    send_breaks(srv, w, 0, &b);
    if (--w->left == 0)
        wait_finish(w);
}

void meta_srv_cb_tick(struct meta_srv *srv)
{
    struct meta_srv_cb *cb = srv->cb;
    uint64_t now = uv_now(srv->loop);

    /* Sessions that ended take their promises with them. */
    for (size_t i = 0; i < cb->nsess;) {
        if (meta_srv_session_find(srv, cb->sess[i].id)) {
            i++;
            continue;
        }
        drop_session(cb, cb->sess[i].id);
        cb->sess[i] = cb->sess[--cb->nsess];
    }
    for (size_t b = 0; b < NBUCKETS; b++) {
        struct cb_promise **pp = &cb->buckets[b];
        while (*pp) {
            if (!promise_live(srv, *pp, now))
                promise_unlink(cb, pp);
            else
                pp = &(*pp)->next;
        }
    }
}

void meta_srv_cb_counts(struct meta_srv *srv, struct meta_srv_cb_counts *out)
{
    const struct meta_srv_cb *cb = srv->cb;

    out->promises = cb->npromises;
    out->sent = cb->sent;
    out->answered = cb->answered;
    out->timedout = cb->timedout;
    out->recalls = cb->recalls;
}

void meta_srv_cb_status(struct meta_srv *srv, struct meta_srv_kv *o)
{
    struct meta_srv_cb *cb = srv->cb;
    char key[64], val[256];

    meta_srv_kv_u64(o, "cache.promises", cb->npromises);
    meta_srv_kv_u64(o, "cache.breaks_sent", cb->sent);
    meta_srv_kv_u64(o, "cache.breaks_answered", cb->answered);
    meta_srv_kv_u64(o, "cache.breaks_timedout", cb->timedout);
    meta_srv_kv_u64(o, "cache.recalls", cb->recalls);
    for (size_t i = 0; i < cb->nsess; i++) {
        const struct cb_sess *s = &cb->sess[i];
        snprintf(key, sizeof(key), "cache.%" PRIu64, s->id);
        snprintf(val, sizeof(val),
                 "promises=%" PRIu64 " sent=%" PRIu64 " answered=%" PRIu64
                 " timedout=%" PRIu64 " recalls=%" PRIu64,
                 s->promises, s->sent, s->answered, s->timedout, s->recalls);
        meta_srv_kv(o, key, val);
    }
}
