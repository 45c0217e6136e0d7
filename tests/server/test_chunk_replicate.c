/* Tests for server/chunk_replicate.c and the staged copies of
 * chunk_store.c: two chunk servers and a client on one libuv loop over
 * loopback TCP, no metad.  The client asks B to copy a chunk from A. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "fault_inject.h"
#include "opcount.h"
#include "test_chunk_util.h"

#define MIB (1u << 20)

struct node {
    struct chunk_server srv;
    char dir[64];
    char addr[64];
};

struct fix {
    uv_loop_t loop;
    struct node n[2];
    struct peer *client; /* connected to B */
    bool done;
    int status;
};

static void node_start(struct fix *fx, struct node *n)
{
    strcpy(n->dir, "/tmp/test_chunk_repl.XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    n->srv.loop = &fx->loop;
    snprintf(n->srv.name, sizeof(n->srv.name), "test-chunkd");
    /* Copies between servers, not tickets (test_chunk_auth.c), are what
     * this file tests. */
    n->srv.auth.no_auth = true;
    assert_int_equal(chunk_store_open(n->dir, &n->srv.store), 0);
    assert_int_equal(chunk_jobs_new(&fx->loop, &n->srv.jobs), 0);
    assert_int_equal(chunk_chain_new(&n->srv, &n->srv.chain), 0);
    assert_int_equal(peer_listen(&fx->loop, "127.0.0.1:0", &chunk_peer_ops,
                                 &n->srv, &n->srv.listener),
                     0);
    snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d",
             peer_listener_port(n->srv.listener));
}

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
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    node_start(fx, &fx->n[0]);
    node_start(fx, &fx->n[1]);
    assert_int_equal(peer_connect(&fx->loop, fx->n[1].addr, PROTO_ROLE_METAD,
                                  "test", &client_ops, NULL, &fx->client),
                     0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fix *fx = *state;

    fault_inject_clear();
    peer_close(fx->client);
    for (int i = 0; i < 2; i++) {
        if (fx->n[i].srv.listener)
            peer_listener_close(fx->n[i].srv.listener);
        chunk_chain_close(fx->n[i].srv.chain);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < 2; i++) {
        chunk_jobs_free(fx->n[i].srv.jobs);
        chunk_store_close(fx->n[i].srv.store);
        test_rm_tree(fx->n[i].dir);
    }
    free(fx);
    return 0;
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

static void on_status(struct peer *p, int status, const uint8_t *payload,
                      size_t len, void *arg)
{
    (void)p;
    (void)payload;
    (void)len;
    *(int *)arg = status;
}

/* Ask B to copy chunk @id at @ver from @source; run until the answer. */
static int replicate(struct fix *fx, uint64_t id, uint64_t ver,
                     const char *source)
{
    struct proto_chunk_replicate_req m = {
        .chunk_id = id,
        .version = ver,
        .source = {1, {source, (uint32_t)strlen(source)}},
    };
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_replicate_req_encode(&w, &m);
    assert_int_equal(w.err, 0);
    fx->done = false;
    assert_int_equal(peer_request(fx->client, PROTO_MSG_CHUNK_REPLICATE_REQ,
                                  w.p, w.len, 30000, on_reply, fx),
                     0);
    proto_wbuf_free(&w);
    while (!fx->done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    return fx->status;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9) + 1);
}

static struct chunk_store *store(struct fix *fx, int i)
{
    return fx->n[i].srv.store;
}

/* Both stores hold chunk @id at @ver with the same 64 MiB. */
static void assert_same(struct fix *fx, uint64_t id, uint64_t ver)
{
    uint8_t *a = malloc(4 * MIB), *b = malloc(4 * MIB);

    assert_non_null(a);
    assert_non_null(b);
    for (uint32_t off = 0; off < PROTO_CHUNK_SIZE; off += 4 * MIB) {
        assert_int_equal(
            chunk_store_read(store(fx, 0), id, ver, off, 4 * MIB, a), 0);
        assert_int_equal(
            chunk_store_read(store(fx, 1), id, ver, off, 4 * MIB, b), 0);
        assert_memory_equal(a, b, 4 * MIB);
    }
    free(a);
    free(b);
}

