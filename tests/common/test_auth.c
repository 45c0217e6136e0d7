/* Tests for common/auth.c: key files, the handshake's proofs (a wrong key,
 * a replayed answer, a stale challenge, another identity's ticket are all
 * refused), sealing and tickets; and for common/auth_caps.c.
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
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "auth_caps.h"

static void key_cred(struct auth_cred *c, const char *name, uint8_t fill)
{
    memset(c, 0, sizeof(*c));
    c->method = PROTO_AUTH_KEY;
    snprintf(c->name, sizeof(c->name), "%s", name);
    memset(c->key, fill, sizeof(c->key));
}

static void nonce(uint8_t n[PROTO_AUTH_NONCE_SIZE])
{
    assert_int_equal(auth_random(n, PROTO_AUTH_NONCE_SIZE), 0);
}

/* ---- Proofs ---------------------------------------------------------------
 */

static void test_auth_verify_right_key(void **state)
{
    uint8_t ns[32], expect[32], proof[32];
    struct proto_auth_req req;
    struct auth_cred c;

    (void)state;
    key_cred(&c, "client.a", 0x11);
    nonce(ns);
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, ns, &req, expect), 0);
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_CLIENT, ns, &req, proof), 0);
    assert_true(auth_proof_equal(proof, expect));
    /* The two directions never share a proof (no reflection). */
    assert_false(auth_proof_equal(proof, req.proof));
}

static void test_auth_verify_wrong_key(void **state)
{
    uint8_t ns[32], expect[32], proof[32], other[AUTH_KEY_SIZE];
    struct proto_auth_req req;
    struct auth_cred c;

    (void)state;
    key_cred(&c, "client.a", 0x11);
    memset(other, 0x12, sizeof(other));
    nonce(ns);
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, ns, &req, expect), 0);
    assert_int_equal(auth_verify(other, PROTO_ROLE_CLIENT, ns, &req, proof),
                     -EKEYREJECTED);
}

/* An answer recorded on one connection, sent again on another: the new
 * connection's challenge differs, so the proof does not hold. */
static void test_auth_verify_replay(void **state)
{
    uint8_t ns1[32], ns2[32], expect[32], proof[32];
    struct proto_auth_req req;
    struct auth_cred c;

    (void)state;
    key_cred(&c, "client.a", 0x11);
    nonce(ns1);
    nonce(ns2);
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, ns1, &req, expect), 0);
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_CLIENT, ns2, &req, proof),
                     -EKEYREJECTED);
}

/* A proof made for an older challenge of the same connection, or changed
 * in its nonce, role or name after the fact, is refused. */
static void test_auth_verify_stale_or_changed(void **state)
{
    uint8_t ns[32], stale[32], expect[32], proof[32];
    struct proto_auth_req req;
    struct auth_cred c;

    (void)state;
    key_cred(&c, "client.a", 0x11);
    nonce(ns);
    memcpy(stale, ns, sizeof(stale));
    stale[31] ^= 1;
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, stale, &req, expect),
                     0);
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_CLIENT, ns, &req, proof),
                     -EKEYREJECTED);
    assert_int_equal(auth_answer(&c, PROTO_ROLE_CLIENT, ns, &req, expect), 0);
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_ADMIN, ns, &req, proof),
                     -EKEYREJECTED);
    req.nonce[0] ^= 1;
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_CLIENT, ns, &req, proof),
                     -EKEYREJECTED);
    req.nonce[0] ^= 1;
    req.name.p = "client.b";
    assert_int_equal(auth_verify(c.key, PROTO_ROLE_CLIENT, ns, &req, proof),
                     -EKEYREJECTED);
}

/* ---- Sealing and tickets ------------------------------------------------ */

static void test_auth_open_wrong_label_or_key(void **state)
{
    uint8_t key[AUTH_KEY_SIZE], other[AUTH_KEY_SIZE], out[64], sealed[128];
    int n;

    (void)state;
    memset(key, 1, sizeof(key));
    memset(other, 2, sizeof(other));
    n = auth_seal(key, AUTH_LABEL_SESSION_KEY, "0123456789", 10, sealed,
                  sizeof(sealed));
    assert_int_equal(n, 10 + AUTH_SEAL_OVERHEAD);
    assert_int_equal(auth_open(key, AUTH_LABEL_SESSION_KEY, sealed, (size_t)n,
                               out, sizeof(out)),
                     10);
    assert_memory_equal(out, "0123456789", 10);
    assert_int_equal(auth_open(other, AUTH_LABEL_SESSION_KEY, sealed, (size_t)n,
                               out, sizeof(out)),
                     -EBADMSG);
    assert_int_equal(auth_open(key, AUTH_LABEL_SERVICE_KEY, sealed, (size_t)n,
                               out, sizeof(out)),
                     -EBADMSG);
    sealed[n - 1] ^= 1;
    assert_int_equal(auth_open(key, AUTH_LABEL_SESSION_KEY, sealed, (size_t)n,
                               out, sizeof(out)),
                     -EBADMSG);
    assert_int_equal(auth_seal(key, "x", "0123456789", 10, sealed, 20),
                     -ENOSPC);
}

