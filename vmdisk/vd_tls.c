/* vd_tls.c: GnuTLS credentials and sessions for tessera-nbd.
 *
 * Credentials come in the two forms qemu-nbd and nbdkit accept, so the
 * same files serve QEMU, qemu-img, nbdinfo and libvirt:
 *   - a PSK file (--tls-psk), one "identity:hexkey" line per client, the
 *     format psktool writes.  GnuTLS reads it at every handshake, so keys
 *     can be added or revoked without a restart; vd_tls_new() only checks
 *     that it is well formed and not open to others.
 *   - a certificate folder (--tls-certificates) holding server-cert.pem
 *     and server-key.pem, and ca-cert.pem (plus an optional ca-crl.pem)
 *     to verify client certificates with --tls-verify-peer.
 *
 * A session runs the handshake on the connection's blocking socket, then
 * carries records.  TLS 1.2 and later only (proto.md "TLS versions"); no
 * session tickets, so every connection authenticates in full and always
 * has its peer's name.  The name is the PSK identity, or the DN of the
 * client certificate when --tls-verify-peer made GnuTLS verify it against
 * the CA; an unverified certificate names nobody.
 *
 * Threads (GnuTLS manual, "Thread safety"): a session may be used by two
 * threads at once, one sending and one receiving, provided neither
 * renegotiates nor re-authenticates and the session is ended by one
 * thread alone.  vd_io.c keeps to that: the reader thread is the only
 * receiver, every sender holds the connection's send lock, the server
 * never asks for a rehandshake (a client's attempt ends the connection
 * with -EPROTO) and GNUTLS_AUTO_REAUTH is not set; vd_tls_session_close()
 * runs after the worker threads are joined.  One more thing follows from
 * GnuTLS's code rather than its manual: a TLS 1.3 KeyUpdate that asks for
 * ours is noted by the receiving thread in the session's send state,
 * which gnutls_record_cork() also keeps, so senders never cork.
 *
 * Cost on the hot path: a reply that fits one record (a 4 KiB read and
 * its header) is copied into one buffer and sent as one record, one
 * encryption and one write; larger replies go out piece by piece, each
 * in records of its own, without the copy.
 */
#include "vd_tls.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#define HANDSHAKE_TIMEOUT_MS 30000
#define ONE_RECORD 16384 /* the plaintext of one TLS record */
#define PSK_LINE_MAX 1024

/* TLS 1.0 and 1.1 are off (proto.md: SHOULD NOT be used by default);
 * NORMAL does not enable the PSK key exchanges by itself.  With a PSK the
 * server picks, AES-128-GCM first: a TLS 1.3 suite must hash with the
 * PSK's hash (SHA-256 here), which rules out AES-256-GCM, and the clients'
 * own order (GnuTLS's NORMAL, as qemu and libnbd use it) then lands on
 * ChaCha20-Poly1305, many times slower on a CPU with AES instructions.
 * The ciphers are NORMAL's, reordered. */
#define PRIO_X509 "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL"
#define PRIO_PSK                                                               \
    PRIO_X509 ":+ECDHE-PSK:+DHE-PSK:+PSK:%SERVER_PRECEDENCE:-CIPHER-ALL:"     \
              "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:"    \
              "+AES-256-CCM:+AES-128-CBC:+AES-256-CBC"

struct vd_tls {
    gnutls_psk_server_credentials_t psk;   /* or NULL */
    gnutls_certificate_credentials_t x509; /* or NULL */
    gnutls_priority_t prio;
    bool verify_peer;
};

struct vd_tls_session {
    gnutls_session_t s;
    char *user; /* owned, or NULL */
    enum vd_tls_auth auth;
    bool up; /* the handshake succeeded: close_notify may be sent */
};

const char *vd_tls_mode_name(enum vd_tls_mode m)
{
    return m == VD_TLS_REQUIRE ? "require" : m == VD_TLS_ON ? "on" : "off";
}

const char *vd_tls_auth_name(enum vd_tls_auth a)
{
    return a == VD_TLS_AUTH_PSK    ? "psk"
           : a == VD_TLS_AUTH_X509 ? "x509"
                                   : "none";
}

/* ---- Credentials --------------------------------------------------------- */

