/* Failures of the disk under server/chunk_store.c's write, sync,
 * truncate, create, staged-copy (repair), clone and direct-write paths
 * (open, mkdir, rename, link and fcntl too), injected with
 * tests/common/fault_inject.h: each failure is returned as its -errno,
 * and what was durable before it stays readable.  The install of a staged
 * copy over a replica is also stopped at each of its steps as a crash
 * would stop it (its files left so, the store opened again): the old
 * replica or the new one reads back whole, never a mix. */
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
#include "fault_inject.h"
#include "test_chunk_util.h"

#define ID 0x00000000000b02c4ull
#define DATA_END                                                               \
    "/0000000000"                                                              \
    "0b02c4" /* the data file: no suffix */
#define LEN (8 * CHUNK_BLOCK_SIZE)

struct fix {
    char dir[64];
    struct chunk_store *s;
    uint8_t old[LEN], new[LEN], got[LEN];
};

static int setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_chunk_fault.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    for (size_t i = 0; i < LEN; i++) {
        fx->old[i] = (uint8_t)(i * 7 + 1);
        fx->new[i] = (uint8_t)(i * 13 + 5);
    }
    /* Chunk ID at version 1 holding @old, durably. */
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->old, LEN, true), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    fault_inject_clear();
    chunk_store_close(fx->s);
    test_rm_tree(fx->dir);
    free(fx);
    return 0;
}

static void arm(enum fault_call c, const char *path_end, int err)
{
    fault_inject_set(&(struct fault_rule){
        .call = c, .path_end = path_end, .nth = 1, .err = err});
}

/* Chunk @id's file with @suffix exists in @fx's store. */
static bool chunk_file_exists(struct fix *fx, uint64_t id, const char *suffix)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx%s", fx->dir,
             (unsigned)(id & 0xff), (unsigned long long)id, suffix);
    return access(path, F_OK) == 0;
}

/* The chunk reads back as @want over [0, LEN). */
static void expect_data(struct fix *fx, const uint8_t *want)
{
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, want, LEN);
}

static void test_chunk_store_write_data_eio_keeps_old(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_PWRITEV2, DATA_END, EIO);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true),
                     -EIO);
    assert_int_equal(fault_inject_hits(FAULT_PWRITEV2), 1);
    fault_inject_clear();
    /* Nothing of the failed write reached the disk: the old data and its
     * checksums still agree. */
    expect_data(fx, fx->old);
}

static void test_chunk_store_write_data_enospc(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_PWRITEV2, DATA_END, ENOSPC);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, LEN, fx->new, LEN, false),
                     -ENOSPC);
    fault_inject_clear();
    /* The retry the client makes lands whole. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, LEN, fx->new, LEN, true),
                     0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, LEN, LEN, fx->got), 0);
    assert_memory_equal(fx->got, fx->new, LEN);
    expect_data(fx, fx->old);
}

static void test_chunk_store_write_reserve_enospc(void **state)
{
    struct fix *fx = *state;

    /* New blocks past the end are reserved first: a full disk fails the
     * write before anything is written. */
    arm(FAULT_FALLOCATE, DATA_END, ENOSPC);
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 4 * LEN, fx->new, LEN, false), -ENOSPC);
    assert_int_equal(fault_inject_hits(FAULT_FALLOCATE), 1);
    fault_inject_clear();
    expect_data(fx, fx->old);
}

static void test_chunk_store_write_crc_eio_then_retry(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_PWRITEV2, ".crc", EIO);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true),
                     -EIO);
    fault_inject_clear();
    /* The data went out without its checksums: not acknowledged, and the
     * client's retry of the same write puts both right. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true), 0);
    expect_data(fx, fx->new);
}

static void test_chunk_store_write_short_writes_complete(void **state)
{
    struct fix *fx = *state;

    /* Every data write the kernel cuts to one block: the store goes on
     * until all of it is written. */
    fault_inject_set(&(struct fault_rule){.call = FAULT_PWRITEV2,
                                          .path_end = DATA_END,
                                          .nth = 1,
                                          .count = -1,
                                          .short_len = CHUNK_BLOCK_SIZE});
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true), 0);
    assert_true(fault_inject_hits(FAULT_PWRITEV2) >= 2);
    fault_inject_clear();
    expect_data(fx, fx->new);
}

