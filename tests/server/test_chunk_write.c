/* Tests for the request path of server/ (chunk_dispatch.c, chunk_job.c,
 * chunk_read.c, chunk_write.c, chunk_manage.c, chunk_chain.c): three chunk
 * servers (A, B, C) and a client of A on one libuv loop over loopback
 * TCP, no metad. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunk_internal.h"
#include "fault_inject.h"
#include "test_chunk_util.h"

struct node {
    struct chunk_server srv;
    char dir[64];
    char addr[64];
    bool stopped;
};

#define NNODES 3

struct fix {
    uv_loop_t loop;
    struct node n[NNODES];
    struct peer *client;
    /* The last answer. */
    bool done;
    int nreplies, nfailed;
    int status;
    uint8_t *rep;
    size_t rep_len;
};

static void node_start(struct fix *fx, struct node *n)
{
    strcpy(n->dir, "/tmp/test_chunk_write.XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    n->srv.loop = &fx->loop;
    /* Tickets are test_chunk_auth.c's; here every peer is trusted. */
    n->srv.auth.no_auth = true;
    snprintf(n->srv.name, sizeof(n->srv.name), "test-chunkd");
    assert_int_equal(chunk_store_open(n->dir, &n->srv.store), 0);
    assert_int_equal(chunk_jobs_new(&fx->loop, &n->srv.jobs), 0);
    assert_int_equal(chunk_chain_new(&n->srv, &n->srv.chain), 0);
    assert_int_equal(peer_listen(&fx->loop, "127.0.0.1:0", &chunk_peer_ops,
                                 &n->srv, &n->srv.listener),
                     0);
    snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d",
             peer_listener_port(n->srv.listener));
}

