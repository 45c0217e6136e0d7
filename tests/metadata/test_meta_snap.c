/* test_meta_snap.c: what a replica of a metad group keeps in its
 * database: the last applied log index, stored with each record
 * (meta_apply_at()), and snapshots of the whole database made and
 * restored with SQLite's backup API (meta_snap.c).
 */
#include "test_meta_util.h"

#include "meta_internal.h"
#include "meta_propose.h"

static int fx_setup_dir(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char path[96];
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/meta-snap-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/a.db", f->dir);
    assert_int_equal(meta_db_open(path, &f->db), 0);
    f->now = T0;
    *state = f;
    return 0;
}

/* Apply MKDIR @name under the root as log entry @index of @db. */
static int apply_mkdir_at(struct fx *f, struct meta_db *db, uint64_t index,
                          const char *name)
{
    struct proto_wbuf w, rec, reply;
    struct meta_op op = mkdir_op(f, name, &w);
    int rc;
    proto_wbuf_init(&rec);
    proto_wbuf_init(&reply);
    meta_op_record_encode(&rec, &op);
    rc = meta_log_apply(db, index, rec.p, rec.len, &reply);
    proto_wbuf_free(&w);
    proto_wbuf_free(&rec);
    proto_wbuf_free(&reply);
    return rc;
}

static uint64_t applied(struct meta_db *db)
{
    uint64_t v = 99;
    assert_int_equal(meta_db_applied(db, &v), 0);
    return v;
}

/* LOOKUP @name under the root of @db. */
static int lookup_in(struct fx *f, struct meta_db *db, const char *name)
{
    struct meta_db *keep = f->db;
    int rc;
    f->db = db;
    rc = do_lookup(f, cred_root(), ROOT, name, NULL);
    f->db = keep;
    return rc;
}

static struct meta_db *open_other(struct fx *f, const char *name)
{
    char path[96];
    struct meta_db *db;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    assert_int_equal(meta_db_open(path, &db), 0);
    return db;
}

static void test_meta_apply_at_stores_index(void **state)
{
    struct fx *f = *state;
    assert_int_equal(applied(f->db), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 7, "d"), 0);
    assert_int_equal(applied(f->db), 7);
    /* A refused record changes nothing, the index included: replaying it
     * is refused the same way. */
    assert_int_equal(apply_mkdir_at(f, f->db, 8, "d"), -EEXIST);
    assert_int_equal(applied(f->db), 7);
    /* The local log stores none. */
    assert_int_equal(apply_mkdir_at(f, f->db, 0, "e"), 0);
    assert_int_equal(applied(f->db), 7);
}

static uint64_t oplog_rows(struct meta_db *db)
{
    struct meta_stats st;
    assert_int_equal(meta_stats_get(db, &st), 0);
    return st.ops;
}

/* Records of a replicated log stay out of the op log table (the log keeps
 * them); the local log's go in. */
static void test_meta_apply_at_keeps_no_oplog(void **state)
{
    struct fx *f = *state;
    uint64_t rows = oplog_rows(f->db);
    assert_int_equal(apply_mkdir_at(f, f->db, 1, "r1"), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 2, "r2"), 0);
    assert_int_equal(oplog_rows(f->db), rows);
    assert_int_equal(apply_mkdir_at(f, f->db, 0, "l"), 0);
    assert_int_equal(oplog_rows(f->db), rows + 1);
}

static void test_meta_db_snapshot_restores_elsewhere(void **state)
{
    struct fx *f = *state;
    struct meta_db *b = open_other(f, "b.db");
    void *snap;
    size_t len;
    assert_int_equal(apply_mkdir_at(f, f->db, 3, "x"), 0);
    assert_int_equal(meta_db_snapshot(f->db, &snap, &len), 0);
    assert_true(len > 0);
    /* Changes after the snapshot are not in it. */
    assert_int_equal(apply_mkdir_at(f, f->db, 4, "y"), 0);
    assert_int_equal(meta_db_restore(b, snap, len), 0);
    meta_db_snapshot_free(snap);
    assert_int_equal(applied(b), 3);
    assert_int_equal(lookup_in(f, b, "x"), 0);
    assert_int_equal(lookup_in(f, b, "y"), -ENOENT);
    /* The restored database goes on applying records. */
    assert_int_equal(apply_mkdir_at(f, b, 4, "y"), 0);
    assert_int_equal(lookup_in(f, b, "y"), 0);
    meta_db_close(b);
}

