/* vd_internal.h: shared inside vmdisk/ only.
 *
 * tessera-nbd is layered so that everything but vd_server.c and vd_main.c
 * runs over any connected socket (the unit tests use a socketpair):
 *
 *   vd_main.c       command line, backend choice, signals
 *   vd_server.c     TCP and unix listeners, a thread per connection
 *   vd_conn.c       one connection's life: handshake, transmission, close
 *   vd_handshake.c  fixed newstyle option haggling up to NBD_OPT_GO,
 *                   NBD_OPT_STARTTLS included
 *   vd_cmd.c        transmission: reader thread, worker pool, commands
 *   vd_reply.c      simple and structured replies, NBD error values
 *   vd_io.c         the connection's bytes: plain socket or TLS session
 *   vd_tls.c        GnuTLS credentials and sessions (vd_tls.h)
 *   vd_backend.h    the image interface; vd_mem.c, vd_file.c and
 *                   vd_tessera.c implement it
 *   vd_lease.c      the image writer lease and the live-migration
 *                   hand-over, under vd_tessera.c (vd_lease.h)
 */
#ifndef TESSERA_VD_INTERNAL_H
#define TESSERA_VD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vd_backend.h"
#include "vd_nbd.h"
#include "vd_tls.h"

/* Block size constraints sent in NBD_INFO_BLOCK_SIZE.  The maximum bounds
 * the payload of READ and WRITE; TRIM, WRITE_ZEROES, BLOCK_STATUS and
 * CACHE carry no payload and may cover up to 4 GiB - 1. */
#define VD_BLOCK_MIN 1u
#define VD_BLOCK_PREFERRED 4096u
#define VD_BLOCK_MAX (32u << 20)

/* Option data larger than this is refused and the connection dropped: no
 * option we implement needs more than two names of NBD_MAX_STRING. */
#define VD_OPT_MAX (64u << 10)

/* Context ids after NBD_OPT_SET_META_CONTEXT: base:allocation, and
 * tessera:changes-since:SNAP (docs/vmdisk.md), whose extents carry
 * VD_STATE_CHANGED where the image may differ from file SNAP. */
#define VD_META_ALLOC_ID 1u
#define VD_META_CHANGES_ID 2u
#define VD_META_CHANGES_PREFIX "tessera:changes-since:"
#define VD_STATE_CHANGED (1u << 0)

#define VD_WORKERS_DEFAULT 4
#define VD_WORKERS_MAX 64

/* Who is at the other end of a connection, as far as tessera-nbd knows
 * when the client names an export.  Filled by the handshake: after
 * NBD_OPT_STARTTLS, tls_user is the PSK identity or the DN of the
 * verified client certificate; it is NULL without TLS, and with an X.509
 * session whose client certificate was not verified. */
struct vd_identity {
    const char *peer;     /* address, for logs */
    const char *tls_user; /* borrowed from the TLS session, or NULL */
    enum vd_tls_auth auth;
};

/* The one place where the connection's identity meets an export name:
 * called before every export is opened (NBD_OPT_INFO, _GO, _EXPORT_NAME
 * and the meta context options), after the option phase's TLS rules
 * passed.  Return 0 to let @who open @name, maybe setting *readonly; or
 * -EACCES/-EPERM with a sentence for the client in @why (@whylen bytes),
 * which the client receives as NBD_REP_ERR_POLICY.  @who and @name are
 * borrowed for the call.  Any thread may call it. */
typedef int (*vd_export_check_cb)(void *ctx, const struct vd_identity *who,
                                  const char *name, bool *readonly, char *why,
                                  size_t whylen);

/* What every connection of a server shares; borrowed by each. */
struct vd_config {
    struct vd_backend *be;
    const char *default_export;      /* served for an empty name; NULL: none */
    bool readonly;                   /* open every image read-only */
    unsigned workers;                /* threads per connection; 0: default */
    enum vd_tls_mode tls_mode;       /* --tls */
    const struct vd_tls *tls;        /* credentials; NULL iff tls_mode is off */
    vd_export_check_cb export_check; /* NULL: every export for everyone */
    void *export_check_ctx;
    /* Connections per address, sessions (open exports) per TLS name;
     * borrowed; NULL: no limits (docs/security.md). */
    struct conn_limit *limits;
};

struct vd_req;

struct vd_conn {
    int fd;                      /* borrowed: the server closes it */
    const struct vd_config *cfg; /* borrowed */
    const char *peer;            /* borrowed, for logs */

