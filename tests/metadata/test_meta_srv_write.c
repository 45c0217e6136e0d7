/* test_meta_srv_write.c: meta_srv_write_plan(), what a CHUNK_WRITE_BEGIN
 * attempt or a snapshot freeze's internal bump does with its slot
 * (metadata/meta_srv_write.c). */
#include <errno.h>
#include <setjmp.h> /* cmocka.h needs it first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "meta_srv.h"

/* An unshared chunk with three replicas, all up, no lease. */
static struct meta_srv_wfacts chunk3(void)
{
    return (struct meta_srv_wfacts){
        .refs = 1, .nreplicas = 3, .nreachable = 3, .all_up = true};
}

/* Issue 13: the clone of a snapshot froze the snapshot, whose chunks still
 * had leases, and the internal bump was refused like a user's write. */
static void test_meta_srv_write_plan_freeze_of_snapshot_is_nothing(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    f.internal = true;
    f.readonly = true;
    f.lease_live = true;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_NONE);
    f.refs = 2; /* shared with its origin */
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_NONE);
    /* Nothing is asked of the servers, so none needs to be reachable. */
    f.refs = 1;
    f.nreachable = 0;
    f.all_up = false;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_NONE);
}

static void test_meta_srv_write_plan_user_write_to_snapshot_erofs(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    f.readonly = true;
    assert_int_equal(meta_srv_write_plan(&f), -EROFS);
    f.hole = true;
    assert_int_equal(meta_srv_write_plan(&f), -EROFS);
}

static void
test_meta_srv_write_plan_freeze_of_shared_chunk_is_nothing(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    f.internal = true;
    f.refs = 3;
    f.lease_live = true;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_NONE);
}

static void test_meta_srv_write_plan_freeze_bumps_leased_chunk(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    f.internal = true;
    f.lease_live = true; /* a freeze never extends a lease */
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_BUMP);
    f.nreachable = 0;
    assert_int_equal(meta_srv_write_plan(&f), -EIO);
}

static void test_meta_srv_write_plan_hole(void **state)
{
    struct meta_srv_wfacts f = {.hole = true};

    (void)state;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_ALLOCATE);
    f.internal = true;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_NONE);
}

static void test_meta_srv_write_plan_live_lease(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_BUMP);
    f.lease_live = true;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_EXTEND);
    f.all_up = false; /* a replica left: bump without it */
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_BUMP);
    f.nreachable = 0;
    assert_int_equal(meta_srv_write_plan(&f), -EIO);
}

static void test_meta_srv_write_plan_shared_copies(void **state)
{
    struct meta_srv_wfacts f = chunk3();

    (void)state;
    f.refs = 2;
    f.lease_live = true; /* a lease never lets a writer into a shared chunk */
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_COPY);
    f.copying = true;
    assert_int_equal(meta_srv_write_plan(&f), META_SRV_WPLAN_PARK);
    f.nreachable = 0;
    assert_int_equal(meta_srv_write_plan(&f), -EIO);
}

int test_meta_srv_write(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_meta_srv_write_plan_freeze_of_snapshot_is_nothing),
        cmocka_unit_test(test_meta_srv_write_plan_user_write_to_snapshot_erofs),
        cmocka_unit_test(
            test_meta_srv_write_plan_freeze_of_shared_chunk_is_nothing),
        cmocka_unit_test(test_meta_srv_write_plan_freeze_bumps_leased_chunk),
        cmocka_unit_test(test_meta_srv_write_plan_hole),
        cmocka_unit_test(test_meta_srv_write_plan_live_lease),
        cmocka_unit_test(test_meta_srv_write_plan_shared_copies),
    };
    return cmocka_run_group_tests_name("meta_srv_write", tests, NULL, NULL);
}
