/* Tests for protocol/proto_lease.c: IMAGE_LEASE and IMAGE_LEASE_WAIT. */
#include "proto_test.h"

static void test_proto_image_lease_req_decode_roundtrip(void **state)
{
    struct proto_image_lease_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(image_lease_req, PROTO_MSG_IMAGE_LEASE_REQ, &in, &out, &w, &s);
    assert_int_equal(w.len, PROTO_IMAGE_LEASE_REQ_SIZE);
    assert_int_equal(out.op, in.op);
    assert_int_equal(out.arg, in.arg);
    assert_int_equal(out.ino, in.ino);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_req_decode_unknown_op(void **state)
{
    struct proto_image_lease_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_lease_req, &in, &w, &s);
    patch_be(w.p, 0, PROTO_LEASE_OP_MAX + 1, 4);
    assert_int_equal(proto_image_lease_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, 0, 4);
    assert_int_equal(proto_image_lease_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_req_decode_arg_without_arm(void **state)
{
    struct proto_image_lease_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_lease_req, &in, &w, &s);
    patch_be(w.p, 0, PROTO_LEASE_TAKE, 4);
    assert_int_equal(proto_image_lease_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_req_encode_bad_op(void **state)
{
    struct proto_image_lease_req in = {.op = 9, .ino = 1};
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    proto_wbuf_free(&w);
}

static void test_proto_image_lease_rep_decode_roundtrip(void **state)
{
    struct proto_image_lease_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(image_lease_rep, PROTO_MSG_IMAGE_LEASE_REP, &in, &out, &w, &s);
    assert_int_equal(out.result, in.result);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.holder_session, in.holder_session);
    assert_pstr_equal(out.holder_name, in.holder_name);
    assert_pstr_equal(out.holder_host, in.holder_host);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_rep_decode_unknown_flag(void **state)
{
    struct proto_image_lease_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_lease_rep, &in, &w, &s);
    patch_be(w.p, 4, 0x4, 4);
    assert_int_equal(proto_image_lease_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, 0, 4);
    patch_be(w.p, 0, PROTO_LEASE_RESULT_MAX + 1, 4);
    assert_int_equal(proto_image_lease_rep_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_wait_decode_roundtrip(void **state)
{
    struct proto_image_lease_wait in, out;
    struct proto_wbuf w, s;
    uint64_t ino;
    uint32_t st;

    (void)state;
    ROUNDTRIP(image_lease_wait, PROTO_MSG_IMAGE_LEASE_WAIT_REQ, &in, &out, &w,
              &s);
    assert_int_equal(out.timeout_ms, in.timeout_ms);
    assert_int_equal(out.count, 2);
    proto_lease_entry_get(&out, 0, &ino, &st);
    assert_int_equal(ino, 0xabcdef01ull);
    assert_int_equal(st, PROTO_LEASE_RECALL);
    proto_lease_entry_get(&out, 1, &ino, &st);
    assert_int_equal(ino, 12);
    assert_int_equal(st, PROTO_LEASE_LOST);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_wait_decode_empty(void **state)
{
    struct proto_image_lease_wait in = {.timeout_ms = 0}, out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_image_lease_wait_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, 8);
    assert_int_equal(proto_image_lease_wait_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.count, 0);
    proto_wbuf_free(&w);
}

static void test_proto_image_lease_wait_decode_bad_state(void **state)
{
    struct proto_image_lease_wait in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_lease_wait, &in, &w, &s);
    /* the second entry's state: header 8, entry 12, ino 8 */
    patch_be(w.p, 8 + 12 + 8, 4, 4);
    assert_int_equal(proto_image_lease_wait_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_lease_wait_decode_too_many(void **state)
{
    struct proto_image_lease_wait in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_lease_wait, &in, &w, &s);
    patch_be(w.p, 4, PROTO_LEASE_WAIT_MAX + 1, 4);
    assert_int_equal(proto_image_lease_wait_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, 2, 4);
    patch_be(w.p, 0, PROTO_LEASE_WAIT_TIMEOUT_MAX + 1, 4);
    assert_int_equal(proto_image_lease_wait_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_lease_msg_names(void **state)
{
    (void)state;
    assert_string_equal(proto_msg_name(PROTO_MSG_IMAGE_LEASE_REQ),
                        "IMAGE_LEASE_REQ");
    assert_string_equal(proto_msg_name(PROTO_MSG_IMAGE_LEASE_WAIT_REP),
                        "IMAGE_LEASE_WAIT_REP");
    assert_true(proto_msg_is_request(PROTO_MSG_IMAGE_LEASE_WAIT_REQ));
    assert_false(proto_msg_is_request(PROTO_MSG_IMAGE_LEASE_REP));
}

int test_proto_lease(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_image_lease_req_decode_roundtrip),
        cmocka_unit_test(test_proto_image_lease_req_decode_unknown_op),
        cmocka_unit_test(test_proto_image_lease_req_decode_arg_without_arm),
        cmocka_unit_test(test_proto_image_lease_req_encode_bad_op),
        cmocka_unit_test(test_proto_image_lease_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_image_lease_rep_decode_unknown_flag),
        cmocka_unit_test(test_proto_image_lease_wait_decode_roundtrip),
        cmocka_unit_test(test_proto_image_lease_wait_decode_empty),
        cmocka_unit_test(test_proto_image_lease_wait_decode_bad_state),
        cmocka_unit_test(test_proto_image_lease_wait_decode_too_many),
        cmocka_unit_test(test_proto_lease_msg_names),
    };
    return cmocka_run_group_tests_name("proto_lease", tests, NULL, NULL);
}
