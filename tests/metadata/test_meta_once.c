/* test_meta_once.c: a session's requests answered once (meta_once.c).
 * A record made from a request that was applied before, the same session
 * and request id, changes nothing and answers as the first time did:
 * success with the same body, or the same error.  Other records, those
 * of no session or of another request, are applied as always.
 */
#include "test_meta_util.h"

#include <sqlite3.h>

#include "meta_internal.h"

/* Rows of replies kept for @session. */
static int64_t kept(struct fx *f, uint64_t session)
{
    sqlite3_stmt *s;
    int64_t n;

    assert_int_equal(sqlite3_prepare_v2(f->db->sql,
                                        "SELECT count(*) FROM replies"
                                        " WHERE session_id = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, (int64_t)session);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return n;
}

/* The reply body of creating @name under the root, in @f's session as
 * request f->req_id; its status. */
static int create_reply(struct fx *f, const char *name, struct proto_wbuf *out)
{
    struct proto_mknod_req q = {.cred = cred_root(),
                                .parent = ROOT,
                                .mode = S_IFREG | 0644,
                                .flags = PROTO_MKNOD_EXCL,
                                .name = str_of(name)};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_wbuf_init(out);
    proto_mknod_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_MKNOD_REQ, &w, out);
}

static int setup(void **state)
{
    int r = fx_setup_mem(state);
    struct fx *f = *state;

    f->session = fx_session_open(f);
    return r;
}

/* A create sent again is answered with the first reply, byte for byte,
 * and makes nothing more. */
static void test_meta_once_create_again(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf a, b;
    struct proto_attr other;

    f->req_id = 7;
    assert_int_equal(create_reply(f, "a", &a), 0);
    assert_int_equal(create_reply(f, "a", &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    /* Without the same request id, the same create is a second one. */
    f->req_id = 8;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL),
                     -EEXIST);
    f->req_id = 9;
    assert_int_equal(do_create(f, cred_root(), ROOT, "b", 0644, &other), 0);
    /* No inode was made in between: the retry made none. */
    assert_int_equal(other.ino, ino_of(f, ROOT, "a") + 1);
    proto_wbuf_free(&a);
    proto_wbuf_free(&b);
}

/* An unlink sent again succeeds again instead of ENOENT. */
static void test_meta_once_unlink_again(void **state)
{
    struct fx *f = *state;

    f->req_id = 3;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL), 0);
    f->req_id = 4;
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "a"), 0);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "a"), 0);
    f->req_id = 5;
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "a"), -ENOENT);
}

/* A failure is kept too: sent again after the world changed, the request
 * still fails as it did, and changes nothing. */
static void test_meta_once_failure_again(void **state)
{
    struct fx *f = *state;

    f->req_id = 10;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL), 0);
    f->req_id = 11;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL),
                     -EEXIST);
    f->req_id = 12;
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "a"), 0);
    f->req_id = 11;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL),
                     -EEXIST);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), -ENOENT);
}

/* A slot keeps the newest request that falls in it: an older one sent
 * again after META_ONCE_SLOTS more is applied anew. */
static void test_meta_once_slot_reused(void **state)
{
    struct fx *f = *state;

    f->req_id = 20;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, NULL), 0);
    f->req_id = 20 + META_ONCE_SLOTS;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "e", 0755, NULL), 0);
    assert_int_equal(kept(f, f->session), 1); /* one slot, the newer */
    f->req_id = 20;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, NULL),
                     -EEXIST);
}

/* Records of no session, or with no request id, keep nothing and are
 * applied each time. */
static void test_meta_once_only_requests(void **state)
{
    struct fx *f = *state;
    uint64_t session = f->session;

    f->req_id = 0;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL),
                     -EEXIST);
    f->session = 0;
    f->req_id = 30;
    assert_int_equal(do_create(f, cred_root(), ROOT, "b", 0644, NULL), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "b", 0644, NULL),
                     -EEXIST);
    assert_int_equal(kept(f, session), 0);
    assert_int_equal(kept(f, 0), 0);
}

/* A session's kept outcomes go when it ends. */
static void test_meta_once_session_end(void **state)
{
    struct fx *f = *state;
    struct proto_session_id q = {.session_id = f->session};
    struct proto_wbuf w;

    f->req_id = 40;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL), 0);
    f->req_id = 41;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, NULL),
                     -EEXIST);
    assert_int_equal(kept(f, f->session), 2);
    f->req_id = 42;
    proto_wbuf_init(&w);
    proto_session_id_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_SESSION_CLOSE_REQ, &w, NULL), 0);
    assert_int_equal(kept(f, q.session_id), 0);
}

/* With a log index (a group's replica), a record applied again still
 * moves the applied index, and its answer is the first one's. */
static void test_meta_once_applied_index(void **state)
{
    struct fx *f = *state;
    struct proto_mkdir_req q = {.cred = cred_root(),
                                .parent = ROOT,
                                .mode = 0755,
                                .name = str_of("d")};
    struct proto_wbuf w, r1, r2;
    struct meta_op op;
    uint64_t applied = 0;

    proto_wbuf_init(&w);
    proto_wbuf_init(&r1);
    proto_wbuf_init(&r2);
    proto_mkdir_req_encode(&w, &q);
    op = (struct meta_op){.format = META_OP_FORMAT,
                          .opcode = PROTO_MSG_MKDIR_REQ,
                          .now = f->now + 1000,
                          .session_id = f->session,
                          .req_id = 50,
                          .payload = w.p,
                          .len = w.len};
    assert_int_equal(meta_apply_at(f->db, &op, 5, &r1), 0);
    op.now += 1000;
    assert_int_equal(meta_apply_at(f->db, &op, 6, &r2), 0);
    assert_int_equal(meta_counter_get(f->db, META_COUNTER_APPLIED, &applied),
                     0);
    assert_int_equal(applied, 6);
    assert_int_equal(r1.len, r2.len);
    assert_memory_equal(r1.p, r2.p, r1.len);
    proto_wbuf_free(&w);
    proto_wbuf_free(&r1);
    proto_wbuf_free(&r2);
}

int test_meta_once(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, fx_teardown)
        T(test_meta_once_create_again),
        T(test_meta_once_unlink_again),
        T(test_meta_once_failure_again),
        T(test_meta_once_slot_reused),
        T(test_meta_once_only_requests),
        T(test_meta_once_session_end),
        T(test_meta_once_applied_index),
#undef T
    };
    return cmocka_run_group_tests_name("meta_once", tests, NULL, NULL);
}