    /* Set by the handshake (vd_handshake.c). */
    struct vd_tls_session *tls; /* owned: after NBD_OPT_STARTTLS, or NULL */
    struct vd_identity id;      /* peer and TLS name */
    bool no_zeroes;
    bool structured;
    bool meta_alloc;      /* base:allocation selected for meta_export */
    char *meta_changes;   /* owned: SNAP of tessera:changes-since:SNAP
                           * selected for meta_export, or NULL */
    char *meta_export;    /* owned: export named by SET_META_CONTEXT */
    char *export_name;    /* owned: the export chosen by GO/EXPORT_NAME */
    struct vd_image *img; /* owned: open during transmission */
    uint64_t size;
    uint16_t tflags; /* NBD_FLAG_* transmission flags sent */
    /* Limits (vd_conn.c): the address key, the counts held, and whether
     * the address held its limit at accept (exports are then refused). */
    char addr_key[64];
    bool addr_counted, identity_counted, over_limit;

    /* Transmission (vd_cmd.c). */
    pthread_mutex_t send_lock;  /* one reply on the socket at a time */
    pthread_mutex_t lock;       /* guards the fields below */
    pthread_cond_t cond;        /* workers: a request queued, or drained */
    pthread_cond_t room;        /* the reader: budget given back */
    bool reader_waits;          /* the reader sleeps in budget_wait() */
    struct vd_req *head, *tail; /* decoded, waiting for a worker */
    unsigned inflight;          /* queued or running */
    unsigned nfast;             /* of which on the backend's fast path */
    uint64_t inflight_bytes;    /* their payload and reply buffers */
    bool draining;              /* the reader stopped: workers finish up */
    bool send_failed;           /* a reply could not be sent */
};

/* ---- Byte order helpers ------------------------------------------------ */

static inline void vd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void vd_put32(uint8_t *p, uint32_t v)
{
    vd_put16(p, (uint16_t)(v >> 16));
    vd_put16(p + 2, (uint16_t)v);
}

static inline void vd_put64(uint8_t *p, uint64_t v)
{
    vd_put32(p, (uint32_t)(v >> 32));
    vd_put32(p + 4, (uint32_t)v);
}

static inline uint16_t vd_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t vd_get32(const uint8_t *p)
{
    return (uint32_t)vd_get16(p) << 16 | vd_get16(p + 2);
}

static inline uint64_t vd_get64(const uint8_t *p)
{
    return (uint64_t)vd_get32(p) << 32 | vd_get32(p + 4);
}

/* vd_conn.c */
/* Serve one client on the connected socket @fd (borrowed: the caller
 * closes it) until it disconnects, breaks the protocol, or the socket is
 * shut down.  Logs one line when the export opens and one at the end.
 * Returns 0 after a clean disconnect, -errno otherwise. */
int vd_conn_serve(int fd, const struct vd_config *cfg, const char *peer);

/* vd_limits.c */

/* Count @c's address (TCP only); over the limit, note it and log it. */
void vd_limits_take_addr(struct vd_conn *c);
/* Give back what @c counted. */
void vd_limits_release(struct vd_conn *c);
/* Before an export opens: 0, or -EUSERS with the sentence for the client
 * in @why when the connection's address held its limit at accept or its
 * TLS name holds its limit of sessions (counted once per connection). */
int vd_limits_check(struct vd_conn *c, char *why, size_t whylen);

/* vd_server.c */
struct vd_server;
/* A server for @cfg (borrowed: it must outlive the server).  Caller owns
 * *out: vd_server_free().  -ENOMEM, -errno from pipe2(). */
int vd_server_new(const struct vd_config *cfg, struct vd_server **out);
/* Listen on TCP @addr ("127.0.0.1:10809", "[::]:10809") or on a unix
 * socket at @path (a stale socket there is replaced).  -errno. */
int vd_server_listen_tcp(struct vd_server *s, const char *addr);
int vd_server_listen_unix(struct vd_server *s, const char *path);
/* Accept connections, a thread each, until vd_server_stop(); then stop
 * listening, shut every connection down and wait for their threads.
 * 0, or -errno when no listener was set up. */
int vd_server_run(struct vd_server *s);
/* Make vd_server_run() return.  Async-signal-safe. */
void vd_server_stop(struct vd_server *s);
/* Ask the accept loop to dump the latency stages; signal-safe. */
void vd_server_stats(struct vd_server *s);
/* Close listeners (removing the unix socket) and free @s (NULL is fine).
 * vd_server_run() must have returned. */
