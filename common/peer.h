/* peer.h: framed protocol connections on a libuv loop, for the daemons.
 *
 * A peer is one TCP connection, accepted by a listener or dialled out, that
 * carries requests in both directions (docs/protocol.md §2.3): either side
 * may send requests and each side answers the other's by request id, in any
 * order.  The peer runs the HELLO handshake itself (§3): a dialled peer
 * sends HELLO_REQ first and nothing else until HELLO_REP arrives; an
 * accepted peer answers HELLO_REQ through the on_hello hook and refuses any
 * other request before it with PROTO_EHANDSHAKE.  A bad frame (header or
 * undecodable handshake) closes the connection.
 *
 * Requests sent with peer_request() get their callback exactly once: with
 * the reply, or with status -ECONNRESET when the connection closes first, or
 * -ETIMEDOUT after the request's timeout.
 *
 * Lifetime: a peer is reference counted.  peer_close() starts closing; the
 * on_close hook runs once, after every outstanding request callback has
 * been called; the memory goes when the last reference is dropped.  The
 * connection itself holds a reference until on_close has run, so an
 * accepted peer stays valid in every hook without peer_ref(); to answer
 * a request after on_close, hold a reference (answers are then dropped).
 * on_close runs once for every accepted peer and every peer that
 * peer_connect() returned, even one that never finished the handshake
 * (peer_data() may still be NULL then); its status is 0 after peer_close(),
 * -ECONNRESET when the other side closed, -EPROTO for a bad frame, else
 * the error (connect, read, write, refused or timed-out handshake).
 */
#ifndef TESSERA_PEER_H
#define TESSERA_PEER_H

#include <stdint.h>
#include <uv.h>

#include "proto.h"

struct auth_cred;
struct peer;
struct peer_listener;

/* A reply (or failure) to a request this side sent.  @status is 0 or a
 * negative errno (wire status already converted); @payload is borrowed,
 * valid only during the call. */
typedef void (*peer_reply_cb)(struct peer *p, int status,
                              const uint8_t *payload, size_t len, void *arg);

struct peer_ops {
    /* Accepted side: a HELLO_REQ arrived (decoded, borrowed).  Return 0 to
     * accept (the peer answers HELLO_REP), or a negative errno to refuse
     * (the peer replies with that error and closes).  NULL accepts all. */
    int (*on_hello)(struct peer *p, const struct proto_hello_req *hello);
    /* Accepted side, when the listener requires authentication: AUTH_REQ
     * @req arrived (decoded, borrowed).  Fill @key with the key its proof
     * must be made with (the identity's secret for PROTO_AUTH_KEY, the
     * ticket's session key for PROTO_AUTH_TICKET) and return 0, or return
     * -EKEYREJECTED (unknown identity, bad or expired ticket).  The peer
     * checks the proof; on_ready runs only when it holds, and
     * peer_identity() then names @req's identity. */
    int (*on_auth)(struct peer *p, const struct proto_auth_req *req,
                   uint8_t key[32]);
    /* The handshake finished (either side). */
    void (*on_ready)(struct peer *p);
    /* A request arrived after the handshake.  The handler must answer it
     * exactly once with peer_reply(), now or later, using @req_id. */
    void (*on_request)(struct peer *p, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len);
    /* The connection is gone (read error, EOF, peer_close()). */
    void (*on_close)(struct peer *p, int status);
};

/* Listen on @addr ("host:port") and accept peers with @ops.  @data is
 * given to every accepted peer (peer_get_listener_data()).  Caller owns
 * *out; free with peer_listener_close(). */
int peer_listen(uv_loop_t *loop, const char *addr, const struct peer_ops *ops,
                void *data, struct peer_listener **out);
void peer_listener_close(struct peer_listener *l);
/* The port actually bound (useful when listening on port 0). */
int peer_listener_port(struct peer_listener *l);

/* Dial @addr and run the handshake as @role / @name (borrowed).  on_ready
 * or on_close reports the outcome.  The returned peer holds one reference
 * for the caller (drop it with peer_unref()). */
int peer_connect(uv_loop_t *loop, const char *addr, uint8_t role,
                 const char *name, const struct peer_ops *ops, void *data,
                 struct peer **out);

void peer_ref(struct peer *p);
void peer_unref(struct peer *p);

/* Hold every frame this thread writes, to any peer, until the matching
 * peer_cork_end(), which writes each peer's held frames in one writev()
 * (calls nest; the outermost end writes).  A daemon brackets a turn of its
 * loop with them so that the answers of one turn leave together, as
 * on_read() does for the answers to one read. */
void peer_cork_begin(void);
void peer_cork_end(void);
void peer_close(struct peer *p);
bool peer_is_closed(const struct peer *p);
/* uv_now() of the last bytes read from @p (0: none yet): any frame is a
 * sign that the other side is alive. */
