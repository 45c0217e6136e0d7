/* test_meta_ino.c: inode numbers reserved to a session (meta_ino.c,
 * docs/protocol.md §6.23).  Every request goes through meta_apply() as
 * the daemon's records do; the ranges are read back through
 * meta_ino_reserved().
 */
#include "test_meta_util.h"

#include "meta_internal.h"

static int setup(void **state)
{
    int r = fx_setup_mem(state);
    struct fx *f = *state;

    f->session = fx_session_open(f);
    return r;
}

/* INO_RESERVE of @count in @f's session: its status; the range in
 * *@first and *@got when it succeeds. */
static int reserve(struct fx *f, uint32_t count, uint64_t *first, uint32_t *got)
{
    struct proto_ino_reserve_req q = {.count = count};
    struct proto_ino_reserve_rep rep;
    struct proto_wbuf w, reply;
    int r;

    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_ino_reserve_req_encode(&w, &q);
    r = fx_apply(f, PROTO_MSG_INO_RESERVE_REQ, &w, &reply);
    if (r == 0) {
        assert_int_equal(proto_ino_reserve_rep_decode(reply.p, reply.len, &rep),
                         0);
        *first = rep.first;
        if (got)
            *got = rep.count;
    }
    proto_wbuf_free(&reply);
    return r;
}

/* The first number of a successful reservation of @count. */
static uint64_t reserve_ok(struct fx *f, uint32_t count)
{
    uint64_t first = 0;
    uint32_t got = 0;

    assert_int_equal(reserve(f, count, &first, &got), 0);
    assert_int_equal(got, count);
    assert_true(first > ROOT);
    return first;
}

static void session_close(struct fx *f, uint64_t session)
{
    struct proto_session_id q = {.session_id = session};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_session_id_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_SESSION_CLOSE_REQ, &w, NULL), 0);
}

static void session_expire(struct fx *f, uint64_t session)
{
    struct meta_op_session_expire m = {.session_id = session};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    meta_op_session_expire_encode(&w, &m);
    assert_int_equal(fx_apply(f, META_OP_SESSION_EXPIRE, &w, NULL), 0);
}

/* Two sessions get disjoint ranges, each exactly the size asked, and
 * each session only its own. */
static void test_meta_ino_reserve_disjoint_across_sessions(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session, s2 = fx_session_open(f);
    uint64_t a = reserve_ok(f, 100);

    f->session = s2;
    uint64_t b = reserve_ok(f, 50);
    f->session = s1;
    uint64_t c = reserve_ok(f, 7);

    assert_true(b >= a + 100);
    assert_true(c >= b + 50);
    assert_int_equal(meta_ino_reserved(f->db, s1, a), 0);
    assert_int_equal(meta_ino_reserved(f->db, s1, a + 99), 0);
    assert_int_equal(meta_ino_reserved(f->db, s1, a + 100), -EINVAL);
    assert_int_equal(meta_ino_reserved(f->db, s1, c + 6), 0);
    assert_int_equal(meta_ino_reserved(f->db, s2, b), 0);
    assert_int_equal(meta_ino_reserved(f->db, s2, b + 49), 0);
    assert_int_equal(meta_ino_reserved(f->db, s2, a), -EINVAL);
    assert_int_equal(meta_ino_reserved(f->db, s1, b), -EINVAL);
    assert_int_equal(meta_ino_reserved(f->db, s1, a - 1), -EINVAL);
}

/* The allocator's own numbers (MKDIR, MKNOD without INO) come after
 * every reserved range, before and after a restart of the numbering. */
static void test_meta_ino_allocator_skips_reserved(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, x;

    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    uint64_t first = reserve_ok(f, 1000);
    assert_true(first > d.ino);
    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &x), 0);
    assert_true(x.ino >= first + 1000);
    assert_int_equal(meta_ino_reserved(f->db, f->session, x.ino), -EINVAL);
    /* The next reservation starts after the allocator's last number. */
    assert_true(reserve_ok(f, 1) > x.ino);
}

/* The count is 1..65536; anything else is EINVAL and reserves nothing:
 * the next range starts right after the allocator's last number. */