void vd_server_free(struct vd_server *s);

/* vd_handshake.c */
/* Run the fixed newstyle handshake on @c.  Returns 0 when an export was
 * chosen (c->img open, c->export_name, c->size and c->tflags set), or
 * -ESHUTDOWN when the client aborted or hung up during option haggling,
 * -EPROTO when it broke the protocol, -EACCES when it asked for an export
 * without the TLS the server requires, -EKEYREJECTED when the TLS
 * handshake failed, -errno for a socket error.  c->tls may be set on
 * return either way. */
int vd_handshake_run(struct vd_conn *c);

/* What the option phase does with option @opt carrying @len bytes of
 * data, given the server's TLS mode and whether TLS is running: the TLS
 * rules of proto.md ("TLS support"), apart from any I/O. */
enum vd_gate {
    VD_GATE_SERVE,      /* handle the option as usual */
    VD_GATE_STARTTLS,   /* ACK, TLS handshake, options start over */
    VD_GATE_TLS_REQD,   /* NBD_REP_ERR_TLS_REQD: STARTTLS first */
    VD_GATE_NO_TLS,     /* STARTTLS, TLS off: NBD_REP_ERR_POLICY */
    VD_GATE_TLS_ACTIVE, /* STARTTLS again: NBD_REP_ERR_INVALID */
    VD_GATE_TLS_DATA,   /* STARTTLS with data: NBD_REP_ERR_INVALID */
    VD_GATE_DROP,       /* EXPORT_NAME without required TLS: close */
};
enum vd_gate vd_handshake_gate(enum vd_tls_mode mode, bool tls_active,
                               uint32_t opt, uint32_t len);
/* Transmission flags for an image, given the backend's capabilities. */
uint16_t vd_handshake_tflags(const struct vd_conn *c, bool readonly);

/* vd_cmd.c */
/* Run the transmission phase of @c until NBD_CMD_DISC (0), a protocol
 * error (-EPROTO) or a socket error.  Every request read is answered, or
 * dropped when the socket failed, before this returns. */
int vd_cmd_run(struct vd_conn *c);
/* Register the request stages with lat.h (startup, once). */
void vd_cmd_stats_register(void);

/* vd_metrics.c */
/* Count one answered request: NBD command @type, length @len, NBD error
 * @nbd_err (0: it succeeded).  Lock-free; any thread. */
void vd_metrics_count(uint16_t type, uint32_t len, uint32_t nbd_err);
struct http_server;
/* Serve /metrics on @addr (--http) from a thread of its own.  Caller owns
 * *out; stop it with http_server_stop().  0 or -errno (logged). */
int vd_metrics_start(const char *addr, struct http_server **out);

/* vd_io.c */
/* Read exactly @n bytes from the connection (plain or TLS); one thread at
 * a time.  -ECONNRESET on EOF, -EPROTO for a TLS error, -errno. */
int vd_recv(struct vd_conn *c, void *buf, size_t n);
/* Send @iov whole, under c->send_lock; any thread.  On failure sets
 * c->send_failed and shuts the socket down, so the reader stops too.
 * May modify @iov.  0 or -errno. */
int vd_send(struct vd_conn *c, struct iovec *iov, int iovcnt);

/* vd_reply.c */
/* The NBD error value (NBD_E*) for a negative errno. */
uint32_t vd_err_to_nbd(int neg_errno);
/* A simple reply: @err (NBD_E*) and, when 0, @len bytes of @data. */
int vd_reply_simple(struct vd_conn *c, uint64_t cookie, uint32_t err,
                    const void *data, size_t len);
/* One structured OFFSET_DATA chunk with the DONE flag. */
int vd_reply_data(struct vd_conn *c, uint64_t cookie, uint64_t offset,
                  const void *data, size_t len);
/* One structured ERROR chunk with the DONE flag; @msg may be NULL. */
int vd_reply_error(struct vd_conn *c, uint64_t cookie, uint32_t err,
                   const char *msg);
/* One structured BLOCK_STATUS chunk with the DONE flag: @n descriptors of
 * (length, flags) in host order at @desc. */
int vd_reply_block_status(struct vd_conn *c, uint64_t cookie, bool done,
                          uint32_t ctx_id, const uint32_t *desc, size_t n);

#endif
