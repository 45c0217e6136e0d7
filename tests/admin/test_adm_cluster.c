/* Tests for admin/adm_cluster.c: following a drain with --wait. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

/* A progress report as parsed: server 3 draining with @left replicas
 * (no drain key when @left is NULL), @inflight copies in flight, and
 * @unplaced copies no server could take at the last scan.  Caller frees
 * it with status_report_free(). */
static void report3(struct status_report *st, const char *left,
                    const char *inflight, const char *unplaced)
{
    memset(st, 0, sizeof(*st));
    st->kv = calloc(3, sizeof(*st->kv));
    assert_non_null(st->kv);
    st->kv[0].key = strdup("repair.inflight");
    st->kv[0].value = strdup(inflight);
    st->kv[1].key = strdup("repair.unplaced");
    st->kv[1].value = strdup(unplaced);
    st->nkv = 2;
    if (left) {
        st->kv[2].key = strdup("drain.3");
        st->kv[2].value = strdup(left);
        st->nkv = 3;
    }
}

/* ... with a chunk no server can take a copy of. */
static void report(struct status_report *st, const char *left,
                   const char *inflight)
{
    report3(st, left, inflight, "1");
}

/* Replicas that keep leaving: never stuck, done at 0. */
static void test_adm_drain_step_progress_then_done(void **state)
{
    struct drain_watch d = {.id = 3, .left = UINT64_MAX};
    struct status_report st;
    char left[16];

    (void)state;
    for (int i = 40; i > 0; i--) {
        snprintf(left, sizeof(left), "%d", i);
        report(&st, left, "0");
        assert_false(adm_drain_step(&d, &st));
        status_report_free(&st);
    }
    report(&st, "0", "0");
    assert_true(adm_drain_step(&d, &st));
    assert_false(d.stuck);
    status_report_free(&st);
}

/* The same count with nothing in flight and a copy no server can take:
 * stuck after ADM_DRAIN_STALL_S polls; a copy in flight resets it. */
static void test_adm_drain_step_stuck(void **state)
{
    struct drain_watch d = {.id = 3, .left = UINT64_MAX};
    struct status_report st;

    (void)state;
    report(&st, "7", "0");
    assert_false(adm_drain_step(&d, &st));
    status_report_free(&st);
    for (unsigned i = 1; i < ADM_DRAIN_STALL_S; i++) {
        report(&st, "7", i == 5 ? "1" : "0");
        assert_false(adm_drain_step(&d, &st));
        status_report_free(&st);
    }
    for (unsigned i = 0; i < 5; i++) {
        report(&st, "7", "0");
        assert_false(adm_drain_step(&d, &st));
        status_report_free(&st);
    }
    report(&st, "7", "0");
    assert_true(adm_drain_step(&d, &st));
    assert_true(d.stuck);
    assert_int_equal(d.left, 7);
    assert_int_equal(d.unplaced, 1);
    status_report_free(&st);
}

/* The same count for long, but every chunk could be placed (waiting for a
 * write lease to end, say): never stuck. */
static void test_adm_drain_step_waiting_is_not_stuck(void **state)
{
    struct drain_watch d = {.id = 3, .left = UINT64_MAX};
    struct status_report st;

    (void)state;
    for (unsigned i = 0; i < 3 * ADM_DRAIN_STALL_S; i++) {
        report3(&st, "2", "0", "0");
        assert_false(adm_drain_step(&d, &st));
        status_report_free(&st);
    }
    assert_false(d.stuck);
}

/* The drain key gone (undrained or removed): over, not stuck. */
static void test_adm_drain_step_key_gone(void **state)
{
    struct drain_watch d = {.id = 3, .left = UINT64_MAX};
    struct status_report st;

    (void)state;
    report(&st, NULL, "0");
    assert_true(adm_drain_step(&d, &st));
    assert_false(d.stuck);
    status_report_free(&st);
}

int test_adm_cluster(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_drain_step_progress_then_done),
        cmocka_unit_test(test_adm_drain_step_stuck),
        cmocka_unit_test(test_adm_drain_step_waiting_is_not_stuck),
        cmocka_unit_test(test_adm_drain_step_key_gone),
    };
    return cmocka_run_group_tests_name("adm_cluster", tests, NULL, NULL);
}
