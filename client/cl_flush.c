/* cl_flush.c: the flusher: when delayed writes and owed WRITE_ENDs go out
 * (docs/caching.md, "Policies").
 *
 * One thread per client, above the file layer: it decides when an inode is
 * due and calls cl_file_flush() on it, which writes the inode's delayed
 * writes back (cl_file_writeback(), over the store in cl_cache.c) and
 * sends the owed CHUNK_WRITE_END.  Calls go one way, flusher -> file ->
 * cache; the cache only wakes the flusher up, through cl_cache_wait().
 *
 * The thread wakes every second, or at once when a writer finds the
 * client over dirty_max, and flushes:
 *   - under writeback, every inode whose oldest delayed write is older
 *     than the flush interval, and every pending CHUNK_WRITE_END that old
 *     (all policies: write-through defers WRITE_END too);
 *   - whatever the policy, every inode with delayed writes while the
 *     client holds more than dirty_max bytes of them; under writeonclose
 *     this is the one time data goes before close.
 * A failed flush leaves its error in the inode's werr for the next fsync
 * or close.  It also sends the RELEASE of files whose last handle closed
 * CL_LINGER_MS ago (cl_file_linger_end()).
 *
 * Behind the close.  Under writeback with callbacks a close() does not
 * wait for its file's write-back (cl_file_close()): it queues the inode
 * here, and one of BEHIND_WORKERS threads writes it back at once, in the
 * order closed.  Another client that opens, stats or looks the file up
 * meanwhile recalls it (cl_callback.c), and the recall's flush waits for
 * this one (the inode's sync_lock), so close-to-open holds as before.
 * Each queued inode keeps a reference until its write-back is over, and
 * its RELEASE waits for it (n->behind).  A full queue, or a flusher
 * stopping, makes the close write back itself; so does a write-back of
 * this client that failed in the last BEHIND_QUIET_MS (a full or failing
 * cluster): then each close waits for its own write-back again and
 * reports its error, as it does under the other policies.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#define TICK_MS 1000
#define COLLECT_MAX 256
#define BEHIND_WORKERS 4
#define BEHIND_MAX 1024
#define BEHIND_QUIET_MS 60000

struct cl_flush {
    struct cl_client *c; /* borrowed: outlives the flusher */
    uint32_t interval_ms;
    pthread_t thread;
    bool running;
    /* Inodes closed and queued for write-back (a ring, each with a
     * reference), and the workers that take them. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct cl_inode *ring[BEHIND_MAX];
    size_t head, count;
    bool stop;
    pthread_t workers[BEHIND_WORKERS];
    unsigned nworkers;
    _Atomic uint64_t failed_ms; /* the last failed write-back (0: none) */
};

static bool due(struct cl_flush *f, struct cl_inode *n, bool urgent,
                uint64_t now)
{
    enum cl_cache_mode mode = f->c->mode;
    bool yes = false;

    pthread_mutex_lock(&n->lock);
    if (n->dirty_bytes > 0) {
        if (urgent)
            yes = true;
        else if (mode == CL_CACHE_WRITEBACK)
            yes = now - n->dirty_ms >= f->interval_ms;
    }
    if (n->end_pending && now - n->end_ms >= f->interval_ms &&
        !(mode == CL_CACHE_WRITEONCLOSE && n->dirty_bytes > 0))
        yes = true;
    pthread_mutex_unlock(&n->lock);
    return yes;
}

static void scan(struct cl_flush *f, bool urgent)
{
    struct cl_inode *v[COLLECT_MAX];
    uint64_t now = cl_now_ms();
    size_t nv = cl_handles_collect(f->c->handles, v, COLLECT_MAX, now);

    for (size_t i = 0; i < nv; i++) {
        if (due(f, v[i], urgent, now)) {
            int rc = cl_file_flush(f->c, v[i]);
            if (rc < 0) {
                pthread_mutex_lock(&v[i]->lock);
                if (!v[i]->werr)
                    v[i]->werr = rc;
                pthread_mutex_unlock(&v[i]->lock);
            }
        }
        cl_file_linger_end(f->c, v[i], now);
        cl_inode_put(f->c, v[i]);
    }
}

