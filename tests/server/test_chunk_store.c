/* Tests for server/chunk_store.c against a real temporary directory. */
#include <dirent.h>
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "test_chunk_util.h"

#define ID 0x00000000000a01f3ull
#define BS CHUNK_BLOCK_SIZE

struct fix {
    char dir[64];
    struct chunk_store *s;
};

static int setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/test_chunk_store.XXXXXX");
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
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Overwrite one byte of a chunk's data file behind the store's back. */
static void corrupt_byte(struct fix *fx, uint64_t id, off_t off)
{
    test_corrupt_byte(fx->dir, id, off, 0x5A);
}

static void test_chunk_store_setversion_creates_files(void **state)
{
    struct fix *fx = *state;
    char path[256];
    struct stat st;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    snprintf(path, sizeof(path), "%s/chunks/f3/00000000000a01f3", fx->dir);
    assert_int_equal(stat(path, &st), 0);
    strcat(path, ".crc");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(chunk_store_count(fx->s), 1);
}

/* Every folder of chunks/ is there from the open on, so no create or copy
 * makes one (and syncs chunks/ for it). */
static void test_chunk_store_open_makes_every_folder(void **state)
{
    struct fix *fx = *state;
    char path[128];
    struct stat st;

    for (unsigned i = 0; i < 256; i++) {
        snprintf(path, sizeof(path), "%s/chunks/%02x", fx->dir, i);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
    }
}

static void test_chunk_store_setversion_create_retry_ok(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 2), -EEXIST);
    assert_int_equal(chunk_store_count(fx->s), 1);
}

static void test_chunk_store_setversion_old_mismatch(void **state)
{
    struct fix *fx = *state;

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 3), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 2, 4), -ESTALE);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 3, 4), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 3, 4), 0); /* retry */
    assert_int_equal(chunk_store_setversion(fx->s, ID + 1, 1, 2), -ENOENT);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 4, 0), -EINVAL);
}

static void test_chunk_store_write_read_roundtrip(void **state)
{
    struct fix *fx = *state;
    enum { N = 3 * BS };
    uint8_t *in = malloc(N), *out = malloc(N);

    fill(in, N, 1);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, BS, in, N, false), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, BS, N, out), 0);
    assert_memory_equal(in, out, N);
    free(in);
    free(out);
}

static void test_chunk_store_write_version_mismatch(void **state)
{
    struct fix *fx = *state;
    uint8_t buf[16] = {1};

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 1, 2), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, buf, 16, false),
                     -ESTALE);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, 16, buf), -ESTALE);
    assert_int_equal(chunk_store_write(fx->s, ID, 2, 0, buf, 16, true), 0);
}

static void test_chunk_store_read_missing_chunk(void **state)
{
    struct fix *fx = *state;
    uint8_t buf[16];

    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, 16, buf), -ENOENT);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, buf, 16, false),
                     -ENOENT);
}

static void test_chunk_store_read_out_of_range(void **state)
{
    struct fix *fx = *state;
    uint8_t buf[16];

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(
        chunk_store_read(fx->s, ID, 1, PROTO_CHUNK_SIZE - 8, 16, buf), -EINVAL);
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, PROTO_CHUNK_SIZE - 8, buf, 16, false),
        -EINVAL);
}

static void test_chunk_store_read_unwritten_zeros(void **state)
{
    struct fix *fx = *state;
    enum { N = 4 * BS };
    uint8_t *out = malloc(N), one[100];

    fill(one, sizeof(one), 2);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    memset(out, 0xEE, N);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_true(all_zero(out, N));
    /* A write far out leaves a hole before it that still reads zeros,
     * and bytes past the length read zeros too. */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 40 * BS + 7, one, 100, false), 0);
    memset(out, 0xEE, N);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 10 * BS, N, out), 0);
    assert_true(all_zero(out, N));
    memset(out, 0xEE, N);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 40 * BS, N, out), 0);
    assert_memory_equal(out + 7, one, 100);
    assert_true(all_zero(out, 7));
    assert_true(all_zero(out + 107, N - 107));
    free(out);
}

