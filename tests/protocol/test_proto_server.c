/* Tests for protocol/proto_server.c: SERVER_REGISTER, SERVER_HEARTBEAT,
 * SERVER_INVENTORY, SCRUB_STATUS (docs/protocol.md §9; its codec is in
 * proto_manage.c) and the STATUS reply (§10).
 */
#include "proto_test.h"

static void test_proto_server_register_req_decode_roundtrip(void **state)
{
    struct proto_server_register_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(server_register_req, PROTO_MSG_SERVER_REGISTER_REQ, &in, &out, &w,
              &s);
    /* The uuid is 16 raw bytes at the start, no length prefix. */
    assert_memory_equal(w.p, in.uuid, 16);
    assert_memory_equal(out.uuid, in.uuid, 16);
    assert_pstr_equal(out.addr, in.addr);
    assert_int_equal(out.capacity, in.capacity);
    assert_int_equal(out.free, in.free);
    FREE_BUFS(&w, &s);
}

static void test_proto_server_register_rep_decode_roundtrip(void **state)
{
    struct proto_server_register_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(server_register_rep, PROTO_MSG_SERVER_REGISTER_REP, &in, &out, &w,
              &s);
    assert_int_equal(out.server_id, in.server_id);
    FREE_BUFS(&w, &s);
}

static void test_proto_server_heartbeat_req_decode_roundtrip(void **state)
{
    struct proto_server_heartbeat_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(server_heartbeat_req, PROTO_MSG_SERVER_HEARTBEAT_REQ, &in, &out,
              &w, &s);
    assert_int_equal(out.server_id, in.server_id);
    assert_int_equal(out.capacity, in.capacity);
    assert_int_equal(out.free, in.free);
    assert_int_equal(out.chunks, in.chunks);
    assert_int_equal(out.used, in.used);
    /* docs/protocol.md §9.2: exactly 32 bytes, used last, big-endian. */
    assert_int_equal(w.len, 32);
    assert_int_equal(w.p[27], 0);
    assert_int_equal(w.p[28], 0xc0);
    assert_int_equal(w.p[30], 0x10);
    FREE_BUFS(&w, &s);
}

static void test_proto_scrub_status_req_decode_roundtrip(void **state)
{
    struct proto_scrub_status_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(scrub_status_req, PROTO_MSG_SCRUB_STATUS_REQ, &in, &out, &w, &s);
    assert_int_equal(w.len, PROTO_SCRUB_STATUS_SIZE);
    assert_int_equal(out.server_id, in.server_id);
    assert_int_equal(out.running, 1);
    assert_int_equal(out.passes, in.passes);
    assert_int_equal(out.chunks, in.chunks);
    assert_int_equal(out.total, in.total);
    assert_int_equal(out.bytes, in.bytes);
    assert_int_equal(out.errors, in.errors);
    assert_int_equal(out.start_s, in.start_s);
    assert_int_equal(out.end_s, in.end_s);
    FREE_BUFS(&w, &s);
}

/* running is a flag: anything but 0 or 1 is malformed. */
static void test_proto_scrub_status_req_decode_bad_flag(void **state)
{
    struct proto_scrub_status_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(scrub_status_req, &in, &w, &s);
    w.p[4] = 2;
    assert_int_equal(proto_scrub_status_req_decode(w.p, w.len, &out), -EPROTO);
    w.p[4] = 0;
    assert_int_equal(proto_scrub_status_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.running, 0);
    FREE_BUFS(&w, &s);
}

static void test_proto_server_inventory_req_decode_roundtrip(void **state)
{
    struct proto_server_inventory_req in, out;
    struct proto_wbuf w, s;
    struct proto_inv_entry e;

    (void)state;
    ROUNDTRIP(server_inventory_req, PROTO_MSG_SERVER_INVENTORY_REQ, &in, &out,
              &w, &s);
    assert_int_equal(out.server_id, in.server_id);
    assert_int_equal(out.last, in.last);
    assert_int_equal(out.count, 3);
    assert_int_equal(out.raw.len, 3 * PROTO_INV_ENTRY_SIZE);
    for (uint32_t i = 0; i < 3; i++) {
        proto_inv_entry_get(&out, i, &e);
        assert_int_equal(e.chunk_id, 0xc000 + i);
        assert_int_equal(e.version, 10 + i);
        assert_int_equal(e.length, PROTO_CHUNK_SIZE - i);
    }
    /* Past the end reads as zeros, never out of bounds. */
    proto_inv_entry_get(&out, 3, &e);
    assert_int_equal(e.chunk_id, 0);
    assert_int_equal(e.version, 0);
    assert_int_equal(e.length, 0);
    FREE_BUFS(&w, &s);
}

