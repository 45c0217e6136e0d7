/* Tests for client/cl_reported.c: one report per damaged replica however
 * many readers meet it, again after the claim's time or a failed send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include "cl_internal.h"

static void test_cl_reported_claim_once(void **state)
{
    struct cl_reported r;

    (void)state;
    cl_reported_init(&r);
    assert_true(cl_reported_claim(&r, 2, 77, 3, 1000));
    for (int i = 0; i < 50; i++)
        assert_false(cl_reported_claim(&r, 2, 77, 3, 1000 + (uint64_t)i));
    /* Another server, chunk or version is another report. */
    assert_true(cl_reported_claim(&r, 1, 77, 3, 1000));
    assert_true(cl_reported_claim(&r, 2, 78, 3, 1000));
    assert_true(cl_reported_claim(&r, 2, 77, 4, 1000));
    cl_reported_destroy(&r);
}

static void test_cl_reported_claim_expires(void **state)
{
    struct cl_reported r;

    (void)state;
    cl_reported_init(&r);
    assert_true(cl_reported_claim(&r, 2, 77, 3, 1000));
    assert_false(cl_reported_claim(&r, 2, 77, 3, 1000 + CL_REPORTED_MS - 1));
    assert_true(cl_reported_claim(&r, 2, 77, 3, 1000 + CL_REPORTED_MS));
    cl_reported_destroy(&r);
}

static void test_cl_reported_drop_lets_next_report(void **state)
{
    struct cl_reported r;

    (void)state;
    cl_reported_init(&r);
    assert_true(cl_reported_claim(&r, 2, 77, 3, 1000));
    cl_reported_drop(&r, 2, 77, 3);
    assert_true(cl_reported_claim(&r, 2, 77, 3, 1001));
    cl_reported_destroy(&r);
}

/* A full table makes room by forgetting the oldest claim. */
static void test_cl_reported_full_forgets_oldest(void **state)
{
    struct cl_reported r;

    (void)state;
    cl_reported_init(&r);
    for (uint64_t i = 0; i < CL_REPORTED_MAX; i++)
        assert_true(cl_reported_claim(&r, 1, 100 + i, 1, 1000 + i));
    assert_true(cl_reported_claim(&r, 1, 999, 1, 2000));
    assert_true(cl_reported_claim(&r, 1, 100, 1, 2001)); /* was oldest */
    assert_false(cl_reported_claim(&r, 1, 999, 1, 2002));
    cl_reported_destroy(&r);
}

struct racer {
    struct cl_reported *r;
    int claims;
};

static void *race(void *arg)
{
    struct racer *x = arg;

    for (int i = 0; i < 1000; i++)
        x->claims += cl_reported_claim(x->r, 5, 4242, 7, 5000);
    return NULL;
}

/* Sixteen threads at once: exactly one claim. */
static void test_cl_reported_claim_parallel(void **state)
{
    struct cl_reported r;
    pthread_t t[16];
    struct racer x[16];
    int total = 0;

    (void)state;
    cl_reported_init(&r);
    for (int i = 0; i < 16; i++) {
        x[i].r = &r;
        x[i].claims = 0;
        assert_int_equal(pthread_create(&t[i], NULL, race, &x[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        total += x[i].claims;
    }
    assert_int_equal(total, 1);
    cl_reported_destroy(&r);
}

int test_cl_reported(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_reported_claim_once),
        cmocka_unit_test(test_cl_reported_claim_expires),
        cmocka_unit_test(test_cl_reported_drop_lets_next_report),
        cmocka_unit_test(test_cl_reported_full_forgets_oldest),
        cmocka_unit_test(test_cl_reported_claim_parallel),
    };
    return cmocka_run_group_tests_name("cl_reported", tests, NULL, NULL);
}
