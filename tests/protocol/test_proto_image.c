/* Tests for protocol/proto_image.c (SNAPSHOT/CLONE, CHUNK_CLONE, ROLLBACK,
 * FLATTEN, IMAGE_CHANGES) and protocol/proto_diff.c (image diff streams). */
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

static void test_proto_image_pair_req_decode_roundtrip(void **state)
{
    struct proto_image_pair_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(image_pair_req, PROTO_MSG_IMAGE_ROLLBACK_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.src, in.src);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_changes_rep_decode_iterates(void **state)
{
    struct proto_image_changes_rep in, out;
    struct proto_changes_iter it;
    struct proto_changes_entry e;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(image_changes_rep, PROTO_MSG_IMAGE_CHANGES_REP, &in, &out, &w,
              &s);
    assert_int_equal(out.from_size, in.from_size);
    assert_int_equal(out.to_size, in.to_size);
    proto_changes_iter_init(&it, &out);
    assert_true(proto_changes_next(&it, &e));
    assert_int_equal(e.index, 3);
    assert_int_equal(e.kind, PROTO_CHANGES_BLOCKS);
    assert_int_equal(e.nchain, 2);
    assert_int_equal(e.chain[0].chunk_id, 0xa0300);
    assert_int_equal(e.chain[0].nreplicas, 2);
    assert_pstr_is(e.chain[0].replicas[1].addr, "10.0.0.8:9422");
    assert_int_equal(e.chain[1].version, 2);
    assert_true(proto_changes_next(&it, &e));
    assert_int_equal(e.kind, PROTO_CHANGES_WHOLE);
    assert_true(proto_changes_next(&it, &e));
    assert_int_equal(e.index, 6);
    assert_int_equal(e.kind, PROTO_CHANGES_ZERO);
    assert_false(proto_changes_next(&it, &e));
    FREE_BUFS(&w, &s);
}

static void test_proto_image_changes_rep_decode_bad_entry(void **state)
{
    struct proto_image_changes_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_changes_rep, &in, &w, &s);
    /* The first entry's kind (after sizes, count and its index). */
    size_t kind_at = 8 + 8 + 4 + 8;
    w.p[kind_at] = 9;
    assert_int_equal(proto_image_changes_rep_decode(w.p, w.len, &out), -EPROTO);
    /* A BLOCKS entry with an empty chain. */
    w.p[kind_at] = PROTO_CHANGES_BLOCKS;
    w.p[kind_at + 1] = 0;
    assert_int_equal(proto_image_changes_rep_decode(w.p, w.len, &out), -EPROTO);
    /* A WHOLE entry that names a chain. */
    w.p[kind_at] = PROTO_CHANGES_WHOLE;
    w.p[kind_at + 1] = 2;
    assert_int_equal(proto_image_changes_rep_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_image_changes_req_decode_bad_count(void **state)
{
    struct proto_image_changes_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(image_changes_req, &in, &w, &s);
    patch_be(w.p, 24, 0, 4);
    assert_int_equal(proto_image_changes_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 24, PROTO_LOCATE_MAX + 1, 4);
    assert_int_equal(proto_image_changes_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

/* ---- Diff streams ------------------------------------------------------- */

static void diff_sample(struct proto_diff_hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->base_size = 3 * 4096;
    h->target_size = 5 * 4096 + 100;
    h->base_ino = 41;
    h->target_ino = 42;
    h->base_path = pstr("/a@1");
    h->target_path = pstr("/a@2");
    for (size_t i = 0; i < sizeof(h->base_content); i++)
        h->base_content[i] = (uint8_t)(0xC0 + i);
}

static void test_proto_diff_hdr_decode_roundtrip(void **state)
{
    struct proto_diff_hdr in, out;
    struct proto_wbuf w;
    size_t used = 0;

    (void)state;
    diff_sample(&in);
    proto_wbuf_init(&w);
    proto_diff_hdr_encode(&w, &in);
    proto_put_u8(&w, 0xAA); /* what follows the header is not its business */
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), 0);
    assert_int_equal(used, w.len - 1);
    assert_int_equal(out.base_size, in.base_size);
    assert_int_equal(out.target_size, in.target_size);
    assert_int_equal(out.base_ino, 41);
    assert_int_equal(out.target_ino, 42);
    assert_memory_equal(out.base_content, in.base_content,
                        sizeof(in.base_content));
    assert_pstr_equal(out.base_path, in.base_path);
    assert_pstr_equal(out.target_path, in.target_path);
    for (size_t k = 0; k < used; k++)
        assert_int_equal(proto_diff_hdr_decode(w.p, k, &out, &used), -EAGAIN);
    proto_wbuf_free(&w);
}

static void test_proto_diff_hdr_decode_bad_fields(void **state)
{
    struct proto_diff_hdr in, out;
    struct proto_wbuf w;
    size_t used;

    (void)state;
    diff_sample(&in);
    proto_wbuf_init(&w);
    proto_diff_hdr_encode(&w, &in);
    w.p[0] = 'X';
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), -EPROTO);
    w.p[0] = 'T';
    patch_be(w.p, 8, 1, 4); /* format 1: no base content digest */
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), -EPROTO);
    patch_be(w.p, 8, PROTO_DIFF_FORMAT, 4);
    patch_be(w.p, 12, 512, 4); /* block size */
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), -EPROTO);
    patch_be(w.p, 12, PROTO_DIFF_BLOCK, 4);
    patch_be(w.p, 16, (uint64_t)1 << 63, 8); /* base size */
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), -EPROTO);
    patch_be(w.p, 16, 4096, 8);
    patch_be(w.p, PROTO_DIFF_HDR_FIXED, PROTO_MAX_STR + 1, 2); /* path */
    assert_int_equal(proto_diff_hdr_decode(w.p, w.len, &out, &used), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_proto_diff_rec_decode_roundtrip(void **state)
{
    struct proto_diff_rec in = {PROTO_DIFF_ZERO, 8192, 12288}, out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_diff_rec_encode(&w, &in);
    assert_int_equal(w.len, PROTO_DIFF_REC_SIZE);
    assert_int_equal(proto_diff_rec_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.type, in.type);
    assert_int_equal(out.offset, in.offset);
    assert_int_equal(out.length, in.length);
    assert_int_equal(proto_diff_rec_decode(w.p, w.len - 1, &out), -EPROTO);
    w.p[3] = 1; /* padding */
    assert_int_equal(proto_diff_rec_decode(w.p, w.len, &out), -EPROTO);
    w.p[3] = 0;
    w.p[0] = 3; /* unknown type */
    assert_int_equal(proto_diff_rec_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_proto_diff_cursor_next_order(void **state)
{
    struct proto_diff_hdr h;
    struct proto_diff_cursor c;

    (void)state;
    diff_sample(&h); /* target: 5 blocks and 100 bytes */
    proto_diff_cursor_init(&c, &h);
    struct proto_diff_rec ok1 = {PROTO_DIFF_DATA, 4096, 4096};
    struct proto_diff_rec ok2 = {PROTO_DIFF_ZERO, 3 * 4096, 2 * 4096 + 100};
    struct proto_diff_rec end = {PROTO_DIFF_END, 2, 4096};
    struct proto_diff_rec bad[] = {
        {PROTO_DIFF_DATA, 0, 4096},            /* before the previous end */
        {PROTO_DIFF_DATA, 2 * 4096 + 1, 4096}, /* misaligned start */
        {PROTO_DIFF_DATA, 2 * 4096, 100},      /* misaligned end inside */
        {PROTO_DIFF_DATA, 2 * 4096, 0},        /* empty */
        {PROTO_DIFF_ZERO, 2 * 4096, 4 * 4096}, /* past the target */
        {PROTO_DIFF_DATA, 2 * 4096, UINT64_MAX - 4095}, /* wraps */
        {PROTO_DIFF_END, 0, 4096},                      /* wrong count */
        {PROTO_DIFF_END, 1, 0},                         /* wrong data bytes */
    };

    assert_int_equal(proto_diff_cursor_next(&c, &ok1), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(proto_diff_cursor_next(&c, &bad[i]), -EPROTO);
    assert_int_equal(proto_diff_cursor_next(&c, &ok2), 0);
    assert_int_equal(proto_diff_cursor_next(&c, &end), 0);
    assert_true(c.ended);
    assert_int_equal(proto_diff_cursor_next(&c, &end), -EPROTO);
}

static void test_proto_diff_cursor_next_data_max(void **state)
{
    struct proto_diff_hdr h;
    struct proto_diff_cursor c;

    (void)state;
    diff_sample(&h);
    h.target_size = 1ull << 30;
    proto_diff_cursor_init(&c, &h);
    struct proto_diff_rec big = {PROTO_DIFF_DATA, 0,
                                 PROTO_DIFF_DATA_MAX + PROTO_DIFF_BLOCK};
    assert_int_equal(proto_diff_cursor_next(&c, &big), -EPROTO);
    big.type = PROTO_DIFF_ZERO; /* zeros carry no bytes: any length */
    assert_int_equal(proto_diff_cursor_next(&c, &big), 0);
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
        cmocka_unit_test(test_proto_image_pair_req_decode_roundtrip),
        cmocka_unit_test(test_proto_image_changes_rep_decode_iterates),
        cmocka_unit_test(test_proto_image_changes_rep_decode_bad_entry),
        cmocka_unit_test(test_proto_image_changes_req_decode_bad_count),
        cmocka_unit_test(test_proto_diff_hdr_decode_roundtrip),
        cmocka_unit_test(test_proto_diff_hdr_decode_bad_fields),
        cmocka_unit_test(test_proto_diff_rec_decode_roundtrip),
        cmocka_unit_test(test_proto_diff_cursor_next_order),
        cmocka_unit_test(test_proto_diff_cursor_next_data_max),
        cmocka_unit_test(test_proto_image_msg_names),
    };
    return cmocka_run_group_tests_name("proto_image", tests, NULL, NULL);
}