static void test_chunk_store_write_no_progress_eio(void **state)
{
    struct fix *fx = *state;

    fault_inject_set(&(struct fault_rule){.call = FAULT_PWRITEV2,
                                          .path_end = DATA_END,
                                          .nth = 1,
                                          .count = -1,
                                          .short_len = -1});
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true),
                     -EIO);
    fault_inject_clear();
    expect_data(fx, fx->old);
}

static void test_chunk_store_write_sync_data_eio(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_FDATASYNC, DATA_END, EIO);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true),
                     -EIO);
    fault_inject_clear();
    /* The sync of the checksums fails too: a later SYNC is not
     * acknowledged either. */
    arm(FAULT_FDATASYNC, ".crc", EIO);
    assert_int_equal(chunk_store_sync(fx->s, ID, 1), -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FDATASYNC), 1);
    fault_inject_clear();
    assert_int_equal(chunk_store_sync(fx->s, ID, 1), 0);
}

static void test_chunk_store_write_wmap_sync_eio(void **state)
{
    struct fix *fx = *state;

    /* A write into blocks never written before marks them in the .wmap,
     * which a sync makes durable too. */
    arm(FAULT_FDATASYNC, ".wmap", EIO);
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 2 * LEN, fx->new, LEN, true), -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FDATASYNC), 1);
}

static void test_chunk_store_setversion_create_eio(void **state)
{
    struct fix *fx = *state;
    struct chunk_info ci;

    /* The new .crc is written and synced, then its folder synced; a
     * failure of any leaves no chunk behind, and no file of it. */
    arm(FAULT_FDATASYNC, ".crc", EIO);
    assert_int_equal(chunk_store_setversion(fx->s, ID + 1, 0, 1), -EIO);
    fault_inject_clear();
    assert_int_equal(chunk_store_stat(fx->s, ID + 1, &ci), -ENOENT);
    assert_false(chunk_file_exists(fx, ID + 1, ".crc"));
    arm(FAULT_PWRITEV2, ".crc", ENOSPC);
    assert_int_equal(chunk_store_setversion(fx->s, ID + 1, 0, 1), -ENOSPC);
    fault_inject_clear();
    assert_int_equal(chunk_store_stat(fx->s, ID + 1, &ci), -ENOENT);
    assert_false(chunk_file_exists(fx, ID + 1, ".crc"));
    assert_int_equal(chunk_store_setversion(fx->s, ID + 1, 0, 1), 0);
}

static void test_chunk_store_setversion_bump_eio(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_FDATASYNC, ".crc", EIO);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 1, 2), -EIO);
    fault_inject_clear();
}

static void test_chunk_store_truncate_eio(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_FTRUNCATE, DATA_END, EIO);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, CHUNK_BLOCK_SIZE + 5),
                     -EIO);
    fault_inject_clear();
    arm(FAULT_FDATASYNC, NULL, EIO);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, CHUNK_BLOCK_SIZE + 5),
                     -EIO);
    fault_inject_clear();
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, CHUNK_BLOCK_SIZE + 5),
                     0);
}

static void test_chunk_store_setversion_dir_sync_eio(void **state)
{
    struct fix *fx = *state;

    /* The new chunk's name is made durable with an fsync of its folder:
     * failing, the create fails; the client's retry of it succeeds. */
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_FSYNC, .path = fx->dir, .nth = 1, .err = EIO});
    assert_int_equal(chunk_store_setversion(fx->s, ID + 2, 0, 1), -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FSYNC), 1);
    fault_inject_clear();
    assert_int_equal(chunk_store_setversion(fx->s, ID + 2, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID + 2, 1, 0, fx->new, LEN, true),
                     0);
}

static void test_chunk_store_truncate_crc_and_memory(void **state)
{
    struct fix *fx = *state;

    arm(FAULT_FTRUNCATE, ".crc", EIO);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, 3 * CHUNK_BLOCK_SIZE),
                     -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FTRUNCATE), 1);
    fault_inject_clear();
    /* The boundary block of a cut inside a block is read into memory. */
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_MALLOC, .nth = 1, .this_thread = true});
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, CHUNK_BLOCK_SIZE + 9),
                     -ENOMEM);
    fault_inject_clear();
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, CHUNK_BLOCK_SIZE + 9),
                     0);
    assert_int_equal(
        chunk_store_read(fx->s, ID, 1, 0, CHUNK_BLOCK_SIZE + 9, fx->got), 0);
    assert_memory_equal(fx->got, fx->old, CHUNK_BLOCK_SIZE + 9);
}

