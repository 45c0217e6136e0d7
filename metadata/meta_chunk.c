/* meta_chunk.c: chunk maps, storage servers and the gc list.
 *
 * A regular file's chunk map is a set of slots (ino, index) -> chunk id,
 * version and an ordered replica chain (docs/architecture.md, "Data
 * flow").  The network part of a write (allocating, bumping versions on
 * the chunk servers) happens in the daemon; here are the records that
 * state its outcome (META_OP_CHUNK_SET, CHUNK_WRITE_END_REQ), the server
 * registry (SERVER_REGISTER_REQ), the bytes each chunk takes on disk
 * (META_OP_CHUNK_USAGE, which st_blocks sums), the gc list of replicas to
 * delete (filled by truncate, the last unlink and replicas left behind by a
 * version bump; drained by META_OP_GC_DONE), and the read side:
 * CHUNK_LOCATE_REQ and the meta_chunk_* getters the daemon uses.
 *
 * Slots and chunks are apart (meta_db.c, migration 3): several slots may
 * name one chunk after a snapshot or clone (meta_image.c), and the
 * chunk's reference count is the number of slots naming it.
 *
 * Chunk slot lifecycle:
 *
 *     hole --CHUNK_SET(old 0)--> own chunk --CHUNK_SET(v->v+1)--> own
 *      ^                          |     ^                            |
 *      |          SNAPSHOT/CLONE  v     | CHUNK_COW (first write:    |
 *      |                      shared ---+  a private copy)           |
 *      +-- truncate / unlink -----+------------------------------------+
 *          (the chunk's replicas go to the gc list with its last slot)
 *
 *   FROM    -> TO       [function]
 *   hole    -> own      [meta_chunk_set_apply, old_version 0]
 *   own     -> own      [meta_chunk_set_apply, old_version = current]
 *   own     -> shared   [meta_image_snapshot_apply, on both files]
 *   shared  -> own      [meta_chunk_cow_apply; the last other sharer
 *                        going away also makes it own again]
 *   any     -> hole     [meta_chunk_drop_from]
 *
 * Invariants:
 *   1. Chunk ids are never reused: a new chunk's id is above the
 *      "chunk_max" counter, which only grows.
 *   2. A slot changes only from the state the record names (else ESTALE),
 *      so a record computed from an old state cannot undo a newer one.
 *   3. A chunk row exists exactly while at least one slot names it; its
 *      replicas go to the gc list in the record that drops its last slot.
 *   4. A snapshot's data never changes: chunk records on it are EROFS.
 *   5. A shared chunk is never written in place: CHUNK_SET does not bump
 *      it (ESTALE), a writer gets a copy through CHUNK_COW.
 *   6. A shared chunk's version changes only in a CHUNK_COW record that
 *      carries the bump (the daemon raised it on the servers so that a
 *      reader of the copied slot holding the old location is refused),
 *      and that record states the bump even when the slot itself moved on
 *      meanwhile: the database never lags the servers' version.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_op.h"

#define COUNTER_CHUNK_MAX "chunk_max"

/* Fill @c from a chunk row (chunk_id, version, ino, idx, refs) and its
 * replicas. */
static int chunk_fill(struct meta_db *db, sqlite3_stmt *row,
                      struct meta_chunk *c)
{
    memset(c, 0, sizeof(*c));
    c->chunk_id = (uint64_t)sqlite3_column_int64(row, 0);
    c->version = (uint64_t)sqlite3_column_int64(row, 1);
    c->ino = (uint64_t)sqlite3_column_int64(row, 2);
    c->index = (uint64_t)sqlite3_column_int64(row, 3);
    c->refs = (uint32_t)sqlite3_column_int64(row, 4);
    sqlite3_stmt *s = meta_st(db, META_ST_REPLICA_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)c->chunk_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (c->nreplicas < PROTO_MAX_REPLICAS)
            c->servers[c->nreplicas++] = (uint32_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : meta_sql_err(db, rc, "list replicas");
}

/* Run a one-row chunk query @s; -ENOENT when it finds nothing. */
static int chunk_query(struct meta_db *db, sqlite3_stmt *s,
                       struct meta_chunk *out)
{
    int rc = sqlite3_step(s), r;
    if (rc == SQLITE_ROW)
        r = chunk_fill(db, s, out);
    else if (rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = meta_sql_err(db, rc, "get chunk");
    sqlite3_reset(s);
    return r;
}

int meta_chunk_get(struct meta_db *db, uint64_t chunk_id,
                   struct meta_chunk *out)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_GET);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    return chunk_query(db, s, out);
}