/* A secret file must be a regular file nobody else can read or change. */
static int secret_check(const char *path, char *why, size_t whylen)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        int rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s: not a regular file", path);
        return -EINVAL;
    }
    if (st.st_mode & (S_IRWXO | S_IWGRP)) {
        snprintf(why, whylen,
                 "%s: open to other users (mode %04o): chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
        return -EACCES;
    }
    return 0;
}

/* One "identity:hexkey" line (without its newline): a non-empty identity
 * and an even, non-empty number of hex digits. */
static bool psk_line_ok(const char *l)
{
    const char *colon = strchr(l, ':');
    size_t n = 0;

    if (!colon || colon == l)
        return false;
    for (const char *p = colon + 1; *p; p++, n++)
        if (!strchr("0123456789abcdefABCDEF", *p))
            return false;
    return n > 0 && n % 2 == 0;
}

/* Check @path holds at least one well-formed line and no bad one. */
static int psk_file_check(const char *path, char *why, size_t whylen)
{
    char line[PSK_LINE_MAX];
    unsigned lineno = 0, keys = 0;
    int rc = secret_check(path, why, whylen);
    FILE *f;

    if (rc < 0)
        return rc;
    f = fopen(path, "re");
    if (!f) {
        rc = -errno;
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return rc;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0])
            continue;
        if (!psk_line_ok(line)) {
            snprintf(why, whylen,
                     "%s line %u: expected identity:hexkey (as psktool "
                     "writes)",
                     path, lineno);
            fclose(f);
            return -EINVAL;
        }
        keys++;
    }
    fclose(f);
    if (keys == 0) {
        snprintf(why, whylen, "%s: no identity:hexkey line", path);
        return -EINVAL;
    }
    return 0;
}

