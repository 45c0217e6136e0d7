/* meta_query.c: read-only requests (meta_query()) and the read-only
 * walks the daemon and tests use (stats, sessions, op log).
 *
 * Nothing here writes: queries run outside any transaction, each
 * statement in SQLite's autocommit mode, and never append to the op log.
 * Permission rules are those of a local file system (meta_perm.c); the
 * namespace changes are in meta_ns.c.
 *
 * READDIR cookies: "." is 1, ".." is 2, and an entry's cookie is its
 * directory entry id + 2.  Entry ids only grow and entries are listed in
 * id order, so entries added or removed between two READDIR calls never
 * make a listing skip or repeat an entry present throughout.
 */
#include "meta_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COOKIE_DOT 1u
#define COOKIE_DOTDOT 2u
#define COOKIE_BASE 2u /* entry cookie = id + COOKIE_BASE */

/* STATFS when no server reported its space: 16 TiB of 4 KiB blocks. */
#define STATFS_BSIZE 4096u
#define STATFS_BLOCKS_DEFAULT (1ull << 32)
#define STATFS_FILES_MAX (1ull << 48)

static struct meta_name nm(struct proto_str s)
{
    return (struct meta_name){s.p, s.len};
}

static int q_lookup(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    struct proto_lookup_req q;
    struct proto_attr dir, a;
    int r = proto_lookup_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name);
    if ((r = meta_perm_dir(db, &q.cred, q.parent, &dir)) < 0)
        return r;
    if ((r = meta_name_check(&name)) < 0)
        return r;
    if (meta_name_is_dot(&name))
        return meta_reply_attr(reply, &dir);
    uint64_t ino;
    if (meta_name_is_dotdot(&name))
        r = meta_dir_parent(db, dir.ino, &ino);
    else
        r = meta_dirent_find(db, dir.ino, &name, &ino, NULL);
    if (r == 0)
        r = meta_inode_get(db, ino, &a);
    if (r < 0)
        return r;
    return meta_reply_attr(reply, &a);
}

static int q_getattr(struct meta_db *db, const uint8_t *p, size_t n,
                     struct proto_wbuf *reply)
{
    struct proto_ino_req q;
    struct proto_attr a;
    int r = proto_ino_req_decode(p, n, &q);
    if (r == 0)
        r = meta_inode_get(db, q.ino, &a);
    if (r < 0)
        return r;
    return meta_reply_attr(reply, &a);
}

static int q_readlink(struct meta_db *db, const uint8_t *p, size_t n,
                      struct proto_wbuf *reply)
{
    struct proto_ino_req q;
    char target[4096];
    size_t len;
    int r = proto_ino_req_decode(p, n, &q);
    if (r == 0)
        r = meta_symlink_get(db, q.ino, target, sizeof(target), &len);
    if (r < 0)
        return r;
    struct proto_readlink_rep rep = {.target = {target, (uint32_t)len}};
    proto_readlink_rep_encode(reply, &rep);
    return reply->err;
}

/* ---- READDIR ----------------------------------------------------------- */

static void dirent_put(struct proto_wbuf *w, uint32_t flags, uint64_t cookie,
                       const char *name, size_t len, const struct proto_attr *a)
{
    struct proto_dirent d = {
        .cookie = cookie,
        .name = {name, (uint32_t)len},
        .attr = *a,
    };
    proto_dirent_put(w, flags, &d);
}

/* Append up to @max entries of @dir after entry id @after to @w; *count
 * gets how many, *eof whether none follow. */
static int list_entries(struct meta_db *db, uint64_t dir, uint64_t after,
                        uint32_t max, uint32_t flags, struct proto_wbuf *w,
                        uint32_t *count, bool *eof)
{
    sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)dir);
    sqlite3_bind_int64(s, 2, (int64_t)after);
    /* One row more than wanted tells whether the listing is complete. */
    sqlite3_bind_int64(s, 3, (int64_t)max + 1);
    int rc;
    uint32_t got = 0;
    *eof = true;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (got == max) {
            *eof = false;
            break;
        }
        struct proto_attr a;
        uint64_t id = (uint64_t)sqlite3_column_int64(s, 0);
        const char *name = sqlite3_column_blob(s, 1);
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        meta_attr_from_row(s, 2, &a);
        dirent_put(w, flags, id + COOKIE_BASE, name, len, &a);
        got++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list directory");
    *count += got;
    return w->err;
}

