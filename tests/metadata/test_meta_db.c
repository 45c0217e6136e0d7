/* test_meta_db.c: the schema migrations of meta_db.c.  A database left at
 * an older version by an earlier tessera-metad is opened and must end up
 * with every later migration applied, in order, and its data kept.
 */
#include "test_meta_util.h"

#include <sqlite3.h>

#define SCHEMA_NOW 12 /* migrations in meta_db.c */

static int fx_setup_file(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/meta-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->now = T0;
    *state = f;
    return 0;
}

static void db_path(const struct fx *f, char *buf, size_t size)
{
    snprintf(buf, size, "%s/meta.db", f->dir);
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *s;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(s, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_close(s);
}

/* The single integer @sql selects from @path. */
static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *s;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(s, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(s);
    return v;
}

static bool has_column(const char *path, const char *table, const char *col)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pragma_table_info('%s') WHERE name = '%s'",
             table, col);
    return sql_int(path, sql) == 1;
}

/* A fresh database, one directory made in it (so the op log has a
 * record), closed again. */
static void make_db(struct fx *f, const char *path)
{
    assert_int_equal(meta_db_open(path, &f->db), 0);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, NULL), 0);
    meta_db_close(f->db);
    f->db = NULL;
}

static void reopen(struct fx *f, const char *path)
{
    assert_int_equal(meta_db_open(path, &f->db), 0);
}

static void test_meta_db_new_has_every_migration(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "oplog", "format"));
    assert_true(has_column(path, "chunks", "origin"));
    assert_true(has_column(path, "chunks", "alloc"));
    assert_true(has_column(path, "replies", "req_id"));
    assert_true(has_column(path, "ino_ranges", "end_ino"));
    reopen(f, path);
}

/* Version 6: the op log's format column is there, chunks.origin is not. */
static void test_meta_db_from_6_adds_chunk_origin(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies;"
                   "DROP TABLE identities; DROP TABLE service_keys;"
                   "DROP TABLE members;"
                   "ALTER TABLE chunks DROP COLUMN alloc;"
                   "ALTER TABLE chunks DROP COLUMN origin;"
                   "PRAGMA user_version = 6;");
    assert_false(has_column(path, "chunks", "origin"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "chunks", "origin"));
    assert_true(has_column(path, "oplog", "format"));
    assert_true(has_column(path, "identities", "caps"));
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* Version 7 (every migration of a metad without authentication): the
 * identity and service key tables are added, empty. */
static void test_meta_db_from_7_adds_identities(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies;"
                   "DROP TABLE identities; DROP TABLE service_keys;"
                   "DROP TABLE members;"
                   "ALTER TABLE chunks DROP COLUMN alloc;"
                   "PRAGMA user_version = 7;");
    assert_false(has_column(path, "identities", "name"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "identities", "secret"));
    assert_true(has_column(path, "service_keys", "secret"));
    assert_int_equal(sql_int(path, "SELECT count(*) FROM identities"), 0);
    assert_true(has_column(path, "chunks", "origin"));
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* Version 5: both columns added, the records written before all format 1. */
static void test_meta_db_from_5_adds_both(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies;"
                   "DROP TABLE identities; DROP TABLE service_keys;"
                   "DROP TABLE members;"
                   "ALTER TABLE chunks DROP COLUMN alloc;"
                   "ALTER TABLE chunks DROP COLUMN origin;"
                   "ALTER TABLE oplog DROP COLUMN format;"
                   "PRAGMA user_version = 5;");
    assert_false(has_column(path, "oplog", "format"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "chunks", "origin"));
    assert_true(has_column(path, "oplog", "format"));
    assert_true(has_column(path, "identities", "caps"));
    assert_true(sql_int(path, "SELECT count(*) FROM oplog") > 0);
    assert_int_equal(
        sql_int(path, "SELECT count(*) FROM oplog WHERE format != 1"), 0);
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* Version 8 (a metad before replication): the members table is added,
 * empty. */
static void test_meta_db_from_8_adds_members(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies;"
                   "DROP TABLE members; ALTER TABLE chunks DROP COLUMN alloc;"
                   "PRAGMA user_version = 8;");
    assert_false(has_column(path, "members", "id"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "members", "client_addr"));
    assert_int_equal(sql_int(path, "SELECT count(*) FROM members"), 0);
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* Version 9 (a metad before chunks' usage): chunks.alloc is added, NULL
 * for the chunks already there (counted by size until reported). */
static void test_meta_db_from_9_adds_chunk_alloc(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies;"
                   "ALTER TABLE chunks DROP COLUMN alloc;"
                   "INSERT INTO chunks(chunk_id, version, origin)"
                   " VALUES(3, 1, 0);"
                   "PRAGMA user_version = 9;");
    assert_false(has_column(path, "chunks", "alloc"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "chunks", "alloc"));
    assert_int_equal(
        sql_int(path, "SELECT count(*) FROM chunks WHERE alloc IS NULL"), 1);
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* A database from a newer metad is refused, not downgraded. */
/* Version 10 (a metad before kept replies): the replies table is added,
 * empty. */
static void test_meta_db_from_10_adds_replies(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; DROP TABLE replies; PRAGMA user_version = 10;");
    assert_false(has_column(path, "replies", "req_id"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "replies", "body"));
    assert_int_equal(sql_int(path, "SELECT count(*) FROM replies"), 0);
    assert_int_not_equal(ino_of(f, ROOT, "d"), 0);
}

/* Version 11 (a metad before reserved inode numbers): the ino_ranges
 * table is added, empty, and the allocator goes on after the numbers it
 * handed out. */
static void test_meta_db_from_11_adds_ino_ranges(void **state)
{
    struct fx *f = *state;
    char path[96];
    struct proto_attr e;
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "DROP TABLE ino_ranges; PRAGMA user_version = 11;");
    assert_false(has_column(path, "ino_ranges", "end_ino"));

    reopen(f, path);
    assert_int_equal(sql_int(path, "PRAGMA user_version"), SCHEMA_NOW);
    assert_true(has_column(path, "ino_ranges", "end_ino"));
    assert_int_equal(sql_int(path, "SELECT count(*) FROM ino_ranges"), 0);
    uint64_t d = ino_of(f, ROOT, "d");
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "e", 0755, &e), 0);
    assert_int_equal(e.ino, d + 1);
}

static void test_meta_db_newer_refused(void **state)
{
    struct fx *f = *state;
    char path[96];
    db_path(f, path, sizeof(path));
    make_db(f, path);
    sql_exec(path, "PRAGMA user_version = 13;");
    assert_true(meta_db_open(path, &f->db) < 0);
    f->db = NULL;
}

int test_meta_db(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_file, fx_teardown)
        T(test_meta_db_new_has_every_migration),
        T(test_meta_db_from_6_adds_chunk_origin),
        T(test_meta_db_from_5_adds_both),
        T(test_meta_db_from_7_adds_identities),
        T(test_meta_db_from_8_adds_members),
        T(test_meta_db_from_9_adds_chunk_alloc),
        T(test_meta_db_from_10_adds_replies),
        T(test_meta_db_from_11_adds_ino_ranges),
        T(test_meta_db_newer_refused),
#undef T
    };
    return cmocka_run_group_tests_name("meta_db", tests, NULL, NULL);
}