int meta_chunk_at(struct meta_db *db, uint64_t ino, uint64_t index,
                  struct meta_chunk *out)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_AT);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)index);
    return chunk_query(db, s, out);
}

uint64_t meta_chunk_max_id(struct meta_db *db)
{
    uint64_t v = 0;
    if (meta_counter_get(db, COUNTER_CHUNK_MAX, &v) < 0)
        return 0;
    return v;
}

int meta_goal_get(struct meta_db *db, uint64_t ino, uint32_t *goal)
{
    struct proto_attr a;
    int r = meta_inode_get(db, ino, &a);
    if (r == 0)
        *goal = a.goal;
    return r;
}

int meta_chunk_goal(struct meta_db *db, uint64_t chunk_id, uint32_t *goal)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_GOAL);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    int rc = sqlite3_step(s), r = 0;
    if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        *goal = (uint32_t)sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        r = -ENOENT;
    else
        r = meta_sql_err(db, rc, "chunk goal");
    sqlite3_reset(s);
    return r;
}

int meta_chunk_drop_from(struct meta_db *db, uint64_t ino, uint64_t from)
{
    /* Invariant 3: only chunks losing their last slot become garbage. */
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_GC_FROM);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)from);
    int r = meta_st_exec(db, s, "list chunks for gc");
    if (r < 0)
        return r;
    /* Replicas go with their chunk (ON DELETE CASCADE); the slots still
     * naming it are checked at commit, and go next. */
    s = meta_st(db, META_ST_CHUNK_DROP_FROM);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)from);
    if ((r = meta_st_exec(db, s, "drop chunks")) < 0)
        return r;
    s = meta_st(db, META_ST_SLOT_DROP_FROM);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)from);
    return meta_st_exec(db, s, "drop slots");
}

/* Chunk @c lost its last slot: every replica to the gc list, row gone. */
static int chunk_release(struct meta_db *db, uint64_t chunk_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_GC_ALL);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    int r = meta_st_exec(db, s, "list chunk for gc");
    if (r < 0)
        return r;
    s = meta_st(db, META_ST_CHUNK_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    return meta_st_exec(db, s, "delete chunk");
}

static int slot_set(struct meta_db *db, uint64_t ino, uint64_t index,
                    uint64_t chunk_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SLOT_SET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)index);
    sqlite3_bind_int64(s, 3, (int64_t)chunk_id);
    return meta_st_exec(db, s, "set slot");
}

/* The regular file @ino, for chunk records: -ENOENT, -EISDIR, -EINVAL. */
static int chunk_file(struct meta_db *db, uint64_t ino, struct proto_attr *a)
{
    int r = meta_inode_get(db, ino, a);
    if (r < 0)
        return r;
    if (S_ISDIR(a->mode))
        return -EISDIR;
    return S_ISREG(a->mode) ? 0 : -EINVAL;
}

/* The same for a record that changes the file's data: also -EROFS for a
 * snapshot (invariant 4). */
static int chunk_file_rw(struct meta_db *db, uint64_t ino, struct proto_attr *a)
{
    int r = chunk_file(db, ino, a);
    if (r == 0)
        r = meta_inode_writable(db, ino);
    return r;
}

static int server_exists(struct meta_db *db, uint32_t id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_EXISTS);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : meta_sql_err(db, rc, "find server");
}

static int gc_add(struct meta_db *db, uint64_t chunk_id, uint64_t version,
                  uint32_t server_id)
{
    sqlite3_stmt *s = meta_st(db, META_ST_GC_ADD);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    sqlite3_bind_int64(s, 2, (int64_t)version);
    sqlite3_bind_int64(s, 3, server_id);
    return meta_st_exec(db, s, "add to gc");
}

