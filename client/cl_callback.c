/* cl_callback.c: the client's side of cache coherence (docs/caching.md,
 * docs/protocol.md §14).
 *
 * Breaks.  CALLBACK_BREAK_REQ arrives on the rpc reader thread, which must
 * not block.  There, at once: the break counter (cl_cb_epoch) moves, the
 * inode's cached page version and, for DATA, its cached chunk locations
 * are dropped.  The break then goes to a worker thread, which
 *
 *   1. for RECALL, writes back the inode's delayed writes and the pending
 *      CHUNK_WRITE_END (cl_file_flush) - metad holds the reader's request
 *      until this answer, so the reader sees the data;
 *   2. calls the owner's hook (the mount drops the kernel's caches; it
 *      bounds how long that may take);
 *   3. answers metad.
 *
 * Recalls and plain breaks have a worker each, so a long write-back never
 * delays the answer to a break behind it.
 *
 * Page versions.  For every inode the client opened, the version (attr
 * version, bumped by metad on every change) its cached pages describe.
 * An open that finds the same version may keep the kernel's pages; a
 * break, or a different version, means they go (close-to-open).  Our own
 * changes (WRITE_END, SETATTR replies) move the recorded version along.
 *
 * Sizes.  A break also marks the open inode's size as possibly stale: a
 * read past it then asks metad (cl_file_read), so a reader that has the
 * file open reads what another client appended even when the kernel does
 * not check the size first (O_DIRECT).
 *
 * A replaced session (reconnect, expiry) has no promises: every recorded
 * version is dropped, every open inode's size marked as above, and the
 * hook is told about each inode.  So is a break of ALL (metad dropped
 * every promise of this session because a break went unanswered), at
 * once on the reader thread; the recall worker then writes back every
 * open inode's delayed writes (metad no longer knows this session as
 * their writer, so no reader would recall them).
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Versions kept for up to VERSIONS_MAX inodes, about three per bucket
 * when full: every open and every reply looks one up. */
#define NBUCKETS 65536
#define VERSIONS_MAX 200000
#define QUEUE_MAX 65536
#define OPEN_MAX_TOLD 16384 /* open inodes a reset tells the kernel about */

struct ver {
    uint64_t ino, version;
    struct ver *next;
};

struct item {
    struct rpc_client *rpc; /* NULL: nothing to answer */
    uint64_t req_id;
    uint64_t ino;
    uint32_t flags;
    char name[PROTO_NAME_MAX + 1];
    struct item *next;
};

struct worker {
    struct cl_cb *b;
    struct item *head, *tail;
    size_t n;
    pthread_t thread;
    bool running;
};

struct cl_cb {
    struct cl_client *c;
    cl_break_cb hook;
    void *hook_arg;
    atomic_uint_fast64_t epoch;
    atomic_uint_fast64_t resets; /* new sessions: every promise lost */
    atomic_uint_fast64_t received;
    pthread_mutex_t lock; /* versions, queues, stop */
    pthread_cond_t cond;
    bool stop;
    struct ver *buckets[NBUCKETS];
    size_t nver;
    struct worker breaks, recalls;
};

/* ---- Page versions ----------------------------------------------------- */

static struct ver **ver_slot(struct cl_cb *b, uint64_t ino)
{
    struct ver **pp = &b->buckets[ino % NBUCKETS];
    while (*pp && (*pp)->ino != ino)
        pp = &(*pp)->next;
    return pp;
}

static void ver_clear_locked(struct cl_cb *b)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct ver *v = b->buckets[i];
        while (v) {
            struct ver *next = v->next;
            free(v);
            v = next;
        }
        b->buckets[i] = NULL;
    }
    b->nver = 0;
}

static void ver_drop(struct cl_cb *b, uint64_t ino)
{
    pthread_mutex_lock(&b->lock);
    struct ver **pp = ver_slot(b, ino);
    if (*pp) {
        struct ver *v = *pp;
        *pp = v->next;
        free(v);
        b->nver--;
    }
    pthread_mutex_unlock(&b->lock);
}

