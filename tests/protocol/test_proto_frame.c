/* Tests for protocol/proto_frame.c: the 24-byte header and the incremental
 * frame reader (docs/protocol.md §2).
 */
#include "proto_test.h"

static const struct proto_hdr sample_hdr = {
    .version = PROTO_FRAME_VERSION,
    .flags = PROTO_FLAG_REPLY,
    .opcode = PROTO_MSG_LOOKUP_REP,
    .req_id = 0x0102030405060708ull,
    .status = PROTO_ENOENT,
    .length = 0x10,
};

static void test_proto_hdr_encode_layout(void **state)
{
    static const uint8_t want[PROTO_HDR_SIZE] = {
        0x54, 0x53, 0x52, 0x41,                         /* magic "TSRA" */
        0x01,                                           /* frame version */
        0x01,                                           /* flags: REPLY */
        0x01, 0x12,                                     /* opcode */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* request id */
        0x00, 0x00, 0x00, 0x02,                         /* status ENOENT */
        0x00, 0x00, 0x00, 0x10,                         /* length */
    };
    uint8_t out[PROTO_HDR_SIZE];

    (void)state;
    proto_hdr_encode(&sample_hdr, out);
    assert_memory_equal(out, want, PROTO_HDR_SIZE);
}

static void test_proto_hdr_decode_roundtrip(void **state)
{
    uint8_t buf[PROTO_HDR_SIZE];
    struct proto_hdr h;

    (void)state;
    proto_hdr_encode(&sample_hdr, buf);
    assert_int_equal(proto_hdr_decode(buf, &h), 0);
    assert_int_equal(h.version, sample_hdr.version);
    assert_int_equal(h.flags, sample_hdr.flags);
    assert_int_equal(h.opcode, sample_hdr.opcode);
    assert_int_equal(h.req_id, sample_hdr.req_id);
    assert_int_equal(h.status, sample_hdr.status);
    assert_int_equal(h.length, sample_hdr.length);
}

/* Encode @h, then decode it and return the result. */
static int hdr_check(struct proto_hdr h)
{
    uint8_t buf[PROTO_HDR_SIZE];
    struct proto_hdr out;

    proto_hdr_encode(&h, buf);
    return proto_hdr_decode(buf, &out);
}

static void test_proto_hdr_decode_bad_magic(void **state)
{
    uint8_t buf[PROTO_HDR_SIZE];
    struct proto_hdr h;

    (void)state;
    for (int i = 0; i < 4; i++) {
        proto_hdr_encode(&sample_hdr, buf);
        buf[i] ^= 0x20;
        assert_int_equal(proto_hdr_decode(buf, &h), -EPROTO);
    }
}

static void test_proto_hdr_decode_bad_version(void **state)
{
    struct proto_hdr h = sample_hdr;

    (void)state;
    h.version = 0;
    assert_int_equal(hdr_check(h), -EPROTO);
    h.version = 2;
    assert_int_equal(hdr_check(h), -EPROTO);
    h.version = 0xff;
    assert_int_equal(hdr_check(h), -EPROTO);
}

static void test_proto_hdr_decode_unknown_flag(void **state)
{
    struct proto_hdr h = sample_hdr;

    (void)state;
    for (int bit = 1; bit < 8; bit++) {
        h.flags = (uint8_t)(PROTO_FLAG_REPLY | (1u << bit));
        assert_int_equal(hdr_check(h), -EPROTO);
    }
}

static void test_proto_hdr_decode_request_with_status(void **state)
{
    struct proto_hdr h = sample_hdr;

    (void)state;
    h.flags = 0;
    h.opcode = PROTO_MSG_LOOKUP_REQ;
    h.status = 0;
    assert_int_equal(hdr_check(h), 0);
    h.status = PROTO_EIO;
    assert_int_equal(hdr_check(h), -EPROTO);
    h.status = -1;
    assert_int_equal(hdr_check(h), -EPROTO);
}