static bool has_server(const uint32_t *ids, uint32_t n, uint32_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* Check the servers of @m: registered and distinct. */
static int chunk_set_servers(struct meta_db *db,
                             const struct meta_op_replicas *m)
{
    for (uint32_t i = 0; i < m->n; i++) {
        if (has_server(m->servers, i, m->servers[i]))
            return -EINVAL;
        int r = server_exists(db, m->servers[i]);
        if (r <= 0)
            return r < 0 ? r : -EINVAL;
    }
    return 0;
}

int meta_chunk_set_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct meta_op_chunk_set m;
    struct proto_attr a;
    struct meta_chunk cur;
    int r = meta_op_chunk_set_decode(p, n, &m);
    if (r < 0)
        return r;
    if (m.chunk_id == 0 || m.new_version == 0 || m.index > INT64_MAX)
        return -EINVAL;
    if ((r = chunk_file_rw(db, m.ino, &a)) < 0)
        return r;
    if ((r = chunk_set_servers(db, &m.set)) < 0)
        return r;
    r = meta_chunk_at(db, m.ino, m.index, &cur);
    if (r < 0 && r != -ENOENT)
        return r;
    bool hole = r == -ENOENT;
    sqlite3_stmt *s;
    if (m.old_version == 0) {
        /* Invariant 1: a new chunk has a never-used id. */
        if (!hole || m.chunk_id <= meta_chunk_max_id(db))
            return -ESTALE;
        s = meta_st(db, META_ST_CHUNK_INSERT);
        sqlite3_bind_int64(s, 1, (int64_t)m.chunk_id);
        sqlite3_bind_int64(s, 2, (int64_t)m.new_version);
        if ((r = meta_st_exec(db, s, "insert chunk")) < 0)
            return r;
        if ((r = slot_set(db, m.ino, m.index, m.chunk_id)) < 0)
            return r;
        if ((r = meta_counter_set(db, COUNTER_CHUNK_MAX, m.chunk_id)) < 0)
            return r;
    } else {
        /* Invariant 2; and a shared chunk is never bumped for a writer
         * (invariant 5): the daemon plans again and copies it instead. */
        if (hole || cur.chunk_id != m.chunk_id ||
            cur.version != m.old_version || cur.refs > 1)
            return -ESTALE;
        /* Replicas left out of the new chain missed the bump: stale. */
        for (uint32_t i = 0; i < cur.nreplicas; i++)
            if (!has_server(m.set.servers, m.set.n, cur.servers[i]) &&
                (r = gc_add(db, cur.chunk_id, cur.version, cur.servers[i])))
                return r;
        s = meta_st(db, META_ST_CHUNK_SET_VERSION);
        sqlite3_bind_int64(s, 1, (int64_t)m.chunk_id);
        sqlite3_bind_int64(s, 2, (int64_t)m.new_version);
        if ((r = meta_st_exec(db, s, "set chunk version")) < 0)
            return r;
        s = meta_st(db, META_ST_REPLICA_CLEAR);
        sqlite3_bind_int64(s, 1, (int64_t)m.chunk_id);
        if ((r = meta_st_exec(db, s, "clear replicas")) < 0)
            return r;
    }
    for (uint32_t i = 0; i < m.set.n; i++) {
        s = meta_st(db, META_ST_REPLICA_ADD);
        sqlite3_bind_int64(s, 1, (int64_t)m.chunk_id);
        sqlite3_bind_int64(s, 2, i);
        sqlite3_bind_int64(s, 3, m.set.servers[i]);
        if ((r = meta_st_exec(db, s, "add replica")) < 0)
            return r;
    }
    (void)reply; /* empty reply body */
    return 0;
}

/* The shared chunk @src (at m->src_version) moves to m->src_new_version:
 * its replicas that took the bump (listed in the record) stay, in chain
 * order; the others missed it and go to the gc list at the old version,
 * as for a lease bump.  -ESTALE when none of the listed servers is still
 * a replica (the chunk would be left with none). */