static void test_chunk_replicate_handle_copies_sparse(void **state)
{
    struct fix *fx = *state;
    static uint8_t d1[10000], d2[4096];
    char path[256];
    struct stat st;

    fill(d1, sizeof(d1), 1);
    fill(d2, sizeof(d2), 2);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 21, 0, 3), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 21, 3, 1000, d1, sizeof(d1), false), 0);
    assert_int_equal(chunk_store_write(store(fx, 0), 21, 3, 40 * MIB + 8192, d2,
                                       sizeof(d2), false),
                     0);
    assert_int_equal(replicate(fx, 21, 3, fx->n[0].addr), 0);
    assert_same(fx, 21, 3);
    assert_int_equal(chunk_store_count(store(fx, 1)), 1);
    /* 4 blocks at the start and 1 at 40 MiB were written: the rest of
     * the 64 MiB must still be holes (allow for file system overhead). */
    snprintf(path, sizeof(path), "%s/chunks/15/%016llx", fx->n[1].dir, 21ull);
    assert_int_equal(stat(path, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 <= 256 * 1024);
    assert_true(st.st_size > 40 * MIB);
}

static void test_chunk_replicate_handle_version_mismatch(void **state)
{
    struct fix *fx = *state;
    uint8_t d[4096];
    struct chunk_info ci;

    fill(d, sizeof(d), 3);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 22, 0, 1), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 22, 1, 0, d, sizeof(d), false), 0);
    /* A holds version 1; B is asked for version 2: EOLDVER from A. */
    assert_int_equal(replicate(fx, 22, 2, fx->n[0].addr), -ESTALE);
    assert_int_equal(chunk_store_stat(store(fx, 1), 22, &ci), -ENOENT);
    assert_int_equal(chunk_store_count(store(fx, 1)), 0);
}

static void test_chunk_replicate_handle_same_version_noop(void **state)
{
    struct fix *fx = *state;
    uint8_t a[4096], b[4096], got[4096];

    fill(a, sizeof(a), 4);
    fill(b, sizeof(b), 5);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 23, 0, 2), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 23, 2, 0, a, sizeof(a), false), 0);
    assert_int_equal(chunk_store_setversion(store(fx, 1), 23, 0, 2), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 1), 23, 2, 0, b, sizeof(b), false), 0);
    /* B already has version 2: nothing is copied, even from a dead
     * source. */
    assert_int_equal(replicate(fx, 23, 2, "127.0.0.1:1"), 0);
    assert_int_equal(chunk_store_read(store(fx, 1), 23, 2, 0, 4096, got), 0);
    assert_memory_equal(got, b, sizeof(b));
}

static void test_chunk_replicate_handle_replaces_older(void **state)
{
    struct fix *fx = *state;
    uint8_t a[8192], b[4096], got[8192];

    fill(a, sizeof(a), 6);
    fill(b, sizeof(b), 7);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 24, 0, 5), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 24, 5, 4096, a, sizeof(a), false), 0);
    assert_int_equal(chunk_store_setversion(store(fx, 1), 24, 0, 4), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 1), 24, 4, 0, b, sizeof(b), false), 0);
    assert_int_equal(replicate(fx, 24, 5, fx->n[0].addr), 0);
    assert_int_equal(chunk_store_read(store(fx, 1), 24, 4, 0, 10, got),
                     -ESTALE);
    assert_same(fx, 24, 5);
    assert_int_equal(chunk_store_read(store(fx, 1), 24, 5, 0, 4096, got), 0);
    for (int i = 0; i < 4096; i++)
        assert_int_equal(got[i], 0); /* B's old block 0 is gone */
    assert_int_equal(chunk_store_count(store(fx, 1)), 1);
}