static void node_stop(struct node *n)
{
    if (n->srv.listener)
        peer_listener_close(n->srv.listener);
    n->srv.listener = NULL;
    /* srv.chain stays set: the cache frees itself once its connections
     * have closed, and their hooks find it through the server. */
    chunk_chain_close(n->srv.chain);
    n->stopped = true;
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
    for (int i = 0; i < NNODES; i++)
        node_start(fx, &fx->n[i]);
    assert_int_equal(peer_connect(&fx->loop, fx->n[0].addr, PROTO_ROLE_CLIENT,
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
    for (int i = 0; i < NNODES; i++)
        if (!fx->n[i].stopped)
            node_stop(&fx->n[i]);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    for (int i = 0; i < NNODES; i++) {
        chunk_jobs_free(fx->n[i].srv.jobs);
        chunk_store_close(fx->n[i].srv.store);
        test_rm_tree(fx->n[i].dir);
    }
    free(fx->rep);
    free(fx);
    return 0;
}

static void on_reply(struct peer *p, int status, const uint8_t *payload,
                     size_t len, void *arg)
{
    struct fix *fx = arg;

    (void)p;
    fx->done = true;
    fx->nreplies++;
    fx->nfailed += status != 0;
    fx->status = status;
    free(fx->rep);
    fx->rep = malloc(len ? len : 1);
    if (len)
        memcpy(fx->rep, payload, len);
    fx->rep_len = len;
}

/* Send @w as @opcode on @p and run the loop until the answer. */
static int call(struct fix *fx, struct peer *p, uint16_t opcode,
                struct proto_wbuf *w)
{
    assert_int_equal(w->err, 0);
    fx->done = false;
    assert_int_equal(peer_request(p, opcode, w->p, w->len, 10000, on_reply, fx),
                     0);
    while (!fx->done)
        uv_run(&fx->loop, UV_RUN_ONCE);
    proto_wbuf_free(w);
    return fx->status;
}

static int setversion(struct fix *fx, uint64_t id, uint64_t o, uint64_t n)
{
    struct proto_chunk_setversion_req m = {id, o, n};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_setversion_req_encode(&w, &m);
    return call(fx, fx->client, PROTO_MSG_CHUNK_SETVERSION_REQ, &w);
}

static int write_chain(struct fix *fx, uint64_t id, uint64_t ver, uint32_t off,
                       const void *data, uint32_t len, const char *next)
{
    struct proto_chunk_write_req m = {
        .chunk_id = id,
        .version = ver,
        .offset = off,
        .flags = PROTO_CHUNK_WRITE_SYNC,
        .data = {data, len},
    };
    struct proto_wbuf w;

    if (next) {
        m.nchain = 1;
        m.chain[0].server_id = 2;
        m.chain[0].addr = (struct proto_str){next, (uint32_t)strlen(next)};
    }
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &m);
    return call(fx, fx->client, PROTO_MSG_CHUNK_WRITE_REQ, &w);
}

static int read_from(struct fix *fx, struct peer *p, uint64_t id, uint64_t ver,
                     uint32_t off, uint32_t len)
{
    struct proto_chunk_read_req m = {id, ver, off, len, 0};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_read_req_encode(&w, &m);
    return call(fx, p, PROTO_MSG_CHUNK_READ_REQ, &w);
}

/* Create chunk @id at version 1 on every server: on A through the
 * client, on the others straight in their stores (as metad would have). */
static void create_both(struct fix *fx, uint64_t id)
{
    assert_int_equal(setversion(fx, id, 0, 1), 0);
    for (int i = 1; i < NNODES; i++)
        assert_int_equal(chunk_store_setversion(fx->n[i].srv.store, id, 0, 1),
                         0);
}

/* Fill @m's chain with the servers @idx (@n of them). */
static void chain_of(struct fix *fx, struct proto_replica *chain,
                     uint32_t *nchain, const int *idx, int n)
{
    for (int i = 0; i < n; i++) {
        const char *a = fx->n[idx[i]].addr;
        chain[i].server_id = (uint32_t)idx[i] + 1;
        chain[i].addr = (struct proto_str){a, (uint32_t)strlen(a)};
    }
    *nchain = (uint32_t)n;
}

static void test_chunk_write_handle_replicates_chain(void **state)
{
    struct fix *fx = *state;
    uint8_t data[10000], got[10000];
    struct proto_bytes_rep rep;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13);
    create_both(fx, 7);
    assert_int_equal(
        write_chain(fx, 7, 1, 1000, data, sizeof(data), fx->n[1].addr), 0);
    /* On B's disk: the write went down the chain. */
    assert_int_equal(
        chunk_store_read(fx->n[1].srv.store, 7, 1, 1000, sizeof(got), got), 0);
    assert_memory_equal(got, data, sizeof(data));
    /* And A serves it over the wire. */
    assert_int_equal(read_from(fx, fx->client, 7, 1, 1000, sizeof(data)), 0);
    assert_int_equal(proto_bytes_rep_decode(fx->rep, fx->rep_len, &rep), 0);
    assert_int_equal(rep.data.len, sizeof(data));
    assert_memory_equal(rep.data.p, data, sizeof(data));
}

static void test_chunk_write_handle_downstream_version_mismatch(void **state)
{
    struct fix *fx = *state;
    uint8_t data[100] = {1, 2, 3};

    create_both(fx, 8);
    /* B missed a bump: it is at 1, A and the client at 2. */
    assert_int_equal(setversion(fx, 8, 1, 2), 0);
    assert_int_equal(write_chain(fx, 8, 2, 0, data, 100, fx->n[1].addr),
                     -ESTALE); /* PROTO_EOLDVER on the wire */
}

static void test_chunk_write_handle_downstream_unreachable(void **state)
{
    struct fix *fx = *state;
    uint8_t data[100] = {1};
    char dead[64];

    create_both(fx, 9);
    /* B's listener goes away: nothing accepts on its port any more. */
    snprintf(dead, sizeof(dead), "%s", fx->n[1].addr);
    peer_listener_close(fx->n[1].srv.listener);
    fx->n[1].srv.listener = NULL;
    assert_true(write_chain(fx, 9, 1, 0, data, 100, dead) < 0);
}

static void test_chunk_read_handle_errors(void **state)
{
    struct fix *fx = *state;
    struct proto_bytes_rep rep;

    assert_int_equal(read_from(fx, fx->client, 10, 1, 0, 10), -ENOENT);
    assert_int_equal(setversion(fx, 10, 0, 3), 0);
    assert_int_equal(read_from(fx, fx->client, 10, 2, 0, 10), -ESTALE);
    assert_int_equal(read_from(fx, fx->client, 10, 3, 4096, 5000), 0);
    assert_int_equal(proto_bytes_rep_decode(fx->rep, fx->rep_len, &rep), 0);
    assert_int_equal(rep.data.len, 5000);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(rep.data.p[i], 0);
}

