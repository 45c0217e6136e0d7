/* Tests for protocol/proto_auth.c and the challenge in HELLO_REP: the
 * authentication and identity admin bodies (docs/protocol.md §3.2, §3.5,
 * §3.6, §10.2).
 */
#include "proto_test.h"

static void test_proto_hello_rep_decode_nonce(void **state)
{
    struct proto_hello_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(hello_rep, &in, &w, &s);
    proto_wbuf_reset(&w);
    in.auth_method = PROTO_AUTH_KEY;
    for (int i = 0; i < 32; i++)
        in.nonce[i] = (uint8_t)(0x10 + i);
    proto_hello_rep_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_hello_rep_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.auth_method, PROTO_AUTH_KEY);
    assert_memory_equal(out.nonce, in.nonce, 32);
    assert_short_long(PROTO_MSG_HELLO_REP, w.p, w.len);
    FREE_BUFS(&w, &s);
}

static void test_proto_auth_req_decode_roundtrip(void **state)
{
    struct proto_auth_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(auth_req, PROTO_MSG_AUTH_REQ, &in, &out, &w, &s);
    assert_int_equal(out.method, in.method);
    assert_pstr_equal(out.name, in.name);
    assert_pstr_equal(out.ticket, in.ticket);
    assert_memory_equal(out.nonce, in.nonce, 32);
    assert_memory_equal(out.proof, in.proof, 32);
    FREE_BUFS(&w, &s);
}

/* A KEY answer carries no ticket and a TICKET answer one; the method is
 * one of the two; the name is 1..64 printable bytes. */
static void test_proto_auth_req_decode_inconsistent(void **state)
{
    struct proto_auth_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(auth_req, &in, &w, &s);
    w.p[0] = PROTO_AUTH_KEY;
    assert_int_equal(proto_auth_req_decode(w.p, w.len, &out), -EPROTO);
    w.p[0] = 3;
    assert_int_equal(proto_auth_req_decode(w.p, w.len, &out), -EPROTO);
    w.p[0] = PROTO_AUTH_TICKET;
    w.p[3 + 6] = ' '; /* "client host7" */
    assert_int_equal(proto_auth_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);

    proto_wbuf_init(&w);
    in.name = pstr("");
    proto_auth_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    proto_wbuf_free(&w);
}

static void test_proto_auth_rep_decode_roundtrip(void **state)
{
    struct proto_auth_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(auth_rep, PROTO_MSG_AUTH_REP, &in, &out, &w, &s);
    assert_memory_equal(out.proof, in.proof, 32);
    FREE_BUFS(&w, &s);
}

static void test_proto_auth_ticket_rep_decode_roundtrip(void **state)
{
    struct proto_auth_ticket_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(auth_ticket_rep, PROTO_MSG_AUTH_TICKET_REP, &in, &out, &w, &s);
    assert_int_equal(out.expires_ms, in.expires_ms);
    assert_pstr_equal(out.ticket, in.ticket);
    assert_pstr_equal(out.sealed_key, in.sealed_key);
    FREE_BUFS(&w, &s);
}

static void test_proto_auth_service_rep_decode_count(void **state)
{
    struct proto_auth_service_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(auth_service_rep, PROTO_MSG_AUTH_SERVICE_REP, &in, &out, &w, &s);
    assert_int_equal(out.count, 2);
    assert_int_equal(out.keys[1].id, 6);
    assert_pstr_equal(out.keys[1].sealed, in.keys[1].sealed);
    patch_be(w.p, 0, 0, 4);
    assert_int_equal(proto_auth_service_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, PROTO_AUTH_SERVICE_MAX + 1, 4);
    assert_int_equal(proto_auth_service_rep_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_auth_set_req_decode_unknown_flag(void **state)
{
    struct proto_auth_set_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(auth_set_req, PROTO_MSG_AUTH_ADD_REQ, &in, &out, &w, &s);
    assert_pstr_equal(out.name, in.name);
    assert_pstr_equal(out.caps, in.caps);
    assert_int_equal(out.flags, in.flags);
    patch_be(w.p, w.len - 4, 2, 4);
    assert_int_equal(proto_auth_set_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_auth_name_req_decode_empty(void **state)
{
    struct proto_auth_name_req in = {.name = {"", 0}}, out;
    struct proto_wbuf w;

    (void)state;
    proto_wbuf_init(&w);
    proto_auth_name_req_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_auth_name_req_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.name.len, 0);
    proto_wbuf_free(&w);
}

static void test_proto_err_eauth(void **state)
{
    (void)state;
    assert_int_equal(proto_err_to_wire(-EKEYREJECTED), PROTO_EAUTH);
    assert_int_equal(proto_err_from_wire(PROTO_EAUTH), -EKEYREJECTED);
}

int test_proto_auth(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_hello_rep_decode_nonce),
        cmocka_unit_test(test_proto_auth_req_decode_roundtrip),
        cmocka_unit_test(test_proto_auth_req_decode_inconsistent),
        cmocka_unit_test(test_proto_auth_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_auth_ticket_rep_decode_roundtrip),
        cmocka_unit_test(test_proto_auth_service_rep_decode_count),
        cmocka_unit_test(test_proto_auth_set_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_auth_name_req_decode_empty),
        cmocka_unit_test(test_proto_err_eauth),
    };
    return cmocka_run_group_tests_name("proto_auth", tests, NULL, NULL);
}
