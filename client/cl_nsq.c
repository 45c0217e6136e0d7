/* cl_nsq.c: namespace changes the client answered itself, on their way to
 * metad (docs/caching.md, "Delegated directories").
 *
 * Under callbacks a session may hold a directory delegated (DIR_DELEGATE,
 * docs/protocol.md §14): no other session reads or changes it before metad
 * has recalled the delegation.  Inside such a directory the mount answers
 * creates and unlinks itself (fc_ops.c) and hands the requests here; the
 * sender thread sends them in the order given, up to NSQ_WINDOW in flight
 * on the one connection to metad, which applies a connection's records in
 * the order they arrive.  While nothing waits for the queue, a change
 * waits for those behind it until the millisecond clock has moved on by
 * NSQ_GATHER_MS (1-2 ms), so that metad gets them together (one log
 * append and transaction for all).  A new file's inode number comes from a range
 * metad reserved to the session (INO_RESERVE), so nothing in the answer to
 * the application has to come from metad.
 *
 * What waits for the queue: cl_nsq_sync(), from an fsync of a file or a
 * directory, the recall of a delegated directory (before its answer), the
 * client's close, and every request that goes to metad the ordinary way
 * (cl_meta_call()), so that nothing overtakes a change it may depend on.
 * A request on one inode alone (cl_meta_call_on()) waits only for the
 * changes that name that inode (item->ino: created, unlinked, held or
 * released), or it as their directory, or no inode at all, and those
 * before them (cl_nsq_wait_on()).
 *
 * Life of an item:
 *
 *   QUEUED --sent--> SENT --answered--> DONE --(the oldest)--> freed
 *     ^                |
 *     +-- connection lost: sending pauses until every call in flight has
 *         come back, then starts again from the oldest not answered
 *
 * Failure modes:
 *   - The connection drops (metad restarted, a new leader): every item in
 *     flight comes back -ENOTCONN and is sent again, in order, once the
 *     client has reconnected.  The first send may have been applied: a
 *     MKNOD sent again and answered EEXIST or an UNLINK answered ENOENT
 *     is taken as done.  A RELEASE refused loses nothing (metad drops
 *     the hold with the session).
 *   - metad refuses an item (an error other than those): it is logged and
 *     kept as the queue's error, which the next cl_nsq_sync() returns once
 *     (-EIO), as a delayed write's error is reported at fsync.
 *   - metad stays away: after NSQ_GIVEUP_MS without an answer the items
 *     left fail as above.
 *   - A break of a delegated directory ends its delegation at once
 *     (cl_nsq_dir_broken(), on the reader thread), so no change made after
 *     it is answered locally; those queued before go out with the recall's
 *     sync.
 *
 * Thread-safe: one lock guards the queue, the delegations and the inode
 * range; the sender thread is the only one that sends.
 */
#include "cl_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lat.h"
#include "log.h"

#define NSQ_WINDOW 64
#define NSQ_MAX 4096
#define NSQ_GIVEUP_MS 60000
#define NSQ_CLOSE_GIVEUP_MS 10000
#define NSQ_RETRY_MS 20
#define NSQ_REFUSED_MS 5000
#define NSQ_GATHER_MS 1

enum nsq_state { NSQ_QUEUED, NSQ_SENT, NSQ_DONE };

struct nsq_item {
    struct cl_nsq *q;
    uint16_t opcode;
    uint64_t dir; /* the delegated directory it changes */
    uint64_t ino; /* the inode it creates, unlinks, holds or releases (0:
                     not known: every request waits for it) */
    uint64_t seq; /* @q->pushed once it was queued */
    uint8_t *payload;
    size_t len;
    enum nsq_state state;
    bool resent;
    uint64_t
        queued_ms; /* cl_now_ms(), not the test clock: only for gathering */
    uint64_t sent_ms;
    struct nsq_item *next;
};

/* A file created here and open, whose hold metad does not know yet. */
struct nsq_hold {
    uint64_t ino;
    uint32_t uid, gid;
    uint64_t since_ms;
};

struct nsq_deleg {
    uint64_t dir;        /* 0: free */
    uint64_t until_ms;   /* delegated until then */
    uint64_t refused_ms; /* refused at (0: not), not asked again until
                            NSQ_REFUSED_MS later */
};