static void test_chunk_setversion_handle_old_mismatch(void **state)
{
    struct fix *fx = *state;
    struct proto_chunk_truncate_req tr = {11, 1, 0};
    struct proto_chunk_ref del = {11, 0};
    struct proto_wbuf w;

    assert_int_equal(setversion(fx, 11, 0, 1), 0);
    assert_int_equal(setversion(fx, 11, 5, 6), -ESTALE);
    proto_wbuf_init(&w);
    proto_chunk_truncate_req_encode(&w, &tr);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_TRUNCATE_REQ, &w), 0);
    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &del);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_DELETE_REQ, &w), 0);
    assert_int_equal(read_from(fx, fx->client, 11, 1, 0, 10), -ENOENT);
    /* §7.6: deleting a chunk the server does not hold is ENOENT. */
    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &del);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_DELETE_REQ, &w),
                     -ENOENT);
}

static void test_chunk_dispatch_ping_and_unknown(void **state)
{
    struct fix *fx = *state;
    struct proto_ping ping = {0x1234567890ull}, back;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_ping_encode(&w, &ping);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_PING_REQ, &w), 0);
    assert_int_equal(proto_ping_decode(fx->rep, fx->rep_len, &back), 0);
    assert_int_equal(back.cookie, ping.cookie);
    proto_wbuf_init(&w);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_STATFS_REQ, &w), -ENOSYS);
    /* docs/protocol.md §10.1: STATUS is metad's alone. */
    proto_wbuf_init(&w);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_STATUS_REQ, &w), -ENOSYS);
    /* §2.5: a malformed request body is answered EPROTO and the
     * connection stays usable. */
    proto_wbuf_init(&w);
    proto_put_u32(&w, 1);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_READ_REQ, &w),
                     -EPROTO);
    proto_wbuf_init(&w);
    proto_put_u32(&w, 0);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_STATFS_REQ, &w), -ENOSYS);
}

static void test_chunk_job_submit_keeps_order(void **state)
{
    struct fix *fx = *state;
    enum { N = 20 };
    uint8_t blk[4096];

    assert_int_equal(setversion(fx, 12, 0, 1), 0);
    /* Pipeline N overlapping writes without waiting: the last one must
     * win, as the lane runs them in arrival order. */
    for (int i = 0; i < N; i++) {
        struct proto_chunk_write_req m = {
            .chunk_id = 12,
            .version = 1,
            .offset = 0,
            .data = {(const char *)blk, sizeof(blk)}};
        struct proto_wbuf w;
        memset(blk, i + 1, sizeof(blk));
        proto_wbuf_init(&w);
        proto_chunk_write_req_encode(&w, &m);
        assert_int_equal(peer_request(fx->client, PROTO_MSG_CHUNK_WRITE_REQ,
                                      w.p, w.len, 10000, on_reply, fx),
                         0);
        proto_wbuf_free(&w);
    }
    fx->nreplies = fx->nfailed = 0;
    while (fx->nreplies < N)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_int_equal(fx->nfailed, 0);
    assert_int_equal(
        chunk_store_read(fx->n[0].srv.store, 12, 1, 0, sizeof(blk), blk), 0);
    for (size_t i = 0; i < sizeof(blk); i++)
        assert_int_equal(blk[i], N);
}

