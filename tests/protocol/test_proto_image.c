/* Tests for protocol/proto_image.c: SNAPSHOT/CLONE and CHUNK_CLONE. */
#include "proto_test.h"

static void test_proto_snapshot_req_decode_roundtrip(void **state)
{
    struct proto_snapshot_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(snapshot_req, PROTO_MSG_SNAPSHOT_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.parent, in.parent);
    assert_pstr_equal(out.name, in.name);
    assert_int_equal(decode_copy(PROTO_MSG_CLONE_REQ, w.p, w.len, &out), 0);
    assert_int_equal(out.ino, in.ino);
    FREE_BUFS(&w, &s);
}

static void test_proto_snapshot_req_decode_bad_groups(void **state)
{
    struct proto_snapshot_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(snapshot_req, &in, &w, &s);
    /* cred: uid, gid, then the group count */
    patch_be(w.p, 8, PROTO_MAX_GROUPS + 1, 4);
    assert_int_equal(proto_snapshot_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_snapshot_req_decode_long_name(void **state)
{
    struct proto_snapshot_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(snapshot_req, &in, &w, &s);
    /* The name's u16 length claims more than PROTO_MAX_STR. */
    patch_be(w.p, w.len - in.name.len - 2, PROTO_MAX_STR + 1, 2);
    assert_int_equal(proto_snapshot_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_clone_req_decode_roundtrip(void **state)
{
    struct proto_chunk_clone_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_clone_req, PROTO_MSG_CHUNK_CLONE_REQ, &in, &out, &w, &s);
    assert_int_equal(w.len, PROTO_CHUNK_CLONE_SIZE);
    assert_int_equal(out.src_id, in.src_id);
    assert_int_equal(out.src_version, in.src_version);
    assert_int_equal(out.new_id, in.new_id);
    assert_int_equal(out.new_version, in.new_version);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_msg_names(void **state)
{
    (void)state;
    assert_string_equal(proto_msg_name(PROTO_MSG_SNAPSHOT_REQ), "SNAPSHOT_REQ");
    assert_string_equal(proto_msg_name(PROTO_MSG_CLONE_REP), "CLONE_REP");
    assert_string_equal(proto_msg_name(PROTO_MSG_IMAGE_INFO_REQ),
                        "IMAGE_INFO_REQ");
    assert_string_equal(proto_msg_name(PROTO_MSG_IMAGE_LIST_REP),
                        "IMAGE_LIST_REP");
    assert_true(proto_msg_is_request(PROTO_MSG_IMAGE_LIST_REQ));
    assert_string_equal(proto_msg_name(PROTO_MSG_CHUNK_CLONE_REQ),
                        "CHUNK_CLONE_REQ");
    assert_true(proto_msg_is_request(PROTO_MSG_CHUNK_CLONE_REQ));
    assert_false(proto_msg_is_request(PROTO_MSG_CHUNK_CLONE_REP));
}

int test_proto_image(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_snapshot_req_decode_roundtrip),
        cmocka_unit_test(test_proto_snapshot_req_decode_bad_groups),
        cmocka_unit_test(test_proto_snapshot_req_decode_long_name),
        cmocka_unit_test(test_proto_chunk_clone_req_decode_roundtrip),
        cmocka_unit_test(test_proto_image_msg_names),
    };
    return cmocka_run_group_tests_name("proto_image", tests, NULL, NULL);
}
