/* auth.c: identities, key files, proofs, sealing and tickets (see auth.h).
 *
 * The handshake's proofs (docs/protocol.md §3.2) are HMAC-SHA-256 over a
 * transcript that names the direction, the method, the role, the identity
 * and both nonces, so a proof made for one connection, one direction or
 * one identity is worth nothing anywhere else.  Sealed blobs are
 * AES-256-GCM with a random 96-bit nonce and the purpose label as
 * associated data.  A ticket is u32 service key id followed by a sealed
 * body (u64 expiry, the session key, the name and the capabilities); the
 * id is associated data too, so it cannot be swapped.
 *
 * Key files are text: a comment line, "name NAME", "secret HEX" (64 hex
 * digits).  They are created 0600 with O_EXCL and refused on load when
 * group or others may read or write them, as ssh refuses a private key.
 */
#include "auth.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#define KEY_FILE_MAX 4096
#define SEAL_NONCE 12u
#define SEAL_TAG 16u
#define TICKET_LABEL "tessera ticket v1"

/* ---- Keys -----------------------------------------------------------------
 */

int auth_name_check(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > PROTO_AUTH_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (name[i] <= ' ' || name[i] > '~')
            return -EINVAL;
    return 0;
}

int auth_random(void *out, size_t n)
{
    return gnutls_rnd(GNUTLS_RND_NONCE, out, n) < 0 ? -EIO : 0;
}

int auth_random_key(uint8_t out[AUTH_KEY_SIZE])
{
    return gnutls_rnd(GNUTLS_RND_KEY, out, AUTH_KEY_SIZE) < 0 ? -EIO : 0;
}

int auth_key_generate(const char *name, struct auth_key *out)
{
    memset(out, 0, sizeof(*out));
    if (auth_name_check(name) < 0)
        return -EINVAL;
    snprintf(out->name, sizeof(out->name), "%s", name);
    return auth_random_key(out->secret);
}

int auth_key_format(const struct auth_key *k, char *buf, size_t size)
{
    char hex[2 * AUTH_KEY_SIZE + 1];

    for (size_t i = 0; i < AUTH_KEY_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", k->secret[i]);
    int n = snprintf(buf, size,
                     "# Tessera key: whoever reads this file is %s\n"
                     "name %s\nsecret %s\n",
                     k->name, k->name, hex);
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

static int parse_secret(const char *v, size_t n, uint8_t *out)
{
    if (n != 2 * AUTH_KEY_SIZE)
        return -EINVAL;
    for (size_t i = 0; i < AUTH_KEY_SIZE; i++) {
        char pair[3] = {v[2 * i], v[2 * i + 1], '\0'};
        char *end;
        if (!isxdigit((unsigned char)pair[0]) ||
            !isxdigit((unsigned char)pair[1]))
            return -EINVAL;
        out[i] = (uint8_t)strtoul(pair, &end, 16);
    }
    return 0;
}

int auth_key_parse(const char *text, size_t len, struct auth_key *out)
{
    bool have_name = false, have_secret = false;
    size_t at = 0;

    memset(out, 0, sizeof(*out));
    while (at < len) {
        const char *line = text + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0 || line[0] == '#')
            continue;
        if (n > 5 && memcmp(line, "name ", 5) == 0 && !have_name) {
            if (n - 5 > PROTO_AUTH_NAME_MAX)
                return -EINVAL;
            memcpy(out->name, line + 5, n - 5);
            out->name[n - 5] = '\0';
            if (auth_name_check(out->name) < 0)
                return -EINVAL;
            have_name = true;
        } else if (n > 7 && memcmp(line, "secret ", 7) == 0 && !have_secret) {
            if (parse_secret(line + 7, n - 7, out->secret) < 0)
                return -EINVAL;
            have_secret = true;
        } else {
            return -EINVAL;
        }
    }
    return have_name && have_secret ? 0 : -EINVAL;
}

int auth_key_load(const char *path, struct auth_key *out)
{
    char buf[KEY_FILE_MAX];
    struct stat st;
    ssize_t n;
    int fd, rc;

    memset(out, 0, sizeof(*out));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return -EPERM;
    }
    n = read(fd, buf, sizeof(buf));
    rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc < 0)
        return rc;
    if ((size_t)n == sizeof(buf))
        return -EINVAL;
    rc = auth_key_parse(buf, (size_t)n, out);
    gnutls_memset(buf, 0, sizeof(buf));
    return rc;
}

