/* Tests for vmdisk/vd_lease.c: the image writer lease table over a fake
 * metad (struct vd_lease_io).  The fake answers IMAGE_LEASE from a script
 * and parks each IMAGE_LEASE_WAIT long poll until the test answers it, so
 * a test decides exactly what the recall thread hears and when.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "vd_lease.h"

#define T_INO 7
#define T_WAIT_S 5 /* a test fails rather than hang past this */

static struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t acquire_result, take_result; /* what ACQUIRE / TAKE answer */
    int acquires, takes, releases, syncs, forgets, drops, opens, puts;
    int sync_rc;
    /* The long poll: the one parked now, and how many were sent. */
    int polls;
    bool parked, answered, stopping;
    uint64_t parked_inos[8];
    size_t parked_n;
    struct vd_lease_news answer[8];
    size_t answer_n;
} fk;

static char fake_node; /* stands for the client's open inode */

static void deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += T_WAIT_S;
}

static int fake_lease(void *arg, uint32_t op, uint64_t ino, const char *path,
                      uint32_t *result, char *why, size_t why_len)
{
    (void)arg;
    (void)ino;
    pthread_mutex_lock(&fk.mu);
    switch (op) {
    case PROTO_LEASE_ACQUIRE:
        fk.acquires++;
        *result = fk.acquire_result;
        break;
    case PROTO_LEASE_TAKE:
        fk.takes++;
        *result = fk.take_result;
        break;
    case PROTO_LEASE_RELEASE:
        fk.releases++;
        *result = PROTO_LEASE_FREE;
        break;
    default:
        *result = 0;
    }
    pthread_cond_broadcast(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
    if (why && why_len)
        snprintf(why, why_len, "image %s is open for writing by vm9 on h2",
                 path);
    return 0;
}

static int fake_wait(void *arg, const uint64_t *inos, size_t n,
                     unsigned timeout_ms, struct vd_lease_news *news,
                     size_t *nnews)
{
    (void)arg;
    (void)timeout_ms;
    pthread_mutex_lock(&fk.mu);
    fk.polls++;
    fk.parked = true;
    fk.answered = false;
    fk.parked_n = n < 8 ? n : 8;
    memcpy(fk.parked_inos, inos, fk.parked_n * sizeof(*inos));
    pthread_cond_broadcast(&fk.cv);
    while (!fk.answered && !fk.stopping)
        pthread_cond_wait(&fk.cv, &fk.mu);
    fk.parked = false;
    *nnews = fk.answer_n;
    memcpy(news, fk.answer, fk.answer_n * sizeof(*news));
    fk.answer_n = 0;
    pthread_mutex_unlock(&fk.mu);
    return 0;
}

static int fake_open(void *arg, uint64_t ino, struct cl_inode **node)
{
    (void)arg;
    (void)ino;
    pthread_mutex_lock(&fk.mu);
    fk.opens++;
    pthread_mutex_unlock(&fk.mu);
    *node = (struct cl_inode *)(void *)&fake_node;
    return 0;
}

static void fake_put(void *arg, struct cl_inode *node)
{
    (void)arg;
    assert_ptr_equal(node, &fake_node);
    pthread_mutex_lock(&fk.mu);
    fk.puts++;
    pthread_mutex_unlock(&fk.mu);
}

static int fake_sync(void *arg, struct cl_inode *node)
{
    (void)arg;
    assert_ptr_equal(node, &fake_node);
    pthread_mutex_lock(&fk.mu);
    fk.syncs++;
    int rc = fk.sync_rc;
    pthread_mutex_unlock(&fk.mu);
    return rc;
}

static void fake_forget(void *arg, uint64_t ino)
{
    (void)arg;
    assert_int_equal(ino, T_INO);
    pthread_mutex_lock(&fk.mu);
    fk.forgets++;
    pthread_mutex_unlock(&fk.mu);
}

static void hook_drop(void *arg, uint64_t ino)
{
    (void)arg;
    assert_int_equal(ino, T_INO);
    pthread_mutex_lock(&fk.mu);
    fk.drops++;
    pthread_mutex_unlock(&fk.mu);
}

static const struct vd_lease_io fake_io = {
    .lease = fake_lease,
    .wait = fake_wait,
    .open = fake_open,
    .put = fake_put,
    .sync = fake_sync,
    .forget = fake_forget,
};

/* Wait until poll number @nth (from 1) is parked; true if it is. */
static bool poll_parked(int nth)
{
    struct timespec ts;
    int rc = 0;

    deadline(&ts);
    pthread_mutex_lock(&fk.mu);
    while (!(fk.parked && fk.polls >= nth) && rc == 0)
        rc = pthread_cond_timedwait(&fk.cv, &fk.mu, &ts);
    bool ok = fk.parked && fk.polls >= nth;
    pthread_mutex_unlock(&fk.mu);
    return ok;
}

/* Answer the parked poll with @state for T_INO. */
static void poll_answer(uint32_t state)
{
    pthread_mutex_lock(&fk.mu);
    assert_true(fk.parked);
    fk.answer[0] = (struct vd_lease_news){.ino = T_INO, .state = state};
    fk.answer_n = 1;
    fk.answered = true;
    pthread_cond_broadcast(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
}

static int count(const int *field)
{
    pthread_mutex_lock(&fk.mu);
    int v = *field;
    pthread_mutex_unlock(&fk.mu);
    return v;
}

/* Wait until the recall thread made @l lose its lease; true if it did. */
static bool lost_soon(struct vd_leases *ls, struct vd_lease *l)
{
    for (int i = 0; i < T_WAIT_S * 100 && vd_lease_held(ls, l); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    return !vd_lease_held(ls, l);
}

/* Wait until *@field (a fake counter) reaches @n; true if it did. */
static bool count_soon(const int *field, int n)
{
    struct timespec ts;
    int rc = 0;

    deadline(&ts);
    pthread_mutex_lock(&fk.mu);
    while (*field < n && rc == 0)
        rc = pthread_cond_timedwait(&fk.cv, &fk.mu, &ts);
    bool ok = *field >= n;
    pthread_mutex_unlock(&fk.mu);
    return ok;
}

static struct vd_leases *table(void)
{
    struct vd_lease_hooks hooks = {.drop = hook_drop};
    struct vd_leases *ls = NULL;
    assert_int_equal(vd_leases_new_io(&fake_io, &hooks, &ls), 0);
    return ls;
}

/* Stop the recall thread: answer (with nothing) whatever poll is parked. */
static void table_free(struct vd_leases *ls)
{
    pthread_mutex_lock(&fk.mu);
    fk.stopping = true;
    pthread_cond_broadcast(&fk.cv);
    pthread_mutex_unlock(&fk.mu);
    vd_leases_free(ls);
}

static int setup(void **state)
{
    (void)state;
    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.mu, NULL);
    pthread_cond_init(&fk.cv, NULL);
    fk.acquire_result = PROTO_LEASE_GRANTED;
    fk.take_result = PROTO_LEASE_GRANTED;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pthread_cond_destroy(&fk.cv);
    pthread_mutex_destroy(&fk.mu);
    return 0;
}

static void test_vd_lease_open_twice_one_acquire_one_release(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *a, *b;

    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &a), 0);
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &b), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(count(&fk.acquires), 1);
    assert_true(vd_lease_held(ls, a));
    vd_lease_close(ls, a);
    assert_int_equal(count(&fk.releases), 0);
    vd_lease_close(ls, b);
    assert_int_equal(count(&fk.releases), 1);
    assert_int_equal(count(&fk.puts), count(&fk.opens));
    table_free(ls);
}

