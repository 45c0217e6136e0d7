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
 */
#include "seclink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#define PRIORITY                                                               \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:-CIPHER-ALL:"           \
    "+AES-128-GCM:+CHACHA20-POLY1305:%NO_TICKETS"

struct seclink {
    gnutls_session_t s;
    gnutls_psk_client_credentials_t ccred;
    gnutls_psk_server_credentials_t scred;
    uint8_t key[AUTH_KEY_SIZE];
    char name[PROTO_AUTH_NAME_MAX + 1];
    bool memory;
    const uint8_t *in; /* borrowed input, memory transport */
    size_t in_len;
    uint8_t *out; /* output buffer, memory transport */
    size_t out_len, out_cap;
    char desc[96];
};

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
        gnutls_transport_set_int(l->s, fd);
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

int seclink_send(struct seclink *l, const void *buf, size_t n)
{
    const uint8_t *p = buf;

    while (n > 0) {
        ssize_t k = gnutls_record_send(l->s, p, n);
        if (k == GNUTLS_E_INTERRUPTED)
            continue;
        if (k < 0)
            return k == GNUTLS_E_PUSH_ERROR ? -EPIPE : tls_err(l, k);
        p += k;
        n -= (size_t)k;
    }
    return 0;
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
