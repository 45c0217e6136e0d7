/* Tests for common/seclink.c: two sessions over the memory transport,
 * pumped into each other, and one over a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "seclink.h"

/* Move what @from wrote into @to and let @to run its handshake (when
 * @hs) or read up to @cap bytes into @got.  Returns the last result. */
static ssize_t pump(struct seclink *from, struct seclink *to, bool hs,
                    uint8_t *got, size_t cap, size_t *have)
{
    size_t n = seclink_output_len(from);
    uint8_t *buf = malloc(n ? n : 1);
    ssize_t rc;

    assert_non_null(buf);
    seclink_output_take(from, buf);
    seclink_input(to, buf, n);
    if (hs) {
        rc = seclink_handshake(to);
    } else {
        do {
            rc = seclink_recv(to, got + *have, cap - *have);
            if (rc > 0)
                *have += (size_t)rc;
        } while (rc > 0 && *have < cap);
    }
    if (rc == -EAGAIN)
        assert_int_equal(seclink_input_left(to), 0);
    free(buf);
    return rc;
}

/* Run both handshakes to the end: 0, or the first error either saw. */
static int handshake(struct seclink *c, struct seclink *s)
{
    int rc_c = seclink_handshake(c), rc_s = -EAGAIN;

    for (int i = 0; i < 10 && (rc_c == -EAGAIN || rc_s == -EAGAIN); i++) {
        if (rc_s == -EAGAIN)
            rc_s = (int)pump(c, s, true, NULL, 0, NULL);
        if (rc_c == -EAGAIN)
            rc_c = (int)pump(s, c, true, NULL, 0, NULL);
    }
    if (rc_s == 0 && seclink_output_len(s)) /* a last flight for c */
        pump(s, c, true, NULL, 0, NULL);
    /* Either both succeed or both see the refusal. */
    assert_int_equal(rc_c < 0, rc_s < 0);
    return rc_c < 0 ? rc_c : rc_s;
}

static void pair(uint8_t ckey, uint8_t skey, struct seclink **c,
                 struct seclink **s)
{
    uint8_t k1[AUTH_KEY_SIZE], k2[AUTH_KEY_SIZE];

    memset(k1, ckey, sizeof(k1));
    memset(k2, skey, sizeof(k2));
    assert_int_equal(seclink_new(SECLINK_CLIENT, "client.a", k1, -1, c), 0);
    assert_int_equal(seclink_new(SECLINK_SERVER, "client.a", k2, -1, s), 0);
}

static void test_seclink_memory_round_trip(void **state)
{
    struct seclink *c, *s;
    static uint8_t big[100000], got[100000];
    size_t have = 0;

    (void)state;
    pair(7, 7, &c, &s);
    assert_int_equal(handshake(c, s), 0);
    assert_non_null(strstr(seclink_describe(c), "TLS1.3"));
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 31);
    assert_int_equal(seclink_send(c, big, sizeof(big)), 0);
    /* Encrypted: the plaintext does not show in what goes out. */
    assert_true(seclink_output_len(c) > sizeof(big));
    pump(c, s, false, got, sizeof(got), &have);
    assert_int_equal(have, sizeof(big));
    assert_memory_equal(got, big, sizeof(big));
    /* And back. */
    have = 0;
    assert_int_equal(seclink_send(s, "pong", 4), 0);
    pump(s, c, false, got, 4, &have);
    assert_int_equal(have, 4);
    assert_memory_equal(got, "pong", 4);
    seclink_free(c);
    seclink_free(s);
}

/* The session runs on AES-GCM: with GnuTLS's default order a raw (SHA-256)
 * PSK skipped AES-256-GCM, a SHA-384 suite, and landed on the much slower
 * ChaCha20-Poly1305. */
static void test_seclink_handshake_picks_aes_gcm(void **state)
{
    struct seclink *c, *s;

    (void)state;
    pair(7, 7, &c, &s);
    assert_int_equal(handshake(c, s), 0);
    assert_string_equal(seclink_describe(c), "TLS1.3 ECDHE-PSK AES-128-GCM");
    assert_string_equal(seclink_describe(s), "TLS1.3 ECDHE-PSK AES-128-GCM");
    seclink_free(c);
    seclink_free(s);
}

