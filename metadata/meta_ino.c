/* meta_ino.c: inode numbers reserved to a session (INO_RESERVE,
 * docs/protocol.md §6.23).
 *
 * A mount that answers creates itself, under a directory delegated to its
 * session, names each new inode before metad hears of it; the MKNOD that
 * records the file comes later (PROTO_MKNOD_INO, meta_ns.c).  The numbers
 * it gives come from ranges reserved here: each is taken from the inode
 * allocator, the inodes table's AUTOINCREMENT counter, which is moved past
 * it, so the allocator never hands out a reserved number and two sessions
 * never share one.  A range is a row (session_id, first, end_ino) of
 * ino_ranges (meta_db.c, migration 12).
 *
 * Invariants:
 *   1. A session has at most META_INO_RANGES_MAX ranges: a reservation
 *      past them drops the session's oldest (lowest) one.
 *   2. A session's ranges end with it (SESSION_CLOSE, SESSION_EXPIRE,
 *      meta_apply.c); the numbers left in them are never used.
 *   3. Nothing here reads a clock or draws a random number: a replica
 *      replaying the records reserves the same ranges.
 *
 * What this file leaves to others: whether a number is still free (an
 * inode row with it exists) is meta_ns.c's check, at the MKNOD.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdint.h>

#include "log.h"

/* docs/protocol.md §6.23: first, the first number of @count that the
 * allocator has not handed out, which it then passes over. */
static int ino_take(struct meta_db *db, uint32_t count, uint64_t *first)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INO_LAST);
    int64_t last = 0;
    int rc = sqlite3_step(s), r;

    if (rc == SQLITE_ROW)
        last = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return meta_sql_err(db, rc, "find last inode number");
    if (last < 0 || last > INT64_MAX - (int64_t)count)
        return -ENOSPC;
    s = meta_st(db, META_ST_INO_SKIP);
    sqlite3_bind_int64(s, 1, last + (int64_t)count);
    if ((r = meta_st_exec(db, s, "reserve inode numbers")) < 0)
        return r;
    /* The root's row, inserted with its number, made the counter's. */
    if (sqlite3_changes(db->sql) != 1) {
        log_error("meta ino: the inode counter has no row in "
                  "sqlite_sequence");
        return -EIO;
    }
    *first = (uint64_t)last + 1;
    return 0;
}

int meta_ino_reserve_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply)
{
    struct proto_ino_reserve_req q;
    struct proto_ino_reserve_rep rep = {0};
    sqlite3_stmt *s;
    int r = proto_ino_reserve_req_decode(op->payload, op->len, &q);

    if (r < 0)
        return r;
    if (q.count == 0 || q.count > PROTO_INO_RESERVE_MAX)
        return -EINVAL;
    /* A range outlives no session (invariant 2): none without one. */
    s = meta_st(db, META_ST_SESSION_EXISTS);
    sqlite3_bind_int64(s, 1, (int64_t)op->session_id);
    if ((r = meta_st_row(db, s, "find session")) <= 0)
        return r < 0 ? r : -ENOTCONN;
    if ((r = ino_take(db, q.count, &rep.first)) < 0)
        return r;
    rep.count = q.count;
    s = meta_st(db, META_ST_INO_RANGE_ADD);
    sqlite3_bind_int64(s, 1, (int64_t)op->session_id);
    sqlite3_bind_int64(s, 2, (int64_t)rep.first);
    sqlite3_bind_int64(s, 3, (int64_t)(rep.first + rep.count));
    if ((r = meta_st_exec(db, s, "add inode range")) < 0)
        return r;
    /* Invariant 1. */
    s = meta_st(db, META_ST_INO_RANGE_TRIM);
    sqlite3_bind_int64(s, 1, (int64_t)op->session_id);
    sqlite3_bind_int64(s, 2, META_INO_RANGES_MAX);
    if ((r = meta_st_exec(db, s, "drop old inode ranges")) < 0)
        return r;
    proto_ino_reserve_rep_encode(reply, &rep);
    return reply->err;
}

int meta_ino_reserved(struct meta_db *db, uint64_t session, uint64_t ino)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INO_RANGE_HAS);
    int r;

    sqlite3_bind_int64(s, 1, (int64_t)session);
    sqlite3_bind_int64(s, 2, (int64_t)ino);
    r = meta_st_row(db, s, "find inode range");
    if (r < 0)
        return r;
    return r ? 0 : -EINVAL;
}

int meta_ino_session_end(struct meta_db *db, uint64_t session)
{
    sqlite3_stmt *s = meta_st(db, META_ST_INO_RANGE_DEL_SESSION);

    sqlite3_bind_int64(s, 1, (int64_t)session);
    return meta_st_exec(db, s, "drop inode ranges");
}