static void test_chunk_store_stage_write_enospc(void **state)
{
    struct fix *fx = *state;

    /* A repair copy (chunk_replicate.c) of version 2 into the stage: the
     * disk fills, the copy is aborted and the old replica is untouched. */
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 2), 0);
    arm(FAULT_PWRITEV2, NULL, ENOSPC);
    assert_int_equal(chunk_store_stage_write(fx->s, ID, 2, 0, fx->new, LEN),
                     -ENOSPC);
    fault_inject_clear();
    chunk_store_stage_abort(fx->s, ID);
    expect_data(fx, fx->old);
}

static void test_chunk_store_stage_commit_sync_eio(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID, 2, 0, fx->new, LEN), 0);
    /* The copy is synced before it replaces the replica: a failing sync
     * leaves the replica as it was, at its version. */
    arm(FAULT_FDATASYNC, NULL, EIO);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), -EIO);
    fault_inject_clear();
    chunk_store_stage_abort(fx->s, ID);
    expect_data(fx, fx->old);
    /* A later copy goes through. */
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID, 2, 0, fx->new, LEN), 0);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 2, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, fx->new, LEN);
}

/* ---- open, mkdir, rename, link and fcntl -------------------------------- */

#define ID2 (ID + 1)
#define ID2_NAME "00000000000b02c5"

/* Chunk ID2 does not exist, and ID still holds @old at version 1. */
static void expect_no_id2(struct fix *fx)
{
    struct chunk_info ci;

    assert_int_equal(chunk_store_stat(fx->s, ID2, &ci), -ENOENT);
    expect_data(fx, fx->old);
}

static void test_chunk_store_create_open_emfile(void **state)
{
    struct fix *fx = *state;

    /* Out of descriptors for good while creating a chunk's files: no
     * chunk. */
    fault_inject_set(&(struct fault_rule){.call = FAULT_OPEN,
                                          .path = ID2_NAME,
                                          .nth = 1,
                                          .count = -1,
                                          .err = EMFILE});
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), -EMFILE);
    assert_true(fault_inject_hits(FAULT_OPEN) >= 1);
    fault_inject_clear();
    expect_no_id2(fx);
    /* Once: the store closes its idle files and opens again. */
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_OPEN, .path = ID2_NAME, .nth = 1, .err = EMFILE});
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), 0);
    assert_int_equal(fault_inject_hits(FAULT_OPEN), 1);
    fault_inject_clear();
    expect_data(fx, fx->old);
}

static void test_chunk_store_reopen_eacces(void **state)
{
    struct fix *fx = *state;

    /* Without the open-file cache every operation opens the files. */
    chunk_store_set_cache(fx->s, 0);
    arm(FAULT_OPEN, DATA_END, EACCES);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, LEN, fx->got), -EACCES);
    assert_int_equal(fault_inject_hits(FAULT_OPEN), 1);
    fault_inject_clear();
    expect_data(fx, fx->old);
}

static void test_chunk_store_create_mkdir_enospc(void **state)
{
    struct fix *fx = *state;

    /* ID2's folder (chunks/c5) does not exist yet and cannot be made. */
    arm(FAULT_MKDIR, "/chunks/c5", ENOSPC);
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), -ENOSPC);
    assert_int_equal(fault_inject_hits(FAULT_MKDIR), 1);
    fault_inject_clear();
    expect_no_id2(fx);
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), 0);
}

static void test_chunk_store_create_dirsync_eio(void **state)
{
    struct fix *fx = *state;

    /* The folder's sync makes the new chunk's names durable, last: when
     * it fails there is no chunk, and none of its files. */
    arm(FAULT_FSYNC, "/c5", EIO); /* ID2's folder */
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FSYNC), 1);
    fault_inject_clear();
    expect_no_id2(fx);
    assert_false(chunk_file_exists(fx, ID2, ".crc"));
    assert_false(chunk_file_exists(fx, ID2, ""));
    assert_int_equal(chunk_store_setversion(fx->s, ID2, 0, 1), 0);
}

