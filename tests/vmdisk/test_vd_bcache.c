/* Tests for vmdisk/vd_bcache.c: the block cache's pages, eviction, and the
 * rules that keep it from ever holding bytes the servers do not: fills
 * overlapped by a write, overlapping writes in flight, failed writes,
 * drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vd_bcache.h"

#define PG VD_BCACHE_PAGE

static uint8_t *pattern(size_t len, uint8_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7);
    return p;
}

static struct vd_bcache *cache(uint64_t pages)
{
    struct vd_bcache *b;
    assert_int_equal(vd_bcache_new(pages * PG, &b), 0);
    return b;
}

static void test_vd_bcache_new_needs_a_page(void **state)
{
    struct vd_bcache *b;
    (void)state;
    assert_int_equal(vd_bcache_new(PG - 1, &b), -EINVAL);
    vd_bcache_free(NULL);
}

static void test_vd_bcache_fill_then_hit(void **state)
{
    struct vd_bcache *b = cache(16);
    uint8_t *data = pattern(4 * PG, 1), out[4 * PG];
    struct vd_bcache_stats st;
    (void)state;

    assert_false(vd_bcache_read(b, 8 * PG, 4 * PG, out));
    uint64_t t = vd_bcache_read_begin(b);
    assert_true(t != 0);
    vd_bcache_fill(b, t, 8 * PG, 4 * PG, data);
    memset(out, 0, sizeof(out));
    assert_true(vd_bcache_read(b, 8 * PG, 4 * PG, out));
    assert_memory_equal(out, data, 4 * PG);
    /* An unaligned range inside the cached pages. */
    assert_true(vd_bcache_read(b, 8 * PG + 100, 2 * PG, out));
    assert_memory_equal(out, data + 100, 2 * PG);
    /* One page outside: a miss. */
    assert_false(vd_bcache_read(b, 11 * PG + 1, PG, out));
    vd_bcache_get_stats(b, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.pages, 4);
    free(data);
    vd_bcache_free(b);
}

static void test_vd_bcache_fill_keeps_whole_pages_only(void **state)
{
    struct vd_bcache *b = cache(16);
    uint8_t *data = pattern(3 * PG, 2), out[PG];
    struct vd_bcache_stats st;
    (void)state;

    /* [PG/2, 3.5 PG) covers pages 1 and 2 whole, pages 0 and 3 in part. */
    vd_bcache_fill(b, vd_bcache_read_begin(b), PG / 2, 3 * PG, data);
    vd_bcache_get_stats(b, &st);
    assert_int_equal(st.pages, 2);
    assert_false(vd_bcache_read(b, 0, PG, out));
    assert_false(vd_bcache_read(b, 3 * PG, PG, out));
    assert_true(vd_bcache_read(b, PG, PG, out));
    assert_memory_equal(out, data + PG / 2, PG);
    free(data);
    vd_bcache_free(b);
}

static void test_vd_bcache_fill_overlapped_by_write_is_skipped(void **state)
{
    struct vd_bcache *b = cache(16);
    uint8_t *old = pattern(PG, 3), *new = pattern(PG, 4), out[PG];
    struct vd_bcache_stats st;
    (void)state;

    uint64_t t = vd_bcache_read_begin(b); /* the read goes out */
    vd_bcache_write_begin(b, 0, PG);      /* a write passes it */
    vd_bcache_write_end(b, 0, PG, new, true);
    vd_bcache_fill(b, t, 0, PG, old); /* the read comes back late */
    assert_true(vd_bcache_read(b, 0, PG, out));
    assert_memory_equal(out, new, PG); /* the write's bytes, not the read's */
    vd_bcache_get_stats(b, &st);
    assert_int_equal(st.fills_skipped, 1);

    /* While a write is in flight a read gets no ticket at all. */
    vd_bcache_write_begin(b, 5 * PG, PG);
    assert_int_equal(vd_bcache_read_begin(b), 0);
    vd_bcache_fill(b, 0, 9 * PG, PG, old);
    assert_false(vd_bcache_read(b, 9 * PG, PG, out));
    vd_bcache_write_end(b, 5 * PG, PG, NULL, false);
    assert_true(vd_bcache_read_begin(b) != 0);
    free(old);
    free(new);
    vd_bcache_free(b);
}