static void test_chunk_store_write_partial_blocks(void **state)
{
    struct fix *fx = *state;
    enum { N = 6 * BS };
    uint8_t *model = calloc(1, N), *out = malloc(N), buf[3 * BS];

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    /* Unaligned writes, inside one block, across blocks, overlapping. */
    const struct {
        uint32_t off, len;
    } w[] = {
        {100, 50},
        {BS - 10, 20},
        {2 * BS + 1, 2 * BS},
        {3 * BS, BS},
        {5, 3 * BS - 10},
        {5 * BS + 4000, 96},
        {4 * BS + 1, BS - 2},
    };
    for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        fill(buf, w[i].len, i + 10);
        memcpy(model + w[i].off, buf, w[i].len);
        assert_int_equal(
            chunk_store_write(fx->s, ID, 1, w[i].off, buf, w[i].len, false), 0);
        assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
        assert_memory_equal(out, model, N);
    }
    /* Odd-sized reads in the middle. */
    assert_int_equal(chunk_store_read(fx->s, ID, 1, BS + 3, 2 * BS + 5, out),
                     0);
    assert_memory_equal(out, model + BS + 3, 2 * BS + 5);
    free(model);
    free(out);
}

static void test_chunk_store_read_detects_flipped_byte(void **state)
{
    struct fix *fx = *state;
    enum { N = 4 * BS };
    uint8_t *in = malloc(N), *out = malloc(N);

    fill(in, N, 3);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, N, true), 0);
    corrupt_byte(fx, ID, 2 * BS + 123);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), -EBADMSG);
    /* Blocks that were not touched still read fine. */
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, 2 * BS, out), 0);
    assert_memory_equal(out, in, 2 * BS);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 3 * BS, BS, out), 0);
    /* A partial write into the bad block must not bless it. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 2 * BS + 5, in, 10, false),
                     -EBADMSG);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 2 * BS, 1, out), -EBADMSG);
    /* A whole-block overwrite repairs it. */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 2 * BS, in + 2 * BS, BS, false), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_memory_equal(out, in, N);
    free(in);
    free(out);
}

static void test_chunk_store_read_detects_garbage_in_hole(void **state)
{
    struct fix *fx = *state;
    uint8_t one = 1, out[BS];

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 3 * BS, &one, 1, false),
                     0);
    /* Block 1 was never written: non-zero bytes there are corruption. */
    corrupt_byte(fx, ID, BS + 9);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, BS, BS, out), -EBADMSG);
}

static void test_chunk_store_truncate_zeroes_tail(void **state)
{
    struct fix *fx = *state;
    enum { N = 5 * BS };
    uint8_t *in = malloc(N), *out = malloc(N);

    fill(in, N, 4);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, N, false), 0);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, 2 * BS + 100), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_memory_equal(out, in, 2 * BS + 100);
    assert_true(all_zero(out + 2 * BS + 100, N - 2 * BS - 100));
    /* Growing again exposes zeros, not the old bytes. */
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, N), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_memory_equal(out, in, 2 * BS + 100);
    assert_true(all_zero(out + 2 * BS + 100, N - 2 * BS - 100));
    /* Aligned truncate, then a write after it. */
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, BS), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 3 * BS, in, 10, false), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_memory_equal(out, in, BS);
    assert_true(all_zero(out + BS, 2 * BS));
    assert_memory_equal(out + 3 * BS, in, 10);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 2, 0), -ESTALE);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, PROTO_CHUNK_SIZE + 1),
                     -EINVAL);
    free(in);
    free(out);
}

static void test_chunk_store_delete_removes_chunk(void **state)
{
    struct fix *fx = *state;
    uint8_t buf[8] = {0};

    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 5), 0);
    assert_int_equal(chunk_store_delete(fx->s, ID, 4), -ESTALE);
    assert_int_equal(chunk_store_delete(fx->s, ID, 5), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 5, 0, 8, buf), -ENOENT);
    /* docs/protocol.md §7.6: a chunk the server does not hold is ENOENT. */
    assert_int_equal(chunk_store_delete(fx->s, ID, 5), -ENOENT);
    assert_int_equal(chunk_store_count(fx->s), 0);
    /* The id can be created again, empty. */
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, 8, buf), 0);
    assert_true(all_zero(buf, 8));
}

struct inv {
    int n;
    struct chunk_info e[8];
};

static int collect(const struct chunk_info *ci, void *arg)
{
    struct inv *inv = arg;

    if (inv->n < 8)
        inv->e[inv->n] = *ci;
    inv->n++;
    return 0;
}

