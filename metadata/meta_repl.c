/* meta_repl.c: the replication records of the state machine: replication
 * goals (GOAL_SET_REQ), replica sets changed by repair, reports, drains and
 * rebalancing (META_OP_REPLICA_ADD, META_OP_REPLICA_DROP) and the storage
 * servers' administrative state (META_OP_SERVER_STATE), plus the read-only
 * walks the daemon's repair loop uses (meta_chunk_foreach,
 * meta_server_usage_foreach, meta_gc_has).
 *
 * What this file leaves to the daemon (metadata/meta_srv_repair.c and
 * friends): deciding which chunk needs a copy, copying it between storage
 * servers, and whether a server is up.  Liveness is not state-machine
 * state: it depends on the clock.  Each record states an outcome the
 * daemon already knows, and is checked against the database so that a
 * record computed from an old state cannot undo a newer one.
 *
 * A replica's life in the replica set of one chunk:
 *
 *            REPLICA_ADD (copy done,       REPLICA_DROP (bad, surplus,
 *            chunk still at the version)   drained) / SERVER_STATE REMOVED
 *   (none) -----------------------------> listed -----------------------+
 *      ^                                     |                          |
 *      |          CHUNK_SET without it       |                          v
 *      |          (missed a version bump)    +-----------------------> gc
 *      +------------------ GC_DONE (the server deleted it) -------------+
 *
 *   FROM    -> TO      [function]
 *   none    -> listed  [meta_replica_add_apply, chunk at the version]
 *   none    -> gc      [meta_replica_add_apply, chunk moved on: stale copy]
 *   listed  -> gc      [meta_replica_drop_apply, meta_chunk_set_apply]
 *   listed  -> none    [meta_server_state_apply REMOVED: server forgotten]
 *   gc      -> none    [meta_gc_done_apply]
 *   gc      -> listed  [meta_replica_add_apply: a fresh copy replaces it]
 *
 * Invariants:
 *   1. A server appears at most once in a chunk's replica set, and only a
 *      registered server does.
 *   2. A replica set is changed only by a record naming the chunk's current
 *      version (REPLICA_DROP answers -ESTALE otherwise; REPLICA_ADD lists
 *      the copy for deletion instead of adding it).
 *   3. A replica listed in gc is never counted as a copy; adding it back
 *      takes it off the gc list in the same transaction.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_op.h"

/* ---- Goals -------------------------------------------------------------- */

/* Set the goal of @ino to @goal when it differs.  *changed counts it. */
static int goal_one(struct meta_db *db, int64_t now, uint64_t ino,
                    uint32_t goal, uint64_t *changed)
{
    struct proto_attr a;
    int r = meta_inode_get(db, ino, &a);
    if (r < 0)
        return r;
    if (a.goal == goal)
        return 0;
    a.goal = goal;
    a.ctime = now;
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    (*changed)++;
    return 0;
}

/* Every inode below directory @top (itself included), collected before any
 * update so the walk never steps over rows it changes.  Caller owns
 * *out; free() it. */
static int subtree(struct meta_db *db, uint64_t top, uint64_t **out,
                   size_t *n)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SUBTREE);
    size_t cap = 64, len = 0;
    uint64_t *v = malloc(cap * sizeof(*v));
    int rc;
    if (!v)
        return -ENOMEM;
    sqlite3_bind_int64(s, 1, (int64_t)top);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            uint64_t *nv = realloc(v, 2 * cap * sizeof(*v));
            if (!nv) {
                sqlite3_reset(s);
                free(v);
                return -ENOMEM;
            }
            v = nv;
            cap *= 2;
        }
        v[len++] = (uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        free(v);
        return meta_sql_err(db, rc, "walk subtree");
    }
    *out = v;
    *n = len;
    return 0;
}

/* docs/protocol.md §11.1: owner or root; with RECURSIVE, every inode below
 * a directory that the caller owns (others are skipped, as chown -R would
 * skip what it may not change). */
int meta_goal_set_apply(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_goal_set_req q;
    struct proto_attr a;
    uint64_t changed = 0, *inos = NULL;
    size_t ninos = 0;
    int r = proto_goal_set_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.goal < 1 || q.goal > PROTO_GOAL_MAX)
        return -EINVAL;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if (!meta_perm_owner(&q.cred, &a))
        return -EPERM;
    if (!(q.flags & PROTO_GOAL_RECURSIVE) || !S_ISDIR(a.mode)) {
        r = goal_one(db, now, q.ino, q.goal, &changed);
    } else if ((r = subtree(db, q.ino, &inos, &ninos)) == 0) {
        for (size_t i = 0; r == 0 && i < ninos; i++) {
            struct proto_attr e;
            if ((r = meta_inode_get(db, inos[i], &e)) < 0)
                break;
            if (meta_perm_owner(&q.cred, &e))
                r = goal_one(db, now, inos[i], q.goal, &changed);
        }
        free(inos);
    }
    if (r < 0)
        return r;
    struct proto_goal_set_rep rep = {.changed = changed};
    proto_goal_set_rep_encode(reply, &rep);
    return reply->err;
}