static void sample_ticket(struct auth_ticket *t, const char *name)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->caps, sizeof(t->caps), "ro path=/tenantA");
    t->expires_ms = auth_now_ms() + 60000;
    assert_int_equal(auth_random_key(t->session_key), 0);
}

static void test_auth_ticket_open_roundtrip(void **state)
{
    uint8_t svc[AUTH_KEY_SIZE], other[AUTH_KEY_SIZE];
    uint8_t blob[PROTO_AUTH_TICKET_MAX];
    struct auth_ticket t, out;
    uint32_t id;
    int n;

    (void)state;
    memset(svc, 7, sizeof(svc));
    memset(other, 8, sizeof(other));
    sample_ticket(&t, "client.a");
    n = auth_ticket_seal(42, svc, &t, blob, sizeof(blob));
    assert_true(n > 0);
    assert_int_equal(auth_ticket_key_id(blob, (size_t)n, &id), 0);
    assert_int_equal(id, 42);
    assert_int_equal(auth_ticket_open(svc, blob, (size_t)n, &out), 0);
    assert_string_equal(out.name, "client.a");
    assert_string_equal(out.caps, "ro path=/tenantA");
    assert_int_equal(out.expires_ms, t.expires_ms);
    assert_memory_equal(out.session_key, t.session_key, AUTH_KEY_SIZE);
    /* Not sealed with this service key, or the key id swapped. */
    assert_int_equal(auth_ticket_open(other, blob, (size_t)n, &out), -EBADMSG);
    blob[3] = 43;
    assert_int_equal(auth_ticket_open(svc, blob, (size_t)n, &out), -EBADMSG);
    assert_int_equal(auth_ticket_open(svc, blob, 10, &out), -EBADMSG);
}

/* client.b presents client.a's ticket (seen on the network) under either
 * name: without a's session key it cannot make the proof the chunk server
 * checks with the key inside the ticket. */
static void test_auth_verify_another_identity_ticket(void **state)
{
    uint8_t svc[AUTH_KEY_SIZE], ns[32], expect[32], proof[32];
    struct auth_ticket ta, opened;
    struct proto_auth_req req;
    struct auth_cred b;
    int n;

    (void)state;
    memset(svc, 7, sizeof(svc));
    sample_ticket(&ta, "client.a");
    memset(&b, 0, sizeof(b));
    b.method = PROTO_AUTH_TICKET;
    n = auth_ticket_seal(1, svc, &ta, b.ticket, sizeof(b.ticket));
    assert_true(n > 0);
    b.ticket_len = (uint32_t)n;
    assert_int_equal(auth_random_key(b.key), 0); /* b's own guess */
    for (int as_a = 0; as_a < 2; as_a++) {
        snprintf(b.name, sizeof(b.name), "%s", as_a ? "client.a" : "client.b");
        nonce(ns);
        assert_int_equal(auth_answer(&b, PROTO_ROLE_CLIENT, ns, &req, expect),
                         0);
        assert_int_equal(auth_ticket_open(svc, (const uint8_t *)req.ticket.p,
                                          req.ticket.len, &opened),
                         0);
        assert_int_equal(
            auth_verify(opened.session_key, PROTO_ROLE_CLIENT, ns, &req, proof),
            -EKEYREJECTED);
    }
}

/* ---- Key files --------------------------------------------------------------
 */