static void test_chunk_store_stage_commit_rename_eio(void **state)
{
    struct fix *fx = *state;
    struct chunk_info ci;

    /* A repair copy of ID2, new on this server, fails to take its name:
     * the copy is dropped, nothing else changes, the next copy lands. */
    assert_int_equal(chunk_store_stage_begin(fx->s, ID2, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID2, 2, 0, fx->new, LEN),
                     0);
    arm(FAULT_RENAME, ID2_NAME, EIO);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID2, 2), -EIO);
    assert_int_equal(fault_inject_hits(FAULT_RENAME), 1);
    fault_inject_clear();
    expect_no_id2(fx);
    assert_int_equal(chunk_store_stage_begin(fx->s, ID2, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID2, 2, 0, fx->new, LEN),
                     0);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID2, 2), 0);
    assert_int_equal(chunk_store_stat(fx->s, ID2, &ci), 0);
    assert_int_equal(chunk_store_read(fx->s, ID2, 2, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, fx->new, LEN);
}

/* ---- Installing a staged copy over a replica (stage_move()) ------------ */

#define ID_NAME "00000000000b02c4"
#define ID3 (ID + 2)

/* A repair copy of @id at version 2 holding @new, in the stage. */
static void stage_copy(struct fix *fx, uint64_t id)
{
    assert_int_equal(chunk_store_stage_begin(fx->s, id, 2), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, id, 2, 0, fx->new, LEN), 0);
}

/* Chunk @id reads back whole as @want at @ver, and nothing of an install
 * is left beside it. */
static void expect_chunk(struct fix *fx, uint64_t id, uint64_t ver,
                         const uint8_t *want)
{
    struct chunk_info ci;

    assert_int_equal(chunk_store_stat(fx->s, id, &ci), 0);
    assert_int_equal(ci.version, ver);
    assert_int_equal(chunk_store_read(fx->s, id, ver, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, want, LEN);
    assert_false(chunk_file_exists(fx, id, ".copy"));
    assert_false(chunk_file_exists(fx, id, ".crc.copy"));
}

/* Close the store and open it again, as chunkd's restart does. */
static void reopen(struct fix *fx)
{
    chunk_store_close(fx->s);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
}

/* The steps of an install before its switch, each made to fail. */
static const struct fault_rule install_steps[] = {
    /* 1: the new .crc comes in as ID.crc.copy (the first rename), */
    {.call = FAULT_RENAME, .path = ID_NAME, .nth = 1},
    /* and is made durable; */
    {.call = FAULT_FSYNC, .path_end = "/c4", .nth = 1},
    /* 2: the new data comes in as ID.copy, */
    {.call = FAULT_RENAME, .path_end = ID_NAME ".copy", .nth = 1},
    /* and is made durable; */
    {.call = FAULT_FSYNC, .path_end = "/c4", .nth = 2},
    /* 3: the switch, ID.crc.copy over ID.crc. */
    {.call = FAULT_RENAME, .path_end = ID_NAME ".crc.copy", .nth = 2},
};

/* A step of the install that fails before the switch fails the copy and
 * leaves the old replica as it was: it reads back at its version, before
 * and after a restart, and a later copy installs. */
static void test_chunk_store_stage_commit_step_fails_keeps_old(void **state)
{
    struct fix *fx = *state;

    for (size_t i = 0; i < sizeof(install_steps) / sizeof(*install_steps);
         i++) {
        struct fault_rule r = install_steps[i];

        r.err = EIO;
        stage_copy(fx, ID);
        fault_inject_set(&r);
        assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), -EIO);
        assert_int_equal(fault_inject_hits(r.call), 1);
        fault_inject_clear();
        expect_chunk(fx, ID, 1, fx->old);
        reopen(fx);
        expect_chunk(fx, ID, 1, fx->old);
    }
    stage_copy(fx, ID);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), 0);
    expect_chunk(fx, ID, 2, fx->new);
    reopen(fx);
    expect_chunk(fx, ID, 2, fx->new);
}

/* After the switch the old replica is replaced: a failure to sync the
 * switch or to name the new data drops the chunk rather than reading the
 * new checksums over the old data, now and after a restart. */
