/* test_meta_raft.c: the --bootstrap member list, the log entry framing
 * libraft stores (meta_op_entry_wrap()), and a one-replica group on
 * loopback for when the leader commits its database.
 */
#include "test_meta_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "meta_propose.h"
#include "meta_raft.h"

static void test_meta_raft_members_parse_good(void **state)
{
    struct meta_raft_member m[4];
    (void)state;
    assert_int_equal(
        meta_raft_members_parse("1=127.0.0.1:9101,2=h2:9102,30=h3:9", m, 4), 3);
    assert_int_equal(m[0].id, 1);
    assert_string_equal(m[0].raft_addr, "127.0.0.1:9101");
    assert_int_equal(m[2].id, 30);
    assert_string_equal(m[2].raft_addr, "h3:9");
    assert_true(m[1].voter);
}

static void test_meta_raft_members_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "1",
        "1=",
        "=h:1",
        "0=h:1",
        "x=h:1",
        "1=hostonly",
        "-1=h:1",
        "1=h:1,",
        "1=h:1,,2=h:2",
        "1=h:1,1=h:2",
        "1=h:1,2=h:1",
        "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5",
    };
    struct meta_raft_member m[4];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (meta_raft_members_parse(bad[i], m, 4) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
}

/* The records between snapshots follow the database's size, within
 * bounds. */
static void test_meta_raft_snapshot_threshold(void **state)
{
    (void)state;
    assert_int_equal(meta_raft_snapshot_threshold(0), META_RAFT_SNAPSHOT_MIN);
    assert_int_equal(meta_raft_snapshot_threshold(4096),
                     META_RAFT_SNAPSHOT_MIN);
    assert_int_equal(
        meta_raft_snapshot_threshold((size_t)META_RAFT_SNAPSHOT_BYTES * 10000),
        10000);
    assert_int_equal(meta_raft_snapshot_threshold(
                         (size_t)META_RAFT_SNAPSHOT_BYTES * 10000 + 255),
                     10000);
    assert_int_equal(meta_raft_snapshot_threshold((size_t)1 << 40),
                     META_RAFT_SNAPSHOT_MAX);
}

static void test_meta_op_entry_round_trip(void **state)
{
    (void)state;
    for (size_t n = 0; n < 20; n++) {
        uint8_t rec[20];
        const uint8_t *got;
        size_t len;
        struct proto_wbuf w;
        memset(rec, (int)n + 1, sizeof(rec));
        proto_wbuf_init(&w);
        meta_op_entry_wrap(&w, rec, n);
        assert_int_equal(w.err, 0);
        assert_int_equal(w.len % META_OP_ENTRY_ALIGN, 0);
        assert_true(w.len >= 4 + n && w.len < 4 + n + META_OP_ENTRY_ALIGN);
        assert_int_equal(meta_op_entry_unwrap(w.p, w.len, &got, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(got, rec, n);
        proto_wbuf_free(&w);
    }
}

static void test_meta_op_entry_unwrap_bad(void **state)
{
    uint8_t e[16] = {0, 0, 0, 3, 'a', 'b', 'c', 0};
    const uint8_t *got;
    size_t len;
    (void)state;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), 0);
    /* Short, not whole units, too long for its length, bad padding. */
    assert_int_equal(meta_op_entry_unwrap(e, 3, &got, &len), -EPROTO);
    assert_int_equal(meta_op_entry_unwrap(e, 7, &got, &len), -EPROTO);
    assert_int_equal(meta_op_entry_unwrap(e, 16, &got, &len), -EPROTO);
    e[7] = 1;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), -EPROTO);
    e[7] = 0;
    e[3] = 5;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), -EPROTO);
}

/* ---- A one-replica group ----------------------------------------------- */

static void on_role(void *arg, bool leading)
{
    *(bool *)arg = leading;
}

struct mkdir_outcome {
    int calls, status;
    bool batch_open; /* meta_db_batch_open() when the proposer was told */
    struct meta_db *db;
};

static void on_mkdir_done(struct meta_propose *req, int status,
                          const struct proto_wbuf *result)
{
    struct mkdir_outcome *o = req->data;

    (void)result;
    o->calls++;
    o->status = status;
    o->batch_open = meta_db_batch_open(o->db);
}

/* A loopback port free a moment ago. */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Turn @loop until *@flag is @want, for at most @ms: whether it is. */
static bool turn_until(uv_loop_t *loop, const bool *flag, bool want,
                       uint64_t ms)
{
    uint64_t end = mono_ms() + ms;

    while (*flag != want && mono_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (*flag != want)
            usleep(200);
    }
    return *flag == want;
}

/* The leader applies a record at once and answers its proposer, but
 * commits its database later, once the batch is META_RAFT_COMMIT_MS old:
 * the records of several turns share one commit.  The record is visible
 * at once on the applying connection (the one that answers reads). */
static void test_meta_raft_leader_commits_later(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/tessera-raft-XXXXXX", addr[64], boot[80], cmd[96];
    struct meta_raft_opts opts = {.dir = dir, .id = 1};
    struct mkdir_outcome o = {.db = f->db};
    struct meta_propose req = {.data = &o};
    struct meta_raft *r = NULL;
    struct proto_wbuf w;
    struct meta_log log;
    struct meta_op op;
    uv_loop_t loop;
    bool leading = false, open_now;
    uint64_t t0;

    assert_non_null(mkdtemp(dir));
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
    snprintf(boot, sizeof(boot), "1=%s", addr);
    opts.addr = addr;
    opts.bootstrap = boot;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(meta_raft_open(&loop, f->db, &opts, &r), 0);
    meta_raft_on_role(r, on_role, &leading);
    assert_true(turn_until(&loop, &leading, true, 10000));
    meta_raft_log_init(r, &log);

    op = mkdir_op(f, "a", &w);
    assert_int_equal(meta_propose(&log, &req, &op, on_mkdir_done), 0);
    proto_wbuf_free(&w);
    t0 = mono_ms();
    while (o.calls == 0 && mono_ms() < t0 + 10000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    /* Answered inside the batch, which the turn's end left open. */
    assert_true(o.batch_open);
    assert_true(meta_db_batch_open(f->db));
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), 0);
    /* Committed by the timer, not by the next record. */
    open_now = true;
    t0 = mono_ms();
    while (open_now && mono_ms() < t0 + 5000) {
        uv_run(&loop, UV_RUN_ONCE);
        open_now = meta_db_batch_open(f->db);
    }
    assert_false(open_now);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), 0);

    meta_raft_close(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    meta_raft_free(r);
    assert_int_equal(uv_loop_close(&loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int test_meta_raft(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_raft_members_parse_good),
        cmocka_unit_test(test_meta_raft_members_parse_bad),
        cmocka_unit_test(test_meta_raft_snapshot_threshold),
        cmocka_unit_test(test_meta_op_entry_round_trip),
        cmocka_unit_test(test_meta_op_entry_unwrap_bad),
        cmocka_unit_test_setup_teardown(test_meta_raft_leader_commits_later,
                                        fx_setup_mem, fx_teardown),
    };
    return cmocka_run_group_tests_name("meta_raft", tests, NULL, NULL);
}
