/* test_meta_repl.c: replication records (GOAL_SET_REQ, META_OP_REPLICA_ADD,
 * META_OP_REPLICA_DROP, META_OP_SERVER_STATE) and the walks repair uses. */
#include "test_meta_util.h"

#define R cred_root()
#define CHUNK ((uint64_t)PROTO_CHUNK_SIZE)

/* Server @tag as these tests have always registered it: 1 byte free. */
static uint32_t reg(struct fx *f, uint8_t tag)
{
    return fx_server_register(f, tag, "127.0.0.1:1", 1);
}

/* REPLICA_ADD or REPLICA_DROP; *added gets the ADD reply byte. */
static int replica_op(struct fx *f, uint16_t op, uint64_t chunk_id,
                      uint64_t version, uint32_t server, int *added)
{
    struct proto_wbuf w, reply;
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_put_u64(&w, chunk_id);
    proto_put_u64(&w, version);
    proto_put_u32(&w, server);
    int r = fx_apply(f, op, &w, &reply);
    if (r == 0 && added) {
        assert_int_equal(reply.len, 1);
        *added = reply.p[0];
    }
    proto_wbuf_free(&reply);
    return r;
}

static int server_state(struct fx *f, uint32_t id, uint32_t state)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u32(&w, id);
    proto_put_u32(&w, state);
    return fx_apply(f, META_OP_SERVER_STATE, &w, NULL);
}

static int goal_set(struct fx *f, struct proto_cred c, uint64_t ino,
                    uint32_t goal, uint32_t flags, uint64_t *changed)
{
    struct proto_wbuf w, reply;
    struct proto_goal_set_req q = {
        .cred = c, .ino = ino, .goal = goal, .flags = flags};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_goal_set_req_encode(&w, &q);
    int r = fx_apply(f, PROTO_MSG_GOAL_SET_REQ, &w, &reply);
    if (r == 0 && changed) {
        struct proto_goal_set_rep rep;
        assert_int_equal(proto_goal_set_rep_decode(reply.p, reply.len, &rep),
                         0);
        *changed = rep.changed;
    }
    proto_wbuf_free(&reply);
    return r;
}

static int gc_count_cb(uint64_t chunk_id, uint64_t version, uint32_t server,
                       void *arg)
{
    (void)chunk_id;
    (void)version;
    (void)server;
    (*(int *)arg)++;
    return 0;
}

static int gc_count(struct fx *f, uint32_t server)
{
    int n = 0;
    assert_int_equal(meta_gc_foreach(f->db, server, 100, gc_count_cb, &n), 0);
    return n;
}

/* A file with one chunk (id 1, version 1) on servers s[0..n). */
static uint64_t file_with_chunk(struct fx *f, uint32_t n, const uint32_t *s)
{
    struct proto_attr a;
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 1, 0, 1, n, s), 0);
    return a.ino;
}

static void test_meta_goal_set_owner_and_range(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, d;
    uint64_t changed = 9;
    assert_int_equal(do_mkdir(f, R, ROOT, "pub", 0777, &d), 0);
    assert_int_equal(do_create(f, cred_of(5, 5), d.ino, "f", 0644, &a), 0);
    assert_int_equal(a.goal, 3);
    assert_int_equal(goal_set(f, cred_of(6, 6), a.ino, 2, 0, NULL), -EPERM);
    /* Out-of-range goals do not even decode. */
    assert_int_equal(goal_set(f, cred_of(5, 5), a.ino, 0, 0, NULL), -EPROTO);
    assert_int_equal(goal_set(f, cred_of(5, 5), a.ino, PROTO_GOAL_MAX + 1, 0,
                              NULL),
                     -EPROTO);
    assert_int_equal(goal_set(f, cred_of(5, 5), 999, 2, 0, NULL), -ENOENT);
    assert_int_equal(goal_set(f, cred_of(5, 5), a.ino, 2, 0, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(attr_of(f, a.ino).goal, 2);
    /* Same goal again: nothing changes. */
    assert_int_equal(goal_set(f, R, a.ino, 2, 0, &changed), 0);
    assert_int_equal(changed, 0);
}

static void test_meta_goal_set_recursive_walks_subtree(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, sub, x;
    uint64_t changed = 0;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0777, &d), 0);
    assert_int_equal(do_mkdir(f, R, d.ino, "sub", 0777, &sub), 0);
    assert_int_equal(do_create(f, R, d.ino, "a", 0644, NULL), 0);
    assert_int_equal(do_create(f, R, sub.ino, "b", 0644, NULL), 0);
    assert_int_equal(do_create(f, cred_of(7, 7), sub.ino, "other", 0644, &x),
                     0);
    /* Without RECURSIVE only the directory itself. */
    assert_int_equal(goal_set(f, R, d.ino, 1, 0, &changed), 0);
    assert_int_equal(changed, 1);
    assert_int_equal(goal_set(f, R, d.ino, 2, PROTO_GOAL_RECURSIVE, &changed),
                     0);
    assert_int_equal(changed, 5);
    assert_int_equal(attr_of(f, ino_of(f, sub.ino, "b")).goal, 2);
    /* A non-root owner changes only what it owns below. */
    assert_int_equal(goal_set(f, cred_of(7, 7), d.ino, 4, PROTO_GOAL_RECURSIVE,
                              NULL),
                     -EPERM);
    /* New inodes inherit the directory's goal. */
    assert_int_equal(do_create(f, R, sub.ino, "new", 0644, &x), 0);
    assert_int_equal(x.goal, 2);
}

