/* vd_conn.c: one NBD connection from accept to close.
 *
 * The connection runs on the thread that calls vd_conn_serve(): first the
 * handshake (vd_handshake.c), then the transmission phase (vd_cmd.c) with
 * its worker threads, then the image is closed and the socket shut down
 * so the client sees EOF at once.  The socket itself belongs to the
 * caller, which closes it afterwards and may shut it down at any time to
 * stop the connection (the server does on SIGTERM); whichever phase is
 * running then sees EOF or an error and ends as below.
 *
 *                 accept
 *                   |
 *                   v
 *   +---------> HANDSHAKE --(ABORT, EOF, bad option magic, too-big option,
 *   | INFO, LIST,   |         bad client flags, EXPORT_NAME failure,  |
 *   | failed GO,    |         TLS handshake failure, EXPORT_NAME      |
 *   | STARTTLS ...  |         in the clear when TLS is required)------+
 *   +---------------+ GO ok / EXPORT_NAME ok                          |
 *                   v                                                 |
 *              TRANSMISSION --(EOF, bad request magic, send error)--+ |
 *                   |                                               | |
 *                   | NBD_CMD_DISC                                  | |
 *                   v                                               v v
 *               DRAINING -------(in-flight requests answered)----> CLOSED
 *
 *   FROM          -> TO            [function]
 *   HANDSHAKE     -> HANDSHAKE     [opt_gated: every option but GO,
 *                                   EXPORT_NAME, ABORT; a failed GO;
 *                                   STARTTLS, after which the rest runs
 *                                   over TLS (vd_handshake.c's diagram)]
 *   HANDSHAKE     -> TRANSMISSION  [opt_info_go, opt_export_name]
 *   HANDSHAKE     -> CLOSED        [vd_handshake_run returns < 0]
 *   TRANSMISSION  -> DRAINING      [read_one sees NBD_CMD_DISC]
 *   TRANSMISSION  -> CLOSED        [read_one returns < 0, then the
 *                                   workers finish (their replies fail)]
 *   DRAINING      -> CLOSED        [vd_cmd_run joins the workers]
 *
 * Invariants:
 *   1. c->img is open exactly in TRANSMISSION and DRAINING.
 *   2. Worker threads exist only inside vd_cmd_run(), so once it returns
 *      nothing else touches the connection and the image and the TLS
 *      session can be closed.
 *
 * One log line when the export is opened (with the TLS name, if any) and
 * one when the connection ends, each with the peer address and export
 * name.  A TLS session ends with close_notify after NBD_CMD_DISC, as
 * proto.md asks; after a failure the socket is just shut down.
 */
#include "vd_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_limit.h"
#include "log.h"

static const char *end_reason(int rc)
{
    switch (-rc) {
    case 0:
        return "client disconnected";
    case ESHUTDOWN:
        return "closed during handshake";
    case ECONNRESET:
        return "connection reset or EOF";
    case EPROTO:
        return "protocol error";
    case EACCES:
        return "refused: TLS required";
    case EKEYREJECTED:
        return "TLS handshake failed";
    default:
        return strerror(-rc);
    }
}

/* Count @c against its address's limit (TCP only).  Over it, the
 * connection still haggles options so that the export it asks for is
 * refused with a sentence (export_open()), not a silent close. */
static void limits_take_addr(struct vd_conn *c)
{
    struct conn_limit *t = c->cfg->limits;
    int rc;

    if (!t || !strncmp(c->peer, "unix:", 5))
        return;
    conn_limit_addr_key(c->peer, c->addr_key, sizeof(c->addr_key));
    rc = conn_limit_take(t, CONN_LIMIT_ADDR, c->addr_key);
    if (rc == 0) {
        c->addr_counted = true;
        return;
    }
    c->over_limit = true;
    log_warn("nbd connection: refused: %s: limit=%u peer=%s",
             rc == -EUSERS ? "too many connections from this address"
                           : strerror(-rc),
             conn_limit_max(t, CONN_LIMIT_ADDR), c->peer);
}

static void limits_release(struct vd_conn *c)
{
    if (c->addr_counted)
        conn_limit_put(c->cfg->limits, CONN_LIMIT_ADDR, c->addr_key);
    if (c->identity_counted)
        conn_limit_put(c->cfg->limits, CONN_LIMIT_IDENTITY, c->id.tls_user);
}

int vd_limits_check(struct vd_conn *c, char *why, size_t whylen)
{
    struct conn_limit *t = c->cfg->limits;
    int rc;

    if (c->over_limit) {
        snprintf(why, whylen,
                 "too many connections from %s (limit %u): close one first",
                 c->addr_key, conn_limit_max(t, CONN_LIMIT_ADDR));
        return -EUSERS;
    }
    if (!t || !c->id.tls_user || c->identity_counted)
        return 0;
    rc = conn_limit_take(t, CONN_LIMIT_IDENTITY, c->id.tls_user);
    if (rc < 0) {
        snprintf(why, whylen,
                 "too many sessions of identity %s (limit %u): close one "
                 "first",
                 c->id.tls_user, conn_limit_max(t, CONN_LIMIT_IDENTITY));
        return rc;
    }
    c->identity_counted = true;
    return 0;
}

int vd_conn_serve(int fd, const struct vd_config *cfg, const char *peer)
{
    struct vd_conn c = {.fd = fd, .cfg = cfg, .peer = peer, .id.peer = peer};
    int rc;

    pthread_mutex_init(&c.send_lock, NULL);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    pthread_cond_init(&c.room, NULL);

    limits_take_addr(&c);
    rc = vd_handshake_run(&c);
    if (rc == 0) {
        assert(c.img); /* invariant 1 */
        log_info("nbd connection: open: peer=%s export=%s size=%llu%s%s "
                 "tls=%s tls_user=%s",
                 peer, c.export_name, (unsigned long long)c.size,
                 c.img->readonly ? " readonly" : "",
                 c.structured ? " structured" : "",
                 c.tls ? vd_tls_auth_name(c.id.auth) : "off",
                 c.id.tls_user ? c.id.tls_user : "-");
        rc = vd_cmd_run(&c);
        cfg->be->ops->close(c.img); /* invariant 2 */
        c.img = NULL;
    }
    limits_release(&c); /* before the session that owns the TLS name */
    vd_tls_session_close(c.tls,
                         (rc == 0 || rc == -ESHUTDOWN) && !c.send_failed);
    c.tls = NULL;
    /* The caller closes the socket, maybe later: shut it down now so the
     * client sees the end at once. */
    shutdown(fd, SHUT_RDWR);
    log_info("nbd connection: closed: %s: peer=%s export=%s", end_reason(rc),
             peer, c.export_name ? c.export_name : "-");

    free(c.export_name);
    free(c.meta_export);
    free(c.meta_changes);
    pthread_cond_destroy(&c.cond);
    pthread_cond_destroy(&c.room);
    pthread_mutex_destroy(&c.lock);
    pthread_mutex_destroy(&c.send_lock);
    return rc == -ESHUTDOWN ? 0 : rc;
}
