/* Tests for protocol/proto_msg.c: the message table generated from
 * proto_msgs.def (names, request/reply pairing, body sizes) and decode by
 * opcode for every message id.
 */
#include "proto_test.h"

#include <stdio.h>

/* For every message: encode its body's sample, decode it by opcode,
 * re-encode the decoded value to the same bytes, then check short and long
 * frames of it. */
#define X(name, id, body)                                                      \
    static void roundtrip_##name(void)                                         \
    {                                                                          \
        struct proto_##body m, d;                                              \
        struct proto_wbuf w, s, w2;                                            \
        ENCODE_SAMPLE(body, &m, &w, &s);                                       \
        assert_int_equal(proto_msg_decode(id, w.p, w.len, &d), 0);             \
        proto_wbuf_init(&w2);                                                  \
        proto_##body##_encode(&w2, &d);                                        \
        assert_int_equal(w2.err, 0);                                           \
        assert_int_equal(w2.len, w.len);                                       \
        if (w.len)                                                             \
            assert_memory_equal(w2.p, w.p, w.len);                             \
        assert_short_long(id, w.p, w.len);                                     \
        proto_wbuf_free(&w2);                                                  \
        proto_wbuf_free(&s);                                                   \
        proto_wbuf_free(&w);                                                   \
    }
#include "proto_msgs.def"
#undef X

static const struct {
    uint16_t id;
    const char *name;
    size_t size;
    void (*roundtrip)(void);
} table[] = {
#define X(name, id, body)                                                      \
    {id, #name, sizeof(struct proto_##body), roundtrip_##name},
#include "proto_msgs.def"
#undef X
};

#define NTABLE (sizeof(table) / sizeof(table[0]))

static void test_proto_msg_decode_every_opcode(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++)
        table[i].roundtrip();
}

static void test_proto_msg_decode_unknown_opcode(void **state)
{
    struct proto_ping m;
    uint8_t payload[8] = {0};

    (void)state;
    assert_int_equal(proto_msg_decode(0x0000, payload, 8, &m), -EPROTO);
    assert_int_equal(proto_msg_decode(0x000B, payload, 8, &m), -EPROTO);
    assert_int_equal(proto_msg_decode(0xffff, payload, 8, &m), -EPROTO);
}

static void test_proto_msg_name_every_opcode(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        const char *n = proto_msg_name(table[i].id);
        assert_non_null(n);
        assert_string_equal(n, table[i].name);
    }
    assert_string_equal(proto_msg_name(PROTO_MSG_LOOKUP_REQ), "LOOKUP_REQ");
    assert_string_equal(proto_msg_name(0x0502), "STATUS_REP");
}

static void test_proto_msg_name_unknown(void **state)
{
    (void)state;
    assert_null(proto_msg_name(0));
    assert_null(proto_msg_name(0x000B));
    assert_null(proto_msg_name(0x0600));
    assert_null(proto_msg_name(0xffff));
}

static void test_proto_msg_is_request_pairs(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++) {
        uint16_t id = table[i].id;
        size_t len = strlen(table[i].name);
        bool req = proto_msg_is_request(id);

        /* Odd ids are requests named _REQ, and their reply is id + 1. */
        assert_int_equal(req, (id & 1) != 0);
        assert_string_equal(table[i].name + len - 4, req ? "_REQ" : "_REP");
        if (req) {
            const char *rep = proto_msg_name((uint16_t)(id + 1));
            assert_non_null(rep);
            assert_memory_equal(rep, table[i].name, len - 4);
            assert_string_equal(rep + len - 4, "_REP");
        } else {
            assert_true(proto_msg_is_request((uint16_t)(id - 1)));
        }
    }
    assert_false(proto_msg_is_request(0x000B));
}

static void test_proto_msg_ids_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++)
        for (size_t j = i + 1; j < NTABLE; j++)
            assert_int_not_equal(table[i].id, table[j].id);
}

static void test_proto_msg_body_size_every_opcode(void **state)
{
    (void)state;
    for (size_t i = 0; i < NTABLE; i++)
        assert_int_equal(proto_msg_body_size(table[i].id), table[i].size);
    assert_int_equal(proto_msg_body_size(0x000B), 0);
}

int test_proto_msg(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_msg_decode_every_opcode),
        cmocka_unit_test(test_proto_msg_decode_unknown_opcode),
        cmocka_unit_test(test_proto_msg_name_every_opcode),
        cmocka_unit_test(test_proto_msg_name_unknown),
        cmocka_unit_test(test_proto_msg_is_request_pairs),
        cmocka_unit_test(test_proto_msg_ids_unique),
        cmocka_unit_test(test_proto_msg_body_size_every_opcode),
    };
    return cmocka_run_group_tests_name("proto_msg", tests, NULL, NULL);
}