static void
test_chunk_store_stage_commit_after_switch_fails_no_mix(void **state)
{
    struct fix *fx = *state;
    const struct fault_rule after[] = {
        {.call = FAULT_FSYNC, .path_end = "/c4", .nth = 3, .err = EIO},
        {.call = FAULT_RENAME,
         .path_end = ID_NAME ".copy",
         .nth = 2,
         .err = EIO},
    };

    for (size_t i = 0; i < sizeof(after) / sizeof(*after); i++) {
        struct chunk_info ci;

        if (i > 0) { /* the last round dropped it */
            assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
            assert_int_equal(
                chunk_store_write(fx->s, ID, 1, 0, fx->old, LEN, true), 0);
        }
        stage_copy(fx, ID);
        fault_inject_set(&after[i]);
        assert_int_equal(chunk_store_stage_commit(fx->s, ID, 2), -EIO);
        assert_int_equal(fault_inject_hits(after[i].call), 1);
        fault_inject_clear();
        assert_int_equal(chunk_store_stat(fx->s, ID, &ci), -ENOENT);
        reopen(fx);
        assert_int_equal(chunk_store_stat(fx->s, ID, &ci), -ENOENT);
        assert_false(chunk_file_exists(fx, ID, ""));
        assert_false(chunk_file_exists(fx, ID, ".copy"));
    }
}

/* Where a crash can stop an install (stage_move()). */
enum install_crash {
    CRASH_CRC_IN,   /* after step 1: ID.crc.copy */
    CRASH_DATA_IN,  /* after step 2: ID.crc.copy, ID.copy, no ID.wmap */
    CRASH_SWITCHED, /* after step 3: the new ID.crc, ID.copy */
    CRASH_NAMED,    /* after step 4's rename, the old overlay files left */
};

/* Rename @a with @a_suffix to @b with @b_suffix. */
static void move(const char *a, const char *a_suffix, const char *b,
                 const char *b_suffix)
{
    char from[300], to[300];

    snprintf(from, sizeof(from), "%s%s", a, a_suffix);
    snprintf(to, sizeof(to), "%s%s", b, b_suffix);
    assert_int_equal(rename(from, to), 0);
}

/* Leave the files of chunk @id as a crash at @at during the install of
 * the staged copy would (the store closed first), then reopen the store. */
static void crash_install(struct fix *fx, uint64_t id, enum install_crash at)
{
    char stage[256], main[256], wmap[300];

    snprintf(stage, sizeof(stage), "%s/staging/chunks/%02x/%016llx", fx->dir,
             (unsigned)(id & 0xff), (unsigned long long)id);
    snprintf(main, sizeof(main), "%s/chunks/%02x/%016llx", fx->dir,
             (unsigned)(id & 0xff), (unsigned long long)id);
    chunk_store_close(fx->s);
    fx->s = NULL;
    move(stage, ".crc", main, ".crc.copy");
    if (at >= CRASH_DATA_IN) {
        move(stage, "", main, ".copy");
        snprintf(wmap, sizeof(wmap), "%s.wmap", main);
        unlink(wmap);
    }
    if (at >= CRASH_SWITCHED)
        move(main, ".crc.copy", main, ".crc");
    if (at >= CRASH_NAMED)
        move(main, ".copy", main, "");
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
}

/* A crash at any point of an install leaves, once the store is open
 * again, the old flat replica whole or the new one whole. */
static void test_chunk_store_stage_commit_crash_flat(void **state)
{
    struct fix *fx = *state;

    for (int at = CRASH_CRC_IN; at <= CRASH_NAMED; at++) {
        assert_int_equal(chunk_store_delete(fx->s, ID, 0), 0);
        assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
        assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->old, LEN, true),
                         0);
        stage_copy(fx, ID);
        crash_install(fx, ID, (enum install_crash)at);
        if (at < CRASH_SWITCHED)
            expect_chunk(fx, ID, 1, fx->old);
        else
            expect_chunk(fx, ID, 2, fx->new);
    }
}

/* The same over an overlay replica (a copy-on-write copy without
 * reflinks, chunk_overlay.c): before the switch it still reads through
 * its base and own layer; after it, the new flat chunk reads whole and
 * the overlay's files are gone. */
static void test_chunk_store_stage_commit_crash_overlay(void **state)
{
    struct fix *fx = *state;
    uint8_t want[LEN];

    memcpy(want, fx->old, LEN);
    memset(want, 0x5a, CHUNK_BLOCK_SIZE);
    chunk_store_set_reflink(fx->s, false);
    for (int at = CRASH_CRC_IN; at <= CRASH_NAMED; at++) {
        chunk_store_delete(fx->s, ID3, 0);
        assert_int_equal(chunk_store_clone(fx->s, ID, 1, ID3, 1), 0);
        assert_int_equal(
            chunk_store_write(fx->s, ID3, 1, 0, want, CHUNK_BLOCK_SIZE, true),
            0);
        assert_true(chunk_file_exists(fx, ID3, ".ov"));
        stage_copy(fx, ID3);
        crash_install(fx, ID3, (enum install_crash)at);
        chunk_store_set_reflink(fx->s, false);
        if (at < CRASH_SWITCHED) {
            expect_chunk(fx, ID3, 1, want);
            assert_true(chunk_file_exists(fx, ID3, ".ov"));
        } else {
            expect_chunk(fx, ID3, 2, fx->new);
            assert_false(chunk_file_exists(fx, ID3, ".ov"));
            assert_false(chunk_file_exists(fx, ID3, ".bdata"));
        }
        expect_data(fx, fx->old); /* the base's owner never changed */
    }
}