static int chunk_cow_bump(struct meta_db *db, const struct meta_chunk *src,
                          const struct meta_op_chunk_cow *m)
{
    uint32_t keep[PROTO_MAX_REPLICAS], nkeep = 0;
    sqlite3_stmt *s;
    int r;

    for (uint32_t i = 0; i < src->nreplicas; i++)
        if (has_server(m->src.servers, m->src.n, src->servers[i]))
            keep[nkeep++] = src->servers[i];
    if (nkeep == 0)
        return -ESTALE;
    for (uint32_t i = 0; i < src->nreplicas; i++)
        if (!has_server(keep, nkeep, src->servers[i]) &&
            (r = gc_add(db, src->chunk_id, src->version, src->servers[i])))
            return r;
    s = meta_st(db, META_ST_CHUNK_SET_VERSION);
    sqlite3_bind_int64(s, 1, (int64_t)src->chunk_id);
    sqlite3_bind_int64(s, 2, (int64_t)m->src_new_version);
    if ((r = meta_st_exec(db, s, "set chunk version")) < 0)
        return r;
    s = meta_st(db, META_ST_REPLICA_CLEAR);
    sqlite3_bind_int64(s, 1, (int64_t)src->chunk_id);
    if ((r = meta_st_exec(db, s, "clear replicas")) < 0)
        return r;
    for (uint32_t i = 0; i < nkeep; i++) {
        s = meta_st(db, META_ST_REPLICA_ADD);
        sqlite3_bind_int64(s, 1, (int64_t)src->chunk_id);
        sqlite3_bind_int64(s, 2, i);
        sqlite3_bind_int64(s, 3, keep[i]);
        if ((r = meta_st_exec(db, s, "add replica")) < 0)
            return r;
    }
    return 0;
}

/* Errors of the slot half of a COW record that only mean "the slot or
 * the file changed meanwhile". */
static bool cow_slot_gone(int r)
{
    return r == -ESTALE || r == -ENOENT || r == -EISDIR || r == -EINVAL ||
           r == -EROFS;
}

/* Check that slot (m->ino, m->index) still holds the source at
 * m->src_version and that the copy can take its place.  @cur gets the
 * slot's chunk. */
static int chunk_cow_check(struct meta_db *db,
                           const struct meta_op_chunk_cow *m,
                           struct meta_chunk *cur)
{
    struct proto_attr a;
    int r;

    if ((r = chunk_file_rw(db, m->ino, &a)) < 0)
        return r;
    if ((r = chunk_set_servers(db, &m->set)) < 0)
        return r;
    r = meta_chunk_at(db, m->ino, m->index, cur);
    if (r == -ENOENT)
        return -ESTALE;
    if (r < 0)
        return r;
    /* Invariants 1 and 2. */
    if (cur->chunk_id != m->src_id || cur->version != m->src_version ||
        m->new_id <= meta_chunk_max_id(db))
        return -ESTALE;
    return 0;
}

int meta_chunk_cow_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct meta_op_chunk_cow m;
    struct meta_chunk cur, src;
    int r = meta_op_chunk_cow_decode(p, n, &m);
    if (r < 0)
        return r;
    if (m.src_id == 0 || m.new_id == 0 || m.new_version == 0 || m.set.n == 0 ||
        m.index > INT64_MAX)
        return -EINVAL;
    if (m.bump && (m.src_new_version <= m.src_version || m.src.n == 0))
        return -EINVAL;
    /* The slot is checked before the bump changes the source's version. */
    int slot = chunk_cow_check(db, &m, &cur);
    if (!m.bump)
        r = slot;
    else if (slot < 0 && !cow_slot_gone(slot))
        r = slot;
    else if ((r = meta_chunk_get(db, m.src_id, &src)) == -ENOENT ||
             (r == 0 && src.version != m.src_version))
        r = -ESTALE; /* nothing to record: the bump was not ours to make */
    else if (r == 0)
        r = chunk_cow_bump(db, &src, &m);
    if (r < 0)
        return r;
    if (slot < 0) {
        /* The servers hold the source at its new version whatever became
         * of the slot, so the bump is recorded alone (invariant 6) and
         * the daemon plans again. */
        proto_put_u8(reply, 0);
        return reply->err;
    }
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_INSERT);
    sqlite3_bind_int64(s, 1, (int64_t)m.new_id);
    sqlite3_bind_int64(s, 2, (int64_t)m.new_version);
    if ((r = meta_st_exec(db, s, "insert chunk")) < 0)
        return r;
    /* The lineage of the copy, for IMAGE_CHANGES (meta_image_changes.c). */
    s = meta_st(db, META_ST_CHUNK_ORIGIN_SET);
    sqlite3_bind_int64(s, 1, (int64_t)m.new_id);
    sqlite3_bind_int64(s, 2, (int64_t)m.src_id);
    if ((r = meta_st_exec(db, s, "set chunk origin")) < 0)
        return r;
    if ((r = meta_counter_set(db, COUNTER_CHUNK_MAX, m.new_id)) < 0)
        return r;
    for (uint32_t i = 0; i < m.set.n; i++) {
        s = meta_st(db, META_ST_REPLICA_ADD);
        sqlite3_bind_int64(s, 1, (int64_t)m.new_id);
        sqlite3_bind_int64(s, 2, i);
        sqlite3_bind_int64(s, 3, m.set.servers[i]);
        if ((r = meta_st_exec(db, s, "add replica")) < 0)
            return r;
    }
    if ((r = slot_set(db, m.ino, m.index, m.new_id)) < 0)
        return r;
    /* Invariant 3: the other sharers may all have gone meanwhile; the gc
     * list then names the replicas at the version they now have. */
    if (cur.refs <= 1 && (r = chunk_release(db, cur.chunk_id)) < 0)
        return r;
    if (m.bump)
        proto_put_u8(reply, 1);
    return reply->err;
}

