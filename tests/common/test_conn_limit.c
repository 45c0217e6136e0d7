/* Tests for common/conn_limit.c: counts per address and per identity,
 * refusals at the limit, give-backs, and address keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>

#include "conn_limit.h"

static void test_conn_limit_take_refuses_past_limit(void **state)
{
    struct conn_limit *t;

    (void)state;
    assert_int_equal(conn_limit_new(2, 5, &t), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "10.0.0.1"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "10.0.0.1"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "10.0.0.1"),
                     -EUSERS);
    /* A refusal counts nothing, and other addresses are not affected. */
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, "10.0.0.1"), 2);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "10.0.0.2"), 0);
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, "10.0.0.2"), 1);
    conn_limit_free(t);
}

static void test_conn_limit_put_makes_room(void **state)
{
    struct conn_limit *t;

    (void)state;
    assert_int_equal(conn_limit_new(1, 1, &t), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_IDENTITY, "client.a"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_IDENTITY, "client.a"),
                     -EUSERS);
    conn_limit_put(t, CONN_LIMIT_IDENTITY, "client.a");
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_IDENTITY, "client.a"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_IDENTITY, "client.a"), 0);
    conn_limit_free(t);
}

static void test_conn_limit_kinds_count_apart(void **state)
{
    struct conn_limit *t;

    (void)state;
    assert_int_equal(conn_limit_new(1, 1, &t), 0);
    /* The same text as an address and as an identity are two keys. */
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "x"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_IDENTITY, "x"), 0);
    assert_int_equal(conn_limit_take(t, CONN_LIMIT_IDENTITY, "x"), -EUSERS);
    assert_int_equal(conn_limit_max(t, CONN_LIMIT_ADDR), 1);
    conn_limit_free(t);
}

static void test_conn_limit_zero_is_unlimited(void **state)
{
    struct conn_limit *t;

    (void)state;
    assert_int_equal(conn_limit_new(0, 0, &t), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, "h"), 0);
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, "h"), 1000);
    conn_limit_free(t);
}

static void test_conn_limit_many_keys_removed_when_empty(void **state)
{
    struct conn_limit *t;
    char key[32];

    (void)state;
    assert_int_equal(conn_limit_new(1, 1, &t), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 10, i % 10);
        assert_int_equal(conn_limit_take(t, CONN_LIMIT_ADDR, key), 0);
    }
    for (int i = 0; i < 100; i += 2) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 10, i % 10);
        conn_limit_put(t, CONN_LIMIT_ADDR, key);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 10, i % 10);
        assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, key), i % 2);
    }
    /* A put of a key never taken changes nothing. */
    conn_limit_put(t, CONN_LIMIT_ADDR, "192.0.2.1");
    assert_int_equal(conn_limit_count(t, CONN_LIMIT_ADDR, "10.0.0.1"), 1);
    conn_limit_free(t);
}

static void test_conn_limit_addr_key_drops_port(void **state)
{
    char buf[64];

    (void)state;
    conn_limit_addr_key("127.0.0.1:51234", buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1");
    conn_limit_addr_key("[::1]:9420", buf, sizeof(buf));
    assert_string_equal(buf, "::1");
    conn_limit_addr_key("unix:/run/x.sock", buf, sizeof(buf));
    assert_string_equal(buf, "unix");
    conn_limit_addr_key("noport", buf, sizeof(buf));
    assert_string_equal(buf, "noport");
    conn_limit_addr_key("192.168.100.200:1", buf, 8);
    assert_string_equal(buf, "192.168");
}

int test_conn_limit(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_limit_take_refuses_past_limit),
        cmocka_unit_test(test_conn_limit_put_makes_room),
        cmocka_unit_test(test_conn_limit_kinds_count_apart),
        cmocka_unit_test(test_conn_limit_zero_is_unlimited),
        cmocka_unit_test(test_conn_limit_many_keys_removed_when_empty),
        cmocka_unit_test(test_conn_limit_addr_key_drops_port),
    };
    return cmocka_run_group_tests_name("common/conn_limit", tests, NULL, NULL);
}
