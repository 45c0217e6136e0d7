/* rpc.h: a thread-safe protocol client for programs without an event loop
 * (the FUSE mount, the admin CLI, the NBD export): blocking calls, and
 * asynchronous calls completed on the thread that reads the connection.
 *
 * Many threads may call rpc_call() at once on one client: requests are
 * pipelined on one TCP connection and a reader thread matches replies by
 * request id.  Requests the server sends to us (cache callback breaks,
 * docs/protocol.md §2.3) go to the request hook on the reader thread.
 *
 * Reconnection: when the connection drops, calls in flight and new calls
 * wait while the client redials (backoff up to 1 s) for up to
 * @reconnect_ms, then the call is sent again with the same request id; a
 * call that cannot be sent by then fails with -ENOTCONN.  After a
 * reconnect the on_reconnect hook runs (before any call is resent) so the
 * owner can reopen its session.
 */
#ifndef TESSERA_RPC_H
#define TESSERA_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct auth_cred;
struct rpc_client;

struct rpc_reply {
    uint16_t opcode;
    int status;       /* 0 or negative errno from the wire status */
    uint8_t *payload; /* owned by the reply: rpc_reply_free() */
    uint32_t len;
};

struct rpc_opts {
    uint8_t role;          /* enum proto_role */
    const char *name;      /* borrowed during rpc_client_open() */
    int connect_timeout_ms; /* default 5000 */
    int call_timeout_ms;   /* per call, default 30000; 0 = none */
                           /* (negative selects the default) */
    int reconnect_ms;      /* how long to keep redialling; 0 = never */
    /* Runs on a private thread after a redial, before calls resume.  It
     * may use rpc_call_raw() (and only it) to reopen a session. */
    void (*on_reconnect)(struct rpc_client *c, void *arg);
    /* A request from the server; answer with rpc_reply_send(). @payload
     * is borrowed.  Runs on the reader thread: do not block in it. */
    void (*on_request)(struct rpc_client *c, uint16_t opcode,
                       uint64_t req_id, const uint8_t *payload, size_t len,
                       void *arg);
    void *arg;
    /* The credential to authenticate with (docs/protocol.md §3.2), asked
     * for at every dial so a renewed ticket is used: fill *out and return
     * 0, or return -errno to fail the dial.  NULL: no authentication, and
     * only a server that asks for none is accepted. */
    int (*get_cred)(void *cred_arg, struct auth_cred *out);
    void *cred_arg;
    /* The highest protocol version offered; 0: PROTO_VERSION_MAX.  Lower
     * only to speak as an older peer would (tests). */
    uint16_t max_version;
};

/* Connect to @addr and complete the handshake.  Caller owns *out; close
 * with rpc_client_close().  -ECONNREFUSED, -ETIMEDOUT, -EPROTONOSUPPORT
 * (no common version), -EKEYREJECTED (authentication failed either way),
 * -EPROTO. */
int rpc_client_open(const char *addr, const struct rpc_opts *opts,
                    struct rpc_client **out);
/* Stop the threads and free @c (NULL is fine).  No call may be running on
 * @c, or start, once this is called. */
void rpc_client_close(struct rpc_client *c);

/* The owner is closing: from now on a blocking call gives up once the
 * server has been away for @away_ms (not connected since, or connected
 * and answering nothing since the later of the call's start and its last
 * answer), instead of waiting out reconnect_ms or call_timeout_ms; and
 * once one gave up, the next ones do at once until the server answers
 * again.  A server that answers keeps every call going.  Calls waiting
 * now take the new bound at once.  Each run of calls given up is logged,
 * with the operation. */
void rpc_client_wind_down(struct rpc_client *c, uint32_t away_ms);

/* Send request @opcode with @payload (borrowed) and wait for the reply.
 * Returns 0 with *rep filled (rep->status 0), the negative errno of an
 * error reply (rep empty), -ETIMEDOUT, -ENOTCONN, or -EPROTO when the reply
 * opcode is not @opcode + 1; -EREMCHG from a client with reconnect_ms 0
 * that followed ENOTLEADER (rpc.c) and found no replica leading.  On 0
 * the caller owns rep->payload. */
int rpc_call(struct rpc_client *c, uint16_t opcode, const void *payload,
             size_t len, struct rpc_reply *rep);
/* The same without waiting for a reconnect: for use inside on_reconnect. */
int rpc_call_raw(struct rpc_client *c, uint16_t opcode, const void *payload,
                 size_t len, struct rpc_reply *rep);
/* Completion of an asynchronous call: @status 0 with @rep filled (the
 * callee owns rep->payload: rpc_reply_free()), or the negative errno of an
 * error reply, -ENOTCONN (the connection was lost or the client closed),
 * -ETIMEDOUT (no answer within call_timeout_ms) or -EPROTO (the reply's
 * opcode is not the request's + 1), with @rep empty. */
typedef void (*rpc_done_cb)(void *arg, int status, struct rpc_reply *rep);

/* Send request @opcode with @payload (borrowed during the call) now, on the
 * caller's thread, and return without waiting: @cb runs exactly once, on
 * the reader thread for an answer or a lost connection, on the keeper
 * thread for a timeout, and possibly before this returns.  It must not
 * block on @c (the reader would wait for itself).  The call is never resent
 * after a reconnect.  Returns 0 once sent, or -ENOTCONN when the
 * connection is not up, -EMSGSIZE, -ENOMEM; then @cb is never called. */
int rpc_call_async(struct rpc_client *c, uint16_t opcode, const void *payload,
                   size_t len, rpc_done_cb cb, void *arg);
void rpc_reply_free(struct rpc_reply *rep);

/* Encode @msg with proto_B_encode() via @enc and call; then decode the
 * reply with the decoder for @opcode + 1 into @out (the body struct for
 * it).  Borrowed fields of @out point into rep->payload: keep @rep until
 * done with @out, then rpc_reply_free(). */
int rpc_call_msg(struct rpc_client *c, uint16_t opcode,
                 const struct proto_wbuf *req, struct rpc_reply *rep,
                 void *out);

/* Answer a request from the server (see on_request). */
int rpc_reply_send(struct rpc_client *c, uint64_t req_id, uint16_t opcode,
                   int status, const void *payload, size_t len);

/* Server's HELLO_REP name and instance id from the latest handshake. */
uint64_t rpc_server_instance(struct rpc_client *c);
struct metrics_buf;
/* The process's stalled connections, as Prometheus gauges: a server that
 * answered nothing for 2 s while calls waited is stalled until it answers
 * again.  Each stall is also logged (rpc.c, stall_check()); the calls
 * themselves still fail after call_timeout_ms, or reconnect_ms when the
 * connection is down. */
void rpc_metrics_render(struct metrics_buf *b);

#endif
