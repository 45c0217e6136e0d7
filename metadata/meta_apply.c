/* meta_apply.c: meta_apply(), the one way the metadata state changes.
 *
 * Happy path: BEGIN IMMEDIATE; decode the payload with the protocol
 * decoders and dispatch on the opcode to the handler (meta_ns.c for the
 * namespace, meta_chunk.c for chunks and servers, meta_repl.c for goals,
 * replica repair and server states, meta_image.c for snapshots,
 * clones, rollback and flatten, meta_hold.c for open handles (OPEN with HOLD,
 * RELEASE), the session records here); append (opcode, now, session_id,
 * payload) to the op log; COMMIT. Only then is the reply body in @reply valid.
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

/* Lease bounds for SESSION_OPEN (ms). */
#define LEASE_MIN 1000u
#define LEASE_MAX 60000u
#define LEASE_DEFAULT 10000u

bool meta_op_is_mutation(uint16_t opcode)
{
    switch (opcode) {
    case PROTO_MSG_SESSION_OPEN_REQ:
    case PROTO_MSG_SESSION_CLOSE_REQ:
    case PROTO_MSG_SETATTR_REQ:
    case PROTO_MSG_MKNOD_REQ:
    case PROTO_MSG_MKDIR_REQ:
    case PROTO_MSG_SYMLINK_REQ:
    case PROTO_MSG_LINK_REQ:
    case PROTO_MSG_UNLINK_REQ:
    case PROTO_MSG_RMDIR_REQ:
    case PROTO_MSG_RENAME_REQ:
    case PROTO_MSG_SETXATTR_REQ:
    case PROTO_MSG_REMOVEXATTR_REQ:
    case PROTO_MSG_CHUNK_WRITE_END_REQ:
    case PROTO_MSG_SERVER_REGISTER_REQ:
    case META_OP_SESSION_EXPIRE:
    case META_OP_CHUNK_SET:
    case META_OP_GC_DONE:
    case PROTO_MSG_GOAL_SET_REQ:
    case META_OP_REPLICA_ADD:
    case META_OP_REPLICA_DROP:
    case META_OP_SERVER_STATE:
    case META_OP_CHUNK_COW:
    case PROTO_MSG_SNAPSHOT_REQ:
    case PROTO_MSG_CLONE_REQ:
    case PROTO_MSG_IMAGE_ROLLBACK_REQ:
    case PROTO_MSG_IMAGE_FLATTEN_REQ:
    case PROTO_MSG_OPEN_REQ:
    case PROTO_MSG_RELEASE_REQ:
        return true;
    default:
        return false;
    }
}

/* ---- Sessions ---------------------------------------------------------- */

static int session_open(struct meta_db *db, int64_t now, const uint8_t *p,
                        size_t n, struct proto_wbuf *reply)
{
    struct proto_session_open_req q;
    int r = proto_session_open_req_decode(p, n, &q);
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
    sqlite3_bind_int64(s, 3, now);
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
 * then its row. */
static int session_delete(struct meta_db *db, uint64_t id)
{
    int r = meta_hold_session_end(db, id);
    if (r < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SESSION_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)id);
    r = meta_st_exec(db, s, "close session");
    if (r < 0)
        return r;
    return sqlite3_changes(db->sql) ? 0 : -ENOENT;
}

static int session_close(struct meta_db *db, const uint8_t *p, size_t n,
                         struct proto_wbuf *reply)
{
    struct proto_session_id q;
    int r = proto_session_id_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = session_delete(db, q.session_id)) < 0)
        return r;
    struct proto_empty e = {0};
    proto_empty_encode(reply, &e);
    return reply->err;
}

/* meta.h, META_OP_SESSION_EXPIRE: payload u64 session_id. */
static int session_expire(struct meta_db *db, const uint8_t *p, size_t n)
{
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, p, n);
    uint64_t id = proto_get_u64(&rb);
    if (proto_rbuf_done(&rb) < 0)
        return -EPROTO;
    return session_delete(db, id);
}

/* ---- Dispatch ---------------------------------------------------------- */