static void test_chunk_replicate_handle_replaces_bad_copy(void **state)
{
    struct fix *fx = *state;
    uint8_t a[4096], got[4096];

    fill(a, sizeof(a), 8);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 25, 0, 1), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 25, 1, 0, a, sizeof(a), false), 0);
    assert_int_equal(chunk_store_setversion(store(fx, 1), 25, 0, 1), 0);
    assert_int_equal(
        chunk_store_mark_bad(store(fx, 1), 25, PROTO_REPORT_CHECKSUM), 1);
    assert_int_equal(chunk_store_read(store(fx, 1), 25, 1, 0, 4096, got),
                     -EBADMSG);
    /* Same version, but known bad: copied again, and served again. */
    assert_int_equal(replicate(fx, 25, 1, fx->n[0].addr), 0);
    assert_false(chunk_store_is_bad(store(fx, 1), 25));
    assert_int_equal(chunk_store_read(store(fx, 1), 25, 1, 0, 4096, got), 0);
    assert_memory_equal(got, a, sizeof(a));
}

/* The target's disk fails under a repair copy: while writing the copy
 * (ENOSPC) or making it durable (EIO).  The error is the answer, the
 * stale replica stays as it was, and the next try goes through. */
static void test_chunk_replicate_handle_target_disk_fails(void **state)
{
    struct fix *fx = *state;
    uint8_t a[8192], old[8192], got[8192];
    static const struct {
        enum fault_call call;
        int err;
    } cases[] = {{FAULT_PWRITEV2, ENOSPC}, {FAULT_FDATASYNC, EIO}};

    fill(a, sizeof(a), 11);
    fill(old, sizeof(old), 12);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 27, 0, 2), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 27, 2, 0, a, sizeof(a), false), 0);
    assert_int_equal(chunk_store_setversion(store(fx, 1), 27, 0, 1), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 1), 27, 1, 0, old, sizeof(old), true), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fault_inject_set(&(struct fault_rule){.call = cases[i].call,
                                              .path = fx->n[1].dir,
                                              .nth = 1,
                                              .err = cases[i].err});
        assert_int_equal(replicate(fx, 27, 2, fx->n[0].addr), -cases[i].err);
        assert_int_equal(fault_inject_hits(cases[i].call), 1);
        fault_inject_clear();
        assert_int_equal(
            chunk_store_read(store(fx, 1), 27, 1, 0, sizeof(got), got), 0);
        assert_memory_equal(got, old, sizeof(old));
    }
    assert_int_equal(replicate(fx, 27, 2, fx->n[0].addr), 0);
    assert_int_equal(chunk_store_read(store(fx, 1), 27, 2, 0, sizeof(got), got),
                     0);
    assert_memory_equal(got, a, sizeof(a));
}

static void test_chunk_replicate_handle_source_unreachable(void **state)
{
    struct fix *fx = *state;
    struct chunk_info ci;

    assert_true(replicate(fx, 26, 1, "127.0.0.1:1") < 0);
    assert_int_equal(chunk_store_stat(store(fx, 1), 26, &ci), -ENOENT);
}

/* A block written in each 1 MiB piece of chunk @id at @ver on A: every
 * piece must cross the wire. */
static void write_every_piece(struct fix *fx, uint64_t id, uint64_t ver)
{
    uint8_t a[4096];

    fill(a, sizeof(a), 9);
    assert_int_equal(chunk_store_setversion(store(fx, 0), id, 0, ver), 0);
    for (uint32_t off = 0; off < PROTO_CHUNK_SIZE; off += MIB)
        assert_int_equal(chunk_store_write(store(fx, 0), id, ver, off + 8192, a,
                                           sizeof(a), false),
                         0);
}

static void test_chunk_replicate_handle_rate_limited(void **state)
{
    struct fix *fx = *state;
    uint64_t t0;

    write_every_piece(fx, 27, 1);
    /* 64 MiB cross the wire at 512 MiB/s, 4 MiB of them on the bucket's
     * credit: at least 117 ms. */
    fx->n[1].srv.repair_bps = 512ull * MIB;
    t0 = uv_hrtime();
    assert_int_equal(replicate(fx, 27, 1, fx->n[0].addr), 0);
    assert_true(uv_hrtime() - t0 >= 117000000ull);
    assert_same(fx, 27, 1);
}