static void test_proto_server_inventory_req_decode_bad_count(void **state)
{
    struct proto_server_inventory_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(server_inventory_req, &in, &w, &s);
    /* server_id 0..3, last 4, count 5..8. */
    patch_be(w.p, 4, 2, 1);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out),
                     -EPROTO);
    patch_be(w.p, 4, 0, 1);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, 5, 2, 4);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out),
                     -EPROTO);
    patch_be(w.p, 5, 4, 4);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out),
                     -EPROTO);
    proto_wbuf_reset(&w);
    in.count = 2;
    proto_server_inventory_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_server_inventory_req_decode_too_many(void **state)
{
    struct proto_server_inventory_req in = {0}, out;
    struct proto_wbuf w;
    size_t n = (size_t)(PROTO_INV_MAX + 1) * PROTO_INV_ENTRY_SIZE;
    char *raw = calloc(1, n);

    (void)state;
    assert_non_null(raw);
    proto_wbuf_init(&w);
    in.count = PROTO_INV_MAX;
    in.raw = (struct proto_str){raw, (uint32_t)(n - PROTO_INV_ENTRY_SIZE)};
    proto_server_inventory_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.count, PROTO_INV_MAX);
    /* One entry over the limit, with the raw length to match. */
    proto_wbuf_reset(&w);
    proto_put_u32(&w, 1);
    proto_put_u8(&w, 0);
    proto_put_u32(&w, PROTO_INV_MAX + 1);
    proto_put_raw(&w, raw, n);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_server_inventory_req_decode(w.p, w.len, &out),
                     -EPROTO);
    proto_wbuf_free(&w);
    free(raw);
}

static void test_proto_chunk_usage_req_decode_roundtrip(void **state)
{
    struct proto_chunk_usage_req in, out;
    struct proto_wbuf w, s;
    struct proto_usage_entry e;

    (void)state;
    ROUNDTRIP(chunk_usage_req, PROTO_MSG_CHUNK_USAGE_REQ, &in, &out, &w, &s);
    assert_int_equal(out.server_id, 10);
    assert_int_equal(out.count, 2);
    assert_int_equal(w.len, 8 + 2 * PROTO_USAGE_ENTRY_SIZE);
    for (uint32_t i = 0; i < 2; i++) {
        proto_usage_entry_get(&out, i, &e);
        assert_int_equal(e.chunk_id, 0xd000 + i);
        assert_int_equal(e.bytes, (1ull << 20) + 8192 * i);
    }
    /* Past the end reads as zeros, never out of bounds. */
    proto_usage_entry_get(&out, 2, &e);
    assert_int_equal(e.chunk_id, 0);
    assert_int_equal(e.bytes, 0);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_usage_req_decode_bad_count(void **state)
{
    struct proto_chunk_usage_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(chunk_usage_req, &in, &w, &s);
    /* server_id 0..3, count 4..7: one more or one fewer than the bytes. */
    patch_be(w.p, 4, 3, 4);
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, 1, 4);
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, 2, 4);
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len, &out), 0);
    /* A trailing byte is not a whole entry. */
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len - 1, &out),
                     -EPROTO);
    proto_wbuf_reset(&w);
    in.count = 3;
    proto_chunk_usage_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_chunk_usage_req_decode_too_many(void **state)
{
    struct proto_chunk_usage_req in = {0}, out;
    struct proto_wbuf w;
    size_t n = (size_t)(PROTO_USAGE_MAX + 1) * PROTO_USAGE_ENTRY_SIZE;
    char *raw = calloc(1, n);

    (void)state;
    assert_non_null(raw);
    proto_wbuf_init(&w);
    in.count = PROTO_USAGE_MAX;
    in.raw = (struct proto_str){raw, (uint32_t)(n - PROTO_USAGE_ENTRY_SIZE)};
    proto_chunk_usage_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.count, PROTO_USAGE_MAX);
    /* One entry over the limit, with the raw length to match. */
    proto_wbuf_reset(&w);
    proto_put_u32(&w, 1);
    proto_put_u32(&w, PROTO_USAGE_MAX + 1);
    proto_put_raw(&w, raw, n);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_chunk_usage_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
    free(raw);
}

