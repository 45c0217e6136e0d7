/* http.c: the daemons' HTTP endpoint (http.h) over libmicrohttpd.
 *
 * libmicrohttpd does the HTTP: parsing, keep-alive, timeouts, limits.
 * This file picks the route, renders the body into memory and hands it
 * over (MHD_RESPMEM_MUST_FREE), so a response never refers to daemon
 * state after the renderer returned.
 *
 * With a libuv loop, libmicrohttpd runs in its "external event loop" mode
 * with epoll: the loop polls libmicrohttpd's epoll descriptor and keeps a
 * timer at MHD_get_timeout(); either calls MHD_run(), which does the ready
 * work without blocking.  Without a loop, libmicrohttpd's own thread does
 * the same.
 *
 * http_metrics_start() is the daemons' `--http`: /metrics alone, its
 * URL or the reason it cannot be served logged once here.
 *
 * Failure modes: a renderer error or a failed allocation answers 500; an
 * unknown path 404; a method other than GET or HEAD 405.  Too many
 * connections, or a client that stalls, are libmicrohttpd's limits
 * (HTTP_MAX_CONNECTIONS, HTTP_TIMEOUT_S).
 */
#include "http.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <pthread.h>

#include "log.h"
#include "net.h"

/* Scrapers and browsers need few connections; a stalled one is dropped. */
#define HTTP_MAX_CONNECTIONS 32
#define HTTP_TIMEOUT_S 10

struct http_server {
    struct MHD_Daemon *d;
    struct http_route *routes; /* a copy */
    size_t nroutes;
    uv_loop_t *loop; /* NULL: libmicrohttpd's own thread */
    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open; /* loop mode: handles not yet closed */
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code,
                              const char *type, char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned code,
                                   const char *text)
{
    char *body = strdup(text);

    if (!body)
        return MHD_NO;
    return answer(conn, code, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    struct http_server *s = cls;
    const struct http_route *route = NULL;
    struct metrics_buf b;

    (void)version;
    (void)upload;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "only GET and HEAD\n");
    if (*upload_len != 0)
        return answer_text(conn, MHD_HTTP_BAD_REQUEST, "no body expected\n");
    for (size_t i = 0; i < s->nroutes; i++)
        if (strcmp(url, s->routes[i].path) == 0)
            route = &s->routes[i];
    if (!route)
        return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");

    metrics_buf_init(&b);
    int rc = route->render(&b, route->arg);
    if (rc < 0 || b.err < 0) {
        metrics_buf_free(&b);
        return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                           "could not render\n");
    }
    /* The body is handed to libmicrohttpd, which frees it. */
    return answer(conn, MHD_HTTP_OK, route->content_type, b.p, b.len);
}

/* ---- Driven by a libuv loop ------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* Run what is ready, then wait for the next event or timeout. */
static void run_and_arm(struct http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;

    MHD_run(s->d);
    if (MHD_get_timeout(s->d, &ms) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_and_arm(p->data);
}

static void on_timer(uv_timer_t *t)
{
    run_and_arm(t->data);
}

static void server_free(struct http_server *s)
{
    free(s->routes);
    free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;

    if (--s->handles_open == 0)
        server_free(s);
}

static int attach_loop(struct http_server *s)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    int rc;

    if (!info)
        return -ENOTSUP;
    rc = uv_poll_init(s->loop, &s->poll, info->epoll_fd);
    if (rc < 0)
        return rc;
    s->poll.data = s;
    s->handles_open++;
    uv_timer_init(s->loop, &s->timer);
    s->timer.data = s;
    s->handles_open++;
    rc = uv_poll_start(&s->poll, UV_READABLE, on_poll);
    if (rc < 0)
        return rc;
    run_and_arm(s);
    return 0;
}

/* ---- Start and stop ------------------------------------------------------ */

/* Start libmicrohttpd; its own thread, if any, blocks every signal. */
static int daemon_start(struct http_server *s, const struct sockaddr *sa)
{
    unsigned flags = MHD_USE_EPOLL;
    sigset_t all, old;

    if (!s->loop)
        flags |= MHD_USE_INTERNAL_POLLING_THREAD;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    errno = 0;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_END);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!s->d)
        return err > 0 ? -err : -EADDRINUSE;
    return 0;
}

int http_server_start(const char *addr, uv_loop_t *loop,
                      const struct http_route *routes, size_t nroutes,
                      struct http_server **out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct http_server *s;
    int rc = net_addr_parse(addr, &ss, &len);

    if (rc < 0)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->routes = calloc(nroutes ? nroutes : 1, sizeof(*routes));
    if (!s->routes) {
        free(s);
        return -ENOMEM;
    }
    memcpy(s->routes, routes, nroutes * sizeof(*routes));
    s->nroutes = nroutes;
    s->loop = loop;
    rc = daemon_start(s, (const struct sockaddr *)&ss);
    if (rc < 0) {
        server_free(s);
        return rc;
    }
    if (loop) {
        rc = attach_loop(s);
        if (rc < 0) {
            http_server_stop(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);

    return info ? info->port : -ENOTSUP;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    /* Stop polling the epoll descriptor before libmicrohttpd closes it. */
    if (s->handles_open > 0) {
        uv_close((uv_handle_t *)&s->poll, on_handle_closed);
        uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    }
    MHD_stop_daemon(s->d);
    s->d = NULL;
    if (s->handles_open == 0)
        server_free(s);
}

int http_metrics_start(const char *addr, uv_loop_t *loop,
                       int (*render)(struct metrics_buf *out, void *arg),
                       void *arg, struct http_server **out)
{
    const struct http_route route = {"/metrics", METRICS_CONTENT_TYPE, render,
                                     arg};
    int rc = http_server_start(addr, loop, &route, 1, out);

    if (rc < 0)
        log_error("http: cannot serve metrics: %s addr=%s", strerror(-rc),
                  addr);
    else
        log_info("http: metrics: url=http://%s/metrics", addr);
    return rc;
}
