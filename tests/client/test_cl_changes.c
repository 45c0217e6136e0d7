/* Tests for client/cl_changes.c: how IMAGE_CHANGES entries and the
 * servers' written-block maps (a fake fetcher) become the blocks that may
 * differ, never fewer than the maps say. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl_internal.h"

#define BPS ((uint64_t)PROTO_WMAP_BITS) /* blocks per slot */

/* The fake servers: chunk id N has block N (and 100 + N) written; chunk
 * 99 has no map anywhere.  Counts its calls. */
static int fetches;

static int fake_fetch(void *arg, const struct proto_chunk_loc *loc,
                      uint8_t *bits)
{
    (void)arg;
    fetches++;
    if (loc->chunk_id == 99)
        return -ENODATA;
    uint64_t b[2] = {loc->chunk_id, 100 + loc->chunk_id};
    for (int i = 0; i < 2; i++)
        bits[b[i] / 8] |= (uint8_t)(1u << (b[i] % 8));
    return 0;
}

static struct cl_changes changes_new(uint64_t first, uint32_t count)
{
    struct cl_changes ch = {.first = first, .count = count};
    ch.bits = calloc(count, PROTO_WMAP_BYTES);
    assert_non_null(ch.bits);
    fetches = 0;
    return ch;
}

static struct proto_changes_entry blocks(uint64_t index, uint32_t n,
                                         const uint64_t *ids)
{
    struct proto_changes_entry e;
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.kind = PROTO_CHANGES_BLOCKS;
    e.nchain = n;
    for (uint32_t i = 0; i < n; i++)
        e.chain[i].chunk_id = ids[i];
    return e;
}

static uint64_t count_changed(const struct cl_changes *ch, uint64_t slot)
{
    uint64_t n = 0;
    for (uint64_t b = slot * BPS; b < (slot + 1) * BPS; b++)
        n += cl_changes_block(ch, b);
    return n;
}

static void test_cl_changes_apply_blocks_union_of_chain(void **state)
{
    struct cl_changes ch = changes_new(10, 2);
    const uint64_t ids[] = {5, 7};
    struct proto_changes_entry e = blocks(11, 2, ids);

    (void)state;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    assert_int_equal(fetches, 2);
    assert_int_equal(count_changed(&ch, 11), 4);
    assert_true(cl_changes_block(&ch, 11 * BPS + 5));
    assert_true(cl_changes_block(&ch, 11 * BPS + 107));
    assert_false(cl_changes_block(&ch, 11 * BPS + 6));
    /* The slot not listed did not change. */
    assert_int_equal(count_changed(&ch, 10), 0);
    cl_changes_free(&ch);
}

static void test_cl_changes_apply_missing_map_whole_slot(void **state)
{
    struct cl_changes ch = changes_new(0, 1);
    const uint64_t ids[] = {5, 99, 7};
    struct proto_changes_entry e = blocks(0, 3, ids);

    (void)state;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    assert_int_equal(count_changed(&ch, 0), BPS);
    assert_int_equal(fetches, 2); /* no use asking after a failure */
    cl_changes_free(&ch);
}

static void test_cl_changes_apply_whole_and_zero(void **state)
{
    struct cl_changes ch = changes_new(4, 3);
    struct proto_changes_entry e;

    (void)state;
    memset(&e, 0, sizeof(e));
    e.index = 4;
    e.kind = PROTO_CHANGES_WHOLE;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    e.index = 6;
    e.kind = PROTO_CHANGES_ZERO;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    assert_int_equal(fetches, 0);
    assert_int_equal(count_changed(&ch, 4), BPS);
    assert_int_equal(count_changed(&ch, 5), 0);
    assert_int_equal(count_changed(&ch, 6), BPS);
    cl_changes_free(&ch);
}

static void test_cl_changes_apply_ignores_other_slots(void **state)
{
    struct cl_changes ch = changes_new(4, 1);
    const uint64_t ids[] = {5};
    struct proto_changes_entry e = blocks(3, 1, ids);

    (void)state;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    e.index = 5;
    cl_changes_apply(&ch, &e, fake_fetch, NULL);
    assert_int_equal(fetches, 0);
    assert_int_equal(count_changed(&ch, 4), 0);
    /* Outside the slots asked for, nothing is said to have changed. */
    assert_false(cl_changes_block(&ch, 3 * BPS + 5));
    assert_false(cl_changes_block(&ch, 5 * BPS + 5));
    cl_changes_free(&ch);
    cl_changes_free(NULL);
}

int test_cl_changes(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_changes_apply_blocks_union_of_chain),
        cmocka_unit_test(test_cl_changes_apply_missing_map_whole_slot),
        cmocka_unit_test(test_cl_changes_apply_whole_and_zero),
        cmocka_unit_test(test_cl_changes_apply_ignores_other_slots),
    };
    return cmocka_run_group_tests_name("cl_changes", tests, NULL, NULL);
}