static int psk_load(struct vd_tls *t, const char *path, char *why,
                    size_t whylen)
{
    int rc = psk_file_check(path, why, whylen);

    if (rc < 0)
        return rc;
    if (gnutls_psk_allocate_server_credentials(&t->psk) < 0)
        return -ENOMEM;
    if (gnutls_psk_set_server_credentials_file(t->psk, path) < 0 ||
        gnutls_psk_set_server_known_dh_params(t->psk, GNUTLS_SEC_PARAM_MEDIUM) <
            0) {
        snprintf(why, whylen, "%s: GnuTLS refused it", path);
        return -EINVAL;
    }
    return 0;
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Load @dir/ca-cert.pem (required with --tls-verify-peer), ca-crl.pem
 * (optional), server-cert.pem and server-key.pem. */
static int x509_load(struct vd_tls *t, const char *dir, char *why,
                     size_t whylen)
{
    char ca[4096], crl[4096], cert[4096], key[4096];
    int rc;

    snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
    snprintf(crl, sizeof(crl), "%s/ca-crl.pem", dir);
    snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
    snprintf(key, sizeof(key), "%s/server-key.pem", dir);
    rc = secret_check(key, why, whylen);
    if (rc < 0)
        return rc;
    if (!file_exists(cert)) {
        snprintf(why, whylen, "%s: no such file", cert);
        return -ENOENT;
    }
    if (t->verify_peer && !file_exists(ca)) {
        snprintf(why, whylen, "%s: no such file (needed by --tls-verify-peer)",
                 ca);
        return -ENOENT;
    }
    if (gnutls_certificate_allocate_credentials(&t->x509) < 0)
        return -ENOMEM;
    rc = gnutls_certificate_set_x509_key_file(t->x509, cert, key,
                                              GNUTLS_X509_FMT_PEM);
    if (rc < 0) {
        snprintf(why, whylen, "%s, %s: %s", cert, key, gnutls_strerror(rc));
        return -EINVAL;
    }
    if (file_exists(ca)) {
        rc = gnutls_certificate_set_x509_trust_file(t->x509, ca,
                                                    GNUTLS_X509_FMT_PEM);
        if (rc <= 0) {
            snprintf(why, whylen, "%s: %s", ca,
                     rc < 0 ? gnutls_strerror(rc) : "no certificate");
            return -EINVAL;
        }
    }
    if (file_exists(crl)) {
        rc = gnutls_certificate_set_x509_crl_file(t->x509, crl,
                                                  GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            snprintf(why, whylen, "%s: %s", crl, gnutls_strerror(rc));
            return -EINVAL;
        }
    }
    gnutls_certificate_set_known_dh_params(t->x509, GNUTLS_SEC_PARAM_MEDIUM);
    return 0;
}

int vd_tls_new(const struct vd_tls_opts *o, struct vd_tls **out, char *why,
               size_t whylen)
{
    struct vd_tls *t;
    int rc;

    why[0] = '\0';
    if (!o->psk_file == !o->cert_dir) {
        snprintf(why, whylen,
                 "give exactly one of --tls-psk and "
                 "--tls-certificates");
        return -EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->verify_peer = o->verify_peer;
    rc = o->psk_file ? psk_load(t, o->psk_file, why, whylen)
                     : x509_load(t, o->cert_dir, why, whylen);
    if (rc == 0 &&
        gnutls_priority_init(&t->prio, o->psk_file ? PRIO_PSK : PRIO_X509,
                             NULL) < 0) {
        snprintf(why, whylen, "GnuTLS priority string refused");
        rc = -EINVAL;
    }
    if (rc < 0) {
        if (!why[0])
            snprintf(why, whylen, "%s", strerror(-rc));
        vd_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void vd_tls_free(struct vd_tls *t)
{
    if (!t)
        return;
    if (t->psk)
        gnutls_psk_free_server_credentials(t->psk);
    if (t->x509)
        gnutls_certificate_free_credentials(t->x509);
    if (t->prio)
        gnutls_priority_deinit(t->prio);
    free(t);
}

/* ---- Sessions --------------------------------------------------------------
 */

/* The DN of the verified client certificate.  Caller owns *out. */
static int peer_dn(gnutls_session_t s, char **out)
{
    const gnutls_datum_t *certs;
    unsigned n = 0;
    gnutls_x509_crt_t crt;
    gnutls_datum_t dn = {NULL, 0};
    int rc = -EPROTO;

    certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return -EPROTO;
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
        *out = strndup((const char *)dn.data, dn.size);
        rc = *out ? 0 : -ENOMEM;
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* The length of the attribute at @s: up to the first comma not escaped
 * with a backslash. */
static size_t dn_attr_len(const char *s)
{
    size_t n = 0;
    while (s[n] && !(s[n] == ',' && (n == 0 || s[n - 1] != '\\')))
        n++;
    return n;
}

int vd_tls_dn_cn(const char *dn, char *out, size_t size)
{
    /* RFC 4514 form, most specific first ("CN=hv3,O=Example"). */
    for (const char *p = dn; *p;) {
        size_t n = dn_attr_len(p);
        if (n > 3 && !strncmp(p, "CN=", 3)) {
            if (n - 3 >= size)
                return -ENAMETOOLONG;
            memcpy(out, p + 3, n - 3);
            out[n - 3] = '\0';
            return 0;
        }
        p += p[n] ? n + 1 : n;
    }
    return -ENOENT;
}

/* Record who the peer is, once the handshake succeeded. */
static int session_name(struct vd_tls_session *ts, bool verify_peer)
{
    if (gnutls_auth_get_type(ts->s) == GNUTLS_CRD_PSK) {
        const char *id = gnutls_psk_server_get_username(ts->s);
        if (!id || !id[0])
            return -EPROTO;
        ts->user = strdup(id);
        ts->auth = VD_TLS_AUTH_PSK;
        return ts->user ? 0 : -ENOMEM;
    }
    if (!verify_peer)
        return 0; /* an unverified certificate names nobody */
    /* GnuTLS verified the chain during the handshake
     * (gnutls_session_set_verify_cert), or the handshake failed. */
    int rc = peer_dn(ts->s, &ts->user);
    if (rc == 0)
        ts->auth = VD_TLS_AUTH_X509;
    return rc;
}

static int session_setup(const struct vd_tls *t, struct vd_tls_session *ts,
                         int fd)
{
    if (gnutls_init(&ts->s,
                    GNUTLS_SERVER | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS) < 0)
        return -ENOMEM;
    if (gnutls_priority_set(ts->s, t->prio) < 0)
        return -ENOMEM;
    if (t->psk) {
        if (gnutls_credentials_set(ts->s, GNUTLS_CRD_PSK, t->psk) < 0)
            return -ENOMEM;
    } else {
        if (gnutls_credentials_set(ts->s, GNUTLS_CRD_CERTIFICATE, t->x509) < 0)
            return -ENOMEM;
        gnutls_certificate_server_set_request(
            ts->s, t->verify_peer ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_IGNORE);
        if (t->verify_peer)
            gnutls_session_set_verify_cert(ts->s, NULL, 0);
    }
    gnutls_transport_set_int(ts->s, fd);
    gnutls_handshake_set_timeout(ts->s, HANDSHAKE_TIMEOUT_MS);
    return 0;
}

int vd_tls_session_start(const struct vd_tls *t, int fd,
                         struct vd_tls_session **out, char *why, size_t whylen)
{
    struct vd_tls_session *ts = calloc(1, sizeof(*ts));
    int rc;

    if (!ts)
        return -ENOMEM;
    rc = session_setup(t, ts, fd);
    if (rc < 0) {
        snprintf(why, whylen, "cannot set up a TLS session");
        vd_tls_session_close(ts, false);
        return rc;
    }
    do
        rc = gnutls_handshake(ts->s);
    while (rc == GNUTLS_E_INTERRUPTED);
    if (rc < 0) {
        snprintf(why, whylen, "%s", gnutls_strerror(rc));
        vd_tls_session_close(ts, false);
        return -EPROTO;
    }
    ts->up = true;
    rc = session_name(ts, t->verify_peer);
    if (rc < 0) {
        snprintf(why, whylen, "no usable peer name");
        vd_tls_session_close(ts, true);
        return rc;
    }
    *out = ts;
    return 0;
}

const char *vd_tls_session_user(const struct vd_tls_session *s)
{
    return s->user;
}

enum vd_tls_auth vd_tls_session_auth(const struct vd_tls_session *s)
{
    return s->auth;
}

void vd_tls_session_desc(const struct vd_tls_session *s, char *buf, size_t size)
{
    const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s->s));
    const char *kx = gnutls_kx_get_name(gnutls_kx_get(s->s));
    const char *ci = gnutls_cipher_get_name(gnutls_cipher_get(s->s));

    snprintf(buf, size, "%s %s %s", v ? v : "?", kx ? kx : "-", ci ? ci : "?");
}

/* A GnuTLS record error as -errno: the socket went away, or the peer
 * broke TLS. */
static int record_err(ssize_t n)
{
    switch (n) {
    case 0: /* close_notify */
    case GNUTLS_E_PREMATURE_TERMINATION:
    case GNUTLS_E_PULL_ERROR:
    case GNUTLS_E_PUSH_ERROR:
        return -ECONNRESET;
    default:
        return -EPROTO;
    }
}

int vd_tls_session_recv(struct vd_tls_session *s, void *buf, size_t n)
{
    uint8_t *p = buf;

    while (n > 0) {
        ssize_t k = gnutls_record_recv(s->s, p, n);
        if (k == GNUTLS_E_INTERRUPTED || k == GNUTLS_E_AGAIN)
            continue;
        if (k <= 0)
            return record_err(k);
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int send_all(gnutls_session_t s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = gnutls_record_send(s, p, n);
        if (k == GNUTLS_E_INTERRUPTED || k == GNUTLS_E_AGAIN)
            continue;
        if (k < 0)
            return k == GNUTLS_E_PUSH_ERROR ? -EPIPE : -EPROTO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int vd_tls_session_sendv(struct vd_tls_session *s, const struct iovec *iov,
                         int iovcnt)
{
    uint8_t one[ONE_RECORD];
    size_t total = 0;
    int rc = 0;

    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (iovcnt > 1 && total <= sizeof(one)) {
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(one + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        return send_all(s->s, one, total);
    }
    for (int i = 0; rc == 0 && i < iovcnt; i++)
        rc = send_all(s->s, iov[i].iov_base, iov[i].iov_len);
    return rc;
}

void vd_tls_session_close(struct vd_tls_session *s, bool notify)
{
    if (!s)
        return;
    if (s->s && s->up && notify)
        gnutls_bye(s->s, GNUTLS_SHUT_WR); /* best effort: may have gone */
    if (s->s)
        gnutls_deinit(s->s);
    free(s->user);
    free(s);
}