static void test_meta_db_restore_older_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct meta_db *b = open_other(f, "b.db");
    void *snap;
    size_t len;
    assert_int_equal(apply_mkdir_at(f, f->db, 2, "old"), 0);
    assert_int_equal(meta_db_snapshot(f->db, &snap, &len), 0);
    assert_int_equal(apply_mkdir_at(f, b, 2, "old"), 0);
    assert_int_equal(apply_mkdir_at(f, b, 3, "newer"), 0);
    assert_int_equal(meta_db_restore(b, snap, len), 0);
    meta_db_snapshot_free(snap);
    assert_int_equal(applied(b), 3);
    assert_int_equal(lookup_in(f, b, "newer"), 0);
    meta_db_close(b);
}

static void test_meta_db_restore_refuses_garbage(void **state)
{
    struct fx *f = *state;
    uint8_t junk[512];
    memset(junk, 0x5a, sizeof(junk));
    assert_int_equal(meta_db_restore(f->db, junk, sizeof(junk)), -EPROTO);
    assert_int_equal(meta_db_restore(f->db, junk, 10), -EPROTO);
    /* SQLite's magic, then nonsense. */
    memcpy(junk, "SQLite format 3", 16);
    assert_int_equal(meta_db_restore(f->db, junk, sizeof(junk)), -EPROTO);
    assert_int_equal(apply_mkdir_at(f, f->db, 1, "still"), 0);
}

/* A batch: each record is refused or kept alone, the connection sees them
 * at once, another connection (and so a crash) only after the commit. */
static void test_meta_db_batch_commits_records_together(void **state)
{
    struct fx *f = *state;
    struct meta_db *other = open_other(f, "a.db");
    assert_int_equal(meta_db_batch_commit(f->db), 0); /* none open */
    assert_int_equal(meta_db_batch_begin(f->db), 0);
    assert_true(meta_db_batch_open(f->db));
    assert_int_equal(meta_db_batch_begin(f->db), 0); /* open already */
    assert_int_equal(apply_mkdir_at(f, f->db, 1, "a"), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 2, "a"), -EEXIST);
    assert_int_equal(apply_mkdir_at(f, f->db, 3, "b"), 0);
    assert_int_equal(applied(f->db), 3);
    assert_int_equal(lookup_in(f, f->db, "a"), 0);
    assert_int_equal(lookup_in(f, f->db, "b"), 0);
    assert_int_equal(applied(other), 0);
    assert_int_equal(lookup_in(f, other, "a"), -ENOENT);
    assert_int_equal(meta_db_batch_commit(f->db), 0);
    assert_false(meta_db_batch_open(f->db));
    assert_int_equal(applied(other), 3);
    assert_int_equal(lookup_in(f, other, "a"), 0);
    assert_int_equal(lookup_in(f, other, "b"), 0);
    /* Without a batch each record commits on its own again. */
    assert_int_equal(apply_mkdir_at(f, f->db, 4, "c"), 0);
    assert_int_equal(lookup_in(f, other, "c"), 0);
    assert_int_equal(applied(other), 4);
    /* The index a batch commits is its last record kept (a refused one
     * is applied again after a restart, and refused again). */
    assert_int_equal(meta_db_batch_begin(f->db), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 5, "d"), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 6, "d"), -EEXIST);
    assert_int_equal(applied(f->db), 5);
    assert_int_equal(applied(other), 4);
    assert_int_equal(meta_db_batch_commit(f->db), 0);
    assert_int_equal(applied(other), 5);
    assert_int_equal(lookup_in(f, other, "d"), 0);
    /* A record's index counts only once its savepoint is released. */
    assert_int_equal(meta_db_batch_begin(f->db), 0);
    assert_int_equal(meta_tx_begin(f->db), 0);
    assert_int_equal(meta_db_applied_set(f->db, 9), 0);
    meta_tx_rollback(f->db);
    assert_int_equal(applied(f->db), 5);
    assert_int_equal(meta_db_batch_commit(f->db), 0);
    assert_int_equal(applied(other), 5);
    meta_db_close(other);
}

/* A batch still open when the database closes is committed. */
static void test_meta_db_close_commits_batch(void **state)
{
    struct fx *f = *state;
    assert_int_equal(meta_db_batch_begin(f->db), 0);
    assert_int_equal(apply_mkdir_at(f, f->db, 5, "kept"), 0);
    meta_db_close(f->db);
    f->db = open_other(f, "a.db");
    assert_int_equal(applied(f->db), 5);
    assert_int_equal(lookup_in(f, f->db, "kept"), 0);
}

int test_meta_snap(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_dir, fx_teardown)
        T(test_meta_apply_at_stores_index),
        T(test_meta_apply_at_keeps_no_oplog),
        T(test_meta_db_snapshot_restores_elsewhere),
        T(test_meta_db_restore_older_changes_nothing),
        T(test_meta_db_restore_refuses_garbage),
        T(test_meta_db_batch_commits_records_together),
        T(test_meta_db_close_commits_batch),
#undef T
    };
    return cmocka_run_group_tests_name("meta_snap", tests, NULL, NULL);
}