bool cl_cb_open(struct cl_client *c, uint64_t ino, uint64_t version)
{
    struct cl_cb *b = c->cb;
    bool keep = false;

    if (!b)
        return false;
    pthread_mutex_lock(&b->lock);
    struct ver **pp = ver_slot(b, ino);
    if (*pp) {
        keep = (*pp)->version == version;
        (*pp)->version = version;
    } else {
        if (b->nver >= VERSIONS_MAX)
            ver_clear_locked(b); /* forgetting only costs a reread */
        struct ver *v = calloc(1, sizeof(*v));
        if (v) {
            v->ino = ino;
            v->version = version;
            pp = ver_slot(b, ino);
            *pp = v;
            b->nver++;
        }
    }
    pthread_mutex_unlock(&b->lock);
    /* Another version: the chunks may have moved too (a truncate and
     * rewrite allocates new ones). */
    if (!keep)
        cl_loc_invalidate_from(c->loc, ino, 0);
    return keep;
}

void cl_cb_note(struct cl_client *c, uint64_t ino, uint64_t version)
{
    struct cl_cb *b = c->cb;

    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    struct ver *v = *ver_slot(b, ino);
    if (v)
        v->version = version;
    pthread_mutex_unlock(&b->lock);
}

bool cl_cb_enabled(struct cl_client *c)
{
    return c->cb && cl_session_callbacks(c->session);
}

uint32_t cl_cb_promise_ms(struct cl_client *c)
{
    return c->cb ? cl_session_promise_ms(c->session) : 0;
}

uint32_t cl_cb_keep_ms(struct cl_client *c)
{
    uint32_t half = cl_cb_promise_ms(c) / 2;

    return half < CL_CB_KEEP_MAX_MS ? half : CL_CB_KEEP_MAX_MS;
}

uint64_t cl_cb_epoch(struct cl_client *c)
{
    return c->cb ? atomic_load(&c->cb->epoch) : 0;
}

uint64_t cl_cb_resets(struct cl_client *c)
{
    return c->cb ? atomic_load(&c->cb->resets) : 0;
}

/* ---- Workers ----------------------------------------------------------- */

static void answer(struct item *it)
{
    if (it->rpc)
        rpc_reply_send(it->rpc, it->req_id, PROTO_MSG_CALLBACK_BREAK_REP, 0,
                       NULL, 0);
}

static void forget_all(struct cl_client *c, bool lost);

/* After a break of ALL: every open inode's delayed writes and pending
 * WRITE_END go back now, as a recall would have sent them (metad no
 * longer knows this session as their writer).  One pass, a batch at a
 * time; a failure stays in the inode's werr for its next fsync or close. */
static void write_back_all(struct cl_client *c)
{
    struct cl_inode *v[256];
    size_t k;

    for (int pass = 0; pass < 64; pass++) {
        k = cl_handles_collect(c->handles, v, sizeof(v) / sizeof(v[0]), 0);
        for (size_t i = 0; i < k; i++) {
            int rc = cl_file_flush(c, v[i]);
            if (rc < 0) {
                pthread_mutex_lock(&v[i]->lock);
                if (!v[i]->werr)
                    v[i]->werr = rc;
                pthread_mutex_unlock(&v[i]->lock);
            }
            cl_inode_put(c, v[i]);
        }
        if (k < sizeof(v) / sizeof(v[0]))
            return;
    }
}