int auth_key_save(const char *path, const struct auth_key *k)
{
    char buf[KEY_FILE_MAX];
    int n = auth_key_format(k, buf, sizeof(buf));
    int fd, rc = 0;

    if (n < 0)
        return n;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    /* The umask cannot widen 0600, but a narrower one is fixed here. */
    if (fchmod(fd, 0600) < 0 || write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    gnutls_memset(buf, 0, sizeof(buf));
    if (rc < 0)
        unlink(path);
    return rc;
}

const char *auth_key_why(int rc)
{
    if (rc == -EPERM)
        return "readable or writable by group or others; chmod 600 it";
    if (rc == -EINVAL)
        return "not a Tessera key file (name and secret lines)";
    return strerror(-rc);
}

const char *auth_key_path(const char *opt)
{
    const char *env;

    if (opt && *opt)
        return opt;
    env = getenv("TESSERA_KEY");
    return env && *env ? env : NULL;
}

bool auth_secure_wanted(bool opt)
{
    const char *env = getenv("TESSERA_SECURE");

    if (opt)
        return true;
    return env && (!strcmp(env, "1") || !strcasecmp(env, "yes") ||
                   !strcasecmp(env, "true") || !strcasecmp(env, "on"));
}

uint64_t auth_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- Proofs ------------------------------------------------------------- */

enum side { INITIATOR, RESPONDER, LINK };

/* HMAC-SHA-256 under @key of: the label of @side, NUL, u8 method, u8 role,
 * str name, the responder's nonce, the initiator's nonce. */
static int proof(const uint8_t key[AUTH_KEY_SIZE], enum side side, uint8_t role,
                 const struct proto_auth_req *req,
                 const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                 uint8_t out[PROTO_AUTH_PROOF_SIZE])
{
    static const char *const labels[] = {"tessera auth v1 initiator",
                                         "tessera auth v1 responder",
                                         "tessera auth v1 link"};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_put_raw(&w, labels[side], strlen(labels[side]) + 1);
    proto_put_u8(&w, req->method);
    proto_put_u8(&w, role);
    proto_put_str(&w, req->name.p, req->name.len);
    proto_put_raw(&w, server_nonce, PROTO_AUTH_NONCE_SIZE);
    proto_put_raw(&w, req->nonce, PROTO_AUTH_NONCE_SIZE);
    rc = w.err;
    if (!rc && gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, AUTH_KEY_SIZE, w.p,
                                w.len, out) < 0)
        rc = -EIO;
    proto_wbuf_free(&w);
    return rc;
}

bool auth_proof_equal(const uint8_t a[PROTO_AUTH_PROOF_SIZE],
                      const uint8_t b[PROTO_AUTH_PROOF_SIZE])
{
    return gnutls_memcmp(a, b, PROTO_AUTH_PROOF_SIZE) == 0;
}

int auth_answer(const struct auth_cred *cred, uint8_t role,
                const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                struct proto_auth_req *req,
                uint8_t expect[PROTO_AUTH_PROOF_SIZE])
{
    int rc;

    memset(req, 0, sizeof(*req));
    req->method = cred->method;
    req->name.p = cred->name;
    req->name.len = (uint32_t)strlen(cred->name);
    req->ticket.p = (const char *)cred->ticket;
    req->ticket.len = cred->method == PROTO_AUTH_TICKET ? cred->ticket_len : 0;
    rc = auth_random(req->nonce, sizeof(req->nonce));
    if (!rc)
        rc = proof(cred->key, INITIATOR, role, req, server_nonce, req->proof);
    if (!rc)
        rc = proof(cred->key, RESPONDER, role, req, server_nonce, expect);
    return rc;
}

int auth_verify(const uint8_t key[AUTH_KEY_SIZE], uint8_t role,
                const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                const struct proto_auth_req *req,
                uint8_t out[PROTO_AUTH_PROOF_SIZE])
{
    uint8_t want[PROTO_AUTH_PROOF_SIZE];
    int rc = proof(key, INITIATOR, role, req, server_nonce, want);

    if (rc < 0)
        return rc;
    if (!auth_proof_equal(want, req->proof))
        return -EKEYREJECTED;
    return proof(key, RESPONDER, role, req, server_nonce, out);
}

int auth_link_key(const uint8_t key[AUTH_KEY_SIZE], uint8_t role,
                  const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                  const struct proto_auth_req *req, uint8_t out[AUTH_KEY_SIZE])
{
    static_assert(PROTO_AUTH_PROOF_SIZE == AUTH_KEY_SIZE, "HMAC-SHA-256");
    return proof(key, LINK, role, req, server_nonce, out);
}

/* ---- Sealing ------------------------------------------------------------ */

static int aead_open_handle(const uint8_t key[AUTH_KEY_SIZE],
                            gnutls_aead_cipher_hd_t *h)
{
    gnutls_datum_t k = {(unsigned char *)key, AUTH_KEY_SIZE};
    return gnutls_aead_cipher_init(h, GNUTLS_CIPHER_AES_256_GCM, &k) < 0 ? -EIO
                                                                         : 0;
}

