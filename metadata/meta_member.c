/* meta_member.c: the replicas of a metad group as records: META_OP_MEMBER
 * sets or forgets one replica's client and raft addresses
 * (meta_op_member, meta_op.h).
 *
 * The membership that decides votes is raft's own (meta_raft.c); this
 * table only names the addresses clients use, so that a follower can
 * send a client to the leader (NOT_LEADER, docs/protocol.md §5.3) and
 * `tessera meta status` can show them.  A leader records itself when it
 * starts to lead; `tessera meta add` records the replica it adds.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdio.h>

#include "meta_op.h"

int meta_member_apply(struct meta_db *db, const struct meta_op *op,
                      struct proto_wbuf *reply)
{
    struct meta_op_member m;
    sqlite3_stmt *s;
    int rc = meta_op_member_decode(op->payload, op->len, &m);

    (void)reply; /* empty reply body */
    if (rc < 0)
        return rc;
    if (m.client_addr.len == 0 && m.raft_addr.len == 0) {
        s = meta_st(db, META_ST_MEMBER_DEL);
        sqlite3_bind_int64(s, 1, (int64_t)m.id);
        return meta_st_exec(db, s, "forget member");
    }
    s = meta_st(db, META_ST_MEMBER_SET);
    sqlite3_bind_int64(s, 1, (int64_t)m.id);
    sqlite3_bind_text(s, 2, m.client_addr.len ? m.client_addr.p : "",
                      (int)m.client_addr.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, m.raft_addr.len ? m.raft_addr.p : "",
                      (int)m.raft_addr.len, SQLITE_STATIC);
    return meta_st_exec(db, s, "set member");
}

int meta_member_get(struct meta_db *db, uint64_t id, struct meta_member *out)
{
    sqlite3_stmt *s = meta_st(db, META_ST_MEMBER_GET);
    int rc;

    sqlite3_bind_int64(s, 1, (int64_t)id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->id = id;
        snprintf(out->client_addr, sizeof(out->client_addr), "%s",
                 (const char *)sqlite3_column_text(s, 0));
        snprintf(out->raft_addr, sizeof(out->raft_addr), "%s",
                 (const char *)sqlite3_column_text(s, 1));
    }
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : meta_sql_err(db, rc, "get member");
}