static void test_chunk_store_list_inventory(void **state)
{
    struct fix *fx = *state;
    struct inv inv = {0};
    uint8_t buf[10] = {1, 2, 3};
    struct chunk_store *s2;

    assert_int_equal(chunk_store_setversion(fx->s, 1, 0, 1), 0);
    assert_int_equal(chunk_store_setversion(fx->s, 0x1ff, 0, 7), 0);
    assert_int_equal(chunk_store_setversion(fx->s, 0x2ff, 0, 2), 0);
    assert_int_equal(chunk_store_write(fx->s, 0x1ff, 7, 90, buf, 10, false), 0);
    assert_int_equal(chunk_store_delete(fx->s, 0x2ff, 0), 0);
    assert_int_equal(chunk_store_list(fx->s, collect, &inv), 0);
    assert_int_equal(inv.n, 2);
    for (int i = 0; i < 2; i++) {
        if (inv.e[i].id == 1) {
            assert_int_equal(inv.e[i].version, 1);
            assert_int_equal(inv.e[i].length, 0);
        } else {
            assert_int_equal(inv.e[i].id, 0x1ff);
            assert_int_equal(inv.e[i].version, 7);
            assert_int_equal(inv.e[i].length, 100);
        }
    }
    /* A second open of the same directory counts what is there. */
    assert_int_equal(chunk_store_open(fx->dir, &s2), 0);
    assert_int_equal(chunk_store_count(s2), 2);
    assert_int_equal(chunk_store_read(s2, 0x1ff, 7, 90, 10, buf), 0);
    assert_int_equal(buf[0], 1);
    assert_int_equal(buf[2], 3);
    chunk_store_close(s2);
}

/* Bytes chunk @id's two files take on disk, from the files themselves. */
static uint64_t disk_bytes(struct fix *fx, uint64_t id)
{
    char path[256];
    struct stat st;
    uint64_t n = 0;

    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx", fx->dir,
             (unsigned)(id & 0xff), (unsigned long long)id);
    if (stat(path, &st) == 0)
        n += (uint64_t)st.st_blocks * 512;
    strcat(path, ".crc");
    if (stat(path, &st) == 0)
        n += (uint64_t)st.st_blocks * 512;
    return n;
}

static void test_chunk_store_allocated_follows_disk(void **state)
{
    struct fix *fx = *state;
    static uint8_t mib[1 << 20];
    struct chunk_store *s2;
    uint64_t one;

    fill(mib, sizeof(mib), 3);
    assert_int_equal(chunk_store_allocated(fx->s), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_setversion(fx->s, 0x2ff, 0, 1), 0);
    /* 1 MiB at 32 MiB into a chunk: about 1 MiB on disk, not 33 or 64. */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 32u << 20, mib, sizeof(mib), false), 0);
    one = disk_bytes(fx, ID);
    assert_true(one >= sizeof(mib) && one < 2 * sizeof(mib));
    assert_int_equal(chunk_store_allocated(fx->s), one + disk_bytes(fx, 0x2ff));
    /* A second open sums the same from the files. */
    assert_int_equal(chunk_store_open(fx->dir, &s2), 0);
    assert_int_equal(chunk_store_allocated(s2), chunk_store_allocated(fx->s));
    chunk_store_close(s2);
    /* Truncate gives the space back; delete takes the chunk's share. */
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, 4096), 0);
    assert_true(disk_bytes(fx, ID) < one);
    assert_int_equal(chunk_store_allocated(fx->s),
                     disk_bytes(fx, ID) + disk_bytes(fx, 0x2ff));
    assert_int_equal(chunk_store_delete(fx->s, 0x2ff, 0), 0);
    assert_int_equal(chunk_store_delete(fx->s, ID, 0), 0);
    assert_int_equal(chunk_store_allocated(fx->s), 0);
}

static void test_chunk_store_allocated_staged_copy(void **state)
{
    struct fix *fx = *state;
    uint8_t a[BS];

    fill(a, BS, 9);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, a, BS, false), 0);
    /* The copy counts once it replaced the chunk, and not before. */
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 3), 0);
    for (uint32_t off = 0; off < 64 * BS; off += BS)
        assert_int_equal(chunk_store_stage_write(fx->s, ID, 3, off, a, BS), 0);
    assert_int_equal(chunk_store_allocated(fx->s), disk_bytes(fx, ID));
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 3), 0);
    assert_true(disk_bytes(fx, ID) >= 64 * BS);
    assert_int_equal(chunk_store_allocated(fx->s), disk_bytes(fx, ID));
}

