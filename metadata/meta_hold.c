/* meta_hold.c: open handles that keep an unlinked file alive
 * (docs/protocol.md §6.22).
 *
 * A session that opens a regular file with OPEN (PROTO_OPEN_HOLD) or
 * creates one with MKNOD (PROTO_MKNOD_HOLD) *holds* it: one row (session,
 * ino) in the holds table, however many handles the client has on it.  The
 * client sends RELEASE when its last handle on the file closes.  Removing
 * the last name of a held file (UNLINK, or a RENAME over it) does not
 * delete the inode: it stays as an *orphan*, nlink 0 and no entry, and
 * keeps its chunks, so every holder goes on reading and writing it by
 * inode number.  The orphan is reclaimed, its chunks listed for deletion,
 * in the same record that ends its last hold: RELEASE, SESSION_CLOSE or
 * META_OP_SESSION_EXPIRE (a client that died).
 *
 *   linked --last name goes, held----> orphan --last hold ends--> gone
 *      \---last name goes, not held-------------------------------^
 *
 * Invariants:
 *   1. An inode with nlink 0 is an orphan: it has no entry and at least
 *      one hold, except inside the record that ends its last hold, which
 *      reclaims it before committing.
 *   2. Holds name only regular files, and only sessions present in the
 *      database (a hold for a session already gone would keep its orphan
 *      for ever).
 *
 * Everything here runs inside meta_apply()'s transaction, except
 * meta_open_records(), a read the daemon makes to skip the commit of an
 * OPEN that would change nothing.
 */
#include "meta_internal.h"

#include <errno.h>
#include <sys/stat.h>

/* 1 when statement @st with its @nargs first parameters bound to @a and
 * @b returns a row, 0 when not, or -errno. */
static int exists(struct meta_db *db, enum meta_st st, int nargs, uint64_t a,
                  uint64_t b, const char *what)
{
    sqlite3_stmt *s = meta_st(db, st);
    sqlite3_bind_int64(s, 1, (int64_t)a);
    if (nargs > 1)
        sqlite3_bind_int64(s, 2, (int64_t)b);
    return meta_st_row(db, s, what);
}

int meta_hold_any(struct meta_db *db, uint64_t ino)
{
    return exists(db, META_ST_HOLD_ANY, 1, ino, 0, "find hold");
}

int meta_hold_has(struct meta_db *db, uint64_t session, uint64_t ino)
{
    return exists(db, META_ST_HOLD_HAS, 2, session, ino, "find hold");
}

int meta_hold_add(struct meta_db *db, uint64_t session, uint64_t ino)
{
    /* Invariant 2. */
    int r = exists(db, META_ST_SESSION_EXISTS, 1, session, 0, "find session");
    if (r <= 0)
        return r < 0 ? r : -ENOTCONN;
    sqlite3_stmt *s = meta_st(db, META_ST_HOLD_ADD);
    sqlite3_bind_int64(s, 1, (int64_t)session);
    sqlite3_bind_int64(s, 2, (int64_t)ino);
    return meta_st_exec(db, s, "add hold");
}

/* Reclaim every orphan no session holds any more (invariant 1). */
static int reclaim(struct meta_db *db)
{
    for (;;) {
        sqlite3_stmt *s = meta_st(db, META_ST_ORPHAN_FREE);
        int rc = sqlite3_step(s);
        uint64_t ino =
            rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            return 0;
        if (rc != SQLITE_ROW)
            return meta_sql_err(db, rc, "find orphan");
        int r = meta_inode_delete(db, ino);
        if (r < 0)
            return r;
    }
}

int meta_hold_session_end(struct meta_db *db, uint64_t session)
{
    sqlite3_stmt *s = meta_st(db, META_ST_HOLD_DEL_SESSION);
    sqlite3_bind_int64(s, 1, (int64_t)session);
    int r = meta_st_exec(db, s, "drop session holds");
    if (r < 0)
        return r;
    return sqlite3_changes(db->sql) ? reclaim(db) : 0;
}

/* OPEN in session @session (0: none, nothing is written). */
static int open_answer(struct meta_db *db, uint64_t session, const uint8_t *p,
                       size_t n, struct proto_wbuf *reply)
{
    struct proto_access_req q;
    struct proto_attr a;
    int r = proto_access_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = meta_open_check(db, &q, &a)) < 0)
        return r;
    if ((q.mask & PROTO_OPEN_HOLD) && session && S_ISREG(a.mode) &&
        (r = meta_hold_add(db, session, a.ino)) < 0)
        return r;
    return meta_reply_attr(reply, &a);
}

int meta_open_apply(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply)
{
    return open_answer(db, op->session_id, op->payload, op->len, reply);
}

int meta_open_query(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    return open_answer(db, 0, p, n, reply);
}

int meta_open_records(struct meta_db *db, uint64_t session,
                      const uint8_t *payload, size_t len)
{
    struct proto_access_req q;
    int r = proto_access_req_decode(payload, len, &q);
    if (r < 0 || !(q.mask & PROTO_OPEN_HOLD) || session == 0)
        return 0; /* meta_query() answers, errors included */
    r = meta_hold_has(db, session, q.ino);
    return r < 0 ? r : !r;
}

int meta_release_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply)
{
    uint64_t session = op->session_id;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_ino_req q;
    int r = proto_ino_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (session == 0)
        return -ENOTCONN;
    struct proto_attr a;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_HOLD_DEL);
    sqlite3_bind_int64(s, 1, (int64_t)session);
    sqlite3_bind_int64(s, 2, (int64_t)q.ino);
    if ((r = meta_st_exec(db, s, "drop hold")) < 0)
        return r;
    /* A RELEASE without a hold (a retry) changes nothing and succeeds. */
    if (a.nlink == 0 && (r = meta_hold_any(db, a.ino)) == 0)
        r = meta_inode_delete(db, a.ino);
    if (r < 0)
        return r;
    struct proto_empty e = {0};
    proto_empty_encode(reply, &e);
    return reply->err;
}
