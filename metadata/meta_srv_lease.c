/* meta_srv_lease.c: image writer leases and live-migration hand-over
 * (docs/vmdisk.md, "Live-migration hand-over"; docs/protocol.md §15).
 *
 * An image has at most one writer: the session holding its lease.  The
 * lease lives here, in memory only, and dies with its session: nothing is
 * recorded in the database, because a lease means nothing once the
 * session that held it is gone.  tessera-nbd takes the lease when it opens
 * an image for writing (IMAGE_LEASE ACQUIRE) and gives it back on close
 * (RELEASE).  While a session holds it, CHUNK_WRITE_BEGIN on the image
 * from any other session is refused with EROFS (meta_srv_lease_write_ok),
 * so no other client can get a chunk to write.
 *
 * Hand-over.  An operator arms the image (ARM, `tessera image handover`);
 * the next other session that asks for it then becomes the standby
 * instead of being refused.  At the standby's first write or flush it
 * sends TAKE; metad recalls the lease from the holder through the holder's
 * IMAGE_LEASE_WAIT long poll (the holder flushes, drops its caches, stops
 * writing, and sends RELEASE), then moves the lease, ends every chunk
 * write lease on the image and bumps those chunks' versions
 * (meta_srv_write_freeze), so a holder that kept writing under an old
 * chunk lease is fenced off by the storage servers, and answers TAKE.
 *
 *                 ACQUIRE (free)               ARM
 *      FREE ----------------------> HELD ---------------> HELD+ARMED
 *       ^  <------------------------ |  <--(arm expires)--    |
 *       |   RELEASE, session gone    |                         | ACQUIRE by
 *       |                            |                         | another
 *       |                            |                         v
 *       |                            |                   HELD+STANDBY
 *       |                            |                         | TAKE
 *       |                            |                         v
 *       |                            |                     RECALLING
 *       |                            |    RELEASE by holder,   |
 *       |                            |    holder's lease time, |
 *       |                            |    holder session gone  v
 *       |                            +<--- (freeze done) -- MOVING
 *       +-- standby gone meanwhile --------------------------- +
 *
 *   FROM          -> TO            [function]
 *   FREE          -> HELD          [op_acquire, op_take]
 *   HELD          -> FREE          [op_release, lease_tick]
 *   HELD          -> HELD+ARMED    [op_arm]
 *   HELD+ARMED    -> HELD          [lease_tick: arm expired, no standby]
 *   HELD+ARMED    -> HELD+STANDBY  [op_acquire]
 *   HELD+STANDBY  -> HELD          [op_release by the standby, lease_tick]
 *   HELD+STANDBY  -> RECALLING     [op_take]
 *   RECALLING     -> MOVING        [op_release, lease_tick -> move_start]
 *   MOVING        -> HELD          [move_done]
 *
 * Invariants:
 *   1. holder != standby unless both are 0.
 *   2. recall_deadline != 0 only while RECALLING: holder and standby set.
 *   3. While MOVING, holder is already the new holder, so WRITE_BEGIN
 *      from the old one is refused from the moment the move starts.
 *
 * Failure modes: a holder that does not answer the recall within its
 * session lease loses the lease anyway (what it had not flushed is lost,
 * as after a crash); a version bump that fails during the move is logged
 * and the move goes on; a taker that disconnects meanwhile still gets the
 * lease, and its retried TAKE is answered GRANTED.
 */
#include "meta_srv.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define ARM_DEFAULT_S 600
#define ARM_MAX_S 86400
#define WAIT_DEFAULT_MS 10000

/* A request answered later: its connection (a reference) and id. */
struct parked {
    struct peer *peer;
    uint64_t req_id;
    uint64_t session;
    uint64_t deadline; /* uv_now() ms; waits only */
    uint8_t *held;     /* waits: the request's entries (owned) */
    uint32_t nheld;
    struct parked *next;
};

struct lease {
    uint64_t ino;
    uint64_t holder;          /* session id, 0 when free */
    uint64_t standby;         /* the armed hand-over target, 0 when none */
    uint64_t armed_until;     /* uv_now() ms, 0 when not armed */
    uint64_t recall_deadline; /* uv_now() ms, 0 when not recalling */
    bool moving;              /* move_start .. move_done */
    struct parked *takers;    /* TAKE requests waiting for the move */
    struct lease *next;
};

