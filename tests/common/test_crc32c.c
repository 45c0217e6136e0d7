/* Tests for common/crc32c.c: published check values, the hardware and
 * software paths agreeing, and incremental use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

static void test_crc32c_check_value(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
}

/* RFC 3720 appendix B.4 vectors (iSCSI uses CRC32C). */
static void test_crc32c_rfc3720_vectors(void **state)
{
    uint8_t buf[32];

    (void)state;
    memset(buf, 0, sizeof(buf));
    assert_int_equal(crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    assert_int_equal(crc32c(0, buf, 32), 0x113FDB5Cu);
}

static void test_crc32c_empty_input(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, NULL, 0), 0);
    assert_int_equal(crc32c(0x12345678u, "", 0), 0x12345678u);
}

static void test_crc32c_hw_matches_sw_random(void **state)
{
    enum { MAX = 9000 };
    uint8_t *buf = malloc(MAX + 8);

    (void)state;
    assert_non_null(buf);
    if (!crc32c_hw_available()) {
        free(buf);
        skip();
    }
    srand(42);
    for (int i = 0; i < MAX + 8; i++)
        buf[i] = (uint8_t)rand();
    for (int round = 0; round < 300; round++) {
        size_t off = (size_t)rand() % 8; /* exercise unaligned heads */
        size_t n = (size_t)rand() % MAX;
        uint32_t seed = round % 2 ? (uint32_t)rand() : 0;
        assert_int_equal(crc32c_hw(seed, buf + off, n),
                         crc32c_sw(seed, buf + off, n));
    }
    free(buf);
}

static void test_crc32c_incremental_equals_oneshot(void **state)
{
    uint8_t buf[4096];

    (void)state;
    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rand();
    uint32_t whole = crc32c(0, buf, sizeof(buf));
    for (size_t cut = 0; cut <= sizeof(buf); cut += 333) {
        uint32_t c = crc32c(0, buf, cut);
        c = crc32c(c, buf + cut, sizeof(buf) - cut);
        assert_int_equal(c, whole);
        uint32_t s = crc32c_sw(0, buf, cut);
        s = crc32c_sw(s, buf + cut, sizeof(buf) - cut);
        assert_int_equal(s, whole);
    }
}

int test_crc32c(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value),
        cmocka_unit_test(test_crc32c_rfc3720_vectors),
        cmocka_unit_test(test_crc32c_empty_input),
        cmocka_unit_test(test_crc32c_hw_matches_sw_random),
        cmocka_unit_test(test_crc32c_incremental_equals_oneshot),
    };
    return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}
