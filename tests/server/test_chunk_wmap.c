/* Tests for the written-block maps (server/chunk_wmap.c) as the store
 * keeps them (server/chunk_store.c): which blocks a chunk had written
 * since it was created or copied, kept across reopen and a crash of the
 * process, unknown for a copy from another server and after a crash of
 * the host. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "test_chunk_util.h"

#define ID 0x00000000000c0001ull
#define COPY 0x00000000000c0002ull
#define BS CHUNK_BLOCK_SIZE

struct fix {
    char dir[64];
    struct chunk_store *s;
    uint8_t map[PROTO_WMAP_BYTES];
};

static int setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_chunk_wmap.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    chunk_store_close(fx->s);
    test_rm_tree(fx->dir);
    free(fx);
    return 0;
}

static bool bit(const uint8_t *map, uint32_t b)
{
    return map[b / 8] & (1u << (b % 8));
}

static uint32_t count(const uint8_t *map)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < PROTO_WMAP_BITS; b++)
        n += bit(map, b);
    return n;
}

static void write_at(struct fix *fx, uint64_t id, uint64_t ver, uint32_t off,
                     uint32_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 0x5a, len);
    assert_int_equal(chunk_store_write(fx->s, id, ver, off, buf, len, false),
                     0);
    free(buf);
}

static void test_chunk_store_wmap_marks_written_blocks(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 0);
    write_at(fx, ID, 1, 3 * BS, BS);        /* block 3 */
    write_at(fx, ID, 1, 10 * BS + 100, BS); /* blocks 10 and 11 */
    write_at(fx, ID, 1, 3 * BS + 7, 10);    /* block 3 again */
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 3);
    assert_true(bit(fx->map, 3) && bit(fx->map, 10) && bit(fx->map, 11));
    assert_int_equal(chunk_store_wmap(fx->s, ID, 2, fx->map), -ESTALE);
    assert_int_equal(chunk_store_wmap(fx->s, COPY, 1, fx->map), -ENOENT);
}

static void test_chunk_store_wmap_clone_starts_empty(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 0, 8 * BS);
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, COPY, 1), 0);
    assert_int_equal(chunk_store_wmap(fx->s, COPY, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 0);
    write_at(fx, COPY, 1, 5 * BS, 2 * BS);
    assert_int_equal(chunk_store_wmap(fx->s, COPY, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 2);
    assert_true(bit(fx->map, 5) && bit(fx->map, 6));
    /* The source's map is its own. */
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 8);
}

/* The data map lists the blocks that hold data, a clone's inherited ones
 * included (which its written-block map leaves out), and no others. */
static void test_chunk_store_datamap_lists_data_blocks(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_datamap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 0);
    write_at(fx, ID, 1, 2 * BS, 3 * BS);
    write_at(fx, ID, 1, 10000 * BS, BS);
    assert_int_equal(chunk_store_datamap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 4);
    assert_true(bit(fx->map, 2) && bit(fx->map, 3) && bit(fx->map, 4) &&
                bit(fx->map, 10000));
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, COPY, 1), 0);
    assert_int_equal(chunk_store_datamap(fx->s, COPY, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 4);
    assert_true(bit(fx->map, 10000));
    assert_int_equal(chunk_store_datamap(fx->s, ID, 2, fx->map), -ESTALE);
    assert_int_equal(chunk_store_datamap(fx->s, ID + 9, 1, fx->map), -ENOENT);
}

static void test_chunk_store_wmap_truncate_marks_the_cut(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 0, 6 * BS);
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, COPY, 1), 0);
    assert_int_equal(chunk_store_truncate(fx->s, COPY, 1, 2 * BS + 10), 0);
    assert_int_equal(chunk_store_wmap(fx->s, COPY, 1, fx->map), 0);
    /* Block 2 keeps a head, 3..5 become zeros: all four changed. */
    assert_int_equal(count(fx->map), 4);
    assert_true(bit(fx->map, 2) && bit(fx->map, 5));
    assert_false(bit(fx->map, 1));
}

static void test_chunk_store_wmap_survives_reopen(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 16383u * BS, BS); /* the last block */
    assert_int_equal(chunk_store_sync(fx->s, ID, 1), 0);
    chunk_store_close(fx->s);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 1);
    assert_true(bit(fx->map, 16383));
}

static void test_chunk_store_wmap_staged_copy_unknown(void **state)
{
    struct fix *fx = *state;
    uint8_t b[BS];

    memset(b, 1, sizeof(b));
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 0, BS);
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID, 2, 0, b, BS), 0);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 2, fx->map), -ENODATA);
    /* Still unknown after a write and a reopen: never "nothing". */
    write_at(fx, ID, 2, BS, BS);
    chunk_store_close(fx->s);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 2, fx->map), -ENODATA);
}

static void test_chunk_store_wmap_damaged_file_unknown(void **state)
{
    struct fix *fx = *state;
    char path[256];

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    chunk_store_close(fx->s);
    snprintf(path, sizeof(path), "%s/chunks/01/%016llx.wmap", fx->dir,
             (unsigned long long)ID);
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), -ENODATA);
}

static void test_chunk_store_wmap_delete_removes_map(void **state)
{
    struct fix *fx = *state;
    char path[256];

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    snprintf(path, sizeof(path), "%s/chunks/01/%016llx.wmap", fx->dir,
             (unsigned long long)ID);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(chunk_store_delete(fx->s, ID, 1), 0);
    assert_int_equal(access(path, F_OK), -1);
}

/* Leave DIR/wmap.boot holding @id, as a store that was not closed would. */
static void boot_note(struct fix *fx, const char *id)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/wmap.boot", fx->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(id, f);
    fclose(f);
}

static void test_chunk_store_wmap_dropped_after_host_crash(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 0, BS);
    chunk_store_close(fx->s);
    /* Not closed in an earlier boot of the host: bits may be lost. */
    boot_note(fx, "00000000-0000-0000-0000-000000000000");
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), -ENODATA);
}

static void test_chunk_store_wmap_kept_after_process_crash(void **state)
{
    struct fix *fx = *state;
    char id[64] = "";

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    write_at(fx, ID, 1, 0, BS);
    chunk_store_close(fx->s);
    /* Not closed, but in this boot: the page cache kept the order. */
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    assert_non_null(f);
    assert_non_null(fgets(id, sizeof(id), f));
    fclose(f);
    id[36] = '\0';
    boot_note(fx, id);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_wmap(fx->s, ID, 1, fx->map), 0);
    assert_int_equal(count(fx->map), 1);
}

int test_chunk_wmap(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_store_wmap_marks_written_blocks),
        T(test_chunk_store_wmap_clone_starts_empty),
        T(test_chunk_store_datamap_lists_data_blocks),
        T(test_chunk_store_wmap_truncate_marks_the_cut),
        T(test_chunk_store_wmap_survives_reopen),
        T(test_chunk_store_wmap_staged_copy_unknown),
        T(test_chunk_store_wmap_damaged_file_unknown),
        T(test_chunk_store_wmap_delete_removes_map),
        T(test_chunk_store_wmap_dropped_after_host_crash),
        T(test_chunk_store_wmap_kept_after_process_crash),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_wmap", tests, NULL, NULL);
}
