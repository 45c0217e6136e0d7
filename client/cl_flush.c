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
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>

#define TICK_MS 1000
#define COLLECT_MAX 256

struct cl_flush {
    struct cl_client *c; /* borrowed: outlives the flusher */
    uint32_t interval_ms;
    pthread_t thread;
    bool running;
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

struct cl_flush *cl_flush_new(struct cl_client *c, const struct cl_opts *o)
{
    struct cl_flush *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->c = c;
    f->interval_ms =
        o->flush_interval_ms ? o->flush_interval_ms : CL_FLUSH_INTERVAL_MS;
    return f;
}

int cl_flush_start(struct cl_flush *f)
{
    int rc = -pthread_create(&f->thread, NULL, flush_main, f);
    if (rc == 0)
        f->running = true;
    return rc;
}

void cl_flush_free(struct cl_flush *f)
{
    if (!f)
        return;
    if (f->running) {
        cl_cache_stop(f->c->cache);
        pthread_join(f->thread, NULL);
    }
    free(f);
}
