/* Tests for common/lat.c: bucket precision and quantiles, clamping,
 * concurrent recording, the stage registry and the dump format, and the
 * CPU-time line.  The registry is process-wide, so every test that uses
 * it starts from lat_stage_clear() in its setup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lat.h"

#define US 1000u /* ns */

static int setup_registry(void **state)
{
    (void)state;
    lat_stage_clear();
    return 0;
}

static int teardown_registry(void **state)
{
    (void)state;
    lat_stage_clear();
    return 0;
}

/* @est is a bucket upper bound for true value @v: never below it, and at
 * most one bucket width (<= v/8) above it once past bucket 0. */
static void assert_bound(uint64_t est, uint64_t v)
{
    assert_true(est >= v);
    if (v >= 1024)
        assert_true(est <= v + v / 8);
    else
        assert_int_equal(est, 1023);
}

static void test_lat_hist_quantile_empty(void **state)
{
    static struct lat_hist h;

    (void)state;
    assert_int_equal(lat_hist_count(&h), 0);
    assert_int_equal(lat_hist_quantile(&h, 0.0), 0);
    assert_int_equal(lat_hist_quantile(&h, 0.5), 0);
    assert_int_equal(lat_hist_quantile(&h, 1.0), 0);
}

static void test_lat_hist_quantile_uniform_1_to_1000_us(void **state)
{
    static struct lat_hist h;

    (void)state;
    for (uint64_t v = 1; v <= 1000; v++)
        lat_hist_record(&h, v * US);
    assert_int_equal(lat_hist_count(&h), 1000);
    assert_int_equal(lat_hist_sum_ns(&h), 500500 * US);
    assert_bound(lat_hist_quantile(&h, 0.50), 500 * US);
    assert_bound(lat_hist_quantile(&h, 0.90), 900 * US);
    assert_bound(lat_hist_quantile(&h, 0.99), 990 * US);
    assert_bound(lat_hist_quantile(&h, 1.0), 1000 * US);
    assert_bound(lat_hist_quantile(&h, 0.0), 1 * US);
    /* Out-of-range and NaN quantiles clamp to the ends. */
    assert_int_equal(lat_hist_quantile(&h, -1.0), lat_hist_quantile(&h, 0));
    assert_int_equal(lat_hist_quantile(&h, 2.0), lat_hist_quantile(&h, 1));
    assert_int_equal(lat_hist_quantile(&h, NAN), lat_hist_quantile(&h, 0));
}

/* Every duration, alone in a histogram, is bounded within 1/8. */
static void test_lat_hist_quantile_precision_sweep(void **state)
{
    static struct lat_hist h;

    (void)state;
    for (uint64_t v = 1; v < LAT_HIST_MAX_NS; v += v / 7 + 1) {
        lat_hist_reset(&h);
        lat_hist_record(&h, v);
        assert_bound(lat_hist_quantile(&h, 0.5), v);
        /* Both ends of v's power of two land in buckets that bound them. */
        uint64_t lo = UINT64_C(1) << (63 - __builtin_clzll(v));
        lat_hist_reset(&h);
        lat_hist_record(&h, lo);
        lat_hist_record(&h, 2 * lo - 1);
        assert_bound(lat_hist_quantile(&h, 0.0), lo);
        assert_bound(lat_hist_quantile(&h, 1.0), 2 * lo - 1);
    }
}

static void test_lat_hist_record_beyond_range_clamps(void **state)
{
    static struct lat_hist h;

    (void)state;
    lat_hist_record(&h, 100ull * 1000 * 1000 * 1000); /* 100 s */
    lat_hist_record(&h, UINT64_MAX / 4);
    lat_hist_record(&h, LAT_HIST_MAX_NS + 1);
    assert_int_equal(lat_hist_count(&h), 3);
    assert_int_equal(lat_hist_quantile(&h, 0.0), LAT_HIST_MAX_NS);
    assert_int_equal(lat_hist_quantile(&h, 1.0), LAT_HIST_MAX_NS);
    /* The largest in-range value shares the last bucket. */
    lat_hist_reset(&h);
    lat_hist_record(&h, LAT_HIST_MAX_NS);
    assert_int_equal(lat_hist_quantile(&h, 1.0), LAT_HIST_MAX_NS);
    /* 10 s is in range and bounded like any other value. */
    lat_hist_reset(&h);
    lat_hist_record(&h, 10ull * 1000 * 1000 * 1000);
    assert_bound(lat_hist_quantile(&h, 1.0), 10ull * 1000 * 1000 * 1000);
}

