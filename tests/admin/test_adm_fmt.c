/* Tests for admin/adm_fmt.c: JSON strings, sizes, durations, numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

/* adm_json_str() of @n bytes at @s, as a string the caller frees. */
static char *json_of(const char *s, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    adm_json_str(f, s, n);
    fclose(f);
    return buf;
}

static void test_adm_json_str_plain(void **state)
{
    char *s = json_of("abc", 3);

    (void)state;
    assert_string_equal(s, "\"abc\"");
    free(s);
}

static void test_adm_json_str_escapes(void **state)
{
    char *s = json_of("a\"b\\c\nd\x01", 8);

    (void)state;
    assert_string_equal(s, "\"a\\\"b\\\\c\\nd\\u0001\"");
    free(s);
}

static void test_adm_json_str_embedded_nul(void **state)
{
    char *s = json_of("a\0b", 3);

    (void)state;
    assert_string_equal(s, "\"a\\u0000b\"");
    free(s);
}

static void test_adm_fmt_bytes_units(void **state)
{
    char buf[32];

    (void)state;
    adm_fmt_bytes(0, buf, sizeof(buf));
    assert_string_equal(buf, "0 B");
    adm_fmt_bytes(1023, buf, sizeof(buf));
    assert_string_equal(buf, "1023 B");
    adm_fmt_bytes(1536, buf, sizeof(buf));
    assert_string_equal(buf, "1.5 KiB");
    adm_fmt_bytes(64ull << 30, buf, sizeof(buf));
    assert_string_equal(buf, "64.0 GiB");
}

static void test_adm_fmt_ms_units(void **state)
{
    char buf[32];

    (void)state;
    adm_fmt_ms(250, buf, sizeof(buf));
    assert_string_equal(buf, "250ms");
    adm_fmt_ms(4500, buf, sizeof(buf));
    assert_string_equal(buf, "4.5s");
    adm_fmt_ms(185000, buf, sizeof(buf));
    assert_string_equal(buf, "3m05s");
}

static void test_adm_fmt_secs_ranges(void **state)
{
    char buf[32];

    (void)state;
    adm_fmt_secs(42, buf, sizeof(buf));
    assert_string_equal(buf, "42s");
    adm_fmt_secs(3723, buf, sizeof(buf));
    assert_string_equal(buf, "1h02m03s");
    adm_fmt_secs(90061, buf, sizeof(buf));
    assert_string_equal(buf, "1d01h01m");
}

static void test_status_parse_u64_strict(void **state)
{
    uint64_t v = 7;

    (void)state;
    assert_true(status_parse_u64("18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
    assert_false(status_parse_u64("18446744073709551616", &v));
    assert_false(status_parse_u64("", &v));
    assert_false(status_parse_u64("-1", &v));
    assert_false(status_parse_u64(" 1", &v));
    assert_false(status_parse_u64("12ms", &v));
}

int test_adm_fmt(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_json_str_plain),
        cmocka_unit_test(test_adm_json_str_escapes),
        cmocka_unit_test(test_adm_json_str_embedded_nul),
        cmocka_unit_test(test_adm_fmt_bytes_units),
        cmocka_unit_test(test_adm_fmt_secs_ranges),
        cmocka_unit_test(test_adm_fmt_ms_units),
        cmocka_unit_test(test_status_parse_u64_strict),
    };
    return cmocka_run_group_tests_name("adm_fmt", tests, NULL, NULL);
}