static void test_proto_hdr_decode_reply_unknown_status(void **state)
{
    struct proto_hdr h = sample_hdr;

    (void)state;
    h.status = PROTO_EOLDVER;
    assert_int_equal(hdr_check(h), 0);
    h.status = 3; /* ESRCH: not on the wire list */
    assert_int_equal(hdr_check(h), -EPROTO);
    h.status = 1000;
    assert_int_equal(hdr_check(h), -EPROTO);
    h.status = -2;
    assert_int_equal(hdr_check(h), -EPROTO);
}

static void test_proto_hdr_decode_too_long(void **state)
{
    struct proto_hdr h = sample_hdr;

    (void)state;
    h.length = PROTO_MAX_PAYLOAD;
    assert_int_equal(hdr_check(h), 0);
    h.length = PROTO_MAX_PAYLOAD + 1;
    assert_int_equal(hdr_check(h), -EMSGSIZE);
    h.length = UINT32_MAX;
    assert_int_equal(hdr_check(h), -EMSGSIZE);
}

/* Append one frame with @req_id and a payload of @len bytes (value i&0xff
 * at offset i) to @out. */
static void append_frame(struct proto_wbuf *out, uint64_t req_id, size_t len)
{
    struct proto_wbuf f;
    struct proto_hdr h = {
        PROTO_FRAME_VERSION, 0, PROTO_MSG_PING_REQ, req_id, 0, 0};
    uint8_t *payload = malloc(len ? len : 1);

    assert_non_null(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)i;
    proto_wbuf_init(&f);
    assert_int_equal(proto_frame_build(&f, &h, payload, len), 0);
    assert_int_equal(f.len, PROTO_HDR_SIZE + len);
    proto_put_raw(out, f.p, f.len);
    proto_wbuf_free(&f);
    free(payload);
}

static void assert_frame(const struct proto_hdr *h, const uint8_t *payload,
                         uint64_t req_id, size_t len)
{
    assert_int_equal(h->opcode, PROTO_MSG_PING_REQ);
    assert_int_equal(h->req_id, req_id);
    assert_int_equal(h->length, len);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(payload[i], (uint8_t)i);
}

static void test_proto_reader_next_one_byte_at_a_time(void **state)
{
    struct proto_wbuf stream;
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;
    int got = 0;

    (void)state;
    proto_wbuf_init(&stream);
    append_frame(&stream, 1, 8);
    append_frame(&stream, 2, 0);
    append_frame(&stream, 3, 300);
    proto_reader_init(&rd);
    for (size_t i = 0; i < stream.len; i++) {
        assert_int_equal(proto_reader_feed(&rd, stream.p + i, 1), 0);
        int rc = proto_reader_next(&rd, &h, &payload);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            static const size_t lens[] = {8, 0, 300};
            assert_true(got < 3);
            assert_frame(&h, payload, (uint64_t)got + 1, lens[got]);
            got++;
        }
    }
    assert_int_equal(got, 3);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 0);
    proto_reader_free(&rd);
    proto_wbuf_free(&stream);
}

static void test_proto_reader_next_several_frames_in_one_feed(void **state)
{
    struct proto_wbuf stream;
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;

    (void)state;
    proto_wbuf_init(&stream);
    for (uint64_t i = 0; i < 5; i++)
        append_frame(&stream, 10 + i, (size_t)i * 7);
    /* A partial sixth frame stays buffered. */
    append_frame(&stream, 99, 16);
    proto_reader_init(&rd);
    assert_int_equal(proto_reader_feed(&rd, stream.p, stream.len - 5), 0);
    for (uint64_t i = 0; i < 5; i++) {
        assert_int_equal(proto_reader_next(&rd, &h, &payload), 1);
        assert_frame(&h, payload, 10 + i, (size_t)i * 7);
    }
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 0);
    assert_int_equal(proto_reader_feed(&rd, stream.p + stream.len - 5, 5), 0);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 1);
    assert_frame(&h, payload, 99, 16);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 0);
    proto_reader_free(&rd);
    proto_wbuf_free(&stream);
}

