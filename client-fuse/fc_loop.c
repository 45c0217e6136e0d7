/* fc_loop.c: the session loop.  One thread at a time reads FUSE requests,
 * and the thread that read a request answers it.
 *
 * libfuse's multi-threaded loop keeps every idle worker blocked in read()
 * on /dev/fuse, and the kernel hands each request to the worker that has
 * waited longest.  A program that makes one request after another (a
 * create is LOOKUP, CREATE, GETATTR, FLUSH and RELEASE) so meets a
 * different thread at each, and the scheduler, seeing a new partner every
 * time, runs them on different CPUs: every request and every answer is a
 * wakeup across CPUs.  Most requests the mount answers from memory in
 * microseconds, and that round trip was most of their cost.
 *
 * Here one worker at a time reads (the reader).  It answers what it read
 * itself, and reads again; the next request waits in the kernel for those
 * microseconds.  A request that has to wait (an answer from metad or a
 * chunk server, a lock held across I/O) says so first (blocking.h), from
 * the client library or the mount: then the reader hands the reading to
 * the idle worker that ran last (a stack), or starts a new worker while
 * fewer than max_threads run, and the requests behind it go on at once.
 * A worker done with a request whose reading it handed on waits on the
 * stack; one that would make more than max_idle_threads wait ends.  With
 * max_threads workers all busy nobody reads until one is done, as in
 * libfuse's loop.
 *
 * A wait that is not noted (a lock held by a thread that waits on the
 * network) holds up the requests behind it until it ends; it cannot hang
 * them, since nothing a request waits for is another request.
 *
 * The end: an unmount makes read() fail with ENODEV and the reader ends
 * the session; SIGINT or SIGTERM (libfuse's handlers, set in fc_main.c)
 * mark it ended and interrupt the calling thread's wait.  The calling
 * thread then wakes the idle workers, which end, cancels the reader in
 * read() (the only place a worker may be cancelled), and joins every
 * worker; a busy one ends when its request is answered.
 *
 * Locking: @lock guards the loop's fields.  It is taken last, after any
 * lock of the client library (the hook runs with those held), and nothing
 * is called with it held but pthread functions.
 */
#define FUSE_USE_VERSION 312

#include "fc_internal.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>

#include "blocking.h"
#include "log.h"

struct fc_worker {
    struct fc_loop *l;
    pthread_t thread;
    pthread_cond_t cond;
    bool go;      /* handed the reading while on the stack, or at start */
    bool reading; /* holds the reading; only its own thread touches it */
    bool ended;   /* its thread returns without the lock again: join it */
    struct fc_worker *next_idle;
    struct fc_worker *next; /* every worker started, newest first */
};

struct fc_loop {
    struct fc_loop_ops ops;
    unsigned max_threads, max_idle;
    pthread_mutex_t lock;
    struct fc_worker *idle; /* the stack: the last to wait on top */
    unsigned nidle;
    struct fc_worker *all;
    unsigned nrunning;         /* started and not ended */
    bool have_reader;          /* a worker holds the reading */
    struct fc_worker *in_read; /* the reader, while in ops.receive */
    bool stopping;
    int error;                   /* the first error reading, negative */
    struct fc_loop_stats *stats; /* written under @lock, read atomically */
    sem_t finish;
};

/* The worker the calling thread is, if any. */
static __thread struct fc_worker *self;

static void *worker_main(void *arg);

/* Under @lock: join and free the workers that ended (beyond max_idle),
 * so that ended threads do not pile up. */
static void reap_ended(struct fc_loop *l)
{
    struct fc_worker **p = &l->all;
    while (*p) {
        struct fc_worker *w = *p;
        if (!w->ended) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cond);
        free(w);
    }
}

/* Under @lock: a new worker, which holds the reading from its start.  0
 * or -errno. */
static int start_worker(struct fc_loop *l)
{
    reap_ended(l);
    struct fc_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->l = l;
    w->go = true;
    pthread_cond_init(&w->cond, NULL);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        pthread_cond_destroy(&w->cond);
        free(w);
        return -rc;
    }
    w->next = l->all;
    l->all = w;
    l->nrunning++;
    __atomic_store_n(&l->stats->threads, l->nrunning, __ATOMIC_RELAXED);
    return 0;
}

/* Under @lock: the reader gave up the reading; another worker takes it:
 * the last one to wait, else a new one, else the first one done. */
static void pass_reading(struct fc_loop *l)
{
    __atomic_store_n(&l->stats->handovers, l->stats->handovers + 1,
                     __ATOMIC_RELAXED);
    if (l->stopping) {
        l->have_reader = false;
        return;
    }
    struct fc_worker *w = l->idle;
    if (w) {
        l->idle = w->next_idle;
        l->nidle--;
        w->go = true;
        pthread_cond_signal(&w->cond);
        return;
    }
    if (l->nrunning < l->max_threads && start_worker(l) == 0)
        return;
    l->have_reader = false;
}

/* The blocking hook: the calling thread may wait for long. */
static void hand_over(void)
{
    struct fc_worker *w = self;
    if (!w || !w->reading)
        return;
    w->reading = false;
    pthread_mutex_lock(&w->l->lock);
    pass_reading(w->l);
    pthread_mutex_unlock(&w->l->lock);
}