/* One data length: see test_chunk_write_fwd_build_empties_chain. */
static void fwd_build_case(uint32_t len)
{
    static const char *addrs[3] = {"10.0.0.1:9422", "host-b:1", "[::1]:77"};
    struct proto_chunk_write_req m = {
        .chunk_id = 0x0102030405060708ull,
        .version = 42,
        .offset = 8192,
        .flags = PROTO_CHUNK_WRITE_SYNC,
        .nchain = 3,
    };
    struct proto_chunk_write_req d, f, want;
    static uint8_t data[128 << 10];
    struct proto_wbuf w, wf;
    const uint8_t *at, *body;
    void *out;
    size_t n;

    assert_true(len <= sizeof(data));
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    m.data = (struct proto_str){(const char *)data, len};
    for (int i = 0; i < 3; i++) {
        m.chain[i].server_id = 10u + (uint32_t)i;
        m.chain[i].addr =
            (struct proto_str){addrs[i], (uint32_t)strlen(addrs[i])};
    }
    /* Byte for byte what the encoder makes of the request with an empty
     * chain: the one body every replica gets. */
    want = m;
    want.nchain = 0;
    memset(want.chain, 0, sizeof(want.chain));
    proto_wbuf_init(&wf);
    proto_chunk_write_req_encode(&wf, &want);
    assert_int_equal(wf.err, 0);
    for (uint32_t nchain = 3;; nchain--) {
        m.nchain = nchain;
        proto_wbuf_init(&w);
        proto_chunk_write_req_encode(&w, &m);
        assert_int_equal(w.err, 0);
        assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &d), 0);
        assert_int_equal(
            chunk_write_fwd_build(w.p, w.len, &d, &out, &body, &n, &at), 0);
        assert_int_equal(n, wf.len);
        assert_memory_equal(body, wf.p, n);
        assert_int_equal(proto_chunk_write_req_decode(body, n, &f), 0);
        assert_int_equal(f.nchain, 0);
        assert_ptr_equal(at, (const uint8_t *)f.data.p);
        assert_memory_equal(at, data, len);
        if (len >= FWD_ALIGN_MIN)
            assert_int_equal((uintptr_t)at % FWD_ALIGN, 0);
        free(out);
        proto_wbuf_free(&w);
        if (nchain == 0)
            break;
    }
    proto_wbuf_free(&wf);
}

static void test_chunk_write_fwd_build_empties_chain(void **state)
{
    (void)state;
    fwd_build_case(5000);
    fwd_build_case(128 << 10); /* big enough for a page-aligned copy */
}

/* A write to A with chain [B, C]: A forwards to B and to C itself, each
 * with an empty chain.  B holds a stale version, so it refuses without
 * writing and, were the write chained, without forwarding either; C has
 * the data all the same, which only A can have sent it. */
static void test_chunk_write_handle_fans_out(void **state)
{
    struct fix *fx = *state;
    static const int bc[2] = {1, 2};
    uint8_t data[3 * 4096], got[sizeof(data)];
    struct proto_chunk_write_req m = {
        .chunk_id = 13,
        .version = 2,
        .offset = 4096,
        .data = {(const char *)data, sizeof(data)},
    };
    struct proto_wbuf w;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 11 + 3);
    create_both(fx, 13);
    assert_int_equal(setversion(fx, 13, 1, 2), 0);
    assert_int_equal(chunk_store_setversion(fx->n[2].srv.store, 13, 1, 2), 0);
    chain_of(fx, m.chain, &m.nchain, bc, 2);
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &m);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_WRITE_REQ, &w),
                     -ESTALE);
    for (int i = 0; i < NNODES; i += 2) { /* A and C */
        assert_int_equal(
            chunk_store_read(fx->n[i].srv.store, 13, 2, 4096, sizeof(got), got),
            0);
        assert_memory_equal(got, data, sizeof(data));
    }
    /* B wrote nothing. */
    assert_int_equal(
        chunk_store_read(fx->n[1].srv.store, 13, 1, 4096, sizeof(got), got), 0);
    for (size_t i = 0; i < sizeof(got); i++)
        assert_int_equal(got[i], 0);

    /* Once B caught up, the same write is OK: on all three. */
    assert_int_equal(chunk_store_setversion(fx->n[1].srv.store, 13, 1, 2), 0);
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &m);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_WRITE_REQ, &w), 0);
    for (int i = 0; i < NNODES; i++) {
        assert_int_equal(
            chunk_store_read(fx->n[i].srv.store, 13, 2, 4096, sizeof(got), got),
            0);
        assert_memory_equal(got, data, sizeof(data));
    }
}

/* CHUNK_SYNC with chain [B, C]: OK when all three sync, the error of
 * any of them otherwise. */
