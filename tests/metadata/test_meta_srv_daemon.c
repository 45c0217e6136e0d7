/* Tests for the daemon side of metad (meta_server.c, meta_srv_write.c,
 * meta_srv_report.c, meta_srv_repair.c, meta_srv_lease.c,
 * meta_srv_callback.c): a real struct meta_srv on its own
 * uv loop thread, over a database in a temp dir, listening on loopback
 * without authentication.  Its peers are fakes: storage servers that
 * register and answer CHUNK_SETVERSION as told (or fail it), and a client
 * session sending the requests a mount or tessera-nbd sends.  So every
 * answer of CHUNK_WRITE_BEGIN is driven here: a hole placed on the servers
 * that created it, on none (EIO) or with none up (ENOSPC), a live lease
 * extended, a failed replica reported and the survivors bumped, and the
 * chunk given its copy back by repair (a failed copy tried again, a copy
 * whose record the log lost or that went stale on arrival, a surplus drop
 * whose record failed, a deletion the server failed or could not get,
 * a rebalance move whose drop of the source failed, and, over a fake log
 * that commits when told, records not yet committed keeping their chunk
 * busy); the
 * image writer lease granted, refused, released and handed over; and a
 * callback promise that outlives its lease while the session holds the
 * file open (docs/caching.md §3), metad running with --promise-ms 300;
 * a leader that loses its leadership and gains it again rebuilding
 * its in-memory state by the rules of a restart (meta_srv_lead()); and
 * inode numbers reserved to a session and used by its MKNOD.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "meta_op.h"
#include "meta_srv.h"
#include "rpc.h"
#include "test_meta_srv_util.h"

#define NSRV 3

/* A fake storage server: its control channel to metad. */
struct fsrv {
    struct rpc_client *rpc;
    uint32_t id;
    pthread_mutex_t mu;
    uint16_t fail_op;      /* the next requests @fail_op fail */
    int fail;              /* with this, */
    int fail_count;        /* this many times */
    unsigned seen[0x1000]; /* requests by opcode & 0xfff */
    uint16_t hold_op;      /* the next request @hold_op waits for */
    uint64_t held;         /* fsrv_release(); its request id, or 0 */
};

/* The log the daemon proposes to, in the tests that give it one
 * (md_setup() with a prestate): it commits each record at once, as the
 * local log does, except that records of @fail_op fail (meta_log_fail(),
 * as a log that lost them) with @fail, @fail_count times (-1: until
 * told), and that records of @hold_op wait on @held, in order, until
 * flog_release() commits them (a replicated log's commit that takes its
 * time).  Under @mu: the loop thread appends, the test's thread reads and
 * arms. */
struct flog {
    pthread_mutex_t mu;
    uint16_t fail_op, hold_op;
    int fail, fail_count;
    struct meta_propose *held, **held_tail;
    unsigned adds, drops; /* REPLICA_ADD and _DROP records appended */
    unsigned failed;      /* records failed */
};

struct md {
    uv_loop_t loop;
    uv_async_t stop;
    uv_async_t call; /* on_loop(): run call_fn on the loop thread */
    void (*call_fn)(struct md *);
    bool call_done;
    pthread_cond_t call_cv;
    struct meta_db *db;
    struct meta_srv *srv;
    pthread_t thread;
    char dir[64];
    char addr[256];
    struct fsrv fs[NSRV];
    struct rpc_client *cl, *cl2; /* two client sessions */
    uint64_t ino;                /* file "f" in the root */
    pthread_mutex_t mu;
    uint64_t broken[8]; /* inodes of the breaks cl2 got, in order */
    unsigned nbroken;
    struct meta_log log; /* with a prestate: the daemon's log, over flog */
    struct flog flog;
};

static void flog_release(struct md *m);

static void on_stop(uv_async_t *a)
{
    struct md *m = a->data;
    if (m->log.ops)
        flog_release(m); /* every proposer gets its callback */
    meta_srv_stop(m->srv);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&m->call, NULL);
}

static void on_call(uv_async_t *a)
{
    struct md *m = a->data;

    m->call_fn(m);
    pthread_mutex_lock(&m->mu);
    m->call_done = true;
    pthread_cond_broadcast(&m->call_cv);
    pthread_mutex_unlock(&m->mu);
}