struct meta_srv_leases {
    struct lease *leases; /* also free ones: "known since start" */
    struct parked *waits; /* IMAGE_LEASE_WAIT long polls */
};

struct move_job {
    struct meta_srv *srv;
    uint64_t ino;
};

static struct meta_srv_leases *leases_get(struct meta_srv *srv)
{
    if (!srv->leases)
        srv->leases = calloc(1, sizeof(*srv->leases));
    return srv->leases;
}

static struct lease *lease_find(struct meta_srv *srv, uint64_t ino)
{
    if (!srv->leases)
        return NULL;
    for (struct lease *l = srv->leases->leases; l; l = l->next)
        if (l->ino == ino)
            return l;
    return NULL;
}

uint64_t meta_srv_lease_holder(struct meta_srv *srv, uint64_t ino)
{
    struct lease *l = lease_find(srv, ino);

    return l ? l->holder : 0;
}

static struct lease *lease_get(struct meta_srv *srv, uint64_t ino)
{
    struct meta_srv_leases *ls = leases_get(srv);
    struct lease *l = lease_find(srv, ino);

    if (l || !ls)
        return l;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->ino = ino;
    l->next = ls->leases;
    ls->leases = l;
    return l;
}

static void parked_free(struct parked *p)
{
    if (!p)
        return;
    peer_unref(p->peer);
    free(p->held);
    free(p);
}

static struct parked *parked_new(struct meta_srv_conn *c, uint64_t req_id)
{
    struct parked *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->peer = c->peer;
    peer_ref(p->peer);
    p->req_id = req_id;
    p->session = c->session_id;
    return p;
}

/* ---- IMAGE_LEASE replies ------------------------------------------------ */

static void lease_reply(struct meta_srv *srv, struct peer *p, uint64_t req_id,
                        const struct lease *l, uint64_t session)
{
    struct proto_image_lease_rep rep = {.result = PROTO_LEASE_FREE};
    struct proto_wbuf w;
    uint64_t now = uv_now(srv->loop);

    if (l && l->holder) {
        struct meta_srv_session *s = meta_srv_session_find(srv, l->holder);
        rep.holder_session = l->holder;
        if (s) {
            rep.holder_name = (struct proto_str){s->name, strlen(s->name)};
            rep.holder_host = (struct proto_str){s->host, strlen(s->host)};
        }
        if (l->holder == session)
            rep.result = PROTO_LEASE_GRANTED;
        else if (l->standby && l->standby == session)
            rep.result = PROTO_LEASE_STANDBY;
        else
            rep.result = PROTO_LEASE_BUSY;
    }
    if (l && l->armed_until > now)
        rep.flags |= PROTO_LEASE_F_ARMED;
    if (l && (l->recall_deadline || l->moving))
        rep.flags |= PROTO_LEASE_F_RECALLING;
    proto_wbuf_init(&w);
    proto_image_lease_rep_encode(&w, &rep);
    meta_srv_reply(p, req_id, PROTO_MSG_IMAGE_LEASE_REQ, 0, &w);
    proto_wbuf_free(&w);
}

/* ---- IMAGE_LEASE_WAIT --------------------------------------------------- */

/* The news for @session about the entries @held (@n of them, the wire
 * layout): appended to @out, counted in *count. */