static void test_proto_status_rep_decode_roundtrip(void **state)
{
    struct proto_status_rep in, out;
    struct proto_wbuf w, s;
    struct proto_kv_iter it;
    struct proto_str k, v;

    (void)state;
    ROUNDTRIP(status_rep, PROTO_MSG_STATUS_REP, &in, &out, &w, &s);
    assert_int_equal(out.count, 2);
    assert_pstr_equal(out.raw, in.raw);
    proto_kv_iter_init(&it, &out);
    assert_true(proto_kv_next(&it, &k, &v));
    assert_pstr_is(k, "meta.uptime_s");
    assert_pstr_is(v, "3600");
    assert_true(proto_kv_next(&it, &k, &v));
    assert_pstr_is(k, "meta.sessions");
    assert_int_equal(v.len, 0);
    assert_false(proto_kv_next(&it, &k, &v));
    FREE_BUFS(&w, &s);
}

static void test_proto_status_rep_decode_bad_count(void **state)
{
    struct proto_status_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(status_rep, &in, &w, &s);
    patch_be(w.p, 0, 1, 4);
    assert_int_equal(proto_status_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, 3, 4);
    assert_int_equal(proto_status_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, 0xffffffffu, 4);
    assert_int_equal(proto_status_rep_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.count = 3;
    proto_status_rep_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_status_rep_decode_empty(void **state)
{
    static const uint8_t zero[4] = {0};
    struct proto_status_rep out;
    struct proto_kv_iter it;
    struct proto_str k, v;

    (void)state;
    assert_int_equal(proto_status_rep_decode(zero, 4, &out), 0);
    assert_int_equal(out.count, 0);
    proto_kv_iter_init(&it, &out);
    assert_false(proto_kv_next(&it, &k, &v));
}

static void test_proto_meta_member_req_decode_roundtrip(void **state)
{
    struct proto_meta_member_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(meta_member_req, PROTO_MSG_META_MEMBER_REQ, &in, &out, &w, &s);
    assert_int_equal(out.op, PROTO_META_MEMBER_ADD);
    assert_int_equal(out.id, 4);
    assert_int_equal(out.raft_addr.len, 13);
    assert_memory_equal(out.client_addr.p, "10.0.0.4:9420", 13);
    FREE_BUFS(&w, &s);
}

/* An add without addresses, a remove with them, id 0, an unknown op. */
static void test_proto_meta_member_req_decode_bad(void **state)
{
    static const struct proto_meta_member_req bad[] = {
        {PROTO_META_MEMBER_ADD, 4, {"", 0}, {"", 0}},
        {PROTO_META_MEMBER_ADD, 4, {"a:1", 3}, {"", 0}},
        {PROTO_META_MEMBER_REMOVE, 4, {"a:1", 3}, {"", 0}},
        {PROTO_META_MEMBER_REMOVE, 0, {"", 0}, {"", 0}},
        {3, 4, {"", 0}, {"", 0}},
    };
    struct proto_meta_member_req out;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proto_wbuf w;
        proto_wbuf_init(&w);
        proto_meta_member_req_encode(&w, &bad[i]);
        assert_int_equal(proto_meta_member_req_decode(w.p, w.len, &out),
                         -EPROTO);
        proto_wbuf_free(&w);
    }
}

int test_proto_server(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_server_register_req_decode_roundtrip),
        cmocka_unit_test(test_proto_server_register_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_server_heartbeat_req_decode_roundtrip),
        cmocka_unit_test(test_proto_scrub_status_req_decode_roundtrip),
        cmocka_unit_test(test_proto_scrub_status_req_decode_bad_flag),
        cmocka_unit_test(test_proto_server_inventory_req_decode_roundtrip),
        cmocka_unit_test(test_proto_server_inventory_req_decode_bad_count),
        cmocka_unit_test(test_proto_server_inventory_req_decode_too_many),
        cmocka_unit_test(test_proto_chunk_usage_req_decode_roundtrip),
        cmocka_unit_test(test_proto_chunk_usage_req_decode_bad_count),
        cmocka_unit_test(test_proto_chunk_usage_req_decode_too_many),
        cmocka_unit_test(test_proto_status_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_status_rep_decode_bad_count),
        cmocka_unit_test(test_proto_status_rep_decode_empty),
        cmocka_unit_test(test_proto_meta_member_req_decode_roundtrip),
        cmocka_unit_test(test_proto_meta_member_req_decode_bad),
    };
    return cmocka_run_group_tests_name("proto_server", tests, NULL, NULL);
}