static void test_chunk_store_clone_link_enospc(void **state)
{
    struct fix *fx = *state;

    /* A copy-on-write copy without reflink links the source's files as
     * its base: a refused link fails the clone and leaves the source. */
    chunk_store_set_reflink(fx->s, false);
    arm(FAULT_LINK, NULL, ENOSPC);
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, ID2, 1), -ENOSPC);
    assert_int_equal(fault_inject_hits(FAULT_LINK), 1);
    fault_inject_clear();
    expect_no_id2(fx);
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, ID2, 1), 0);
    assert_int_equal(chunk_store_read(fx->s, ID2, 1, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, fx->old, LEN);
}

static void test_chunk_store_clone_link_emlink_copies(void **state)
{
    struct fix *fx = *state;

    /* A base at its link limit is copied in full instead: the clone
     * succeeds and reads the source's bytes. */
    chunk_store_set_reflink(fx->s, false);
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_LINK, .nth = 1, .count = -1, .err = EMLINK});
    assert_int_equal(chunk_store_clone(fx->s, ID, 1, ID2, 1), 0);
    assert_true(fault_inject_hits(FAULT_LINK) >= 1);
    fault_inject_clear();
    assert_int_equal(chunk_store_read(fx->s, ID2, 1, 0, LEN, fx->got), 0);
    assert_memory_equal(fx->got, fx->old, LEN);
    expect_data(fx, fx->old);
}

static void test_chunk_store_direct_write_fcntl(void **state)
{
    struct fix *fx = *state;

    chunk_store_set_direct_writes(fx->s, CHUNK_BLOCK_SIZE);
    /* An I/O error switching the file to O_DIRECT fails the write and
     * leaves the old data. */
    arm(FAULT_FCNTL, DATA_END, EIO);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true),
                     -EIO);
    assert_int_equal(fault_inject_hits(FAULT_FCNTL), 1);
    fault_inject_clear();
    expect_data(fx, fx->old);
    /* EINVAL is a file system without O_DIRECT: the write goes buffered. */
    arm(FAULT_FCNTL, DATA_END, EINVAL);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, fx->new, LEN, true), 0);
    fault_inject_clear();
    expect_data(fx, fx->new);
}

int test_chunk_fault(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_store_write_data_eio_keeps_old),
        T(test_chunk_store_write_data_enospc),
        T(test_chunk_store_write_reserve_enospc),
        T(test_chunk_store_write_crc_eio_then_retry),
        T(test_chunk_store_write_short_writes_complete),
        T(test_chunk_store_write_no_progress_eio),
        T(test_chunk_store_write_sync_data_eio),
        T(test_chunk_store_write_wmap_sync_eio),
        T(test_chunk_store_setversion_create_eio),
        T(test_chunk_store_setversion_bump_eio),
        T(test_chunk_store_truncate_eio),
        T(test_chunk_store_setversion_dir_sync_eio),
        T(test_chunk_store_truncate_crc_and_memory),
        T(test_chunk_store_stage_write_enospc),
        T(test_chunk_store_stage_commit_sync_eio),
        T(test_chunk_store_create_open_emfile),
        T(test_chunk_store_reopen_eacces),
        T(test_chunk_store_create_mkdir_enospc),
        T(test_chunk_store_create_dirsync_eio),
        T(test_chunk_store_stage_commit_rename_eio),
        T(test_chunk_store_stage_commit_step_fails_keeps_old),
        T(test_chunk_store_stage_commit_after_switch_fails_no_mix),
        T(test_chunk_store_stage_commit_crash_flat),
        T(test_chunk_store_stage_commit_crash_overlay),
        T(test_chunk_store_clone_link_enospc),
        T(test_chunk_store_clone_link_emlink_copies),
        T(test_chunk_store_direct_write_fcntl),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_fault", tests, NULL, NULL);
}