static void test_chunk_sync_handle_fans_out(void **state)
{
    struct fix *fx = *state;
    static const int bc[2] = {1, 2};
    struct proto_chunk_sync_req m = {.chunk_id = 14, .version = 1};
    struct proto_wbuf w;

    create_both(fx, 14);
    chain_of(fx, m.chain, &m.nchain, bc, 2);
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &m);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_SYNC_REQ, &w), 0);
    /* C misses a bump: the last of the chain fails the whole sync. */
    assert_int_equal(setversion(fx, 14, 1, 2), 0);
    assert_int_equal(chunk_store_setversion(fx->n[1].srv.store, 14, 1, 2), 0);
    m.version = 2;
    proto_wbuf_init(&w);
    proto_chunk_sync_req_encode(&w, &m);
    assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_SYNC_REQ, &w),
                     -ESTALE);
}

/* A read of a chunk whose files are open and whose blocks are cached is
 * answered on the loop thread, inside on_request; a write without SYNC
 * likewise where the file system takes nowait writes, else on the pool.
 * Either way the bytes are the same, and a write then read pipelined on
 * one chunk keeps its order. */
static void test_chunk_read_handle_inline_same_bytes(void **state)
{
    struct fix *fx = *state;
    uint8_t blk[2 * 4096];
    struct proto_bytes_rep rep;

    assert_int_equal(setversion(fx, 15, 0, 1), 0);
    memset(blk, 0x5a, sizeof(blk));
    {
        struct proto_chunk_write_req m = {
            .chunk_id = 15,
            .version = 1,
            .data = {(const char *)blk, sizeof(blk)}};
        struct proto_chunk_read_req r = {15, 1, 0, sizeof(blk), 0};
        struct proto_wbuf w;
        /* Twice: the second write finds its space reserved and may go
         * inline; the read right behind it must see it. */
        for (int i = 0; i < 2; i++) {
            memset(blk, 0x5a + i, sizeof(blk));
            proto_wbuf_init(&w);
            proto_chunk_write_req_encode(&w, &m);
            assert_int_equal(peer_request(fx->client, PROTO_MSG_CHUNK_WRITE_REQ,
                                          w.p, w.len, 10000, on_reply, fx),
                             0);
            proto_wbuf_free(&w);
        }
        proto_wbuf_init(&w);
        proto_chunk_read_req_encode(&w, &r);
        fx->nreplies = fx->nfailed = 0;
        assert_int_equal(peer_request(fx->client, PROTO_MSG_CHUNK_READ_REQ, w.p,
                                      w.len, 10000, on_reply, fx),
                         0);
        proto_wbuf_free(&w);
        while (fx->nreplies < 3)
            uv_run(&fx->loop, UV_RUN_ONCE);
        assert_int_equal(fx->nfailed, 0);
    }
    assert_int_equal(proto_bytes_rep_decode(fx->rep, fx->rep_len, &rep), 0);
    assert_int_equal(rep.data.len, sizeof(blk));
    for (size_t i = 0; i < sizeof(blk); i++)
        assert_int_equal((uint8_t)rep.data.p[i], 0x5b);
    /* Now idle and cached: this one can be answered inline. */
    assert_true(chunk_store_cached(fx->n[0].srv.store) >= 1);
    assert_int_equal(read_from(fx, fx->client, 15, 1, 4096, 4096), 0);
    assert_int_equal(proto_bytes_rep_decode(fx->rep, fx->rep_len, &rep), 0);
    assert_int_equal(rep.data.len, 4096);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal((uint8_t)rep.data.p[i], 0x5b);
}

/* The disk of one replica fails under a write with chain [B]: the client
 * gets that error, never OK, whichever replica failed; the other replica
 * has the data (a failed write may be applied on some replicas, §7.3). */
