/* Tests for vmdisk/vd_file.c: the directory backend over a temp dir,
 * including names that try to leave it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd_backend.h"

struct fx {
    char dir[64];
    struct vd_backend *be;
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    char path[128];
    int fd;

    strcpy(fx->dir, "/tmp/test_vd_file.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(path, sizeof(path), "%s/sub", fx->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/sub/img.raw", fx->dir);
    fd = open(path, O_CREAT | O_RDWR, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 8 << 20), 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/escape", fx->dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(vd_file_new(fx->dir, &fx->be), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    vd_backend_free(fx->be);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void test_vd_file_new_missing_dir(void **state)
{
    struct vd_backend *be;
    (void)state;
    assert_int_equal(vd_file_new("/nonexistent/dir", &be), -ENOENT);
}

static void test_vd_file_open_rejects_escapes(void **state)
{
    struct fx *fx = *state;
    const struct vd_backend_ops *ops = fx->be->ops;
    struct vd_image *img = NULL;
    static const char *bad[] = {"/etc/passwd",  "../etc/passwd", "sub/../x",
                                "sub//img.raw", "./sub/img.raw", "sub/"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ops->open(fx->be->ctx, bad[i], true, &img, NULL, 0),
                         -EINVAL);
    assert_int_equal(ops->open(fx->be->ctx, "escape", true, &img, NULL, 0),
                     -EACCES);
    assert_int_equal(ops->open(fx->be->ctx, "nosuch", true, &img, NULL, 0),
                     -ENOENT);
    assert_int_equal(ops->open(fx->be->ctx, "sub", true, &img, NULL, 0),
                     -ENOENT);
    assert_null(img);
}

static int ext_cb(void *arg, uint64_t length, uint32_t flags)
{
    uint64_t *e = arg; /* [n, len0, flags0, len1, flags1, ...] */
    if (e[0] == 8)
        return 1;
    e[1 + 2 * e[0]] = length;
    e[2 + 2 * e[0]] = flags;
    e[0]++;
    return 0;
}

static void test_vd_file_io_round_trip(void **state)
{
    struct fx *fx = *state;
    const struct vd_backend_ops *ops = fx->be->ops;
    struct vd_image *img;
    uint8_t data[4096], buf[4096];
    uint64_t e[17] = {0};

    assert_int_equal(
        ops->open(fx->be->ctx, "sub/img.raw", false, &img, NULL, 0), 0);
    assert_int_equal(ops->size(img), 8 << 20);
    memset(data, 0xc3, sizeof(data));
    assert_int_equal(ops->pwrite(img, data, 4096, 1 << 20, true), 0);
    assert_int_equal(ops->flush(img), 0);
    assert_int_equal(ops->pread(img, buf, 4096, 1 << 20), 0);
    assert_memory_equal(buf, data, 4096);
    assert_int_equal(ops->block_status(img, 8 << 20, 0, ext_cb, e), 0);
    assert_true(e[0] >= 2);
    /* The first extent is a hole, and the extents cover the request. */
    assert_int_equal(e[2], VD_EXTENT_HOLE | VD_EXTENT_ZERO);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < e[0]; i++)
        sum += e[1 + 2 * i];
    assert_int_equal(sum, 8 << 20);
    /* Zeroing: fast with holes allowed, then read back zeros. */
    assert_int_equal(ops->zero(img, 4096, 1 << 20, true, false), 0);
    assert_int_equal(ops->pread(img, buf, 4096, 1 << 20), 0);
    memset(data, 0, sizeof(data));
    assert_memory_equal(buf, data, 4096);
    assert_int_equal(ops->trim(img, 4096, 0, true), 0);
    ops->close(img);
}

static void test_vd_file_open_readonly(void **state)
{
    struct fx *fx = *state;
    const struct vd_backend_ops *ops = fx->be->ops;
    struct vd_image *img;
    uint8_t b = 1;

    assert_int_equal(ops->open(fx->be->ctx, "sub/img.raw", true, &img, NULL, 0),
                     0);
    assert_true(img->readonly);
    assert_int_equal(ops->pwrite(img, &b, 1, 0, false), -EBADF);
    ops->close(img);
}

static int list_cb(void *arg, const char *name)
{
    int *found = arg;
    if (!strcmp(name, "sub/img.raw"))
        (*found)++;
    else
        fail_msg("unexpected export %s", name);
    return 0;
}

static void test_vd_file_list_walks_subdirs(void **state)
{
    struct fx *fx = *state;
    int found = 0;

    /* The symlink is not listed; the file under sub/ is. */
    assert_int_equal(fx->be->ops->list(fx->be->ctx, list_cb, &found), 0);
    assert_int_equal(found, 1);
}

int test_vd_file(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_file_new_missing_dir),
        cmocka_unit_test_setup_teardown(test_vd_file_open_rejects_escapes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_vd_file_io_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vd_file_open_readonly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_vd_file_list_walks_subdirs, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("vd_file", tests, NULL, NULL);
}
