/* Tests for client-fuse/fc_loop.c against a fake device: one thread reads
 * and answers while requests are quick; a request that notes a wait hands
 * the reading on; max_threads bounds the workers; a signal stops a loop
 * whose reader waits in receive(). */
#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "blocking.h"
#include "fc_internal.h"

#define FAKE_MAX 64

enum { QUICK, WAITS };

/* The fake device: requests are indexes into kind[]; one that WAITS
 * notes it and waits until @release. */
struct fake_dev {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kind[FAKE_MAX];
    int queued, taken; /* requests [taken, queued) wait to be read */
    bool closed;       /* receive() returns 0 once all are read */
    bool exited;
    bool release;
    int waiting; /* requests now waiting in process() */
    int served;  /* requests answered */
    pthread_t by[FAKE_MAX];
};

static void fake_init(struct fake_dev *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
}

static void fake_destroy(struct fake_dev *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static void fake_push(struct fake_dev *f, int kind)
{
    pthread_mutex_lock(&f->mu);
    assert_true(f->queued < FAKE_MAX);
    f->kind[f->queued++] = kind;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void unlock_mu(void *arg)
{
    pthread_mutex_unlock(arg);
}

static int fake_receive(void *arg, struct fuse_buf *buf)
{
    struct fake_dev *f = arg;
    volatile int rc = 0; /* across the cleanup handler's setjmp */

    pthread_mutex_lock(&f->mu);
    pthread_cleanup_push(unlock_mu, &f->mu);
    while (f->taken == f->queued && !f->closed)
        pthread_cond_wait(&f->cv, &f->mu);
    if (f->taken < f->queued) {
        buf->size = (size_t)f->taken++;
        rc = 1;
    }
    pthread_cleanup_pop(1);
    return rc;
}

static void fake_process(void *arg, const struct fuse_buf *buf)
{
    struct fake_dev *f = arg;
    int i = (int)buf->size;

    pthread_mutex_lock(&f->mu);
    f->by[i] = pthread_self();
    if (f->kind[i] == WAITS) {
        f->waiting++;
        pthread_cond_broadcast(&f->cv);
        while (!f->release)
            blocking_cond_wait(&f->cv, &f->mu);
        f->waiting--;
    }
    f->served++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool fake_exited(void *arg)
{
    struct fake_dev *f = arg;
    pthread_mutex_lock(&f->mu);
    bool e = f->exited;
    pthread_mutex_unlock(&f->mu);
    return e;
}

static void fake_exit(void *arg)
{
    struct fake_dev *f = arg;
    pthread_mutex_lock(&f->mu);
    f->exited = true;
    pthread_mutex_unlock(&f->mu);
}

/* Wait up to 5 s for @pred; false if it never held. */
static bool fake_wait_for(struct fake_dev *f, bool (*pred)(struct fake_dev *))
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&f->mu);
    while (!pred(f))
        if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT)
            break;
    bool ok = pred(f);
    pthread_mutex_unlock(&f->mu);
    return ok;
}

struct run {
    struct fake_dev *f;
    unsigned max_threads, max_idle;
    struct fc_loop_stats stats;
    int rc;
    pthread_t thread;
};

static void *run_main(void *arg)
{
    struct run *r = arg;
    struct fc_loop_ops ops = {
        .receive = fake_receive,
        .process = fake_process,
        .exited = fake_exited,
        .exit = fake_exit,
        .arg = r->f,
    };
    r->rc = fc_loop_run(&ops, r->max_threads, r->max_idle, &r->stats);
    return NULL;
}

static void run_start(struct run *r, struct fake_dev *f, unsigned max_threads)
{
    memset(r, 0, sizeof(*r));
    r->f = f;
    r->max_threads = max_threads;
    r->max_idle = max_threads;
    assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
}

static void fake_close(struct fake_dev *f)
{
    pthread_mutex_lock(&f->mu);
    f->closed = true;
    f->release = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool three_served(struct fake_dev *f)
{
    return f->served >= 3;
}

static bool two_waiting(struct fake_dev *f)
{
    return f->waiting == 2;
}

static bool one_waiting(struct fake_dev *f)
{
    return f->waiting == 1;
}

static bool one_served(struct fake_dev *f)
{
    return f->served == 1;
}

/* Quick requests one after the other: all read and answered by one
 * thread, nothing handed on; a note from a thread that is no worker
 * changes nothing. */
static void test_fc_loop_quick_requests_one_thread(void **state)
{
    struct fake_dev f;
    struct run r;

    (void)state;
    fake_init(&f);
    run_start(&r, &f, 4);
    for (int i = 0; i < 20; i++) {
        fake_push(&f, QUICK);
        usleep(200); /* one after the other, as a program makes them */
    }
    blocking_note();
    fake_close(&f);
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(f.served, 20);
    for (int i = 1; i < 20; i++)
        assert_true(pthread_equal(f.by[i], f.by[0]));
    assert_int_equal(r.stats.handovers, 0);
    fake_destroy(&f);
}

/* A request that waits hands the reading on: the requests behind it are
 * answered meanwhile, by another thread, and the waiting one ends. */
static void test_fc_loop_waiting_request_hands_over(void **state)
{
    struct fake_dev f;
    struct run r;

    (void)state;
    fake_init(&f);
    run_start(&r, &f, 4);
    fake_push(&f, WAITS);
    assert_true(fake_wait_for(&f, one_waiting));
    for (int i = 0; i < 3; i++)
        fake_push(&f, QUICK);
    assert_true(fake_wait_for(&f, three_served));
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.waiting, 1); /* still waiting: not served by it */
    assert_false(pthread_equal(f.by[1], f.by[0]));
    assert_true(pthread_equal(f.by[2], f.by[1]));
    assert_true(pthread_equal(f.by[3], f.by[1]));
    pthread_mutex_unlock(&f.mu);
    fake_close(&f);
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(f.served, 4);
    assert_int_equal(r.stats.handovers, 1);
    fake_destroy(&f);
}

