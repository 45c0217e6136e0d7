/* test_meta_op.c: the operation record codecs (meta_op.c): round trips,
 * the exact layouts meta.h documents, short and long payloads, replica
 * counts past the limit, and the record envelope with its format version.
 */
#include "test_meta_util.h"

/* Encode @m with the codec NAME, check the length, decode it back into
 * @out, then check that one byte less and one byte more are refused. */
#define ROUND_TRIP(name, m, out, want_len)                                     \
    do {                                                                       \
        struct proto_wbuf w_;                                                  \
        proto_wbuf_init(&w_);                                                  \
        meta_op_##name##_encode(&w_, (m));                                     \
        assert_int_equal(w_.err, 0);                                           \
        assert_int_equal(w_.len, (want_len));                                  \
        assert_int_equal(meta_op_##name##_decode(w_.p, w_.len, (out)), 0);     \
        assert_int_equal(meta_op_##name##_decode(w_.p, w_.len - 1, (out)),     \
                         -EPROTO);                                             \
        proto_put_u8(&w_, 0);                                                  \
        assert_int_equal(meta_op_##name##_decode(w_.p, w_.len, (out)),         \
                         -EPROTO);                                             \
        assert_int_equal(meta_op_##name##_decode(w_.p, w_.len - 1, (out)), 0); \
        proto_wbuf_free(&w_);                                                  \
    } while (0)

static void test_meta_op_session_expire_round_trip(void **state)
{
    (void)state;
    struct meta_op_session_expire m = {.session_id = 0x0102030405060708ull};
    struct meta_op_session_expire out = {0};
    ROUND_TRIP(session_expire, &m, &out, 8);
    assert_int_equal(out.session_id, m.session_id);
}

static void test_meta_op_chunk_set_round_trip(void **state)
{
    (void)state;
    struct meta_op_chunk_set m = {.ino = 7,
                                  .index = 3,
                                  .chunk_id = 0x10,
                                  .old_version = 4,
                                  .new_version = 5,
                                  .set = {3, {9, 8, 7}}};
    struct meta_op_chunk_set out;
    memset(&out, 0, sizeof(out));
    ROUND_TRIP(chunk_set, &m, &out, 5 * 8 + 4 + 3 * 4);
    assert_int_equal(out.ino, 7);
    assert_int_equal(out.index, 3);
    assert_int_equal(out.chunk_id, 0x10);
    assert_int_equal(out.old_version, 4);
    assert_int_equal(out.new_version, 5);
    assert_int_equal(out.set.n, 3);
    assert_int_equal(out.set.servers[0], 9);
    assert_int_equal(out.set.servers[2], 7);
}

static void test_meta_op_chunk_set_layout_matches_meta_h(void **state)
{
    (void)state;
    /* meta.h: u64 ino, u64 index, u64 chunk_id, u64 old_version,
     * u64 new_version, u32 n, then n x u32 server_id, big-endian. */
    struct meta_op_chunk_set m = {.ino = 1,
                                  .index = 2,
                                  .chunk_id = 3,
                                  .old_version = 4,
                                  .new_version = 5,
                                  .set = {1, {6}}};
    struct proto_wbuf w;
    uint8_t want[5 * 8 + 4 + 4] = {0};
    for (int i = 0; i < 5; i++)
        want[i * 8 + 7] = (uint8_t)(i + 1);
    want[43] = 1;
    want[47] = 6;
    proto_wbuf_init(&w);
    meta_op_chunk_set_encode(&w, &m);
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.p, want, sizeof(want));
    proto_wbuf_free(&w);
}

static void test_meta_op_replicas_over_limit_refused(void **state)
{
    (void)state;
    struct meta_op_chunk_set m = {.chunk_id = 1, .new_version = 1};
    struct proto_wbuf w;
    m.set.n = PROTO_MAX_REPLICAS + 1;
    proto_wbuf_init(&w);
    meta_op_chunk_set_encode(&w, &m);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    /* The same count read off a record: refused before any server id. */
    proto_wbuf_init(&w);
    for (int i = 0; i < 5; i++)
        proto_put_u64(&w, 1);
    proto_put_u32(&w, PROTO_MAX_REPLICAS + 1);
    for (uint32_t i = 0; i <= PROTO_MAX_REPLICAS; i++)
        proto_put_u32(&w, i + 1);
    struct meta_op_chunk_set out;
    assert_int_equal(meta_op_chunk_set_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_meta_op_gc_done_round_trip(void **state)
{
    (void)state;
    struct meta_op_gc_done m = {.chunk_id = 0xabcdef, .server_id = 12};
    struct meta_op_gc_done out = {0};
    ROUND_TRIP(gc_done, &m, &out, 12);
    assert_int_equal(out.chunk_id, 0xabcdef);
    assert_int_equal(out.server_id, 12);
}

static void test_meta_op_chunk_usage_round_trip(void **state)
{
    (void)state;
    struct meta_op_chunk_usage *m = calloc(1, sizeof(*m));
    struct meta_op_chunk_usage *out = calloc(1, sizeof(*out));
    struct proto_wbuf w;
    /* meta.h, meta_op.c: u32 n, then n x (u64 chunk_id, u64 bytes). */
    uint8_t want[4 + 16] = {0, 0, 0, 1, [11] = 0x42, [17] = 0x10};

    assert_non_null(m);
    assert_non_null(out);
    m->n = 3;
    for (uint32_t i = 0; i < 3; i++)
        m->v[i] = (struct proto_usage_entry){0x100 + i, (1ull << 20) * i};
    ROUND_TRIP(chunk_usage, m, out, 4 + 3 * 16);
    assert_int_equal(out->n, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(out->v[i].chunk_id, 0x100 + i);
        assert_int_equal(out->v[i].bytes, (1ull << 20) * i);
    }
    m->n = 1;
    m->v[0] = (struct proto_usage_entry){0x42, 0x100000};
    proto_wbuf_init(&w);
    meta_op_chunk_usage_encode(&w, m);
    assert_int_equal(w.len, sizeof(want));
    assert_memory_equal(w.p, want, sizeof(want));
    proto_wbuf_free(&w);
    /* No figure, or more than a record holds: refused both ways. */
    m->n = 0;
    proto_wbuf_init(&w);
    meta_op_chunk_usage_encode(&w, m);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    m->n = META_OP_USAGE_MAX + 1;
    proto_wbuf_init(&w);
    meta_op_chunk_usage_encode(&w, m);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    proto_wbuf_init(&w);
    proto_put_u32(&w, 0);
    assert_int_equal(meta_op_chunk_usage_decode(w.p, w.len, out), -EPROTO);
    proto_wbuf_reset(&w);
    proto_put_u32(&w, META_OP_USAGE_MAX + 1);
    for (uint32_t i = 0; i <= META_OP_USAGE_MAX; i++) {
        proto_put_u64(&w, i + 1);
        proto_put_u64(&w, 0);
    }
    assert_int_equal(meta_op_chunk_usage_decode(w.p, w.len, out), -EPROTO);
    proto_wbuf_free(&w);
    free(m);
    free(out);
}

static void test_meta_op_auth_add_round_trip(void **state)
{
    (void)state;
    struct meta_op_auth_add m = {.name = {"client.a", 8},
                                 .caps = {"path=/vm ro", 11}};
    struct meta_op_auth_add out;
    struct proto_wbuf w;
    for (size_t i = 0; i < sizeof(m.secret); i++)
        m.secret[i] = (uint8_t)(i * 7 + 1);
    ROUND_TRIP(auth_add, &m, &out, 2 + 8 + 2 + 11 + 32);
    /* The decoded strings point into the encoded bytes: check them while
     * those are alive. */
    memset(&out, 0, sizeof(out));
    proto_wbuf_init(&w);
    meta_op_auth_add_encode(&w, &m);
    assert_int_equal(meta_op_auth_add_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.name.len, 8);
    assert_memory_equal(out.name.p, "client.a", 8);
    assert_int_equal(out.caps.len, 11);
    assert_memory_equal(out.caps.p, "path=/vm ro", 11);
    assert_memory_equal(out.secret, m.secret, sizeof(m.secret));
    proto_wbuf_free(&w);
}

static void test_meta_op_auth_add_bad_names_refused(void **state)
{
    (void)state;
    struct meta_op_auth_add m = {.name = {"", 0}, .caps = {"", 0}};
    struct meta_op_auth_add out;
    struct proto_wbuf w;
    char longname[PROTO_AUTH_NAME_MAX + 1];

    proto_wbuf_init(&w);
    meta_op_auth_add_encode(&w, &m); /* an empty name */
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    /* The same bytes written by hand do not decode either. */
    proto_wbuf_init(&w);
    proto_put_str(&w, "", 0);
    proto_put_str(&w, "", 0);
    proto_put_raw(&w, m.secret, sizeof(m.secret));
    assert_int_equal(meta_op_auth_add_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
    memset(longname, 'n', sizeof(longname));
    proto_wbuf_init(&w);
    proto_put_str(&w, longname, sizeof(longname));
    proto_put_str(&w, "", 0);
    proto_put_raw(&w, m.secret, sizeof(m.secret));
    assert_int_equal(meta_op_auth_add_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_meta_op_service_key_round_trip(void **state)
{
    (void)state;
    struct meta_op_service_key m = {.id = 0x01020304};
    struct meta_op_service_key out;
    for (size_t i = 0; i < sizeof(m.secret); i++)
        m.secret[i] = (uint8_t)(0xff - i);
    memset(&out, 0, sizeof(out));
    ROUND_TRIP(service_key, &m, &out, 4 + 32);
    assert_int_equal(out.id, 0x01020304);
    assert_memory_equal(out.secret, m.secret, sizeof(m.secret));
}

static void test_meta_op_member_round_trip(void **state)
{
    (void)state;
    struct meta_op_member m = {.id = 3,
                               .client_addr = str_of("10.0.0.3:9420"),
                               .raft_addr = str_of("10.0.0.3:9430")};
    struct meta_op_member out;
    struct proto_wbuf w;
    memset(&out, 0, sizeof(out));
    ROUND_TRIP(member, &m, &out, 8 + 2 + 13 + 2 + 13);
    assert_int_equal(out.id, 3);
    assert_int_equal(out.raft_addr.len, 13);
    assert_memory_equal(out.raft_addr.p, "10.0.0.3:9430", 13);
    /* Id 0 is no member. */
    m.id = 0;
    proto_wbuf_init(&w);
    meta_op_member_encode(&w, &m);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
    proto_wbuf_init(&w);
    proto_put_u64(&w, 0);
    proto_put_str(&w, "", 0);
    proto_put_str(&w, "", 0);
    assert_int_equal(meta_op_member_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_meta_op_replica_round_trip(void **state)
{
    (void)state;
    struct meta_op_replica m = {.chunk_id = 5, .version = 9, .server_id = 2};
    struct meta_op_replica out = {0};
    ROUND_TRIP(replica, &m, &out, 20);
    assert_int_equal(out.chunk_id, 5);
    assert_int_equal(out.version, 9);
    assert_int_equal(out.server_id, 2);
}

static void test_meta_op_server_state_round_trip(void **state)
{
    (void)state;
    struct meta_op_server_state m = {.server_id = 3,
                                     .state = PROTO_SERVER_DRAINING};
    struct meta_op_server_state out = {0};
    ROUND_TRIP(server_state, &m, &out, 8);
    assert_int_equal(out.server_id, 3);
    assert_int_equal(out.state, PROTO_SERVER_DRAINING);
}

/* A copy of chunk 10 v2 in slot (4, 1) as chunk 11 v1 on servers 1, 2. */
static struct meta_op_chunk_cow cow_of(void)
{
    return (struct meta_op_chunk_cow){.ino = 4,
                                      .index = 1,
                                      .src_id = 10,
                                      .src_version = 2,
                                      .new_id = 11,
                                      .new_version = 1,
                                      .set = {2, {1, 2}}};
}

static void test_meta_op_chunk_cow_round_trip_without_bump(void **state)
{
    (void)state;
    struct meta_op_chunk_cow m = cow_of();
    struct meta_op_chunk_cow out;
    memset(&out, 0xff, sizeof(out));
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    meta_op_chunk_cow_encode(&w, &m);
    assert_int_equal(w.len, 6 * 8 + 4 + 2 * 4);
    assert_int_equal(meta_op_chunk_cow_decode(w.p, w.len, &out), 0);
    assert_false(out.bump);
    assert_int_equal(out.src.n, 0);
    assert_int_equal(out.new_id, 11);
    assert_int_equal(out.set.n, 2);
    assert_int_equal(out.set.servers[1], 2);
    /* A partial trailer is neither form. */
    proto_put_u64(&w, 3);
    assert_int_equal(meta_op_chunk_cow_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_meta_op_chunk_cow_round_trip_with_bump(void **state)
{
    (void)state;
    struct meta_op_chunk_cow m = cow_of();
    struct meta_op_chunk_cow out;
    m.bump = true;
    m.src_new_version = 3;
    m.src = (struct meta_op_replicas){2, {1, 5}};
    ROUND_TRIP(chunk_cow, &m, &out, 6 * 8 + 4 + 2 * 4 + 8 + 4 + 2 * 4);
    assert_true(out.bump);
    assert_int_equal(out.src_new_version, 3);
    assert_int_equal(out.src.n, 2);
    assert_int_equal(out.src.servers[1], 5);
}

static void test_meta_op_record_round_trip(void **state)
{
    (void)state;
    const uint8_t body[] = {1, 2, 3, 4, 5};
    struct meta_op op = {.format = META_OP_FORMAT,
                         .opcode = PROTO_MSG_MKDIR_REQ,
                         .now = -5,
                         .session_id = 77,
                         .req_id = 0x0102030405060708ull,
                         .payload = body,
                         .len = sizeof(body)};
    struct meta_op out;
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    meta_op_record_encode(&w, &op);
    assert_int_equal(w.len, META_OP_RECORD_HEADER + sizeof(body));
    assert_int_equal(w.p[0], META_OP_FORMAT);
    assert_int_equal(meta_op_record_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.format, META_OP_FORMAT);
    assert_int_equal(out.opcode, PROTO_MSG_MKDIR_REQ);
    assert_int_equal(out.now, -5);
    assert_int_equal(out.session_id, 77);
    assert_int_equal(out.req_id, 0x0102030405060708ull);
    assert_int_equal(out.len, sizeof(body));
    assert_ptr_equal(out.payload, w.p + META_OP_RECORD_HEADER);
    /* An empty payload is a record; a short header is not. */
    assert_int_equal(meta_op_record_decode(w.p, META_OP_RECORD_HEADER, &out),
                     0);
    assert_int_equal(out.len, 0);
    assert_int_equal(
        meta_op_record_decode(w.p, META_OP_RECORD_HEADER - 1, &out), -EPROTO);
    proto_wbuf_free(&w);
}

/* A format 1 record, written before records carried a request id, still
 * reads: its payload follows the session id, and it has no request id. */
static void test_meta_op_record_format_1(void **state)
{
    (void)state;
    const uint8_t rec[] = {1,    0x04, 0x05, /* format 1, MKDIR_REQ */
                           0,    0,    0,    0, 0, 0, 0, 9, /* now */
                           0,    0,    0,    0, 0, 0, 0, 77, /* session */
                           0xaa, 0xbb};
    struct meta_op out;

    assert_int_equal(meta_op_record_decode(rec, sizeof(rec), &out), 0);
    assert_int_equal(out.format, 1);
    assert_int_equal(out.opcode, 0x0405);
    assert_int_equal(out.now, 9);
    assert_int_equal(out.session_id, 77);
    assert_int_equal(out.req_id, 0);
    assert_int_equal(out.len, 2);
    assert_ptr_equal(out.payload, rec + META_OP_RECORD_HEADER - 8);
}

static void test_meta_op_record_unknown_format_refused(void **state)
{
    struct fx *f = *state;
    struct meta_op op = {
        .format = META_OP_FORMAT + 1, .opcode = META_OP_GC_DONE, .now = T0};
    struct meta_op out;
    struct proto_wbuf w, reply;
    proto_wbuf_init(&w);
    meta_op_record_encode(&w, &op);
    assert_int_equal(meta_op_record_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_free(&w);
    /* meta_apply() refuses a record it cannot read, and logs nothing. */
    uint8_t payload[12] = {0};
    op.payload = payload;
    op.len = sizeof(payload);
    proto_wbuf_init(&reply);
    assert_int_equal(meta_apply(f->db, &op, &reply), -EPROTO);
    proto_wbuf_free(&reply);
    struct meta_stats st;
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.ops, 0);
}

static int keep_format(uint64_t seq, const struct meta_op *op, void *arg)
{
    (void)seq;
    *(uint8_t *)arg = op->format;
    return 0;
}

static void test_meta_op_oplog_keeps_format(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w;
    struct proto_mkdir_req q = {
        .cred = cred_root(), .parent = ROOT, .mode = 0755, .name = str_of("d")};
    uint8_t format = 0;
    proto_wbuf_init(&w);
    proto_mkdir_req_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_MKDIR_REQ, &w, NULL), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, keep_format, &format), 0);
    assert_int_equal(format, META_OP_FORMAT);
}

int test_meta_op(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_op_session_expire_round_trip),
        T(test_meta_op_chunk_set_round_trip),
        T(test_meta_op_chunk_set_layout_matches_meta_h),
        T(test_meta_op_replicas_over_limit_refused),
        T(test_meta_op_gc_done_round_trip),
        T(test_meta_op_chunk_usage_round_trip),
        T(test_meta_op_auth_add_round_trip),
        T(test_meta_op_auth_add_bad_names_refused),
        T(test_meta_op_service_key_round_trip),
        T(test_meta_op_member_round_trip),
        T(test_meta_op_replica_round_trip),
        T(test_meta_op_server_state_round_trip),
        T(test_meta_op_chunk_cow_round_trip_without_bump),
        T(test_meta_op_chunk_cow_round_trip_with_bump),
        T(test_meta_op_record_round_trip),
        T(test_meta_op_record_unknown_format_refused),
        cmocka_unit_test(test_meta_op_record_format_1),
        T(test_meta_op_oplog_keeps_format),
#undef T
    };
    return cmocka_run_group_tests_name("meta_op", tests, NULL, NULL);
}
