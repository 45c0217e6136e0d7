/* Tests for protocol/proto_cache.c: CALLBACK_BREAK, CALLBACK_REGISTER and
 * DIR_DELEGATE. */
#include "proto_test.h"

static void test_proto_callback_break_req_decode_roundtrip(void **state)
{
    struct proto_callback_break_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(callback_break_req, PROTO_MSG_CALLBACK_BREAK_REQ, &in, &out, &w,
              &s);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.flags, in.flags);
    assert_pstr_equal(out.name, in.name);
    FREE_BUFS(&w, &s);
}

static void test_proto_callback_break_req_decode_unknown_flag(void **state)
{
    struct proto_callback_break_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(callback_break_req, &in, &w, &s);
    patch_be(w.p, 8, 0x100, 4);
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out),
                     -EPROTO);
    patch_be(w.p, 8, 0, 4); /* no flag at all */
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out),
                     -EPROTO);
    FREE_BUFS(&w, &s);
}

static void
test_proto_callback_break_req_decode_name_without_entry(void **state)
{
    struct proto_callback_break_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(callback_break_req, &in, &w, &s);
    patch_be(w.p, 8, PROTO_CB_DATA, 4);
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out),
                     -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_callback_break_req_encode_bad(void **state)
{
    struct proto_callback_break_req m = {.ino = 1, .flags = 0x40};
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_callback_break_req_encode(&w, &m);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    proto_wbuf_free(&w);
}

/* ALL (every promise of the session dropped) comes alone, with inode 0:
 * it encodes and decodes so, and any other shape is refused both ways. */
static void test_proto_callback_break_req_all(void **state)
{
    struct proto_callback_break_req all = {.ino = 0, .flags = PROTO_CB_ALL};
    struct proto_callback_break_req bad[] = {
        {.ino = 7, .flags = PROTO_CB_ALL},
        {.ino = 0, .flags = PROTO_CB_ALL | PROTO_CB_ATTR},
    };
    struct proto_callback_break_req out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_callback_break_req_encode(&w, &all);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out), 0);
    assert_true(out.ino == 0);
    assert_int_equal(out.flags, PROTO_CB_ALL);
    assert_int_equal(out.name.len, 0);
    patch_be(w.p, 0, 7, 8); /* an inode */
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out),
                     -EPROTO);
    patch_be(w.p, 0, 0, 8);
    patch_be(w.p, 8, PROTO_CB_ALL | PROTO_CB_DATA, 4); /* not alone */
    assert_int_equal(proto_callback_break_req_decode(w.p, w.len, &out),
                     -EPROTO);
    proto_wbuf_free(&w);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        proto_wbuf_init(&w);
        proto_callback_break_req_encode(&w, &bad[i]);
        assert_int_equal(w.err, -EINVAL);
        assert_int_equal(w.len, 0);
        proto_wbuf_free(&w);
    }
}

static void test_proto_callback_register_req_decode_roundtrip(void **state)
{
    struct proto_callback_register_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(callback_register_req, PROTO_MSG_CALLBACK_REGISTER_REQ, &in, &out,
              &w, &s);
    assert_int_equal(out.flags, PROTO_CALLBACK_ON);
    patch_be(w.p, 0, 0x2, 4);
    assert_int_equal(proto_callback_register_req_decode(w.p, w.len, &out),
                     -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_callback_register_rep_decode_roundtrip(void **state)
{
    struct proto_callback_register_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(callback_register_rep, PROTO_MSG_CALLBACK_REGISTER_REP, &in, &out,
              &w, &s);
    assert_int_equal(out.lease_ms, 60000);
    FREE_BUFS(&w, &s);
}

static void test_proto_dir_delegate_req_decode_roundtrip(void **state)
{
    struct proto_dir_delegate_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(dir_delegate_req, PROTO_MSG_DIR_DELEGATE_REQ, &in, &out, &w, &s);
    assert_int_equal(w.len, 12);
    assert_true(out.ino == 0x123456789abcdefull);
    assert_int_equal(out.flags, 0);
    FREE_BUFS(&w, &s);
}

/* No flag is defined: any bit set is refused both ways. */
static void test_proto_dir_delegate_req_decode_unknown_flag(void **state)
{
    struct proto_dir_delegate_req in, out;
    struct proto_dir_delegate_req bad = {.ino = 2, .flags = 0x1};
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(dir_delegate_req, &in, &w, &s);
    patch_be(w.p, 8, 0x80000000u, 4);
    assert_int_equal(proto_dir_delegate_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 8, 0x1, 4);
    assert_int_equal(proto_dir_delegate_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
    proto_wbuf_init(&w);
    proto_dir_delegate_req_encode(&w, &bad);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    proto_wbuf_free(&w);
}

/* The reply is the promise lease, in CALLBACK_REGISTER_REP's layout. */
static void test_proto_dir_delegate_rep_decode_roundtrip(void **state)
{
    struct proto_callback_register_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(callback_register_rep, PROTO_MSG_DIR_DELEGATE_REP, &in, &out, &w,
              &s);
    assert_int_equal(w.len, 4);
    assert_int_equal(out.lease_ms, 60000);
    FREE_BUFS(&w, &s);
}

static void test_proto_cache_msg_names(void **state)
{
    (void)state;
    assert_string_equal(proto_msg_name(PROTO_MSG_CALLBACK_BREAK_REQ),
                        "CALLBACK_BREAK_REQ");
    assert_true(proto_msg_is_request(PROTO_MSG_CALLBACK_REGISTER_REQ));
    assert_false(proto_msg_is_request(PROTO_MSG_CALLBACK_BREAK_REP));
    assert_string_equal(proto_msg_name(PROTO_MSG_DIR_DELEGATE_REQ),
                        "DIR_DELEGATE_REQ");
    assert_true(proto_msg_is_request(PROTO_MSG_DIR_DELEGATE_REQ));
    assert_int_equal(PROTO_MSG_DIR_DELEGATE_REP,
                     PROTO_MSG_DIR_DELEGATE_REQ + 1);
}

int test_proto_cache(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_callback_break_req_decode_roundtrip),
        cmocka_unit_test(test_proto_callback_break_req_decode_unknown_flag),
        cmocka_unit_test(
            test_proto_callback_break_req_decode_name_without_entry),
        cmocka_unit_test(test_proto_callback_break_req_encode_bad),
        cmocka_unit_test(test_proto_callback_break_req_all),
        cmocka_unit_test(test_proto_callback_register_req_decode_roundtrip),
        cmocka_unit_test(test_proto_callback_register_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_dir_delegate_req_decode_roundtrip),
        cmocka_unit_test(test_proto_dir_delegate_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_dir_delegate_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_cache_msg_names),
    };
    return cmocka_run_group_tests_name("proto_cache", tests, NULL, NULL);
}