static void wait_news(struct meta_srv *srv, uint64_t session,
                      const uint8_t *held, uint32_t n, struct proto_wbuf *out,
                      uint32_t *count)
{
    struct proto_image_lease_wait m = {
        .count = n,
        .raw = {(const char *)held, n * PROTO_LEASE_ENTRY_SIZE},
    };

    *count = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t ino;
        uint32_t state;
        proto_lease_entry_get(&m, i, &ino, &state);
        struct lease *l = lease_find(srv, ino);
        if (!l) {
            /* Not known since metad started: the session held it before
             * a restart; it keeps it. */
            l = lease_get(srv, ino);
            if (l) {
                l->holder = session;
                log_info("metad: image lease restored: ino=%llu session=%llu",
                         (unsigned long long)ino, (unsigned long long)session);
            }
            continue;
        }
        if (l->holder != session) {
            proto_lease_entry_put(out, ino, PROTO_LEASE_LOST);
            (*count)++;
        } else if (l->recall_deadline) {
            proto_lease_entry_put(out, ino, PROTO_LEASE_RECALL);
            (*count)++;
        }
    }
    /* A recall of an image the poll does not name (taken after the poll
     * was sent) must not wait for the next poll. */
    for (struct lease *l = srv->leases->leases; l; l = l->next) {
        if (l->holder != session || !l->recall_deadline)
            continue;
        bool named = false;
        for (uint32_t i = 0; i < n && !named; i++) {
            uint64_t ino;
            uint32_t state;
            proto_lease_entry_get(&m, i, &ino, &state);
            named = ino == l->ino;
        }
        if (!named) {
            proto_lease_entry_put(out, l->ino, PROTO_LEASE_RECALL);
            (*count)++;
        }
    }
}

/* Answer @p with what there is to say (maybe nothing). */
static void wait_answer(struct meta_srv *srv, struct parked *p, bool force)
{
    struct proto_wbuf raw, w;
    uint32_t count;

    proto_wbuf_init(&raw);
    wait_news(srv, p->session, p->held, p->nheld, &raw, &count);
    if (count || force) {
        struct proto_image_lease_wait rep = {
            .count = count,
            .raw = {(const char *)raw.p, (uint32_t)raw.len},
        };
        proto_wbuf_init(&w);
        proto_image_lease_wait_encode(&w, &rep);
        meta_srv_reply(p->peer, p->req_id, PROTO_MSG_IMAGE_LEASE_WAIT_REQ,
                       raw.err, &w);
        proto_wbuf_free(&w);
        p->req_id = 0; /* answered */
    }
    proto_wbuf_free(&raw);
}

/* Give every parked wait of @session a chance to answer now. */
static void waits_wake(struct meta_srv *srv, uint64_t session)
{
    struct parked **pp;

    if (!srv->leases)
        return;
    pp = &srv->leases->waits;
    while (*pp) {
        struct parked *p = *pp;
        if (p->session == session)
            wait_answer(srv, p, false);
        if (p->req_id == 0) {
            *pp = p->next;
            parked_free(p);
        } else {
            pp = &p->next;
        }
    }
}

void meta_srv_lease_wait(struct meta_srv_conn *c, uint64_t req_id,
                         const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_image_lease_wait q;
    int rc = proto_image_lease_wait_decode(payload, len, &q);

    if (rc == 0 && c->session_id == 0)
        rc = -EPERM;
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_IMAGE_LEASE_WAIT_REQ, rc,
                       NULL);
        return;
    }
    struct parked *p = parked_new(c, req_id);
    if (p && q.count) {
        p->held = malloc(q.raw.len);
        if (p->held)
            memcpy(p->held, q.raw.p, q.raw.len);
    }
    if (!p || (q.count && !p->held) || !leases_get(srv)) {
        parked_free(p);
        meta_srv_reply(c->peer, req_id, PROTO_MSG_IMAGE_LEASE_WAIT_REQ, -ENOMEM,
                       NULL);
        return;
    }
    p->nheld = q.count;
    p->deadline =
        uv_now(srv->loop) + (q.timeout_ms ? q.timeout_ms : WAIT_DEFAULT_MS);
    wait_answer(srv, p, false);
    if (p->req_id == 0) {
        parked_free(p);
        return;
    }
    p->next = srv->leases->waits;
    srv->leases->waits = p;
}

/* ---- Moving the lease --------------------------------------------------- */

static void takers_answer(struct meta_srv *srv, struct lease *l)
{
    struct parked *p, *next;

    for (p = l->takers; p; p = next) {
        next = p->next;
        lease_reply(srv, p->peer, p->req_id, l, p->session);
        parked_free(p);
    }
    l->takers = NULL;
}