static void test_vd_bcache_write_replaces_and_failure_drops(void **state)
{
    struct vd_bcache *b = cache(16);
    uint8_t *a = pattern(2 * PG, 5), *c = pattern(2 * PG, 6), out[2 * PG];
    (void)state;

    vd_bcache_fill(b, vd_bcache_read_begin(b), 0, 2 * PG, a);
    vd_bcache_write_begin(b, 0, 2 * PG);
    /* In flight: the old bytes are gone already. */
    assert_false(vd_bcache_read(b, 0, PG, out));
    vd_bcache_write_end(b, 0, 2 * PG, c, true);
    assert_true(vd_bcache_read(b, 0, 2 * PG, out));
    assert_memory_equal(out, c, 2 * PG);

    /* A failed write, or a trim (no bytes): the range stays uncached. */
    vd_bcache_write_begin(b, PG, PG);
    vd_bcache_write_end(b, PG, PG, a, false);
    assert_false(vd_bcache_read(b, PG, PG, out));
    assert_true(vd_bcache_read(b, 0, PG, out));
    vd_bcache_write_begin(b, 0, 10 * PG);
    vd_bcache_write_end(b, 0, 10 * PG, NULL, true);
    assert_false(vd_bcache_read(b, 0, PG, out));
    free(a);
    free(c);
    vd_bcache_free(b);
}

static void test_vd_bcache_overlapping_writes_keep_nothing(void **state)
{
    struct vd_bcache *b = cache(16);
    uint8_t *x = pattern(2 * PG, 7), *y = pattern(PG, 8), out[PG];
    (void)state;

    /* x on pages 0-1 and y on page 1 fly together: the servers may apply
     * them in either order, so neither may be kept, whichever ends
     * first. */
    vd_bcache_write_begin(b, 0, 2 * PG);
    vd_bcache_write_begin(b, PG, PG);
    vd_bcache_write_end(b, PG, PG, y, true);
    vd_bcache_write_end(b, 0, 2 * PG, x, true);
    assert_false(vd_bcache_read(b, PG, PG, out));
    assert_false(vd_bcache_read(b, 0, PG, out));

    /* A write on other pages meanwhile does not stop one from keeping. */
    vd_bcache_write_begin(b, 0, PG);
    vd_bcache_write_begin(b, 8 * PG, PG);
    vd_bcache_write_end(b, 0, PG, y, true);
    vd_bcache_write_end(b, 8 * PG, PG, y, true);
    assert_true(vd_bcache_read(b, 0, PG, out));
    assert_memory_equal(out, y, PG);
    assert_true(vd_bcache_read(b, 8 * PG, PG, out));
    free(x);
    free(y);
    vd_bcache_free(b);
}

static void test_vd_bcache_evicts_least_recently_used(void **state)
{
    struct vd_bcache *b = cache(2);
    uint8_t *d = pattern(3 * PG, 9), out[PG];
    struct vd_bcache_stats st;
    (void)state;

    vd_bcache_fill(b, vd_bcache_read_begin(b), 0, PG, d);
    vd_bcache_fill(b, vd_bcache_read_begin(b), PG, PG, d + PG);
    assert_true(vd_bcache_read(b, 0, PG, out)); /* page 0 is now recent */
    vd_bcache_fill(b, vd_bcache_read_begin(b), 2 * PG, PG, d + 2 * PG);
    assert_false(vd_bcache_read(b, PG, PG, out)); /* page 1 went */
    assert_true(vd_bcache_read(b, 0, PG, out));
    assert_memory_equal(out, d, PG);
    assert_true(vd_bcache_read(b, 2 * PG, PG, out));
    assert_memory_equal(out, d + 2 * PG, PG);
    vd_bcache_get_stats(b, &st);
    assert_int_equal(st.pages, 2);
    assert_int_equal(st.max_pages, 2);
    free(d);
    vd_bcache_free(b);
}

