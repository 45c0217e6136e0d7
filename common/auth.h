/* auth.h: identities, key files, the handshake's proofs, sealed blobs and
 * tickets (docs/security.md, docs/protocol.md §3.2).
 *
 * Every primitive comes from GnuTLS: HMAC-SHA-256 (gnutls_hmac_fast) for
 * proofs, AES-256-GCM (gnutls_aead_cipher_*) for sealing, gnutls_rnd for
 * keys and nonces, gnutls_memcmp to compare proofs.  This file only
 * arranges them: what a proof covers, how a ticket is laid out.  It never
 * logs; callers report errors.
 */
#ifndef TESSERA_AUTH_H
#define TESSERA_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define AUTH_KEY_SIZE 32u
#define AUTH_SEAL_OVERHEAD 28u /* 12-byte nonce + 16-byte tag */
#define AUTH_TICKET_MAX_MS (24u * 3600 * 1000)

/* What a sealed blob is for (auth_seal()'s @label), one per use. */
#define AUTH_LABEL_SESSION_KEY "tessera session key v1" /* AUTH_TICKET_REP */
#define AUTH_LABEL_SERVICE_KEY "tessera service key v1" /* AUTH_SERVICE_REP */
#define AUTH_LABEL_KEY_EXPORT "tessera key export v1"   /* AUTH_ADD_REP */

/* One identity's key, as a key file holds it. */
struct auth_key {
    char name[PROTO_AUTH_NAME_MAX + 1];
    uint8_t secret[AUTH_KEY_SIZE];
};

/* What an initiator presents: its identity and the key the proofs use.
 * KEY: @key is the identity's secret, @ticket empty.  TICKET: @key is the
 * ticket's session key and @ticket the sealed ticket from metad. */
struct auth_cred {
    uint8_t method; /* PROTO_AUTH_KEY or PROTO_AUTH_TICKET */
    char name[PROTO_AUTH_NAME_MAX + 1];
    uint8_t key[AUTH_KEY_SIZE];
    uint8_t ticket[PROTO_AUTH_TICKET_MAX];
    uint32_t ticket_len;
    /* Ask for a secure link (§3.7, --secure) and refuse a responder that
     * does not grant one. */
    bool secure;
};

/* What metad vouches for, sealed with a service key (docs/security.md). */
struct auth_ticket {
    char name[PROTO_AUTH_NAME_MAX + 1];
    char caps[PROTO_AUTH_CAPS_MAX + 1];
    uint64_t expires_ms; /* ms since the epoch */
    uint8_t session_key[AUTH_KEY_SIZE];
};

/* ---- Keys and key files ----------------------------------------------- */

/* 0 when @name is a valid identity name (1..64 printable, no blanks). */
int auth_name_check(const char *name);
/* A fresh random secret for @name: 0, -EINVAL (bad name), -EIO. */
int auth_key_generate(const char *name, struct auth_key *out);
/* Read key file @path: 0, -errno of open/read, -EPERM when the file is
 * readable or writable by group or others, -EINVAL when malformed. */
int auth_key_load(const char *path, struct auth_key *out);
/* Create key file @path, mode 0600, failing with -EEXIST if it exists. */
int auth_key_save(const char *path, const struct auth_key *k);
/* The key file text ("name ...\nsecret <hex>\n") into @buf. */
int auth_key_format(const struct auth_key *k, char *buf, size_t size);
int auth_key_parse(const char *text, size_t len, struct auth_key *out);
/* The key file a program uses: @opt (--key) if set, else $TESSERA_KEY,
 * else NULL (no key: the program offers no authentication). */
const char *auth_key_path(const char *opt);

/* Whether a client asks for secure links: @opt (--secure), else
 * $TESSERA_SECURE set to 1, yes, true or on. */
bool auth_secure_wanted(bool opt);

/* A one-line reason for an auth_key_load() error, for messages. */
const char *auth_key_why(int rc);

/* Random bytes for nonces (0 or -EIO). */
int auth_random(void *out, size_t n);
/* A fresh random key (0 or -EIO). */
int auth_random_key(uint8_t out[AUTH_KEY_SIZE]);

/* ---- The handshake (docs/protocol.md §3.2) ----------------------------- */

/* Initiator: answer the challenge @server_nonce as @cred (announced role
 * @role).  Fills @req (its name and ticket borrowed from @cred) and the
 * responder's proof to expect in @expect.  0 or -EIO. */
int auth_answer(const struct auth_cred *cred, uint8_t role,
                const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                struct proto_auth_req *req,
                uint8_t expect[PROTO_AUTH_PROOF_SIZE]);
/* Responder: check @req against @key for the challenge @server_nonce it
 * sent and fill its own proof.  0, -EKEYREJECTED for a wrong proof. */
int auth_verify(const uint8_t key[AUTH_KEY_SIZE], uint8_t role,
                const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                const struct proto_auth_req *req,
                uint8_t proof[PROTO_AUTH_PROOF_SIZE]);
/* Both sides, once the proofs matched: the key of the connection's secure
 * link (§3.7), HMAC-SHA-256 under @key of T("link") for the same @role,
 * @server_nonce and @req.  0 or -EIO. */
int auth_link_key(const uint8_t key[AUTH_KEY_SIZE], uint8_t role,
                  const uint8_t server_nonce[PROTO_AUTH_NONCE_SIZE],
                  const struct proto_auth_req *req,
                  uint8_t out[AUTH_KEY_SIZE]);
/* Constant-time comparison of two proofs. */
bool auth_proof_equal(const uint8_t a[PROTO_AUTH_PROOF_SIZE],
                      const uint8_t b[PROTO_AUTH_PROOF_SIZE]);

/* ---- Sealing ------------------------------------------------------------ */

/* Encrypt and authenticate @n bytes of @plain under @key, bound to the
 * purpose @label (so a blob sealed for one use is refused for another).
 * Writes nonce || ciphertext || tag to @out (@n + AUTH_SEAL_OVERHEAD
 * bytes); returns that length, -ENOSPC when @size is too small, -EIO. */
int auth_seal(const uint8_t key[AUTH_KEY_SIZE], const char *label,
              const void *plain, size_t n, uint8_t *out, size_t size);
/* Reverse auth_seal(): returns the plaintext length, -EBADMSG when the
 * blob was not sealed under @key for @label or was changed, -ENOSPC. */
int auth_open(const uint8_t key[AUTH_KEY_SIZE], const char *label,
              const uint8_t *sealed, size_t n, uint8_t *out, size_t size);

/* ---- Tickets --------------------------------------------------------------
 */

/* Seal @t with service key @id / @service_key: u32 id || sealed body.
 * Returns the blob's length, -ENOSPC, -EINVAL (caps too long), -EIO. */
int auth_ticket_seal(uint32_t id, const uint8_t service_key[AUTH_KEY_SIZE],
                     const struct auth_ticket *t, uint8_t *out, size_t size);
/* The service key id a ticket blob names: 0 or -EBADMSG. */
int auth_ticket_key_id(const uint8_t *blob, size_t n, uint32_t *id);
/* Open a ticket blob: 0, -EBADMSG (not sealed with @service_key, or
 * malformed).  Expiry is the caller's check. */
int auth_ticket_open(const uint8_t service_key[AUTH_KEY_SIZE],
                     const uint8_t *blob, size_t n, struct auth_ticket *out);

/* Wall-clock milliseconds since the epoch (ticket lifetimes). */
uint64_t auth_now_ms(void);

#endif