static void handle(struct cl_cb *b, struct item *it)
{
    struct cl_client *c = b->c;

    if (it->flags & PROTO_CB_ALL) {
        write_back_all(c); /* forgotten and answered on arrival */
        return;
    }
    if (it->flags & PROTO_CB_RECALL) {
        /* A delegated directory's changes answered locally reach metad
         * before the reader it holds back is served. */
        cl_nsq_wait(c->nsq);
        struct cl_inode *n = cl_inode_find(c, it->ino);
        if (n) {
            int rc = cl_file_flush(c, n);
            if (rc < 0) {
                /* The reader will not see what failed; the writer's next
                 * fsync or close reports it. */
                pthread_mutex_lock(&n->lock);
                if (!n->werr)
                    n->werr = rc;
                pthread_mutex_unlock(&n->lock);
            }
            cl_inode_put(c, n);
        }
    }
    uint32_t kernel = it->flags & ~PROTO_CB_RECALL;
    if (kernel && b->hook)
        b->hook(b->hook_arg, it->ino, kernel, it->name);
    answer(it);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct cl_cb *b = w->b;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->stop && !w->head)
            blocking_cond_wait(&b->cond, &b->lock);
        if (b->stop)
            break;
        struct item *it = w->head;
        w->head = it->next;
        if (!w->head)
            w->tail = NULL;
        w->n--;
        pthread_mutex_unlock(&b->lock);
        handle(b, it);
        free(it);
        pthread_mutex_lock(&b->lock);
    }
    /* Answer what is left so metad does not wait for the timeout. */
    while (w->head) {
        struct item *it = w->head;
        w->head = it->next;
        answer(it);
        free(it);
    }
    w->tail = NULL;
    w->n = 0;
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Queue @it (taken) on its worker; false when stopped or full (then the
 * caller still owns it). */