static void test_auth_key_load_roundtrip_and_mode(void **state)
{
    char dir[] = "/tmp/test_auth.XXXXXX", path[64];
    struct auth_key k, got;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a.key", dir);
    assert_int_equal(auth_key_generate("client.a", &k), 0);
    assert_int_equal(auth_key_save(path, &k), 0);
    assert_int_equal(auth_key_save(path, &k), -EEXIST);
    assert_int_equal(auth_key_load(path, &got), 0);
    assert_string_equal(got.name, "client.a");
    assert_memory_equal(got.secret, k.secret, AUTH_KEY_SIZE);
    /* Readable by the group: refused, as ssh refuses a private key. */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(auth_key_load(path, &got), -EPERM);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(auth_key_load(path, &got), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
    assert_int_equal(auth_key_generate("two words", &k), -EINVAL);
}

static void test_auth_key_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "name a\n",
        "name a\nsecret 00\n",
        "name a\nsecret "
        "zz00000000000000000000000000000000000000000000000000000000000000\n",
        "name a\nsecret "
        "0000000000000000000000000000000000000000000000000000000000000000\n"
        "other line\n",
    };
    struct auth_key k;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(auth_key_parse(bad[i], strlen(bad[i]), &k), -EINVAL);
    const char *good = "# comment\nname a\nsecret "
                       "00ff00000000000000000000000000000000000000000000000000"
                       "000000000a\n";
    assert_int_equal(auth_key_parse(good, strlen(good), &k), 0);
    assert_int_equal(k.secret[1], 0xff);
    assert_int_equal(k.secret[31], 0x0a);
}

/* ---- Capabilities
 * ------------------------------------------------------------ */

static void test_auth_caps_parse_and_format(void **state)
{
    struct auth_caps c;
    const char *why;
    char buf[256];

    (void)state;
    assert_int_equal(
        auth_caps_parse("path=/a,/vm/b ro squash=1000:100", &c, &why), 0);
    assert_int_equal(c.npaths, 2);
    assert_true(c.flags & AUTH_CAP_RO);
    assert_int_equal(c.squash_uid, 1000);
    assert_int_equal(c.squash_gid, 100);
    assert_true(auth_caps_format(&c, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "ro path=/a,/vm/b squash=1000:100");
    assert_int_equal(auth_caps_parse("", &c, &why), 0);
    assert_int_equal(c.flags, 0);
    assert_int_equal(auth_caps_parse("path=/a/../b", &c, &why), -EINVAL);
    assert_non_null(why);
    assert_int_equal(auth_caps_parse("path=a", &c, &why), -EINVAL);
    assert_int_equal(auth_caps_parse("path=/a/", &c, &why), -EINVAL);
    assert_int_equal(auth_caps_parse("root", &c, &why), -EINVAL);
    assert_int_equal(auth_caps_parse("squash=-1", &c, &why), -EINVAL);
}

static void test_auth_caps_reach(void **state)
{
    struct auth_caps c;

    (void)state;
    assert_int_equal(auth_caps_parse("path=/tenantA,/vm/disk.img", &c, NULL),
                     0);
    assert_int_equal(auth_caps_reach(&c, "/tenantA"), AUTH_REACH_INSIDE);
    assert_int_equal(auth_caps_reach(&c, "/tenantA/x/y"), AUTH_REACH_INSIDE);
    assert_int_equal(auth_caps_reach(&c, "/tenantAB"), AUTH_REACH_OUTSIDE);
    assert_int_equal(auth_caps_reach(&c, "/tenantB"), AUTH_REACH_OUTSIDE);
    assert_int_equal(auth_caps_reach(&c, "/"), AUTH_REACH_ABOVE);
    assert_int_equal(auth_caps_reach(&c, "/vm"), AUTH_REACH_ABOVE);
    assert_int_equal(auth_caps_reach(&c, "/vm/disk.img"), AUTH_REACH_INSIDE);
    assert_int_equal(auth_caps_reach(&c, "/vm/other.img"), AUTH_REACH_OUTSIDE);
    assert_int_equal(auth_caps_parse("rw", &c, NULL), 0);
    assert_int_equal(auth_caps_reach(&c, "/anything"), AUTH_REACH_INSIDE);
}

int test_auth(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_verify_right_key),
        cmocka_unit_test(test_auth_verify_wrong_key),
        cmocka_unit_test(test_auth_verify_replay),
        cmocka_unit_test(test_auth_verify_stale_or_changed),
        cmocka_unit_test(test_auth_open_wrong_label_or_key),
        cmocka_unit_test(test_auth_ticket_open_roundtrip),
        cmocka_unit_test(test_auth_verify_another_identity_ticket),
        cmocka_unit_test(test_auth_key_load_roundtrip_and_mode),
        cmocka_unit_test(test_auth_key_parse_malformed),
        cmocka_unit_test(test_auth_caps_parse_and_format),
        cmocka_unit_test(test_auth_caps_reach),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