static int readdir_fill(struct meta_db *db, const struct proto_readdir_req *q,
                        const struct proto_attr *dir, struct proto_wbuf *w,
                        struct proto_readdir_rep *rep)
{
    uint32_t left = q->max_entries;
    bool dotdot_pending = q->cookie < COOKIE_DOTDOT;
    int r;
    if (q->cookie < COOKIE_DOT && left) {
        dirent_put(w, q->flags, COOKIE_DOT, ".", 1, dir);
        rep->count++;
        left--;
    }
    if (q->cookie < COOKIE_DOTDOT && left) {
        struct proto_attr up;
        uint64_t pino;
        if ((r = meta_dir_parent(db, dir->ino, &pino)) < 0 ||
            (r = meta_inode_get(db, pino, &up)) < 0)
            return r;
        dirent_put(w, q->flags, COOKIE_DOTDOT, "..", 2, &up);
        rep->count++;
        left--;
        dotdot_pending = false;
    }
    uint64_t after = q->cookie > COOKIE_BASE ? q->cookie - COOKIE_BASE : 0;
    bool eof = false;
    r = 0;
    /* With ".." still to send the listing cannot be complete; otherwise
     * a listing with no room left only finds out whether more follow. */
    if (!dotdot_pending)
        r = list_entries(db, dir->ino, after, left, q->flags, w, &rep->count,
                         &eof);
    rep->eof = eof;
    return r;
}

static int q_readdir(struct meta_db *db, const uint8_t *p, size_t n,
                     struct proto_wbuf *reply)
{
    struct proto_readdir_req q;
    struct proto_attr dir;
    int r = proto_readdir_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.max_entries == 0 || q.max_entries > PROTO_READDIR_MAX)
        return -EINVAL;
    if ((r = meta_inode_get(db, q.ino, &dir)) < 0)
        return r;
    if (!S_ISDIR(dir.mode))
        return -ENOTDIR;
    if ((r = meta_perm_check(&q.cred, &dir, META_MAY_READ)) < 0)
        return r;
    struct proto_wbuf entries;
    struct proto_readdir_rep rep = {.flags = q.flags & PROTO_READDIR_PLUS};
    proto_wbuf_init(&entries);
    r = readdir_fill(db, &q, &dir, &entries, &rep);
    if (r == 0)
        r = entries.err;
    if (r == 0) {
        rep.raw.p = (const char *)entries.p;
        rep.raw.len = (uint32_t)entries.len;
        proto_readdir_rep_encode(reply, &rep);
        r = reply->err;
    }
    proto_wbuf_free(&entries);
    return r;
}

/* ---- STATFS, xattrs, ACCESS, OPEN -------------------------------------- */

static int q_statfs(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    struct proto_empty e;
    struct meta_stats st;
    int r = proto_empty_decode(p, n, &e);
    if (r == 0)
        r = meta_stats_get(db, &st);
    if (r < 0)
        return r;
    struct proto_statfs_rep rep = {
        .blocks = STATFS_BLOCKS_DEFAULT,
        .bfree = STATFS_BLOCKS_DEFAULT,
        .bavail = STATFS_BLOCKS_DEFAULT,
        .files = st.inodes,
        .ffree = STATFS_FILES_MAX - st.inodes,
        .bsize = STATFS_BSIZE,
        .namemax = PROTO_NAME_MAX,
    };
    sqlite3_stmt *s = meta_st(db, META_ST_SERVER_SPACE);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0 &&
        sqlite3_column_int64(s, 1) > 0) {
        rep.blocks = (uint64_t)sqlite3_column_int64(s, 1) / STATFS_BSIZE;
        rep.bfree = rep.bavail =
            (uint64_t)sqlite3_column_int64(s, 2) / STATFS_BSIZE;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return meta_sql_err(db, rc, "sum server space");
    proto_statfs_rep_encode(reply, &rep);
    return reply->err;
}

