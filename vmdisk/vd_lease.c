/* vd_lease.c: the image writer lease on tessera-nbd's side, and the two
 * ends of a live-migration hand-over (docs/vmdisk.md, "Live-migration
 * hand-over"; metad's side is metadata/meta_srv_lease.c).
 *
 * Opening an image for writing asks metad for its lease (IMAGE_LEASE
 * ACQUIRE).  Granted: this process is the image's one writer until the
 * last connection closes it (RELEASE).  Refused: the open fails with
 * -EBUSY and a sentence naming the holder, which the NBD client sees at
 * NBD_OPT_GO.  Standby: an operator armed a hand-over, so the open works;
 * reads go through, and the first write, zero, trim or flush takes the
 * lease over (TAKE), which is the switch-over of the migration.  metad
 * answers TAKE once the old holder has flushed and let go; we then drop
 * our cached chunk locations for the image, so we read what it wrote.
 *
 * The other end runs on a thread of its own: while this process holds
 * leases, it keeps an IMAGE_LEASE_WAIT long poll open at metad naming
 * them.  A RECALL answer makes it close the image's gate (waiting for the
 * operations in flight), flush (CHUNK_SYNC + WRITE_END of every dirty
 * chunk, cl_file_sync), drop the cached locations, mark the lease lost and
 * send RELEASE; from then on writes fail with -EROFS (NBD_EPERM) and
 * flushes report how the hand-over flush went.  A LOST answer (metad moved
 * the lease without us, e.g. after our session expired) does the same
 * without the flush.
 *
 *            ACQUIRE granted                 RECALL: flush, RELEASE
 *   (open) ------------------> HELD -------------------------------> LOST
 *      |                        ^   \---- LOST from metad ----------> ^
 *      | ACQUIRE standby        | TAKE granted                        |
 *      +-------------------> STANDBY ---- TAKE refused --------------+
 *
 *   FROM     -> TO       [function]
 *   (open)   -> HELD     [vd_lease_open]
 *   (open)   -> STANDBY  [vd_lease_open]
 *   STANDBY  -> HELD     [take]
 *   STANDBY  -> LOST     [take]
 *   HELD     -> LOST     [recall, lost]
 *
 * Invariants:
 *   1. The state changes only with the gate held for writing, so an
 *      operation that passed vd_lease_begin() finishes under the state it
 *      saw; in particular no write is in flight when the recall flushes.
 *   2. A LOST lease never becomes HELD again: reopening the image makes a
 *      new struct vd_lease.
 *
 * Known gap: cached chunk locations are dropped through
 * cl_file_truncate_done(ino, NULL, 0), the only call of the client library
 * that forgets an inode's locations without touching the open inode.
 */
#include "vd_lease.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define WAIT_MS 10000 /* one long poll at metad */
#define RETRY_MS 1000 /* after a failed poll */
#define TAKE_TRIES 4  /* TAKE calls that time out before giving up */
#define PATH_LEN 512

enum lease_state { L_HELD, L_STANDBY, L_LOST };

/* The gate of a lease: shared by the operations on the image, taken
 * alone for a state change.  A plain reader-writer lock would do but for
 * the fast path, whose operations enter on the thread that reads NBD
 * requests and leave on the one that reads the chunk server's reply; a
 * pthread rwlock must be unlocked by the thread that locked it.  Waiting
 * readers go ahead of a waiting writer, as with the default rwlock;
 * gate_try_shared() does not, so a stream of fast operations cannot keep
 * a recall out. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned shared;    /* operations inside */
    unsigned waiting;   /* writers waiting */
    bool excl;          /* a writer inside */
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->shared = g->waiting = 0;
    g->excl = false;
}

static void gate_destroy(struct gate *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void gate_shared(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->excl)
        pthread_cond_wait(&g->cv, &g->mu);
    g->shared++;
    pthread_mutex_unlock(&g->mu);
}

