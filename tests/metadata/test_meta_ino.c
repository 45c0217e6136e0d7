/* test_meta_ino.c: inode numbers reserved to a session (meta_ino.c,
 * docs/protocol.md §6.23), and the MKNOD that names a new inode with one
 * of them (PROTO_MKNOD_INO, meta_ns.c, §6.8).  Every request goes through
 * meta_apply() as the daemon's records do; the ranges are read back through
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

/* The same in session @session, whatever @f's is. */
static uint64_t reserve_in(struct fx *f, uint64_t session, uint32_t count)
{
    uint64_t keep = f->session, first;

    f->session = session;
    first = reserve_ok(f, count);
    f->session = keep;
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

/* MKNOD of regular file @name under the root with PROTO_MKNOD_INO, the
 * number @ino and the time @time, and @flags besides. */
static int mknod_ino(struct fx *f, const char *name, uint64_t ino, int64_t time,
                     uint32_t flags, struct proto_attr *a)
{
    struct proto_mknod_req q = {.cred = cred_root(),
                                .parent = ROOT,
                                .mode = S_IFREG | 0640,
                                .flags = PROTO_MKNOD_INO | flags,
                                .name = str_of(name),
                                .ino = ino,
                                .time = time};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_MKNOD_REQ, true, &w, a);
}

/* Two sessions get disjoint ranges, each exactly the size asked, and
 * each session only its own. */
static void test_meta_ino_reserve_disjoint_across_sessions(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session, s2 = fx_session_open(f);
    uint64_t a = reserve_ok(f, 100);
    uint64_t b = reserve_in(f, s2, 50);
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
    uint64_t a = reserve_ok(f, 5), b = reserve_in(f, s2, 5);
    struct proto_attr x;

    f->session = 0;
    session_close(f, s1);
    assert_int_equal(meta_ino_reserved(f->db, s1, a), -EINVAL);
    assert_int_equal(meta_ino_reserved(f->db, s2, b), 0);
    session_expire(f, s2);
    assert_int_equal(meta_ino_reserved(f->db, s2, b), -EINVAL);
    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &x), 0);
    assert_true(x.ino >= b + 5);
}

/* docs/protocol.md §6.8: a number of the session's range, unused, names
 * the new file; the file and its directory take the client's time when it
 * is within a minute of the op's, else the op's. */
static void test_meta_ns_mknod_ino_creates_with_number(void **state)
{
    struct fx *f = *state;
    uint64_t first = reserve_ok(f, 10);
    const int64_t t = f->now - 1500000000ll; /* 1.5 s behind */
    struct proto_attr a, got, dir;

    assert_int_equal(mknod_ino(f, "x", first + 3, t, PROTO_MKNOD_EXCL, &a), 0);
    assert_int_equal(a.ino, first + 3);
    assert_int_equal(a.atime, t);
    assert_int_equal(a.mtime, t);
    assert_int_equal(a.ctime, t);
    assert_int_equal(a.mode, S_IFREG | 0640);
    assert_int_equal(a.nlink, 1);
    got = attr_of(f, first + 3);
    assert_int_equal(got.mtime, t);
    assert_int_equal(got.ctime, t);
    assert_int_equal(ino_of(f, ROOT, "x"), first + 3);
    dir = attr_of(f, ROOT);
    assert_int_equal(dir.mtime, t);
    assert_int_equal(dir.ctime, t);
    /* A clock two minutes off: the op's time for both. */
    const int64_t far = f->now + 120000000000ll;
    assert_int_equal(mknod_ino(f, "w", first + 4, far, 0, &a), 0);
    assert_int_equal(a.mtime, f->now);
    dir = attr_of(f, ROOT);
    assert_int_equal(dir.mtime, f->now);
    /* Numbers of the range are used in any order; the allocator still
     * skips the range. */
    assert_int_equal(mknod_ino(f, "y", first, t, 0, &a), 0);
    assert_int_equal(a.ino, first);
    assert_int_equal(do_create(f, cred_root(), ROOT, "z", 0644, &a), 0);
    assert_true(a.ino >= first + 10);
}