uint64_t peer_last_read_ms(const struct peer *p);

void *peer_data(struct peer *p);            /* set at connect/accept */
void peer_set_data(struct peer *p, void *data);
void *peer_get_listener_data(struct peer *p);
const char *peer_name(struct peer *p);      /* "127.0.0.1:51234" */
uint8_t peer_role(struct peer *p);          /* from HELLO; 0 before */

/* Send a request.  @payload is copied.  @timeout_ms 0 means no timeout.
 * On error the callback is never called. */
int peer_request(struct peer *p, uint16_t opcode, const void *payload,
                 size_t len, unsigned timeout_ms, peer_reply_cb cb, void *arg);
/* Answer request @req_id with reply @opcode: @status 0 sends @payload,
 * a negative errno sends that error (converted to the wire) and no
 * payload.  @payload is copied.  Answers to a closed peer are dropped. */
int peer_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int status,
               const void *payload, size_t len);
/* The same with a wire status (enum proto_err) as is: for Tessera's own
 * errors (PROTO_EOLDVER, PROTO_ECHECKSUM, ...), which no host errno maps
 * to.  A non-zero @wire_status sends no payload. */
int peer_reply_wire(struct peer *p, uint64_t req_id, uint16_t opcode,
                    int32_t wire_status, const void *payload, size_t len);

/* What HELLO_REP tells peers accepted by @l: @name (copied; default
 * "tessera") and @instance_id (0 keeps peer_instance_id()).  0 or
 * -ENOMEM. */
int peer_listener_set_identity(struct peer_listener *l, const char *name,
                               uint64_t instance_id);
/* Close accepted peers that have not finished the handshake (HELLO and,
 * when required, AUTH) within @ms (default 5000; 0 = wait forever).
 * Applies to peers accepted from now on. */
void peer_listener_set_hello_timeout(struct peer_listener *l, unsigned ms);
/* Require authentication with one of @methods (PROTO_AUTH_BIT() of each)
 * from peers accepted from now on; 0 (the default) requires none. */
void peer_listener_set_auth(struct peer_listener *l, uint32_t methods);
/* Count peers accepted from now on in @t (borrowed: it must outlive them):
 * a peer from an address that holds its limit is answered ELIMIT at
 * HELLO and closed; an identity that holds its limit of sessions is
 * answered ELIMIT at AUTH.  Both refusals are logged; other peers go on.
 * NULL: no limits (the default). */
struct conn_limit;
void peer_listener_set_limits(struct peer_listener *l, struct conn_limit *t);
/* Secure links (docs/protocol.md §3.7): a listener that authenticates
 * grants one to every peer that asks (HELLO's SECURE feature); with
 * @required it also refuses, with ESECURE, a peer that does not ask.  A
 * dialled peer asks when its credential says so (auth_cred.secure).  On
 * a secure link every frame after AUTH travels in TLS 1.3 keyed from the
 * handshake; the hooks see no difference. */
void peer_listener_set_secure(struct peer_listener *l, bool required);
/* Give a dialled peer the credential it authenticates with (copied).
 * Call right after peer_connect(), before returning to the loop.  Without
 * one the peer offers no authentication and accepts only a responder that
 * asks for none. */
int peer_set_cred(struct peer *p, const struct auth_cred *cred);
/* The identity an accepted peer proved in the handshake; "" when it did
 * not authenticate (or on a dialled peer). */
const char *peer_identity(struct peer *p);
/* A word the owner attaches to a peer, typically in on_auth: what the
 * peer may do, in the owner's terms.  0 on an accepted peer until set,
 * PEER_RIGHTS_ALL on a dialled one. */
#define PEER_RIGHTS_ALL UINT32_MAX
void peer_set_rights(struct peer *p, uint32_t rights);
uint32_t peer_rights(const struct peer *p);
/* This process's instance id: random, fixed at first use, never 0. */
uint64_t peer_instance_id(void);

/* After the handshake: the negotiated protocol version, the other side's
 * HELLO name (borrowed, valid while @p is; "" before) and, on a dialled
 * peer, the instance id from HELLO_REP (0 on an accepted peer).  On a
 * dialled peer peer_role() is the role this side announced. */
uint16_t peer_version(struct peer *p);
const char *peer_remote_name(struct peer *p);
uint64_t peer_remote_instance(struct peer *p);

/* Stop reading from @p while more than @bytes wait to be written to it
 * (default 64 MiB); reading resumes when a quarter of that remains. */
void peer_set_write_limit(struct peer *p, size_t bytes);
/* Stop reading from @p while @requests of its requests are being served
 * (handed to on_request and not answered yet; default 4096); reading
 * resumes when half of them are answered. */
void peer_set_serve_limit(struct peer *p, uint32_t requests);
/* True while reading is stopped by the write or the serve limit. */
bool peer_read_paused(const struct peer *p);

#endif
