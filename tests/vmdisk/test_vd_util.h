/* test_vd_util.h: a raw NBD client for the vmdisk unit tests.
 *
 * A harness runs vd_conn_serve() on one end of a socketpair in a thread,
 * over a mem backend with two images ("disk", 16 MiB, and "other", 1 MiB);
 * the test speaks NBD byte by byte on the other end, in the clear or,
 * after c_starttls_psk(), through a GnuTLS client session.  Every client
 * read has a timeout so a server bug fails the test instead of hanging it.
 */
#ifndef TEST_VD_UTIL_H
#define TEST_VD_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <gnutls/gnutls.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vd_internal.h"

#define T_DISK_SIZE (16u << 20)
#define T_OTHER_SIZE (1u << 20)

struct harness {
    int cfd, sfd;
    pthread_t tid;
    struct vd_backend *be;
    struct vd_config cfg;
    int serve_rc;
    bool joined;
    gnutls_session_t tls;                /* client side, after STARTTLS */
    gnutls_psk_client_credentials_t psk; /* its credentials */
};

static inline void *harness_thread(void *arg)
{
    struct harness *h = arg;
    h->serve_rc = vd_conn_serve(h->sfd, &h->cfg, "test");
    return NULL;
}

/* A server connection, configured but not started: the test may change
 * h->cfg (TLS mode, credentials, export_check), then harness_run(). */
static inline struct harness *harness_new(bool readonly,
                                          const char *default_export)
{
    struct harness *h = calloc(1, sizeof(*h));
    int sv[2];
    struct timeval tv = {.tv_sec = 5};

    assert_non_null(h);
    assert_int_equal(vd_mem_new(&h->be), 0);
    assert_int_equal(vd_mem_add(h->be, "disk", T_DISK_SIZE), 0);
    assert_int_equal(vd_mem_add(h->be, "other", T_OTHER_SIZE), 0);
    h->cfg = (struct vd_config){.be = h->be,
                                .default_export = default_export,
                                .readonly = readonly,
                                .workers = 4};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    h->cfd = sv[0];
    h->sfd = sv[1];
    setsockopt(h->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return h;
}

static inline void harness_run(struct harness *h)
{
    assert_int_equal(pthread_create(&h->tid, NULL, harness_thread, h), 0);
}

/* Start a server connection.  @default_export may be NULL. */
static inline struct harness *harness_start(bool readonly,
                                            const char *default_export)
{
    struct harness *h = harness_new(readonly, default_export);
    harness_run(h);
    return h;
}

/* Wait for the server side to end by itself; its return value. */
static inline int harness_join(struct harness *h)
{
    pthread_join(h->tid, NULL);
    h->joined = true;
    return h->serve_rc;
}

static inline void harness_stop(struct harness *h)
{
    if (!h->joined) {
        shutdown(h->cfd, SHUT_RDWR);
        harness_join(h);
    }
    if (h->tls)
        gnutls_deinit(h->tls);
    if (h->psk)
        gnutls_psk_free_client_credentials(h->psk);
    close(h->cfd);
    close(h->sfd);
    vd_backend_free(h->be);
    free(h);
}

static inline void c_write(struct harness *h, const void *p, size_t n)
{
    if (!h->tls) {
        assert_int_equal(send(h->cfd, p, n, MSG_NOSIGNAL), (ssize_t)n);
        return;
    }
    for (size_t done = 0; done < n;) {
        ssize_t k =
            gnutls_record_send(h->tls, (const char *)p + done, n - done);
        assert_true(k > 0);
        done += (size_t)k;
    }
}

static inline void c_read(struct harness *h, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = h->tls
                        ? gnutls_record_recv(h->tls, (char *)p + got, n - got)
                        : recv(h->cfd, (char *)p + got, n - got, 0);
        assert_true(k > 0);
        got += (size_t)k;
    }
}

/* True when the server closed its side (EOF within the timeout; over TLS,
 * close_notify or the socket's end). */