static void test_meta_ino_reserve_count_bounds(void **state)
{
    struct fx *f = *state;
    struct proto_attr d;
    uint64_t first = 0;

    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    assert_int_equal(reserve(f, 0, &first, NULL), -EINVAL);
    assert_int_equal(reserve(f, PROTO_INO_RESERVE_MAX + 1, &first, NULL),
                     -EINVAL);
    uint64_t a = reserve_ok(f, 1);
    assert_int_equal(a, d.ino + 1);
    uint64_t b = reserve_ok(f, PROTO_INO_RESERVE_MAX);
    assert_int_equal(b, a + 1);
    assert_int_equal(reserve_ok(f, 1), b + PROTO_INO_RESERVE_MAX);
}

/* A range belongs to a session: a record without one, or of a session
 * that ended, reserves nothing (ENOSESSION on the wire). */
static void test_meta_ino_reserve_needs_session(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session, first = 0;

    f->session = 0;
    assert_int_equal(reserve(f, 10, &first, NULL), -ENOTCONN);
    f->session = 999;
    assert_int_equal(reserve(f, 10, &first, NULL), -ENOTCONN);
    f->session = s1;
    assert_int_equal(reserve_ok(f, 1), ROOT + 1);
}

/* A session keeps its 8 newest ranges: the 9th drops the first, whose
 * numbers no one gets back. */
static void test_meta_ino_reserve_keeps_eight(void **state)
{
    struct fx *f = *state;
    uint64_t first[META_INO_RANGES_MAX + 1];

    for (int i = 0; i <= META_INO_RANGES_MAX; i++) {
        first[i] = reserve_ok(f, 10);
        assert_int_equal(meta_ino_reserved(f->db, f->session, first[0]),
                         i < META_INO_RANGES_MAX ? 0 : -EINVAL);
    }
    assert_int_equal(meta_ino_reserved(f->db, f->session, first[0] + 9),
                     -EINVAL);
    for (int i = 1; i <= META_INO_RANGES_MAX; i++) {
        assert_int_equal(meta_ino_reserved(f->db, f->session, first[i]), 0);
        assert_int_equal(meta_ino_reserved(f->db, f->session, first[i] + 9), 0);
    }
    assert_true(reserve_ok(f, 1) > first[META_INO_RANGES_MAX] + 9);
}

/* SESSION_CLOSE and SESSION_EXPIRE drop the session's ranges, and only
 * its own; the numbers stay out of the allocator's reach. */
static void test_meta_ino_session_end_drops_ranges(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session, s2 = fx_session_open(f);
    uint64_t a = reserve_ok(f, 5);
    struct proto_attr x;

    f->session = s2;
    uint64_t b = reserve_ok(f, 5);
    f->session = 0;
    session_close(f, s1);
    assert_int_equal(meta_ino_reserved(f->db, s1, a), -EINVAL);
    assert_int_equal(meta_ino_reserved(f->db, s2, b), 0);
    session_expire(f, s2);
    assert_int_equal(meta_ino_reserved(f->db, s2, b), -EINVAL);
    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &x), 0);
    assert_true(x.ino >= b + 5);
}

/* Replaying the op log into a fresh database reserves the same ranges
 * and numbers the same inodes: nothing in the apply depends on a clock. */
static void test_meta_ino_replay_same_ranges(void **state)
{
    struct fx *f = *state;
    struct meta_db *copy;
    struct fx g = {0};
    uint64_t a = reserve_ok(f, 3);
    struct proto_attr x, y;

    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &x), 0);
    assert_int_equal(meta_db_open(":memory:", &copy), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, fx_replay_op, copy), 0);
    g.db = copy;
    assert_int_equal(meta_ino_reserved(copy, f->session, a + 2), 0);
    assert_int_equal(do_lookup(&g, cred_root(), ROOT, "x", &y), 0);
    assert_int_equal(y.ino, x.ino);
    meta_db_close(copy);
}

int test_meta_ino(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown)
        T(test_meta_ino_reserve_disjoint_across_sessions),
        T(test_meta_ino_allocator_skips_reserved),
        T(test_meta_ino_reserve_count_bounds),
        T(test_meta_ino_reserve_needs_session),
        T(test_meta_ino_reserve_keeps_eight),
        T(test_meta_ino_session_end_drops_ranges),
        T(test_meta_ino_replay_same_ranges),
#undef T
    };
    return cmocka_run_group_tests_name("meta_ino", tests, NULL, NULL);
}