static int dispatch(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    int64_t now = op->now;
    switch (op->opcode) {
    case PROTO_MSG_SESSION_OPEN_REQ:
        return session_open(db, now, p, n, reply);
    case PROTO_MSG_SESSION_CLOSE_REQ:
        return session_close(db, p, n, reply);
    case META_OP_SESSION_EXPIRE:
        return session_expire(db, p, n);
    case PROTO_MSG_SETATTR_REQ:
        return meta_ns_setattr(db, now, op->session_id, p, n, reply);
    case PROTO_MSG_MKNOD_REQ:
        return meta_ns_mknod(db, now, op->session_id, p, n, reply);
    case PROTO_MSG_MKDIR_REQ:
        return meta_ns_mkdir(db, now, p, n, reply);
    case PROTO_MSG_SYMLINK_REQ:
        return meta_ns_symlink(db, now, p, n, reply);
    case PROTO_MSG_LINK_REQ:
        return meta_ns_link(db, now, p, n, reply);
    case PROTO_MSG_UNLINK_REQ:
        return meta_ns_unlink(db, now, p, n, reply);
    case PROTO_MSG_RMDIR_REQ:
        return meta_ns_rmdir(db, now, p, n, reply);
    case PROTO_MSG_RENAME_REQ:
        return meta_ns_rename(db, now, p, n, reply);
    case PROTO_MSG_SETXATTR_REQ:
        return meta_ns_setxattr(db, now, p, n, reply);
    case PROTO_MSG_REMOVEXATTR_REQ:
        return meta_ns_removexattr(db, now, p, n, reply);
    case PROTO_MSG_CHUNK_WRITE_END_REQ:
        return meta_write_end_apply(db, now, p, n, reply);
    case PROTO_MSG_SERVER_REGISTER_REQ:
        return meta_server_register_apply(db, p, n, reply);
    case META_OP_CHUNK_SET:
        return meta_chunk_set_apply(db, p, n, reply);
    case META_OP_GC_DONE:
        return meta_gc_done_apply(db, p, n, reply);
    case PROTO_MSG_GOAL_SET_REQ:
        return meta_goal_set_apply(db, now, p, n, reply);
    case META_OP_REPLICA_ADD:
        return meta_replica_add_apply(db, p, n, reply);
    case META_OP_REPLICA_DROP:
        return meta_replica_drop_apply(db, p, n, reply);
    case META_OP_SERVER_STATE:
        return meta_server_state_apply(db, now, p, n, reply);
    case META_OP_CHUNK_COW:
        return meta_chunk_cow_apply(db, p, n, reply);
    case PROTO_MSG_SNAPSHOT_REQ:
        return meta_image_snapshot_apply(db, now, p, n, true, reply);
    case PROTO_MSG_CLONE_REQ:
        return meta_image_snapshot_apply(db, now, p, n, false, reply);
    case PROTO_MSG_IMAGE_ROLLBACK_REQ:
        return meta_image_rollback_apply(db, now, p, n, reply);
    case PROTO_MSG_IMAGE_FLATTEN_REQ:
        return meta_image_flatten_apply(db, p, n, reply);
    case PROTO_MSG_OPEN_REQ:
        return meta_open_apply(db, op->session_id, p, n, reply);
    case PROTO_MSG_RELEASE_REQ:
        return meta_release_apply(db, op->session_id, p, n, reply);
    default:
        return -ENOSYS;
    }
}

static int oplog_append(struct meta_db *db, const struct meta_op *op)
{
    sqlite3_stmt *s = meta_st(db, META_ST_OPLOG_APPEND);
    sqlite3_bind_int64(s, 1, op->opcode);
    sqlite3_bind_int64(s, 2, op->now);
    sqlite3_bind_int64(s, 3, (int64_t)op->session_id);
    meta_bind_blob(s, 4, op->payload, op->len);
    return meta_st_exec(db, s, "append op log");
}

int meta_apply(struct meta_db *db, const struct meta_op *op,
               struct proto_wbuf *reply)
{
    size_t mark = reply->len;
    int err0 = reply->err;
    if (!meta_op_is_mutation(op->opcode))
        return -ENOSYS;
    if (op->len && !op->payload)
        return -EINVAL;
    int r = meta_tx_begin(db);
    if (r < 0)
        return r;
    r = dispatch(db, op, reply);
    if (r == 0 && reply->err)
        r = reply->err;
    if (r == 0)
        r = oplog_append(db, op);
    if (r == 0)
        r = meta_tx_commit(db);
    if (r < 0) {
        meta_tx_rollback(db);
        reply->len = mark;
        reply->err = err0;
    }
    return r;
}