static void test_chunk_write_handle_replica_disk_errors(void **state)
{
    struct fix *fx = *state;
    uint8_t data[8192], got[8192];
    static const struct {
        int node;
        enum fault_call call;
        int err;
    } cases[] = {
        {0, FAULT_PWRITEV2, EIO},     /* A's own write */
        {0, FAULT_FALLOCATE, ENOSPC}, /* A's disk is full */
        {1, FAULT_PWRITEV2, ENOSPC},  /* B's, behind the forward */
        {1, FAULT_FDATASYNC, EIO},    /* B cannot make it durable */
    };

    memset(data, 0x3c, sizeof(data));
    create_both(fx, 16);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct node *bad = &fx->n[cases[i].node];
        const struct node *good = &fx->n[1 - cases[i].node];
        uint32_t off = (uint32_t)(i + 1) * 65536;

        fault_inject_set(&(struct fault_rule){.call = cases[i].call,
                                              .path = bad->dir,
                                              .nth = 1,
                                              .err = cases[i].err});
        assert_int_equal(
            write_chain(fx, 16, 1, off, data, sizeof(data), fx->n[1].addr),
            -cases[i].err);
        assert_int_equal(fault_inject_hits(cases[i].call), 1);
        fault_inject_clear();
        assert_int_equal(
            chunk_store_read(good->srv.store, 16, 1, off, sizeof(got), got), 0);
        assert_memory_equal(got, data, sizeof(data));
    }
    /* Both serve again once the disks are back. */
    assert_int_equal(
        write_chain(fx, 16, 1, 0, data, sizeof(data), fx->n[1].addr), 0);
}

/* CHUNK_SYNC: a replica whose fdatasync fails fails the sync. */
static void test_chunk_sync_handle_replica_sync_eio(void **state)
{
    struct fix *fx = *state;
    static const int b[1] = {1};
    struct proto_chunk_sync_req m = {.chunk_id = 17, .version = 1};
    struct proto_wbuf w;

    create_both(fx, 17);
    chain_of(fx, m.chain, &m.nchain, b, 1);
    for (int node = 0; node < 2; node++) {
        fault_inject_set(&(struct fault_rule){.call = FAULT_FDATASYNC,
                                              .path = fx->n[node].dir,
                                              .nth = 1,
                                              .err = EIO});
        proto_wbuf_init(&w);
        proto_chunk_sync_req_encode(&w, &m);
        assert_int_equal(call(fx, fx->client, PROTO_MSG_CHUNK_SYNC_REQ, &w),
                         -EIO);
        assert_int_equal(fault_inject_hits(FAULT_FDATASYNC), 1);
        fault_inject_clear();
    }
}

/* Out of memory for the forwarded body: -ENOMEM, nothing to free. */
static void test_chunk_write_fwd_build_enomem(void **state)
{
    uint8_t data[5000] = {7};
    struct proto_chunk_write_req m = {
        .chunk_id = 1,
        .version = 1,
        .data = {(const char *)data, sizeof(data)}};
    struct proto_chunk_write_req d;
    const uint8_t *body, *at;
    struct proto_wbuf w;
    void *out = NULL;
    size_t n;

    (void)state;
    proto_wbuf_init(&w);
    proto_chunk_write_req_encode(&w, &m);
    assert_int_equal(proto_chunk_write_req_decode(w.p, w.len, &d), 0);
    fault_inject_set(&(struct fault_rule){.call = FAULT_MALLOC, .nth = 1});
    assert_int_equal(
        chunk_write_fwd_build(w.p, w.len, &d, &out, &body, &n, &at), -ENOMEM);
    assert_int_equal(fault_inject_hits(FAULT_MALLOC), 1);
    fault_inject_clear();
    assert_null(out);
    proto_wbuf_free(&w);
}

int test_chunk_write(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunk_write_handle_replicates_chain),
        T(test_chunk_write_handle_downstream_version_mismatch),
        T(test_chunk_write_handle_downstream_unreachable),
        T(test_chunk_read_handle_errors),
        T(test_chunk_setversion_handle_old_mismatch),
        T(test_chunk_dispatch_ping_and_unknown),
        T(test_chunk_job_submit_keeps_order),
        T(test_chunk_write_fwd_build_empties_chain),
        T(test_chunk_write_handle_fans_out),
        T(test_chunk_sync_handle_fans_out),
        T(test_chunk_read_handle_inline_same_bytes),
        T(test_chunk_write_handle_replica_disk_errors),
        T(test_chunk_sync_handle_replica_sync_eio),
        T(test_chunk_write_fwd_build_enomem),
    };
#undef T
    return cmocka_run_group_tests_name("chunk_write", tests, NULL, NULL);
}
