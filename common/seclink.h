/* seclink.h: the encrypted, authenticated link that follows the handshake
 * on a --secure connection (docs/protocol.md §3.7, docs/security.md
 * "Secure links").
 *
 * One TLS 1.3 session (GnuTLS) keyed with a pre-shared key that both
 * sides derived from the handshake they just made (auth_link_key()): no
 * certificate, no new secret, and a key that is good for this connection
 * only.  The key exchange is ECDHE-PSK, so the traffic keys are also
 * forward secret.  This file arranges GnuTLS and nothing else: it never
 * logs, and knows nothing of frames.
 *
 * Two transports:
 *   - a blocking socket (@fd >= 0, rpc.c): GnuTLS reads and writes it;
 *   - memory (@fd < 0, peer.c on libuv): the owner hands what it read to
 *     seclink_input() and then calls seclink_handshake()/seclink_recv()
 *     until they return -EAGAIN (all input used); whatever the session
 *     writes collects in an output buffer the owner sends
 *     (seclink_output_len(), seclink_output_take()).
 *
 * Threads: one sender and one receiver may run at once (GnuTLS allows it
 * for a session once the handshake is done); two senders may not.
 */
#ifndef TESSERA_SECLINK_H
#define TESSERA_SECLINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "auth.h"

enum seclink_side { SECLINK_CLIENT, SECLINK_SERVER };

struct seclink;

/* A session for @side, PSK identity @name (borrowed), key @key (copied).
 * Caller owns *out: seclink_free().  0, -ENOMEM, -EIO (GnuTLS refused). */
int seclink_new(enum seclink_side side, const char *name,
                const uint8_t key[AUTH_KEY_SIZE], int fd, struct seclink **out);
/* Free @s (NULL is fine) without close_notify: the owner closes the
 * socket.  The key is wiped. */
void seclink_free(struct seclink *s);

/* Run the TLS handshake: 0 once done; -EAGAIN (memory) when it needs
 * more input; -ETIMEDOUT (a socket timeout), -ECONNRESET; -EKEYREJECTED
 * for anything else: the other side does not hold the key (or is no TLS
 * peer at all). */
int seclink_handshake(struct seclink *s);
/* Up to @n plaintext bytes: their count, -ECONNRESET at the end of the
 * stream, -EAGAIN (memory) when the input is used up, -EBADMSG for a
 * record that does not authenticate (changed or forged), -EPROTO. */
ssize_t seclink_recv(struct seclink *s, void *buf, size_t n);
/* Send all @n bytes: 0, -EPIPE, -ETIMEDOUT (a socket timeout), -EPROTO.
 * On a socket the records leave in as few send() calls as their size
 * allows (one per 128 KiB). */
int seclink_send(struct seclink *s, const void *buf, size_t n);
/* The same for @iovcnt pieces, sent as one stream (a frame's header and
 * payload in one send()). */
int seclink_sendv(struct seclink *s, const struct iovec *iov, int iovcnt);

/* Memory transport.  @data (borrowed) is read by the calls that follow,
 * until one returns -EAGAIN; then seclink_input_left() is 0. */
void seclink_input(struct seclink *s, const uint8_t *data, size_t n);
size_t seclink_input_left(const struct seclink *s);
/* Bytes the session has written and the owner has not taken. */
size_t seclink_output_len(const struct seclink *s);
/* Copy the output into @dst (seclink_output_len() bytes) and empty it. */
void seclink_output_take(struct seclink *s, uint8_t *dst);

/* "TLS1.3 ECDHE-PSK AES-128-GCM", for logs (owned by @s). */
const char *seclink_describe(struct seclink *s);

#endif
