/* Tests for protocol/proto_place.c: CHUNK_LOCATE, CHUNK_WRITE_BEGIN and
 * CHUNK_WRITE_END, and chunk location entries (docs/protocol.md §8).
 */
#include "proto_test.h"

static void test_proto_chunk_locate_req_decode_roundtrip(void **state)
{
    struct proto_chunk_locate_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_locate_req, PROTO_MSG_CHUNK_LOCATE_REQ, &in, &out, &w, &s);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.first, in.first);
    assert_int_equal(out.count, in.count);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_locate_req_decode_count_range(void **state)
{
    struct proto_chunk_locate_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_locate_req, &in, &w, &s);
    patch_be(w.p, 16, PROTO_LOCATE_MAX, 4);
    assert_int_equal(proto_chunk_locate_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, 16, 0, 4);
    assert_int_equal(proto_chunk_locate_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 16, PROTO_LOCATE_MAX + 1, 4);
    assert_int_equal(proto_chunk_locate_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.count = 0;
    proto_chunk_locate_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_locate_rep_decode_roundtrip(void **state)
{
    struct proto_chunk_locate_rep in, out;
    struct proto_wbuf w, s;
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc c;
    struct proto_replica want[2];

    (void)state;
    ROUNDTRIP(chunk_locate_rep, PROTO_MSG_CHUNK_LOCATE_REP, &in, &out, &w, &s);
    assert_short_long(PROTO_MSG_CHUNK_WRITE_BEGIN_REP, w.p, w.len);
    assert_int_equal(out.file_size, in.file_size);
    assert_int_equal(out.count, 2);
    assert_pstr_equal(out.raw, in.raw);
    proto_chunk_loc_iter_init(&it, &out);
    assert_true(proto_chunk_loc_next(&it, &c));
    assert_int_equal(c.index, 4);
    assert_int_equal(c.chunk_id, 0xb001);
    assert_int_equal(c.version, 3);
    assert_int_equal(c.nreplicas, 2);
    sample_chain(want, 2);
    assert_chain_equal(c.replicas, want, 2);
    assert_true(proto_chunk_loc_next(&it, &c));
    assert_int_equal(c.index, 5);
    assert_int_equal(c.chunk_id, 0);
    assert_int_equal(c.version, 0);
    assert_int_equal(c.nreplicas, 0);
    assert_false(proto_chunk_loc_next(&it, &c));
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_locate_rep_decode_bad_entries(void **state)
{
    struct proto_chunk_locate_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_locate_rep, &in, &w, &s);
    /* Header: file_size 0..7, count 8..11; first entry from 12:
     * index 12, chunk_id 20, version 28, nreplicas 36. */
    patch_be(w.p, 8, 3, 4);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 8, 1, 4);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 8, PROTO_LOCATE_MAX + 1, 4);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 8, 2, 4);
    patch_be(w.p, 36, PROTO_MAX_REPLICAS + 1, 4);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 36, 2, 4);
    /* A hole that names replicas. */
    patch_be(w.p, 20, 0, 8);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 20, 0xb001, 8);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), 0);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_locate_rep_decode_empty(void **state)
{
    struct proto_chunk_locate_rep in = {0}, out;
    struct proto_wbuf w;
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc c;

    (void)state;
    proto_wbuf_init(&w);
    in.file_size = 10;
    proto_chunk_locate_rep_encode(&w, &in);
    assert_int_equal(w.len, 12);
    assert_int_equal(proto_chunk_locate_rep_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.file_size, 10);
    proto_chunk_loc_iter_init(&it, &out);
    assert_false(proto_chunk_loc_next(&it, &c));
    proto_wbuf_free(&w);
}

static void test_proto_chunk_loc_put_too_many_replicas(void **state)
{
    struct proto_wbuf w;
    struct proto_chunk_loc c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.chunk_id = 1;
    c.nreplicas = PROTO_MAX_REPLICAS + 1;
    proto_wbuf_init(&w);
    proto_chunk_loc_put(&w, &c);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    proto_wbuf_free(&w);
}

static void test_proto_chunk_write_begin_req_decode_roundtrip(void **state)
{
    struct proto_chunk_write_begin_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_write_begin_req, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, &in, &out,
              &w, &s);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.index, in.index);
    assert_int_equal(out.flags, in.flags);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_write_begin_req_decode_unknown_flag(void **state)
{
    struct proto_chunk_write_begin_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_write_begin_req, &in, &w, &s);
    patch_be(w.p, 16, 1, 4);
    assert_int_equal(proto_chunk_write_begin_req_decode(w.p, w.len, &out),
                     -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_write_end_req_decode_roundtrip(void **state)
{
    struct proto_chunk_write_end_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_write_end_req, PROTO_MSG_CHUNK_WRITE_END_REQ, &in, &out, &w,
              &s);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.index, in.index);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.size, in.size);
    assert_true(out.mtime == in.mtime);
    FREE_BUFS(&w, &s);
}

int test_proto_place(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_chunk_locate_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_locate_req_decode_count_range),
        cmocka_unit_test(test_proto_chunk_locate_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_locate_rep_decode_bad_entries),
        cmocka_unit_test(test_proto_chunk_locate_rep_decode_empty),
        cmocka_unit_test(test_proto_chunk_loc_put_too_many_replicas),
        cmocka_unit_test(test_proto_chunk_write_begin_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_write_begin_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_chunk_write_end_req_decode_roundtrip),
    };
    return cmocka_run_group_tests_name("proto_place", tests, NULL, NULL);
}