/* Under @lock: whether @w may read now.  Waits on the stack while
 * another worker reads; false when @w is to end. */
static bool wait_for_reading(struct fc_loop *l, struct fc_worker *w)
{
    if (w->go) {
        w->go = false;
    } else if (!l->have_reader) {
        l->have_reader = true;
    } else {
        if (l->nidle >= l->max_idle)
            return false;
        w->next_idle = l->idle;
        l->idle = w;
        l->nidle++;
        while (!w->go && !l->stopping)
            pthread_cond_wait(&w->cond, &l->lock);
        if (!w->go) {
            /* Stopping: off the stack. */
            for (struct fc_worker **p = &l->idle; *p; p = &(*p)->next_idle)
                if (*p == w) {
                    *p = w->next_idle;
                    l->nidle--;
                    break;
                }
            return false;
        }
        w->go = false;
    }
    if (l->stopping || l->ops.exited(l->ops.arg)) {
        l->have_reader = false;
        sem_post(&l->finish);
        return false;
    }
    return true;
}

static void free_buf(void *arg)
{
    struct fuse_buf *buf = arg;
    free(buf->mem);
    buf->mem = NULL;
}

static void *worker_main(void *arg)
{
    struct fc_worker *w = arg;
    struct fc_loop *l = w->l;
    struct fuse_buf buf;
    memset(&buf, 0, sizeof(buf));

    self = w;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_mutex_lock(&l->lock);
    while (wait_for_reading(l, w)) {
        w->reading = true;
        l->in_read = w;
        pthread_mutex_unlock(&l->lock);

        int res;
        pthread_cleanup_push(free_buf, &buf);
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        res = l->ops.receive(l->ops.arg, &buf);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        pthread_cleanup_pop(0);

        pthread_mutex_lock(&l->lock);
        l->in_read = NULL;
        if (res == -EINTR || res == -EAGAIN) {
            w->reading = false;
            l->have_reader = false;
            continue;
        }
        if (res <= 0) {
            if (res < 0 && l->error == 0)
                l->error = res;
            l->ops.exit(l->ops.arg);
            w->reading = false;
            l->have_reader = false;
            sem_post(&l->finish);
            break;
        }
        pthread_mutex_unlock(&l->lock);
        l->ops.process(l->ops.arg, &buf);
        pthread_mutex_lock(&l->lock);
        if (w->reading) {
            /* Still the reader: read again (wait_for_reading() gives
             * the reading straight back). */
            w->reading = false;
            l->have_reader = false;
        }
    }
    l->nrunning--;
    __atomic_store_n(&l->stats->threads, l->nrunning, __ATOMIC_RELAXED);
    w->ended = true;
    pthread_mutex_unlock(&l->lock);
    free(buf.mem);
    self = NULL;
    return NULL;
}

int fc_loop_run(const struct fc_loop_ops *ops, unsigned max_threads,
                unsigned max_idle, struct fc_loop_stats *stats)
{
    struct fc_loop l;
    memset(&l, 0, sizeof(l));
    l.ops = *ops;
    l.max_threads = max_threads ? max_threads : 1;
    l.max_idle = max_idle;
    l.stats = stats;
    memset(stats, 0, sizeof(*stats));
    pthread_mutex_init(&l.lock, NULL);
    sem_init(&l.finish, 0, 0);
    blocking_set_hook(hand_over);

    pthread_mutex_lock(&l.lock);
    l.have_reader = true;
    int rc = start_worker(&l);
    pthread_mutex_unlock(&l.lock);
    if (rc == 0)
        while (!l.ops.exited(l.ops.arg))
            sem_wait(&l.finish); /* a signal interrupts it too */

    pthread_mutex_lock(&l.lock);
    l.stopping = true;
    for (struct fc_worker *w = l.idle; w; w = w->next_idle)
        pthread_cond_signal(&w->cond);
    if (l.in_read)
        pthread_cancel(l.in_read->thread);
    pthread_mutex_unlock(&l.lock);

    /* No worker starts once stopping is set. */
    struct fc_worker *w = l.all;
    while (w) {
        struct fc_worker *next = w->next;
        pthread_join(w->thread, NULL);
        pthread_cond_destroy(&w->cond);
        free(w);
        w = next;
    }
    blocking_set_hook(NULL);
    sem_destroy(&l.finish);
    pthread_mutex_destroy(&l.lock);
    return rc < 0 ? rc : l.error;
}

/* ---- On a FUSE session ----------------------------------------------------
 */

static int session_receive(void *arg, struct fuse_buf *buf)
{
    return fuse_session_receive_buf(arg, buf);
}

static void session_process(void *arg, const struct fuse_buf *buf)
{
    fuse_session_process_buf(arg, buf);
}

static bool session_exited(void *arg)
{
    return fuse_session_exited(arg) != 0;
}

static void session_exit(void *arg)
{
    fuse_session_exit(arg);
}

int fc_loop_run_session(struct fuse_session *se, unsigned max_threads,
                        unsigned max_idle, struct fc_loop_stats *stats)
{
    struct fc_loop_ops ops = {
        .receive = session_receive,
        .process = session_process,
        .exited = session_exited,
        .exit = session_exit,
        .arg = se,
    };
    return fc_loop_run(&ops, max_threads, max_idle, stats);
}
