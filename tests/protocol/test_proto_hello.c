/* Tests for protocol/proto_hello.c: the empty body, HELLO, PING and the
 * SESSION_* bodies (docs/protocol.md §3, §6).
 */
#include "proto_test.h"

static void test_proto_empty_decode_roundtrip(void **state)
{
    struct proto_empty m = {0};
    struct proto_wbuf w;
    uint8_t one = 0;

    (void)state;
    proto_wbuf_init(&w);
    proto_empty_encode(&w, &m);
    assert_int_equal(w.len, 0);
    assert_int_equal(proto_empty_decode(NULL, 0, &m), 0);
    assert_int_equal(proto_empty_decode(&one, 1, &m), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_proto_hello_req_decode_roundtrip(void **state)
{
    struct proto_hello_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(hello_req, PROTO_MSG_HELLO_REQ, &in, &out, &w, &s);
    assert_int_equal(out.min_version, in.min_version);
    assert_int_equal(out.max_version, in.max_version);
    assert_int_equal(out.role, in.role);
    assert_int_equal(out.features, in.features);
    assert_int_equal(out.auth_methods, in.auth_methods);
    assert_pstr_equal(out.name, in.name);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

/* §3.1 byte layout, pinned so the document and the code agree. */
static void test_proto_hello_req_encode_layout(void **state)
{
    static const uint8_t want[] = {
        0x00, 0x01,             /* min_version */
        0x00, 0x01,             /* max_version */
        0x02,                   /* role CHUNKD */
        0x00, 0x00, 0x00, 0x00, /* features */
        0x00, 0x00, 0x00, 0x00, /* auth_methods */
        0x00, 0x02, 'c',  'd',  /* name */
    };
    struct proto_hello_req m = {1, 1, PROTO_ROLE_CHUNKD, 0, 0, {"cd", 2}};
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_hello_req_encode(&w, &m);
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.p, want, sizeof(want));
    proto_wbuf_free(&w);
}

static void test_proto_hello_req_decode_features(void **state)
{
    struct proto_hello_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(hello_req, &in, &w, &s);
    patch_be(w.p, 5, 2, 4);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 5, 0x80000000u, 4);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.features = 2; /* unknown */
    proto_hello_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    /* §3.7: SECURE only beside an authentication method. */
    proto_wbuf_reset(&w);
    in.features = PROTO_FEATURE_SECURE;
    in.auth_methods = 0;
    proto_hello_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_reset(&w);
    in.auth_methods = PROTO_AUTH_BIT(PROTO_AUTH_KEY);
    proto_hello_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.features, PROTO_FEATURE_SECURE);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_hello_req_decode_bad_role(void **state)
{
    struct proto_hello_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(hello_req, &in, &w, &s);
    for (unsigned role = PROTO_ROLE_CLIENT; role <= PROTO_ROLE_METAD; role++) {
        patch_be(w.p, 4, role, 1);
        assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), 0);
        assert_int_equal(out.role, role);
    }
    patch_be(w.p, 4, 0, 1);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, PROTO_ROLE_METAD + 1, 1);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_hello_req_decode_bad_range(void **state)
{
    struct proto_hello_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(hello_req, &in, &w, &s);
    patch_be(w.p, 0, 2, 2); /* min 2 > max... */
    patch_be(w.p, 2, 1, 2); /* ...1 */
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, 0, 2); /* min 0 */
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), -EPROTO);
    /* A range above ours is well formed: the server answers EVERSION. */
    patch_be(w.p, 0, 7, 2);
    patch_be(w.p, 2, 9, 2);
    assert_int_equal(proto_hello_req_decode(w.p, w.len, &out), 0);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_hello_rep_decode_roundtrip(void **state)
{
    struct proto_hello_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(hello_rep, PROTO_MSG_HELLO_REP, &in, &out, &w, &s);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.features, in.features);
    assert_int_equal(out.auth_method, in.auth_method);
    assert_int_equal(out.instance_id, in.instance_id);
    assert_pstr_equal(out.name, in.name);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_hello_rep_decode_features_and_auth(void **state)
{
    struct proto_hello_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(hello_rep, &in, &w, &s);
    patch_be(w.p, 2, 4, 4); /* features */
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 2, PROTO_FEATURE_SECURE, 4); /* SECURE without a method */
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 2, 0, 4);
    patch_be(w.p, 6, 1, 4); /* auth_method KEY without its nonce */
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 6, 3, 4); /* an unknown method */
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 6, 0, 4);
    patch_be(w.p, 0, 0, 2); /* version 0 */
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_ping_decode_roundtrip(void **state)
{
    struct proto_ping in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(ping, PROTO_MSG_PING_REQ, &in, &out, &w, &s);
    assert_int_equal(out.cookie, in.cookie);
    assert_int_equal(w.len, 8);
    assert_int_equal(w.p[0], 0x01);
    assert_int_equal(w.p[7], 0x08);
    assert_short_long(PROTO_MSG_PING_REP, w.p, w.len);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_session_open_req_decode_roundtrip(void **state)
{
    struct proto_session_open_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(session_open_req, PROTO_MSG_SESSION_OPEN_REQ, &in, &out, &w, &s);
    assert_int_equal(out.lease_ms, in.lease_ms);
    assert_int_equal(out.flags, in.flags);
    assert_pstr_equal(out.client_name, in.client_name);
    assert_pstr_equal(out.host, in.host);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_session_open_req_decode_unknown_flag(void **state)
{
    struct proto_session_open_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(session_open_req, &in, &w, &s);
    for (int bit = 0; bit < 32; bit++) {
        patch_be(w.p, 4, 1u << bit, 4);
        assert_int_equal(proto_session_open_req_decode(w.p, w.len, &out),
                         -EPROTO);
    }
    proto_wbuf_reset(&w);
    in.flags = 1;
    proto_session_open_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_session_open_rep_decode_roundtrip(void **state)
{
    struct proto_session_open_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(session_open_rep, PROTO_MSG_SESSION_OPEN_REP, &in, &out, &w, &s);
    assert_int_equal(out.session_id, in.session_id);
    assert_int_equal(out.lease_ms, in.lease_ms);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_session_id_decode_roundtrip(void **state)
{
    struct proto_session_id in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(session_id, PROTO_MSG_SESSION_RENEW_REQ, &in, &out, &w, &s);
    assert_int_equal(out.session_id, in.session_id);
    assert_short_long(PROTO_MSG_SESSION_CLOSE_REQ, w.p, w.len);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

static void test_proto_session_renew_rep_decode_roundtrip(void **state)
{
    struct proto_session_renew_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(session_renew_rep, PROTO_MSG_SESSION_RENEW_REP, &in, &out, &w,
              &s);
    assert_int_equal(out.lease_ms, in.lease_ms);
    proto_wbuf_free(&w);
    proto_wbuf_free(&s);
}

int test_proto_hello(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_empty_decode_roundtrip),
        cmocka_unit_test(test_proto_hello_req_decode_roundtrip),
        cmocka_unit_test(test_proto_hello_req_encode_layout),
        cmocka_unit_test(test_proto_hello_req_decode_features),
        cmocka_unit_test(test_proto_hello_req_decode_bad_role),
        cmocka_unit_test(test_proto_hello_req_decode_bad_range),
        cmocka_unit_test(test_proto_hello_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_hello_rep_decode_features_and_auth),
        cmocka_unit_test(test_proto_ping_decode_roundtrip),
        cmocka_unit_test(test_proto_session_open_req_decode_roundtrip),
        cmocka_unit_test(test_proto_session_open_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_session_open_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_session_id_decode_roundtrip),
        cmocka_unit_test(test_proto_session_renew_rep_decode_roundtrip),
    };
    return cmocka_run_group_tests_name("proto_hello", tests, NULL, NULL);
}