struct cl_nsq {
    struct cl_nsq_ops ops;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct nsq_item *head, *tail; /* every item not freed, in order */
    size_t n;
    unsigned inflight;
    bool paused;           /* a call came back -ENOTCONN: wait for the others */
    uint64_t pushed, done; /* items ever pushed; freed, in order */
    uint64_t last_answer_ms;
    int err; /* the first error not yet reported */
    bool stop;
    bool running;
    bool sender_idle; /* the sender waits on @cond for work */
    bool gathering;   /* the sender waits for more to send with it */
    unsigned waiters; /* others waiting on @cond (sync, a full queue) */
    pthread_t thread;
    uint32_t lease_ms; /* the delegations' lease */
    struct nsq_deleg deleg[CL_NSQ_DIRS];
    uint64_t ino_session, ino_next, ino_end;
    struct nsq_hold holds[CL_NSQ_HOLDS]; /* held here only, oldest first */
    size_t nholds;
    uint64_t sent_total, resent_total, failed_total;
};

/* ---- The queue ---------------------------------------------------------- */

static uint64_t now_ms(const struct cl_nsq *q)
{
    return q->ops.now_ms ? q->ops.now_ms(q->ops.arg) : cl_now_ms();
}

static struct nsq_deleg *deleg_find(struct cl_nsq *q, uint64_t dir)
{
    for (size_t i = 0; i < CL_NSQ_DIRS; i++)
        if (q->deleg[i].dir == dir)
            return &q->deleg[i];
    return NULL;
}

/* Under @lock: free the answered items at the head, in order. */
static void reap(struct cl_nsq *q)
{
    while (q->head && q->head->state == NSQ_DONE) {
        struct nsq_item *it = q->head;
        q->head = it->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        q->done++;
        free(it->payload);
        free(it);
    }
}

/* A refusal that loses nothing: a RELEASE's (metad drops the hold with
 * the session), or a resent change's refused the way a change already
 * applied would be (the first send was applied). */
static bool harmless(const struct nsq_item *it, int status)
{
    switch (it->opcode) {
    case PROTO_MSG_RELEASE_REQ:
        return true;
    case PROTO_MSG_MKNOD_REQ:
        return it->resent && status == -EEXIST;
    case PROTO_MSG_UNLINK_REQ:
        return it->resent && status == -ENOENT;
    default:
        return false;
    }
}

/* Under @lock: @it is answered with @status. */
static void finish(struct cl_nsq *q, struct nsq_item *it, int status)
{
    it->state = NSQ_DONE;
    if (status < 0 && !harmless(it, status)) {
        q->failed_total++;
        log_error("namespace: metad refused a change answered already: "
                  "%s op=%s dir=%llu",
                  strerror(-status), proto_msg_name(it->opcode),
                  (unsigned long long)it->dir);
        if (!q->err)
            q->err = -EIO;
    } else if (it->dir) {
        /* The change's reply renewed the session's promise on it. */
        struct nsq_deleg *d = deleg_find(q, it->dir);
        uint64_t until = it->sent_ms + q->lease_ms / 2;
        if (d && until > d->until_ms)
            d->until_ms = until;
    }
    reap(q);
}

/* Under @lock: wake whoever waits on @cond; nobody to wake is the common
 * case on the reader thread, and a wake-up is a system call. */
static void wake(struct cl_nsq *q)
{
    if (q->waiters || q->sender_idle)
        pthread_cond_broadcast(&q->cond);
}

static void on_done(void *arg, int status, struct rpc_reply *rep)
{
    struct nsq_item *it = arg;
    struct cl_nsq *q = it->q;

    if (status == 0)
        rpc_reply_free(rep);
    pthread_mutex_lock(&q->lock);
    q->inflight--;
    if (status == -ENOTCONN || status == -ETIMEDOUT) {
        /* Sent again once every call in flight is back. */
        it->state = NSQ_QUEUED;
        it->resent = true;
        q->paused = true;
        q->resent_total++;
    } else {
        q->last_answer_ms = now_ms(q);
        finish(q, it, status);
    }
    if (q->inflight == 0)
        q->paused = false;
    wake(q);
    pthread_mutex_unlock(&q->lock);
}

/* Under @lock: the oldest item waiting to be sent, when one may go. */
static struct nsq_item *next_to_send(struct cl_nsq *q)
{
    if (q->paused || q->inflight >= NSQ_WINDOW)
        return NULL;
    for (struct nsq_item *it = q->head; it; it = it->next)
        if (it->state == NSQ_QUEUED)
            return it;
    return NULL;
}

/* Under @lock: metad was away too long; fail what waits to be sent. */
static void give_up(struct cl_nsq *q)
{
    unsigned lost = 0;
    for (struct nsq_item *it = q->head; it; it = it->next)
        if (it->state == NSQ_QUEUED) {
            it->state = NSQ_DONE;
            lost++;
        }
    q->failed_total += lost;
    if (!q->err)
        q->err = -EIO;
    log_error("namespace: metad away, %u changes answered already are lost",
              lost);
    reap(q);
}