/* ---- Replica sets ------------------------------------------------------- */

static int gc_add(struct meta_db *db, uint64_t chunk_id, uint64_t version,
                  uint32_t server_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_GC_ADD);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    sqlite3_bind_int64(s, 2, (int64_t)version);
    sqlite3_bind_int64(s, 3, server_id);
    return meta_st_exec(db, s, "add to gc");
}

static int gc_del(struct meta_db *db, uint64_t chunk_id, uint32_t server_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_GC_DONE);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    sqlite3_bind_int64(s, 2, server_id);
    return meta_st_exec(db, s, "drop gc entry");
}

/* Rewrite the replica set of @c as its first c->nreplicas servers, in
 * order, positions 0..n-1. */
static int replicas_write(struct meta_db *db, const struct meta_chunk *c)
{
    sqlite3_stmt *s = meta_st(db, META_ST_REPLICA_CLEAR);
    sqlite3_bind_int64(s, 1, (int64_t)c->chunk_id);
    int r = meta_st_exec(db, s, "clear replicas");
    for (uint32_t i = 0; r == 0 && i < c->nreplicas; i++) {
        s = meta_st(db, META_ST_REPLICA_ADD);
        sqlite3_bind_int64(s, 1, (int64_t)c->chunk_id);
        sqlite3_bind_int64(s, 2, i);
        sqlite3_bind_int64(s, 3, c->servers[i]);
        r = meta_st_exec(db, s, "add replica");
    }
    return r;
}

static int server_known(struct meta_db *db, uint32_t id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_EXISTS);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : meta_sql_err(db, rc, "find server");
}

int meta_replica_add_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    uint64_t chunk_id, version;
    uint32_t server_id;
    struct meta_chunk c;
    struct meta_op_replica m;
    int r = meta_op_replica_decode(p, n, &m);
    if (r < 0)
        return r;
    chunk_id = m.chunk_id;
    version = m.version;
    server_id = m.server_id;
    if (chunk_id == 0 || version == 0)
        return -EINVAL;
    if ((r = server_known(db, server_id)) <= 0)
        return r < 0 ? r : -ENOENT;
    r = meta_chunk_get(db, chunk_id, &c);
    if (r < 0 && r != -ENOENT)
        return r;
    bool stale = r == -ENOENT || c.version != version;
    bool present = false;
    for (uint32_t i = 0; !stale && i < c.nreplicas; i++)
        present |= c.servers[i] == server_id;
    if (!stale && !present && c.nreplicas == PROTO_MAX_REPLICAS)
        stale = true;
    if (stale) {
        /* Invariant 2: the copy missed a later version (or the chunk is
         * gone, or the set is full): it is garbage from the start. */
        if ((r = gc_add(db, chunk_id, version, server_id)) < 0)
            return r;
        proto_put_u8(reply, 0);
        return reply->err;
    }
    /* Invariants 1 and 3. */
    if ((r = gc_del(db, chunk_id, server_id)) < 0)
        return r;
    if (!present) {
        c.servers[c.nreplicas++] = server_id;
        if ((r = replicas_write(db, &c)) < 0)
            return r;
    }
    proto_put_u8(reply, 1);
    return reply->err;
}

int meta_replica_drop_apply(struct meta_db *db, const struct meta_op *op,
                            struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    uint64_t chunk_id, version;
    uint32_t server_id, k = 0;
    struct meta_chunk c;
    bool found = false;
    struct meta_op_replica m;
    int r = meta_op_replica_decode(p, n, &m);
    if (r < 0)
        return r;
    chunk_id = m.chunk_id;
    version = m.version;
    server_id = m.server_id;
    if ((r = meta_chunk_get(db, chunk_id, &c)) < 0)
        return r;
    if (c.version != version)
        return -ESTALE; /* invariant 2 */
    for (uint32_t i = 0; i < c.nreplicas; i++) {
        if (c.servers[i] == server_id)
            found = true;
        else
            c.servers[k++] = c.servers[i];
    }
    if (!found)
        return -ENOENT;
    c.nreplicas = k;
    if ((r = replicas_write(db, &c)) < 0)
        return r;
    if ((r = gc_add(db, chunk_id, version, server_id)) < 0)
        return r;
    (void)reply; /* empty reply body */
    return 0;
}