static bool gate_try_shared(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    bool ok = !g->excl && g->waiting == 0;
    if (ok)
        g->shared++;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static void gate_excl(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->waiting++;
    while (g->excl || g->shared)
        pthread_cond_wait(&g->cv, &g->mu);
    g->waiting--;
    g->excl = true;
    pthread_mutex_unlock(&g->mu);
}

static void gate_leave(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (g->excl)
        g->excl = false;
    else
        g->shared--;
    if (!g->shared)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

struct vd_lease {
    struct vd_lease *next;
    uint64_t ino;
    char path[PATH_LEN];
    struct cl_inode *node;  /* a reference */
    unsigned refs;          /* guarded by ls->lock */
    enum lease_state state; /* guarded by ls->lock; changes under gate */
    uint64_t gen;           /* new (unique in the table) when it becomes HELD */
    int lost_rc;            /* the hand-over flush's result */
    struct gate gate;
    pthread_mutex_t take_lock; /* one TAKE at a time */
};

struct vd_leases {
    struct vd_lease_io io; /* metad and the client library */
    uint64_t gen_last;     /* guarded by lock: the last generation given */
    struct vd_lease_hooks hooks;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct vd_lease *list;
    bool stop, started;
    pthread_t thread;
    struct vd_lease_news news[PROTO_LEASE_WAIT_MAX]; /* the thread's */
};

/* ---- Calls to metad ----------------------------------------------------- */

/* ---- The real metad and client library (struct vd_lease_io) ----------- */

static int client_lease(void *arg, uint32_t op, uint64_t ino,
                        const char *path, uint32_t *result, char *why,
                        size_t why_len)
{
    struct proto_image_lease_req q = {.op = op, .ino = ino};
    struct proto_image_lease_rep out;
    struct rpc_reply rep;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &q);
    int rc = cl_meta_call(arg, PROTO_MSG_IMAGE_LEASE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *result = out.result;
    if (why && why_len)
        snprintf(why, why_len, "image %s is open for writing by %.*s on %.*s",
                 path, (int)out.holder_name.len,
                 out.holder_name.len ? out.holder_name.p : "?",
                 (int)out.holder_host.len,
                 out.holder_host.len ? out.holder_host.p : "?");
    rpc_reply_free(&rep);
    return 0;
}

static int client_wait(void *arg, const uint64_t *inos, size_t n,
                       unsigned timeout_ms, struct vd_lease_news *news,
                       size_t *nnews)
{
    struct proto_wbuf raw, w;
    struct proto_image_lease_wait q = {.timeout_ms = timeout_ms}, out;
    struct rpc_reply rep;

    proto_wbuf_init(&raw);
    for (size_t i = 0; i < n; i++)
        proto_lease_entry_put(&raw, inos[i], PROTO_LEASE_HELD);
    q.count = (uint32_t)n;
    q.raw = (struct proto_str){(const char *)raw.p, (uint32_t)raw.len};
    proto_wbuf_init(&w);
    proto_image_lease_wait_encode(&w, &q);
    proto_wbuf_free(&raw);
    int rc = cl_meta_call(arg, PROTO_MSG_IMAGE_LEASE_WAIT_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *nnews = 0;
    for (uint32_t i = 0; i < out.count && *nnews < PROTO_LEASE_WAIT_MAX; i++) {
        proto_lease_entry_get(&out, i, &news[*nnews].ino,
                              &news[*nnews].state);
        (*nnews)++;
    }
    rpc_reply_free(&rep);
    return 0;
}

static int client_open(void *arg, uint64_t ino, struct cl_inode **node)
{
    return cl_inode_open(arg, ino, 0, node);
}

static void client_put(void *arg, struct cl_inode *node)
{
    cl_inode_put(arg, node);
}

static int client_sync(void *arg, struct cl_inode *node)
{
    return cl_file_sync(arg, node);
}

static void client_forget(void *arg, uint64_t ino)
{
    cl_file_truncate_done(arg, ino, NULL, 0);
}

/* ---- Calls to metad ----------------------------------------------------- */

/* IMAGE_LEASE @op on @ino; fills *result and, when @why is not NULL and
 * another session holds it, a sentence naming that session. */
static int lease_call(struct vd_leases *ls, uint32_t op, uint64_t ino,
                      const char *path, uint32_t *result, char *why,
                      size_t why_len)
{
    return ls->io.lease(ls->io.arg, op, ino, path, result, why, why_len);
}

static void release(struct vd_leases *ls, struct vd_lease *l)
{
    uint32_t result;
    int rc =
        lease_call(ls, PROTO_LEASE_RELEASE, l->ino, l->path, &result, NULL, 0);
    if (rc < 0)
        log_warn("image lease: release failed (metad drops it with the "
                 "session): %s image=%s",
                 strerror(-rc), l->path);
}

/* The cached locations and bytes of the image go: the next access asks
 * metad and the servers. */
static void caches_drop(struct vd_leases *ls, struct vd_lease *l)
{
    ls->io.forget(ls->io.arg, l->ino);
    if (ls->hooks.drop)
        ls->hooks.drop(ls->hooks.arg, l->ino);
}

static void set_state(struct vd_leases *ls, struct vd_lease *l,
                      enum lease_state st)
{
    pthread_mutex_lock(&ls->lock);
    l->state = st;
    if (st == L_HELD)
        l->gen = ++ls->gen_last;
    pthread_cond_broadcast(&ls->cond);
    pthread_mutex_unlock(&ls->lock);
}

static enum lease_state get_state(struct vd_leases *ls, struct vd_lease *l)
{
    pthread_mutex_lock(&ls->lock);
    enum lease_state st = l->state;
    pthread_mutex_unlock(&ls->lock);
    return st;
}

/* ---- Open and close ----------------------------------------------------- */

static void lease_free(struct vd_leases *ls, struct vd_lease *l)
{
    gate_destroy(&l->gate);
    pthread_mutex_destroy(&l->take_lock);
    ls->io.put(ls->io.arg, l->node);
    free(l);
}

/* A live (not LOST) lease of @ino with a reference taken, or NULL. */
static struct vd_lease *find_live(struct vd_leases *ls, uint64_t ino)
{
    for (struct vd_lease *l = ls->list; l; l = l->next) {
        if (l->ino == ino && l->state != L_LOST) {
            l->refs++;
            return l;
        }
    }
    return NULL;
}

int vd_lease_open(struct vd_leases *ls, uint64_t ino, const char *path,
                  char *why, size_t why_len, struct vd_lease **out)
{
    uint32_t result;
    int rc;

    pthread_mutex_lock(&ls->lock);
    *out = find_live(ls, ino);
    pthread_mutex_unlock(&ls->lock);
    if (*out)
        return 0;

    rc = lease_call(ls, PROTO_LEASE_ACQUIRE, ino, path, &result, why, why_len);
    if (rc < 0)
        return rc;
    if (result == PROTO_LEASE_BUSY) {
        log_warn("image open refused: %s", why ? why : path);
        return -EBUSY;
    }
    if (result != PROTO_LEASE_GRANTED && result != PROTO_LEASE_STANDBY)
        return -EIO;

    struct vd_lease *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    snprintf(l->path, sizeof(l->path), "%s", path);
    l->ino = ino;
    l->refs = 1;
    l->state = result == PROTO_LEASE_GRANTED ? L_HELD : L_STANDBY;
    gate_init(&l->gate);
    pthread_mutex_init(&l->take_lock, NULL);
    rc = ls->io.open(ls->io.arg, ino, &l->node);
    if (rc < 0) {
        gate_destroy(&l->gate);
        pthread_mutex_destroy(&l->take_lock);
        free(l);
        return rc;
    }

    pthread_mutex_lock(&ls->lock);
    /* Unique in the table's life: an answer to a poll that named an
     * earlier lease of the same image (closed since) is not about this
     * one. */
    l->gen = ++ls->gen_last;
    struct vd_lease *other = find_live(ls, ino);
    if (!other) {
        l->next = ls->list;
        ls->list = l;
        pthread_cond_broadcast(&ls->cond);
    }
    pthread_mutex_unlock(&ls->lock);
    if (other) {
        /* Another connection got there first; metad granted us twice. */
        lease_free(ls, l);
        *out = other;
        return 0;
    }
    if (l->state == L_STANDBY)
        log_info("image lease: opened as hand-over standby: image=%s", path);
    *out = l;
    return 0;
}

void vd_lease_close(struct vd_leases *ls, struct vd_lease *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&ls->lock);
    bool last = --l->refs == 0;
    if (last) {
        for (struct vd_lease **pp = &ls->list; *pp; pp = &(*pp)->next) {
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        }
        pthread_cond_broadcast(&ls->cond);
    }
    enum lease_state st = l->state;
    pthread_mutex_unlock(&ls->lock);
    if (!last)
        return;
    if (st != L_LOST)
        release(ls, l);
    lease_free(ls, l);
}

/* ---- The switch-over ---------------------------------------------------- */

/* STANDBY -> HELD (or LOST when metad refuses). */
static int take(struct vd_leases *ls, struct vd_lease *l)
{
    char why[512];
    uint32_t result = 0;
    int rc = 0;

    pthread_mutex_lock(&l->take_lock);
    if (get_state(ls, l) != L_STANDBY) {
        pthread_mutex_unlock(&l->take_lock);
        return 0;
    }
    log_info("image lease: hand-over: taking the lease: image=%s", l->path);
    /* metad answers once the holder flushed, or after its session lease:
     * a call may time out first, and TAKE is safe to repeat. */
    for (int i = 0; i < TAKE_TRIES; i++) {
        rc = lease_call(ls, PROTO_LEASE_TAKE, l->ino, l->path, &result, why,
                        sizeof(why));
        if (rc != -ETIMEDOUT)
            break;
    }
    if (rc == 0 && result == PROTO_LEASE_GRANTED) {
        gate_excl(&l->gate); /* invariant 1 */
        caches_drop(ls, l);
        set_state(ls, l, L_HELD);
        gate_leave(&l->gate);
        log_info("image lease: hand-over done, writing here now: image=%s",
                 l->path);
    } else if (rc == 0) {
        log_warn("image lease: hand-over refused: %s", why);
        gate_excl(&l->gate);
        set_state(ls, l, L_LOST);
        gate_leave(&l->gate);
        rc = -EROFS;
    } else {
        log_warn("image lease: hand-over failed: %s image=%s", strerror(-rc),
                 l->path);
    }
    pthread_mutex_unlock(&l->take_lock);
    return rc;
}

int vd_lease_begin(struct vd_leases *ls, struct vd_lease *l, bool write)
{
    for (;;) {
        gate_shared(&l->gate);
        enum lease_state st = get_state(ls, l);
        if (!write || st == L_HELD)
            return 0;
        gate_leave(&l->gate);
        if (st == L_LOST)
            return -EROFS;
        int rc = take(ls, l);
        if (rc < 0)
            return rc;
    }
}

int vd_lease_try_begin(struct vd_leases *ls, struct vd_lease *l, bool write)
{
    if (!gate_try_shared(&l->gate))
        return -EAGAIN;
    if (write && get_state(ls, l) != L_HELD) {
        gate_leave(&l->gate);
        return -EAGAIN;
    }
    return 0;
}

void vd_lease_end(struct vd_lease *l)
{
    gate_leave(&l->gate);
}

bool vd_lease_held(struct vd_leases *ls, struct vd_lease *l)
{
    return get_state(ls, l) == L_HELD;
}

int vd_lease_lost_status(struct vd_lease *l)
{
    return l->lost_rc;
}

/* ---- The old holder's end ----------------------------------------------- */

/* HELD -> LOST.  With @flush (a RECALL) everything dirty is made durable
 * first and the lease given back; otherwise (LOST) it is already gone. */
static void give_up(struct vd_leases *ls, struct vd_lease *l, bool flush)
{
    int rc = 0;

    gate_excl(&l->gate); /* invariant 1: no write in flight */
    if (flush)
        rc = ls->io.sync(ls->io.arg, l->node);
    else
        rc = -EIO; /* whatever was not flushed may be lost */
    caches_drop(ls, l);
    l->lost_rc = rc;
    set_state(ls, l, L_LOST);
    gate_leave(&l->gate);
    if (flush) {
        release(ls, l);
        if (rc < 0)
            log_error("image lease: hand-over flush failed: %s image=%s",
                      strerror(-rc), l->path);
        log_info("image lease: recalled for a hand-over: flushed, writes "
                 "refused from now on: image=%s",
                 l->path);
    } else {
        log_warn("image lease: lost (metad gave it to another session): "
                 "writes refused from now on: image=%s",
                 l->path);
    }
}

/* Apply one answer entry; @gen is what the poll was sent with. */
static void handle_entry(struct vd_leases *ls, uint64_t ino, uint32_t state,
                         const uint64_t *inos, const uint64_t *gens, size_t n)
{
    uint64_t gen = 0;
    for (size_t i = 0; i < n; i++)
        if (inos[i] == ino)
            gen = gens[i];

    pthread_mutex_lock(&ls->lock);
    struct vd_lease *l = NULL;
    for (struct vd_lease *it = ls->list; it; it = it->next) {
        if (it->ino == ino && it->state == L_HELD &&
            (state == PROTO_LEASE_RECALL || it->gen == gen)) {
            l = it;
            l->refs++;
            break;
        }
    }
    pthread_mutex_unlock(&ls->lock);
    if (!l)
        return; /* closed meanwhile, or news about an older lease */
    give_up(ls, l, state == PROTO_LEASE_RECALL);
    vd_lease_close(ls, l); /* LOST now: no RELEASE from here */
}

/* One long poll naming @n held leases; applies the answer. */
static int poll_once(struct vd_leases *ls, const uint64_t *inos,
                     const uint64_t *gens, size_t n)
{
    struct vd_lease_news *news = ls->news;
    size_t nnews = 0;
    int rc = ls->io.wait(ls->io.arg, inos, n, WAIT_MS, news, &nnews);

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nnews; i++)
        if (news[i].state == PROTO_LEASE_RECALL ||
            news[i].state == PROTO_LEASE_LOST)
            handle_entry(ls, news[i].ino, news[i].state, inos, gens, n);
    return 0;
}

static void timed_wait(struct vd_leases *ls, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&ls->cond, &ls->lock, &ts);
}