static void test_vd_lease_busy_names_holder(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *l = NULL;
    char why[256] = "";

    fk.acquire_result = PROTO_LEASE_BUSY;
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", why, sizeof(why), &l),
                     -EBUSY);
    assert_null(l);
    assert_non_null(strstr(why, "/a.img"));
    assert_non_null(strstr(why, "vm9"));
    assert_int_equal(count(&fk.opens), 0);
    table_free(ls);
}

/* The race once seen in the field: a poll names the image's lease, the
 * image is closed (RELEASE, metad answers the poll LOST) and opened again
 * at once; the LOST was about the closed lease, not the new one. */
static void test_vd_lease_lost_for_closed_lease_spares_reopened(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *a, *b;

    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &a), 0);
    assert_true(poll_parked(1));
    vd_lease_close(ls, a);
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &b), 0);
    poll_answer(PROTO_LEASE_LOST);
    assert_true(poll_parked(2)); /* the answer was handled */
    assert_true(vd_lease_held(ls, b));
    assert_int_equal(vd_lease_begin(ls, b, true), 0);
    vd_lease_end(b);
    assert_int_equal(count(&fk.forgets), 0);
    vd_lease_close(ls, b);
    assert_int_equal(count(&fk.releases), 2);
    table_free(ls);
}

static void test_vd_lease_lost_refuses_writes(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *l;

    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &l), 0);
    assert_true(poll_parked(1));
    poll_answer(PROTO_LEASE_LOST);
    assert_true(lost_soon(ls, l));
    assert_int_equal(vd_lease_begin(ls, l, true), -EROFS);
    assert_int_equal(vd_lease_begin(ls, l, false), 0); /* reads go on */
    vd_lease_end(l);
    assert_int_equal(count(&fk.syncs), 0);
    assert_int_equal(vd_lease_lost_status(l), -EIO);
    assert_int_equal(count(&fk.forgets), 1);
    assert_int_equal(count(&fk.drops), 1);
    vd_lease_close(ls, l);
    assert_int_equal(count(&fk.releases), 0); /* metad took it already */
    table_free(ls);
}

