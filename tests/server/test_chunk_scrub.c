/* Tests for server/chunk_scrub.c, chunk_rate.c, the bad-replica reports of
 * chunk_meta.c and the read path's report (chunk_read.c): one chunk server
 * linked to a fake metad on one libuv loop over loopback TCP.  The fake
 * metad registers the server as id 7, takes its inventory and heartbeats,
 * and records every CHUNK_REPORT_REQ. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "test_chunk_util.h"

#define SERVER_ID 7
#define KIB 1024u

struct fix {
    uv_loop_t loop;
    struct chunk_server srv;
    char dir[64];
    char addr[64], meta_addr[64];
    struct peer_listener *meta_listener;
    struct peer *client;
    /* What the fake metad saw. */
    int nreports;
    struct proto_chunk_report_req report;
    bool done;
    int status;
};

static struct fix *the_fix; /* for the fake metad's hooks */

static void meta_request(struct peer *p, uint16_t opcode, uint64_t req_id,
                         const uint8_t *payload, size_t len)
{
    struct fix *fx = the_fix;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    if (opcode == PROTO_MSG_SERVER_REGISTER_REQ) {
        struct proto_server_register_rep rep = {SERVER_ID};
        proto_server_register_rep_encode(&w, &rep);
    } else if (opcode == PROTO_MSG_CHUNK_REPORT_REQ) {
        assert_int_equal(
            proto_chunk_report_req_decode(payload, len, &fx->report), 0);
        fx->nreports++;
    }
    peer_reply(p, req_id, (uint16_t)(opcode + 1), 0, w.p, w.len);
    proto_wbuf_free(&w);
}

static const struct peer_ops meta_ops = {.on_request = meta_request};

static void client_close(struct peer *p, int status)
{
    (void)status;
    peer_unref(p);
}

static const struct peer_ops client_ops = {.on_close = client_close};

