/* chunk_job.c: disk work on the libuv thread pool, ordered per chunk.
 *
 * Every request that touches the disk becomes a job.  Jobs on one chunk
 * form a FIFO lane: consecutive shared jobs (reads, syncs) run together,
 * an exclusive job (write, truncate, version change, delete) runs alone.
 * So a client that pipelines a write and then a read of the same range
 * reads what it wrote, and replicas apply one chunk's writes in the order
 * they were forwarded, whatever the thread pool does.  The store's own
 * per-chunk lock keeps the files consistent; the lanes keep the order.
 *
 * Lanes live in a small hash table on the loop thread and exist only while
 * a job is queued or running on their chunk.
 *
 * Inline tries.  A job on the pool costs two thread hand-offs, which is
 * most of the time of a 4 KiB read served from the page cache.  So a job
 * with a run_nowait callback that would start at once, here and now, is
 * first tried on the loop thread: its chunk has no lane (nothing queued
 * or running on it), or it is shared and its lane runs shared jobs only
 * with none queued.  Those are exactly the cases where lane_pump() would
 * start it at once, so the try reorders nothing (invariant 3).  The try
 * must not block (chunk_store_read_nowait(), _write_nowait()); when it
 * would, it returns -EAGAIN and the job is queued as any other, with no
 * job submitted in between, as the loop thread has not let go.  An
 * inline job never enters a lane: it is over before submit returns.
 *
 *   submit --(would start at once, run_nowait)--> try --done--> @done
 *      |                                           |
 *      |                                        -EAGAIN
 *      v                                           v
 *   lane queue --lane_pump--> pool (run) --after_cb--> @done
 *
 * Invariants:
 *   1. A lane runs either shared jobs (nshared > 0) or one exclusive job,
 *      never both.
 *   2. A lane with no job running and none queued is freed at once.
 *   3. A job runs inline only when no job queued or running on its chunk
 *      conflicts with it: no lane, or a shared job on a lane with no
 *      exclusive job running and none queued.
 */
#include "chunk_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "lat.h"

#define NBUCKETS 256u

struct chunk_lane {
    uint64_t id;
    int nshared;
    bool excl;
    struct chunk_job *head, *tail;
    struct chunk_lane *next;
};

struct chunk_jobs {
    uv_loop_t *loop;
    struct chunk_lane *buckets[NBUCKETS];
};

int chunk_jobs_new(uv_loop_t *loop, struct chunk_jobs **out)
{
    struct chunk_jobs *js = calloc(1, sizeof(*js));

    if (!js)
        return -ENOMEM;
    js->loop = loop;
    *out = js;
    return 0;
}

void chunk_jobs_free(struct chunk_jobs *js)
{
    if (!js)
        return;
    for (unsigned b = 0; b < NBUCKETS; b++)
        assert(!js->buckets[b]); /* invariant 2: nothing queued */
    free(js);
}

static struct chunk_lane **lane_slot(struct chunk_jobs *js, uint64_t id)
{
    struct chunk_lane **pp = &js->buckets[id % NBUCKETS];

    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    return pp;
}

/* Where a job's time goes (SIGUSR1 dumps them): waiting for a pool
 * thread, running there, or run on the loop without waiting. */
static struct lat_stage st_wait = {.name = "chunk.job.pool_wait"};
static struct lat_stage st_run = {.name = "chunk.job.pool_run"};
static struct lat_stage st_inline = {.name = "chunk.job.inline"};

void chunk_job_stats_register(void)
{
    lat_stage_register(&st_wait);
    lat_stage_register(&st_run);
    lat_stage_register(&st_inline);
}

static void work_cb(uv_work_t *w)
{
    struct chunk_job *j = (struct chunk_job *)w;
    uint64_t t = lat_hist_record_since(&st_wait.h, j->t_queued);

    /* Smuggle the result through the request's data pointer: the job
     * struct is owned by the caller and has no spare field for it. */
    w->data = (void *)(intptr_t)j->run(j);
    lat_hist_record_since(&st_run.h, t);
}

static void after_cb(uv_work_t *w, int status);

static void lane_pump(struct chunk_jobs *js, struct chunk_lane *l)
{
    struct chunk_job *j;

    while ((j = l->head) != NULL) {
        if (l->excl || (!j->shared && l->nshared > 0))
            break;
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        if (j->shared)
            l->nshared++;
        else
            l->excl = true;
        assert(!(l->excl && l->nshared)); /* invariant 1 */
        j->t_queued = lat_now_ns();
        uv_queue_work(js->loop, &j->work, work_cb, after_cb);
    }
    if (!l->head && !l->excl && l->nshared == 0) { /* invariant 2 */
        struct chunk_lane **pp = lane_slot(js, l->id);
        *pp = l->next;
        free(l);
    }
}

static void after_cb(uv_work_t *w, int status)
{
    struct chunk_job *j = (struct chunk_job *)w;
    struct chunk_jobs *js = j->srv->jobs;
    uint64_t id = j->chunk_id;
    struct chunk_lane *l = *lane_slot(js, id);
    int rc = status < 0 ? status : (int)(intptr_t)w->data;

    assert(l);
    if (j->shared)
        l->nshared--;
    else
        l->excl = false;
    j->done(j, rc); /* may free j, and may queue more jobs on this lane */
    l = *lane_slot(js, id);
    if (l)
        lane_pump(js, l);
}

/* Invariant 3: would lane_pump() start @j at once on lane @l? */
static bool starts_now(const struct chunk_lane *l, const struct chunk_job *j)
{
    return !l || (j->shared && !l->excl && !l->head);
}

int chunk_job_submit(struct chunk_jobs *js, struct chunk_job *j)
{
    struct chunk_lane **pp = lane_slot(js, j->chunk_id);
    struct chunk_lane *l = *pp;

    if (j->run_nowait && starts_now(l, j)) {
        uint64_t t = lat_now_ns();
        int rc = j->run_nowait(j);
        if (rc != -EAGAIN) {
            lat_hist_record_since(&st_inline.h, t);
            j->done(j, rc); /* may free j and submit more jobs */
            return 0;
        }
        /* Nothing ran on the loop meanwhile: @pp and @l still hold. */
    }
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return -ENOMEM;
        l->id = j->chunk_id;
        *pp = l;
    }
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    lane_pump(js, l);
    return 0;
}
