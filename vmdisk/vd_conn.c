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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

int vd_conn_serve(int fd, const struct vd_config *cfg, const char *peer)
{
    struct vd_conn c = {.fd = fd, .cfg = cfg, .peer = peer, .id.peer = peer};
    int rc;

    pthread_mutex_init(&c.send_lock, NULL);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    pthread_cond_init(&c.room, NULL);

    vd_limits_take_addr(&c);
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
    vd_limits_release(&c); /* before the session that owns the TLS name */
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