static void test_seclink_wrong_key_refused(void **state)
{
    struct seclink *c, *s;

    (void)state;
    pair(7, 8, &c, &s);
    assert_int_equal(handshake(c, s), -EKEYREJECTED);
    seclink_free(c);
    seclink_free(s);
}

static void test_seclink_wrong_name_refused(void **state)
{
    uint8_t k[AUTH_KEY_SIZE];
    struct seclink *c, *s;

    (void)state;
    memset(k, 7, sizeof(k));
    assert_int_equal(seclink_new(SECLINK_CLIENT, "client.b", k, -1, &c), 0);
    assert_int_equal(seclink_new(SECLINK_SERVER, "client.a", k, -1, &s), 0);
    assert_int_equal(handshake(c, s), -EKEYREJECTED);
    seclink_free(c);
    seclink_free(s);
}

/* A record changed on the way does not authenticate. */
static void test_seclink_tampered_record_refused(void **state)
{
    struct seclink *c, *s;
    uint8_t got[64], *buf;
    size_t n;

    (void)state;
    pair(7, 7, &c, &s);
    assert_int_equal(handshake(c, s), 0);
    assert_int_equal(seclink_send(c, "transfer 100 to alice", 21), 0);
    n = seclink_output_len(c);
    buf = malloc(n);
    assert_non_null(buf);
    seclink_output_take(c, buf);
    buf[n - 20] ^= 0x01;
    seclink_input(s, buf, n);
    assert_int_equal(seclink_recv(s, got, sizeof(got)), -EBADMSG);
    free(buf);
    seclink_free(c);
    seclink_free(s);
}

struct side_arg {
    int fd;
    enum seclink_side side;
    int rc;
    char got[16];
};

static void *socket_side(void *arg)
{
    struct side_arg *a = arg;
    uint8_t k[AUTH_KEY_SIZE];
    struct seclink *l;

    memset(k, 3, sizeof(k));
    a->rc = seclink_new(a->side, "nbd.hv3", k, a->fd, &l);
    if (a->rc == 0)
        a->rc = seclink_handshake(l);
    if (a->rc == 0 && a->side == SECLINK_CLIENT)
        a->rc = seclink_send(l, "hello", 5);
    if (a->rc == 0 && a->side == SECLINK_SERVER) {
        ssize_t k2 = seclink_recv(l, a->got, sizeof(a->got));
        a->rc = k2 < 0 ? (int)k2 : 0;
    }
    seclink_free(l);
    return NULL;
}

static void test_seclink_socket(void **state)
{
    struct side_arg c = {.side = SECLINK_CLIENT}, s = {.side = SECLINK_SERVER};
    pthread_t t;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c.fd = sv[0];
    s.fd = sv[1];
    assert_int_equal(pthread_create(&t, NULL, socket_side, &s), 0);
    socket_side(&c);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(s.rc, 0);
    assert_string_equal(s.got, "hello");
    close(sv[0]);
    close(sv[1]);
}

/* The client side of test_seclink_socket_read_ahead_delivered(): two
 * sends, then it waits for the answer with nothing more to send. */
static void *two_sends(void *arg)
{
    struct side_arg *a = arg;
    uint8_t k[AUTH_KEY_SIZE];
    struct seclink *l;

    memset(k, 3, sizeof(k));
    a->rc = seclink_new(SECLINK_CLIENT, "nbd.hv3", k, a->fd, &l);
    if (a->rc == 0)
        a->rc = seclink_handshake(l);
    if (a->rc == 0)
        a->rc = seclink_send(l, "first", 5);
    if (a->rc == 0)
        a->rc = seclink_send(l, "second", 6);
    if (a->rc == 0) {
        ssize_t k2 = seclink_recv(l, a->got, sizeof(a->got));
        a->rc = k2 < 0 ? (int)k2 : 0;
    }
    seclink_free(l);
    return NULL;
}

/* Records that arrived together sit in the read-ahead: each is delivered
 * from there, without waiting on the socket for more (the receive
 * timeout would fail the read). */