int meta_gc_done_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct meta_op_gc_done m;
    if (meta_op_gc_done_decode(p, n, &m) < 0)
        return -EPROTO;
    uint64_t chunk_id = m.chunk_id;
    uint32_t server_id = m.server_id;
    sqlite3_stmt *s = meta_st(db, META_ST_GC_DONE);
    sqlite3_bind_int64(s, 1, (int64_t)chunk_id);
    sqlite3_bind_int64(s, 2, server_id);
    int r = meta_st_exec(db, s, "gc done");
    if (r < 0)
        return r;
    (void)reply;
    return sqlite3_changes(db->sql) ? 0 : -ENOENT;
}

int meta_chunk_usage_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply)
{
    struct meta_op_chunk_usage *m = malloc(sizeof(*m));
    int r = 0;

    (void)reply;
    if (!m)
        return -ENOMEM;
    if (meta_op_chunk_usage_decode(op->payload, op->len, m) < 0)
        r = -EPROTO;
    for (uint32_t i = 0; r == 0 && i < m->n; i++) {
        sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_USAGE_SET);
        sqlite3_bind_int64(s, 1, (int64_t)m->v[i].chunk_id);
        sqlite3_bind_int64(s, 2, (int64_t)m->v[i].bytes);
        r = meta_st_exec(db, s, "set chunk usage");
    }
    free(m);
    return r;
}

int meta_chunk_usage(struct meta_db *db, uint64_t chunk_id, int64_t *bytes)
{
    return meta_row_int(db, META_ST_CHUNK_USAGE_GET, chunk_id, bytes,
                        "get chunk usage");
}

int meta_server_register_apply(struct meta_db *db, const struct meta_op *op,
                               struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_server_register_req q;
    int r = proto_server_register_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.addr.len == 0 ||
        q.addr.len >= sizeof(((struct meta_server *)0)->addr) ||
        memchr(q.addr.p, 0, q.addr.len))
        return -EINVAL;
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_BY_UUID);
    meta_bind_blob(s, 1, q.uuid, sizeof(q.uuid));
    int rc = sqlite3_step(s);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "find server");
    if (id) {
        s = meta_st(db, META_ST_SERVER_UPDATE);
        sqlite3_bind_int64(s, 1, id);
    } else {
        s = meta_st(db, META_ST_SERVER_INSERT);
        meta_bind_blob(s, 1, q.uuid, sizeof(q.uuid));
    }
    sqlite3_bind_text(s, 2, q.addr.p, (int)q.addr.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t)q.capacity);
    sqlite3_bind_int64(s, 4, (int64_t)q.free);
    if ((r = meta_st_exec(db, s, "register server")) < 0)
        return r;
    if (!id)
        id = sqlite3_last_insert_rowid(db->sql);
    if (id > UINT32_MAX)
        return -ENOSPC;
    struct proto_server_register_rep rep = {.server_id = (uint32_t)id};
    proto_server_register_rep_encode(reply, &rep);
    return reply->err;
}