static void test_lat_hist_record_below_range(void **state)
{
    static struct lat_hist h;

    (void)state;
    lat_hist_record(&h, 0);
    lat_hist_record(&h, 1023);
    assert_int_equal(lat_hist_quantile(&h, 1.0), 1023);
    lat_hist_record(&h, 1024);
    assert_bound(lat_hist_quantile(&h, 1.0), 1024);
}

static void test_lat_hist_reset_empties(void **state)
{
    static struct lat_hist h;

    (void)state;
    lat_hist_record(&h, 5 * US);
    lat_hist_reset(&h);
    assert_int_equal(lat_hist_count(&h), 0);
    assert_int_equal(lat_hist_sum_ns(&h), 0);
    assert_int_equal(lat_hist_quantile(&h, 0.5), 0);
}

enum { PER_THREAD = 200000 };

static void *record_many(void *arg)
{
    struct lat_hist *h = arg;

    for (uint64_t i = 0; i < PER_THREAD; i++)
        lat_hist_record(h, (i % 5000) * US);
    return NULL;
}

static void test_lat_hist_record_two_threads_exact_count(void **state)
{
    static struct lat_hist h;
    pthread_t t[2];
    uint64_t buckets = 0;

    (void)state;
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_many, &h), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(lat_hist_count(&h), 2 * PER_THREAD);
    /* Each thread sums 0..4999 us, PER_THREAD / 5000 times. */
    assert_int_equal(lat_hist_sum_ns(&h),
                     2ull * (PER_THREAD / 5000) * (4999ull * 5000 / 2) * US);
    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++)
        buckets += atomic_load(&h.buckets[i]);
    assert_int_equal(buckets, 2 * PER_THREAD);
}

static void test_lat_hist_record_since_returns_now(void **state)
{
    static struct lat_hist h;

    (void)state;
    uint64_t t0 = lat_now_ns();
    uint64_t t1 = lat_hist_record_since(&h, t0);
    assert_true(t1 >= t0);
    assert_true(lat_now_ns() >= t1);
    assert_int_equal(lat_hist_count(&h), 1);
    assert_int_equal(lat_hist_sum_ns(&h), t1 - t0);
    /* A start in the future (clock misuse) counts as 0, not 2^64 - x. */
    lat_hist_record_since(&h, UINT64_MAX);
    assert_int_equal(lat_hist_count(&h), 2);
    assert_int_equal(lat_hist_sum_ns(&h), t1 - t0);
}

static void test_lat_stage_register_errors(void **state)
{
    static struct lat_stage a = {.name = "a"}, a2 = {.name = "a"};
    static struct lat_stage noname;
    static struct lat_stage many[LAT_MAX_STAGES];
    static char names[LAT_MAX_STAGES][16];

    (void)state;
    assert_int_equal(lat_stage_register(NULL), -EINVAL);
    assert_int_equal(lat_stage_register(&noname), -EINVAL);
    assert_int_equal(lat_stage_register(&a), 0);
    assert_int_equal(lat_stage_register(&a), -EEXIST);
    assert_int_equal(lat_stage_register(&a2), -EEXIST);
    for (int i = 0; i < LAT_MAX_STAGES - 1; i++) {
        snprintf(names[i], sizeof(names[i]), "s%d", i);
        many[i].name = names[i];
        assert_int_equal(lat_stage_register(&many[i]), 0);
    }
    many[LAT_MAX_STAGES - 1].name = "one-too-many";
    assert_int_equal(lat_stage_register(&many[LAT_MAX_STAGES - 1]), -ENOSPC);
}