static void test_seclink_socket_read_ahead_delivered(void **state)
{
    struct side_arg c = {.side = SECLINK_CLIENT};
    struct timeval tv = {.tv_sec = 5};
    uint8_t k[AUTH_KEY_SIZE];
    char got[16] = {0};
    size_t have = 0;
    struct seclink *s;
    pthread_t t;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    memset(k, 3, sizeof(k));
    c.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, two_sends, &c), 0);
    assert_int_equal(seclink_new(SECLINK_SERVER, "nbd.hv3", k, sv[1], &s), 0);
    assert_int_equal(seclink_handshake(s), 0);
    /* Let both records arrive before the first read. */
    usleep(100 * 1000);
    while (have < 11) {
        ssize_t n = seclink_recv(s, got + have, 3);
        assert_true(n > 0);
        have += (size_t)n;
    }
    assert_memory_equal(got, "firstsecond", 11);
    assert_int_equal(seclink_send(s, "bye", 3), 0);
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    assert_string_equal(c.got, "bye");
    seclink_free(s);
    close(sv[0]);
    close(sv[1]);
}

/* The client side of test_seclink_socket_batches_records(): handshake,
 * then a 1 MiB frame (a header and a payload) in one seclink_sendv(). */
static void *batch_sender(void *arg)
{
    struct side_arg *a = arg;
    uint8_t k[AUTH_KEY_SIZE];
    static uint8_t hdr[24], big[1 << 20];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {big, sizeof(big)}};
    struct seclink *l;

    memset(k, 3, sizeof(k));
    memset(hdr, 0xee, sizeof(hdr));
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    a->rc = seclink_new(SECLINK_CLIENT, "nbd.hv3", k, a->fd, &l);
    if (a->rc == 0)
        a->rc = seclink_handshake(l);
    if (a->rc == 0)
        a->rc = seclink_sendv(l, iov, 2);
    seclink_free(l);
    return NULL;
}

/* On a socket the records of one send leave together, not one send() per
 * 16 KiB record: over SOCK_SEQPACKET every send() is one message, and a
 * 1 MiB frame arrives in a handful of them, intact. */
static void test_seclink_socket_batches_records(void **state)
{
    struct side_arg c = {.side = SECLINK_CLIENT};
    uint8_t k[AUTH_KEY_SIZE];
    static uint8_t msg[256 << 10], got[(1 << 20) + 24];
    size_t have = 0, data_msgs = 0;
    struct seclink *s;
    bool up = false;
    pthread_t t;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    memset(k, 3, sizeof(k));
    assert_int_equal(seclink_new(SECLINK_SERVER, "nbd.hv3", k, -1, &s), 0);
    c.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, batch_sender, &c), 0);
    while (have < sizeof(got)) {
        ssize_t n = recv(sv[1], msg, sizeof(msg), 0);
        assert_true(n > 0);
        seclink_input(s, msg, (size_t)n);
        if (!up) {
            int rc = seclink_handshake(s);
            size_t out = seclink_output_len(s);
            if (out) {
                uint8_t *flight = malloc(out);
                assert_non_null(flight);
                seclink_output_take(s, flight);
                assert_int_equal(send(sv[1], flight, out, 0), (ssize_t)out);
                free(flight);
            }
            assert_true(rc == 0 || rc == -EAGAIN);
            up = rc == 0;
            continue;
        }
        data_msgs++;
        ssize_t k2;
        while ((k2 = seclink_recv(s, got + have, sizeof(got) - have)) > 0)
            have += (size_t)k2;
        assert_int_equal(k2, have < sizeof(got) ? -EAGAIN : k2);
    }
    pthread_join(t, NULL);
    assert_int_equal(c.rc, 0);
    /* 1 MiB is 65 records; collected, 8 or 9 sends of 128 KiB. */
    assert_true(data_msgs <= 9);
    for (size_t i = 0; i < 24; i++)
        assert_int_equal(got[i], 0xee);
    for (size_t i = 0; i < (1 << 20); i++)
        if (got[24 + i] != (uint8_t)(i * 7))
            fail_msg("byte %zu differs", i);
    seclink_free(s);
    close(sv[0]);
    close(sv[1]);
}

int test_seclink(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seclink_memory_round_trip),
        cmocka_unit_test(test_seclink_handshake_picks_aes_gcm),
        cmocka_unit_test(test_seclink_wrong_key_refused),
        cmocka_unit_test(test_seclink_wrong_name_refused),
        cmocka_unit_test(test_seclink_tampered_record_refused),
        cmocka_unit_test(test_seclink_socket),
        cmocka_unit_test(test_seclink_socket_batches_records),
        cmocka_unit_test(test_seclink_socket_read_ahead_delivered),
    };
    return cmocka_run_group_tests_name("common/seclink", tests, NULL, NULL);
}