static inline bool c_eof(struct harness *h)
{
    char b;
    if (h->tls) {
        ssize_t k = gnutls_record_recv(h->tls, &b, 1);
        return k == 0 || k == GNUTLS_E_PREMATURE_TERMINATION;
    }
    return recv(h->cfd, &b, 1, 0) == 0;
}

/* After the server's ACK to NBD_OPT_STARTTLS: the client side of the TLS
 * handshake with PSK identity @user and hex key @hexkey.  Returns
 * GnuTLS's result (0, or the error that ended the handshake). */
static inline int c_starttls_psk(struct harness *h, const char *user,
                                 const char *hexkey)
{
    gnutls_datum_t key = {(unsigned char *)hexkey, (unsigned)strlen(hexkey)};
    int rc;

    assert_int_equal(gnutls_psk_allocate_client_credentials(&h->psk), 0);
    assert_int_equal(gnutls_psk_set_client_credentials(h->psk, user, &key,
                                                       GNUTLS_PSK_KEY_HEX),
                     0);
    assert_int_equal(gnutls_init(&h->tls, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_priority_set_direct(
                         h->tls, "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", NULL),
                     0);
    assert_int_equal(gnutls_credentials_set(h->tls, GNUTLS_CRD_PSK, h->psk), 0);
    gnutls_transport_set_int(h->tls, h->cfd);
    do
        rc = gnutls_handshake(h->tls);
    while (rc == GNUTLS_E_INTERRUPTED);
    if (rc < 0) {
        gnutls_deinit(h->tls);
        h->tls = NULL;
    }
    return rc;
}

/* Read the greeting and send @cflags. */
static inline void c_greet(struct harness *h, uint32_t cflags)
{
    uint8_t g[18], f[4];
    c_read(h, g, sizeof(g));
    assert_true(vd_get64(g) == NBD_MAGIC);
    assert_true(vd_get64(g + 8) == NBD_IHAVEOPT);
    assert_int_equal(vd_get16(g + 16),
                     NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    vd_put32(f, cflags);
    c_write(h, f, 4);
}

static inline void c_opt(struct harness *h, uint32_t opt, const void *data,
                         uint32_t len)
{
    uint8_t hdr[16];
    vd_put64(hdr, NBD_IHAVEOPT);
    vd_put32(hdr + 8, opt);
    vd_put32(hdr + 12, len);
    c_write(h, hdr, 16);
    if (len)
        c_write(h, data, len);
}

struct opt_rep {
    uint32_t opt, type, len;
    uint8_t data[8192];
};

static inline void c_opt_reply(struct harness *h, struct opt_rep *r)
{
    uint8_t hdr[20];
    c_read(h, hdr, 20);
    assert_true(vd_get64(hdr) == NBD_REP_MAGIC);
    r->opt = vd_get32(hdr + 8);
    r->type = vd_get32(hdr + 12);
    r->len = vd_get32(hdr + 16);
    assert_true(r->len <= sizeof(r->data));
    c_read(h, r->data, r->len);
}

/* Build NBD_OPT_GO/INFO data for @name with @nreq info requests. */
static inline uint32_t go_data(uint8_t *buf, const char *name,
                               const uint16_t *reqs, uint16_t nreq)
{
    uint32_t n = (uint32_t)strlen(name);
    vd_put32(buf, n);
    memcpy(buf + 4, name, n);
    vd_put16(buf + 4 + n, nreq);
    for (uint16_t i = 0; i < nreq; i++)
        vd_put16(buf + 6 + n + 2 * i, reqs[i]);
    return 6 + n + 2u * nreq;
}

/* Build SET/LIST_META_CONTEXT data for @name and one query (or none when
 * @query is NULL). */
static inline uint32_t meta_data(uint8_t *buf, const char *name,
                                 const char *query)
{
    uint32_t n = (uint32_t)strlen(name), pos;
    vd_put32(buf, n);
    memcpy(buf + 4, name, n);
    vd_put32(buf + 4 + n, query ? 1 : 0);
    pos = 8 + n;
    if (query) {
        uint32_t q = (uint32_t)strlen(query);
        vd_put32(buf + pos, q);
        memcpy(buf + pos + 4, query, q);
        pos += 4 + q;
    }
    return pos;
}

/* Run NBD_OPT_GO for @name to completion, expecting success; fills the
 * export size and transmission flags. */
static inline void c_go(struct harness *h, const char *name, uint64_t *size,
                        uint16_t *tflags)
{
    uint8_t buf[256];
    struct opt_rep r;
    bool got_export = false;

    c_opt(h, NBD_OPT_GO, buf, go_data(buf, name, NULL, 0));
    for (;;) {
        c_opt_reply(h, &r);
        assert_int_equal(r.opt, NBD_OPT_GO);
        if (r.type == NBD_REP_ACK)
            break;
        assert_int_equal(r.type, NBD_REP_INFO);
        if (vd_get16(r.data) == NBD_INFO_EXPORT) {
            assert_int_equal(r.len, 12);
            *size = vd_get64(r.data + 2);
            *tflags = vd_get16(r.data + 10);
            got_export = true;
        }
    }
    assert_true(got_export);
}

/* Handshake to transmission on "disk", optionally with structured replies
 * and base:allocation. */
static inline void c_connect(struct harness *h, bool structured, bool meta)
{
    struct opt_rep r;
    uint8_t buf[256];
    uint64_t size;
    uint16_t tflags;

    c_greet(h, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    if (structured) {
        c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
        c_opt_reply(h, &r);
        assert_int_equal(r.type, NBD_REP_ACK);
    }
    if (meta) {
        c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
              meta_data(buf, "disk", NBD_META_BASE_ALLOCATION));
        c_opt_reply(h, &r);
        assert_int_equal(r.type, NBD_REP_META_CONTEXT);
        c_opt_reply(h, &r);
        assert_int_equal(r.type, NBD_REP_ACK);
    }
    c_go(h, "disk", &size, &tflags);
    assert_int_equal(size, T_DISK_SIZE);
}

static inline void c_req(struct harness *h, uint16_t flags, uint16_t type,
                         uint64_t cookie, uint64_t off, uint32_t len,
                         const void *data)
{
    uint8_t r[NBD_REQUEST_SIZE];
    vd_put32(r, NBD_REQUEST_MAGIC);
    vd_put16(r + 4, flags);
    vd_put16(r + 6, type);
    vd_put64(r + 8, cookie);
    vd_put64(r + 16, off);
    vd_put32(r + 24, len);
    c_write(h, r, sizeof(r));
    if (data)
        c_write(h, data, len);
}

/* A simple reply: returns the error, checks the cookie. */
static inline uint32_t c_simple(struct harness *h, uint64_t cookie)
{
    uint8_t r[NBD_SIMPLE_REPLY_SIZE];
    c_read(h, r, sizeof(r));
    assert_int_equal(vd_get32(r), NBD_SIMPLE_REPLY_MAGIC);
    assert_true(vd_get64(r + 8) == cookie);
    return vd_get32(r + 4);
}

struct chunk {
    uint16_t flags, type;
    uint64_t cookie;
    uint32_t len;
    uint8_t *data; /* malloc'd; free() */
};

static inline void c_chunk(struct harness *h, struct chunk *ch)
{
    uint8_t r[NBD_CHUNK_HDR_SIZE];
    c_read(h, r, sizeof(r));
    assert_int_equal(vd_get32(r), NBD_STRUCTURED_REPLY_MAGIC);
    ch->flags = vd_get16(r + 4);
    ch->type = vd_get16(r + 6);
    ch->cookie = vd_get64(r + 8);
    ch->len = vd_get32(r + 16);
    ch->data = malloc(ch->len ? ch->len : 1);
    assert_non_null(ch->data);
    c_read(h, ch->data, ch->len);
}

#endif
