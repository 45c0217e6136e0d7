/* Tests for client/cl_range.c: cutting byte ranges into per-chunk
 * pieces at chunk boundaries and message limits, clamping reads to the
 * file size, counting chunks, with offsets past 4 GiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cl_internal.h"

#define CS ((uint64_t)PROTO_CHUNK_SIZE)

static size_t collect(uint64_t off, uint64_t len, uint32_t max,
                      struct cl_piece *out, size_t cap)
{
    struct cl_range_iter it;
    size_t n = 0;
    cl_range_init(&it, off, len, max);
    while (n < cap && cl_range_next(&it, &out[n]))
        n++;
    return n;
}

static void test_cl_range_next_within_one_chunk(void **state)
{
    struct cl_piece p[4];
    (void)state;
    assert_int_equal(collect(4096, 8192, 0, p, 4), 1);
    assert_int_equal(p[0].index, 0);
    assert_int_equal(p[0].off, 4096);
    assert_int_equal(p[0].len, 8192);
    assert_int_equal(p[0].buf_off, 0);
}

static void test_cl_range_next_splits_at_chunk_boundary(void **state)
{
    struct cl_piece p[4];
    (void)state;
    /* 100 bytes before the boundary, 50 after. */
    assert_int_equal(collect(CS - 100, 150, 0, p, 4), 2);
    assert_int_equal(p[0].index, 0);
    assert_int_equal(p[0].off, CS - 100);
    assert_int_equal(p[0].len, 100);
    assert_int_equal(p[1].index, 1);
    assert_int_equal(p[1].off, 0);
    assert_int_equal(p[1].len, 50);
    assert_int_equal(p[1].buf_off, 100);
}

static void test_cl_range_next_exact_chunk_is_one_piece(void **state)
{
    struct cl_piece p[4];
    (void)state;
    assert_int_equal(collect(CS, CS, 0, p, 4), 1);
    assert_int_equal(p[0].index, 1);
    assert_int_equal(p[0].off, 0);
    assert_int_equal(p[0].len, CS);
}

static void test_cl_range_next_respects_max(void **state)
{
    struct cl_piece p[8];
    (void)state;
    /* 10 MiB from 1 MiB before a boundary, at most 4 MiB a piece. */
    size_t n = collect(CS - (1u << 20), 10u << 20, 4u << 20, p, 8);
    assert_int_equal(n, 4);
    assert_int_equal(p[0].len, 1u << 20);
    assert_int_equal(p[1].index, 1);
    assert_int_equal(p[1].len, 4u << 20);
    assert_int_equal(p[2].off, 4u << 20);
    assert_int_equal(p[3].len, 1u << 20);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(p[i].buf_off, total);
        total += p[i].len;
    }
    assert_int_equal(total, 10u << 20);
}

static void test_cl_range_next_past_4gib(void **state)
{
    struct cl_piece p[2];
    uint64_t off = 5ull << 30; /* 5 GiB = chunk 80 exactly */
    (void)state;
    assert_int_equal(collect(off + 7, 4096, 0, p, 2), 1);
    assert_int_equal(p[0].index, 80);
    assert_int_equal(p[0].off, 7);
    assert_int_equal(p[0].len, 4096);
}

static void test_cl_range_next_empty_range(void **state)
{
    struct cl_piece p[1];
    (void)state;
    assert_int_equal(collect(12345, 0, 0, p, 1), 0);
}

static void test_cl_range_next_stops_at_top_of_address_space(void **state)
{
    struct cl_piece p[4];
    (void)state;
    size_t n = collect(UINT64_MAX - 10, 100, 0, p, 4);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].len, 10);
}

static void test_cl_range_clamp_cases(void **state)
{
    (void)state;
    assert_int_equal(cl_range_clamp(0, 100, 1000), 100);
    assert_int_equal(cl_range_clamp(950, 100, 1000), 50);
    assert_int_equal(cl_range_clamp(1000, 100, 1000), 0);
    assert_int_equal(cl_range_clamp(2000, 100, 1000), 0);
    assert_int_equal(cl_range_clamp(5ull << 30, 4096, (5ull << 30) + 1), 1);
}

static void test_cl_range_nchunks_cases(void **state)
{
    (void)state;
    assert_int_equal(cl_range_nchunks(0, 0), 0);
    assert_int_equal(cl_range_nchunks(0, 1), 1);
    assert_int_equal(cl_range_nchunks(0, CS), 1);
    assert_int_equal(cl_range_nchunks(0, CS + 1), 2);
    assert_int_equal(cl_range_nchunks(CS - 1, 2), 2);
    assert_int_equal(cl_range_nchunks(3 * CS, 10 * CS), 10);
}

int test_cl_range(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_range_next_within_one_chunk),
        cmocka_unit_test(test_cl_range_next_splits_at_chunk_boundary),
        cmocka_unit_test(test_cl_range_next_exact_chunk_is_one_piece),
        cmocka_unit_test(test_cl_range_next_respects_max),
        cmocka_unit_test(test_cl_range_next_past_4gib),
        cmocka_unit_test(test_cl_range_next_empty_range),
        cmocka_unit_test(test_cl_range_next_stops_at_top_of_address_space),
        cmocka_unit_test(test_cl_range_clamp_cases),
        cmocka_unit_test(test_cl_range_nchunks_cases),
    };
    return cmocka_run_group_tests_name("cl_range", tests, NULL, NULL);
}