/* Parsed "stage=..." line. */
struct line {
    char name[32];
    unsigned long long count;
    double mean, p50, p90, p99, max;
};

/* Split @buf into lines and parse each; returns how many. */
static int parse_dump(char *buf, struct line *out, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *l = strtok_r(buf, "\n", &save); l != NULL;
         l = strtok_r(NULL, "\n", &save)) {
        assert_true(n < max);
        struct line *p = &out[n++];
        int k = sscanf(l,
                       "stage=%31s count=%llu mean_us=%lf p50_us=%lf "
                       "p90_us=%lf p99_us=%lf max_bucket_us=%lf",
                       p->name, &p->count, &p->mean, &p->p50, &p->p90, &p->p99,
                       &p->max);
        assert_int_equal(k, 7);
    }
    return n;
}

/* Run lat_dump() or lat_dump_interval() into a memory stream. */
static int dump_to(char **buf, bool interval)
{
    size_t len;
    FILE *f = open_memstream(buf, &len);

    assert_non_null(f);
    int rc = interval ? lat_dump_interval(f) : lat_dump(f);
    assert_int_equal(fclose(f), 0);
    return rc;
}

static void test_lat_dump_prints_nonempty_stages(void **state)
{
    static struct lat_stage st_read = {.name = "read"};
    static struct lat_stage st_idle = {.name = "idle"};
    static struct lat_stage st_write = {.name = "write"};
    struct line l[4];
    char *buf = NULL;

    (void)state;
    assert_int_equal(lat_stage_register(&st_read), 0);
    assert_int_equal(lat_stage_register(&st_idle), 0);
    assert_int_equal(lat_stage_register(&st_write), 0);
    for (uint64_t v = 1; v <= 1000; v++)
        lat_hist_record(&st_read.h, v * US);
    lat_hist_record(&st_write.h, 2000 * US);
    lat_hist_record(&st_write.h, 4000 * US);

    assert_int_equal(dump_to(&buf, false), 2);
    assert_int_equal(parse_dump(buf, l, 4), 2);
    free(buf);

    assert_string_equal(l[0].name, "read");
    assert_int_equal(l[0].count, 1000);
    assert_true(l[0].mean > 500.4 && l[0].mean < 500.6);
    assert_true(l[0].p50 >= 500 && l[0].p50 <= 500 * 1.125);
    assert_true(l[0].p90 >= 900 && l[0].p90 <= 900 * 1.125);
    assert_true(l[0].p99 >= 990 && l[0].p99 <= 990 * 1.125);
    assert_true(l[0].max >= 1000 && l[0].max <= 1000 * 1.125);
    assert_string_equal(l[1].name, "write");
    assert_int_equal(l[1].count, 2);
    assert_true(l[1].mean > 2999.9 && l[1].mean < 3000.1);
    assert_true(l[1].max >= 4000 && l[1].max <= 4500);

    /* A plain dump leaves the counters alone. */
    assert_int_equal(lat_hist_count(&st_read.h), 1000);
    assert_int_equal(lat_hist_count(&st_write.h), 2);
}

static void test_lat_dump_interval_prints_only_what_is_new(void **state)
{
    static struct lat_stage s = {.name = "commit"};
    struct line l[2];
    char *buf = NULL;

    (void)state;
    assert_int_equal(lat_stage_register(&s), 0);
    lat_hist_record(&s.h, 7 * US);
    assert_int_equal(dump_to(&buf, true), 1);
    assert_int_equal(parse_dump(buf, l, 2), 1);
    free(buf);
    assert_string_equal(l[0].name, "commit");
    assert_int_equal(l[0].count, 1);

    /* Nothing new: the stage is skipped, but the histogram keeps its
     * count for monotonic readers. */
    assert_int_equal(dump_to(&buf, true), 0);
    assert_string_equal(buf, "");
    free(buf);
    assert_int_equal(lat_hist_count(&s.h), 1);
    assert_int_equal(lat_hist_sum_ns(&s.h), 7 * US);

    /* The next interval holds only the new durations. */
    lat_hist_record(&s.h, 3000 * US);
    lat_hist_record(&s.h, 3000 * US);
    assert_int_equal(dump_to(&buf, true), 1);
    assert_int_equal(parse_dump(buf, l, 2), 1);
    free(buf);
    assert_int_equal(l[0].count, 2);
    assert_true(l[0].mean > 2999.9 && l[0].mean < 3000.1);
    assert_true(l[0].p50 >= 3000 && l[0].p50 <= 3000 * 1.125);

    /* A plain dump still shows everything since start. */
    assert_int_equal(dump_to(&buf, false), 1);
    assert_int_equal(parse_dump(buf, l, 2), 1);
    free(buf);
    assert_int_equal(l[0].count, 3);
}

