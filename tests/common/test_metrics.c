/* Tests for common/metrics.c: the family header, label and help escaping,
 * number formatting, latency histograms as cumulative Prometheus buckets
 * with +Inf, _sum and _count, and the stage registry rendered without
 * being reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lat.h"
#include "metrics.h"

static void test_metrics_family_header(void **state)
{
    struct metrics_buf b;

    (void)state;
    metrics_buf_init(&b);
    metrics_u64(&b, "tessera_x_total", METRICS_COUNTER, "Things done.", 42);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.p, "# HELP tessera_x_total Things done.\n"
                             "# TYPE tessera_x_total counter\n"
                             "tessera_x_total 42\n");
    assert_int_equal(b.len, strlen(b.p));
    metrics_buf_free(&b);
    assert_null(b.p);
}

static void test_metrics_family_help_escaped(void **state)
{
    struct metrics_buf b;

    (void)state;
    metrics_buf_init(&b);
    metrics_family(&b, "g", METRICS_GAUGE, "a\\b\nc \"q\"");
    /* HELP escapes backslash and newline, not the double quote. */
    assert_string_equal(b.p, "# HELP g a\\\\b\\nc \"q\"\n# TYPE g gauge\n");
    metrics_buf_free(&b);
}

static void test_metrics_sample_labels_escaped(void **state)
{
    struct metrics_buf b;
    struct metrics_label l[] = {{"op", "READ"}, {"path", "a\"b\\c\nd"}};

    (void)state;
    metrics_buf_init(&b);
    metrics_sample_u64(&b, "m", l, 2, 7);
    assert_string_equal(b.p, "m{op=\"READ\",path=\"a\\\"b\\\\c\\nd\"} 7\n");
    metrics_buf_free(&b);
}

static void test_metrics_sample_numbers(void **state)
{
    struct metrics_buf b;

    (void)state;
    metrics_buf_init(&b);
    metrics_sample_u64(&b, "big", NULL, 0, UINT64_MAX);
    metrics_sample_f64(&b, "half", NULL, 0, 0.5);
    metrics_sample_f64(&b, "third", NULL, 0, 1.0 / 3.0);
    assert_string_equal(b.p, "big 18446744073709551615\n"
                             "half 0.5\n"
                             "third 0.3333333333333333\n");
    /* The shortest text that reads back as the same double. */
    assert_true(strtod(strstr(b.p, "third ") + 6, NULL) == 1.0 / 3.0);
    metrics_buf_free(&b);
}

/* Parsed samples of one metrics_lat_hist() output. */
struct hist_out {
    int nbuckets;
    double le[64];
    unsigned long long cum[64];
    unsigned long long inf, count;
    double sum;
    int inf_seen, sum_seen, count_seen;
};

static void parse_hist(const char *text, const char *name, const char *label,
                       struct hist_out *o)
{
    char prefix_b[128], prefix_s[128], prefix_c[128];
    char *copy = strdup(text), *save = NULL;

    memset(o, 0, sizeof(*o));
    snprintf(prefix_b, sizeof(prefix_b), "%s_bucket{%s,le=\"", name, label);
    snprintf(prefix_s, sizeof(prefix_s), "%s_sum{%s} ", name, label);
    snprintf(prefix_c, sizeof(prefix_c), "%s_count{%s} ", name, label);
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, prefix_b, strlen(prefix_b)) == 0) {
            char *le = line + strlen(prefix_b);
            char *end = strchr(le, '"');
            assert_non_null(end);
            unsigned long long v = strtoull(end + 3, NULL, 10);
            assert_memory_equal(end, "\"} ", 3);
            if (strncmp(le, "+Inf\"", 5) == 0) {
                o->inf = v;
                o->inf_seen++;
            } else {
                assert_false(o->inf_seen); /* +Inf comes last */
                assert_true(o->nbuckets < 64);
                o->le[o->nbuckets] = strtod(le, NULL);
                o->cum[o->nbuckets++] = v;
            }
        } else if (strncmp(line, prefix_s, strlen(prefix_s)) == 0) {
            o->sum = strtod(line + strlen(prefix_s), NULL);
            o->sum_seen++;
        } else if (strncmp(line, prefix_c, strlen(prefix_c)) == 0) {
            o->count = strtoull(line + strlen(prefix_c), NULL, 10);
            o->count_seen++;
        }
    }
    free(copy);
}

