/* meta_wal.c: checkpoints of the database's write-ahead log, away from
 * the connection that commits.
 *
 * SQLite checkpoints a WAL database by itself: the COMMIT that takes the
 * log past 1000 pages copies the log back into the database file, and
 * fsyncs the log and the file, before it returns.  On the one thread
 * that applies every record, that is a pause of milliseconds (tens under
 * load) every couple of hundred records, which every request waiting
 * behind it pays.  meta_db_wal_watch() turns SQLite's own checkpoints off
 * on the applying connection and reports the log's size after every
 * commit instead; its owner then runs meta_wal_ckpt_run() on a connection
 * of its own (meta_wal_ckpt_open()), on another thread.  A PASSIVE
 * checkpoint takes no lock a writer waits for, so commits go on meanwhile;
 * once a checkpoint has copied every frame, the next commit starts the log
 * from its beginning again, as after SQLite's own.
 *
 * Durability is unchanged: a commit is in the log (fsynced by COMMIT with
 * synchronous=FULL, or by the Raft log's own write with a replicated log)
 * whether or not it was copied into the database file yet, and a
 * checkpoint syncs the log before it copies and the file after.
 *
 * meta_db_wal_watch() runs on the applying thread; a struct meta_wal_ckpt
 * is used by one thread at a time (the owner's worker), and nothing here
 * touches the applying connection from another thread.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdlib.h>

struct meta_wal_ckpt {
    sqlite3 *sql;
};

/* sqlite3_wal_hook()'s callback: after every commit on the connection. */
static int on_wal(void *arg, sqlite3 *sql, const char *name, int pages)
{
    struct meta_db *db = arg;

    (void)sql;
    (void)name;
    db->wal_cb(db->wal_arg, pages);
    return SQLITE_OK;
}

void meta_db_wal_watch(struct meta_db *db, meta_db_wal_cb cb, void *arg)
{
    db->wal_cb = cb;
    db->wal_arg = arg;
    if (cb)
        sqlite3_wal_hook(db->sql, on_wal, db);
    else /* SQLite's own checkpoints again, at its default 1000 pages */
        sqlite3_wal_autocheckpoint(db->sql, META_WAL_PAGES);
}

int meta_wal_ckpt_open(const char *path, struct meta_wal_ckpt **out)
{
    struct meta_wal_ckpt *k = calloc(1, sizeof(*k));
    int rc;

    if (!k)
        return -ENOMEM;
    rc = sqlite3_open_v2(path, &k->sql, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(k->sql, "PRAGMA synchronous = NORMAL", NULL, NULL,
                          NULL);
    if (rc != SQLITE_OK) {
        int r = k->sql ? meta_sqlite_errno(rc) : -ENOMEM;
        meta_wal_ckpt_close(k);
        return r;
    }
    *out = k;
    return 0;
}

int meta_wal_ckpt_run(struct meta_wal_ckpt *k, int *left)
{
    int frames = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(k->sql, "main", SQLITE_CHECKPOINT_PASSIVE,
                                       &frames, &copied);

    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        return meta_sqlite_errno(rc);
    *left = rc == SQLITE_BUSY ? -1 : frames - copied;
    return 0;
}

void meta_wal_ckpt_close(struct meta_wal_ckpt *k)
{
    if (!k)
        return;
    sqlite3_close(k->sql);
    free(k);
}
