/* Tests for server/chunk_auth.c: which tickets open (service key, expiry,
 * name), the rights they give, and the ticket a server seals for its own
 * forwarding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_caps.h"
#include "chunk_internal.h"

struct afx {
    uv_loop_t loop;
    struct chunk_server srv;
    struct peer *p; /* only its rights are used: never connects */
};

static int setup(void **state)
{
    struct afx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv.loop = &f->loop;
    snprintf(f->srv.auth.key.name, sizeof(f->srv.auth.key.name), "chunkd.7");
    f->srv.auth.nservice = 2;
    f->srv.auth.service[0].id = 5;
    memset(f->srv.auth.service[0].secret, 0x55, 32);
    f->srv.auth.service[1].id = 4;
    memset(f->srv.auth.service[1].secret, 0x44, 32);
    /* Port 1 on loopback refuses: the peer exists, nothing connects. */
    assert_int_equal(peer_connect(&f->loop, "127.0.0.1:1", PROTO_ROLE_CLIENT,
                                  "t", NULL, &f->srv, &f->p),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct afx *f = *state;

    peer_close(f->p);
    peer_unref(f->p);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* An AUTH_REQ for @name showing a ticket for @tname sealed with service
 * key @id (@fill bytes), expiring @ttl_ms from now. */
static void make_req(struct proto_auth_req *req, uint8_t *blob, size_t size,
                     const char *name, const char *tname, uint32_t id,
                     uint8_t fill, int64_t ttl_ms, const char *caps)
{
    struct auth_ticket t = {0};
    uint8_t svc[32];
    int n;

    memset(svc, fill, sizeof(svc));
    snprintf(t.name, sizeof(t.name), "%s", tname);
    snprintf(t.caps, sizeof(t.caps), "%s", caps);
    t.expires_ms = (uint64_t)((int64_t)auth_now_ms() + ttl_ms);
    memset(t.session_key, 0xab, sizeof(t.session_key));
    n = auth_ticket_seal(id, svc, &t, blob, size);
    assert_true(n > 0);
    memset(req, 0, sizeof(*req));
    req->method = PROTO_AUTH_TICKET;
    req->name = (struct proto_str){name, (uint32_t)strlen(name)};
    req->ticket = (struct proto_str){(const char *)blob, (uint32_t)n};
}

static void test_chunk_auth_key_ticket_opens(void **state)
{
    struct afx *f = *state;
    uint8_t blob[PROTO_AUTH_TICKET_MAX], key[32], want[32];
    struct proto_auth_req req;

    make_req(&req, blob, sizeof(blob), "client.a", "client.a", 4, 0x44, 60000,
             "ro path=/a");
    assert_int_equal(chunk_auth_key(f->p, &req, key), 0);
    memset(want, 0xab, sizeof(want));
    assert_memory_equal(key, want, 32);
    assert_int_equal(peer_rights(f->p), AUTH_CAP_RO);
}

static void test_chunk_auth_key_refused(void **state)
{
    struct afx *f = *state;
    uint8_t blob[PROTO_AUTH_TICKET_MAX], key[32];
    struct proto_auth_req req;

    /* Expired well past the skew allowed. */
    make_req(&req, blob, sizeof(blob), "client.a", "client.a", 5, 0x55,
             -3600 * 1000, "");
    assert_int_equal(chunk_auth_key(f->p, &req, key), -EKEYREJECTED);
    /* Another identity's ticket under one's own name. */
    make_req(&req, blob, sizeof(blob), "client.b", "client.a", 5, 0x55, 60000,
             "");
    assert_int_equal(chunk_auth_key(f->p, &req, key), -EKEYREJECTED);
    /* A service key this server does not have, or a forged one. */
    make_req(&req, blob, sizeof(blob), "client.a", "client.a", 3, 0x33, 60000,
             "");
    assert_int_equal(chunk_auth_key(f->p, &req, key), -EKEYREJECTED);
    make_req(&req, blob, sizeof(blob), "client.a", "client.a", 5, 0x56, 60000,
             "");
    assert_int_equal(chunk_auth_key(f->p, &req, key), -EKEYREJECTED);
    /* The KEY method is not served here. */
    make_req(&req, blob, sizeof(blob), "client.a", "client.a", 5, 0x55, 60000,
             "");
    req.method = PROTO_AUTH_KEY;
    assert_int_equal(chunk_auth_key(f->p, &req, key), -EKEYREJECTED);
}

static void test_chunk_auth_allowed_by_rights(void **state)
{
    struct afx *f = *state;

    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_DELETE_REQ),
        0); /* dialled by us: trusted */
    peer_set_rights(f->p, AUTH_CAP_RO);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_READ_REQ), 0);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_SYNC_REQ), 0);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_WRITE_REQ), -EROFS);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_TRUNCATE_REQ),
        -EROFS);
    peer_set_rights(f->p, 0); /* a read-write client */
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_WRITE_REQ), 0);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_SETVERSION_REQ),
        -EPERM);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_REPLICATE_REQ),
        -EPERM);
    peer_set_rights(f->p, AUTH_CAP_CHUNKD);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_DELETE_REQ), 0);
    f->srv.auth.no_auth = true;
    peer_set_rights(f->p, AUTH_CAP_RO);
    assert_int_equal(
        chunk_auth_allowed(&f->srv, f->p, PROTO_MSG_CHUNK_WRITE_REQ), 0);
}

/* The ticket a server dials another with opens there as its own
 * identity, a storage server. */
static void test_chunk_auth_cred_self_ticket(void **state)
{
    struct afx *f = *state;
    struct auth_cred c;
    struct auth_ticket t;
    struct auth_caps caps;

    assert_int_equal(chunk_auth_cred(&f->srv, &c), 0);
    assert_int_equal(c.method, PROTO_AUTH_TICKET);
    assert_string_equal(c.name, "chunkd.7");
    assert_int_equal(auth_ticket_open(f->srv.auth.service[0].secret, c.ticket,
                                      c.ticket_len, &t),
                     0);
    assert_string_equal(t.name, "chunkd.7");
    assert_memory_equal(t.session_key, c.key, 32);
    assert_int_equal(auth_caps_parse(t.caps, &caps, NULL), 0);
    assert_int_equal(caps.flags, AUTH_CAP_CHUNKD);
    f->srv.auth.nservice = 0;
    assert_int_equal(chunk_auth_cred(&f->srv, &c), -EKEYREJECTED);
}

int test_chunk_auth(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_auth_key_ticket_opens),
        T(test_chunk_auth_key_refused),
        T(test_chunk_auth_allowed_by_rights),
        T(test_chunk_auth_cred_self_ticket),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_auth", tests, NULL, NULL);
}
