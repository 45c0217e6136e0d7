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
 * Invariants:
 *   1. A lane runs either shared jobs (nshared > 0) or one exclusive job,
 *      never both.
 *   2. A lane with no job running and none queued is freed at once.
 */
#include "chunk_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

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

static void work_cb(uv_work_t *w)
{
    struct chunk_job *j = (struct chunk_job *)w;

    /* Smuggle the result through the request's data pointer: the job
     * struct is owned by the caller and has no spare field for it. */
    w->data = (void *)(intptr_t)j->run(j);
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

int chunk_job_submit(struct chunk_jobs *js, struct chunk_job *j)
{
    struct chunk_lane **pp = lane_slot(js, j->chunk_id);
    struct chunk_lane *l = *pp;

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
