/* Tests for client/cl_wrange.c: an inode's writes in flight never overlap.
 * A fast write is declined while an overlapping write is in flight or
 * waiting; a blocking write waits behind the overlapping ranges taken
 * before it, and only those; a range given back wakes it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cl_internal.h"

struct fixture {
    struct cl_handles *t;
    struct cl_inode *n;
};

static int setup(void **state)
{
    static struct fixture f;
    f.t = cl_handles_new();
    if (!f.t || cl_handles_open(f.t, 7, 0, &f.n) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cl_handles_put(f->t, f->n);
    cl_handles_free(f->t);
    return 0;
}

static void test_cl_wrange_try_declines_overlap_only(void **state)
{
    struct fixture *f = *state;
    struct cl_wrange a, b, c, d;

    assert_true(cl_wrange_try(f->n, &a, 4096, 8192));
    assert_false(cl_wrange_try(f->n, &b, 4095, 4096 + 1)); /* one byte */
    assert_false(cl_wrange_try(f->n, &b, 8191, 9000));
    assert_false(cl_wrange_try(f->n, &b, 0, 1 << 20)); /* covers it */
    assert_true(cl_wrange_try(f->n, &b, 0, 4096));     /* touches only */
    assert_true(cl_wrange_try(f->n, &c, 8192, 12288));
    cl_wrange_end(f->n, &a); /* from the middle of the list */
    assert_true(cl_wrange_try(f->n, &d, 5000, 6000));
    cl_wrange_end(f->n, &b);
    cl_wrange_end(f->n, &d);
    cl_wrange_end(f->n, &c);
    assert_null(f->n->wr_head);
    assert_null(f->n->wr_tail);
}

struct waiter {
    struct cl_inode *n;
    struct cl_wrange r;
    uint64_t off, end;
    atomic_bool taken;
    atomic_bool release; /* the test tells it to give the range back */
    pthread_t th;
};

static void *waiter_run(void *arg)
{
    struct waiter *w = arg;
    cl_wrange_wait(w->n, &w->r, w->off, w->end);
    atomic_store(&w->taken, true);
    while (!atomic_load(&w->release)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cl_wrange_end(w->n, &w->r);
    return NULL;
}

static void waiter_start(struct waiter *w, struct cl_inode *n, uint64_t off,
                         uint64_t end)
{
    w->n = n;
    w->off = off;
    w->end = end;
    atomic_init(&w->taken, false);
    atomic_init(&w->release, false);
    assert_int_equal(pthread_create(&w->th, NULL, waiter_run, w), 0);
}

/* Until @w has appended its range to the list (it is then waiting or has
 * taken it). */
static void until_listed(struct cl_inode *n, struct waiter *w)
{
    for (;;) {
        pthread_mutex_lock(&n->lock);
        bool listed = false;
        for (struct cl_wrange *o = n->wr_head; o; o = o->next)
            listed |= o == &w->r;
        pthread_mutex_unlock(&n->lock);
        if (listed)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void until_taken(struct waiter *w)
{
    while (!atomic_load(&w->taken)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

/* @w gives its range back and ends. */
static void waiter_finish(struct waiter *w)
{
    atomic_store(&w->release, true);
    pthread_join(w->th, NULL);
}

static void test_cl_wrange_wait_behind_overlap(void **state)
{
    struct fixture *f = *state;
    struct cl_wrange held, other, later;
    struct waiter w;

    assert_true(cl_wrange_try(f->n, &held, 0, 4096));
    waiter_start(&w, f->n, 1000, 2000);
    until_listed(f->n, &w);
    /* Listed behind an overlapping range in flight: it waits, and a fast
     * write over its range is declined meanwhile (it is not starved). */
    assert_false(atomic_load(&w.taken));
    assert_int_equal(f->n->wr_waiters, 1);
    assert_false(cl_wrange_try(f->n, &later, 1500, 1600));
    /* A range elsewhere neither waits nor wakes it. */
    assert_true(cl_wrange_try(f->n, &other, 8192, 16384));
    cl_wrange_end(f->n, &other);
    assert_false(atomic_load(&w.taken));

    cl_wrange_end(f->n, &held);
    until_taken(&w);
    assert_false(cl_wrange_try(f->n, &later, 1999, 3000));
    assert_true(cl_wrange_try(f->n, &later, 2000, 3000));
    waiter_finish(&w);
    cl_wrange_end(f->n, &later);
    assert_int_equal(f->n->wr_waiters, 0);
    assert_null(f->n->wr_head);
}

static void test_cl_wrange_wait_ignores_later_and_disjoint(void **state)
{
    struct fixture *f = *state;
    struct cl_wrange held;
    struct waiter a, b;

    /* Disjoint from what is in flight: taken at once. */
    assert_true(cl_wrange_try(f->n, &held, 0, 4096));
    waiter_start(&a, f->n, 4096, 8192);
    until_taken(&a);
    /* @b overlaps @a (taken before it) and waits; @a never waits for
     * @b, which came later. */
    waiter_start(&b, f->n, 6000, 10000);
    until_listed(f->n, &b);
    assert_false(atomic_load(&b.taken));
    waiter_finish(&a);
    until_taken(&b);
    waiter_finish(&b);
    cl_wrange_end(f->n, &held);
    assert_null(f->n->wr_head);
}

static void test_cl_wrange_waiters_in_order(void **state)
{
    struct fixture *f = *state;
    struct cl_wrange held;
    struct waiter a, b;

    /* Two blocking writes of the same bytes queue behind the one in
     * flight and run one after the other, in the order they came. */
    assert_true(cl_wrange_try(f->n, &held, 0, 4096));
    waiter_start(&a, f->n, 0, 4096);
    until_listed(f->n, &a);
    waiter_start(&b, f->n, 0, 4096);
    until_listed(f->n, &b);
    cl_wrange_end(f->n, &held);
    until_taken(&a);
    assert_false(atomic_load(&b.taken));
    waiter_finish(&a);
    until_taken(&b);
    waiter_finish(&b);
    assert_null(f->n->wr_head);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int test_cl_wrange(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cl_wrange_try_declines_overlap_only),
        T(test_cl_wrange_wait_behind_overlap),
        T(test_cl_wrange_wait_ignores_later_and_disjoint),
        T(test_cl_wrange_waiters_in_order),
    };
    return cmocka_run_group_tests_name("cl_wrange", tests, NULL, NULL);
}