/* UNLINK with the client's time (docs/protocol.md §6.12): the directory
 * takes it within a minute of the op's time, else the op's; without it,
 * the op's. */
static int unlink_at(struct fx *f, const char *name, int64_t time)
{
    struct proto_lookup_req q = {.cred = cred_root(),
                                 .parent = ROOT,
                                 .name = str_of(name),
                                 .time = time};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_UNLINK_REQ, &w, NULL);
}

static void test_meta_ns_unlink_with_time(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    const int64_t t = f->now - 2000000000ll;

    assert_int_equal(do_create(f, cred_root(), ROOT, "u1", 0644, &a), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "u2", 0644, &a), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "u3", 0644, &a), 0);
    assert_int_equal(unlink_at(f, "u1", t), 0);
    assert_int_equal(attr_of(f, ROOT).mtime, t);
    assert_int_equal(attr_of(f, ROOT).ctime, t);
    assert_int_equal(unlink_at(f, "u2", f->now - 61000000000ll), 0);
    assert_int_equal(attr_of(f, ROOT).mtime, f->now);
    assert_int_equal(unlink_at(f, "u3", t), 0);
    assert_int_equal(unlink_at(f, "u3", 0), -ENOENT);
}

/* A number outside every range of the record's session is EINVAL: past
 * the range, another session's, the allocator's, or without a session. */
static void test_meta_ns_mknod_ino_outside_range(void **state)
{
    struct fx *f = *state;
    uint64_t s2 = fx_session_open(f);
    uint64_t mine = reserve_ok(f, 4), theirs = reserve_in(f, s2, 4);
    struct proto_attr a;

    assert_int_equal(mknod_ino(f, "x", mine + 4, T0, 0, NULL), -EINVAL);
    assert_int_equal(mknod_ino(f, "x", mine - 1, T0, 0, NULL), -EINVAL);
    assert_int_equal(mknod_ino(f, "x", theirs, T0, 0, NULL), -EINVAL);
    assert_int_equal(mknod_ino(f, "x", 0, T0, 0, NULL), -EINVAL);
    assert_int_equal(mknod_ino(f, "x", UINT64_MAX, T0, 0, NULL), -EINVAL);
    f->session = 0;
    assert_int_equal(mknod_ino(f, "x", mine, T0, 0, NULL), -EINVAL);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "x", &a), -ENOENT);
    f->session = s2;
    assert_int_equal(mknod_ino(f, "x", theirs, T0, 0, &a), 0);
    assert_int_equal(a.ino, theirs);
}

/* A number of the range that names an inode already is EEXIST, and the
 * name is not made. */
static void test_meta_ns_mknod_ino_used_number(void **state)
{
    struct fx *f = *state;
    uint64_t first = reserve_ok(f, 4);
    struct proto_attr a;

    assert_int_equal(mknod_ino(f, "x", first, T0, PROTO_MKNOD_EXCL, NULL), 0);
    assert_int_equal(mknod_ino(f, "y", first, T0, PROTO_MKNOD_EXCL, NULL),
                     -EEXIST);
    assert_int_equal(mknod_ino(f, "y", first, T0, 0, NULL), -EEXIST);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "y", &a), -ENOENT);
    assert_int_equal(attr_of(f, ROOT).nlink, 2);
}

/* The checks without INO come first and keep their order: a missing
 * parent is ENOENT whatever the number, an existing name with EXCL
 * EEXIST, and without EXCL the existing file, its number unchanged. */