static void test_meta_replica_add_joins_chain(void **state)
{
    struct fx *f = *state;
    uint32_t s[3] = {reg(f, 1), reg(f, 2), reg(f, 3)};
    struct meta_chunk c;
    int added = -1;
    file_with_chunk(f, 2, s);
    assert_int_equal(replica_op(f, META_OP_REPLICA_ADD, 1, 1, s[2], &added),
                     0);
    assert_int_equal(added, 1);
    assert_int_equal(meta_chunk_get(f->db, 1, &c), 0);
    assert_int_equal(c.nreplicas, 3);
    assert_int_equal(c.servers[2], s[2]);
    /* Twice is harmless. */
    assert_int_equal(replica_op(f, META_OP_REPLICA_ADD, 1, 1, s[2], &added),
                     0);
    assert_int_equal(added, 1);
    assert_int_equal(meta_chunk_get(f->db, 1, &c), 0);
    assert_int_equal(c.nreplicas, 3);
    assert_int_equal(replica_op(f, META_OP_REPLICA_ADD, 1, 1, 99, NULL),
                     -ENOENT);
}

static void test_meta_replica_add_stale_copy_goes_to_gc(void **state)
{
    struct fx *f = *state;
    uint32_t s[3] = {reg(f, 1), reg(f, 2), reg(f, 3)};
    struct meta_chunk c;
    int added = -1;
    uint64_t ino = file_with_chunk(f, 2, s);
    /* The chunk moved on to version 2 while the copy of v1 was made. */
    assert_int_equal(fx_chunk_set(f, ino, 0, 1, 1, 2, 2, s), 0);
    assert_int_equal(replica_op(f, META_OP_REPLICA_ADD, 1, 1, s[2], &added),
                     0);
    assert_int_equal(added, 0);
    assert_int_equal(meta_chunk_get(f->db, 1, &c), 0);
    assert_int_equal(c.nreplicas, 2);
    assert_int_equal(meta_gc_has(f->db, 1, s[2]), 1);
    /* A fresh copy at the current version replaces the gc entry. */
    assert_int_equal(replica_op(f, META_OP_REPLICA_ADD, 1, 2, s[2], &added),
                     0);
    assert_int_equal(added, 1);
    assert_int_equal(meta_gc_has(f->db, 1, s[2]), 0);
}

static void test_meta_replica_drop_lists_for_deletion(void **state)
{
    struct fx *f = *state;
    uint32_t s[3] = {reg(f, 1), reg(f, 2), reg(f, 3)};
    struct meta_chunk c;
    file_with_chunk(f, 3, s);
    assert_int_equal(replica_op(f, META_OP_REPLICA_DROP, 1, 7, s[1], NULL),
                     -ESTALE);
    assert_int_equal(replica_op(f, META_OP_REPLICA_DROP, 2, 1, s[1], NULL),
                     -ENOENT);
    assert_int_equal(replica_op(f, META_OP_REPLICA_DROP, 1, 1, s[1], NULL), 0);
    assert_int_equal(replica_op(f, META_OP_REPLICA_DROP, 1, 1, s[1], NULL),
                     -ENOENT);
    assert_int_equal(meta_chunk_get(f->db, 1, &c), 0);
    assert_int_equal(c.nreplicas, 2);
    assert_int_equal(c.servers[0], s[0]);
    assert_int_equal(c.servers[1], s[2]);
    assert_int_equal(meta_gc_has(f->db, 1, s[1]), 1);
    assert_int_equal(gc_count(f, s[1]), 1);
    assert_int_equal(gc_count(f, s[0]), 0);
}

static void test_meta_gc_foreach_filters_by_server(void **state)
{
    struct fx *f = *state;
    uint32_t s[2] = {reg(f, 1), reg(f, 2)};
    struct proto_attr a;
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(fx_chunk_set(f, a.ino, i, i + 1, 0, 1, 2, s), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "f"), 0);
    assert_int_equal(gc_count(f, 0), 6);
    assert_int_equal(gc_count(f, s[0]), 3);
    assert_int_equal(gc_count(f, s[1]), 3);
    assert_int_equal(gc_count(f, 77), 0);
}

static int one(const struct meta_server *sv, void *arg)
{
    *(struct meta_server *)arg = *sv;
    return 0;
}