static void test_proto_reader_space_commit(void **state)
{
    struct proto_wbuf stream;
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;
    size_t avail, off = 0;

    (void)state;
    proto_wbuf_init(&stream);
    append_frame(&stream, 5, 5000);
    proto_reader_init(&rd);
    while (off < stream.len) {
        uint8_t *at = proto_reader_space(&rd, 1000, &avail);
        size_t k = stream.len - off < 1000 ? stream.len - off : 1000;
        assert_non_null(at);
        assert_true(avail >= 1000);
        memcpy(at, stream.p + off, k);
        assert_int_equal(proto_reader_commit(&rd, k), 0);
        off += k;
    }
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 1);
    assert_frame(&h, payload, 5, 5000);
    proto_reader_free(&rd);
    proto_wbuf_free(&stream);
}

static void test_proto_reader_feed_bad_header_closes(void **state)
{
    struct proto_wbuf stream;
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;

    (void)state;
    proto_wbuf_init(&stream);
    append_frame(&stream, 1, 4);
    append_frame(&stream, 2, 4);
    stream.p[PROTO_HDR_SIZE + 4] = 'X'; /* second frame's magic */
    proto_reader_init(&rd);
    /* The first frame is still handed out; the bad one latches. */
    assert_int_equal(proto_reader_feed(&rd, stream.p, PROTO_HDR_SIZE + 4), 0);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), 1);
    assert_frame(&h, payload, 1, 4);
    assert_int_equal(proto_reader_feed(&rd, stream.p + PROTO_HDR_SIZE + 4,
                                       PROTO_HDR_SIZE + 4),
                     -EPROTO);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), -EPROTO);
    /* Latched: nothing more is accepted, even a good frame. */
    assert_int_equal(proto_reader_feed(&rd, stream.p, PROTO_HDR_SIZE + 4),
                     -EPROTO);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), -EPROTO);
    proto_reader_free(&rd);
    proto_wbuf_free(&stream);
}

static void test_proto_reader_feed_oversized_length(void **state)
{
    struct proto_hdr hh = {PROTO_FRAME_VERSION,  0, PROTO_MSG_PING_REQ, 1, 0,
                           PROTO_MAX_PAYLOAD + 1};
    uint8_t buf[PROTO_HDR_SIZE];
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;

    (void)state;
    proto_hdr_encode(&hh, buf);
    proto_reader_init(&rd);
    /* Rejected as soon as the header is complete, before any payload. */
    assert_int_equal(proto_reader_feed(&rd, buf, PROTO_HDR_SIZE - 1), 0);
    assert_int_equal(proto_reader_feed(&rd, buf + PROTO_HDR_SIZE - 1, 1),
                     -EMSGSIZE);
    assert_int_equal(proto_reader_next(&rd, &h, &payload), -EMSGSIZE);
    assert_true(rd.cap < 65536);
    proto_reader_free(&rd);
}

static void test_proto_frame_build_too_long(void **state)
{
    struct proto_wbuf w;
    struct proto_hdr h = sample_hdr;

    (void)state;
    proto_wbuf_init(&w);
    assert_int_equal(proto_frame_build(&w, &h, NULL, PROTO_MAX_PAYLOAD + 1),
                     -EMSGSIZE);
    assert_int_equal(proto_frame_build(&w, &h, NULL, 0), 0);
    assert_int_equal(w.len, PROTO_HDR_SIZE);
    proto_wbuf_free(&w);
}

int test_proto_frame(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_hdr_encode_layout),
        cmocka_unit_test(test_proto_hdr_decode_roundtrip),
        cmocka_unit_test(test_proto_hdr_decode_bad_magic),
        cmocka_unit_test(test_proto_hdr_decode_bad_version),
        cmocka_unit_test(test_proto_hdr_decode_unknown_flag),
        cmocka_unit_test(test_proto_hdr_decode_request_with_status),
        cmocka_unit_test(test_proto_hdr_decode_reply_unknown_status),
        cmocka_unit_test(test_proto_hdr_decode_too_long),
        cmocka_unit_test(test_proto_reader_next_one_byte_at_a_time),
        cmocka_unit_test(test_proto_reader_next_several_frames_in_one_feed),
        cmocka_unit_test(test_proto_reader_space_commit),
        cmocka_unit_test(test_proto_reader_feed_bad_header_closes),
        cmocka_unit_test(test_proto_reader_feed_oversized_length),
        cmocka_unit_test(test_proto_frame_build_too_long),
    };
    return cmocka_run_group_tests_name("proto_frame", tests, NULL, NULL);
}