static void test_chunk_store_space_reports_sizes(void **state)
{
    struct fix *fx = *state;
    uint64_t cap = 0, fr = 0;

    assert_int_equal(chunk_store_space(fx->s, &cap, &fr), 0);
    assert_true(cap > 0);
    assert_true(fr <= cap);
}

/* Descriptors open in this process. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

/* The highest descriptor open in this process. */
static int max_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int max = -1;

    assert_non_null(d);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && atoi(de->d_name) > max &&
            atoi(de->d_name) != dirfd(d))
            max = atoi(de->d_name);
    closedir(d);
    return max;
}

static void test_chunk_store_cache_keeps_files_open(void **state)
{
    struct fix *fx = *state;
    uint8_t in[BS], out[BS];
    int fds;

    fill(in, BS, 5);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_cached(fx->s), 1);
    fds = open_fds();
    /* Later operations reuse the open files. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, BS, false), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), 0);
    assert_memory_equal(in, out, BS);
    assert_int_equal(open_fds(), fds);
    assert_int_equal(chunk_store_cached(fx->s), 1);
    /* A missing chunk is not cached. */
    assert_int_equal(chunk_store_read(fx->s, ID + 1, 1, 0, BS, out), -ENOENT);
    assert_int_equal(chunk_store_cached(fx->s), 1);
    /* Delete closes its files: data, checksums, written-block map. */
    assert_int_equal(chunk_store_delete(fx->s, ID, 0), 0);
    assert_int_equal(chunk_store_cached(fx->s), 0);
    assert_int_equal(open_fds(), fds - 3);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), -ENOENT);
}

static void test_chunk_store_cache_bounded_lru(void **state)
{
    struct fix *fx = *state;
    uint8_t in[BS], out[BS];

    chunk_store_set_cache(fx->s, 3);
    for (uint64_t id = 1; id <= 8; id++) {
        fill(in, BS, (unsigned)id);
        assert_int_equal(chunk_store_setversion(fx->s, id, 0, 1), 0);
        assert_int_equal(chunk_store_write(fx->s, id, 1, BS, in, BS, true), 0);
        assert_true(chunk_store_cached(fx->s) <= 3);
    }
    /* Evicted chunks are opened again, with their header read back. */
    for (uint64_t id = 1; id <= 8; id++) {
        fill(in, BS, (unsigned)id);
        assert_int_equal(chunk_store_read(fx->s, id, 1, BS, BS, out), 0);
        assert_memory_equal(in, out, BS);
        assert_int_equal(chunk_store_read(fx->s, id, 2, BS, BS, out), -ESTALE);
    }
    assert_int_equal(chunk_store_cached(fx->s), 3);
    chunk_store_set_cache(fx->s, 0);
    assert_int_equal(chunk_store_cached(fx->s), 0);
    assert_int_equal(chunk_store_read(fx->s, 8, 1, BS, BS, out), 0);
    assert_int_equal(chunk_store_cached(fx->s), 0);
}

static void test_chunk_store_cache_version_change_durable(void **state)
{
    struct fix *fx = *state;
    uint8_t in[BS], out[BS];

    fill(in, BS, 6);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, BS, false), 0);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 1, 2), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), -ESTALE);
    assert_int_equal(chunk_store_read(fx->s, ID, 2, 0, BS, out), 0);
    /* What the cache says is what the disk says. */
    chunk_store_set_cache(fx->s, 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 2, 0, BS, out), 0);
    assert_memory_equal(in, out, BS);
    assert_int_equal(chunk_store_write(fx->s, ID, 2, 2 * BS, in, BS, false), 0);
    chunk_store_set_cache(fx->s, 0);
    struct chunk_info ci;
    assert_int_equal(chunk_store_stat(fx->s, ID, &ci), 0);
    assert_int_equal(ci.version, 2);
    assert_int_equal(ci.length, 3 * BS);
}

