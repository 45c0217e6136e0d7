/* Tests for vmdisk/vd_limits.c: tessera-nbd's connections per address
 * and sessions per TLS name, over plain vd_conn structs (no sockets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "conn_limit.h"
#include "vd_internal.h"

static void conn_init(struct vd_conn *c, const struct vd_config *cfg,
                      const char *peer, const char *tls_user)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->peer = c->id.peer = peer;
    c->id.tls_user = tls_user;
}

static void test_vd_limits_per_address(void **state)
{
    struct vd_config cfg = {0};
    struct vd_conn a, b, u;
    char why[256];

    (void)state;
    assert_int_equal(conn_limit_new(1, 0, &cfg.limits), 0);
    conn_init(&a, &cfg, "10.0.0.1:40000", NULL);
    conn_init(&b, &cfg, "10.0.0.1:40001", NULL);
    conn_init(&u, &cfg, "unix:/run/nbd.sock", NULL);
    vd_limits_take_addr(&a);
    vd_limits_take_addr(&b);
    vd_limits_take_addr(&u); /* unix sockets are not counted */
    assert_int_equal(vd_limits_check(&a, why, sizeof(why)), 0);
    assert_int_equal(vd_limits_check(&u, why, sizeof(why)), 0);
    assert_int_equal(vd_limits_check(&b, why, sizeof(why)), -EUSERS);
    assert_string_equal(why, "too many connections from 10.0.0.1 (limit 1): "
                             "close one first");
    vd_limits_release(&b); /* counted nothing: gives nothing back */
    assert_int_equal(conn_limit_count(cfg.limits, CONN_LIMIT_ADDR, "10.0.0.1"),
                     1);
    vd_limits_release(&a);
    assert_int_equal(conn_limit_count(cfg.limits, CONN_LIMIT_ADDR, "10.0.0.1"),
                     0);
    conn_limit_free(cfg.limits);
}

static void test_vd_limits_per_tls_name(void **state)
{
    struct vd_config cfg = {0};
    struct vd_conn a, b, plain;
    char why[256];

    (void)state;
    assert_int_equal(conn_limit_new(0, 1, &cfg.limits), 0);
    conn_init(&a, &cfg, "10.0.0.1:1", "nbd.hv3");
    conn_init(&b, &cfg, "10.0.0.2:1", "nbd.hv3");
    conn_init(&plain, &cfg, "10.0.0.3:1", NULL);
    assert_int_equal(vd_limits_check(&a, why, sizeof(why)), 0);
    /* A second export of the same connection counts nothing more. */
    assert_int_equal(vd_limits_check(&a, why, sizeof(why)), 0);
    assert_int_equal(vd_limits_check(&b, why, sizeof(why)), -EUSERS);
    assert_string_equal(why, "too many sessions of identity nbd.hv3 "
                             "(limit 1): close one first");
    assert_int_equal(vd_limits_check(&plain, why, sizeof(why)), 0);
    vd_limits_release(&a);
    assert_int_equal(vd_limits_check(&b, why, sizeof(why)), 0);
    vd_limits_release(&b);
    assert_int_equal(
        conn_limit_count(cfg.limits, CONN_LIMIT_IDENTITY, "nbd.hv3"), 0);
    conn_limit_free(cfg.limits);
}

static void test_vd_limits_none(void **state)
{
    struct vd_config cfg = {0};
    struct vd_conn a;
    char why[64];

    (void)state;
    conn_init(&a, &cfg, "10.0.0.1:1", "nbd.hv3");
    vd_limits_take_addr(&a);
    assert_int_equal(vd_limits_check(&a, why, sizeof(why)), 0);
    vd_limits_release(&a);
}

int test_vd_limits(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_limits_per_address),
        cmocka_unit_test(test_vd_limits_per_tls_name),
        cmocka_unit_test(test_vd_limits_none),
    };
    return cmocka_run_group_tests_name("vmdisk/vd_limits", tests, NULL, NULL);
}
