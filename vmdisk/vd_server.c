/* vd_server.c: the listening side of tessera-nbd.
 *
 * TCP and unix stream listeners, polled by the thread in vd_server_run();
 * each accepted connection gets a thread of its own running
 * vd_conn_serve(), which is simple and plenty for the handful of
 * connections a VM host opens.  Finished connection threads are joined
 * (and their sockets closed) by the accept loop, at least once a second.
 *
 * The server owns every connection socket, so stopping is: a byte on the
 * wake pipe (vd_server_stop(), safe from a signal handler), the accept
 * loop closes the listeners, shuts every connection socket down both
 * ways, and joins the threads.  A shut-down socket makes the handshake or
 * the request reader fail at once; requests already running in a worker
 * finish against the backend and their replies are dropped.  Only then
 * are sockets closed, so no thread ever uses a closed (or reused) fd.
 *
 * Connection threads run with SIGINT, SIGTERM and SIGUSR1 blocked so that
 * the signals reach the main thread.  SIGUSR1 (vd_server_stats()) makes
 * the accept loop print the latency stages (lat.h) recorded since the
 * previous SIGUSR1, and the CPU time used.
 */
#include "vd_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lat.h"
#include "log.h"
#include "net.h"

#define MAX_LISTENERS 4
#define REAP_MS 1000

struct srv_conn {
    struct srv_conn *next;
    struct vd_server *s;
    int fd;
    pthread_t tid;
    bool done; /* under s->lock */
    char peer[128];
};

struct vd_server {
    const struct vd_config *cfg;
    int wake[2]; /* pipe: vd_server_stop() writes, the accept loop reads */
    int lfd[MAX_LISTENERS];
    int nlisten;
    char *unix_path; /* owned: removed at vd_server_free() */
    pthread_mutex_t lock;
    struct srv_conn *conns;
};

int vd_server_new(const struct vd_config *cfg, struct vd_server **out)
{
    struct vd_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        int rc = -errno;
        free(s);
        return rc;
    }
    s->cfg = cfg;
    pthread_mutex_init(&s->lock, NULL);
    *out = s;
    return 0;
}

static int listener_add(struct vd_server *s, int fd, const char *what)
{
    if (s->nlisten == MAX_LISTENERS) {
        close(fd);
        return -ENOSPC;
    }
    if (listen(fd, 128) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    s->lfd[s->nlisten++] = fd;
    log_info("nbd server: listening on %s", what);
    return 0;
}

int vd_server_listen_tcp(struct vd_server *s, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1, rc;
    char name[128];

    rc = net_addr_parse(addr, &ss, &len);
    if (rc < 0)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    net_addr_format((struct sockaddr *)&ss, name, sizeof(name));
    return listener_add(s, fd, name);
}

int vd_server_listen_unix(struct vd_server *s, const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, rc;

    if (strlen(path) >= sizeof(sun.sun_path) || s->unix_path)
        return -EINVAL;
    strcpy(sun.sun_path, path);
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* stale, from a previous run */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    s->unix_path = strdup(path);
    if (!s->unix_path) {
        close(fd);
        unlink(path);
        return -ENOMEM;
    }
    char what[sizeof(sun.sun_path) + 8];
    snprintf(what, sizeof(what), "unix:%s", path);
    return listener_add(s, fd, what);
}

/* Wake the accept loop with @what: 'x' to stop, 's' to dump stats. */
static void wake(struct vd_server *s, const char *what)
{
    int saved = errno;
    ssize_t n = write(s->wake[1], what, 1);
    (void)n; /* a full pipe already wakes the loop */
    errno = saved;
}

void vd_server_stop(struct vd_server *s)
{
    wake(s, "x");
}

void vd_server_stats(struct vd_server *s)
{
    wake(s, "s");
}

/* Read what woke the loop: true to stop.  A stats request prints the
 * latency stages and the process's CPU time to the log (stderr). */
static bool woken(struct vd_server *s)
{
    char buf[64];
    ssize_t n = read(s->wake[0], buf, sizeof(buf));
    bool stop = n <= 0;

    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 's') {
            log_info("nbd server: stats (since the last dump) follow");
            lat_dump_interval(stderr);
            lat_cpu_line(stderr);
        } else {
            stop = true;
        }
    }
    return stop;
}

static void *conn_main(void *arg)
{
    struct srv_conn *sc = arg;

    vd_conn_serve(sc->fd, sc->s->cfg, sc->peer);
    pthread_mutex_lock(&sc->s->lock);
    sc->done = true;
    pthread_mutex_unlock(&sc->s->lock);
    return NULL;
}

static void conn_start(struct vd_server *s, int lfd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    sigset_t block, old;
    int fd, one = 1;

    fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warn("nbd server: accept: %s", strerror(errno));
        return;
    }
    struct srv_conn *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        log_error("nbd server: accept: out of memory");
        close(fd);
        return;
    }
    sc->s = s;
    sc->fd = fd;
    if (ss.ss_family == AF_UNIX) {
        snprintf(sc->peer, sizeof(sc->peer), "unix:%s", s->unix_path);
    } else {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        net_addr_format((struct sockaddr *)&ss, sc->peer, sizeof(sc->peer));
    }

    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&sc->tid, NULL, conn_main, sc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_error("nbd server: starting a connection thread: %s: peer=%s",
                  strerror(rc), sc->peer);
        close(fd);
        free(sc);
        return;
    }
    pthread_mutex_lock(&s->lock);
    sc->next = s->conns;
    s->conns = sc;
    pthread_mutex_unlock(&s->lock);
}

/* Join and free connections whose thread finished (all of them when
 * @all, after shutting their sockets down). */
static void conns_reap(struct vd_server *s, bool all)
{
    struct srv_conn **pp, *done = NULL;

    pthread_mutex_lock(&s->lock);
    pp = &s->conns;
    while (*pp) {
        struct srv_conn *sc = *pp;
        if (all && !sc->done)
            shutdown(sc->fd, SHUT_RDWR);
        if (all || sc->done) {
            *pp = sc->next;
            sc->next = done;
            done = sc;
        } else {
            pp = &sc->next;
        }
    }
    pthread_mutex_unlock(&s->lock);
    while (done) {
        struct srv_conn *sc = done;
        done = sc->next;
        pthread_join(sc->tid, NULL);
        close(sc->fd);
        free(sc);
    }
}

int vd_server_run(struct vd_server *s)
{
    struct pollfd pfd[MAX_LISTENERS + 1];

    if (s->nlisten == 0)
        return -EINVAL;
    for (;;) {
        pfd[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        for (int i = 0; i < s->nlisten; i++)
            pfd[i + 1] = (struct pollfd){.fd = s->lfd[i], .events = POLLIN};
        int n = poll(pfd, (nfds_t)s->nlisten + 1, REAP_MS);
        if (n < 0 && errno != EINTR) {
            log_error("nbd server: poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (pfd[0].revents & POLLIN) && woken(s))
            break;
        for (int i = 0; n > 0 && i < s->nlisten; i++)
            if (pfd[i + 1].revents & POLLIN)
                conn_start(s, s->lfd[i]);
        conns_reap(s, false);
    }
    log_info("nbd server: stopping");
    for (int i = 0; i < s->nlisten; i++)
        close(s->lfd[i]);
    s->nlisten = 0;
    conns_reap(s, true);
    return 0;
}

void vd_server_free(struct vd_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nlisten; i++)
        close(s->lfd[i]);
    if (s->unix_path) {
        unlink(s->unix_path);
        free(s->unix_path);
    }
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
