/* meta_snap.c: the whole database as one byte string and back, for the
 * snapshots of a replicated log (docs/architecture.md, "The replicated
 * log"), and the log index the database has applied.
 *
 * Taking a snapshot: SQLite's backup API copies the live database, page
 * by page inside one read transaction, into an in-memory database, which
 * sqlite3_serialize() turns into bytes.  The copy is consistent whatever
 * the WAL holds.  Its header is marked as a rollback-journal database
 * (file format bytes 18 and 19 set to 1; https://sqlite.org/fileformat.html)
 * so that it opens as an in-memory database anywhere.
 *
 * Restoring: the bytes are opened as an in-memory database
 * (sqlite3_deserialize()), checked (a schema this build reads, an
 * applied index), and copied over the live database with the backup API,
 * which keeps the live one's journal mode.  A snapshot older than what
 * the database has applied already is not restored: the log holds every
 * record after the snapshot and the database skips those it has
 * (meta_raft.c), so the result is the same and nothing is thrown away.
 *
 * Failure modes: -ENOMEM; -EPROTO for bytes that are not a Tessera
 * database; -EIO for an SQLite failure, which leaves the live database as
 * it was (the backup commits all pages or none).
 */
#include "meta_internal.h"

#include <errno.h>
#include <string.h>

#include "log.h"

/* https://sqlite.org/fileformat.html: file format write and read
 * versions, 1 for a rollback journal, 2 for WAL. */
#define HDR_WRITE_VERSION 18
#define HDR_READ_VERSION 19
#define HDR_SIZE 100

int meta_db_applied(struct meta_db *db, uint64_t *index)
{
    /* An open batch writes its last index only as it commits. */
    if (db->batch && db->batch_applied) {
        *index = db->batch_applied;
        return 0;
    }
    return meta_counter_get(db, META_COUNTER_APPLIED, index);
}

int meta_db_applied_reset(struct meta_db *db)
{
    return meta_counter_set(db, META_COUNTER_APPLIED, 0);
}

int meta_db_sync_full(struct meta_db *db, bool full)
{
    const char *sql =
        full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : meta_sql_err(db, rc, "set synchronous");
}

/* Copy database "main" of @from into "main" of @to. */
static int backup_copy(sqlite3 *to, sqlite3 *from)
{
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    int rc;

    if (!b)
        return sqlite3_errcode(to);
    rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int meta_db_snapshot(struct meta_db *db, void **buf, size_t *len)
{
    sqlite3 *mem = NULL;
    sqlite3_int64 n = 0;
    unsigned char *p = NULL;
    int rc = sqlite3_open(":memory:", &mem);

    if (rc == SQLITE_OK)
        rc = backup_copy(mem, db->sql);
    if (rc == SQLITE_OK) {
        p = sqlite3_serialize(mem, "main", &n, 0);
        rc = p ? SQLITE_OK : SQLITE_NOMEM;
    }
    sqlite3_close(mem);
    if (rc != SQLITE_OK)
        return meta_sql_err(db, rc, "snapshot");
    if (n >= HDR_SIZE) {
        p[HDR_WRITE_VERSION] = 1;
        p[HDR_READ_VERSION] = 1;
    }
    *buf = p;
    *len = (size_t)n;
    return 0;
}

void meta_db_snapshot_free(void *buf)
{
    sqlite3_free(buf);
}

/* The applied index recorded in snapshot database @mem. */
static int snapshot_applied(sqlite3 *mem, uint64_t *index)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(
        mem, "SELECT value FROM counters WHERE name = ?1", -1, &s, NULL);

    if (rc != SQLITE_OK)
        return -EPROTO; /* no counters table: not a Tessera database */
    sqlite3_bind_text(s, 1, META_COUNTER_APPLIED, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    *index = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EPROTO;
}

int meta_db_restore(struct meta_db *db, const void *buf, size_t len)
{
    uint64_t have, theirs;
    unsigned char *copy;
    sqlite3 *mem = NULL;
    int r, rc;

    if (len < HDR_SIZE || memcmp(buf, "SQLite format 3", 16) != 0)
        return -EPROTO;
    if ((r = meta_db_applied(db, &have)) < 0)
        return r;
    copy = sqlite3_malloc64(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, buf, len);
    rc = sqlite3_open(":memory:", &mem);
    if (rc != SQLITE_OK) {
        sqlite3_free(copy);
        sqlite3_close(mem);
        return -ENOMEM;
    }
    /* FREEONCLOSE: @copy is the in-memory database's from here on. */
    rc = sqlite3_deserialize(
        mem, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
        SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_READONLY);
    r = rc == SQLITE_OK ? snapshot_applied(mem, &theirs) : -EPROTO;
    if (r == 0 && theirs > have) {
        rc = backup_copy(db->sql, mem);
        if (rc != SQLITE_OK)
            r = meta_sql_err(db, rc, "restore snapshot");
    }
    sqlite3_close(mem);
    if (r == 0 && theirs > have)
        log_info("meta db: restored a snapshot: applied=%llu was=%llu",
                 (unsigned long long)theirs, (unsigned long long)have);
    return r;
}