static void test_meta_ns_mknod_ino_other_checks_first(void **state)
{
    struct fx *f = *state;
    uint64_t first = reserve_ok(f, 4);
    struct proto_attr x, a;
    struct proto_wbuf w;
    struct proto_mknod_req q = {.cred = cred_root(),
                                .parent = 9999,
                                .mode = S_IFREG | 0644,
                                .flags = PROTO_MKNOD_INO,
                                .name = str_of("n"),
                                .ino = 1};

    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_MKNOD_REQ, &w, NULL), -ENOENT);
    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &x), 0);
    assert_int_equal(mknod_ino(f, "x", 1, T0, PROTO_MKNOD_EXCL, NULL), -EEXIST);
    assert_int_equal(mknod_ino(f, "x", first, T0, 0, &a), 0);
    assert_int_equal(a.ino, x.ino);
    assert_int_equal(a.mtime, x.mtime);
    /* The number stays free for another name. */
    assert_int_equal(mknod_ino(f, "y", first, T0, PROTO_MKNOD_EXCL, &a), 0);
    assert_int_equal(a.ino, first);
}

/* Once the session ended (closed or expired), its numbers are refused. */
static void test_meta_ns_mknod_ino_after_session_end(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session, s2 = fx_session_open(f);
    uint64_t a = reserve_ok(f, 4), b = reserve_in(f, s2, 4);

    session_close(f, s1);
    session_expire(f, s2);
    f->session = s1;
    assert_int_equal(mknod_ino(f, "x", a, T0, 0, NULL), -EINVAL);
    f->session = s2;
    assert_int_equal(mknod_ino(f, "x", b, T0, 0, NULL), -EINVAL);
}

/* The 9th range dropped the first: its numbers are refused, the 8 kept
 * are not. */
static void test_meta_ns_mknod_ino_dropped_range(void **state)
{
    struct fx *f = *state;
    uint64_t oldest = reserve_ok(f, 2), newest = oldest;

    for (int i = 0; i < META_INO_RANGES_MAX; i++)
        newest = reserve_ok(f, 2);
    assert_int_equal(mknod_ino(f, "x", oldest, T0, 0, NULL), -EINVAL);
    assert_int_equal(mknod_ino(f, "x", newest + 1, T0, 0, NULL), 0);
}

/* A MKNOD with INO sent again in the session (the same request id) is
 * answered as the first time, though its number is now used. */
static void test_meta_ns_mknod_ino_sent_again(void **state)
{
    struct fx *f = *state;
    uint64_t first = reserve_ok(f, 4);
    struct proto_attr a, b;

    f->req_id = 77;
    assert_int_equal(mknod_ino(f, "x", first, T0, PROTO_MKNOD_EXCL, &a), 0);
    assert_int_equal(mknod_ino(f, "x", first, T0, PROTO_MKNOD_EXCL, &b), 0);
    assert_int_equal(b.ino, a.ino);
    assert_int_equal(b.version, a.version);
    f->req_id = 78;
    assert_int_equal(mknod_ino(f, "x", first, T0, PROTO_MKNOD_EXCL, NULL),
                     -EEXIST);
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
    assert_int_equal(mknod_ino(f, "z", a + 1, T0, 0, NULL), 0);
    assert_int_equal(meta_db_open(":memory:", &copy), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, fx_replay_op, copy), 0);
    g.db = copy;
    assert_int_equal(meta_ino_reserved(copy, f->session, a + 2), 0);
    assert_int_equal(do_lookup(&g, cred_root(), ROOT, "x", &y), 0);
    assert_int_equal(y.ino, x.ino);
    assert_int_equal(do_lookup(&g, cred_root(), ROOT, "z", &y), 0);
    assert_int_equal(y.ino, a + 1);
    assert_int_equal(y.ctime, T0);
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
        T(test_meta_ns_mknod_ino_creates_with_number),
        T(test_meta_ns_unlink_with_time),
        T(test_meta_ns_mknod_ino_outside_range),
        T(test_meta_ns_mknod_ino_used_number),
        T(test_meta_ns_mknod_ino_other_checks_first),
        T(test_meta_ns_mknod_ino_after_session_end),
        T(test_meta_ns_mknod_ino_dropped_range),
        T(test_meta_ns_mknod_ino_sent_again),
        T(test_meta_ino_replay_same_ranges),
#undef T
    };
    return cmocka_run_group_tests_name("meta_ino", tests, NULL, NULL);
}
