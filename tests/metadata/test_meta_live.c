/* test_meta_live.c: the liveness decision for storage servers
 * (meta_live.c), driven with a fake clock: heartbeats under load, a
 * server that is busy but talking, a metad that was busy itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "meta_live.h"

static const struct meta_live_limits LIM = {.suspect_ms = 1500,
                                            .down_ms = 5000};

/* Heartbeats at @t0, then every @gap ms, @n of them.  Returns the last. */
static uint64_t beat(struct meta_live *l, uint64_t t0, uint32_t gap, int n)
{
    uint64_t t = t0;

    for (int i = 0; i < n; i++, t += gap)
        meta_live_heartbeat(l, t);
    return t - gap;
}

/* Steady 1 s heartbeats: the configured threshold holds exactly. */
static void test_meta_live_steady_uses_configured_threshold(void **state)
{
    struct meta_live l = {0};
    uint64_t t;

    (void)state;
    t = beat(&l, 1000, 1000, 20);
    assert_int_equal(meta_live_suspect_after(&l, &LIM), 1500);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 1500), META_LIVE_UP);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 1501), META_LIVE_SUSPECT);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 5001), META_LIVE_DOWN);
}

/* Under load heartbeats come every 1.0 to 1.75 s (what was seen on a
 * 2-core host with two workloads and a repair): none of those gaps makes
 * the server suspect, while a silence well past them still does. */
static void test_meta_live_jittery_heartbeats_not_suspect(void **state)
{
    static const uint32_t gaps[] = {1000, 1750, 1300, 1600, 1050, 1700,
                                    1200, 1750, 1000, 1650, 1400, 1750};
    struct meta_live l = {0};
    uint64_t t = 1000;

    (void)state;
    meta_live_heartbeat(&l, t);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
            /* Just before the next heartbeat arrives. */
            assert_int_equal(meta_live_judge(&l, &LIM, t + gaps[i] - 1),
                             META_LIVE_UP);
            t += gaps[i];
            meta_live_heartbeat(&l, t);
        }
    }
    assert_true(meta_live_suspect_after(&l, &LIM) > 1750);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 4000), META_LIVE_SUSPECT);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 5001), META_LIVE_DOWN);
}

/* The threshold never passes the down limit, however irregular. */
static void test_meta_live_threshold_capped_by_down(void **state)
{
    struct meta_live l = {0};

    (void)state;
    meta_live_heartbeat(&l, 1000);
    meta_live_heartbeat(&l, 2000);
    meta_live_heartbeat(&l, 9000);
    meta_live_heartbeat(&l, 9100);
    assert_int_equal(meta_live_suspect_after(&l, &LIM), 5000);
}

/* A server whose heartbeats are late but which answers other requests
 * (replies, reports) on its connection is alive: any frame counts. */
static void test_meta_live_other_frames_keep_server_up(void **state)
{
    struct meta_live l = {0};
    uint64_t t;

    (void)state;
    t = beat(&l, 1000, 1000, 10);
    meta_live_seen(&l, t + 1400);
    meta_live_seen(&l, t + 2800);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 4000), META_LIVE_UP);
    /* An older stamp does not move the sign of life back. */
    meta_live_seen(&l, t + 100);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 4000), META_LIVE_UP);
    assert_int_equal(meta_live_judge(&l, &LIM, t + 4301), META_LIVE_SUSPECT);
    /* Only heartbeats feed the gap estimate. */
    assert_int_equal(meta_live_suspect_after(&l, &LIM), 1500);
}

/* No heartbeat yet but the registration: the configured threshold. */
static void test_meta_live_first_heartbeat(void **state)
{
    struct meta_live l = {0};

    (void)state;
    meta_live_heartbeat(&l, 500);
    assert_int_equal(meta_live_suspect_after(&l, &LIM), 1500);
    assert_int_equal(meta_live_judge(&l, &LIM, 2000), META_LIVE_UP);
    assert_int_equal(meta_live_judge(&l, &LIM, 2001), META_LIVE_SUSPECT);
}

/* A liveness check that ran late (metad's loop was busy) takes no
 * verdict; checks on time do. */
static void test_meta_live_late_check_skipped(void **state)
{
    uint64_t last = 0;

    (void)state;
    assert_false(meta_live_check_late(&last, 1000, 250)); /* the first */
    assert_false(meta_live_check_late(&last, 1250, 250));
    assert_false(meta_live_check_late(&last, 1740, 250)); /* a bit late */
    assert_true(meta_live_check_late(&last, 3500, 250));  /* stalled */
    assert_false(meta_live_check_late(&last, 3750, 250)); /* caught up */
}

int test_meta_live(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_live_steady_uses_configured_threshold),
        cmocka_unit_test(test_meta_live_jittery_heartbeats_not_suspect),
        cmocka_unit_test(test_meta_live_threshold_capped_by_down),
        cmocka_unit_test(test_meta_live_other_frames_keep_server_up),
        cmocka_unit_test(test_meta_live_first_heartbeat),
        cmocka_unit_test(test_meta_live_late_check_skipped),
    };
    return cmocka_run_group_tests_name("meta_live", tests, NULL, NULL);
}
