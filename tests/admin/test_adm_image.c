/* Tests for admin/adm_image.c and adm_image_list.c: size and path parsing
 * of the image verbs, IMAGE_LIST entries and their tree order (the verbs
 * themselves run in tests/integration/test-snapshot.sh and
 * test-clone.sh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

static void test_adm_parse_size_units(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(adm_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(adm_parse_size("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(adm_parse_size("10G", &v), 0);
    assert_int_equal(v, 10ull << 30);
    assert_int_equal(adm_parse_size("1TiB", &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(adm_parse_size("3k", &v), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(adm_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
}

static void test_adm_parse_size_rejects(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(adm_parse_size("", &v), -EINVAL);
    assert_int_equal(adm_parse_size("-1G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("10X", &v), -EINVAL);
    assert_int_equal(adm_parse_size("10GG", &v), -EINVAL);
    assert_int_equal(adm_parse_size("1.5G", &v), -EINVAL);
    assert_int_equal(adm_parse_size("99999999999P", &v), -EFBIG);
}

static void test_adm_split_path_cases(void **state)
{
    char dir[64], name[16];

    (void)state;
    assert_int_equal(
        adm_split_path("/images/vm1.img", dir, sizeof(dir), name, sizeof(name)),
        0);
    assert_string_equal(dir, "/images");
    assert_string_equal(name, "vm1.img");
    assert_int_equal(
        adm_split_path("vm1.img", dir, sizeof(dir), name, sizeof(name)), 0);
    assert_string_equal(dir, "/");
    assert_string_equal(name, "vm1.img");
    assert_int_equal(
        adm_split_path("/a/b/", dir, sizeof(dir), name, sizeof(name)), 0);
    assert_string_equal(dir, "/a");
    assert_string_equal(name, "b");
    assert_int_equal(adm_split_path("/", dir, sizeof(dir), name, sizeof(name)),
                     -EINVAL);
    assert_int_equal(
        adm_split_path("/a/..", dir, sizeof(dir), name, sizeof(name)), -EINVAL);
    assert_int_equal(adm_split_path("/a/much-too-long-name", dir, sizeof(dir),
                                    name, sizeof(name)),
                     -EINVAL);
}

int test_adm_image(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_parse_size_units),
        cmocka_unit_test(test_adm_parse_size_rejects),
        cmocka_unit_test(test_adm_split_path_cases),
    };
    return cmocka_run_group_tests_name("adm_image", tests, NULL, NULL);
}