static void test_chunk_store_cache_sees_staged_replacement(void **state)
{
    struct fix *fx = *state;
    uint8_t a[BS], b[BS], out[BS];

    fill(a, BS, 7);
    fill(b, BS, 8);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, a, BS, false), 0);
    assert_int_equal(chunk_store_cached(fx->s), 1);
    assert_int_equal(chunk_store_stage_begin(fx->s, ID, 3), 0);
    assert_int_equal(chunk_store_stage_write(fx->s, ID, 3, 0, b, BS), 0);
    assert_int_equal(chunk_store_stage_commit(fx->s, ID, 3), 0);
    /* The cached handle now has the new files, not the unlinked old. */
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), -ESTALE);
    assert_int_equal(chunk_store_read(fx->s, ID, 3, 0, BS, out), 0);
    assert_memory_equal(b, out, BS);
    assert_int_equal(chunk_store_write(fx->s, ID, 3, 0, a, BS, false), 0);
    chunk_store_set_cache(fx->s, 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 3, 0, BS, out), 0);
    assert_memory_equal(a, out, BS);
}

static void test_chunk_store_cache_gives_back_fds_on_emfile(void **state)
{
    struct fix *fx = *state;
    uint8_t out[BS];
    struct rlimit old, tight;
    uint32_t cached;
    int fill_fd[1024], nfill = 0, extra, rc;
    bool full;

    chunk_store_set_cache(fx->s, 4);
    for (uint64_t id = 1; id <= 5; id++)
        assert_int_equal(chunk_store_setversion(fx->s, id, 0, 1), 0);
    assert_int_equal(chunk_store_cached(fx->s), 4); /* chunk 1 evicted */
    /* No descriptor left (every number below the limit taken, holes
     * filled with dups): opening chunk 1 must close idle ones first. */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    tight = old;
    tight.rlim_cur = (rlim_t)max_fd() + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &tight), 0);
    while (nfill < 1024 && (fill_fd[nfill] = dup(0)) >= 0)
        nfill++;
    extra = dup(0); /* succeeds only with too many holes to fill */
    full = extra < 0;
    if (!full)
        close(extra);
    rc = chunk_store_read(fx->s, 1, 1, 0, BS, out);
    cached = chunk_store_cached(fx->s);
    while (nfill > 0)
        close(fill_fd[--nfill]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    if (!full)
        skip();
    assert_int_equal(rc, 0);
    assert_int_equal(cached, 1); /* chunk 1 alone */
}

static void test_chunk_store_read_aligned_past_length(void **state)
{
    struct fix *fx = *state;
    enum { N = 4 * BS };
    uint8_t *in = malloc(N), *out = malloc(N);

    fill(in, N, 9);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, BS, in, 2 * BS, false), 0);
    /* Whole blocks, the last one past the length: zeros, not leftovers. */
    memset(out, 0xEE, N);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, N, out), 0);
    assert_true(all_zero(out, BS));
    assert_memory_equal(out + BS, in, 2 * BS);
    assert_true(all_zero(out + 3 * BS, BS));
    /* Entirely past the length. */
    memset(out, 0xEE, N);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 3 * BS, BS, out), 0);
    assert_true(all_zero(out, BS));
    free(in);
    free(out);
}

static void test_chunk_store_truncate_then_rewrite(void **state)
{
    struct fix *fx = *state;
    enum { N = 6 * BS };
    uint8_t *in = malloc(N), *out = malloc(N);
    char path[256];
    struct stat st;

    fill(in, N, 10);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, N, false), 0);
    assert_int_equal(chunk_store_truncate(fx->s, ID, 1, 0), 0);
    /* Blocks reserved before the truncate are reserved (and written)
     * again: the data lands and reads back. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 2 * BS, in, 2 * BS, true),
                     0);
    snprintf(path, sizeof(path), "%s/chunks/f3/00000000000a01f3", fx->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_blocks * 512 >= 2 * BS);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, 4 * BS, out), 0);
    assert_true(all_zero(out, 2 * BS));
    assert_memory_equal(out + 2 * BS, in, 2 * BS);
    free(in);
    free(out);
}

/* Nowait reads of a chunk whose files are open and whose blocks were just
 * written (so cached) give what the blocking read gives.  The temporary
 * folder is on a file system with nowait buffered reads (ext4, xfs,
 * btrfs; not tmpfs). */