static void test_lat_dump_no_stages(void **state)
{
    char *buf = NULL;

    (void)state;
    assert_int_equal(dump_to(&buf, false), 0);
    assert_string_equal(buf, "");
    free(buf);
}

/* A stream opened read-only fails every write; dump_interval still moves
 * the interval on. */
static void test_lat_dump_write_error(void **state)
{
    static struct lat_stage s = {.name = "err"};
    FILE *f = fopen("/dev/null", "r");

    (void)state;
    assert_non_null(f);
    assert_int_equal(lat_stage_register(&s), 0);
    lat_hist_record(&s.h, 3 * US);
    assert_true(lat_dump(f) < 0);
    assert_int_equal(lat_hist_count(&s.h), 1);
    assert_true(lat_dump_interval(f) < 0);
    assert_int_equal(lat_hist_count(&s.h), 1);
    assert_int_equal(s.last.count, 1);
    assert_true(lat_cpu_line(f) < 0);
    fclose(f);
}

static void test_lat_cpu_line_format(void **state)
{
    unsigned long long u, s, t;
    uint64_t u0, s0;
    char *buf = NULL;
    size_t len;

    (void)state;
    assert_int_equal(lat_cpu_get(&u0, &s0), 0);
    /* Burn some CPU so the reading moves. */
    volatile uint64_t x = 0;
    for (uint64_t i = 0; i < 20000000; i++)
        x += i;
    assert_true(x > 0);
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(lat_cpu_line(f), 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(
        sscanf(buf, "cpu_user_us=%llu cpu_sys_us=%llu cpu_us=%llu", &u, &s, &t),
        3);
    assert_int_equal(buf[len - 1], '\n');
    free(buf);
    assert_int_equal(t, u + s);
    assert_true(u + s > u0 + s0);
    assert_true(u >= u0 && s >= s0);
}

int test_lat(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lat_hist_quantile_empty),
        cmocka_unit_test(test_lat_hist_quantile_uniform_1_to_1000_us),
        cmocka_unit_test(test_lat_hist_quantile_precision_sweep),
        cmocka_unit_test(test_lat_hist_record_beyond_range_clamps),
        cmocka_unit_test(test_lat_hist_record_below_range),
        cmocka_unit_test(test_lat_hist_reset_empties),
        cmocka_unit_test(test_lat_hist_record_two_threads_exact_count),
        cmocka_unit_test(test_lat_hist_record_since_returns_now),
        cmocka_unit_test_setup_teardown(test_lat_stage_register_errors,
                                        setup_registry, teardown_registry),
        cmocka_unit_test_setup_teardown(test_lat_dump_prints_nonempty_stages,
                                        setup_registry, teardown_registry),
        cmocka_unit_test_setup_teardown(
            test_lat_dump_interval_prints_only_what_is_new, setup_registry,
            teardown_registry),
        cmocka_unit_test_setup_teardown(test_lat_dump_no_stages, setup_registry,
                                        teardown_registry),
        cmocka_unit_test_setup_teardown(test_lat_dump_write_error,
                                        setup_registry, teardown_registry),
        cmocka_unit_test(test_lat_cpu_line_format),
    };
    return cmocka_run_group_tests_name("lat", tests, NULL, NULL);
}
