/* Tests for chunk_store_clone() (server/chunk_store.c) and its message,
 * CHUNK_CLONE_REQ: a local copy of a chunk, reflinked where the file
 * system can, sparse-copied otherwise; both paths must give the same
 * bytes and keep holes. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "test_chunk_util.h"

#define SRC 0x00000000000b0001ull
#define DST 0x00000000000b0002ull
#define BS CHUNK_BLOCK_SIZE

struct fix {
    char dir[64];
    struct chunk_store *s;
};

static int setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_chunk_clone.XXXXXX");
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

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
}

/* Source chunk at version 3: one block at 0, 64 KiB at 1 MiB + 100 and
 * one block near the end; the rest holes. */
static void make_source(struct fix *fx)
{
    static uint8_t a[BS], b[65536], c[BS];

    fill(a, sizeof(a), 1);
    fill(b, sizeof(b), 2);
    fill(c, sizeof(c), 3);
    assert_int_equal(chunk_store_setversion(fx->s, SRC, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, SRC, 1, 0, a, BS, false), 0);
    assert_int_equal(
        chunk_store_write(fx->s, SRC, 1, (1u << 20) + 100, b, sizeof(b), false),
        0);
    assert_int_equal(chunk_store_write(fx->s, SRC, 1, PROTO_CHUNK_SIZE - 2 * BS,
                                       c, BS, false),
                     0);
    assert_int_equal(chunk_store_setversion(fx->s, SRC, 1, 3), 0);
}

/* Read both chunks whole, 4 MiB at a time, and compare. */
static void assert_same(struct fix *fx, uint64_t ver_dst)
{
    uint32_t step = 4u << 20;
    uint8_t *x = malloc(step), *y = malloc(step);

    assert_non_null(x);
    assert_non_null(y);
    for (uint32_t off = 0; off < PROTO_CHUNK_SIZE; off += step) {
        assert_int_equal(chunk_store_read(fx->s, SRC, 3, off, step, x), 0);
        assert_int_equal(chunk_store_read(fx->s, DST, ver_dst, off, step, y),
                         0);
        assert_memory_equal(x, y, step);
    }
    free(x);
    free(y);
}

/* Space of chunk @id's own data: the data file of a flat chunk, or the
 * layer of an overlay (its base is shared, not its own). */
static uint64_t allocated(struct fix *fx, uint64_t id)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx", fx->dir,
             (unsigned)(id & 0xFF), (unsigned long long)id);
    if (stat(path, &st) < 0) {
        strcat(path, ".ov");
        assert_int_equal(stat(path, &st), 0);
    }
    return (uint64_t)st.st_blocks * 512;
}

static void clone_and_check(struct fix *fx)
{
    struct chunk_info ci;

    make_source(fx);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), 0);
    assert_int_equal(chunk_store_stat(fx->s, DST, &ci), 0);
    assert_int_equal(ci.version, 1);
    assert_int_equal(ci.length, PROTO_CHUNK_SIZE - BS);
    assert_same(fx, 1);
    /* Holes stay holes: far less than the chunk's 64 MiB is allocated. */
    assert_true(allocated(fx, DST) < (4u << 20));
    assert_int_equal(chunk_store_count(fx->s), 2);
}

static void test_chunk_store_clone_copies_identical_sparse(void **state)
{
    clone_and_check(*state);
}

static void
test_chunk_store_clone_fallback_copies_identical_sparse(void **state)
{
    struct fix *fx = *state;

    chunk_store_set_reflink(fx->s, false);
    clone_and_check(fx);
}

static void test_chunk_store_clone_write_leaves_source(void **state)
{
    struct fix *fx = *state;
    uint8_t w[BS], r[BS], orig[BS];

    make_source(fx);
    assert_int_equal(chunk_store_read(fx->s, SRC, 3, 0, BS, orig), 0);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), 0);
    memset(w, 0x5a, sizeof(w));
    assert_int_equal(chunk_store_write(fx->s, DST, 1, 0, w, BS, true), 0);
    assert_int_equal(chunk_store_read(fx->s, DST, 1, 0, BS, r), 0);
    assert_memory_equal(r, w, BS);
    assert_int_equal(chunk_store_read(fx->s, SRC, 3, 0, BS, r), 0);
    assert_memory_equal(r, orig, BS);
}

static void test_chunk_store_clone_version_mismatch(void **state)
{
    struct fix *fx = *state;

    make_source(fx);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 2, DST, 1), -ESTALE);
    assert_int_equal(chunk_store_clone(fx->s, SRC + 7, 3, DST, 1), -ENOENT);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, SRC, 1), -EINVAL);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 0), -EINVAL);
    assert_int_equal(chunk_store_count(fx->s), 1);
}

static void test_chunk_store_clone_retry_ok(void **state)
{
    struct fix *fx = *state;

    make_source(fx);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), 0);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), 0);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 2), -EEXIST);
    assert_int_equal(chunk_store_count(fx->s), 2);
}

static void test_chunk_store_clone_bad_source(void **state)
{
    struct fix *fx = *state;

    make_source(fx);
    assert_int_equal(chunk_store_mark_bad(fx->s, SRC, PROTO_REPORT_CHECKSUM),
                     1);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), -EBADMSG);
}

static void test_chunk_store_clone_survives_reopen(void **state)
{
    struct fix *fx = *state;
    struct chunk_info ci;

    make_source(fx);
    assert_int_equal(chunk_store_clone(fx->s, SRC, 3, DST, 1), 0);
    chunk_store_close(fx->s);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    assert_int_equal(chunk_store_stat(fx->s, DST, &ci), 0);
    assert_int_equal(ci.version, 1);
    assert_same(fx, 1);
}

static void test_chunk_clone_req_decode_rejects_short(void **state)
{
    struct proto_chunk_clone_req q = {1, 2, 3, 1}, out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_chunk_clone_req_encode(&w, &q);
    assert_int_equal(
        proto_msg_decode(PROTO_MSG_CHUNK_CLONE_REQ, w.p, w.len, &out), 0);
    assert_int_equal(
        proto_msg_decode(PROTO_MSG_CHUNK_CLONE_REQ, w.p, w.len - 1, &out),
        -EPROTO);
    proto_wbuf_free(&w);
}

int test_chunk_clone(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_store_clone_copies_identical_sparse),
        T(test_chunk_store_clone_fallback_copies_identical_sparse),
        T(test_chunk_store_clone_write_leaves_source),
        T(test_chunk_store_clone_version_mismatch),
        T(test_chunk_store_clone_retry_ok),
        T(test_chunk_store_clone_bad_source),
        T(test_chunk_store_clone_survives_reopen),
        cmocka_unit_test(test_chunk_clone_req_decode_rejects_short),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_clone", tests, NULL, NULL);
}