static int q_getxattr(struct meta_db *db, const uint8_t *p, size_t n,
                      struct proto_wbuf *reply)
{
    struct proto_xattr_name_req q;
    struct proto_attr a;
    int r = proto_xattr_name_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name);
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if ((r = meta_xattr_perm(&q.cred, &a, &name, false)) < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_XATTR_GET);
    sqlite3_bind_int64(s, 1, (int64_t)a.ino);
    meta_bind_blob(s, 2, name.p, name.len);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        struct proto_bytes_rep rep = {
            .data = {sqlite3_column_blob(s, 0),
                     (uint32_t)sqlite3_column_bytes(s, 0)},
        };
        proto_bytes_rep_encode(reply, &rep);
        r = reply->err;
    } else if (rc == SQLITE_DONE) {
        r = -ENODATA;
    } else {
        r = meta_sql_err(db, rc, "get xattr");
    }
    sqlite3_reset(s);
    return r;
}

static int q_listxattr(struct meta_db *db, const uint8_t *p, size_t n,
                       struct proto_wbuf *reply)
{
    struct proto_ino_req q;
    struct proto_attr a;
    int r = proto_ino_req_decode(p, n, &q);
    if (r == 0)
        r = meta_inode_get(db, q.ino, &a);
    if (r < 0)
        return r;
    struct proto_wbuf names;
    proto_wbuf_init(&names);
    sqlite3_stmt *s = meta_st(db, META_ST_XATTR_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)a.ino);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        proto_put_raw(&names, sqlite3_column_blob(s, 0),
                      (size_t)sqlite3_column_bytes(s, 0));
        proto_put_u8(&names, 0);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        r = meta_sql_err(db, rc, "list xattrs");
    else if (names.err)
        r = names.err;
    if (r == 0) {
        struct proto_bytes_rep rep = {
            .data = {(const char *)names.p, (uint32_t)names.len},
        };
        proto_bytes_rep_encode(reply, &rep);
        r = reply->err;
    }
    proto_wbuf_free(&names);
    return r;
}

static int q_access(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    struct proto_access_req q;
    struct proto_attr a;
    int r = proto_access_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.mask & ~(uint32_t)(R_OK | W_OK | X_OK))
        return -EINVAL;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    /* R_OK, W_OK and X_OK are META_MAY_READ, _WRITE and _EXEC. */
    if ((r = meta_perm_check(&q.cred, &a, (int)q.mask)) < 0)
        return r;
    struct proto_empty e = {0};
    proto_empty_encode(reply, &e);
    return reply->err;
}

int meta_open_check(struct meta_db *db, const struct proto_access_req *q,
                    struct proto_attr *a)
{
    int mask, r;
    switch (q->mask & O_ACCMODE) {
    case O_RDONLY:
        mask = META_MAY_READ;
        break;
    case O_WRONLY:
        mask = META_MAY_WRITE;
        break;
    case O_RDWR:
        mask = META_MAY_READ | META_MAY_WRITE;
        break;
    default:
        return -EINVAL;
    }
    if (q->mask & O_TRUNC)
        mask |= META_MAY_WRITE;
    if ((r = meta_inode_get(db, q->ino, a)) < 0)
        return r;
    if (S_ISDIR(a->mode) && (mask & META_MAY_WRITE))
        return -EISDIR;
    if (S_ISLNK(a->mode))
        return -ELOOP;
    if ((r = meta_perm_check(&q->cred, a, mask)) < 0)
        return r;
    if ((mask & META_MAY_WRITE) && (r = meta_inode_writable(db, a->ino)) < 0)
        return r;
    return 0;
}

typedef int (*query_fn)(struct meta_db *db, const uint8_t *p, size_t n,
                        struct proto_wbuf *reply);
typedef int (*records_fn)(struct meta_db *db, uint64_t session,
                          const uint8_t *payload, size_t len);