static void test_chunk_store_read_nowait_cached_equals_read(void **state)
{
    struct fix *fx = *state;
    uint8_t in[3 * BS], a[3 * BS + 100], b[3 * BS + 100];
    static const struct {
        uint32_t off, len;
    } r[] = {{0, 3 * BS},
             {BS, BS},
             {100, 2 * BS},
             {2 * BS + 7, BS + 100},
             {10 * BS, BS}};

    fill(in, sizeof(in), 9);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, sizeof(in), false),
                     0);
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        memset(a, 1, sizeof(a));
        memset(b, 2, sizeof(b));
        assert_int_equal(chunk_store_read(fx->s, ID, 1, r[i].off, r[i].len, a),
                         0);
        assert_int_equal(
            chunk_store_read_nowait(fx->s, ID, 1, r[i].off, r[i].len, b), 0);
        assert_memory_equal(a, b, r[i].len);
    }
    /* Final answers come back as they are. */
    assert_int_equal(chunk_store_read_nowait(fx->s, ID, 2, 0, BS, b), -ESTALE);
    assert_int_equal(
        chunk_store_read_nowait(fx->s, ID, 1, PROTO_CHUNK_SIZE, 1, b), -EINVAL);
    assert_int_equal(chunk_store_mark_bad(fx->s, ID, PROTO_REPORT_CHECKSUM), 1);
    assert_int_equal(chunk_store_read_nowait(fx->s, ID, 1, 0, BS, b), -EBADMSG);
}

/* A chunk whose files are not open would need open(): -EAGAIN, and the
 * blocking read still works. */
static void test_chunk_store_read_nowait_uncached_again(void **state)
{
    struct fix *fx = *state;
    uint8_t in[BS], out[BS];

    fill(in, BS, 4);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, BS, false), 0);
    chunk_store_set_cache(fx->s, 0);
    assert_int_equal(chunk_store_cached(fx->s), 0);
    assert_int_equal(chunk_store_read_nowait(fx->s, ID, 1, 0, BS, out),
                     -EAGAIN);
    /* Even a chunk that does not exist: finding out takes an open(). */
    assert_int_equal(chunk_store_read_nowait(fx->s, ID + 1, 1, 0, BS, out),
                     -EAGAIN);
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 0, in, BS),
                     -EAGAIN);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), 0);
    assert_memory_equal(in, out, BS);
    assert_int_equal(chunk_store_cached(fx->s), 0);
}

/* A nowait write, done or given up and then redone with the blocking call
 * as chunk_job.c does, reads back with its checksums verified; the cases
 * it refuses (-EAGAIN) leave the chunk as it was. */
static void test_chunk_store_write_nowait_then_read(void **state)
{
    struct fix *fx = *state;
    uint8_t old[2 * BS], in[2 * BS], out[2 * BS];
    struct chunk_info ci;
    int rc;

    fill(old, sizeof(old), 1);
    fill(in, sizeof(in), 2);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    /* The blocking write reserves the space of blocks 0 and 1. */
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 0, old, sizeof(old), false), 0);
    /* Refused at once, nothing written: part of a block (it would have to
     * be merged), blocks without reserved space, an empty write. */
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 100, in, BS),
                     -EAGAIN);
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 4 * BS, in, BS),
                     -EAGAIN);
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 0, in, 0), -EAGAIN);
    assert_int_equal(chunk_store_stat(fx->s, ID, &ci), 0);
    assert_int_equal(ci.length, sizeof(old));
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, sizeof(out), out), 0);
    assert_memory_equal(out, old, sizeof(old));
    /* Final answers. */
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 2, 0, in, BS),
                     -ESTALE);
    /* The write itself: ext4 refuses buffered nowait writes (-EAGAIN,
     * then the blocking redo); xfs and btrfs may take it. */
    rc = chunk_store_write_nowait(fx->s, ID, 1, 0, in, sizeof(in));
    assert_true(rc == 0 || rc == -EAGAIN);
    if (rc == -EAGAIN)
        assert_int_equal(
            chunk_store_write(fx->s, ID, 1, 0, in, sizeof(in), false), 0);
    memset(out, 0, sizeof(out));
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, sizeof(out), out), 0);
    assert_memory_equal(out, in, sizeof(out));
    rc = chunk_store_read_nowait(fx->s, ID, 1, 0, sizeof(out), out);
    assert_int_equal(rc, 0);
    assert_memory_equal(out, in, sizeof(out));
}

/* Inline write modes: OFF sends every write to a worker; BUFFERED writes
 * whole blocks on the caller's thread even where the file system has no
 * nowait writes (at most after the one attempt that finds that out), and
 * what it wrote reads back with good checksums. */
