/* Tests for protocol/proto_chunk.c: chunk I/O bodies (docs/protocol.md
 * §7): READ, WRITE, SYNC, SETVERSION, DELETE, TRUNCATE.
 */
#include "proto_test.h"

static void test_proto_chunk_ref_decode_roundtrip(void **state)
{
    struct proto_chunk_ref in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_ref, PROTO_MSG_CHUNK_DELETE_REQ, &in, &out, &w, &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.version, in.version);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_read_req_decode_roundtrip(void **state)
{
    struct proto_chunk_read_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_read_req, PROTO_MSG_CHUNK_READ_REQ, &in, &out, &w, &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.offset, in.offset);
    assert_int_equal(out.length, in.length);
    assert_int_equal(out.flags, in.flags);
    FREE_BUFS(&w, &s);
}

static int read_req(uint32_t offset, uint32_t length, uint32_t flags)
{
    struct proto_chunk_read_req m = {1, 2, offset, length, flags}, out;
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_put_u64(&w, m.chunk_id);
    proto_put_u64(&w, m.version);
    proto_put_u32(&w, m.offset);
    proto_put_u32(&w, m.length);
    proto_put_u32(&w, m.flags);
    rc = proto_chunk_read_req_decode(w.p, w.len, &out);
    /* The encoder refuses exactly what the decoder refuses. */
    proto_wbuf_reset(&w);
    proto_chunk_read_req_encode(&w, &m);
    assert_int_equal(w.err, rc ? -EINVAL : 0);
    proto_wbuf_free(&w);
    return rc;
}

static void test_proto_chunk_read_req_decode_range(void **state)
{
    (void)state;
    assert_int_equal(read_req(0, PROTO_MAX_DATA, 0), 0);
    assert_int_equal(read_req(0, PROTO_MAX_DATA + 1, 0), -EPROTO);
    assert_int_equal(read_req(PROTO_CHUNK_SIZE - 4096, 4096, 0), 0);
    assert_int_equal(read_req(PROTO_CHUNK_SIZE - 4096, 4097, 0), -EPROTO);
    assert_int_equal(read_req(PROTO_CHUNK_SIZE, 0, 0), 0);
    assert_int_equal(read_req(PROTO_CHUNK_SIZE + 1, 0, 0), -EPROTO);
    /* offset + length must not wrap around 32 bits. */
    assert_int_equal(read_req(0xffffffffu, 2, 0), -EPROTO);
}

static void test_proto_chunk_read_req_decode_unknown_flag(void **state)
{
    (void)state;
    for (int bit = 0; bit < 32; bit++)
        assert_int_equal(read_req(0, 512, 1u << bit), -EPROTO);
}

static void test_proto_chunk_write_req_decode_roundtrip(void **state)
{
    struct proto_chunk_write_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_write_req, PROTO_MSG_CHUNK_WRITE_REQ, &in, &out, &w, &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.offset, in.offset);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.nchain, in.nchain);
    assert_chain_equal(out.chain, in.chain, in.nchain);
    assert_pstr_equal(out.data, in.data);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_write_req_decode_max_chain(void **state)
{
    struct proto_chunk_write_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_write_req, &in, &w, &s);
    in.nchain = PROTO_MAX_REPLICAS;
    sample_chain(in.chain, PROTO_MAX_REPLICAS);
    in.data.len = 0;
    proto_wbuf_reset(&w);
    proto_chunk_write_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.nchain, PROTO_MAX_REPLICAS);
    assert_chain_equal(out.chain, in.chain, PROTO_MAX_REPLICAS);
    assert_int_equal(out.data.len, 0);
    /* nchain one more than the array holds. */
    patch_be(w.p, 24, PROTO_MAX_REPLICAS + 1, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 24, 0xffffffffu, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.nchain = PROTO_MAX_REPLICAS + 1;
    proto_chunk_write_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_write_req_decode_unknown_flag(void **state)
{
    struct proto_chunk_write_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_write_req, &in, &w, &s);
    patch_be(w.p, 20, 0, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, 20, 0x2, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_write_req_decode_past_chunk_end(void **state)
{
    struct proto_chunk_write_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_write_req, &in, &w, &s);
    /* 16 data bytes ending exactly at the chunk end, then one past. */
    patch_be(w.p, 16, PROTO_CHUNK_SIZE - 16, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, 16, PROTO_CHUNK_SIZE - 15, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 16, 0xfffffff8u, 4);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.offset = PROTO_CHUNK_SIZE - 15;
    proto_chunk_write_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_sync_req_decode_roundtrip(void **state)
{
    struct proto_chunk_sync_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_sync_req, PROTO_MSG_CHUNK_SYNC_REQ, &in, &out, &w, &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.nchain, in.nchain);
    assert_chain_equal(out.chain, in.chain, in.nchain);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_sync_req_decode_too_many_replicas(void **state)
{
    struct proto_chunk_sync_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_sync_req, &in, &w, &s);
    patch_be(w.p, 16, PROTO_MAX_REPLICAS + 1, 4);
    assert_int_equal(proto_chunk_sync_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.nchain = PROTO_MAX_REPLICAS + 1;
    proto_chunk_sync_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_setversion_req_decode_roundtrip(void **state)
{
    struct proto_chunk_setversion_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_setversion_req, PROTO_MSG_CHUNK_SETVERSION_REQ, &in, &out,
              &w, &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.old_version, in.old_version);
    assert_int_equal(out.new_version, in.new_version);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_truncate_req_decode_roundtrip(void **state)
{
    struct proto_chunk_truncate_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(chunk_truncate_req, PROTO_MSG_CHUNK_TRUNCATE_REQ, &in, &out, &w,
              &s);
    assert_int_equal(out.chunk_id, in.chunk_id);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.length, in.length);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_truncate_req_decode_past_chunk_end(void **state)
{
    struct proto_chunk_truncate_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_truncate_req, &in, &w, &s);
    patch_be(w.p, 16, PROTO_CHUNK_SIZE, 4);
    assert_int_equal(proto_chunk_truncate_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, 16, PROTO_CHUNK_SIZE + 1, 4);
    assert_int_equal(proto_chunk_truncate_req_decode(w.p, w.len, &out),
                     -EPROTO);
    FREE_BUFS(&w, &s);
}

int test_proto_chunk(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_chunk_ref_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_read_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_read_req_decode_range),
        cmocka_unit_test(test_proto_chunk_read_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_chunk_write_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_write_req_decode_max_chain),
        cmocka_unit_test(test_proto_chunk_write_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_chunk_write_req_decode_past_chunk_end),
        cmocka_unit_test(test_proto_chunk_sync_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_sync_req_decode_too_many_replicas),
        cmocka_unit_test(test_proto_chunk_setversion_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_truncate_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_truncate_req_decode_past_chunk_end),
    };
    return cmocka_run_group_tests_name("proto_chunk", tests, NULL, NULL);
}