/* The query and records columns of meta_ops.def, in its order
 * (meta_optab_index()). */
static const struct {
    query_fn query;
    records_fn records;
} query_fns[] = {
#define X(opcode, kind, callers, session, serve, apply, query, records,        \
          before, after, cb, commit)                                           \
    {query, records},
#include "meta_ops.def"
#undef X
};

int meta_op_records(struct meta_db *db, uint64_t session, uint16_t opcode,
                    const uint8_t *payload, size_t len)
{
    int i = meta_optab_index(opcode);
    if (i < 0 || meta_optab[i].kind != META_OPKIND_MUTATION)
        return 0;
    if (query_fns[i].records)
        return query_fns[i].records(db, session, payload, len);
    return 1;
}

int meta_query(struct meta_db *db, uint16_t opcode, const uint8_t *payload,
               size_t len, struct proto_wbuf *reply)
{
    size_t mark = reply->len;
    int err0 = reply->err, r;
    if (len && !payload)
        return -EINVAL;
    int i = meta_optab_index(opcode);
    if (i < 0 || !query_fns[i].query)
        return -ENOSYS;
    r = query_fns[i].query(db, payload, len, reply);
    if (r < 0) {
        reply->len = mark;
        reply->err = err0;
    }
    return r;
}

/* ---- Walks ------------------------------------------------------------- */

/* Run the one-row statement @id; its first columns go to @v. */
static int one_row(struct meta_db *db, enum meta_st id, uint64_t *v, int n)
{
    sqlite3_stmt *s = meta_st(db, id);
    int rc = sqlite3_step(s);
    for (int i = 0; i < n; i++)
        v[i] = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, i) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : meta_sql_err(db, rc, "count");
}

int meta_stats_get(struct meta_db *db, struct meta_stats *st)
{
    uint64_t v[4];
    int r;
    memset(st, 0, sizeof(*st));
    if ((r = one_row(db, META_ST_INODE_STATS, v, 4)) < 0)
        return r;
    st->inodes = v[0];
    st->dirs = v[1];
    st->files = v[2];
    st->orphans = v[3];
    if ((r = one_row(db, META_ST_SESSION_COUNT, &st->sessions, 1)) < 0 ||
        (r = one_row(db, META_ST_OPLOG_COUNT, &st->ops, 1)) < 0 ||
        (r = one_row(db, META_ST_DB_BYTES, &st->db_bytes, 1)) < 0 ||
        (r = one_row(db, META_ST_CHUNK_COUNT, &st->chunks, 1)) < 0)
        return r;
    return 0;
}

int meta_session_foreach(struct meta_db *db,
                         int (*fn)(uint64_t id, const char *name,
                                   const char *host, uint32_t lease_ms,
                                   void *arg),
                         void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SESSION_LIST);
    int rc, r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(s, 1);
        const unsigned char *host = sqlite3_column_text(s, 2);
        r = fn((uint64_t)sqlite3_column_int64(s, 0),
               name ? (const char *)name : "", host ? (const char *)host : "",
               (uint32_t)sqlite3_column_int64(s, 3), arg);
        if (r != 0)
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list sessions");
    return r;
}

int meta_oplog_foreach(struct meta_db *db, uint64_t after,
                       int (*fn)(uint64_t seq, const struct meta_op *op,
                                 void *arg),
                       void *arg)
{
    sqlite3_stmt *s = meta_st(db, META_ST_OPLOG_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)after);
    int rc, r = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct meta_op op = {
            .format = (uint8_t)sqlite3_column_int64(s, 5),
            .opcode = (uint16_t)sqlite3_column_int64(s, 1),
            .now = sqlite3_column_int64(s, 2),
            .session_id = (uint64_t)sqlite3_column_int64(s, 3),
            .payload = sqlite3_column_blob(s, 4),
            .len = (size_t)sqlite3_column_bytes(s, 4),
        };
        r = fn((uint64_t)sqlite3_column_int64(s, 0), &op, arg);
        if (r != 0)
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "walk op log");
    return r;
}