static void timed_wait(struct cl_nsq *q, unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_nsec += (long)ms * 1000000L;
    while (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    blocking_cond_timedwait(&q->cond, &q->lock, &t);
}

static void *sender_main(void *arg)
{
    struct cl_nsq *q = arg;

    pthread_mutex_lock(&q->lock);
    for (;;) {
        struct nsq_item *it = next_to_send(q);
        if (!it) {
            if (q->stop && !q->head)
                break;
            q->sender_idle = true;
            timed_wait(q, 1000);
            q->sender_idle = false;
            continue;
        }
        /* While nobody waits for the queue, a change younger than
         * NSQ_GATHER_MS waits for those behind it, so that they reach
         * metad together: one read there, one log append, one
         * transaction, instead of one of each per change.  A waiter
         * (wait_done()) cuts the wait short. */
        uint64_t age = cl_now_ms() - it->queued_ms; /* the real clock */
        if (!q->stop && q->waiters == 0 && age < NSQ_GATHER_MS) {
            q->gathering = true;
            timed_wait(q, (unsigned)(NSQ_GATHER_MS - age));
            q->gathering = false;
            continue;
        }
        it->state = NSQ_SENT;
        it->sent_ms = now_ms(q);
        q->inflight++;
        q->sent_total++;
        pthread_mutex_unlock(&q->lock);
        int rc = q->ops.send(q->ops.arg, it->opcode, it->payload, it->len,
                             on_done, it);
        pthread_mutex_lock(&q->lock);
        if (rc == 0)
            continue;
        q->inflight--;
        if (q->inflight == 0)
            q->paused = false;
        if (rc != -ENOTCONN) {
            finish(q, it, rc);
            wake(q);
            continue;
        }
        /* Not connected: the oldest goes first once it is back, after
         * every call still out on the old connection came back. */
        it->state = NSQ_QUEUED;
        it->resent = true;
        q->paused = q->inflight > 0;
        uint64_t bound = q->stop ? NSQ_CLOSE_GIVEUP_MS : NSQ_GIVEUP_MS;
        if (now_ms(q) - q->last_answer_ms > bound) {
            give_up(q);
            wake(q);
            continue;
        }
        timed_wait(q, NSQ_RETRY_MS);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- The public face (cl_internal.h) ------------------------------------ */

int cl_nsq_new(const struct cl_nsq_ops *ops, struct cl_nsq **out)
{
    struct cl_nsq *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->ops = *ops;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -pthread_create(&q->thread, NULL, sender_main, q);
    if (rc < 0) {
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->lock);
        free(q);
        return rc;
    }
    q->running = true;
    *out = q;
    return 0;
}

void cl_nsq_free(struct cl_nsq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    if (q->running)
        pthread_join(q->thread, NULL);
    /* The sender left only with nothing queued or in flight. */
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

/* A new item for @opcode with a copy of @len bytes at @p; NULL when out of
 * memory. */
static struct nsq_item *item_new(struct cl_nsq *q, uint64_t dir,
                                 uint64_t ino, uint16_t opcode, const void *p,
                                 size_t len)
{
    struct nsq_item *it = calloc(1, sizeof(*it));
    uint8_t *copy = malloc(len ? len : 1);
    if (!it || !copy) {
        free(it);
        free(copy);
        return NULL;
    }
    memcpy(copy, p, len);
    *it = (struct nsq_item){.q = q,
                            .opcode = opcode,
                            .dir = dir,
                            .ino = ino,
                            .payload = copy,
                            .len = len};
    return it;
}

/* Under @lock: queue @it last. */
static void append(struct cl_nsq *q, struct nsq_item *it)
{
    if (!q->head)
        q->last_answer_ms = now_ms(q);
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    q->pushed++;
    it->seq = q->pushed;
    it->queued_ms = cl_now_ms();
    if (q->sender_idle)
        pthread_cond_broadcast(&q->cond);
}

/* Under @lock: the holds of files created here that metad does not know
 * go out now (OPEN with HOLD), ahead of what is queued after; with
 * @older_ms only those held here since before it.  A file that cannot be
 * encoded or allocated keeps its hold here, and is tried again. */
static void holds_send(struct cl_nsq *q, uint64_t older_ms)
{
    size_t kept = 0;
    for (size_t i = 0; i < q->nholds; i++) {
        struct nsq_hold *h = &q->holds[i];
        struct nsq_item *it = NULL;
        if (h->since_ms < older_ms) {
            struct proto_access_req m = {
                .cred = {.uid = h->uid, .gid = h->gid},
                .ino = h->ino,
                .mask = O_RDONLY | PROTO_OPEN_HOLD,
            };
            struct proto_wbuf w;
            proto_wbuf_init(&w);
            proto_access_req_encode(&w, &m);
            if (!w.err)
                it = item_new(q, 0, h->ino, PROTO_MSG_OPEN_REQ, w.p, w.len);
            proto_wbuf_free(&w);
        }
        if (it)
            append(q, it);
        else
            q->holds[kept++] = *h;
    }
    q->nholds = kept;
}

int cl_nsq_push(struct cl_nsq *q, uint64_t dir, uint64_t ino, uint16_t opcode,
                const struct proto_wbuf *w)
{
    if (!q)
        return -ESTALE;
    if (w->err)
        return w->err;
    struct nsq_item *it = item_new(q, dir, ino, opcode, w->p, w->len);
    if (!it)
        return -ENOMEM;

    pthread_mutex_lock(&q->lock);
    q->waiters++;
    while (!q->stop && q->n >= NSQ_MAX)
        blocking_cond_wait(&q->cond, &q->lock);
    q->waiters--;
    uint64_t now = now_ms(q);
    struct nsq_deleg *d = dir ? deleg_find(q, dir) : NULL;
    if (q->stop || (dir && (!d || d->until_ms <= now))) {
        /* The delegation ended (a break, or its lease): the caller goes
         * the ordinary way. */
        pthread_mutex_unlock(&q->lock);
        free(it->payload);
        free(it);
        return -ESTALE;
    }
    /* Only a create leaves the files held here as they are: anything
     * else may take a name of one away. */
    if (opcode != PROTO_MSG_MKNOD_REQ)
        holds_send(q, UINT64_MAX);
    append(q, it);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void cl_nsq_hold_here(struct cl_nsq *q, uint64_t ino, uint32_t uid,
                      uint32_t gid)
{
    pthread_mutex_lock(&q->lock);
    /* Full: the oldest go to metad now. */
    if (q->nholds == CL_NSQ_HOLDS)
        holds_send(q, UINT64_MAX);
    if (q->nholds < CL_NSQ_HOLDS)
        q->holds[q->nholds++] = (struct nsq_hold){
            .ino = ino, .uid = uid, .gid = gid, .since_ms = now_ms(q)};
    else
        log_error("namespace: no room to hold ino=%llu",
                  (unsigned long long)ino);
    pthread_mutex_unlock(&q->lock);
}

bool cl_nsq_hold_end(struct cl_nsq *q, uint64_t ino)
{
    if (!q)
        return false;
    bool here = false;
    pthread_mutex_lock(&q->lock);
    /* The newest first: a file is most often closed right after its
     * create. */
    for (size_t i = q->nholds; i-- > 0;)
        if (q->holds[i].ino == ino) {
            memmove(&q->holds[i], &q->holds[i + 1],
                    (q->nholds - i - 1) * sizeof(q->holds[0]));
            q->nholds--;
            here = true;
            break;
        }
    pthread_mutex_unlock(&q->lock);
    return here;
}

void cl_nsq_holds_due(struct cl_nsq *q, uint64_t age_ms)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    uint64_t now = now_ms(q);
    if (now > age_ms)
        holds_send(q, now - age_ms);
    pthread_mutex_unlock(&q->lock);
}

/* How long a request that goes to metad the ordinary way, an fsync or
 * a recall waited for the changes queued before it, when there were any. */
static struct lat_stage st_wait = {.name = "cl.nsq.wait"};

void cl_nsq_stats_register(void)
{
    lat_stage_register(&st_wait);
}

/* Under @lock: wait until the items up to @upto (their seq) are done
 * and freed. */
static void wait_upto(struct cl_nsq *q, uint64_t upto)
{
    uint64_t t0 = q->done < upto ? lat_now_ns() : 0;
    q->waiters++;
    if (q->gathering)
        pthread_cond_broadcast(&q->cond); /* send now */
    while (q->done < upto)
        blocking_cond_wait(&q->cond, &q->lock);
    q->waiters--;
    if (t0)
        lat_hist_record_since(&st_wait.h, t0);
}

/* Under @lock: wait for what was queued so far. */
static void wait_done(struct cl_nsq *q)
{
    /* What waits may depend on the files held here being held at metad
     * (a rename over one, a recall by another client). */
    holds_send(q, UINT64_MAX);
    wait_upto(q, q->pushed);
}

int cl_nsq_sync(struct cl_nsq *q)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->lock);
    wait_done(q);
    int err = q->err;
    q->err = 0;
    pthread_mutex_unlock(&q->lock);
    return err;
}

void cl_nsq_wait(struct cl_nsq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    wait_done(q);
    pthread_mutex_unlock(&q->lock);
}

void cl_nsq_wait_on(struct cl_nsq *q, uint64_t ino)
{
    uint64_t upto = 0;

    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    /* A hold only this session knows of goes out, as for any request;
     * the request waits for it when it is @ino's. */
    holds_send(q, UINT64_MAX);
    for (struct nsq_item *it = q->head; it; it = it->next)
        if (it->ino == 0 || it->ino == ino || it->dir == ino)
            upto = it->seq;
    wait_upto(q, upto);
    pthread_mutex_unlock(&q->lock);
}

uint64_t cl_nsq_dir_until(struct cl_nsq *q, uint64_t dir)
{
    pthread_mutex_lock(&q->lock);
    struct nsq_deleg *d = deleg_find(q, dir);
    uint64_t until = d && d->until_ms > now_ms(q) ? d->until_ms : 0;
    pthread_mutex_unlock(&q->lock);
    return until;
}

bool cl_nsq_dir_may_ask(struct cl_nsq *q, uint64_t dir)
{
    pthread_mutex_lock(&q->lock);
    struct nsq_deleg *d = deleg_find(q, dir);
    bool may =
        !d || !d->refused_ms || now_ms(q) - d->refused_ms >= NSQ_REFUSED_MS;
    pthread_mutex_unlock(&q->lock);
    return may;
}

/* Under @lock: @dir's slot; a free one, else the one that lapses first. */
static struct nsq_deleg *deleg_slot(struct cl_nsq *q, uint64_t dir)
{
    uint64_t now = now_ms(q);
    struct nsq_deleg *d = deleg_find(q, dir);
    for (size_t i = 0; !d && i < CL_NSQ_DIRS; i++)
        if (q->deleg[i].dir == 0 ||
            (q->deleg[i].until_ms <= now &&
             now - q->deleg[i].refused_ms >= NSQ_REFUSED_MS))
            d = &q->deleg[i];
    for (size_t i = 0; !d && i < CL_NSQ_DIRS; i++)
        if (!d || q->deleg[i].until_ms < d->until_ms)
            d = &q->deleg[i];
    if (d->dir != dir)
        *d = (struct nsq_deleg){.dir = dir};
    return d;
}

void cl_nsq_dir_granted(struct cl_nsq *q, uint64_t dir, uint64_t asked_ms,
                        uint32_t lease_ms)
{
    pthread_mutex_lock(&q->lock);
    q->lease_ms = lease_ms;
    struct nsq_deleg *d = deleg_slot(q, dir);
    d->until_ms = asked_ms + lease_ms / 2;
    d->refused_ms = 0;
    pthread_mutex_unlock(&q->lock);
}

void cl_nsq_dir_refused(struct cl_nsq *q, uint64_t dir)
{
    pthread_mutex_lock(&q->lock);
    struct nsq_deleg *d = deleg_slot(q, dir);
    d->until_ms = 0;
    d->refused_ms = now_ms(q);
    pthread_mutex_unlock(&q->lock);
}

void cl_nsq_dir_broken(struct cl_nsq *q, uint64_t dir)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    struct nsq_deleg *d = deleg_find(q, dir);
    if (d)
        *d = (struct nsq_deleg){0};
    pthread_mutex_unlock(&q->lock);
}

void cl_nsq_dirs_clear(struct cl_nsq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    memset(q->deleg, 0, sizeof(q->deleg));
    pthread_mutex_unlock(&q->lock);
}

bool cl_nsq_ino_take(struct cl_nsq *q, uint64_t session, uint64_t *ino)
{
    pthread_mutex_lock(&q->lock);
    bool ok = q->ino_session == session && q->ino_next < q->ino_end;
    if (ok)
        *ino = q->ino_next++;
    pthread_mutex_unlock(&q->lock);
    return ok;
}

void cl_nsq_ino_add(struct cl_nsq *q, uint64_t session, uint64_t first,
                    uint32_t count)
{
    pthread_mutex_lock(&q->lock);
    if (q->ino_session != session || q->ino_next >= q->ino_end) {
        q->ino_session = session;
        q->ino_next = first;
        q->ino_end = first + count;
    }
    pthread_mutex_unlock(&q->lock);
}

void cl_nsq_stats(struct cl_nsq *q, struct cl_nsq_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    out->queued = q->n;
    out->pushed = q->pushed;
    out->sent = q->sent_total;
    out->resent = q->resent_total;
    out->failed = q->failed_total;
    pthread_mutex_unlock(&q->lock);
}
