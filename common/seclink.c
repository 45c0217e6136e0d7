/* seclink.c: TLS 1.3 with a pre-shared key over a socket or over memory
 * (see seclink.h).
 *
 * The priority string allows TLS 1.3 only, with the ECDHE-PSK key
 * exchange (psk_dhe_ke); no tickets, no resumption.  The cipher is
 * AES-128-GCM, else ChaCha20-Poly1305: a TLS 1.3 suite must hash with the
 * PSK's hash, and GnuTLS binds a raw PSK to SHA-256, so AES-256-GCM (a
 * SHA-384 suite) can never be chosen.  Left to GnuTLS's default order
 * the choice fell to ChaCha20-Poly1305, several times slower than AES-GCM
 * on a CPU with AES instructions (docs/security.md, "Secure links").  A wrong key shows up as a failed Finished check or a
 * record that does not decrypt, both reported as -EKEYREJECTED during
 * the handshake.
 *
 * Memory transport: pull reads from the borrowed input and reports
 * EAGAIN when it is used up; push appends to the output buffer, which
 * grows as needed, so a send never waits.  GnuTLS keeps a partly read
 * record itself between calls.
 *
 * Socket transport: GnuTLS writes a record (at most 16 KiB) per push and
 * reads a record's 5-byte header and then its body per pull, so a 1 MiB
 * frame would cost some 65 send() and 130 recv() calls where a plain
 * link makes one or two.  So the records of one seclink_send() collect
 * in the output buffer, as on the memory transport, and go out in one
 * send() per SOCK_FLUSH bytes; pulls are served from a read-ahead buffer
 * that one recv() fills with whatever has arrived.  Only the thread in
 * seclink_send() collects (the sending thread is marked): anything GnuTLS
 * writes on another thread, the receiver's (an alert), goes out at once.
 */
#include "seclink.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>

#define PRIORITY                                                               \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:-CIPHER-ALL:"           \
    "+AES-128-GCM:+CHACHA20-POLY1305:%NO_TICKETS"

/* Socket transport: collected output goes out once it reaches this, so
 * the buffer stays small whatever the frame; the read-ahead's size. */
#define SOCK_FLUSH (128u << 10)
#define SOCK_READ_AHEAD (64u << 10)

struct seclink {
    gnutls_session_t s;
    gnutls_psk_client_credentials_t ccred;
    gnutls_psk_server_credentials_t scred;
    uint8_t key[AUTH_KEY_SIZE];
    char name[PROTO_AUTH_NAME_MAX + 1];
    bool memory;
    int fd;            /* socket transport, else -1 */
    const uint8_t *in; /* borrowed input, memory transport */
    size_t in_len;
    uint8_t *out; /* output buffer (socket: while sending) */
    size_t out_len, out_cap;
    uint8_t *ahead; /* socket read-ahead: unread bytes [ahead_off, ahead_len) */
    size_t ahead_off, ahead_len;
    char desc[96];
};

/* The link whose seclink_send() runs on this thread: its pushes collect. */
static __thread struct seclink *sending;

static ssize_t mem_pull(gnutls_transport_ptr_t ptr, void *data, size_t size)
{
    struct seclink *l = ptr;
    size_t n = size < l->in_len ? size : l->in_len;

    if (n == 0) {
        gnutls_transport_set_errno(l->s, EAGAIN);
        return -1;
    }
    memcpy(data, l->in, n);
    l->in += n;
    l->in_len -= n;
    return (ssize_t)n;
}

static int mem_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    struct seclink *l = ptr;

    (void)ms; /* never waits: the loop brings more input */
    return l->in_len > 0 ? 1 : 0;
}

static ssize_t mem_push(gnutls_transport_ptr_t ptr, const void *data,
                        size_t size)
{
    struct seclink *l = ptr;

    if (l->out_len + size > l->out_cap) {
        size_t cap = l->out_cap ? l->out_cap : 16384;
        while (cap < l->out_len + size)
            cap *= 2;
        uint8_t *p = realloc(l->out, cap);
        if (!p) {
            gnutls_transport_set_errno(l->s, ENOMEM);
            return -1;
        }
        l->out = p;
        l->out_cap = cap;
    }
    memcpy(l->out + l->out_len, data, size);
    l->out_len += size;
    return (ssize_t)size;
}

/* Socket transport: collect while this thread sends on @l, else write. */
static ssize_t sock_push(gnutls_transport_ptr_t ptr, const void *data,
                         size_t size)
{
    struct seclink *l = ptr;
    ssize_t k;

    if (sending == l)
        return mem_push(ptr, data, size);
    do {
        k = send(l->fd, data, size, MSG_NOSIGNAL);
    } while (k < 0 && errno == EINTR);
    if (k < 0)
        gnutls_transport_set_errno(l->s, errno);
    return k;
}

/* Socket transport: from the read-ahead, refilled by one recv() of what
 * has arrived.  A large read goes straight to GnuTLS's buffer. */
