/* Tests for server/chunk_usage.c, the figures waiting for metad, and for
 * the store noting them (docs/protocol.md §9.5). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "test_chunk_util.h"

#define ID 0x00000000000b0042ull

/* The figure waiting for @id among @v[0..n), or -1 when none. */
static int64_t figure_of(const struct proto_usage_entry *v, size_t n,
                         uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].chunk_id == id)
            return (int64_t)v[i].bytes;
    return -1;
}

static void test_chunk_usage_put_keeps_newest(void **state)
{
    struct chunk_usage *u;
    struct proto_usage_entry v[4];

    (void)state;
    assert_int_equal(chunk_usage_new(&u), 0);
    assert_int_equal(chunk_usage_take(u, v, 4), 0);
    assert_int_equal(chunk_usage_put(u, 0, 1, false), -EINVAL);
    assert_int_equal(chunk_usage_put(u, 7, 100, false), 0);
    assert_int_equal(chunk_usage_put(u, 7, 200, false), 0);
    assert_int_equal(chunk_usage_put(u, 9, 300, false), 0);
    /* A figure put back (keep) does not replace a newer one. */
    assert_int_equal(chunk_usage_put(u, 7, 50, true), 0);
    assert_int_equal(chunk_usage_count(u), 2);
    assert_int_equal(chunk_usage_take(u, v, 4), 2);
    assert_int_equal(figure_of(v, 2, 7), 200);
    assert_int_equal(figure_of(v, 2, 9), 300);
    assert_int_equal(chunk_usage_count(u), 0);
    /* Once taken, a put back figure waits again. */
    assert_int_equal(chunk_usage_put(u, 7, 50, true), 0);
    assert_int_equal(chunk_usage_take(u, v, 4), 1);
    assert_int_equal(figure_of(v, 1, 7), 50);
    chunk_usage_free(u);
    chunk_usage_free(NULL);
}

/* Many chunks, taken a batch at a time while more arrive: each comes out
 * once, with its last figure, through growth and tombstones. */
static void test_chunk_usage_batches(void **state)
{
    enum { N = 5000, BATCH = PROTO_USAGE_MAX };
    struct chunk_usage *u;
    static struct proto_usage_entry v[BATCH];
    static uint8_t seen[2 * N + 1];
    size_t total = 0, k;

    (void)state;
    assert_int_equal(chunk_usage_new(&u), 0);
    for (uint64_t id = 1; id <= N; id++)
        assert_int_equal(chunk_usage_put(u, id, id * 10, false), 0);
    k = chunk_usage_take(u, v, BATCH);
    assert_int_equal(k, BATCH);
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(v[i].bytes, v[i].chunk_id * 10);
        seen[v[i].chunk_id]++;
    }
    total += k;
    /* New chunks and new figures for some waiting ones. */
    for (uint64_t id = N + 1; id <= 2 * N; id++)
        assert_int_equal(chunk_usage_put(u, id, id * 10, false), 0);
    while ((k = chunk_usage_take(u, v, BATCH)) > 0) {
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(v[i].bytes, v[i].chunk_id * 10);
            seen[v[i].chunk_id]++;
        }
        total += k;
    }
    assert_int_equal(total, 2 * N);
    for (uint64_t id = 1; id <= 2 * N; id++)
        assert_int_equal(seen[id], 1);
    chunk_usage_free(u);
}

static int setup(void **state)
{
    return test_store_setup(state, "/tmp/test_chunk_usage.XXXXXX");
}

/* The figure the store noted for ID (taking everything noted), -1: none. */
static int64_t noted(struct test_store_fix *fx)
{
    static struct proto_usage_entry v[PROTO_USAGE_MAX];
    size_t n = chunk_usage_take(chunk_store_usage(fx->s), v, PROTO_USAGE_MAX);

    return figure_of(v, n, ID);
}

static uint64_t alloc_of(struct test_store_fix *fx)
{
    struct chunk_info ci;

    assert_int_equal(chunk_store_stat(fx->s, ID, &ci), 0);
    return ci.alloc;
}

/* Every change of a chunk's space is noted with the chunk's new figure,
 * what its files take on disk; a change that moves nothing is not. */
static void test_chunk_usage_store_notes_changes(void **state)
{
    struct test_store_fix *fx = *state;
    static uint8_t mib[1 << 20];
    int64_t n;

    memset(mib, 0x5c, sizeof(mib));
    assert_non_null(chunk_store_usage(fx->s));
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    (void)noted(fx); /* the new files' header blocks */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 8u << 20, mib, sizeof(mib), false), 0);
    n = noted(fx);
    assert_true(n >= (int64_t)sizeof(mib) && n < 2 * (int64_t)sizeof(mib));
    assert_int_equal(n, alloc_of(fx));
    /* Rewriting the same bytes allocates nothing new. */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 8u << 20, mib, sizeof(mib), false), 0);
    assert_int_equal(noted(fx), -1);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, 4096), 0);
    n = noted(fx);
    assert_true(n >= 0 && n < (int64_t)sizeof(mib));
    assert_int_equal(n, alloc_of(fx));
    assert_int_equal(chunk_store_delete(fx->s, ID, 0), 0);
    assert_int_equal(noted(fx), 0);
}

/* A replica copied in (repair) is noted once it replaced the chunk. */
static void test_chunk_usage_store_notes_staged_copy(void **state)
{
    struct test_store_fix *fx = *state;
    uint8_t a[CHUNK_BLOCK_SIZE];

    memset(a, 0x33, sizeof(a));
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 3), 0);
    for (uint32_t off = 0; off < 16 * CHUNK_BLOCK_SIZE; off += CHUNK_BLOCK_SIZE)
        assert_int_equal(
            chunk_store_stage_write(fx->s, ID, 3, off, a, sizeof(a)), 0);
    assert_int_equal(noted(fx), -1);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 3), 0);
    assert_int_equal(noted(fx), alloc_of(fx));
    assert_true(alloc_of(fx) >= 16 * CHUNK_BLOCK_SIZE);
}

int test_chunk_usage(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunk_usage_put_keeps_newest),
        cmocka_unit_test(test_chunk_usage_batches),
        cmocka_unit_test_setup_teardown(test_chunk_usage_store_notes_changes,
                                        setup, test_store_teardown),
        cmocka_unit_test_setup_teardown(
            test_chunk_usage_store_notes_staged_copy, setup,
            test_store_teardown),
    };
    return cmocka_run_group_tests_name("chunk_usage", tests, NULL, NULL);
}
