/* meta_apply.c: meta_apply(), the one way the metadata state changes.
 *
 * Happy path: BEGIN IMMEDIATE; call the opcode's handler from the apply
 * column of meta_ops.def, which decodes the payload (protocol decoders
 * for client requests, meta_op.c for internal records): meta_ns.c for the
 * namespace, meta_chunk.c for chunks and servers, meta_repl.c for goals,
 * replica repair and server states, meta_image.c for snapshots, clones,
 * rollback and flatten, meta_hold.c for open handles (OPEN with HOLD,
 * RELEASE), meta_ino.c for reserved inode numbers, meta_auth.c for
 * identities and service keys, the session records here); append
 * (opcode, now, session_id, payload) to the op log, or with a replicated
 * log, which keeps the records itself, store the record's index as the
 * last applied one (meta_apply_at()); COMMIT.  Only then is the reply
 * body in @reply valid.
 *
 * Failure modes: any error (a POSIX refusal such as -EEXIST, -EPROTO for
 * an undecodable payload, an SQLite failure, a reply that cannot be
 * encoded) rolls the whole transaction back, so the database, the op log
 * and @reply are exactly as before the call.
 *
 * Determinism: handlers read the time only from op->now and the state only
 * from the database, so replaying the op log into a fresh database gives
 * the same state and the same replies.
 */
#include "meta_internal.h"

#include <errno.h>
#include <string.h>

#include "meta_op.h"

/* Lease bounds for SESSION_OPEN (ms). */
#define LEASE_MIN 1000u
#define LEASE_MAX 60000u
#define LEASE_DEFAULT 10000u

/* ---- Sessions ---------------------------------------------------------- */

static int session_open(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply)
{
    struct proto_session_open_req q;
    int r = proto_session_open_req_decode(op->payload, op->len, &q);
    if (r < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SESSION_INSERT);
    /* The ids come from AUTOINCREMENT: one above the largest ever used. */
    sqlite3_bind_text(s, 1, q.client_name.len ? q.client_name.p : "",
                      (int)q.client_name.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, q.host.len ? q.host.p : "", (int)q.host.len,
                      SQLITE_STATIC);
    uint32_t lease = q.lease_ms ? q.lease_ms : LEASE_DEFAULT;
    if (lease < LEASE_MIN)
        lease = LEASE_MIN;
    if (lease > LEASE_MAX)
        lease = LEASE_MAX;
    sqlite3_bind_int64(s, 3, op->now);
    sqlite3_bind_int64(s, 4, lease);
    if ((r = meta_st_exec(db, s, "open session")) < 0)
        return r;
    struct proto_session_open_rep rep = {
        .session_id = (uint64_t)sqlite3_last_insert_rowid(db->sql),
        .lease_ms = lease,
    };
    proto_session_open_rep_encode(reply, &rep);
    return reply->err;
}

/* A session ends: its holds go with it (orphans reclaimed, meta_hold.c),
 * its kept outcomes (meta_once.c) and its reserved inode numbers
 * (meta_ino.c), then its row. */
static int session_delete(struct meta_db *db, uint64_t id)
{
    int r = meta_hold_session_end(db, id);
    if (r == 0)
        r = meta_once_session_end(db, id);
    if (r == 0)
        r = meta_ino_session_end(db, id);
    if (r < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SESSION_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    r = meta_st_exec(db, s, "close session");
    if (r < 0)
        return r;
    return sqlite3_changes(db->sql) ? 0 : -ENOENT;
}

static int session_close(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply)
{
    struct proto_session_id q;
    int r = proto_session_id_decode(op->payload, op->len, &q);
    if (r < 0)
        return r;
    if ((r = session_delete(db, q.session_id)) < 0)
        return r;
    struct proto_empty e = {0};
    proto_empty_encode(reply, &e);
    return reply->err;
}

static int session_expire(struct meta_db *db, const struct meta_op *op,
                          struct proto_wbuf *reply)
{
    struct meta_op_session_expire m;
    int r = meta_op_session_expire_decode(op->payload, op->len, &m);
    if (r < 0)
        return r;
    (void)reply; /* empty reply body */
    return session_delete(db, m.session_id);
}

/* ---- Dispatch ---------------------------------------------------------- */

typedef int (*apply_fn)(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply);

/* The apply column of meta_ops.def, in its order (meta_optab_index()). */
static const apply_fn apply_fns[] = {
#define X(opcode, kind, callers, session, serve, apply, query, records,        \
          before, after, cb, commit)                                           \
    apply,
#include "meta_ops.def"
#undef X
};

