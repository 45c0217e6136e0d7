/* Tests for vmdisk/vd_mem.c: the sparse in-memory backend, called
 * directly through its operations table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vd_backend.h"

#define PAGE 65536u

struct ext {
    uint64_t len[16];
    uint32_t flags[16];
    int n;
};

static int ext_cb(void *arg, uint64_t length, uint32_t flags)
{
    struct ext *e = arg;
    if (e->n == 16)
        return 1;
    e->len[e->n] = length;
    e->flags[e->n++] = flags;
    return 0;
}

static int setup(void **state)
{
    struct vd_backend *be;
    assert_int_equal(vd_mem_new(&be), 0);
    assert_int_equal(vd_mem_add(be, "a", 64 * PAGE + 100), 0);
    *state = be;
    return 0;
}

static int teardown(void **state)
{
    vd_backend_free(*state);
    return 0;
}

static struct vd_image *open_a(struct vd_backend *be, bool ro)
{
    struct vd_image *img;
    assert_int_equal(be->ops->open(be->ctx, "a", ro, &img, NULL, 0), 0);
    return img;
}

static void test_vd_mem_add_duplicate_and_empty(void **state)
{
    struct vd_backend *be = *state;
    assert_int_equal(vd_mem_add(be, "a", 1), -EEXIST);
    assert_int_equal(vd_mem_add(be, "", 1), -EINVAL);
    assert_int_equal(vd_mem_fail_next(be, "nosuch", -EIO), -ENOENT);
}

static void test_vd_mem_open_unknown(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *img = NULL;
    assert_int_equal(be->ops->open(be->ctx, "b", false, &img, NULL, 0),
                     -ENOENT);
    assert_null(img);
}

static void test_vd_mem_pread_unwritten_is_zero(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *img = open_a(be, false);
    uint8_t buf[300], zero[300] = {0};

    memset(buf, 0xff, sizeof(buf));
    assert_int_equal(be->ops->size(img), 64 * PAGE + 100);
    assert_int_equal(be->ops->pread(img, buf, 300, 64 * PAGE - 200), 0);
    assert_memory_equal(buf, zero, 300);
    be->ops->close(img);
}

static void test_vd_mem_pwrite_across_pages_shared(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *w = open_a(be, false), *r = open_a(be, true);
    uint8_t data[1000], buf[1000];

    for (int i = 0; i < 1000; i++)
        data[i] = (uint8_t)i;
    assert_int_equal(be->ops->pwrite(w, data, 1000, PAGE - 500, true), 0);
    /* A second image of the same name sees it (multi-conn). */
    assert_int_equal(be->ops->pread(r, buf, 1000, PAGE - 500), 0);
    assert_memory_equal(buf, data, 1000);
    assert_int_equal(be->ops->pwrite(r, data, 10, 0, false), -EROFS);
    assert_true(be->caps & VD_BACKEND_MULTI_CONN);
    be->ops->close(w);
    be->ops->close(r);
}

static void test_vd_mem_block_status_runs(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *img = open_a(be, false);
    uint8_t b = 1;
    struct ext e = {0};

    assert_int_equal(be->ops->pwrite(img, &b, 1, 3 * PAGE + 7, false), 0);
    assert_int_equal(be->ops->pwrite(img, &b, 1, 4 * PAGE, false), 0);
    assert_int_equal(be->ops->block_status(img, 8 * PAGE, 0, ext_cb, &e), 0);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.len[0], 3 * PAGE);
    assert_int_equal(e.flags[0], VD_EXTENT_HOLE | VD_EXTENT_ZERO);
    assert_int_equal(e.len[1], 2 * PAGE);
    assert_int_equal(e.flags[1], 0);
    assert_int_equal(e.len[2], 3 * PAGE);
    /* The tail page past a whole number of pages. */
    memset(&e, 0, sizeof(e));
    assert_int_equal(be->ops->block_status(img, 100, 64 * PAGE, ext_cb, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.len[0], 100);
    be->ops->close(img);
}

static void test_vd_mem_zero_and_trim(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *img = open_a(be, false);
    uint8_t *data = malloc(3 * PAGE), *buf = malloc(3 * PAGE);
    struct ext e = {0};

    memset(data, 0x5a, 3 * PAGE);
    assert_int_equal(be->ops->pwrite(img, data, 3 * PAGE, 0, false), 0);
    /* Zero with trim: page 1 whole becomes a hole, edges zeroed. */
    assert_int_equal(be->ops->zero(img, PAGE + 20, PAGE - 10, true, true), 0);
    assert_int_equal(be->ops->pread(img, buf, 3 * PAGE, 0), 0);
    for (uint32_t i = 0; i < 3 * PAGE; i++)
        assert_int_equal(buf[i],
                         i >= PAGE - 10 && i < 2 * PAGE + 10 ? 0 : 0x5a);
    assert_int_equal(be->ops->block_status(img, 3 * PAGE, 0, ext_cb, &e), 0);
    assert_int_equal(e.n, 3);
    assert_int_equal(e.flags[1], VD_EXTENT_HOLE | VD_EXTENT_ZERO);
    /* Zero without trim allocates. */
    memset(&e, 0, sizeof(e));
    assert_int_equal(be->ops->zero(img, PAGE, 10 * PAGE, false, false), 0);
    assert_int_equal(be->ops->block_status(img, PAGE, 10 * PAGE, ext_cb, &e),
                     0);
    assert_int_equal(e.flags[0], 0);
    /* Trim of whole pages. */
    memset(&e, 0, sizeof(e));
    assert_int_equal(be->ops->trim(img, 3 * PAGE, 0, false), 0);
    assert_int_equal(be->ops->block_status(img, 3 * PAGE, 0, ext_cb, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.flags[0], VD_EXTENT_HOLE | VD_EXTENT_ZERO);
    free(data);
    free(buf);
    be->ops->close(img);
}

static int list_cb(void *arg, const char *name)
{
    int *n = arg;
    assert_string_equal(name, "a");
    (*n)++;
    return 0;
}

static void test_vd_mem_list_and_fail_next(void **state)
{
    struct vd_backend *be = *state;
    struct vd_image *img = open_a(be, false);
    uint8_t b;
    int n = 0;

    assert_int_equal(be->ops->list(be->ctx, list_cb, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vd_mem_fail_next(be, "a", -EIO), 0);
    assert_int_equal(be->ops->pread(img, &b, 1, 0), -EIO);
    assert_int_equal(be->ops->pread(img, &b, 1, 0), 0); /* once only */
    be->ops->close(img);
}

int test_vd_mem(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vd_mem_add_duplicate_and_empty,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_open_unknown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_pread_unwritten_is_zero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_pwrite_across_pages_shared,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_block_status_runs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_zero_and_trim, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vd_mem_list_and_fail_next, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("vd_mem", tests, NULL, NULL);
}