/* Only the pieces holding data are read from the source. */
static void test_chunk_replicate_handle_reads_only_data(void **state)
{
    struct fix *fx = *state;
    static uint8_t d[3 * 4096];
    uint64_t before;

    fill(d, sizeof(d), 4);
    assert_int_equal(chunk_store_setversion(store(fx, 0), 30, 0, 2), 0);
    assert_int_equal(
        chunk_store_write(store(fx, 0), 30, 2, 4096, d, sizeof(d), false), 0);
    assert_int_equal(chunk_store_write(store(fx, 0), 30, 2, 40 * MIB - 4096, d,
                                       sizeof(d), false),
                     0);
    before =
        atomic_load(&opcount_served.response_bytes[OPCOUNT_OP_CHUNK_READ_REQ]);
    assert_int_equal(replicate(fx, 30, 2, fx->n[0].addr), 0);
    assert_same(fx, 30, 2);
    /* Pieces 0, 39 and 40, each with its 4-byte length. */
    assert_int_equal(
        atomic_load(&opcount_served.response_bytes[OPCOUNT_OP_CHUNK_READ_REQ]) -
            before,
        3 * (MIB + 4));
}

static void test_chunk_replicate_handle_busy(void **state)
{
    struct fix *fx = *state;
    struct proto_chunk_replicate_req m = {
        .chunk_id = 28,
        .version = 1,
        .source = {1, {fx->n[0].addr, (uint32_t)strlen(fx->n[0].addr)}},
    };
    struct proto_wbuf w;
    int first = 1; /* status of the first request, 1 until answered */

    write_every_piece(fx, 28, 1);
    fx->n[1].srv.repair_bps = 512ull * MIB;
    proto_wbuf_init(&w);
    proto_chunk_replicate_req_encode(&w, &m);
    fx->done = false;
    assert_int_equal(peer_request(fx->client, PROTO_MSG_CHUNK_REPLICATE_REQ,
                                  w.p, w.len, 30000, on_status, &first),
                     0);
    proto_wbuf_free(&w);
    /* The first copy is still pacing its reads when the second arrives. */
    assert_int_equal(replicate(fx, 28, 1, fx->n[0].addr), -EBUSY);
    while (first == 1)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(first, 0);
}

static void test_chunk_store_stage_commit_refuses_newer(void **state)
{
    struct fix *fx = *state;
    struct chunk_info ci;

    assert_int_equal(chunk_store_stage_begin(store(fx, 1), 29, 2), 0);
    assert_int_equal(chunk_store_setversion(store(fx, 1), 29, 0, 3), 0);
    assert_int_equal(chunk_store_stage_commit(store(fx, 1), 29, 2), -ESTALE);
    assert_int_equal(chunk_store_stat(store(fx, 1), 29, &ci), 0);
    assert_int_equal(ci.version, 3);
    /* The failed copy was dropped: a new one starts clean. */
    assert_int_equal(chunk_store_stage_begin(store(fx, 1), 29, 4), 0);
    assert_int_equal(chunk_store_stage_commit(store(fx, 1), 29, 4), 0);
    assert_int_equal(chunk_store_stat(store(fx, 1), 29, &ci), 0);
    assert_int_equal(ci.version, 4);
    assert_int_equal(chunk_store_count(store(fx, 1)), 1);
}

int test_chunk_replicate(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_replicate_handle_copies_sparse),
        T(test_chunk_replicate_handle_version_mismatch),
        T(test_chunk_replicate_handle_same_version_noop),
        T(test_chunk_replicate_handle_replaces_older),
        T(test_chunk_replicate_handle_replaces_bad_copy),
        T(test_chunk_replicate_handle_source_unreachable),
        T(test_chunk_replicate_handle_rate_limited),
        T(test_chunk_replicate_handle_target_disk_fails),
        T(test_chunk_replicate_handle_reads_only_data),
        T(test_chunk_replicate_handle_busy),
        T(test_chunk_store_stage_commit_refuses_newer),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_replicate", tests, NULL, NULL);
}