int meta_write_end_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_chunk_write_end_req q;
    struct proto_attr a;
    struct meta_chunk cur;
    int r = proto_chunk_write_end_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = chunk_file_rw(db, q.ino, &a)) < 0)
        return r;
    r = meta_chunk_at(db, q.ino, q.index, &cur);
    if (r < 0 && r != -ENOENT)
        return r;
    /* The write went to a chunk the slot no longer holds (a hole reads as
     * chunk id 0): the writer must start over. */
    if ((r == -ENOENT ? 0 : cur.chunk_id) != q.chunk_id)
        return -ESTALE;
    if (q.size > INT64_MAX)
        return -EFBIG;
    if (q.size > a.size)
        a.size = q.size;
    /* The times of the write, not of its report (docs/protocol.md §8.4);
     * ctime never goes back. */
    if (q.mtime) {
        a.mtime = q.mtime;
        if (q.mtime > a.ctime)
            a.ctime = q.mtime;
    } else {
        a.mtime = a.ctime = now;
    }
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    struct proto_attr_rep rep = {.attr = a};
    proto_attr_rep_encode(reply, &rep);
    return reply->err;
}

int meta_server_foreach(struct meta_db *db,
                        int (*fn)(const struct meta_server *s, void *arg),
                        void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_LIST);
    int rc, r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct meta_server sv;
        memset(&sv, 0, sizeof(sv));
        sv.id = (uint32_t)sqlite3_column_int64(s, 0);
        const void *uuid = sqlite3_column_blob(s, 1);
        if (uuid && sqlite3_column_bytes(s, 1) == sizeof(sv.uuid))
            memcpy(sv.uuid, uuid, sizeof(sv.uuid));
        const unsigned char *addr = sqlite3_column_text(s, 2);
        if (addr)
            snprintf(sv.addr, sizeof(sv.addr), "%s", (const char *)addr);
        sv.draining = sqlite3_column_int64(s, 3) == 1;
        sv.state_time = sqlite3_column_int64(s, 4);
        if ((r = fn(&sv, arg)) != 0)
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list servers");
    return r;
}

int meta_gc_foreach(struct meta_db *db, uint32_t server_id, int max,
                    int (*fn)(uint64_t chunk_id, uint64_t version,
                              uint32_t server_id, void *arg),
                    void *arg)
{
    sqlite3_stmt *s =
        meta_st(db, server_id ? META_ST_GC_LIST_SERVER : META_ST_GC_LIST);
    sqlite3_bind_int64(s, 1, max < 0 ? 0 : max);
    if (server_id)
        sqlite3_bind_int64(s, 2, server_id);
    int rc, r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        r = fn((uint64_t)sqlite3_column_int64(s, 0),
               (uint64_t)sqlite3_column_int64(s, 1),
               (uint32_t)sqlite3_column_int64(s, 2), arg);
        if (r != 0)
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list gc");
    return r;
}

int meta_file_chunk_foreach(struct meta_db *db, uint64_t ino,
                            int (*fn)(const struct meta_chunk *c, void *arg),
                            void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_RANGE);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, 0);
    sqlite3_bind_int64(s, 3, INT64_MAX);
    int rc, r = 0;
    /* Collected first: chunk_fill() runs another statement per row, and
     * @fn may read the database too. */
    struct meta_chunk *v = NULL;
    size_t n = 0, cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            struct meta_chunk *nv = realloc(v, nc * sizeof(*v));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        memset(&v[n], 0, sizeof(v[n]));
        v[n].chunk_id = (uint64_t)sqlite3_column_int64(s, 0);
        v[n].version = (uint64_t)sqlite3_column_int64(s, 1);
        v[n].ino = (uint64_t)sqlite3_column_int64(s, 2);
        v[n].index = (uint64_t)sqlite3_column_int64(s, 3);
        v[n].refs = (uint32_t)sqlite3_column_int64(s, 4);
        n++;
    }
    sqlite3_reset(s);
    if (r == 0 && rc != SQLITE_DONE)
        r = meta_sql_err(db, rc, "list file chunks");
    for (size_t i = 0; r == 0 && i < n; i++) {
        struct meta_chunk c;
        if ((r = meta_chunk_get(db, v[i].chunk_id, &c)) < 0)
            break;
        c.ino = v[i].ino;
        c.index = v[i].index;
        r = fn(&c, arg);
    }
    free(v);
    return r;
}