/* ---- Server states ------------------------------------------------------ */

/* Administrative states stored in servers.state. */
#define SERVER_NORMAL 0
#define SERVER_DRAINING 1

int meta_server_state_apply(struct meta_db *db, const struct meta_op *op,
                            struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct meta_op_server_state m;
    int r = meta_op_server_state_decode(p, n, &m);
    sqlite3_stmt *s;
    if (r < 0)
        return r;
    uint32_t id = m.server_id, state = m.state;
    if ((r = server_known(db, id)) <= 0)
        return r < 0 ? r : -ENOENT;
    (void)reply; /* empty reply body */
    switch (state) {
    case PROTO_SERVER_UP:
    case PROTO_SERVER_DRAINING:
        s = meta_st(db, META_ST_SERVER_STATE);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int64(s, 2, state == PROTO_SERVER_DRAINING
                                     ? SERVER_DRAINING
                                     : SERVER_NORMAL);
        sqlite3_bind_int64(s, 3, now);
        return meta_st_exec(db, s, "set server state");
    case PROTO_SERVER_REMOVED:
        /* Its copies leave every replica set (repair makes new ones) and
         * nothing is left to delete on a server that is gone. */
        s = meta_st(db, META_ST_REPLICA_DEL_SERVER);
        sqlite3_bind_int64(s, 1, id);
        if ((r = meta_st_exec(db, s, "drop server replicas")) < 0)
            return r;
        s = meta_st(db, META_ST_GC_DEL_SERVER);
        sqlite3_bind_int64(s, 1, id);
        if ((r = meta_st_exec(db, s, "drop server gc")) < 0)
            return r;
        s = meta_st(db, META_ST_SERVER_DELETE);
        sqlite3_bind_int64(s, 1, id);
        return meta_st_exec(db, s, "delete server");
    default:
        return -EINVAL;
    }
}

/* ---- Walks -------------------------------------------------------------- */

int meta_gc_has(struct meta_db *db, uint64_t chunk_id, uint32_t server_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_GC_HAS);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    sqlite3_bind_int64(s, 2, server_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : meta_sql_err(db, rc, "find gc entry");
}

int meta_chunk_foreach(struct meta_db *db, uint64_t after, int max,
                       int (*fn)(const struct meta_chunk_info *ci, void *arg),
                       void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_LIST);
    sqlite3_stmt *rl;
    int rc, r = 0;
    sqlite3_bind_int64(s, 1, (int64_t)after);
    sqlite3_bind_int64(s, 2, max < 0 ? 0 : max);
    sqlite3_bind_int64(s, 3, PROTO_CHUNK_SIZE);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        /* A shared chunk is one row: repaired once, to the highest goal
         * of the files sharing it. */
        struct meta_chunk_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.c.chunk_id = (uint64_t)sqlite3_column_int64(s, 0);
        ci.c.version = (uint64_t)sqlite3_column_int64(s, 1);
        ci.c.ino = (uint64_t)sqlite3_column_int64(s, 2);
        ci.c.index = (uint64_t)sqlite3_column_int64(s, 3);
        ci.goal = (uint32_t)sqlite3_column_int64(s, 4);
        ci.length = (uint64_t)sqlite3_column_int64(s, 5);
        ci.c.refs = (uint32_t)sqlite3_column_int64(s, 6);
        rl = meta_st(db, META_ST_REPLICA_LIST);
        sqlite3_bind_int64(rl, 1, (int64_t)ci.c.chunk_id);
        int rc2;
        while ((rc2 = sqlite3_step(rl)) == SQLITE_ROW)
            if (ci.c.nreplicas < PROTO_MAX_REPLICAS)
                ci.c.servers[ci.c.nreplicas++] =
                    (uint32_t)sqlite3_column_int64(rl, 0);
        sqlite3_reset(rl);
        if (rc2 != SQLITE_DONE) {
            r = meta_sql_err(db, rc2, "list replicas");
            break;
        }
        if ((r = fn(&ci, arg)) != 0)
            break;
    }
    sqlite3_reset(s);
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list chunks");
    return r;
}

int meta_server_usage_foreach(struct meta_db *db,
                              int (*fn)(uint32_t server_id, uint64_t replicas,
                                        uint64_t bytes, void *arg),
                              void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_USAGE);
    int rc, r = 0;
    sqlite3_bind_int64(s, 1, PROTO_CHUNK_SIZE);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        r = fn((uint32_t)sqlite3_column_int64(s, 0),
               (uint64_t)sqlite3_column_int64(s, 1),
               (uint64_t)sqlite3_column_double(s, 2), arg);
        if (r != 0)
            break;
    }
    sqlite3_reset(s);
    if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "server usage");
    return r;
}
