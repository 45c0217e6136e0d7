/* meta_srv_wal.c: the daemon's checkpoints of the database's write-ahead
 * log, on libuv's thread pool (meta_wal.c says why).
 *
 * Once a commit leaves the log at META_WAL_PAGES pages or more, one PASSIVE
 * checkpoint is queued (uv_queue_work) on the checkpoint connection; the
 * loop thread goes on applying records meanwhile.  A commit while it runs
 * queues nothing; the first one after it, if the log is still that long,
 * queues the next.  A failed checkpoint is logged and tried again at the
 * next commit; the log only grows meanwhile, nothing is lost.
 *
 * meta_srv_wal_stop() hands checkpoints back to SQLite (a shutdown still
 * applies records while the loop runs down); a checkpoint in flight
 * finishes on its own, and uv_run() returns only after it did, so
 * meta_srv_wal_free() then has nothing left to wait for.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct meta_srv_wal {
    struct meta_db *db; /* borrowed */
    uv_loop_t *loop;
    struct meta_wal_ckpt *ckpt;
    uv_work_t work;
    bool running; /* a checkpoint is queued or running */
    bool stopped;
    int rc, left; /* the last checkpoint's outcome (meta_wal_ckpt_run) */
};

/* On the pool's thread. */
static void on_work(uv_work_t *req)
{
    struct meta_srv_wal *w = req->data;

    w->rc = meta_wal_ckpt_run(w->ckpt, &w->left);
}

static void on_done(uv_work_t *req, int status)
{
    struct meta_srv_wal *w = req->data;

    w->running = false;
    if (status == 0 && w->rc < 0)
        log_warn("metad: checkpoint of the database log failed: %s",
                 strerror(-w->rc));
}

static void on_pages(void *arg, int pages)
{
    struct meta_srv_wal *w = arg;

    if (pages < META_WAL_PAGES || w->running || w->stopped)
        return;
    w->work.data = w;
    if (uv_queue_work(w->loop, &w->work, on_work, on_done) == 0)
        w->running = true;
}

int meta_srv_wal_start(uv_loop_t *loop, struct meta_db *db, const char *path,
                       struct meta_srv_wal **out)
{
    struct meta_srv_wal *w = calloc(1, sizeof(*w));
    int rc;

    if (!w)
        return -ENOMEM;
    rc = meta_wal_ckpt_open(path, &w->ckpt);
    if (rc < 0) {
        log_error("metad: cannot open the database for checkpoints: %s "
                  "path=%s",
                  strerror(-rc), path);
        free(w);
        return rc;
    }
    w->db = db;
    w->loop = loop;
    meta_db_wal_watch(db, on_pages, w);
    *out = w;
    return 0;
}

void meta_srv_wal_stop(struct meta_srv_wal *w)
{
    if (!w || w->stopped)
        return;
    w->stopped = true;
    meta_db_wal_watch(w->db, NULL, NULL);
}

void meta_srv_wal_free(struct meta_srv_wal *w)
{
    if (!w)
        return;
    meta_srv_wal_stop(w);
    meta_wal_ckpt_close(w->ckpt);
    free(w);
}