static void test_metrics_lat_hist_cumulative(void **state)
{
    static struct lat_hist h;
    struct metrics_label l = {"stage", "s"};
    struct metrics_buf b;
    struct hist_out o;

    (void)state;
    lat_hist_record(&h, 500);         /* bucket 0: <= 1023 ns */
    lat_hist_record(&h, 1500);        /* <= 2047 ns */
    lat_hist_record(&h, 1500);        /* <= 2047 ns */
    lat_hist_record(&h, 3000000);     /* 3 ms: <= 4194303 ns */
    lat_hist_record(&h, 60000000000); /* 60 s: clamped, only in +Inf */
    metrics_buf_init(&b);
    metrics_lat_hist(&b, "d_seconds", &l, 1, &h);
    assert_int_equal(b.err, 0);
    parse_hist(b.p, "d_seconds", "stage=\"s\"", &o);

    assert_int_equal(o.nbuckets, METRICS_LAT_BOUNDS);
    assert_int_equal(o.inf_seen, 1);
    assert_int_equal(o.sum_seen, 1);
    assert_int_equal(o.count_seen, 1);
    /* Bounds are 2^k - 1 ns, increasing; counts never decrease. */
    assert_true(o.le[0] == 1023e-9);
    assert_true(o.le[1] == 2047e-9);
    assert_true(o.le[METRICS_LAT_BOUNDS - 1] == 8589934591e-9);
    for (int i = 1; i < o.nbuckets; i++) {
        assert_true(o.le[i] > o.le[i - 1]);
        assert_true(o.cum[i] >= o.cum[i - 1]);
    }
    assert_int_equal(o.cum[0], 1);
    assert_int_equal(o.cum[1], 3);
    assert_int_equal(o.cum[11], 3);                     /* <= 2^21-1 ns */
    assert_int_equal(o.cum[12], 4);                     /* <= 2^22-1 ns */
    assert_int_equal(o.cum[METRICS_LAT_BOUNDS - 1], 4); /* 8.6 s */
    assert_int_equal(o.inf, 5);
    assert_int_equal(o.count, 5);
    assert_true(o.sum > 60.0030034 && o.sum < 60.0030036);
    /* Reading leaves the histogram as it was. */
    assert_int_equal(lat_hist_count(&h), 5);
    metrics_buf_free(&b);
}

static void test_metrics_lat_hist_empty_no_labels(void **state)
{
    static struct lat_hist h;
    struct metrics_buf b;

    (void)state;
    metrics_buf_init(&b);
    metrics_lat_hist(&b, "e", NULL, 0, &h);
    assert_non_null(strstr(b.p, "e_bucket{le=\"1.023e-06\"} 0\n"));
    assert_non_null(strstr(b.p, "e_bucket{le=\"+Inf\"} 0\ne_sum 0\n"
                                "e_count 0\n"));
    metrics_buf_free(&b);
}

static void test_metrics_lat_stages_renders_without_reset(void **state)
{
    static struct lat_stage a = {.name = "nbd.read.fast"};
    struct metrics_buf b;

    (void)state;
    lat_stage_clear();
    metrics_buf_init(&b);
    metrics_lat_stages(&b);
    assert_int_equal(b.len, 0); /* no stage, no family */

    assert_int_equal(lat_stage_register(&a), 0);
    lat_hist_record(&a.h, 5000);
    metrics_lat_stages(&b);
    assert_non_null(strstr(b.p, "# TYPE tessera_stage_duration_seconds "
                                "histogram\n"));
    assert_non_null(strstr(b.p, "tessera_stage_duration_seconds_count{"
                                "stage=\"nbd.read.fast\"} 1\n"));
    assert_int_equal(lat_hist_count(&a.h), 1);
    lat_stage_clear();
    metrics_buf_free(&b);
}

static void test_metrics_process_cpu_and_start_time(void **state)
{
    struct metrics_buf b;
    double cpu = -1;

    (void)state;
    metrics_buf_init(&b);
    metrics_process(&b);
    const char *p = strstr(b.p, "\nprocess_cpu_seconds_total ");
    assert_non_null(p);
    cpu = strtod(p + strlen("\nprocess_cpu_seconds_total "), NULL);
    assert_true(cpu > 0);
    /* This test process started within the last ten minutes. */
    p = strstr(b.p, "\nprocess_start_time_seconds ");
    assert_non_null(p);
    double start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    assert_true(start <= (double)time(NULL) + 1);
    assert_true(start > (double)time(NULL) - 600);
    metrics_buf_free(&b);
}

int test_metrics(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_family_header),
        cmocka_unit_test(test_metrics_family_help_escaped),
        cmocka_unit_test(test_metrics_sample_labels_escaped),
        cmocka_unit_test(test_metrics_sample_numbers),
        cmocka_unit_test(test_metrics_lat_hist_cumulative),
        cmocka_unit_test(test_metrics_lat_hist_empty_no_labels),
        cmocka_unit_test(test_metrics_lat_stages_renders_without_reset),
        cmocka_unit_test(test_metrics_process_cpu_and_start_time),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
