/* meta_once.c: a session's mutations answered once (docs/protocol.md §5.4).
 *
 * A client sends a request again, with the same request id, when its
 * connection to metad broke before the answer came: metad restarted, or
 * the leader of a group changed.  The first sending may have been applied
 * all the same, and applying it again would answer for the second time:
 * EEXIST for a create that did create, ENOENT for an unlink that did
 * unlink.  So every record made from a client's request in a session
 * (meta_op.req_id, record format 2) leaves its outcome in the table
 * replies, in the same transaction as its changes: the status and the
 * reply body.  A record that finds its own (session, request id) there
 * changes nothing and gives that outcome again, so the client gets the
 * answer of the first time, whichever replica applied it.
 *
 * The table keeps META_ONCE_SLOTS outcomes per session, slot = request
 * id modulo that: a request is sent again only while its sender waits for
 * it, which it does for as long as its connection takes to come back
 * (seconds), while a session has only a few requests in flight, so the
 * slot still holds it.  A slot that holds another request id is a miss.
 * A session's outcomes go when it ends (close or expiry).  All of it is a
 * function of the records alone, the same on every replica.
 *
 * Outcomes that say nothing of the request (out of memory, an I/O error
 * of the database) are not kept: the request may well succeed when sent
 * again.
 */
#include "meta_internal.h"

#include <errno.h>
#include <string.h>

#include <sqlite3.h>

bool meta_once_applies(const struct meta_op *op)
{
    /* A SESSION_CLOSE ends the session: its outcomes go with it. */
    return op->session_id != 0 && op->req_id != 0 &&
           op->opcode != PROTO_MSG_SESSION_CLOSE_REQ;
}

bool meta_once_keeps(int status)
{
    return status != -ENOMEM && status != -EIO && status != -EBUSY &&
           status != -EAGAIN && status != -EINTR;
}

static int64_t slot_of(uint64_t req_id)
{
    return (int64_t)(req_id % META_ONCE_SLOTS);
}

int meta_once_get(struct meta_db *db, const struct meta_op *op, int *status,
                  struct proto_wbuf *reply)
{
    sqlite3_stmt *s = meta_st(db, META_ST_ONCE_GET);
    int r;

    sqlite3_bind_int64(s, 1, (int64_t)op->session_id);
    sqlite3_bind_int64(s, 2, slot_of(op->req_id));
    r = sqlite3_step(s);
    if (r == SQLITE_DONE) {
        sqlite3_reset(s);
        return 0;
    }
    if (r != SQLITE_ROW) {
        r = meta_sql_err(db, r, "find a kept reply");
        sqlite3_reset(s);
        return r;
    }
    r = 0;
    if ((uint64_t)sqlite3_column_int64(s, 0) == op->req_id) {
        const void *body = sqlite3_column_blob(s, 2);
        size_t len = (size_t)sqlite3_column_bytes(s, 2);

        *status = sqlite3_column_int(s, 1);
        if (*status == 0 && len)
            proto_put_raw(reply, body, len);
        r = reply->err ? reply->err : 1;
    }
    sqlite3_reset(s);
    return r;
}

int meta_once_put(struct meta_db *db, const struct meta_op *op, int status,
                  const uint8_t *body, size_t len)
{
    sqlite3_stmt *s = meta_st(db, META_ST_ONCE_PUT);

    sqlite3_bind_int64(s, 1, (int64_t)op->session_id);
    sqlite3_bind_int64(s, 2, slot_of(op->req_id));
    sqlite3_bind_int64(s, 3, (int64_t)op->req_id);
    sqlite3_bind_int(s, 4, status);
    meta_bind_blob(s, 5, status == 0 ? body : NULL, status == 0 ? len : 0);
    return meta_st_exec(db, s, "keep a reply");
}

int meta_once_session_end(struct meta_db *db, uint64_t session_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_ONCE_DEL_SESSION);

    sqlite3_bind_int64(s, 1, (int64_t)session_id);
    return meta_st_exec(db, s, "drop a session's kept replies");
}