static int setup(void **state)
{
    struct fix *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    the_fix = fx;
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(peer_listen(&fx->loop, "127.0.0.1:0", &meta_ops, NULL,
                                 &fx->meta_listener),
                     0);
    snprintf(fx->meta_addr, sizeof(fx->meta_addr), "127.0.0.1:%d",
             peer_listener_port(fx->meta_listener));
    strcpy(fx->dir, "/tmp/test_chunk_scrub.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->srv.loop = &fx->loop;
    /* Tickets are test_chunk_auth.c's; here every peer is trusted. */
    fx->srv.auth.no_auth = true;
    fx->srv.meta_addr = fx->meta_addr;
    fx->srv.advertise_addr = "127.0.0.1:1";
    snprintf(fx->srv.name, sizeof(fx->srv.name), "test-chunkd");
    assert_int_equal(chunk_store_open(fx->dir, &fx->srv.store), 0);
    assert_int_equal(chunk_jobs_new(&fx->loop, &fx->srv.jobs), 0);
    assert_int_equal(chunk_chain_new(&fx->srv, &fx->srv.chain), 0);
    assert_int_equal(peer_listen(&fx->loop, "127.0.0.1:0", &chunk_peer_ops,
                                 &fx->srv, &fx->srv.listener),
                     0);
    snprintf(fx->addr, sizeof(fx->addr), "127.0.0.1:%d",
             peer_listener_port(fx->srv.listener));
    assert_int_equal(chunk_meta_start(&fx->srv, &fx->srv.meta), 0);
    assert_int_equal(chunk_scrub_start(&fx->srv), 0);
    assert_int_equal(peer_connect(&fx->loop, fx->addr, PROTO_ROLE_METAD, "test",
                                  &client_ops, NULL, &fx->client),
                     0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    peer_close(fx->client);
    chunk_scrub_stop(fx->srv.scrub);
    chunk_meta_stop(fx->srv.meta);
    peer_listener_close(fx->srv.listener);
    chunk_chain_close(fx->srv.chain);
    peer_listener_close(fx->meta_listener);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    chunk_jobs_free(fx->srv.jobs);
    chunk_store_close(fx->srv.store);
    test_rm_tree(fx->dir);
    free(fx);
    return 0;
}

/* Run the loop until *@flag or 20 s. */
static void run_until(struct fix *fx, const bool *flag)
{
    uint64_t end = uv_hrtime() + 20000000000ull;

    while (!*flag && uv_hrtime() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static void run_until_reports(struct fix *fx, int n)
{
    uint64_t end = uv_hrtime() + 20000000000ull;

    while (fx->nreports < n && uv_hrtime() < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->nreports, n);
}

/* Run a pass at @bps to its end; return its counters. */
static void scrub_pass(struct fix *fx, uint64_t bps,
                       struct chunk_scrub_stats *st)
{
    uint64_t end = uv_hrtime() + 20000000000ull;
    uint64_t passes;

    chunk_scrub_get_stats(fx->srv.scrub, st);
    passes = st->passes;
    chunk_scrub_pass(fx->srv.scrub, bps);
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        chunk_scrub_get_stats(fx->srv.scrub, st);
    } while (st->passes == passes && uv_hrtime() < end);
    assert_int_equal(st->passes, passes + 1);
}

static void put_chunk(struct fix *fx, uint64_t id, uint64_t ver, uint32_t len)
{
    uint8_t *d = malloc(len);

    assert_non_null(d);
    for (uint32_t i = 0; i < len; i++)
        d[i] = (uint8_t)(i * 7 + id + 1);
    assert_int_equal(chunk_store_setversion(fx->srv.store, id, 0, ver), 0);
    assert_int_equal(
        chunk_store_write(fx->srv.store, id, ver, 0, d, len, false), 0);
    free(d);
}

/* Overwrite one byte of a chunk's data file behind the store's back. */
static void corrupt_byte(struct fix *fx, uint64_t id, off_t off)
{
    test_corrupt_byte(fx->dir, id, off, 0x01);
}

static void test_chunk_scrub_pass_reports_flipped_byte(void **state)
{
    struct fix *fx = *state;
    struct chunk_scrub_stats st;
    uint8_t buf[4096];

    put_chunk(fx, 31, 2, 64 * KIB);
    put_chunk(fx, 32, 1, 3 * 4096);
    put_chunk(fx, 33, 4, 100);
    corrupt_byte(fx, 32, 4096 + 17);
    scrub_pass(fx, 0, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.chunks, 2);             /* the bad one is not counted */
    assert_int_equal(st.bytes, 64 * KIB + 100); /* the bad piece: none */
    assert_true(st.last_start_s > 0 && st.last_end_s >= st.last_start_s);
    run_until_reports(fx, 1);
    assert_int_equal(fx->report.server_id, SERVER_ID);
    assert_int_equal(fx->report.chunk_id, 32);
    assert_int_equal(fx->report.version, 1);
    assert_int_equal(fx->report.reason, PROTO_REPORT_CHECKSUM);
    /* Not served any more, even its good blocks. */
    assert_int_equal(chunk_store_read(fx->srv.store, 32, 1, 0, 4096, buf),
                     -EBADMSG);
    /* A second pass skips it and reports nothing new. */
    scrub_pass(fx, 0, &st);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.chunks, 2);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->nreports, 1);
    /* metad deletes it: the mark goes with it. */
    assert_int_equal(chunk_store_delete(fx->srv.store, 32, 0), 0);
    assert_false(chunk_store_is_bad(fx->srv.store, 32));
}

static void test_chunk_scrub_pass_respects_rate(void **state)
{
    struct fix *fx = *state;
    struct chunk_scrub_stats st;
    uint64_t t0;

    put_chunk(fx, 34, 1, 256 * KIB);
    put_chunk(fx, 35, 1, 128 * KIB);
    /* 384 KiB at 768 KiB/s: at least half a second. */
    t0 = uv_hrtime();
    scrub_pass(fx, 768 * KIB, &st);
    assert_true(uv_hrtime() - t0 >= 500000000ull);
    assert_int_equal(st.bytes, 384 * KIB);
    assert_int_equal(st.chunks, 2);
    assert_int_equal(st.errors, 0);
}

static void test_chunk_scrub_pass_restarts_at_new_rate(void **state)
{
    struct fix *fx = *state;
    struct chunk_scrub_stats st;
    uint64_t t0 = uv_hrtime(), end = t0 + 20000000000ull;

    put_chunk(fx, 38, 1, 256 * KIB);
    /* At 128 KiB/s the first piece would wait two seconds. */
    chunk_scrub_pass(fx->srv.scrub, 128 * KIB);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    chunk_scrub_pass(fx->srv.scrub, 64ull << 20);
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        chunk_scrub_get_stats(fx->srv.scrub, &st);
    } while (st.passes == 0 && uv_hrtime() < end);
    assert_int_equal(st.passes, 1);
    assert_true(uv_hrtime() - t0 < 1500000000ull);
    assert_int_equal(st.bytes, 256 * KIB);
    assert_int_equal(st.chunks, 1);
}