bool meta_op_is_mutation(uint16_t opcode)
{
    int i = meta_optab_index(opcode);
    return i >= 0 && meta_optab[i].kind == META_OPKIND_MUTATION;
}

/* The op log keeps the records last applied, for tests that replay them
 * and for a look at what happened lately; nothing reads it to recover
 * (the database is the state; with a replicated log, the Raft log is the
 * durability point).  So it keeps META_OPLOG_KEEP records, pruned every
 * META_OPLOG_PRUNE_EVERY: by sequence number, the same on every replica. */
static int oplog_append(struct meta_db *db, const struct meta_op *op)
{
    sqlite3_stmt *s = meta_st(db, META_ST_OPLOG_APPEND);
    int64_t seq;
    int r;

    sqlite3_bind_int64(s, 1, op->opcode);
    sqlite3_bind_int64(s, 2, op->now);
    sqlite3_bind_int64(s, 3, (int64_t)op->session_id);
    meta_bind_blob(s, 4, op->payload, op->len);
    sqlite3_bind_int64(s, 5, op->format);
    r = meta_st_exec(db, s, "append op log");
    seq = sqlite3_last_insert_rowid(db->sql);
    if (r < 0 || seq % META_OPLOG_PRUNE_EVERY || seq <= META_OPLOG_KEEP)
        return r;
    s = meta_st(db, META_ST_OPLOG_PRUNE);
    sqlite3_bind_int64(s, 1, seq - META_OPLOG_KEEP);
    return meta_st_exec(db, s, "prune op log");
}

int meta_apply(struct meta_db *db, const struct meta_op *op,
               struct proto_wbuf *reply)
{
    return meta_apply_at(db, op, 0, reply);
}

/* What ends every record's transaction: the op log (one metad) or the
 * applied index (a group), then the commit; 0 or -errno. */
static int record_end(struct meta_db *db, const struct meta_op *op,
                      uint64_t index)
{
    int r = index ? meta_db_applied_set(db, index) : oplog_append(db, op);

    return r < 0 ? r : meta_tx_commit(db);
}

/* @op failed with @status, its changes rolled back: keep that outcome
 * (meta_once.c) in a transaction of its own.  Returns @status. */
static int keep_failure(struct meta_db *db, const struct meta_op *op,
                        uint64_t index, int status)
{
    int r = meta_tx_begin(db);

    if (r == 0)
        r = meta_once_put(db, op, status, NULL, 0);
    if (r == 0)
        r = index ? meta_db_applied_set(db, index) : 0;
    if (r == 0)
        r = meta_tx_commit(db);
    else
        meta_tx_rollback(db);
    return status;
}

int meta_apply_at(struct meta_db *db, const struct meta_op *op, uint64_t index,
                  struct proto_wbuf *reply)
{
    size_t mark = reply->len;
    int err0 = reply->err;
    bool once = meta_once_applies(op);
    int r, status = 0;

    if (!meta_op_is_mutation(op->opcode))
        return -ENOSYS;
    if (op->len && !op->payload)
        return -EINVAL;
    if (op->format < 1 || op->format > META_OP_FORMAT)
        return -EPROTO;
    r = meta_tx_begin(db);
    if (r < 0)
        return r;
    /* Applied before: its outcome again, and no change but the index. */
    if (once && (r = meta_once_get(db, op, &status, reply)) == 1) {
        r = index ? meta_db_applied_set(db, index) : 0;
        if (r == 0)
            r = meta_tx_commit(db);
        if (r == 0)
            return status;
        meta_tx_rollback(db);
        reply->len = mark;
        reply->err = err0;
        return r;
    }
    if (r == 0)
        r = apply_fns[meta_optab_index(op->opcode)](db, op, reply);
    else
        once = false; /* the kept outcome could not be read */
    if (r == 0 && reply->err)
        r = reply->err;
    if (r == 0 && once)
        r = meta_once_put(db, op, 0, reply->p + mark, reply->len - mark);
    if (r == 0)
        r = record_end(db, op, index);
    if (r < 0) {
        meta_tx_rollback(db);
        reply->len = mark;
        reply->err = err0;
        if (once && meta_once_keeps(r))
            r = keep_failure(db, op, index, r);
    }
    return r;
}