static void test_chunk_store_write_inline_modes(void **state)
{
    struct fix *fx = *state;
    uint8_t old[2 * BS], in[2 * BS], out[2 * BS];
    int rc;

    fill(old, sizeof(old), 3);
    fill(in, sizeof(in), 4);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 0, old, sizeof(old), false), 0);
    chunk_store_set_inline_writes(fx->s, CHUNK_INLINE_OFF);
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 0, in, BS),
                     -EAGAIN);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, sizeof(out), out), 0);
    assert_memory_equal(out, old, sizeof(out));

    chunk_store_set_inline_writes(fx->s, CHUNK_INLINE_BUFFERED);
    rc = chunk_store_write_nowait(fx->s, ID, 1, 0, in, sizeof(in));
    if (rc == -EAGAIN) { /* learnt that RWF_NOWAIT is missing: redo */
        assert_int_equal(
            chunk_store_write(fx->s, ID, 1, 0, old, sizeof(old), false), 0);
        rc = chunk_store_write_nowait(fx->s, ID, 1, 0, in, sizeof(in));
    }
    assert_int_equal(rc, 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, sizeof(out), out), 0);
    assert_memory_equal(out, in, sizeof(out));
    /* Still refused: part of a block, and unreserved space. */
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 10, in, BS),
                     -EAGAIN);
    assert_int_equal(chunk_store_write_nowait(fx->s, ID, 1, 8 * BS, in, BS),
                     -EAGAIN);
}

/* What a nowait write that gave up half-way leaves (new data in a block,
 * its old checksum) is put right by the blocking redo of the same write,
 * because whole blocks are rewritten without being read.  The same torn
 * block under a write of part of it would fail its checksum: why nowait
 * writes are whole blocks only. */
static void test_chunk_store_write_nowait_torn_redo(void **state)
{
    struct fix *fx = *state;
    uint8_t old[2 * BS], in[2 * BS], out[2 * BS];
    char path[256];
    int fd;

    fill(old, sizeof(old), 5);
    fill(in, sizeof(in), 6);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    assert_int_equal(
        chunk_store_write(fx->s, ID, 1, 0, old, sizeof(old), false), 0);
    /* The torn attempt: block 0's new data on disk, no new checksum. */
    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx", fx->dir,
             (unsigned)(ID & 0xFF), (unsigned long long)ID);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, in, BS, 0), BS);
    close(fd);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, BS, out), -EBADMSG);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 10, in + 10, 100, false),
                     -EBADMSG);
    /* The redo. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, in, sizeof(in), false),
                     0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 0, sizeof(out), out), 0);
    assert_memory_equal(out, in, sizeof(out));
}

/* How many of the @n bytes at @off of chunk @id's data file are in the
 * page cache, in pages. */
static size_t cached_pages(struct fix *fx, uint64_t id, off_t off, size_t n)
{
    char path[256];
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char vec[1024];
    size_t count = 0;

    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx", fx->dir,
             (unsigned)(id & 0xff), (unsigned long long)id);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(n / (size_t)pg <= sizeof(vec));
    void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, off);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mincore(m, n, vec), 0);
    for (size_t i = 0; i < n / (size_t)pg; i++)
        count += vec[i] & 1;
    munmap(m, n);
    close(fd);
    return count;
}

/* Large whole-block writes skip the page cache (chunk_store.c, "Direct
 * writes"), from an aligned buffer or an unaligned one, and read back
 * right, also over data written through the page cache before; small
 * writes, and every write with direct writes off, stay buffered. */
