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
    assert_int_equal(adm_parse_size("4096", &v, NULL), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(adm_parse_size("512M", &v, NULL), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(adm_parse_size("10G", &v, NULL), 0);
    assert_int_equal(v, 10ull << 30);
    assert_int_equal(adm_parse_size("1TiB", &v, NULL), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(adm_parse_size("3k", &v, NULL), 0);
    assert_int_equal(v, 3072);
    assert_int_equal(adm_parse_size("0", &v, NULL), 0);
    assert_int_equal(v, 0);
}

static void test_adm_parse_size_rejects(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(adm_parse_size("", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("-1G", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("G", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("10X", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("10GG", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("1.5G", &v, NULL), -EINVAL);
    assert_int_equal(adm_parse_size("99999999999P", &v, NULL), -EFBIG);
}

/* Each refusal says which part is wrong. */
static void test_adm_parse_size_says_why(void **state)
{
    static const struct {
        const char *in, *why;
    } cases[] = {
        {"10Q", "unit after the number"},
        {"-1", "negative"},
        {"1.5G", "whole"},
        {"", "empty"},
        {"G", "does not start with a number"},
        {"10GX", "follows the unit"},
        {"16E", "larger than 8 EiB"},
    };
    uint64_t v;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        assert_true(adm_parse_size(cases[i].in, &v, &why) < 0);
        assert_non_null(why);
        assert_non_null(strstr(why, cases[i].why));
    }
    assert_int_equal(adm_parse_size("2E", &v, &why), 0);
    assert_null(why);
    assert_int_equal(v, 2ull << 60);
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
        cmocka_unit_test(test_adm_parse_size_says_why),
        cmocka_unit_test(test_adm_split_path_cases),
    };
    return cmocka_run_group_tests_name("adm_image", tests, NULL, NULL);
}
