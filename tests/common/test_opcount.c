/* Tests for common/opcount.c: requests, errors by kind and payload bytes
 * by message, and their rendering as Prometheus counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "opcount.h"
#include "proto.h"

static void test_opcount_served_by_op_and_wire_error(void **state)
{
    static struct opcount c;
    struct metrics_buf b;

    (void)state;
    opcount_request(&c, PROTO_MSG_CHUNK_READ_REQ, 24);
    opcount_request(&c, PROTO_MSG_CHUNK_READ_REQ, 24);
    opcount_reply_wire(&c, PROTO_MSG_CHUNK_READ_REQ, 0, 4096);
    opcount_reply_wire(&c, PROTO_MSG_CHUNK_READ_REQ, PROTO_EOLDVER, 0);
    opcount_request(&c, 0x7ffd, 10); /* unknown: not counted */
    metrics_buf_init(&b);
    opcount_render(&c, &b, "t_", "answered");
    assert_int_equal(b.err, 0);
    assert_non_null(strstr(b.p, "# TYPE t_requests_total counter\n"
                                "t_requests_total{op=\"CHUNK_READ\"} 2\n"));
    assert_non_null(strstr(b.p, "t_request_errors_total{op=\"CHUNK_READ\","
                                "error=\"EOLDVER\"} 1\n"));
    assert_non_null(
        strstr(b.p, "t_request_bytes_total{op=\"CHUNK_READ\"} 48\n"));
    assert_non_null(
        strstr(b.p, "t_response_bytes_total{op=\"CHUNK_READ\"} 4096\n"));
    /* Only what was counted: one series per family. */
    assert_null(strstr(b.p, "CHUNK_WRITE"));
    metrics_buf_free(&b);
}

static void test_opcount_called_by_errno(void **state)
{
    static struct opcount c;
    struct metrics_buf b;

    (void)state;
    opcount_request(&c, PROTO_MSG_LOOKUP_REQ, 5);
    opcount_reply_status(&c, PROTO_MSG_LOOKUP_REQ, -ETIMEDOUT, 0);
    opcount_request(&c, PROTO_MSG_LOOKUP_REQ, 5);
    opcount_reply_status(&c, PROTO_MSG_LOOKUP_REQ, -ENOENT, 0);
    opcount_request(&c, PROTO_MSG_LOOKUP_REQ, 5);
    opcount_reply_status(&c, PROTO_MSG_LOOKUP_REQ, -200, 0);
    metrics_buf_init(&b);
    opcount_render(&c, &b, "t_", "sent");
    assert_non_null(strstr(b.p, "t_requests_total{op=\"LOOKUP\"} 3\n"));
    assert_non_null(strstr(b.p, "{op=\"LOOKUP\",error=\"ENOENT\"} 1\n"));
    assert_non_null(strstr(b.p, "{op=\"LOOKUP\",error=\"ETIMEDOUT\"} 1\n"));
    assert_non_null(strstr(b.p, "{op=\"LOOKUP\",error=\"other\"} 1\n"));
    assert_non_null(strstr(b.p, "# HELP t_requests_total Protocol requests "
                                "sent, by message.\n"));
    /* No reply bytes were counted, so no family either. */
    assert_null(strstr(b.p, "t_response_bytes_total"));
    metrics_buf_free(&b);
}

static void test_opcount_render_empty(void **state)
{
    static struct opcount c;
    struct metrics_buf b;

    (void)state;
    metrics_buf_init(&b);
    opcount_render(&c, &b, "t_", "sent");
    assert_int_equal(b.len, 0);
    metrics_buf_free(&b);
}

int test_opcount(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opcount_served_by_op_and_wire_error),
        cmocka_unit_test(test_opcount_called_by_errno),
        cmocka_unit_test(test_opcount_render_empty),
    };
    return cmocka_run_group_tests_name("opcount", tests, NULL, NULL);
}
