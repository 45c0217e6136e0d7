/* Tests for common/http.c: routes, content type, 404, 405 and 500
 * answers, on libmicrohttpd's own thread and driven by a libuv loop, over
 * real loopback sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"
#include "net.h"

static int render_hello(struct metrics_buf *out, void *arg)
{
    metrics_buf_printf(out, "hello %s\n", (const char *)arg);
    return 0;
}

static int render_fail(struct metrics_buf *out, void *arg)
{
    (void)out;
    (void)arg;
    return -EIO;
}

static const struct http_route routes[] = {
    {"/metrics", METRICS_CONTENT_TYPE, render_hello, "world"},
    {"/broken", "text/plain", render_fail, NULL},
};

/* Send @request to 127.0.0.1:@port and return the whole answer (the
 * server closes after an HTTP/1.0 request).  Caller frees it. */
static char *fetch(int port, const char *request)
{
    char addr[32], *buf = calloc(1, 65536);
    size_t len = 0;
    ssize_t n;
    int fd;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    fd = net_connect(addr, 2000);
    assert_true(fd >= 0);
    assert_int_equal(net_write_all(fd, request, strlen(request)), 0);
    while ((n = read(fd, buf + len, 65535 - len)) > 0)
        len += (size_t)n;
    close(fd);
    return buf;
}

/* @request gets an answer with status @status (" 404 "). */
static void expect_status(int port, const char *request, const char *status)
{
    char *r = fetch(port, request);

    assert_non_null(strstr(r, status));
    free(r);
}

static void check_answers(int port)
{
    char *r = fetch(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, " 200 "));
    assert_non_null(strstr(r, "Content-Type: " METRICS_CONTENT_TYPE "\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nhello world\n"));
    free(r);
    expect_status(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", " 200 ");
    expect_status(port, "GET /nope HTTP/1.0\r\n\r\n", " 404 ");
    expect_status(port, "DELETE /metrics HTTP/1.0\r\n\r\n", " 405 ");
    expect_status(port, "GET /broken HTTP/1.0\r\n\r\n", " 500 ");
}

static void test_http_server_own_thread(void **state)
{
    struct http_server *s = NULL;

    (void)state;
    assert_int_equal(http_server_start("127.0.0.1:0", NULL, routes, 2, &s), 0);
    int port = http_server_port(s);
    assert_true(port > 0);
    check_answers(port);
    http_server_stop(s);
}

struct loop_client {
    int port;
    uv_async_t done;
};

static void *client_main(void *arg)
{
    struct loop_client *lc = arg;

    check_answers(lc->port);
    uv_async_send(&lc->done);
    return NULL;
}

static void on_done(uv_async_t *a)
{
    http_server_stop(a->data);
    uv_close((uv_handle_t *)a, NULL);
}

static void test_http_server_on_loop(void **state)
{
    struct http_server *s = NULL;
    struct loop_client lc;
    uv_loop_t loop;
    pthread_t t;

    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(http_server_start("127.0.0.1:0", &loop, routes, 2, &s), 0);
    lc.port = http_server_port(s);
    assert_true(lc.port > 0);
    uv_async_init(&loop, &lc.done, on_done);
    lc.done.data = s;
    assert_int_equal(pthread_create(&t, NULL, client_main, &lc), 0);
    /* Runs until the client is done and the server's handles are closed. */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_http_server_start_errors(void **state)
{
    struct http_server *a = NULL, *b = NULL;
    char addr[32];

    (void)state;
    assert_int_equal(http_server_start("nonsense", NULL, routes, 2, &a),
                     -EINVAL);
    assert_int_equal(http_server_start("127.0.0.1:0", NULL, routes, 2, &a), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_server_port(a));
    assert_int_equal(http_server_start(addr, NULL, routes, 2, &b), -EADDRINUSE);
    http_server_stop(a);
    http_server_stop(NULL);
}

int test_http(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_server_own_thread),
        cmocka_unit_test(test_http_server_on_loop),
        cmocka_unit_test(test_http_server_start_errors),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