static void move_done(void *arg, int rc)
{
    struct move_job *j = arg;
    struct meta_srv *srv = j->srv;
    struct lease *l = lease_find(srv, j->ino);

    meta_srv_write_thaw(srv, j);
    if (rc < 0)
        log_warn("metad: image lease hand-over: fencing the old writer "
                 "failed: %s ino=%llu",
                 strerror(-rc), (unsigned long long)j->ino);
    if (l) {
        l->moving = false;
        takers_answer(srv, l);
        log_info("metad: image lease handed over: ino=%llu session=%llu",
                 (unsigned long long)l->ino, (unsigned long long)l->holder);
    }
    free(j);
}

/* RECALLING -> MOVING: the standby becomes the holder now (invariant 3),
 * then the chunk write leases are ended and bumped. */
static void move_start(struct meta_srv *srv, struct lease *l, const char *why)
{
    uint64_t old = l->holder;

    l->holder = l->standby;
    l->standby = 0;
    l->armed_until = 0;
    l->recall_deadline = 0;
    log_info("metad: image lease moving: ino=%llu from=%llu to=%llu "
             "cause=%s",
             (unsigned long long)l->ino, (unsigned long long)old,
             (unsigned long long)l->holder, why);
    waits_wake(srv, old); /* the old holder learns it is LOST */

    struct move_job *j = malloc(sizeof(*j));
    int rc = -ENOMEM;
    if (j) {
        j->srv = srv;
        j->ino = l->ino;
        l->moving = true;
        rc = meta_srv_write_freeze(srv, l->ino, move_done, j);
    }
    if (rc < 0) {
        log_warn("metad: image lease hand-over: cannot fence the old "
                 "writer: %s ino=%llu",
                 strerror(-rc), (unsigned long long)l->ino);
        free(j);
        l->moving = false;
        takers_answer(srv, l);
    }
}

/* ---- IMAGE_LEASE -------------------------------------------------------- */

static bool armed(struct meta_srv *srv, const struct lease *l)
{
    return l->armed_until > uv_now(srv->loop);
}

static void op_acquire(struct meta_srv *srv, struct lease *l, uint64_t s)
{
    if (l->holder == 0) {
        l->holder = s;
        if (l->standby == s)
            l->standby = 0;
    } else if (l->holder != s && armed(srv, l) &&
               (l->standby == 0 || l->standby == s)) {
        l->standby = s;
    }
}

/* Returns true when the reply must wait for the move. */
static bool op_take(struct meta_srv *srv, struct lease *l, uint64_t s)
{
    if (l->holder == 0) {
        l->holder = s;
        l->standby = 0;
        return false;
    }
    if (l->holder == s)
        return l->moving;
    if (l->standby != s && !(armed(srv, l) && l->standby == 0))
        return false; /* BUSY */
    l->standby = s;
    if (!l->recall_deadline) {
        struct meta_srv_session *h = meta_srv_session_find(srv, l->holder);
        if (!h) {
            move_start(srv, l, "holder session gone");
            return l->moving;
        }
        l->recall_deadline = uv_now(srv->loop) + h->lease_ms;
        log_info("metad: image lease recall: ino=%llu holder=%llu (%s on "
                 "%s) standby=%llu",
                 (unsigned long long)l->ino, (unsigned long long)l->holder,
                 h->name, h->host, (unsigned long long)s);
        waits_wake(srv, l->holder);
    }
    return true;
}

static void op_release(struct meta_srv *srv, struct lease *l, uint64_t s)
{
    if (l->standby == s) {
        l->standby = 0;
        return;
    }
    if (l->holder != s)
        return;
    if (l->recall_deadline) {
        move_start(srv, l, "released by the holder");
        return;
    }
    l->holder = 0;
    waits_wake(srv, s); /* its poll may name this image: answer LOST */
}