static void test_vd_bcache_drop_all_voids_tickets(void **state)
{
    struct vd_bcache *b = cache(8);
    uint8_t *d = pattern(2 * PG, 10), out[PG];
    (void)state;

    vd_bcache_fill(b, vd_bcache_read_begin(b), 0, PG, d);
    uint64_t t = vd_bcache_read_begin(b);
    vd_bcache_drop_all(b);
    assert_false(vd_bcache_read(b, 0, PG, out));
    vd_bcache_fill(b, t, PG, PG, d + PG); /* read sent before the drop */
    assert_false(vd_bcache_read(b, PG, PG, out));
    free(d);
    vd_bcache_free(b);
}

static void test_vd_bcache_long_read_is_not_served(void **state)
{
    struct vd_bcache *b = cache(64);
    uint8_t *d = pattern(32 * PG, 11), *out = malloc(32 * PG);
    (void)state;

    assert_non_null(out);
    vd_bcache_fill(b, vd_bcache_read_begin(b), 0, 32 * PG, d);
    assert_true(vd_bcache_read(b, 0, 16 * PG, out));
    assert_memory_equal(out, d, 16 * PG);
    assert_false(vd_bcache_read(b, 0, 32 * PG, out)); /* goes to servers */
    free(out);
    free(d);
    vd_bcache_free(b);
}

/* The process totals move with every cache and give its pages back when
 * it goes; two caches add up. */
static void test_vd_bcache_get_totals_sum_every_cache(void **state)
{
    struct vd_bcache *a = cache(8), *b = cache(8);
    uint8_t *data = pattern(3 * PG, 5), out[PG];
    struct vd_bcache_stats t0, t1, t2;
    (void)state;

    vd_bcache_get_totals(&t0);
    vd_bcache_fill(a, vd_bcache_read_begin(a), 0, 2 * PG, data);
    vd_bcache_fill(b, vd_bcache_read_begin(b), 0, 3 * PG, data);
    assert_true(vd_bcache_read(a, 0, PG, out));
    assert_true(vd_bcache_read(b, PG, PG, out));
    assert_false(vd_bcache_read(b, 5 * PG, PG, out));
    vd_bcache_get_totals(&t1);
    assert_int_equal(t1.hits - t0.hits, 2);
    assert_int_equal(t1.misses - t0.misses, 1);
    assert_int_equal(t1.pages - t0.pages, 5);
    vd_bcache_free(b);
    vd_bcache_drop_all(a);
    vd_bcache_get_totals(&t2);
    assert_int_equal(t2.pages, t0.pages);
    assert_int_equal(t2.hits, t1.hits); /* counters only grow */
    free(data);
    vd_bcache_free(a);
}

int test_vd_bcache(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_bcache_new_needs_a_page),
        cmocka_unit_test(test_vd_bcache_fill_then_hit),
        cmocka_unit_test(test_vd_bcache_fill_keeps_whole_pages_only),
        cmocka_unit_test(test_vd_bcache_fill_overlapped_by_write_is_skipped),
        cmocka_unit_test(test_vd_bcache_write_replaces_and_failure_drops),
        cmocka_unit_test(test_vd_bcache_overlapping_writes_keep_nothing),
        cmocka_unit_test(test_vd_bcache_evicts_least_recently_used),
        cmocka_unit_test(test_vd_bcache_drop_all_voids_tickets),
        cmocka_unit_test(test_vd_bcache_long_read_is_not_served),
        cmocka_unit_test(test_vd_bcache_get_totals_sum_every_cache),
    };
    return cmocka_run_group_tests_name("vd_bcache", tests, NULL, NULL);
}