static void test_meta_server_state_draining_persists(void **state)
{
    struct fx *f = *state;
    uint32_t id = reg(f, 1);
    struct meta_server got;
    assert_int_equal(server_state(f, id, PROTO_SERVER_DRAINING), 0);
    int64_t when = f->now;
    assert_int_equal(server_state(f, 99, PROTO_SERVER_DRAINING), -ENOENT);
    assert_int_equal(server_state(f, id, PROTO_SERVER_SUSPECT), -EINVAL);
    assert_int_equal(meta_server_foreach(f->db, one, &got), 0);
    assert_true(got.draining);
    assert_int_equal(got.state_time, when);
    assert_int_equal(server_state(f, id, PROTO_SERVER_UP), 0);
    assert_int_equal(meta_server_foreach(f->db, one, &got), 0);
    assert_false(got.draining);
    assert_int_equal(got.state_time, f->now);
}

static void test_meta_server_state_removed_forgets_replicas(void **state)
{
    struct fx *f = *state;
    uint32_t s[2] = {reg(f, 1), reg(f, 2)};
    struct meta_chunk c;
    uint64_t ino = file_with_chunk(f, 2, s);
    struct proto_attr a;
    assert_int_equal(do_create(f, R, ROOT, "g", 0644, &a), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 2, 0, 1, 2, s), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "g"), 0);
    assert_int_equal(gc_count(f, s[1]), 1);
    assert_int_equal(server_state(f, s[1], PROTO_SERVER_REMOVED), 0);
    assert_int_equal(meta_chunk_at(f->db, ino, 0, &c), 0);
    assert_int_equal(c.nreplicas, 1);
    assert_int_equal(c.servers[0], s[0]);
    assert_int_equal(gc_count(f, s[1]), 0);
    assert_int_equal(server_state(f, s[1], PROTO_SERVER_UP), -ENOENT);
    /* The same uuid registers again as a new server. */
    assert_true(reg(f, 2) > s[1]);
}

struct walk {
    int n;
    struct meta_chunk_info ci[4];
};

static int walk_cb(const struct meta_chunk_info *ci, void *arg)
{
    struct walk *w = arg;
    w->ci[w->n++] = *ci;
    return 0;
}

static int usage_cb(uint32_t server, uint64_t replicas, uint64_t bytes,
                    void *arg)
{
    uint64_t *v = arg;
    v[server * 2] = replicas;
    v[server * 2 + 1] = bytes;
    return 0;
}

static void test_meta_chunk_foreach_goal_length_usage(void **state)
{
    struct fx *f = *state;
    uint32_t s[2] = {reg(f, 1), reg(f, 2)};
    struct proto_attr a;
    struct proto_setattr_req q = {.cred = R,
                                  .valid = PROTO_SETATTR_SIZE,
                                  .size = CHUNK + 100};
    struct walk w = {0};
    uint64_t use[8] = {0};
    struct meta_stats st;
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 0, 1, 0, 1, 2, s), 0);
    assert_int_equal(fx_chunk_set(f, a.ino, 1, 2, 0, 1, 1, s + 1), 0);
    q.ino = a.ino;
    assert_int_equal(do_setattr(f, &q, NULL), 0);
    assert_int_equal(goal_set(f, R, a.ino, 2, 0, NULL), 0);
    assert_int_equal(meta_chunk_foreach(f->db, 0, 10, walk_cb, &w), 0);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.ci[0].goal, 2);
    assert_int_equal(w.ci[0].length, CHUNK);
    assert_int_equal(w.ci[0].c.nreplicas, 2);
    assert_int_equal(w.ci[1].length, 100);
    assert_int_equal(w.ci[1].c.servers[0], s[1]);
    w.n = 0;
    assert_int_equal(meta_chunk_foreach(f->db, 1, 10, walk_cb, &w), 0);
    assert_int_equal(w.n, 1);
    assert_int_equal(meta_server_usage_foreach(f->db, usage_cb, use), 0);
    assert_int_equal(use[s[0] * 2], 1);
    assert_int_equal(use[s[0] * 2 + 1], CHUNK);
    assert_int_equal(use[s[1] * 2], 2);
    assert_int_equal(use[s[1] * 2 + 1], CHUNK + 100);
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.chunks, 2);
}

int test_meta_repl(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_goal_set_owner_and_range),
        T(test_meta_goal_set_recursive_walks_subtree),
        T(test_meta_replica_add_joins_chain),
        T(test_meta_replica_add_stale_copy_goes_to_gc),
        T(test_meta_replica_drop_lists_for_deletion),
        T(test_meta_gc_foreach_filters_by_server),
        T(test_meta_server_state_draining_persists),
        T(test_meta_server_state_removed_forgets_replicas),
        T(test_meta_chunk_foreach_goal_length_usage),
#undef T
    };
    return cmocka_run_group_tests_name("meta_repl", tests, NULL, NULL);
}