int auth_seal(const uint8_t key[AUTH_KEY_SIZE], const char *label,
              const void *plain, size_t n, uint8_t *out, size_t size)
{
    gnutls_aead_cipher_hd_t h;
    size_t ctlen;
    int rc;

    if (size < n + AUTH_SEAL_OVERHEAD)
        return -ENOSPC;
    if (auth_random(out, SEAL_NONCE) < 0 || aead_open_handle(key, &h) < 0)
        return -EIO;
    ctlen = size - SEAL_NONCE;
    rc = gnutls_aead_cipher_encrypt(h, out, SEAL_NONCE, label, strlen(label),
                                    SEAL_TAG, plain, n, out + SEAL_NONCE,
                                    &ctlen);
    gnutls_aead_cipher_deinit(h);
    if (rc < 0)
        return -EIO;
    return (int)(SEAL_NONCE + ctlen);
}

int auth_open(const uint8_t key[AUTH_KEY_SIZE], const char *label,
              const uint8_t *sealed, size_t n, uint8_t *out, size_t size)
{
    gnutls_aead_cipher_hd_t h;
    size_t ptlen = size;
    int rc;

    if (n < AUTH_SEAL_OVERHEAD)
        return -EBADMSG;
    if (size < n - AUTH_SEAL_OVERHEAD)
        return -ENOSPC;
    if (aead_open_handle(key, &h) < 0)
        return -EIO;
    rc = gnutls_aead_cipher_decrypt(h, sealed, SEAL_NONCE, label, strlen(label),
                                    SEAL_TAG, sealed + SEAL_NONCE,
                                    n - SEAL_NONCE, out, &ptlen);
    gnutls_aead_cipher_deinit(h);
    if (rc < 0)
        return -EBADMSG;
    return (int)ptlen;
}

/* ---- Tickets --------------------------------------------------------------
 */

/* The label binds the service key id too: "tessera ticket v1" NUL u32 id. */
static void ticket_label(uint32_t id, char *buf, size_t size)
{
    snprintf(buf, size, "%s %u", TICKET_LABEL, id);
}

int auth_ticket_seal(uint32_t id, const uint8_t service_key[AUTH_KEY_SIZE],
                     const struct auth_ticket *t, uint8_t *out, size_t size)
{
    char label[64];
    struct proto_wbuf w;
    int rc;

    if (size < 4 || strlen(t->caps) > PROTO_AUTH_CAPS_MAX ||
        auth_name_check(t->name) < 0)
        return -EINVAL;
    proto_wbuf_init(&w);
    proto_put_u64(&w, t->expires_ms);
    proto_put_raw(&w, t->session_key, AUTH_KEY_SIZE);
    proto_put_str(&w, t->name, strlen(t->name));
    proto_put_str(&w, t->caps, strlen(t->caps));
    rc = w.err;
    if (!rc) {
        out[0] = (uint8_t)(id >> 24);
        out[1] = (uint8_t)(id >> 16);
        out[2] = (uint8_t)(id >> 8);
        out[3] = (uint8_t)id;
        ticket_label(id, label, sizeof(label));
        rc = auth_seal(service_key, label, w.p, w.len, out + 4, size - 4);
        if (rc >= 0)
            rc += 4;
    }
    gnutls_memset(w.p, 0, w.len);
    proto_wbuf_free(&w);
    return rc;
}

int auth_ticket_key_id(const uint8_t *blob, size_t n, uint32_t *id)
{
    if (n < 4 + AUTH_SEAL_OVERHEAD)
        return -EBADMSG;
    *id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
          (uint32_t)blob[2] << 8 | blob[3];
    return 0;
}

static int copy_str(const struct proto_str *s, char *out, size_t size)
{
    if (s->len >= size)
        return -EBADMSG;
    if (s->len)
        memcpy(out, s->p, s->len);
    out[s->len] = '\0';
    return 0;
}

int auth_ticket_open(const uint8_t service_key[AUTH_KEY_SIZE],
                     const uint8_t *blob, size_t n, struct auth_ticket *out)
{
    uint8_t plain[PROTO_AUTH_TICKET_MAX];
    struct proto_str name, caps;
    struct proto_rbuf r;
    char label[64];
    uint32_t id;
    int len, rc;

    memset(out, 0, sizeof(*out));
    if (auth_ticket_key_id(blob, n, &id) < 0)
        return -EBADMSG;
    ticket_label(id, label, sizeof(label));
    len = auth_open(service_key, label, blob + 4, n - 4, plain, sizeof(plain));
    if (len < 0)
        return len == -ENOSPC ? -EBADMSG : len;
    proto_rbuf_init(&r, plain, (size_t)len);
    out->expires_ms = proto_get_u64(&r);
    const uint8_t *k = proto_get_raw(&r, AUTH_KEY_SIZE);
    if (k)
        memcpy(out->session_key, k, AUTH_KEY_SIZE);
    proto_str_get(&r, &name);
    proto_str_get(&r, &caps);
    rc = proto_rbuf_done(&r) < 0 ? -EBADMSG : 0;
    if (!rc)
        rc = copy_str(&name, out->name, sizeof(out->name));
    if (!rc)
        rc = copy_str(&caps, out->caps, sizeof(out->caps));
    gnutls_memset(plain, 0, sizeof(plain));
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}
