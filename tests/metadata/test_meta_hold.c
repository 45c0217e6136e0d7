/* test_meta_hold.c: open-unlinked files (meta_hold.c, docs/protocol.md
 * §6.22): holds taken by OPEN and MKNOD, orphans left by UNLINK and
 * RENAME, reclaimed by RELEASE, SESSION_CLOSE and session expiry. */
#include "test_meta_util.h"

#define R cred_root()

static int session_expire(struct fx *f, uint64_t id)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u64(&w, id);
    return fx_apply(f, META_OP_SESSION_EXPIRE, &w, NULL);
}

static int session_close(struct fx *f, uint64_t id)
{
    struct proto_wbuf w;
    struct proto_session_id q = {.session_id = id};
    proto_wbuf_init(&w);
    proto_session_id_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_SESSION_CLOSE_REQ, &w, NULL);
}

/* OPEN with HOLD as session f->session, through meta_apply() when the
 * daemon would make it a record (meta_open_records()), else a query. */
static int open_hold(struct fx *f, uint64_t ino, uint32_t flags)
{
    struct proto_wbuf w;
    struct proto_access_req q = {
        .cred = R, .ino = ino, .mask = flags | PROTO_OPEN_HOLD};
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &q);
    int rec = meta_open_records(f->db, f->session, w.p, w.len);
    assert_true(rec >= 0);
    return fx_attr_op(f, PROTO_MSG_OPEN_REQ, rec == 1, &w, NULL);
}

static int release(struct fx *f, uint64_t ino)
{
    struct proto_wbuf w;
    struct proto_ino_req q = {.ino = ino};
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_RELEASE_REQ, &w, NULL);
}

/* A file "name" in the root holding one chunk on a new server. */
static uint64_t file_with_chunk(struct fx *f, const char *name, uint32_t hold)
{
    static uint64_t chunk_id = 100;
    static uint8_t tag = 1;
    struct proto_attr a;
    assert_int_equal(
        do_mknod(f, R, ROOT, name, S_IFREG | 0644, PROTO_MKNOD_EXCL | hold, &a),
        0);
    uint32_t s = fx_server_add(f, tag++);
    assert_int_equal(fx_chunk_set1(f, a.ino, 0, ++chunk_id, 0, 1, s), 0);
    return a.ino;
}

static uint64_t orphans(struct fx *f)
{
    struct meta_stats st;
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    return st.orphans;
}

static void test_meta_hold_unlink_keeps_open_file(void **state)
{
    struct fx *f = *state;
    f->session = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "u", PROTO_MKNOD_HOLD);
    struct proto_attr a;

    assert_int_equal(do_unlink(f, R, ROOT, "u"), 0);
    assert_int_equal(do_lookup(f, R, ROOT, "u", NULL), -ENOENT);
    assert_int_equal(do_getattr(f, ino, &a), 0);
    assert_int_equal(a.nlink, 0);
    assert_int_equal(orphans(f), 1);
    assert_int_equal(fx_gc_count(f), 0); /* its chunk stays */
    struct meta_chunk c;
    assert_int_equal(meta_chunk_at(f->db, ino, 0, &c), 0);
    /* No new name for it (linkat of an unlinked open file). */
    assert_int_equal(do_link(f, R, ino, ROOT, "back", NULL), -ENOENT);

    assert_int_equal(release(f, ino), 0);
    assert_int_equal(do_getattr(f, ino, &a), -ENOENT);
    assert_int_equal(orphans(f), 0);
    assert_int_equal(fx_gc_count(f), 1);
    /* A repeated RELEASE (a retry) is not an error; the inode is. */
    assert_int_equal(release(f, ino), -ENOENT);
}

static void test_meta_hold_unlink_unheld_file_deletes(void **state)
{
    struct fx *f = *state;
    f->session = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "u", 0);
    assert_int_equal(do_unlink(f, R, ROOT, "u"), 0);
    assert_int_equal(do_getattr(f, ino, NULL), -ENOENT);
    assert_int_equal(fx_gc_count(f), 1);
}

static void test_meta_hold_open_records_once(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "f", 0);
    struct proto_wbuf w;
    struct proto_access_req q = {
        .cred = R, .ino = ino, .mask = O_RDWR | PROTO_OPEN_HOLD};
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &q);
    assert_int_equal(meta_open_records(f->db, s1, w.p, w.len), 1);
    assert_int_equal(meta_open_records(f->db, 0, w.p, w.len), 0);
    proto_wbuf_free(&w);

    assert_int_equal(open_hold(f, ino, O_RDWR), 0);
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &q);
    assert_int_equal(meta_open_records(f->db, s1, w.p, w.len), 0);
    proto_wbuf_free(&w);
    /* The checks of OPEN still apply to a record. */
    struct proto_attr d;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(open_hold(f, d.ino, O_RDWR), -EISDIR);
}

static void test_meta_hold_other_session_keeps_file(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session = fx_session_open(f);
    uint64_t s2 = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "f", 0);

    f->session = s2;
    assert_int_equal(open_hold(f, ino, O_RDONLY), 0);
    f->session = s1;
    assert_int_equal(do_unlink(f, R, ROOT, "f"), 0);
    assert_int_equal(do_getattr(f, ino, NULL), 0);
    /* s1 never held it: its release changes nothing. */
    assert_int_equal(release(f, ino), 0);
    assert_int_equal(do_getattr(f, ino, NULL), 0);
    /* The holder dies: its session expires and the orphan goes. */
    assert_int_equal(session_expire(f, s2), 0);
    assert_int_equal(do_getattr(f, ino, NULL), -ENOENT);
    assert_int_equal(fx_gc_count(f), 1);
}