/* With max_threads workers all waiting nobody reads; the first one done
 * reads what came meanwhile. */
static void test_fc_loop_max_threads_bounds_workers(void **state)
{
    struct fake_dev f;
    struct run r;

    (void)state;
    fake_init(&f);
    run_start(&r, &f, 2);
    fake_push(&f, WAITS);
    fake_push(&f, WAITS);
    assert_true(fake_wait_for(&f, two_waiting));
    fake_push(&f, QUICK);
    usleep(100 * 1000);
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.served, 0);
    assert_int_equal(f.taken, 2); /* the third is not even read */
    f.release = true;
    pthread_cond_broadcast(&f.cv);
    pthread_mutex_unlock(&f.mu);
    assert_true(fake_wait_for(&f, three_served));
    fake_close(&f);
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(f.served, 3);
    fake_destroy(&f);
}

/* With max_idle 0 a worker that handed the reading on ends once its
 * request is answered: after three waiting requests, one at a time, one
 * worker runs. */
static void test_fc_loop_idle_beyond_max_end(void **state)
{
    struct fake_dev f;
    struct run r;

    (void)state;
    fake_init(&f);
    memset(&r, 0, sizeof(r));
    r.f = &f;
    r.max_threads = 4;
    r.max_idle = 0;
    assert_int_equal(pthread_create(&r.thread, NULL, run_main, &r), 0);
    for (int k = 0; k < 3; k++) {
        fake_push(&f, WAITS);
        assert_true(fake_wait_for(&f, one_waiting));
        pthread_mutex_lock(&f.mu);
        f.release = true;
        pthread_cond_broadcast(&f.cv);
        while (f.served < k + 1)
            pthread_cond_wait(&f.cv, &f.mu);
        f.release = false;
        pthread_mutex_unlock(&f.mu);
    }
    unsigned threads = 0;
    for (int i = 0; i < 500; i++) {
        threads = __atomic_load_n(&r.stats.threads, __ATOMIC_RELAXED);
        if (threads == 1)
            break;
        usleep(10 * 1000);
    }
    assert_int_equal(threads, 1);
    assert_int_equal(__atomic_load_n(&r.stats.handovers, __ATOMIC_RELAXED), 3);
    fake_close(&f);
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    fake_destroy(&f);
}

static void on_usr1(int sig)
{
    (void)sig;
}

/* A signal to the calling thread after exit(), as libfuse's handlers do:
 * the loop stops although its reader waits in receive(). */
static void test_fc_loop_signal_stops_reader_in_receive(void **state)
{
    struct fake_dev f;
    struct run r;
    struct sigaction sa, old;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1; /* no SA_RESTART: sem_wait() returns */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    fake_init(&f);
    run_start(&r, &f, 4);
    fake_push(&f, QUICK);
    assert_true(fake_wait_for(&f, one_served));
    usleep(50 * 1000); /* the reader is back in receive() */
    fake_exit(&f);
    /* Again until it ends: a signal just before sem_wait() is lost. */
    int joined = -1;
    for (int i = 0; i < 50 && joined != 0; i++) {
        pthread_kill(r.thread, SIGUSR1);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        joined = pthread_timedjoin_np(r.thread, NULL, &until);
    }
    assert_int_equal(joined, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(f.served, 1);
    sigaction(SIGUSR1, &old, NULL);
    fake_destroy(&f);
}

int test_fc_loop(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_loop_quick_requests_one_thread),
        cmocka_unit_test(test_fc_loop_waiting_request_hands_over),
        cmocka_unit_test(test_fc_loop_max_threads_bounds_workers),
        cmocka_unit_test(test_fc_loop_idle_beyond_max_end),
        cmocka_unit_test(test_fc_loop_signal_stops_reader_in_receive),
    };
    return cmocka_run_group_tests_name("fc_loop", tests, NULL, NULL);
}
