/* vd_io.c: a connection's byte stream, over the plain socket or, after
 * NBD_OPT_STARTTLS, over its TLS session (vd_tls.c).
 *
 * Everything that reads or writes the NBD connection goes through here:
 * vd_recv() for the handshake and the transmission reader, vd_send() for
 * option replies and for transmission replies sent by any thread.  c->tls
 * is set once, by the handshake, while only the connection's own thread
 * runs, and freed by vd_conn.c after the worker threads are joined.
 *
 * Threads (see also vd_tls.c): during transmission exactly one thread
 * receives (the reader in vd_cmd.c) while worker threads and fast-path
 * completions send.  Each send holds c->send_lock for the whole message,
 * so replies never interleave on the wire and at most one thread is in
 * gnutls_record_send() for the session at a time; the one receiver runs
 * beside that one sender, which is the concurrency GnuTLS documents as
 * safe for a session ("Thread safety": one sending thread, one receiving
 * thread, no renegotiation).  The plain socket needs the same lock only
 * to keep messages whole.
 *
 * Failure: a send that fails marks the connection failed and shuts the
 * socket down both ways, which wakes the reader; later sends are dropped
 * at once.
 */
#include "vd_internal.h"

#include <errno.h>
#include <sys/socket.h>

#include "net.h"

int vd_recv(struct vd_conn *c, void *buf, size_t n)
{
    if (n == 0)
        return 0;
    return c->tls ? vd_tls_session_recv(c->tls, buf, n)
                  : net_read_all(c->fd, buf, n);
}

static int send_iov(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int vd_send(struct vd_conn *c, struct iovec *iov, int iovcnt)
{
    int rc = -EPIPE;

    pthread_mutex_lock(&c->send_lock);
    if (!c->send_failed) {
        rc = c->tls ? vd_tls_session_sendv(c->tls, iov, iovcnt)
                    : send_iov(c->fd, iov, iovcnt);
        if (rc < 0) {
            c->send_failed = true;
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&c->send_lock);
    return rc;
}
