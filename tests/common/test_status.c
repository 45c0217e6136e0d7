/* Tests for common/status.c: taking a STATUS_REP apart. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"
#include "status.h"

/* Build a STATUS_REP body from @n key/value pairs.  Caller frees @out. */
static void build(struct proto_wbuf *out, const char *const *kv, uint32_t n)
{
    struct proto_wbuf raw;
    struct proto_status_rep rep;

    proto_wbuf_init(&raw);
    for (uint32_t i = 0; i < n; i++)
        proto_kv_put(&raw, kv[2 * i], kv[2 * i + 1]);
    rep.count = n;
    rep.raw.p = (const char *)raw.p;
    rep.raw.len = (uint32_t)raw.len;
    proto_wbuf_init(out);
    proto_status_rep_encode(out, &rep);
    assert_int_equal(out->err, 0);
    proto_wbuf_free(&raw);
}

static void test_status_parse_sorts_pairs(void **state)
{
    static const char *const kv[] = {
        "meta.version", "0.1.0",
        "inodes",       "7",
        "session.12",   "tessera-mount my host h1 250ms",
        "server.3",     "10.0.0.7:9422 up free=1024 chunks=5",
        "server.4",     "10.0.0.8:9422 down free=0 chunks=0",
    };
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 5);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_int_equal(st.nkv, 2);
    assert_string_equal(status_report_get(&st, "meta.version"), "0.1.0");
    assert_string_equal(status_report_get(&st, "inodes"), "7");
    assert_null(status_report_get(&st, "files"));

    assert_int_equal(st.nsessions, 1);
    assert_int_equal(st.sessions[0].id, 12);
    assert_string_equal(st.sessions[0].name, "tessera-mount my host");
    assert_string_equal(st.sessions[0].host, "h1");
    assert_int_equal(st.sessions[0].idle_ms, 250);

    assert_int_equal(st.nservers, 2);
    assert_int_equal(st.servers[0].id, 3);
    assert_string_equal(st.servers[0].addr, "10.0.0.7:9422");
    assert_true(st.servers[0].up);
    assert_int_equal(st.servers[0].free, 1024);
    assert_int_equal(st.servers[0].chunks, 5);
    assert_false(st.servers[1].up);
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_parse_truncated(void **state)
{
    static const char *const kv[] = {"inodes", "7"};
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 1);
    assert_int_equal(status_report_parse(w.p, w.len - 1, &st), -EPROTO);
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_healthy_all_up(void **state)
{
    static const char *const kv[] = {
        "server.1",
        "a:1 up free=1 chunks=0",
        "server.2",
        "b:1 up free=1 chunks=0",
    };
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 2);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_true(status_report_healthy(&st));
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_parse_server_states(void **state)
{
    static const char *const kv[] = {
        "server.1",
        "a:1 draining free=1 chunks=2 capacity=10 used=5 replicas=3 "
        "since=123 hb_ms=400 draining=1",
        "server.2",
        "b:1 suspect free=1 chunks=0",
    };
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 2);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_int_equal(st.nservers, 2);
    assert_string_equal(st.servers[0].state, "draining");
    assert_true(st.servers[0].up);
    assert_true(st.servers[0].draining);
    assert_int_equal(st.servers[0].capacity, 10);
    assert_int_equal(st.servers[0].used, 5);
    assert_int_equal(st.servers[0].replicas, 3);
    assert_int_equal(st.servers[0].since_ns, 123);
    assert_int_equal(st.servers[0].hb_ms, 400);
    assert_false(st.servers[1].up);
    assert_ptr_equal(status_report_server(&st, 2), &st.servers[1]);
    assert_null(status_report_server(&st, 3));
    assert_false(status_report_healthy(&st));
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_healthy_under_goal(void **state)
{
    static const char *const kv[] = {
        "server.1",
        "a:1 up free=1 chunks=0",
        "chunks.under_goal",
        "2",
    };
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 2);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_int_equal(status_report_u64(&st, "chunks.under_goal"), 2);
    assert_false(status_report_healthy(&st));
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_healthy_one_down(void **state)
{
    static const char *const kv[] = {
        "server.1",
        "a:1 up free=1 chunks=0",
        "server.2",
        "b:1 down free=1 chunks=0",
    };
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 2);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_false(status_report_healthy(&st));
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_healthy_no_servers(void **state)
{
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, NULL, 0);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_true(status_report_healthy(&st));
    status_report_free(&st);
    proto_wbuf_free(&w);
}

