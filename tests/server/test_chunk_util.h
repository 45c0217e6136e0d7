/* test_chunk_util.h: helpers shared by the storage server's unit tests. */
#ifndef TESSERA_TEST_CHUNK_UTIL_H
#define TESSERA_TEST_CHUNK_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk_internal.h"

static inline int test_rm_one(const char *path, const struct stat *sb, int flag,
                              struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Remove the temporary folder @dir and everything below it. */
static inline void test_rm_tree(const char *dir)
{
    nftw(dir, test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* XOR byte @off of chunk @id's data file under data folder @dir with
 * @mask, as a disk that went bad would. */
static inline void test_corrupt_byte(const char *dir, uint64_t id, off_t off,
                                     uint8_t mask)
{
    char path[256];
    uint8_t b;
    int fd;

    snprintf(path, sizeof(path), "%s/chunks/%02x/%016llx", dir,
             (unsigned)(id & 0xFF), (unsigned long long)id);
    fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* A store in a fresh temporary folder: the fixture of tests that need
 * one (test_store_setup() with the folder's template, "/tmp/NAME.XXXXXX"). */
struct test_store_fix {
    char dir[64];
    struct chunk_store *s;
};

static inline int test_store_setup(void **state, const char *tmpl)
{
    struct test_store_fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    snprintf(fx->dir, sizeof(fx->dir), "%s", tmpl);
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(chunk_store_open(fx->dir, &fx->s), 0);
    *state = fx;
    return 0;
}

static inline int test_store_teardown(void **state)
{
    struct test_store_fix *fx = *state;

    chunk_store_close(fx->s);
    test_rm_tree(fx->dir);
    free(fx);
    return 0;
}

#endif