static void *watch_main(void *arg)
{
    struct vd_leases *ls = arg;
    uint64_t inos[PROTO_LEASE_WAIT_MAX], gens[PROTO_LEASE_WAIT_MAX];

    pthread_mutex_lock(&ls->lock);
    while (!ls->stop) {
        size_t n = 0;
        for (struct vd_lease *l = ls->list; l && n < PROTO_LEASE_WAIT_MAX;
             l = l->next) {
            if (l->state == L_HELD) {
                inos[n] = l->ino;
                gens[n++] = l->gen;
            }
        }
        if (n == 0) {
            pthread_cond_wait(&ls->cond, &ls->lock);
            continue;
        }
        pthread_mutex_unlock(&ls->lock);
        int rc = poll_once(ls, inos, gens, n);
        pthread_mutex_lock(&ls->lock);
        if (rc < 0 && !ls->stop) {
            log_debug("vd.lease", "lease poll failed: %s", strerror(-rc));
            timed_wait(ls, RETRY_MS);
        }
    }
    pthread_mutex_unlock(&ls->lock);
    return NULL;
}

int vd_leases_new_io(const struct vd_lease_io *io,
                     const struct vd_lease_hooks *hooks,
                     struct vd_leases **out)
{
    struct vd_leases *ls = calloc(1, sizeof(*ls));
    if (!ls)
        return -ENOMEM;
    ls->io = *io;
    if (hooks)
        ls->hooks = *hooks;
    pthread_mutex_init(&ls->lock, NULL);
    pthread_cond_init(&ls->cond, NULL);
    int rc = -pthread_create(&ls->thread, NULL, watch_main, ls);
    if (rc < 0) {
        vd_leases_free(ls);
        return rc;
    }
    ls->started = true;
    *out = ls;
    return 0;
}

int vd_leases_new(struct cl_client *cl, const struct vd_lease_hooks *hooks,
                  struct vd_leases **out)
{
    struct vd_lease_io io = {
        .lease = client_lease,
        .wait = client_wait,
        .open = client_open,
        .put = client_put,
        .sync = client_sync,
        .forget = client_forget,
        .arg = cl,
    };
    return vd_leases_new_io(&io, hooks, out);
}

void vd_leases_free(struct vd_leases *ls)
{
    if (!ls)
        return;
    if (ls->started) {
        pthread_mutex_lock(&ls->lock);
        ls->stop = true;
        pthread_cond_broadcast(&ls->cond);
        pthread_mutex_unlock(&ls->lock);
        pthread_join(ls->thread, NULL);
    }
    assert(!ls->list);
    pthread_cond_destroy(&ls->cond);
    pthread_mutex_destroy(&ls->lock);
    free(ls);
}