static void test_status_parse_session_without_idle(void **state)
{
    static const char *const kv[] = {"session.5", "lonely"};
    struct proto_wbuf w;
    struct status_report st;

    (void)state;
    build(&w, kv, 1);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    assert_int_equal(st.nsessions, 1);
    assert_string_equal(st.sessions[0].name, "lonely");
    assert_string_equal(st.sessions[0].host, "");
    assert_int_equal(st.sessions[0].idle_ms, 0);
    status_report_free(&st);
    proto_wbuf_free(&w);
}

/* The JSON of `tessera status --json` and /api/status: meta.* under
 * "meta", numbers as numbers, text escaped, sessions with their callback
 * counters, servers with their figures. */
static void test_status_report_json_document(void **state)
{
    static const char *const kv[] = {
        "meta.version",
        "0.1.0",
        "meta.data_dir",
        "/srv/a\"b",
        "chunks.under_goal",
        "0",
        "session.12",
        "tessera-mount h1 250ms",
        "cache.12",
        "promises=4 sent=3 answered=2 timedout=1 recalls=5",
        "server.3",
        "10.0.0.7:9422 up free=1024 chunks=5 capacity=4096 "
        "used=2048 replicas=6 since=17 hb_ms=900",
    };
    struct proto_wbuf w;
    struct status_report st;
    struct metrics_buf b;

    (void)state;
    build(&w, kv, 6);
    assert_int_equal(status_report_parse(w.p, w.len, &st), 0);
    metrics_buf_init(&b);
    status_report_json(&b, "127.0.0.1:9420", &st);
    assert_int_equal(b.err, 0);
    assert_non_null(strstr(b.p, "\"address\": \"127.0.0.1:9420\",\n  "
                                "\"healthy\": true,\n  \"meta\": {\n    "
                                "\"version\": \"0.1.0\",\n    "
                                "\"data_dir\": \"/srv/a\\\"b\"\n  }"));
    assert_non_null(strstr(b.p, "\"chunks.under_goal\": 0,"));
    assert_non_null(strstr(b.p, "{\"id\": 12, \"name\": \"tessera-mount\", "
                                "\"host\": \"h1\", \"idle_ms\": 250, "
                                "\"callbacks\": true, \"cached_files\": 4, "
                                "\"breaks_sent\": 3, \"breaks_answered\": 2, "
                                "\"breaks_timedout\": 1, \"recalls\": 5}"));
    assert_non_null(strstr(b.p, "{\"id\": 3, \"addr\": \"10.0.0.7:9422\", "
                                "\"up\": true, \"state\": \"up\", "
                                "\"since_ns\": 17, \"heartbeat_ms\": 900, "
                                "\"free\": 1024, \"capacity\": 4096, "
                                "\"used\": 2048, \"replicas\": 6, "
                                "\"chunks\": 5}"));
    metrics_buf_free(&b);
    status_report_free(&st);
    proto_wbuf_free(&w);
}

int test_status(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_parse_sorts_pairs),
        cmocka_unit_test(test_status_parse_truncated),
        cmocka_unit_test(test_status_healthy_all_up),
        cmocka_unit_test(test_status_healthy_one_down),
        cmocka_unit_test(test_status_parse_server_states),
        cmocka_unit_test(test_status_healthy_under_goal),
        cmocka_unit_test(test_status_healthy_no_servers),
        cmocka_unit_test(test_status_parse_session_without_idle),
        cmocka_unit_test(test_status_report_json_document),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