/* ---- CHUNK_LOCATE ------------------------------------------------------ */

/* Append the location of chunk row @row (replica addresses copied out of
 * the servers table) to @w. */
int meta_chunk_replicas_fill(struct meta_db *db, struct proto_chunk_loc *loc,
                             char (*addrs)[64])
{
    sqlite3_stmt *s = meta_st(db, META_ST_REPLICA_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)loc->chunk_id);
    int rc;
    loc->nreplicas = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW &&
           loc->nreplicas < PROTO_MAX_REPLICAS) {
        uint32_t i = loc->nreplicas++;
        const unsigned char *t = sqlite3_column_text(s, 1);
        snprintf(addrs[i], 64, "%s", t ? (const char *)t : "");
        loc->replicas[i].server_id = (uint32_t)sqlite3_column_int64(s, 0);
        loc->replicas[i].addr.p = addrs[i];
        loc->replicas[i].addr.len = (uint32_t)strlen(addrs[i]);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list replicas");
    return 0;
}

static int loc_put(struct meta_db *db, sqlite3_stmt *row, struct proto_wbuf *w)
{
    struct proto_chunk_loc loc;
    char addrs[PROTO_MAX_REPLICAS][64];
    memset(&loc, 0, sizeof(loc));
    loc.chunk_id = (uint64_t)sqlite3_column_int64(row, 0);
    loc.version = (uint64_t)sqlite3_column_int64(row, 1);
    loc.index = (uint64_t)sqlite3_column_int64(row, 3);
    int rc = meta_chunk_replicas_fill(db, &loc, addrs);
    if (rc < 0)
        return rc;
    proto_chunk_loc_put(w, &loc);
    return w->err;
}

static void hole_put(struct proto_wbuf *w, uint64_t index)
{
    struct proto_chunk_loc loc;
    memset(&loc, 0, sizeof(loc));
    loc.index = index;
    proto_chunk_loc_put(w, &loc);
}

/* Entries for slots [first, end) into @w; *count gets their number. */
static int locate_slots(struct meta_db *db, uint64_t ino, uint64_t first,
                        uint64_t end, struct proto_wbuf *w, uint32_t *count)
{
    sqlite3_stmt *s = meta_st(db, META_ST_CHUNK_RANGE);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)end);
    uint64_t next = first;
    int rc, r = 0;
    while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t idx = (uint64_t)sqlite3_column_int64(s, 3);
        for (; next < idx; next++)
            hole_put(w, next);
        r = loc_put(db, s, w);
        next = idx + 1;
    }
    sqlite3_reset(s);
    if (r < 0)
        return r;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list chunks");
    for (; next < end; next++)
        hole_put(w, next);
    *count = (uint32_t)(end - first);
    return w->err;
}

int meta_chunk_locate(struct meta_db *db, const uint8_t *p, size_t n,
                      struct proto_wbuf *reply)
{
    struct proto_chunk_locate_req q;
    struct proto_attr a;
    int r = proto_chunk_locate_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.count == 0 || q.count > PROTO_LOCATE_MAX || q.first > INT64_MAX)
        return -EINVAL;
    if ((r = chunk_file(db, q.ino, &a)) < 0)
        return r;
    uint64_t nslots =
        a.size / PROTO_CHUNK_SIZE + (a.size % PROTO_CHUNK_SIZE ? 1 : 0);
    uint64_t first = q.first < nslots ? q.first : nslots;
    uint64_t end = nslots - first > q.count ? first + q.count : nslots;
    struct proto_wbuf entries;
    proto_wbuf_init(&entries);
    struct proto_chunk_locate_rep rep = {.file_size = a.size};
    r = locate_slots(db, q.ino, first, end, &entries, &rep.count);
    if (r == 0) {
        rep.raw.p = (const char *)entries.p;
        rep.raw.len = (uint32_t)entries.len;
        proto_chunk_locate_rep_encode(reply, &rep);
        r = reply->err;
    }
    proto_wbuf_free(&entries);
    return r;
}