/* Run @fn(@m) on the loop thread, where the daemon's state lives. */
static void on_loop(struct md *m, void (*fn)(struct md *))
{
    pthread_mutex_lock(&m->mu);
    m->call_fn = fn;
    m->call_done = false;
    uv_async_send(&m->call);
    while (!m->call_done)
        pthread_cond_wait(&m->call_cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
}

static void *loop_main(void *arg)
{
    struct md *m = arg;
    uv_run(&m->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void fsrv_on_request(struct rpc_client *c, uint16_t opcode,
                            uint64_t req_id, const uint8_t *payload, size_t len,
                            void *arg)
{
    struct fsrv *s = arg;
    int rc = 0;

    (void)payload, (void)len;
    pthread_mutex_lock(&s->mu);
    s->seen[opcode & 0xfff]++;
    if (opcode == s->fail_op && s->fail_count > 0) {
        s->fail_count--;
        rc = s->fail;
    }
    bool hold = opcode == s->hold_op && !s->held;
    if (hold)
        s->held = req_id;
    pthread_mutex_unlock(&s->mu);
    if (!hold)
        rpc_reply_send(c, req_id, (uint16_t)(opcode + 1), rc, NULL, 0);
}

/* Hold the answer to the next request @opcode that @s gets. */
static void fsrv_hold(struct fsrv *s, uint16_t opcode)
{
    pthread_mutex_lock(&s->mu);
    s->hold_op = opcode;
    s->held = 0;
    pthread_mutex_unlock(&s->mu);
}

/* Whether @s holds an answer. */
static bool fsrv_holds(struct fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    bool held = s->held != 0;
    pthread_mutex_unlock(&s->mu);
    return held;
}

/* Send the answer @s held: success. */
static void fsrv_release(struct fsrv *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t id = s->held;
    uint16_t op = s->hold_op;
    s->hold_op = 0;
    pthread_mutex_unlock(&s->mu);
    assert_true(id != 0);
    rpc_reply_send(s->rpc, id, (uint16_t)(op + 1), 0, NULL, 0);
}

/* ---- The fake log ------------------------------------------------------- */

static int flog_append(struct meta_log *log, struct meta_propose *req)
{
    struct flog *fl = log->impl;
    struct meta_propose *next;

    for (; req; req = next) {
        struct meta_op op;
        int fail = 0;

        next = req->next;
        req->next = NULL;
        assert_int_equal(
            meta_op_record_decode(req->record.p, req->record.len, &op), 0);
        pthread_mutex_lock(&fl->mu);
        fl->adds += op.opcode == META_OP_REPLICA_ADD;
        fl->drops += op.opcode == META_OP_REPLICA_DROP;
        if (op.opcode == fl->fail_op && fl->fail_count != 0) {
            fl->fail_count -= fl->fail_count > 0;
            fl->failed++;
            fail = fl->fail;
        }
        bool hold = !fail && op.opcode == fl->hold_op;
        if (hold) {
            *fl->held_tail = req;
            fl->held_tail = &req->next;
        }
        pthread_mutex_unlock(&fl->mu);
        if (fail)
            meta_log_fail(req, fail);
        else if (!hold)
            meta_log_commit(req);
    }
    return 0;
}

static const struct meta_log_ops flog_ops = {.append = flog_append};

/* Records of @op fail with @err, @count times (-1: until flog_fail(m, 0,
 * 0, 0)). */
static void flog_fail(struct md *m, uint16_t op, int err, int count)
{
    pthread_mutex_lock(&m->flog.mu);
    m->flog.fail_op = op;
    m->flog.fail = err;
    m->flog.fail_count = count;
    pthread_mutex_unlock(&m->flog.mu);
}

/* Records of @op wait until flog_release(). */
static void flog_hold(struct md *m, uint16_t op)
{
    pthread_mutex_lock(&m->flog.mu);
    m->flog.hold_op = op;
    pthread_mutex_unlock(&m->flog.mu);
}

/* On the loop thread: commit the records held, in order, and hold no
 * more. */
static void flog_release(struct md *m)
{
    pthread_mutex_lock(&m->flog.mu);
    struct meta_propose *req = m->flog.held, *next;
    m->flog.held = NULL;
    m->flog.held_tail = &m->flog.held;
    m->flog.hold_op = 0;
    pthread_mutex_unlock(&m->flog.mu);
    for (; req; req = next) {
        next = req->next;
        req->next = NULL;
        meta_log_commit(req);
    }
}

/* What the fake log counted: *@adds and *@drops records appended, and
 * the number failed. */
static unsigned flog_counts(struct md *m, unsigned *adds, unsigned *drops)
{
    pthread_mutex_lock(&m->flog.mu);
    unsigned failed = m->flog.failed;
    if (adds)
        *adds = m->flog.adds;
    if (drops)
        *drops = m->flog.drops;
    pthread_mutex_unlock(&m->flog.mu);
    return failed;
}

/* cl2 answers callback breaks and notes their inodes. */
static void client_on_request(struct rpc_client *c, uint16_t opcode,
                              uint64_t req_id, const uint8_t *payload,
                              size_t len, void *arg)
{
    struct md *m = arg;
    struct proto_callback_break_req q;
    int rc = proto_callback_break_req_decode(payload, len, &q);

    if (opcode == PROTO_MSG_CALLBACK_BREAK_REQ && rc == 0) {
        pthread_mutex_lock(&m->mu);
        if (m->nbroken < 8)
            m->broken[m->nbroken++] = q.ino;
        pthread_mutex_unlock(&m->mu);
    }
    rpc_reply_send(c, req_id, (uint16_t)(opcode + 1), rc, NULL, 0);
}

/* The next @count requests @opcode to @s fail with @err. */
static void fsrv_fail(struct fsrv *s, uint16_t opcode, int err, int count)
{
    pthread_mutex_lock(&s->mu);
    s->fail_op = opcode;
    s->fail = err;
    s->fail_count = count;
    pthread_mutex_unlock(&s->mu);
}

static unsigned fsrv_seen(struct fsrv *s, uint16_t opcode)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->seen[opcode & 0xfff];
    pthread_mutex_unlock(&s->mu);
    return n;
}

static struct rpc_client *connect_as(struct md *m, uint8_t role, void *arg)
{
    struct rpc_opts o = {
        .role = role, .name = "test", .call_timeout_ms = 10000, .arg = arg};
    if (arg)
        o.on_request =
            role == PROTO_ROLE_CHUNKD ? fsrv_on_request : client_on_request;
    struct rpc_client *c;
    assert_int_equal(rpc_client_open(m->addr, &o, &c), 0);
    return c;
}

/* Storage server @i registers (UP from then on). */
static void fsrv_register(struct md *m, int i)
{
    struct fsrv *s = &m->fs[i];
    char addr[32];
    struct proto_server_register_req q = {.capacity = 1ull << 40,
                                          .free = (1ull << 40) - i};
    struct proto_server_register_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;

    s->rpc = connect_as(m, PROTO_ROLE_CHUNKD, s);
    memset(q.uuid, 0x10 + i, sizeof(q.uuid));
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", 9000 + i);
    q.addr = (struct proto_str){addr, (uint32_t)strlen(addr)};
    proto_wbuf_init(&w);
    proto_server_register_req_encode(&w, &q);
    assert_int_equal(
        rpc_call_msg(s->rpc, PROTO_MSG_SERVER_REGISTER_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    s->id = out.server_id;
    rpc_reply_free(&rep);
}

static uint64_t session_open(struct md *m, struct rpc_client *c)
{
    struct proto_session_open_req q = {
        .lease_ms = 30000, .client_name = {"t", 1}, .host = {"h", 1}};
    struct proto_session_open_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;

    (void)m;
    proto_wbuf_init(&w);
    proto_session_open_req_encode(&w, &q);
    assert_int_equal(
        rpc_call_msg(c, PROTO_MSG_SESSION_OPEN_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    rpc_reply_free(&rep);
    return out.session_id;
}

static uint64_t file_create(struct rpc_client *c, const char *name)
{
    struct proto_mknod_req q = {.parent = 1,
                                .mode = S_IFREG | 0644,
                                .name = {name, (uint32_t)strlen(name)}};
    struct proto_entry_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    assert_int_equal(rpc_call_msg(c, PROTO_MSG_MKNOD_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    rpc_reply_free(&rep);
    return out.attr.ino;
}

static void lead(struct md *m)
{
    meta_srv_lead(m->srv, true);
}

/* A daemon over a fresh database; with a prestate (any but &with_pool),
 * over the fake log, leading; with &with_pool, keeping two chunks
 * created ahead. */
static int with_pool; /* this prestate: no fake log, --chunk-pool 2 */

static int md_setup(void **state)
{
    struct md *m = calloc(1, sizeof(*m));
    bool pool = *state == &with_pool;
    bool with_log = *state != NULL && !pool;
    char path[128];

    assert_non_null(m);
    /* metad runs in this process: like tessera-metad (meta_main.c) it
     * must outlive a peer that closed first, as the fake servers do at
     * teardown while it may still be sending them deletes and copies. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(m->dir, sizeof(m->dir), "/tmp/test-metad.XXXXXX");
    assert_non_null(mkdtemp(m->dir));
    snprintf(path, sizeof(path), "%s/meta.db", m->dir);
    assert_int_equal(meta_db_open(path, &m->db), 0);
    assert_int_equal(uv_loop_init(&m->loop), 0);
    struct meta_srv_opts o = {.data_dir = m->dir,
                              .listen = "127.0.0.1:0",
                              .promise_ms = 300,
                              .no_auth = true,
                              .chunk_pool = pool ? 2 : 0};
    if (with_log) {
        pthread_mutex_init(&m->flog.mu, NULL);
        m->flog.held_tail = &m->flog.held;
        meta_log_init(&m->log, &flog_ops, m->db, &m->flog);
        o.log = &m->log;
    }
    assert_int_equal(meta_srv_start(&m->loop, m->db, &o, &m->srv), 0);
    assert_int_equal(meta_srv_listen(m->srv), 0);
    snprintf(m->addr, sizeof(m->addr), "%s", m->srv->listen);
    uv_async_init(&m->loop, &m->stop, on_stop);
    m->stop.data = m;
    uv_async_init(&m->loop, &m->call, on_call);
    m->call.data = m;
    pthread_cond_init(&m->call_cv, NULL);
    for (int i = 0; i < NSRV; i++)
        pthread_mutex_init(&m->fs[i].mu, NULL);
    assert_int_equal(pthread_create(&m->thread, NULL, loop_main, m), 0);
    pthread_mutex_init(&m->mu, NULL);
    if (with_log)
        on_loop(m, lead);
    m->cl = connect_as(m, PROTO_ROLE_CLIENT, NULL);
    m->cl2 = connect_as(m, PROTO_ROLE_CLIENT, m);
    session_open(m, m->cl);
    session_open(m, m->cl2);
    m->ino = file_create(m->cl, "f");
    *state = m;
    return 0;
}

static int md_teardown(void **state)
{
    struct md *m = *state;
    char cmd[128];

    rpc_client_close(m->cl);
    rpc_client_close(m->cl2);
    for (int i = 0; i < NSRV; i++) {
        rpc_client_close(m->fs[i].rpc);
        pthread_mutex_destroy(&m->fs[i].mu);
    }
    uv_async_send(&m->stop);
    pthread_join(m->thread, NULL);
    meta_srv_free(m->srv);
    uv_loop_close(&m->loop);
    meta_db_close(m->db);
    pthread_mutex_destroy(&m->mu);
    if (m->log.ops)
        pthread_mutex_destroy(&m->flog.mu);
    pthread_cond_destroy(&m->call_cv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", m->dir);
    assert_int_equal(system(cmd), 0);
    free(m);
    return 0;
}

/* The chain CHUNK_WRITE_BEGIN of slot 0 gets: 0 and @loc, or -errno. */
static int write_begin_at(struct md *m, uint64_t index,
                          struct proto_chunk_loc *loc)
{
    struct proto_chunk_write_begin_req q = {.ino = m->ino, .index = index};
    struct proto_chunk_locate_rep out;
    struct proto_chunk_loc_iter it;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_chunk_write_begin_req_encode(&w, &q);
    int rc =
        rpc_call_msg(m->cl, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    proto_chunk_loc_iter_init(&it, &out);
    assert_true(proto_chunk_loc_next(&it, loc));
    rpc_reply_free(&rep);
    return 0;
}

static int write_begin(struct md *m, struct proto_chunk_loc *loc)
{
    return write_begin_at(m, 0, loc);
}

static bool has_server(const struct proto_chunk_loc *loc, uint32_t id)
{
    for (uint32_t i = 0; i < loc->nreplicas; i++)
        if (loc->replicas[i].server_id == id)
            return true;
    return false;
}

static void register_all(struct md *m)
{
    for (int i = 0; i < NSRV; i++)
        fsrv_register(m, i);
}

/* ---- CHUNK_WRITE_BEGIN --------------------------------------------------- */

static void test_meta_srv_write_begin_hole_no_server(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;

    assert_int_equal(write_begin(m, &loc), -ENOSPC);
}

static void test_meta_srv_write_begin_hole_placed(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc, again;

    register_all(m);
    assert_int_equal(write_begin(m, &loc), 0);
    assert_int_equal(loc.version, 1);
    assert_int_equal(loc.nreplicas, NSRV);
    for (int i = 0; i < NSRV; i++) {
        assert_int_equal(fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_SETVERSION_REQ),
                         1);
        assert_true(has_server(&loc, m->fs[i].id));
    }
    /* The lease is live: extended, nothing asked of the servers. */
    assert_int_equal(write_begin(m, &again), 0);
    assert_int_equal(again.chunk_id, loc.chunk_id);
    assert_int_equal(again.version, 1);
    for (int i = 0; i < NSRV; i++)
        assert_int_equal(fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_SETVERSION_REQ),
                         1);
}

/* A server that fails to create the chunk is left out of its replicas. */
static void test_meta_srv_write_begin_hole_one_refuses(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;

    register_all(m);
    fsrv_fail(&m->fs[1], PROTO_MSG_CHUNK_SETVERSION_REQ, -ENOSPC, 1);
    assert_int_equal(write_begin(m, &loc), 0);
    assert_int_equal(loc.nreplicas, NSRV - 1);
    assert_false(has_server(&loc, m->fs[1].id));
}

static void test_meta_srv_write_begin_hole_all_refuse(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;

    register_all(m);
    for (int i = 0; i < NSRV; i++)
        fsrv_fail(&m->fs[i], PROTO_MSG_CHUNK_SETVERSION_REQ, -EIO, 1);
    assert_int_equal(write_begin(m, &loc), -EIO);
    /* Nothing was recorded: the next attempt places the chunk anew. */
    assert_int_equal(write_begin(m, &loc), 0);
    assert_int_equal(loc.nreplicas, NSRV);
}

static int report(struct md *m, const struct proto_chunk_loc *loc,
                  uint32_t server_id)
{
    struct proto_chunk_report_req q = {.server_id = server_id,
                                       .chunk_id = loc->chunk_id,
                                       .version = loc->version,
                                       .reason = PROTO_REPORT_WRITE};
    struct proto_empty e;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_chunk_report_req_encode(&w, &q);
    int rc = rpc_call_msg(m->cl, PROTO_MSG_CHUNK_REPORT_REQ, &w, &rep, &e);
    proto_wbuf_free(&w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}

/* docs/protocol.md §11.8: a replica a write failed on is dropped and the
 * lease ended, so the next WRITE_BEGIN bumps the survivors; one that
 * misses the bump is left out too. */
static void test_meta_srv_write_report_then_bump(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc, next;

    register_all(m);
    assert_int_equal(write_begin(m, &loc), 0);
    /* Repair must not give the chunk its third copy back meanwhile. */
    fsrv_fail(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ, -EIO, 1000);
    assert_int_equal(report(m, &loc, m->fs[0].id), 0);
    fsrv_fail(&m->fs[2], PROTO_MSG_CHUNK_SETVERSION_REQ, -EIO, 1);
    assert_int_equal(write_begin(m, &next), 0);
    assert_int_equal(next.chunk_id, loc.chunk_id);
    assert_true(next.version > loc.version);
    assert_int_equal(next.nreplicas, 1);
    assert_true(has_server(&next, m->fs[1].id));
    /* A report of an old version changes nothing more. */
    assert_int_equal(report(m, &loc, m->fs[1].id), 0);
    struct proto_chunk_loc same;
    assert_int_equal(write_begin(m, &same), 0);
    assert_int_equal(same.version, next.version);
    assert_int_equal(same.nreplicas, 1);
}

/* Send @opcode with @w (freed here) on @c, expecting an attr reply. */
static void call_attr(struct rpc_client *c, uint16_t opcode,
                      struct proto_wbuf *w)
{
    struct proto_attr_rep out;
    struct rpc_reply rep;
    assert_int_equal(rpc_call_msg(c, opcode, w, &rep, &out), 0);
    proto_wbuf_free(w);
    rpc_reply_free(&rep);
}

/* CHUNK_WRITE_END of slot 0 (@loc's chunk): the file is @size long. */
static void write_end_at(struct md *m, uint64_t index,
                         const struct proto_chunk_loc *loc, uint64_t size)
{
    struct proto_chunk_write_end_req q = {
        .ino = m->ino, .index = index, .chunk_id = loc->chunk_id, .size = size};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_end_req_encode(&w, &q);
    call_attr(m->cl, PROTO_MSG_CHUNK_WRITE_END_REQ, &w);
}

static void write_end(struct md *m, const struct proto_chunk_loc *loc,
                      uint64_t size)
{
    write_end_at(m, 0, loc, size);
}

/* The replicas CHUNK_LOCATE lists for slot 0; their servers into @ids
 * (PROTO_MAX_REPLICAS) unless NULL. */
static uint32_t locate_ids(struct md *m, uint32_t *ids)
{
    struct proto_chunk_locate_req q = {.ino = m->ino, .count = 1};
    struct proto_chunk_locate_rep out;
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc = {0};
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_chunk_locate_req_encode(&w, &q);
    assert_int_equal(
        rpc_call_msg(m->cl, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    proto_chunk_loc_iter_init(&it, &out);
    if (!proto_chunk_loc_next(&it, &loc))
        loc.nreplicas = 0;
    for (uint32_t i = 0; ids && i < loc.nreplicas; i++)
        ids[i] = loc.replicas[i].server_id;
    rpc_reply_free(&rep);
    return loc.nreplicas;
}

static uint32_t locate_n(struct md *m)
{
    return locate_ids(m, NULL);
}

/* A chunk below its goal gets a copy (meta_srv_repair.c); a copy that
 * fails is tried again by a later scan. */
static void test_meta_srv_repair_copy_retried(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;

    register_all(m);
    assert_int_equal(write_begin(m, &loc), 0);
    write_end(m, &loc, 4096);
    fsrv_fail(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ, -EIO, 1);
    assert_int_equal(report(m, &loc, m->fs[0].id), 0);
    assert_int_equal(locate_n(m), NSRV - 1);
    uint32_t n = 0;
    for (int i = 0; i < 100 && (n = locate_n(m)) < NSRV; i++)
        usleep(50 * 1000);
    assert_int_equal(n, NSRV);
    assert_int_equal(fsrv_seen(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ), 2);
    assert_int_equal(fsrv_seen(&m->fs[1], PROTO_MSG_CHUNK_REPLICATE_REQ), 0);
}

/* What a test asks of the daemon's state on the loop thread. */
static struct {
    uint64_t chunk_id;
    uint32_t server_id;
    int gc_has;     /* meta_gc_has() of the two above */
    uint64_t scans; /* repair scans so far */
} probe;

static void probe_run(struct md *m)
{
    probe.gc_has = meta_gc_has(m->db, probe.chunk_id, probe.server_id);
    probe.scans = m->srv->repair.scans;
}

/* Whether the gc list holds @chunk_id's replica on @server_id. */
static bool gc_lists(struct md *m, uint64_t chunk_id, uint32_t server_id)
{
    probe.chunk_id = chunk_id;
    probe.server_id = server_id;
    on_loop(m, probe_run);
    assert_true(probe.gc_has >= 0);
    return probe.gc_has == 1;
}

/* Wait until two more repair scans have run. */
static void scans_wait(struct md *m)
{
    on_loop(m, probe_run);
    uint64_t until = probe.scans + 2;
    for (int i = 0; i < 200 && probe.scans < until; i++) {
        usleep(50 * 1000);
        on_loop(m, probe_run);
    }
    assert_true(probe.scans >= until);
}

/* Wait (a bounded while) until slot 0 has @n replicas. */
static void replicas_wait(struct md *m, uint32_t n)
{
    uint32_t got = 0;

    for (int i = 0; i < 200 && (got = locate_n(m)) != n; i++)
        usleep(50 * 1000);
    assert_int_equal(got, n);
}

/* Set the goal of the file to @goal. */
static void goal_set(struct md *m, uint32_t goal)
{
    struct proto_goal_set_req q = {.ino = m->ino, .goal = goal};
    struct proto_goal_set_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_goal_set_req_encode(&w, &q);
    assert_int_equal(
        rpc_call_msg(m->cl, PROTO_MSG_GOAL_SET_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    rpc_reply_free(&rep);
}

/* The write lease on probe.chunk_id runs out (as after 60 s unused). */
static void lease_expire(struct md *m)
{
    meta_srv_write_lease_end(m->srv, probe.chunk_id);
}

/* Slot 0 written, on every server, its write lease over; returns its
 * location. */
static void chunk_on_all(struct md *m, struct proto_chunk_loc *loc)
{
    register_all(m);
    assert_int_equal(write_begin(m, loc), 0);
    write_end(m, loc, 4096);
    probe.chunk_id = loc->chunk_id;
    on_loop(m, lease_expire);
    assert_int_equal(locate_n(m), NSRV);
}

/* The server of @m's fakes that @ids (@n of them) leaves out, or -1. */
static int fsrv_missing(struct md *m, const uint32_t *ids, uint32_t n)
{
    int out = -1;

    for (int i = 0; i < NSRV; i++) {
        bool in = false;
        for (uint32_t k = 0; k < n; k++)
            in |= ids[k] == m->fs[i].id;
        if (!in)
            out = i;
    }
    return out;
}

/* Wait (a bounded while) until fake server @i was sent @n CHUNK_DELETEs. */
static void deletes_wait(struct md *m, int i, unsigned n)
{
    for (int k = 0;
         k < 200 && fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_DELETE_REQ) < n; k++)
        usleep(50 * 1000);
    assert_true(fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_DELETE_REQ) >= n);
}

/* A copy made but not recorded (the log lost its META_OP_REPLICA_ADD):
 * it does not count, the chunk keeps the replicas it had, and a later
 * scan copies and records it again. */
static void test_meta_srv_repair_record_failed_retried(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;
    unsigned adds;

    chunk_on_all(m, &loc);
    flog_fail(m, META_OP_REPLICA_ADD, -EIO, -1);
    assert_int_equal(report(m, &loc, m->fs[0].id), 0);
    for (int i = 0; i < 200 && flog_counts(m, NULL, NULL) < 2; i++)
        usleep(50 * 1000);
    /* Copied twice, recorded neither time: fs[0] is no replica. */
    assert_true(flog_counts(m, &adds, NULL) >= 2);
    assert_true(fsrv_seen(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ) >= 2);
    assert_int_equal(locate_n(m), NSRV - 1);
    flog_fail(m, 0, 0, 0);
    replicas_wait(m, NSRV);
    assert_int_equal(fsrv_seen(&m->fs[1], PROTO_MSG_CHUNK_REPLICATE_REQ), 0);
    assert_int_equal(fsrv_seen(&m->fs[2], PROTO_MSG_CHUNK_REPLICATE_REQ), 0);
}

/* A copy that finishes after the chunk moved on (a WRITE_BEGIN bumped it
 * meanwhile) is recorded as garbage: the chunk keeps its replicas, the
 * stale copy is deleted, and a fresh copy at the new version follows. */
static void test_meta_srv_repair_copy_stale_goes_to_gc(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc, again;

    chunk_on_all(m, &loc);
    fsrv_hold(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ);
    assert_int_equal(report(m, &loc, m->fs[0].id), 0);
    for (int i = 0; i < 200 && !fsrv_holds(&m->fs[0]); i++)
        usleep(50 * 1000);
    assert_true(fsrv_holds(&m->fs[0]));
    assert_int_equal(write_begin(m, &again), 0);
    assert_true(again.version > loc.version);
    assert_int_equal(again.nreplicas, NSRV - 1);
    fsrv_release(&m->fs[0]);
    deletes_wait(m, 0, 1);
    assert_true(locate_n(m) >= NSRV - 1);
    write_end(m, &again, 4096);
    replicas_wait(m, NSRV);
    assert_int_equal(fsrv_seen(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ), 2);
}

/* Goal lowered to @goal: wait until slot 0 has that many replicas, and
 * return the fake server whose replica went. */
static int dropped_wait(struct md *m, uint32_t goal, uint32_t *ids)
{
    replicas_wait(m, goal);
    int gone = fsrv_missing(m, ids, locate_ids(m, ids));
    assert_true(gone >= 0);
    return gone;
}

/* A surplus copy's META_OP_REPLICA_DROP that fails (lost by the log, or
 * refused as the chunk moved on) changes nothing: every replica stays
 * listed, nothing is deleted, and a later scan drops it. */
static void test_meta_srv_repair_drop_record_failed_retried(void **state)
{
    struct md *m = *state;
    const int errs[] = {-EIO, -ESTALE};
    struct proto_chunk_loc loc;
    uint32_t ids[PROTO_MAX_REPLICAS];
    unsigned deleted = 0;

    chunk_on_all(m, &loc);
    for (uint32_t k = 0; k < 2; k++) {
        flog_fail(m, META_OP_REPLICA_DROP, errs[k], -1);
        goal_set(m, NSRV - 1 - k);
        unsigned failed = flog_counts(m, NULL, NULL);
        for (int i = 0; i < 200 && flog_counts(m, NULL, NULL) < failed + 2; i++)
            usleep(50 * 1000);
        /* Tried again, failed again, and nothing changed. */
        assert_true(flog_counts(m, NULL, NULL) >= failed + 2);
        assert_int_equal(locate_n(m), NSRV - k);
        unsigned seen = 0;
        for (int i = 0; i < NSRV; i++)
            seen += fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_DELETE_REQ);
        assert_int_equal(seen, deleted);
        flog_fail(m, 0, 0, 0);
        int gone = dropped_wait(m, NSRV - 1 - k, ids);
        deletes_wait(m, gone, 1);
        deleted++;
    }
}

/* A dropped replica whose deletion fails on its server, or whose server
 * is down, stays on the gc list, is not a replica again, and is deleted
 * once the server can. */
static void test_meta_srv_repair_gc_delete_failed_kept(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;
    uint32_t ids[PROTO_MAX_REPLICAS];

    chunk_on_all(m, &loc);
    for (int i = 0; i < NSRV; i++)
        fsrv_fail(&m->fs[i], PROTO_MSG_CHUNK_DELETE_REQ, -EIO, 1000);
    goal_set(m, NSRV - 1);
    int gone = dropped_wait(m, NSRV - 1, ids);
    deletes_wait(m, gone, 2);
    assert_true(gc_lists(m, loc.chunk_id, m->fs[gone].id));
    assert_int_equal(locate_n(m), NSRV - 1);
    /* Its server goes away: nothing is sent, the entry stays. */
    rpc_client_close(m->fs[gone].rpc);
    m->fs[gone].rpc = NULL;
    fsrv_fail(&m->fs[gone], PROTO_MSG_CHUNK_DELETE_REQ, 0, 0);
    unsigned before = fsrv_seen(&m->fs[gone], PROTO_MSG_CHUNK_DELETE_REQ);
    scans_wait(m);
    assert_int_equal(fsrv_seen(&m->fs[gone], PROTO_MSG_CHUNK_DELETE_REQ),
                     before);
    assert_true(gc_lists(m, loc.chunk_id, m->fs[gone].id));
    /* Back: the deletion goes through and the entry goes. */
    fsrv_register(m, gone);
    deletes_wait(m, gone, before + 1);
    for (int i = 0; i < 200 && gc_lists(m, loc.chunk_id, m->fs[gone].id); i++)
        usleep(50 * 1000);
    assert_false(gc_lists(m, loc.chunk_id, m->fs[gone].id));
    assert_int_equal(locate_n(m), NSRV - 1);
}

/* A copy whose META_OP_REPLICA_ADD the log has not committed yet keeps
 * its chunk busy: the scans meanwhile start no second copy of it. */
static void test_meta_srv_repair_pending_add_not_copied_again(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;
    unsigned adds = 0;

    chunk_on_all(m, &loc);
    flog_hold(m, META_OP_REPLICA_ADD);
    assert_int_equal(report(m, &loc, m->fs[0].id), 0);
    for (int i = 0; i < 200 && adds == 0; i++) {
        usleep(50 * 1000);
        flog_counts(m, &adds, NULL);
    }
    assert_int_equal(adds, 1);
    scans_wait(m);
    flog_counts(m, &adds, NULL);
    assert_int_equal(adds, 1);
    assert_int_equal(fsrv_seen(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ), 1);
    on_loop(m, flog_release);
    replicas_wait(m, NSRV);
    assert_int_equal(fsrv_seen(&m->fs[0], PROTO_MSG_CHUNK_REPLICATE_REQ), 1);
}

/* Surplus drops the log has not committed yet keep their chunk busy: the
 * scans meanwhile propose no more, so the chunk never goes below its
 * goal once they commit. */
static void test_meta_srv_repair_pending_drop_not_repeated(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc loc;
    unsigned drops = 0;

    chunk_on_all(m, &loc);
    flog_hold(m, META_OP_REPLICA_DROP);
    goal_set(m, 1);
    for (int i = 0; i < 200 && drops < NSRV - 1; i++) {
        usleep(50 * 1000);
        flog_counts(m, NULL, &drops);
    }
    assert_int_equal(drops, NSRV - 1);
    scans_wait(m);
    flog_counts(m, NULL, &drops);
    assert_int_equal(drops, NSRV - 1);
    assert_int_equal(locate_n(m), NSRV);
    on_loop(m, flog_release);
    replicas_wait(m, 1);
    scans_wait(m);
    assert_int_equal(locate_n(m), 1);
}

static void rebalance_start(struct md *m)
{
    m->srv->repair.rebalance = true;
}

/* Two full chunks of goal 2 on fs[0] and fs[1], then fs[2] up and empty,
 * and a rebalance asked for: slot 0's chunk moves from fs[0] to fs[2]
 * (copy, REPLICA_ADD, then fs[0]'s REPLICA_DROP). */
static void move_start(struct md *m)
{
    struct proto_chunk_loc loc;

    fsrv_register(m, 0);
    fsrv_register(m, 1);
    goal_set(m, 2);
    for (uint64_t i = 0; i < 2; i++) {
        assert_int_equal(write_begin_at(m, i, &loc), 0);
        write_end_at(m, i, &loc, (i + 1) * PROTO_CHUNK_SIZE);
        probe.chunk_id = loc.chunk_id;
        on_loop(m, lease_expire);
    }
    fsrv_register(m, 2);
    on_loop(m, rebalance_start);
}

/* Slot 0 ends on fs[1] and fs[2], the move done, and stays so. */
static void moved_wait(struct md *m)
{
    uint32_t ids[PROTO_MAX_REPLICAS];

    for (int i = 0; i < 200 && fsrv_missing(m, ids, locate_ids(m, ids)) != 0;
         i++)
        usleep(50 * 1000);
    assert_int_equal(locate_ids(m, ids), 2);
    assert_int_equal(fsrv_missing(m, ids, 2), 0);
    scans_wait(m);
    assert_int_equal(locate_n(m), 2);
    assert_int_equal(fsrv_seen(&m->fs[2], PROTO_MSG_CHUNK_REPLICATE_REQ), 1);
}

/* A move whose drop of the source the log has not committed yet keeps
 * its chunk busy: with one copy over its goal meanwhile, no scan drops
 * another beside it. */
static void test_meta_srv_repair_move_drop_pending(void **state)
{
    struct md *m = *state;
    unsigned drops = 0;

    flog_hold(m, META_OP_REPLICA_DROP);
    move_start(m);
    for (int i = 0; i < 200 && drops == 0; i++) {
        usleep(50 * 1000);
        flog_counts(m, NULL, &drops);
    }
    assert_int_equal(drops, 1);
    assert_int_equal(locate_n(m), 3);
    scans_wait(m);
    flog_counts(m, NULL, &drops);
    assert_int_equal(drops, 1);
    on_loop(m, flog_release);
    moved_wait(m);
}

/* A move whose drop of the source fails leaves the chunk one copy over
 * its goal, never under: a later scan drops the surplus. */
static void test_meta_srv_repair_move_drop_failed(void **state)
{
    struct md *m = *state;

    flog_fail(m, META_OP_REPLICA_DROP, -EIO, 1);
    move_start(m);
    for (int i = 0; i < 200 && flog_counts(m, NULL, NULL) == 0; i++)
        usleep(50 * 1000);
    assert_int_equal(flog_counts(m, NULL, NULL), 1);
    assert_true(locate_n(m) >= 2);
    moved_wait(m);
}

/* ---- IMAGE_LEASE --------------------------------------------------------- */

static int lease(struct rpc_client *c, uint32_t op, uint64_t ino,
                 struct proto_image_lease_rep *out, struct rpc_reply *rep)
{
    struct proto_image_lease_req q = {.op = op, .ino = ino};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &q);
    int rc = rpc_call_msg(c, PROTO_MSG_IMAGE_LEASE_REQ, &w, rep, out);
    proto_wbuf_free(&w);
    return rc;
}

static void test_meta_srv_image_lease_one_writer(void **state)
{
    struct md *m = *state;
    struct proto_image_lease_rep out;
    struct rpc_reply rep;

    assert_int_equal(lease(m->cl, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    rpc_reply_free(&rep);
    assert_int_equal(lease(m->cl2, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_BUSY);
    assert_int_equal(out.holder_name.len, 1); /* "t", the holder's name */
    rpc_reply_free(&rep);
    /* TAKE without an armed hand-over is refused. */
    assert_int_equal(lease(m->cl2, PROTO_LEASE_TAKE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_BUSY);
    rpc_reply_free(&rep);
    assert_int_equal(lease(m->cl, PROTO_LEASE_RELEASE, m->ino, &out, &rep), 0);
    rpc_reply_free(&rep);
    assert_int_equal(lease(m->cl2, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    rpc_reply_free(&rep);
}

/* docs/protocol.md §15: a live-migration hand-over.  The holder polls
 * with IMAGE_LEASE_WAIT; an operator arms a hand-over; the destination
 * opens as the standby and its TAKE waits; the holder hears RECALL,
 * releases, and the TAKE is granted. */
static void test_meta_srv_image_lease_hand_over(void **state)
{
    struct md *m = *state;
    struct proto_image_lease_rep out;
    struct rpc_reply rep;
    struct pending poll, take;
    struct proto_wbuf w, raw;

    assert_int_equal(lease(m->cl, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    uint64_t holder = out.holder_session;
    rpc_reply_free(&rep);
    proto_wbuf_init(&raw);
    proto_lease_entry_put(&raw, m->ino, PROTO_LEASE_HELD);
    struct proto_image_lease_wait q = {
        .timeout_ms = 5000,
        .count = 1,
        .raw = {(const char *)raw.p, (uint32_t)raw.len}};
    proto_wbuf_init(&w);
    proto_image_lease_wait_encode(&w, &q);
    proto_wbuf_free(&raw);
    pending_start(&poll, m->cl, PROTO_MSG_IMAGE_LEASE_WAIT_REQ, &w);

    struct proto_image_lease_req arm = {
        .op = PROTO_LEASE_ARM, .arg = 60, .ino = m->ino};
    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &arm);
    assert_int_equal(
        rpc_call_msg(m->cl2, PROTO_MSG_IMAGE_LEASE_REQ, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    assert_true(out.flags & PROTO_LEASE_F_ARMED);
    rpc_reply_free(&rep);
    assert_int_equal(lease(m->cl2, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_STANDBY);
    rpc_reply_free(&rep);

    struct proto_image_lease_req tq = {.op = PROTO_LEASE_TAKE, .ino = m->ino};
    proto_wbuf_init(&w);
    proto_image_lease_req_encode(&w, &tq);
    pending_start(&take, m->cl2, PROTO_MSG_IMAGE_LEASE_REQ, &w);
    /* The holder hears RECALL; the TAKE waits for its RELEASE. */
    assert_int_equal(pending_wait(&poll), 0);
    struct proto_image_lease_wait news;
    assert_int_equal(
        proto_image_lease_wait_decode(poll.rep.payload, poll.rep.len, &news),
        0);
    assert_int_equal(news.count, 1);
    uint64_t ino;
    uint32_t st;
    proto_lease_entry_get(&news, 0, &ino, &st);
    assert_int_equal(ino, m->ino);
    assert_int_equal(st, PROTO_LEASE_RECALL);
    rpc_reply_free(&poll.rep);
    assert_false(pending_is_done(&take));
    assert_int_equal(lease(m->cl, PROTO_LEASE_RELEASE, m->ino, &out, &rep), 0);
    rpc_reply_free(&rep);
    assert_int_equal(pending_wait(&take), 0);
    assert_int_equal(
        proto_image_lease_rep_decode(take.rep.payload, take.rep.len, &out), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    assert_int_not_equal(out.holder_session, holder);
    rpc_reply_free(&take.rep);
    /* The old holder is refused now. */
    assert_int_equal(lease(m->cl, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_BUSY);
    rpc_reply_free(&rep);
}

/* docs/protocol.md §15.1: a lease belongs to a session; ARM and QUERY do
 * not need one. */
static void test_meta_srv_image_lease_errors(void **state)
{
    struct md *m = *state;
    struct proto_image_lease_rep out;
    struct rpc_reply rep;
    struct rpc_client *nosess = connect_as(m, PROTO_ROLE_CLIENT, NULL);

    assert_int_equal(lease(nosess, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep),
                     -EPERM);
    assert_int_equal(lease(nosess, PROTO_LEASE_QUERY, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_FREE);
    rpc_reply_free(&rep);
    rpc_client_close(nosess);
}

/* ---- Callback promises -------------------------------------------------- */

static void chmod_by_cl(struct md *m, uint64_t ino, uint32_t mode)
{
    struct proto_setattr_req q = {
        .ino = ino, .valid = PROTO_SETATTR_MODE, .mode = mode};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_setattr_req_encode(&w, &q);
    call_attr(m->cl, PROTO_MSG_SETATTR_REQ, &w);
}

static unsigned breaks_of(struct md *m, uint64_t ino)
{
    unsigned n = 0;
    pthread_mutex_lock(&m->mu);
    for (unsigned i = 0; i < m->nbroken; i++)
        n += m->broken[i] == ino;
    pthread_mutex_unlock(&m->mu);
    return n;
}

/* @c registers for callbacks; the promise lease it is told. */
static uint32_t callbacks_on(struct rpc_client *c)
{
    struct proto_callback_register_req reg = {.flags = PROTO_CALLBACK_ON};
    struct proto_callback_register_rep regrep;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_callback_register_req_encode(&w, &reg);
    assert_int_equal(
        rpc_call_msg(c, PROTO_MSG_CALLBACK_REGISTER_REQ, &w, &rep, &regrep), 0);
    proto_wbuf_free(&w);
    rpc_reply_free(&rep);
    return regrep.lease_ms;
}

/* Issue 15 item 9: a file held open past the promise's lease kept no
 * promise, so another session's change sent no break and the holder's
 * kernel served stale pages.  Now a held file's promise lasts; a file
 * only looked at loses it. */
static void test_meta_srv_cb_promise_kept_while_open(void **state)
{
    struct md *m = *state;
    uint64_t g = file_create(m->cl, "g");
    struct proto_access_req op = {.ino = m->ino,
                                  .mask = O_RDONLY | PROTO_OPEN_HOLD};
    struct proto_ino_req ga = {.ino = g};
    struct proto_wbuf w;

    assert_int_equal(callbacks_on(m->cl2), 300);
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &op);
    call_attr(m->cl2, PROTO_MSG_OPEN_REQ, &w); /* f: promise and hold */
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &ga);
    call_attr(m->cl2, PROTO_MSG_GETATTR_REQ, &w); /* g: promise only */

    /* Within the lease both are broken. */
    chmod_by_cl(m, m->ino, 0600);
    chmod_by_cl(m, g, 0600);
    assert_int_equal(breaks_of(m, m->ino), 1);
    assert_int_equal(breaks_of(m, g), 1);
    /* A broken promise is gone: take both again, then outlive the lease
     * (metad's tick runs every second). */
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &op);
    call_attr(m->cl2, PROTO_MSG_OPEN_REQ, &w);
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &ga);
    call_attr(m->cl2, PROTO_MSG_GETATTR_REQ, &w);
    usleep(2500 * 1000);
    chmod_by_cl(m, m->ino, 0644);
    chmod_by_cl(m, g, 0644);
    assert_int_equal(breaks_of(m, m->ino), 2);
    assert_int_equal(breaks_of(m, g), 1);
}

/* A break of attributes alone (a chmod) leaves the promise of a session
 * that holds the file open and may read it from the kernel's pages: a
 * later change of the data (a truncate) still breaks it, with nothing
 * asked in between.  The data break ends the promise. */
static void test_meta_srv_cb_attr_break_keeps_promise(void **state)
{
    struct md *m = *state;
    uint64_t h = file_create(m->cl, "h");
    struct proto_access_req op = {.ino = h,
                                  .mask = O_RDONLY | PROTO_OPEN_HOLD};
    struct proto_setattr_req tr = {
        .ino = h, .valid = PROTO_SETATTR_SIZE, .size = 4096};
    struct proto_wbuf w;

    assert_int_equal(callbacks_on(m->cl2), 300);
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &op);
    call_attr(m->cl2, PROTO_MSG_OPEN_REQ, &w);
    chmod_by_cl(m, h, 0600);
    assert_int_equal(breaks_of(m, h), 1);
    proto_wbuf_init(&w);
    proto_setattr_req_encode(&w, &tr);
    call_attr(m->cl, PROTO_MSG_SETATTR_REQ, &w);
    assert_int_equal(breaks_of(m, h), 2);
    chmod_by_cl(m, h, 0644);
    assert_int_equal(breaks_of(m, h), 2);
}

/* ---- Leadership: the in-memory state starts over ------------------------ */

/* What lead_again() saw on the loop thread (cmocka asserts only on the
 * test's own). */
static struct {
    bool lost_leading, leading;
    size_t nsessions, sessions_full, nservers, servers_down, nwleases;
    uint64_t promises;
} seen;

static void lead_lost(struct md *m)
{
    meta_srv_lead(m->srv, false);
    seen.lost_leading = m->srv->leading;
}

static void count_before(struct md *m)
{
    struct meta_srv_cb_counts cb;

    seen.nwleases = m->srv->nwleases;
    meta_srv_cb_counts(m->srv, &cb);
    seen.promises = cb.promises;
}

/* Led again (as a replica raft makes leader again in a later term). */
static void lead_again(struct md *m)
{
    struct meta_srv *srv = m->srv;
    uint64_t now = uv_now(&m->loop);
    struct meta_srv_cb_counts cb;

    meta_srv_lead(srv, true);
    seen.leading = srv->leading;
    seen.nsessions = srv->nsessions;
    for (size_t i = 0; i < srv->nsessions; i++)
        seen.sessions_full += srv->sessions[i].deadline == now + srv->lease_ms;
    seen.nservers = srv->nservers;
    for (size_t i = 0; i < srv->nservers; i++)
        seen.servers_down += srv->servers[i].state == PROTO_SERVER_DOWN;
    seen.nwleases = srv->nwleases;
    meta_srv_cb_counts(srv, &cb);
    seen.promises = cb.promises;
}

/* The in-memory state of a leader is rebuilt with the rules of a restart
 * (docs/architecture.md, "Leadership"). */
static void test_meta_srv_lead_again_starts_over(void **state)
{
    struct md *m = *state;
    struct proto_ino_req ga = {.ino = m->ino};
    struct proto_image_lease_rep out;
    struct proto_chunk_loc loc;
    struct rpc_client *c3;
    struct rpc_reply rep;
    struct proto_wbuf w;

    /* What a leader holds in memory: a write lease, an image lease, a
     * callback promise. */
    register_all(m);
    assert_int_equal(write_begin(m, &loc), 0);
    on_loop(m, count_before);
    assert_int_equal(seen.nwleases, 1);
    assert_int_equal(lease(m->cl, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    rpc_reply_free(&rep);
    callbacks_on(m->cl2);
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &ga);
    call_attr(m->cl2, PROTO_MSG_GETATTR_REQ, &w);
    on_loop(m, count_before);
    assert_int_equal(seen.promises, 1);

    on_loop(m, lead_lost);
    on_loop(m, lead_again);
    assert_false(seen.lost_leading);
    assert_true(seen.leading);
    /* Every session in the database, with a full lease. */
    assert_int_equal(seen.nsessions, 2);
    assert_int_equal(seen.sessions_full, 2);
    /* Storage servers down until they register again. */
    assert_int_equal(seen.nservers, NSRV);
    assert_int_equal(seen.servers_down, NSRV);
    /* No chunk write lease, no callback promise. */
    assert_int_equal(seen.nwleases, 0);
    assert_int_equal(seen.promises, 0);
    /* The image lease went with the rest: another session gets it. */
    c3 = connect_as(m, PROTO_ROLE_CLIENT, NULL);
    session_open(m, c3);
    assert_int_equal(lease(c3, PROTO_LEASE_ACQUIRE, m->ino, &out, &rep), 0);
    assert_int_equal(out.result, PROTO_LEASE_GRANTED);
    rpc_reply_free(&rep);
    rpc_client_close(c3);
}

/* The reply's length to @opcode (MKNOD, UNLINK) of @name under the root
 * from @c. */
static uint32_t ns_reply_len(struct rpc_client *c, uint16_t opcode,
                             const char *name)
{
    struct proto_str n = {name, (uint32_t)strlen(name)};
    struct proto_mknod_req mk = {
        .parent = 1, .mode = S_IFREG | 0644, .name = n};
    struct proto_lookup_req rm = {.parent = 1, .name = n};
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    if (opcode == PROTO_MSG_MKNOD_REQ)
        proto_mknod_req_encode(&w, &mk);
    else
        proto_lookup_req_encode(&w, &rm);
    assert_int_equal(rpc_call(c, opcode, w.p, w.len, &rep), 0);
    proto_wbuf_free(&w);
    uint32_t len = rep.len;
    rpc_reply_free(&rep);
    return len;
}

/* docs/protocol.md §3.4: a version 2 peer gets the directory's attributes
 * with each change, a version 1 peer the version 1 layout; the version 2
 * session's reply grants it a promise on the directory, broken by another
 * session's change there. */
static void test_meta_srv_dir_attrs_by_version(void **state)
{
    struct md *m = *state;
    struct rpc_opts o = {.role = PROTO_ROLE_CLIENT,
                         .name = "old",
                         .call_timeout_ms = 10000,
                         .max_version = 1};
    struct rpc_client *old;

    assert_int_equal(ns_reply_len(m->cl, PROTO_MSG_MKNOD_REQ, "a"),
                     2 * PROTO_ATTR_SIZE);
    assert_int_equal(ns_reply_len(m->cl, PROTO_MSG_UNLINK_REQ, "a"),
                     PROTO_ATTR_SIZE);
    assert_int_equal(rpc_client_open(m->addr, &o, &old), 0);
    session_open(m, old);
    assert_int_equal(ns_reply_len(old, PROTO_MSG_MKNOD_REQ, "b"),
                     PROTO_ATTR_SIZE);
    assert_int_equal(ns_reply_len(old, PROTO_MSG_UNLINK_REQ, "b"), 0);
    rpc_client_close(old);

    assert_int_equal(callbacks_on(m->cl2), 300);
    assert_int_equal(ns_reply_len(m->cl2, PROTO_MSG_MKNOD_REQ, "c"),
                     2 * PROTO_ATTR_SIZE);
    assert_int_equal(breaks_of(m, 1), 0);
    ns_reply_len(m->cl, PROTO_MSG_MKNOD_REQ, "d");
    assert_int_equal(breaks_of(m, 1), 1);
}

/* ---- Reserved inode numbers --------------------------------------------- */

/* INO_RESERVE of @count on @c: its status, the range in @out. */
static int ino_reserve(struct rpc_client *c, uint32_t count,
                       struct proto_ino_reserve_rep *out)
{
    struct proto_ino_reserve_req q = {.count = count};
    struct proto_wbuf w;
    struct rpc_reply rep;
    int rc;

    proto_wbuf_init(&w);
    proto_ino_reserve_req_encode(&w, &q);
    rc = rpc_call_msg(c, PROTO_MSG_INO_RESERVE_REQ, &w, &rep, out);
    proto_wbuf_free(&w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}

/* MKNOD of @name with INO @ino at @time on @c: its status, the entry in
 * @out. */
static int mknod_ino(struct rpc_client *c, const char *name, uint64_t ino,
                     int64_t time, struct proto_attr *out)
{
    struct proto_mknod_req q = {.parent = 1,
                                .mode = S_IFREG | 0644,
                                .flags = PROTO_MKNOD_EXCL | PROTO_MKNOD_INO,
                                .name = {name, (uint32_t)strlen(name)},
                                .ino = ino,
                                .time = time};
    struct proto_entry_rep e;
    struct proto_wbuf w;
    struct rpc_reply rep;
    int rc;

    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    rc = rpc_call_msg(c, PROTO_MSG_MKNOD_REQ, &w, &rep, &e);
    proto_wbuf_free(&w);
    if (rc == 0) {
        *out = e.attr;
        rpc_reply_free(&rep);
    }
    return rc;
}

/* docs/protocol.md §6.23 and §6.8 through the daemon: INO_RESERVE needs a
 * session (ENOSESSION), a session's MKNOD names a file with a number of
 * its range, another session's MKNOD may not (EINVAL). */
static void test_meta_srv_ino_reserve_and_mknod(void **state)
{
    struct md *m = *state;
    struct proto_ino_reserve_rep r1, r2;
    struct proto_attr a;
    struct rpc_client *nosess = connect_as(m, PROTO_ROLE_CLIENT, NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* A client's time a second behind metad's clock is kept. */
    const int64_t t =
        (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - 1000000000;

    assert_int_equal(ino_reserve(nosess, 4, &r1), -ENOTCONN);
    rpc_client_close(nosess);
    assert_int_equal(ino_reserve(m->cl, 0, &r1), -EINVAL);
    assert_int_equal(ino_reserve(m->cl, 16, &r1), 0);
    assert_int_equal(r1.count, 16);
    assert_true(r1.first > m->ino);
    assert_int_equal(ino_reserve(m->cl2, 16, &r2), 0);
    assert_true(r2.first >= r1.first + 16);
    assert_int_equal(mknod_ino(m->cl, "n", r1.first + 2, t, &a), 0);
    assert_int_equal(a.ino, r1.first + 2);
    assert_int_equal(a.mtime, t);
    assert_int_equal(mknod_ino(m->cl2, "o", r1.first + 3, t, &a), -EINVAL);
    assert_int_equal(mknod_ino(m->cl, "o", r1.first + 2, t, &a), -EEXIST);
    assert_true(file_create(m->cl, "p") >= r2.first + 16);
}

/* A WRITE_BEGIN's new chunk is in no table until its record applies:
 * meanwhile it counts as pending, so an inventory or fsck that comes then
 * does not take it for garbage; once applied the database has it. */
struct wb_call {
    struct md *m;
    struct proto_chunk_loc loc;
    int rc;
};

static void *wb_thread(void *arg)
{
    struct wb_call *c = arg;

    c->rc = write_begin(c->m, &c->loc);
    return NULL;
}

static struct {
    uint64_t id;
    bool pending;
} wb_seen;

static void wb_probe(struct md *m)
{
    wb_seen.id = m->srv->next_chunk_id;
    wb_seen.pending = meta_srv_write_pending(m->srv, wb_seen.id);
}

static bool flog_holds(struct md *m)
{
    pthread_mutex_lock(&m->flog.mu);
    bool held = m->flog.held != NULL;
    pthread_mutex_unlock(&m->flog.mu);
    return held;
}

static void test_meta_srv_write_new_chunk_pending_until_recorded(void **state)
{
    struct md *m = *state;
    struct wb_call c = {.m = m};
    pthread_t t;

    register_all(m);
    flog_hold(m, META_OP_CHUNK_SET);
    assert_int_equal(pthread_create(&t, NULL, wb_thread, &c), 0);
    for (int i = 0; i < 200 && !flog_holds(m); i++)
        usleep(10 * 1000);
    assert_true(flog_holds(m));
    on_loop(m, wb_probe);
    assert_true(wb_seen.pending);
    on_loop(m, flog_release);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.loc.chunk_id, wb_seen.id);
    on_loop(m, wb_probe);
    assert_false(wb_seen.pending);
}

/* ---- The chunk pool (meta_srv_pool.c) ------------------------------------ */

static struct {
    uint64_t taken, missed;
    unsigned ready, creating;
    uint64_t id;  /* asked about: */
    bool pooled;  /* meta_srv_pool_has(id) */
    bool pending; /* meta_srv_write_pending(id): inventories keep it */
} pool_seen;

static void pool_probe(struct md *m)
{
    meta_srv_pool_count(m->srv, &pool_seen.ready, &pool_seen.creating);
    pool_seen.taken = m->srv->pool.taken;
    pool_seen.missed = m->srv->pool.missed;
    pool_seen.pooled = meta_srv_pool_has(m->srv, pool_seen.id);
    pool_seen.pending = meta_srv_write_pending(m->srv, pool_seen.id);
}

/* Wait (a bounded while) until the pool has @n chunks ready and none
 * being created. */
static void pool_wait_ready(struct md *m, unsigned n)
{
    for (int k = 0; k < 200; k++) {
        on_loop(m, pool_probe);
        if (pool_seen.ready == n && pool_seen.creating == 0)
            break;
        usleep(10 * 1000);
    }
    assert_int_equal(pool_seen.ready, n);
    assert_int_equal(pool_seen.creating, 0);
}

/* Wait (a bounded while) until every fake server was sent @n
 * CHUNK_SETVERSIONs. */
static void setversions_wait(struct md *m, unsigned n)
{
    for (int i = 0; i < NSRV; i++) {
        for (int k = 0; k < 200 && fsrv_seen(&m->fs[i],
                                             PROTO_MSG_CHUNK_SETVERSION_REQ) < n;
             k++)
            usleep(10 * 1000);
        assert_int_equal(fsrv_seen(&m->fs[i], PROTO_MSG_CHUNK_SETVERSION_REQ),
                         n);
    }
}

/* With --chunk-pool 2: the first hole creates its chunk itself and fills
 * the pool; the next hole takes a pooled chunk (created already, on every
 * server, at version 1) and the pool is topped up again.  Pooled chunks
 * are no garbage, a metad that stops leading forgets them, and one that
 * leads again does not hand their ids out again. */
static void test_meta_srv_pool_hole_takes_created_chunk(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc first, loc;

    register_all(m);
    assert_int_equal(write_begin(m, &first), 0);
    setversions_wait(m, 1 + 2);
    pool_wait_ready(m, 2);
    assert_int_equal(pool_seen.taken, 0);
    assert_int_equal(pool_seen.missed, 1);

    assert_int_equal(write_begin_at(m, 1, &loc), 0);
    on_loop(m, pool_probe);
    assert_int_equal(pool_seen.taken, 1);
    assert_int_equal(loc.version, 1);
    assert_int_equal(loc.nreplicas, NSRV);
    for (int i = 0; i < NSRV; i++)
        assert_true(has_server(&loc, m->fs[i].id));
    /* The lowest of the two made after the first hole's chunk. */
    assert_int_equal(loc.chunk_id, first.chunk_id + 1);
    /* Recorded: the slot keeps it, under a live lease. */
    struct proto_chunk_loc again;
    assert_int_equal(write_begin_at(m, 1, &again), 0);
    assert_int_equal(again.chunk_id, loc.chunk_id);
    setversions_wait(m, 1 + 2 + 1); /* the pool topped up */
    pool_wait_ready(m, 2);

    /* The other chunk made after the first hole's is still pooled. */
    pool_seen.id = first.chunk_id + 2;
    on_loop(m, pool_probe);
    assert_true(pool_seen.pooled);
    assert_true(pool_seen.pending);
    pool_seen.id = loc.chunk_id;
    on_loop(m, pool_probe);
    assert_false(pool_seen.pooled);

    pool_seen.id = first.chunk_id + 3;
    on_loop(m, pool_probe);
    assert_true(pool_seen.pooled);
    on_loop(m, lead_lost);
    on_loop(m, pool_probe);
    assert_false(pool_seen.pooled);
    assert_false(pool_seen.pending);

    /* The forgotten chunks are still on the servers, unrecorded: leading
     * again, metad hands out none of their ids. */
    on_loop(m, lead_again);
    on_loop(m, wb_probe);
    assert_true(wb_seen.id > first.chunk_id + 3);
}

/* A pooled chunk that a server failed to create is deleted on the others
 * and never handed out; a hole that finds no pooled chunk creates its
 * own. */
static void test_meta_srv_pool_failed_create_deleted(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc first, loc;

    register_all(m);
    /* Server 1 fails the hole's own creation and both of the pool's. */
    fsrv_fail(&m->fs[1], PROTO_MSG_CHUNK_SETVERSION_REQ, -EIO, 3);
    assert_int_equal(write_begin(m, &first), 0);
    assert_int_equal(first.nreplicas, NSRV - 1);
    assert_false(has_server(&first, m->fs[1].id));
    deletes_wait(m, 0, 2);
    deletes_wait(m, 2, 2);
    assert_int_equal(fsrv_seen(&m->fs[1], PROTO_MSG_CHUNK_DELETE_REQ), 0);
    pool_wait_ready(m, 0);

    assert_int_equal(write_begin_at(m, 1, &loc), 0);
    assert_int_equal(loc.nreplicas, NSRV);
    on_loop(m, pool_probe);
    assert_int_equal(pool_seen.taken, 0);
    assert_int_equal(pool_seen.missed, 2);
    assert_true(loc.chunk_id > first.chunk_id + 2); /* its own, made now */
}

/* A new chunk is recorded only above every chunk id recorded before it,
 * so pooled chunks whose ids a record passed are deleted, not handed out
 * to be refused.  Here a file of goal 2 records its own chunk (the pool
 * of two replicas is empty) while the pool of three holds two chunks with
 * lower ids: the next hole of three replicas deletes both and makes its
 * own, recorded at the first try. */
static void test_meta_srv_pool_passed_ids_deleted(void **state)
{
    struct md *m = *state;
    struct proto_chunk_loc first, two, loc;

    register_all(m);
    assert_int_equal(write_begin(m, &first), 0);
    pool_wait_ready(m, 2); /* first + 1 and + 2, on three servers */

    goal_set(m, 2);
    assert_int_equal(write_begin_at(m, 1, &two), 0);
    assert_int_equal(two.nreplicas, 2);
    assert_int_equal(two.chunk_id, first.chunk_id + 3); /* its own */
    pool_wait_ready(m, 4);

    goal_set(m, 3);
    assert_int_equal(write_begin_at(m, 2, &loc), 0);
    assert_int_equal(loc.nreplicas, NSRV);
    assert_true(loc.chunk_id > two.chunk_id + 2); /* its own, made now */
    for (int i = 0; i < NSRV; i++)
        deletes_wait(m, i, 2);
    pool_seen.id = first.chunk_id + 1;
    on_loop(m, pool_probe);
    assert_false(pool_seen.pooled);
    assert_int_equal(pool_seen.taken, 0);
    assert_int_equal(pool_seen.missed, 3);
    /* The slot holds the chunk the answer named. */
    struct proto_chunk_loc again;
    assert_int_equal(write_begin_at(m, 2, &again), 0);
    assert_int_equal(again.chunk_id, loc.chunk_id);
}

int test_meta_srv_daemon(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, md_setup, md_teardown)
#define L(name)                                                                \
    cmocka_unit_test_prestate_setup_teardown(name, md_setup, md_teardown,      \
                                             &with_flog)
#define P(name)                                                                \
    cmocka_unit_test_prestate_setup_teardown(name, md_setup, md_teardown,      \
                                             &with_pool)
    static int with_flog; /* any prestate: the daemon over the fake log */
    const struct CMUnitTest tests[] = {
        T(test_meta_srv_write_begin_hole_no_server),
        T(test_meta_srv_write_begin_hole_placed),
        T(test_meta_srv_write_begin_hole_one_refuses),
        T(test_meta_srv_write_begin_hole_all_refuse),
        T(test_meta_srv_write_report_then_bump),
        T(test_meta_srv_repair_copy_retried),
        L(test_meta_srv_repair_record_failed_retried),
        T(test_meta_srv_repair_copy_stale_goes_to_gc),
        L(test_meta_srv_repair_drop_record_failed_retried),
        T(test_meta_srv_repair_gc_delete_failed_kept),
        L(test_meta_srv_repair_pending_add_not_copied_again),
        L(test_meta_srv_repair_pending_drop_not_repeated),
        L(test_meta_srv_repair_move_drop_pending),
        L(test_meta_srv_repair_move_drop_failed),
        T(test_meta_srv_image_lease_one_writer),
        T(test_meta_srv_image_lease_errors),
        T(test_meta_srv_image_lease_hand_over),
        T(test_meta_srv_cb_promise_kept_while_open),
        T(test_meta_srv_cb_attr_break_keeps_promise),
        T(test_meta_srv_lead_again_starts_over),
        T(test_meta_srv_dir_attrs_by_version),
        T(test_meta_srv_ino_reserve_and_mknod),
        L(test_meta_srv_write_new_chunk_pending_until_recorded),
        P(test_meta_srv_pool_hole_takes_created_chunk),
        P(test_meta_srv_pool_failed_create_deleted),
        P(test_meta_srv_pool_passed_ids_deleted),
    };
#undef P
#undef T
#undef L
    return cmocka_run_group_tests_name("meta_srv_daemon", tests, NULL, NULL);
}
