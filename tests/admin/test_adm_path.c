/* Tests for admin/adm_path.c: paths inside a Tessera mount made namespace
 * paths, from a mount table given as text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

static const char *const table =
    "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
    "44 26 0:39 / /mnt/t rw,nosuid,nodev shared:1 - fuse.tessera tessera "
    "rw,user_id=0\n"
    "45 26 0:40 / /mnt/other rw - fuse.sshfs host:/ rw\n"
    "46 44 0:41 / /mnt/t/over rw - tmpfs tmpfs rw\n"
    "47 26 0:42 / /mnt/with\\040space rw - fuse.tessera tessera rw\n";

static int ns(const char *real, char *out)
{
    return adm_mount_ns_path(table, real, out, 256);
}

static void test_adm_mount_ns_path_inside(void **state)
{
    char out[256];
    (void)state;
    assert_int_equal(ns("/mnt/t/images/vm.img", out), 1);
    assert_string_equal(out, "/images/vm.img");
    assert_int_equal(ns("/mnt/t", out), 1);
    assert_string_equal(out, "/");
    assert_int_equal(ns("/mnt/with space/a", out), 1);
    assert_string_equal(out, "/a");
}

static void test_adm_mount_ns_path_elsewhere(void **state)
{
    char out[256];
    (void)state;
    assert_int_equal(ns("/images/vm.img", out), 0);
    assert_int_equal(ns("/mnt/other/x", out), 0);
    assert_int_equal(ns("/mnt/tx/y", out), 0); /* not a component prefix */
    /* A mount over a folder of the Tessera mount hides it. */
    assert_int_equal(ns("/mnt/t/over/f", out), 0);
}

static void test_adm_mount_ns_path_too_long(void **state)
{
    char out[8];
    (void)state;
    assert_int_equal(
        adm_mount_ns_path(table, "/mnt/t/a-long-name", out, sizeof(out)),
        -ENAMETOOLONG);
}

int test_adm_path(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_mount_ns_path_inside),
        cmocka_unit_test(test_adm_mount_ns_path_elsewhere),
        cmocka_unit_test(test_adm_mount_ns_path_too_long),
    };
    return cmocka_run_group_tests_name("adm_path", tests, NULL, NULL);
}