static void test_meta_hold_last_of_two_holders_reclaims(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session = fx_session_open(f);
    uint64_t s2 = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "f", PROTO_MKNOD_HOLD);

    f->session = s2;
    assert_int_equal(open_hold(f, ino, O_RDONLY), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "f"), 0);
    assert_int_equal(release(f, ino), 0);
    assert_int_equal(do_getattr(f, ino, NULL), 0); /* s1 still holds it */
    assert_int_equal(session_close(f, s1), 0);
    assert_int_equal(do_getattr(f, ino, NULL), -ENOENT);
    assert_int_equal(orphans(f), 0);
}

static void test_meta_hold_rename_over_open_file(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session = fx_session_open(f);
    uint64_t dst = file_with_chunk(f, "dst", PROTO_MKNOD_HOLD);
    uint64_t src = file_with_chunk(f, "src", 0);

    assert_int_equal(do_rename(f, R, ROOT, "src", ROOT, "dst", 0), 0);
    assert_int_equal(ino_of(f, ROOT, "dst"), src);
    struct proto_attr a;
    assert_int_equal(do_getattr(f, dst, &a), 0);
    assert_int_equal(a.nlink, 0);
    assert_int_equal(fx_gc_count(f), 0);
    assert_int_equal(session_expire(f, s1), 0);
    assert_int_equal(do_getattr(f, dst, NULL), -ENOENT);
    assert_int_equal(do_getattr(f, src, NULL), 0);
    assert_int_equal(fx_gc_count(f), 1);
}

static void test_meta_hold_hard_link_left(void **state)
{
    struct fx *f = *state;
    f->session = fx_session_open(f);
    uint64_t ino = file_with_chunk(f, "a", PROTO_MKNOD_HOLD);
    assert_int_equal(do_link(f, R, ino, ROOT, "b", NULL), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "a"), 0);
    assert_int_equal(release(f, ino), 0);
    /* Still linked as "b": RELEASE reclaims only orphans. */
    struct proto_attr a;
    assert_int_equal(do_getattr(f, ino, &a), 0);
    assert_int_equal(a.nlink, 1);
    assert_int_equal(orphans(f), 0);
}

static void test_meta_hold_needs_live_session(void **state)
{
    struct fx *f = *state;
    uint64_t ino = file_with_chunk(f, "f", PROTO_MKNOD_HOLD);
    /* Without a session HOLD is ignored, and RELEASE refused. */
    assert_int_equal(open_hold(f, ino, O_RDONLY), 0);
    assert_int_equal(release(f, ino), -ENOTCONN);
    /* A session that is gone cannot take a hold (it would last for ever). */
    f->session = 77;
    assert_int_equal(open_hold(f, ino, O_RDONLY), -ENOTCONN);
    struct proto_attr a;
    assert_int_equal(
        do_mknod(f, R, ROOT, "g", S_IFREG | 0644, PROTO_MKNOD_HOLD, &a),
        -ENOTCONN);
    f->session = 0;
    assert_int_equal(do_unlink(f, R, ROOT, "f"), 0);
    assert_int_equal(do_getattr(f, ino, NULL), -ENOENT);
}

/* The op log replayed into a fresh database gives the same orphans. */
static void test_meta_hold_replays(void **state)
{
    struct fx *f = *state;
    uint64_t s1 = f->session = fx_session_open(f);
    uint64_t keep = file_with_chunk(f, "keep", PROTO_MKNOD_HOLD);
    uint64_t gone = file_with_chunk(f, "gone", PROTO_MKNOD_HOLD);
    assert_int_equal(do_unlink(f, R, ROOT, "keep"), 0);
    assert_int_equal(do_unlink(f, R, ROOT, "gone"), 0);
    assert_int_equal(release(f, gone), 0);
    (void)s1;

    struct meta_db *to;
    assert_int_equal(meta_db_open(":memory:", &to), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, fx_replay_op, to), 0);
    struct proto_attr a;
    struct meta_stats st;
    assert_int_equal(meta_stats_get(to, &st), 0);
    assert_int_equal(st.orphans, 1);
    struct meta_chunk c;
    assert_int_equal(meta_chunk_at(to, keep, 0, &c), 0);
    assert_int_equal(meta_chunk_at(to, gone, 0, &c), -ENOENT);
    meta_db_close(to);
    assert_int_equal(do_getattr(f, keep, &a), 0);
}

int test_meta_hold(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_hold_unlink_keeps_open_file),
        T(test_meta_hold_unlink_unheld_file_deletes),
        T(test_meta_hold_open_records_once),
        T(test_meta_hold_other_session_keeps_file),
        T(test_meta_hold_last_of_two_holders_reclaims),
        T(test_meta_hold_rename_over_open_file),
        T(test_meta_hold_hard_link_left),
        T(test_meta_hold_needs_live_session),
        T(test_meta_hold_replays),
#undef T
    };
    return cmocka_run_group_tests_name("meta_hold", tests, NULL, NULL);
}