static void recall_case(int sync_rc)
{
    struct vd_leases *ls = table();
    struct vd_lease *l;

    fk.sync_rc = sync_rc;
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &l), 0);
    assert_true(poll_parked(1));
    poll_answer(PROTO_LEASE_RECALL);
    /* The recall flushes, then gives the lease back. */
    assert_true(count_soon(&fk.releases, 1));
    assert_int_equal(count(&fk.syncs), 1);
    assert_false(vd_lease_held(ls, l));
    assert_int_equal(vd_lease_lost_status(l), sync_rc);
    assert_int_equal(vd_lease_begin(ls, l, true), -EROFS);
    vd_lease_close(ls, l);
    assert_int_equal(count(&fk.releases), 1);
    table_free(ls);
}

static void test_vd_lease_recall_flushes_and_releases(void **state)
{
    (void)state;
    recall_case(0);
}

static void test_vd_lease_recall_reports_failed_flush(void **state)
{
    (void)state;
    recall_case(-EIO);
}

static void test_vd_lease_standby_takes_on_first_write(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *l;

    fk.acquire_result = PROTO_LEASE_STANDBY;
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &l), 0);
    assert_false(vd_lease_held(ls, l));
    assert_int_equal(vd_lease_try_begin(ls, l, true), -EAGAIN);
    assert_int_equal(vd_lease_begin(ls, l, false), 0); /* no take to read */
    vd_lease_end(l);
    assert_int_equal(count(&fk.takes), 0);
    assert_int_equal(vd_lease_begin(ls, l, true), 0);
    vd_lease_end(l);
    assert_int_equal(count(&fk.takes), 1);
    assert_true(vd_lease_held(ls, l));
    assert_int_equal(count(&fk.forgets), 1); /* read what the old one wrote */
    assert_int_equal(count(&fk.drops), 1);
    vd_lease_close(ls, l);
    table_free(ls);
}

static void test_vd_lease_standby_refused_is_read_only(void **state)
{
    (void)state;
    struct vd_leases *ls = table();
    struct vd_lease *l;

    fk.acquire_result = PROTO_LEASE_STANDBY;
    fk.take_result = PROTO_LEASE_BUSY;
    assert_int_equal(vd_lease_open(ls, T_INO, "/a.img", NULL, 0, &l), 0);
    assert_int_equal(vd_lease_begin(ls, l, true), -EROFS);
    assert_int_equal(vd_lease_begin(ls, l, true), -EROFS);
    assert_int_equal(count(&fk.takes), 1); /* LOST stays LOST */
    vd_lease_close(ls, l);
    assert_int_equal(count(&fk.releases), 0);
    table_free(ls);
}

int test_vd_lease(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_vd_lease_open_twice_one_acquire_one_release, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_vd_lease_busy_names_holder,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_vd_lease_lost_for_closed_lease_spares_reopened, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_vd_lease_lost_refuses_writes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_vd_lease_recall_flushes_and_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_vd_lease_recall_reports_failed_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_vd_lease_standby_takes_on_first_write, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_vd_lease_standby_refused_is_read_only, setup, teardown),
    };
    return cmocka_run_group_tests_name("vd_lease", tests, NULL, NULL);
}