static void test_chunk_store_direct_writes(void **state)
{
    struct fix *fx = *state;
    enum { M = 1 << 20 };
    uint8_t *al = NULL, *in = malloc(M + 1), *out = malloc(M);

    assert_int_equal(posix_memalign((void **)&al, 4096, M), 0);
    fill(al, M, 11);
    fill(in + 1, M, 12);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 1), 0);
    chunk_store_set_direct_writes(fx->s, 256 << 10);

    /* A small write is buffered, and then rewritten by a direct one. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, M, in + 1, 2 * BS, false),
                     0);
    assert_true(cached_pages(fx, ID, M, 2 * BS) > 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, M, al, M, false), 0);
    assert_int_equal(cached_pages(fx, ID, M, M), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, M, M, out), 0);
    assert_memory_equal(out, al, M);

    /* Unaligned data (copied to an aligned buffer first). */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 2 * M, in + 1, M, true),
                     0);
    assert_int_equal(cached_pages(fx, ID, 2 * M, M), 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 2 * M, M, out), 0);
    assert_memory_equal(out, in + 1, M);

    /* A write below the threshold, and one with direct writes off. */
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 0, al, 64 << 10, false),
                     0);
    assert_true(cached_pages(fx, ID, 0, 64 << 10) > 0);
    chunk_store_set_direct_writes(fx->s, 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 1, 3 * M, al, M, false), 0);
    assert_true(cached_pages(fx, ID, 3 * M, M) > 0);
    assert_int_equal(chunk_store_read(fx->s, ID, 1, 3 * M, M, out), 0);
    assert_memory_equal(out, al, M);
    free(al);
    free(in);
    free(out);
}

static void reopen(struct fix *fx)
{
    chunk_store_close(fx->s);
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
}

/* A chunk marked bad stays bad, with its reason, across a restart, and is
 * not served; deleting it ends the mark for good. */
static void test_chunk_store_mark_bad_survives_reopen(void **state)
{
    struct fix *fx = *state;
    uint8_t a[BS];
    struct chunk_bad *bad;
    size_t n;

    fill(a, sizeof(a), 3);
    assert_int_equal(chunk_store_setversion(fx->s, ID, 0, 4), 0);
    assert_int_equal(chunk_store_write(fx->s, ID, 4, 0, a, BS, false), 0);
    assert_int_equal(chunk_store_mark_bad(fx->s, ID, PROTO_REPORT_IOERROR), 1);
    reopen(fx);
    assert_true(chunk_store_is_bad(fx->s, ID));
    assert_int_equal(chunk_store_read(fx->s, ID, 4, 0, BS, a), -EBADMSG);
    assert_int_equal(chunk_store_bad_list(fx->s, &bad, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(bad[0].id, ID);
    assert_int_equal(bad[0].reason, PROTO_REPORT_IOERROR);
    free(bad);
    assert_int_equal(chunk_store_mark_bad(fx->s, ID, PROTO_REPORT_IOERROR), 0);
    assert_int_equal(chunk_store_delete(fx->s, ID, 4), 0);
    reopen(fx);
    assert_false(chunk_store_is_bad(fx->s, ID));
    assert_int_equal(chunk_store_bad_list(fx->s, &bad, &n), 0);
    assert_int_equal(n, 0);
    free(bad);
}

int test_chunk_store(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_store_setversion_creates_files),
        T(test_chunk_store_open_makes_every_folder),
        T(test_chunk_store_setversion_create_retry_ok),
        T(test_chunk_store_setversion_old_mismatch),
        T(test_chunk_store_write_read_roundtrip),
        T(test_chunk_store_write_version_mismatch),
        T(test_chunk_store_read_missing_chunk),
        T(test_chunk_store_read_out_of_range),
        T(test_chunk_store_read_unwritten_zeros),
        T(test_chunk_store_write_partial_blocks),
        T(test_chunk_store_read_detects_flipped_byte),
        T(test_chunk_store_read_detects_garbage_in_hole),
        T(test_chunk_store_truncate_zeroes_tail),
        T(test_chunk_store_delete_removes_chunk),
        T(test_chunk_store_list_inventory),
        T(test_chunk_store_space_reports_sizes),
        T(test_chunk_store_allocated_follows_disk),
        T(test_chunk_store_allocated_staged_copy),
        T(test_chunk_store_cache_keeps_files_open),
        T(test_chunk_store_cache_bounded_lru),
        T(test_chunk_store_cache_version_change_durable),
        T(test_chunk_store_cache_sees_staged_replacement),
        T(test_chunk_store_cache_gives_back_fds_on_emfile),
        T(test_chunk_store_read_aligned_past_length),
        T(test_chunk_store_truncate_then_rewrite),
        T(test_chunk_store_read_nowait_cached_equals_read),
        T(test_chunk_store_read_nowait_uncached_again),
        T(test_chunk_store_write_nowait_then_read),
        T(test_chunk_store_write_inline_modes),
        T(test_chunk_store_write_nowait_torn_redo),
        T(test_chunk_store_direct_writes),
        T(test_chunk_store_mark_bad_survives_reopen),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_store", tests, NULL, NULL);
}