static bool enqueue(struct cl_cb *b, struct item *it)
{
    struct worker *w = (it->flags & PROTO_CB_RECALL) ? &b->recalls : &b->breaks;
    bool ok = false;

    pthread_mutex_lock(&b->lock);
    if (!b->stop && w->running && w->n < QUEUE_MAX) {
        it->next = NULL;
        if (w->tail)
            w->tail->next = it;
        else
            w->head = it;
        w->tail = it;
        w->n++;
        ok = true;
        pthread_cond_broadcast(&b->cond);
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void cl_cb_break(struct cl_client *c, struct rpc_client *rpc, uint64_t req_id,
                 const uint8_t *payload, size_t len)
{
    struct cl_cb *b = c->cb;
    struct proto_callback_break_req m;

    if (proto_callback_break_req_decode(payload, len, &m) < 0 ||
        m.name.len > PROTO_NAME_MAX) {
        log_warn("callback: malformed break from metad: len=%zu", len);
        rpc_reply_send(rpc, req_id, PROTO_MSG_CALLBACK_BREAK_REP, -EINVAL, NULL,
                       0);
        return;
    }
    log_debug("cl.cb", "break: ino=%llu flags=0x%x name=%.*s",
              (unsigned long long)m.ino, m.flags, (int)m.name.len, m.name.p);
    if (!b) {
        rpc_reply_send(rpc, req_id, PROTO_MSG_CALLBACK_BREAK_REP, 0, NULL, 0);
        return;
    }
    atomic_fetch_add(&b->received, 1);
    if (m.flags & PROTO_CB_ALL) {
        /* metad dropped every promise of this session.  Everything cached
         * under them is forgotten here and now, before the answer and
         * ahead of the breaks still queued (only locks, no wait); the
         * kernel is told per inode by the break worker, and the recall
         * worker writes back what metad would no longer recall. */
        log_warn("callback: metad dropped this session's promises (a break "
                 "went unanswered): dropping everything cached under them");
        forget_all(c, true);
        rpc_reply_send(rpc, req_id, PROTO_MSG_CALLBACK_BREAK_REP, 0, NULL, 0);
        struct item *all = calloc(1, sizeof(*all));
        if (all) {
            all->flags = PROTO_CB_ALL | PROTO_CB_RECALL;
            if (enqueue(b, all))
                return;
            free(all);
        }
        log_warn("callback: cannot queue the write-back after a drop; "
                 "delayed writes go at their next flush");
        return;
    }
    /* Any break of a delegated directory ends the delegation before
     * anything else is answered locally in it (cl_nsq.c). */
    cl_nsq_dir_broken(c->nsq, m.ino);
    if (m.flags & (PROTO_CB_ATTR | PROTO_CB_DATA | PROTO_CB_ENTRY))
        atomic_fetch_add(&b->epoch, 1);
    if (m.flags & (PROTO_CB_ATTR | PROTO_CB_DATA)) {
        ver_drop(b, m.ino);
        cl_handles_size_stale(c->handles, m.ino);
    }
    if (m.flags & PROTO_CB_DATA)
        cl_loc_invalidate_from(c->loc, m.ino, 0);

    struct item *it = calloc(1, sizeof(*it));
    if (it) {
        it->rpc = rpc;
        it->req_id = req_id;
        it->ino = m.ino;
        it->flags = m.flags;
        memcpy(it->name, m.name.p, m.name.len);
        it->name[m.name.len] = '\0';
        if (enqueue(b, it))
            return;
        free(it);
    }
    /* No worker to take it: our caches are dropped, answer now. */
    rpc_reply_send(rpc, req_id, PROTO_MSG_CALLBACK_BREAK_REP, 0, NULL, 0);
}

/* Everything cached under promises becomes unverified: a new session
 * (@lost false), or metad dropped every promise of this one (@lost: a
 * break went unanswered, §14.1 ALL).  The holds behind local opens are
 * unsure in both cases (cl_handles_reset()).  Takes locks but never
 * waits: it runs on the rpc reader thread for ALL. */
static void forget_all(struct cl_client *c, bool lost)
{
    struct cl_cb *b = c->cb;
    size_t cap = 0, n = 0;
    uint64_t *inos = NULL;

    if (!b)
        return;
    atomic_fetch_add(&b->resets, 1);
    atomic_fetch_add(&b->epoch, 1);
    cl_attr_forget_all(c);
    cl_handles_reset(c->handles);
    cl_nsq_dirs_clear(c->nsq);
    pthread_mutex_lock(&b->lock);
    /* The inodes with a page version, and every open one: a break of its
     * attributes alone (a new usage figure) drops the version while the
     * kernel still holds its attributes. */
    cap = b->nver + OPEN_MAX_TOLD;
    inos = malloc(cap * sizeof(*inos));
    for (size_t i = 0; inos && i < NBUCKETS; i++)
        for (struct ver *v = b->buckets[i]; v && n < cap; v = v->next)
            inos[n++] = v->ino;
    ver_clear_locked(b);
    pthread_mutex_unlock(&b->lock);
    if (inos)
        n += cl_handles_inos(c->handles, inos + n, cap - n);
    cl_loc_invalidate_all(c->loc);
    log_info("callback: %s: dropping cached state of %zu inodes",
             lost ? "promises dropped by metad" : "new session", n);
    for (size_t i = 0; i < n; i++) {
        cl_handles_size_stale(c->handles, inos[i]);
        struct item *it = calloc(1, sizeof(*it));
        if (!it)
            break;
        it->ino = inos[i];
        it->flags = PROTO_CB_ATTR | PROTO_CB_DATA;
        if (!enqueue(b, it))
            free(it);
    }
    free(inos);
}

void cl_cb_reset(void *arg)
{
    forget_all(arg, false);
}

/* ---- Life -------------------------------------------------------------- */

struct cl_cb *cl_cb_new(struct cl_client *c, const struct cl_opts *o)
{
    struct cl_cb *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->c = c;
    b->hook = o->on_break;
    b->hook_arg = o->break_arg;
    atomic_init(&b->epoch, 0);
    atomic_init(&b->resets, 0);
    atomic_init(&b->received, 0);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->breaks.b = b;
    b->recalls.b = b;
    return b;
}

int cl_cb_start(struct cl_cb *b)
{
    int rc = -pthread_create(&b->breaks.thread, NULL, worker_main, &b->breaks);
    if (rc < 0)
        return rc;
    b->breaks.running = true;
    rc = -pthread_create(&b->recalls.thread, NULL, worker_main, &b->recalls);
    if (rc < 0)
        return rc;
    b->recalls.running = true;
    return 0;
}

/* Stop the workers; breaks arriving later are answered on the reader
 * thread.  The session must still be open (answers go on it). */
void cl_cb_stop(struct cl_cb *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (b->breaks.running)
        pthread_join(b->breaks.thread, NULL);
    if (b->recalls.running)
        pthread_join(b->recalls.thread, NULL);
    b->breaks.running = b->recalls.running = false;
}

void cl_cb_free(struct cl_cb *b)
{
    if (!b)
        return;
    cl_cb_stop(b);
    ver_clear_locked(b);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}