static ssize_t sock_pull(gnutls_transport_ptr_t ptr, void *data, size_t size)
{
    struct seclink *l = ptr;
    ssize_t k;

    if (l->ahead_off == l->ahead_len) {
        bool direct = size >= SOCK_READ_AHEAD;
        do {
            k = recv(l->fd, direct ? data : (void *)l->ahead,
                     direct ? size : SOCK_READ_AHEAD, 0);
        } while (k < 0 && errno == EINTR);
        if (k < 0)
            gnutls_transport_set_errno(l->s, errno);
        if (k <= 0 || direct)
            return k;
        l->ahead_off = 0;
        l->ahead_len = (size_t)k;
    }
    size_t n = l->ahead_len - l->ahead_off;
    if (n > size)
        n = size;
    memcpy(data, l->ahead + l->ahead_off, n);
    l->ahead_off += n;
    return (ssize_t)n;
}

/* Socket transport: ready when the read-ahead holds bytes or the socket
 * does. */
static int sock_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
    struct seclink *l = ptr;
    struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
    int rc;

    if (l->ahead_off < l->ahead_len)
        return 1;
    do {
        rc = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0)
        gnutls_transport_set_errno(l->s, errno);
    return rc;
}

/* Send what sock_push() collected: 0, -EPIPE, -ETIMEDOUT (SO_SNDTIMEO). */
static int sock_flush(struct seclink *l)
{
    size_t at = 0;

    while (at < l->out_len) {
        ssize_t k = send(l->fd, l->out + at, l->out_len - at, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int err = errno;
            l->out_len = 0;
            return err == EAGAIN || err == EWOULDBLOCK ? -ETIMEDOUT : -EPIPE;
        }
        at += (size_t)k;
    }
    l->out_len = 0;
    return 0;
}

/* The server's key for PSK identity @user: ours, if the name is the one
 * the handshake proved. */
static int server_key(gnutls_session_t s, const char *user,
                      gnutls_datum_t *key)
{
    struct seclink *l = gnutls_session_get_ptr(s);

    if (strcmp(user, l->name) != 0)
        return -1;
    key->data = gnutls_malloc(AUTH_KEY_SIZE);
    if (!key->data)
        return -1;
    memcpy(key->data, l->key, AUTH_KEY_SIZE);
    key->size = AUTH_KEY_SIZE;
    return 0;
}

static int creds_set(struct seclink *l, enum seclink_side side)
{
    gnutls_datum_t k = {l->key, AUTH_KEY_SIZE};

    if (side == SECLINK_CLIENT) {
        if (gnutls_psk_allocate_client_credentials(&l->ccred) < 0 ||
            gnutls_psk_set_client_credentials(l->ccred, l->name, &k,
                                              GNUTLS_PSK_KEY_RAW) < 0)
            return -EIO;
        return gnutls_credentials_set(l->s, GNUTLS_CRD_PSK, l->ccred) < 0
                   ? -EIO
                   : 0;
    }
    if (gnutls_psk_allocate_server_credentials(&l->scred) < 0)
        return -EIO;
    gnutls_psk_set_server_credentials_function(l->scred, server_key);
    return gnutls_credentials_set(l->s, GNUTLS_CRD_PSK, l->scred) < 0 ? -EIO
                                                                       : 0;
}

int seclink_new(enum seclink_side side, const char *name,
                const uint8_t key[AUTH_KEY_SIZE], int fd, struct seclink **out)
{
    struct seclink *l = calloc(1, sizeof(*l));
    unsigned flags = side == SECLINK_CLIENT ? GNUTLS_CLIENT : GNUTLS_SERVER;
    int rc;

    if (!l)
        return -ENOMEM;
    memcpy(l->key, key, AUTH_KEY_SIZE);
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->memory = fd < 0;
    l->fd = fd;
    if (!l->memory && !(l->ahead = malloc(SOCK_READ_AHEAD))) {
        free(l);
        return -ENOMEM;
    }
    flags |= GNUTLS_NO_TICKETS;
    if (l->memory)
        flags |= GNUTLS_NONBLOCK;
    rc = gnutls_init(&l->s, flags) < 0 ? -ENOMEM : 0;
    if (!rc) {
        gnutls_session_set_ptr(l->s, l);
        rc = gnutls_priority_set_direct(l->s, PRIORITY, NULL) < 0 ? -EIO : 0;
    }
    if (!rc)
        rc = creds_set(l, side);
    if (rc < 0) {
        seclink_free(l);
        return rc;
    }
    if (l->memory) {
        gnutls_transport_set_ptr(l->s, l);
        gnutls_transport_set_pull_function(l->s, mem_pull);
        gnutls_transport_set_pull_timeout_function(l->s, mem_pull_timeout);
        gnutls_transport_set_push_function(l->s, mem_push);
        /* The owner's handshake timer bounds the handshake. */
        gnutls_handshake_set_timeout(l->s, 0);
    } else {
        gnutls_transport_set_ptr(l->s, l);
        gnutls_transport_set_pull_function(l->s, sock_pull);
        gnutls_transport_set_pull_timeout_function(l->s, sock_pull_timeout);
        gnutls_transport_set_push_function(l->s, sock_push);
    }
    *out = l;
    return 0;
}