static void on_reply(struct peer *p, int status, const uint8_t *payload,
                     size_t len, void *arg)
{
    struct fix *fx = arg;

    (void)p;
    (void)payload;
    (void)len;
    fx->done = true;
    fx->status = status;
}

static int call(struct fix *fx, uint16_t opcode, struct proto_wbuf *w)
{
    assert_int_equal(w->err, 0);
    fx->done = false;
    assert_int_equal(
        peer_request(fx->client, opcode, w->p, w->len, 10000, on_reply, fx), 0);
    proto_wbuf_free(w);
    run_until(fx, &fx->done);
    return fx->status;
}

static void test_chunk_scrub_handle_starts_pass(void **state)
{
    struct fix *fx = *state;
    struct proto_scrub_start_req m = {.rate_mb = 1};
    struct chunk_scrub_stats st;
    struct proto_wbuf w;
    uint64_t end = uv_hrtime() + 20000000000ull;

    put_chunk(fx, 36, 1, 8 * KIB);
    corrupt_byte(fx, 36, 5);
    proto_wbuf_init(&w);
    proto_scrub_start_req_encode(&w, &m);
    assert_int_equal(call(fx, PROTO_MSG_SCRUB_START_REQ, &w), 0);
    do {
        uv_run(&fx->loop, UV_RUN_ONCE);
        chunk_scrub_get_stats(fx->srv.scrub, &st);
    } while (st.passes == 0 && uv_hrtime() < end);
    assert_int_equal(st.passes, 1);
    assert_int_equal(st.errors, 1);
    run_until_reports(fx, 1);
    assert_int_equal(fx->report.chunk_id, 36);
}

static void test_chunk_read_handle_reports_checksum(void **state)
{
    struct fix *fx = *state;
    struct proto_chunk_read_req m = {37, 3, 0, 4096, 0};
    struct proto_wbuf w;

    put_chunk(fx, 37, 3, 4096);
    corrupt_byte(fx, 37, 100);
    for (int i = 0; i < 2; i++) {
        proto_wbuf_init(&w);
        proto_chunk_read_req_encode(&w, &m);
        assert_int_equal(call(fx, PROTO_MSG_CHUNK_READ_REQ, &w), -EBADMSG);
    }
    run_until_reports(fx, 1);
    assert_int_equal(fx->report.chunk_id, 37);
    assert_int_equal(fx->report.version, 3);
    assert_int_equal(fx->report.reason, PROTO_REPORT_CHECKSUM);
    for (int i = 0; i < 20; i++)
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(fx->nreports, 1); /* once per chunk */
}

static void test_chunk_rate_take_paces(void **state)
{
    struct chunk_rate r;
    const uint64_t s = 1000000000ull;

    (void)state;
    chunk_rate_init(&r, 1000, 0, 0);
    /* Empty at start: 500 bytes wait half a second. */
    assert_int_equal(chunk_rate_take(&r, 500, 0), s / 2);
    /* The debt is paid by t = 0.5 s; 1000 more take one more second. */
    assert_int_equal(chunk_rate_take(&r, 1000, s / 2), s);
    /* Idle time does not build up credit beyond the burst (0). */
    assert_int_equal(chunk_rate_take(&r, 100, 10 * s), s / 10);
    chunk_rate_init(&r, 1000, 2000, 0);
    assert_int_equal(chunk_rate_take(&r, 1500, 5 * s), 0);
    assert_int_equal(chunk_rate_take(&r, 1000, 5 * s), s / 2);
    chunk_rate_set(&r, 0);
    assert_int_equal(chunk_rate_take(&r, 1u << 30, 5 * s), 0);
    assert_int_equal(chunk_rate_ms(1), 1);
    assert_int_equal(chunk_rate_ms(0), 0);
    assert_int_equal(chunk_rate_ms(2000000), 2);
}

int test_chunk_scrub(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_scrub_pass_reports_flipped_byte),
        T(test_chunk_scrub_pass_respects_rate),
        T(test_chunk_scrub_pass_restarts_at_new_rate),
        T(test_chunk_scrub_handle_starts_pass),
        T(test_chunk_read_handle_reports_checksum),
        cmocka_unit_test(test_chunk_rate_take_paces),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_scrub", tests, NULL, NULL);
}