static void *flush_main(void *arg)
{
    struct cl_flush *f = arg;
    bool stop = false;

    for (;;) {
        bool urgent = cl_cache_wait(f->c->cache, TICK_MS, &stop);
        if (stop)
            break;
        scan(f, urgent);
        /* A file created here and open for a while gets its hold at
         * metad (cl_nsq.c). */
        cl_nsq_holds_due(f->c->nsq, TICK_MS);
        /* Writers waiting for room whose inodes could not be written back
         * look again; they wake when bytes are freed anyway. */
        cl_cache_retry_writers(f->c->cache);
    }
    return NULL;
}

/* ---- Behind the close --------------------------------------------------- */

static void *behind_main(void *arg)
{
    struct cl_flush *f = arg;
    struct cl_client *c = f->c;

    for (;;) {
        pthread_mutex_lock(&f->lock);
        while (f->count == 0 && !f->stop)
            pthread_cond_wait(&f->cond, &f->lock);
        if (f->count == 0) {
            pthread_mutex_unlock(&f->lock);
            return NULL;
        }
        struct cl_inode *n = f->ring[f->head];
        f->head = (f->head + 1) % BEHIND_MAX;
        f->count--;
        pthread_mutex_unlock(&f->lock);

        pthread_mutex_lock(&n->lock);
        n->behind_queued = false; /* a close from now on queues it again */
        pthread_mutex_unlock(&n->lock);
        /* A failure is noted by cl_file_flush() (cl_flush_failed()) and
         * kept for the file's next fsync or close; a file removed
         * meanwhile has nothing left to write to. */
        int rc = cl_file_flush(c, n);
        pthread_mutex_lock(&n->lock);
        if (rc < 0 && rc != -ENOENT && !n->werr)
            n->werr = rc;
        n->behind--;
        pthread_mutex_unlock(&n->lock);
        cl_inode_put(c, n);
    }
}

void cl_flush_failed(struct cl_flush *f)
{
    if (f)
        atomic_store(&f->failed_ms, cl_now_ms());
}

int cl_flush_behind(struct cl_flush *f, struct cl_inode *n)
{
    if (!f || f->nworkers == 0)
        return -EAGAIN;
    uint64_t failed = atomic_load(&f->failed_ms);
    if (failed && cl_now_ms() - failed < BEHIND_QUIET_MS)
        return -EAGAIN;
    /* The queue's own reference (the caller's keeps @n in the table),
     * taken before the inode's lock, as the lock order wants. */
    struct cl_inode *ref = cl_inode_find(f->c, n->ino);
    bool queued = false;
    int rc = 0;

    pthread_mutex_lock(&f->lock);
    pthread_mutex_lock(&n->lock);
    if (n->behind_queued || (n->dirty_bytes == 0 && !n->end_pending)) {
        /* Queued and not started (it takes what this close owes), or
         * nothing owed. */
    } else if (f->stop || f->count == BEHIND_MAX) {
        rc = -EAGAIN;
    } else {
        n->behind_queued = true;
        n->behind++;
        f->ring[(f->head + f->count) % BEHIND_MAX] = n;
        f->count++;
        queued = true;
        pthread_cond_signal(&f->cond);
    }
    pthread_mutex_unlock(&n->lock);
    pthread_mutex_unlock(&f->lock);
    if (!queued)
        cl_inode_put(f->c, ref);
    return rc;
}

/* ---- Life ------------------------------------------------------------- */

struct cl_flush *cl_flush_new(struct cl_client *c, const struct cl_opts *o)
{
    struct cl_flush *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->c = c;
    f->interval_ms =
        o->flush_interval_ms ? o->flush_interval_ms : CL_FLUSH_INTERVAL_MS;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    return f;
}

int cl_flush_start(struct cl_flush *f)
{
    int rc = -pthread_create(&f->thread, NULL, flush_main, f);
    if (rc < 0)
        return rc;
    f->running = true;
    /* Without workers every close writes back itself. */
    while (f->nworkers < BEHIND_WORKERS &&
           pthread_create(&f->workers[f->nworkers], NULL, behind_main, f) == 0)
        f->nworkers++;
    return 0;
}

void cl_flush_free(struct cl_flush *f)
{
    if (!f)
        return;
    /* The workers finish what is queued first: each item holds a
     * reference and may owe a WRITE_END. */
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    for (unsigned i = 0; i < f->nworkers; i++)
        pthread_join(f->workers[i], NULL);
    if (f->running) {
        cl_cache_stop(f->c->cache);
        pthread_join(f->thread, NULL);
    }
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