void meta_srv_lease_request(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_image_lease_req q;
    struct lease *l = NULL;
    uint64_t s = c->session_id;
    int rc = proto_image_lease_req_decode(payload, len, &q);

    if (rc == 0 && s == 0 && q.op != PROTO_LEASE_ARM &&
        q.op != PROTO_LEASE_QUERY)
        rc = -EPERM; /* a lease belongs to a session */
    if (rc == 0 && q.op != PROTO_LEASE_QUERY) {
        l = lease_get(srv, q.ino);
        if (!l)
            rc = -ENOMEM;
    }
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_IMAGE_LEASE_REQ, rc, NULL);
        return;
    }
    switch (q.op) {
    case PROTO_LEASE_ACQUIRE:
        op_acquire(srv, l, s);
        break;
    case PROTO_LEASE_TAKE:
        if (op_take(srv, l, s)) {
            struct parked *p = parked_new(c, req_id);
            if (!p) {
                meta_srv_reply(c->peer, req_id, PROTO_MSG_IMAGE_LEASE_REQ,
                               -ENOMEM, NULL);
                return;
            }
            p->next = l->takers;
            l->takers = p;
            return;
        }
        break;
    case PROTO_LEASE_RELEASE:
        op_release(srv, l, s);
        break;
    case PROTO_LEASE_ARM: {
        uint32_t secs = q.arg ? q.arg : ARM_DEFAULT_S;
        if (secs > ARM_MAX_S)
            secs = ARM_MAX_S;
        l->armed_until = uv_now(srv->loop) + (uint64_t)secs * 1000;
        log_info("metad: image hand-over armed: ino=%llu for=%us peer=%s",
                 (unsigned long long)q.ino, secs, peer_name(c->peer));
        break;
    }
    case PROTO_LEASE_QUERY:
        l = lease_find(srv, q.ino);
        break;
    }
    lease_reply(srv, c->peer, req_id, l, s);
}

bool meta_srv_lease_write_ok(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len)
{
    struct proto_chunk_write_begin_req q;

    if (proto_chunk_write_begin_req_decode(payload, len, &q) < 0)
        return true; /* meta_srv_write_begin() answers it */
    struct lease *l = lease_find(c->srv, q.ino);
    if (!l || l->holder == 0 || l->holder == c->session_id)
        return true;
    log_debug("meta.lease", "write refused: ino=%llu session=%llu holder=%llu",
              (unsigned long long)q.ino, (unsigned long long)c->session_id,
              (unsigned long long)l->holder);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, -EROFS,
                   NULL);
    return false;
}

/* ---- Time --------------------------------------------------------------- */

static void lease_tick_one(struct meta_srv *srv, struct lease *l, uint64_t now)
{
    if (l->holder && !l->moving && !meta_srv_session_find(srv, l->holder)) {
        if (l->recall_deadline) {
            move_start(srv, l, "holder session gone");
            return;
        }
        log_info("metad: image lease dropped: ino=%llu session=%llu gone",
                 (unsigned long long)l->ino, (unsigned long long)l->holder);
        l->holder = 0;
    }
    if (l->standby && !meta_srv_session_find(srv, l->standby)) {
        l->standby = 0;
        l->recall_deadline = 0;
    }
    if (l->recall_deadline && now >= l->recall_deadline) {
        log_warn("metad: image lease recall: holder did not answer within "
                 "its session lease, taking the lease: ino=%llu "
                 "session=%llu",
                 (unsigned long long)l->ino, (unsigned long long)l->holder);
        move_start(srv, l, "recall timed out");
        return;
    }
    if (l->armed_until && now >= l->armed_until)
        l->armed_until = 0;
}

void meta_srv_lease_tick(struct meta_srv *srv)
{
    uint64_t now = uv_now(srv->loop);

    if (!srv->leases)
        return;
    for (struct lease *l = srv->leases->leases; l; l = l->next)
        lease_tick_one(srv, l, now);
    struct parked **pp = &srv->leases->waits;
    while (*pp) {
        struct parked *p = *pp;
        if (now >= p->deadline || peer_is_closed(p->peer)) {
            if (!peer_is_closed(p->peer))
                wait_answer(srv, p, true);
            *pp = p->next;
            parked_free(p);
        } else {
            pp = &p->next;
        }
    }
}

void meta_srv_lease_free(struct meta_srv *srv)
{
    struct meta_srv_leases *ls = srv->leases;

    if (!ls)
        return;
    srv->leases = NULL;
    while (ls->leases) {
        struct lease *l = ls->leases;
        ls->leases = l->next;
        while (l->takers) {
            struct parked *p = l->takers;
            l->takers = p->next;
            parked_free(p);
        }
        free(l);
    }
    while (ls->waits) {
        struct parked *p = ls->waits;
        ls->waits = p->next;
        parked_free(p);
    }
    free(ls);
}
