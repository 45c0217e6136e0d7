/* http.h: a small HTTP endpoint for the daemons (`--http HOST:PORT`),
 * over libmicrohttpd.
 *
 * A server answers GET (and HEAD) on a fixed table of paths, each with a
 * function that renders the whole body on every request; anything else is
 * 404 or 405.  Where the renderer runs depends on how it was started:
 *
 *   - with a libuv loop: on the loop thread, libmicrohttpd driven by the
 *     loop (its epoll descriptor polled, its timeouts on a timer), so a
 *     renderer may read the daemon's loop-owned state without locks
 *     (tessera-metad, tessera-chunkd);
 *   - without: on a thread of its own, whose renderers read only what is
 *     safe from any thread, such as relaxed atomic counters (tessera-nbd,
 *     tessera-mount).  That thread blocks every signal, so signals keep
 *     reaching the threads that wait for them.
 */
#ifndef TESSERA_HTTP_H
#define TESSERA_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "metrics.h"

struct http_route {
    const char *path;         /* "/metrics"; the query string is ignored */
    const char *content_type; /* METRICS_CONTENT_TYPE, "application/json" */
    /* Write the body into @out (empty on entry).  0, or -errno for a 500
     * answer; @out->err set also makes it a 500. */
    int (*render)(struct metrics_buf *out, void *arg);
    void *arg;
};

struct http_server;

/* Listen on @addr ("127.0.0.1:9430", "[::1]:0", "0.0.0.0:9430"; port 0
 * picks a free port) and serve @routes.  @loop may be NULL (a thread of
 * its own).  @routes is copied; the renderers' @arg must outlive the
 * server.  Caller owns *out; stop it with http_server_stop().  -EINVAL
 * for a malformed address, -EADDRINUSE, -ENOMEM or another -errno when the
 * server cannot start. */
int http_server_start(const char *addr, uv_loop_t *loop,
                      const struct http_route *routes, size_t nroutes,
                      struct http_server **out);
/* http_server_start() with the one route /metrics (METRICS_CONTENT_TYPE)
 * rendered by @render(@arg), logging the URL, or the error. */
int http_metrics_start(const char *addr, uv_loop_t *loop,
                       int (*render)(struct metrics_buf *out, void *arg),
                       void *arg, struct http_server **out);
/* The port it listens on (after port 0, the one picked). */
int http_server_port(const struct http_server *s);
/* Stop serving and free @s (NULL is fine).  With a loop, call it on the
 * loop thread; the memory goes once the loop has closed its handles. */
void http_server_stop(struct http_server *s);

#endif