void seclink_free(struct seclink *l)
{
    if (!l)
        return;
    if (l->s)
        gnutls_deinit(l->s);
    if (l->ccred)
        gnutls_psk_free_client_credentials(l->ccred);
    if (l->scred)
        gnutls_psk_free_server_credentials(l->scred);
    gnutls_memset(l->key, 0, sizeof(l->key));
    free(l->out);
    free(l->ahead);
    free(l);
}

/* A GnuTLS error as an errno, for @l's transport. */
static int tls_err(const struct seclink *l, ssize_t rc)
{
    switch (rc) {
    case GNUTLS_E_AGAIN:
        return l->memory ? -EAGAIN : -ETIMEDOUT;
    case GNUTLS_E_PREMATURE_TERMINATION:
    case GNUTLS_E_PULL_ERROR:
    case GNUTLS_E_PUSH_ERROR:
        return -ECONNRESET;
    case GNUTLS_E_DECRYPTION_FAILED:
    case GNUTLS_E_MAC_VERIFY_FAILED:
        return -EBADMSG;
    default:
        return -EPROTO;
    }
}

int seclink_handshake(struct seclink *l)
{
    int rc;

    for (;;) {
        size_t before = l->in_len;
        rc = gnutls_handshake(l->s);
        if (rc == GNUTLS_E_INTERRUPTED ||
            rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
            continue;
        /* GnuTLS may stop wanting more with input still unread (a record
         * it gave up on part-way): go on while it makes progress, since
         * the caller's buffer is reused for the next read; input it no
         * longer takes is a broken stream. */
        if (rc == GNUTLS_E_AGAIN && l->memory && l->in_len > 0) {
            if (l->in_len < before)
                continue;
            return -EPROTO;
        }
        break;
    }
    if (rc == 0)
        return 0;
    /* A fatal alert in this handshake is the other side failing to check
     * our binder or Finished: it holds another key. */
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
        return -EKEYREJECTED;
    int err = tls_err(l, rc);
    if (err == -EAGAIN || err == -ETIMEDOUT || err == -ECONNRESET)
        return err;
    /* Tell the other side why, so it reports a refused key too. */
    gnutls_alert_send_appropriate(l->s, rc);
    return -EKEYREJECTED;
}

ssize_t seclink_recv(struct seclink *l, void *buf, size_t n)
{
    ssize_t k;

    do {
        k = gnutls_record_recv(l->s, buf, n);
    } while (k == GNUTLS_E_INTERRUPTED);
    if (k > 0)
        return k;
    if (k == 0)
        return -ECONNRESET; /* close_notify */
    return tls_err(l, k);
}

/* Seal @n bytes of @buf into records (collected on a socket). */
static int records_send(struct seclink *l, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = gnutls_record_send(l->s, p, n);
        if (k == GNUTLS_E_INTERRUPTED)
            continue;
        if (k < 0)
            return k == GNUTLS_E_PUSH_ERROR ? -EPIPE : tls_err(l, k);
        p += k;
        n -= (size_t)k;
        if (!l->memory && l->out_len >= SOCK_FLUSH) {
            int rc = sock_flush(l);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int seclink_sendv(struct seclink *l, const struct iovec *iov, int iovcnt)
{
    int rc = 0;

    if (!l->memory)
        sending = l;
    for (int i = 0; i < iovcnt && rc == 0; i++)
        rc = records_send(l, iov[i].iov_base, iov[i].iov_len);
    if (!l->memory) {
        sending = NULL;
        if (rc == 0)
            rc = sock_flush(l);
        l->out_len = 0; /* records not sent break the stream anyway */
    }
    return rc;
}

int seclink_send(struct seclink *l, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};

    return seclink_sendv(l, &iov, 1);
}

void seclink_input(struct seclink *l, const uint8_t *data, size_t n)
{
    l->in = data;
    l->in_len = n;
}

size_t seclink_input_left(const struct seclink *l)
{
    return l->in_len;
}

size_t seclink_output_len(const struct seclink *l)
{
    return l->out_len;
}

void seclink_output_take(struct seclink *l, uint8_t *dst)
{
    if (l->out_len)
        memcpy(dst, l->out, l->out_len);
    l->out_len = 0;
}

const char *seclink_describe(struct seclink *l)
{
    snprintf(l->desc, sizeof(l->desc), "%s %s %s",
             gnutls_protocol_get_name(gnutls_protocol_get_version(l->s))
                 ?: "?",
             gnutls_kx_get_name(gnutls_kx_get(l->s)) ?: "?",
             gnutls_cipher_get_name(gnutls_cipher_get(l->s)) ?: "?");
    return l->desc;
}
