/* meta_image.c: snapshots and clones in the engine (docs/vmdisk.md), and
 * IMAGE_INFO and IMAGE_LIST, the read side an operator looks at.
 *
 * SNAPSHOT_REQ and CLONE_REQ create one regular file whose chunk slots name
 * the same chunks as the source's: one inode row, one directory entry and
 * one slot row per allocated chunk, in one record.  No chunk server is
 * involved and no data moves, so it takes as long as inserting those rows.
 * A chunk's reference count is the number of slots naming it (meta_db.c,
 * migration 3); the first write to a shared chunk gets a private copy
 * (META_OP_CHUNK_COW, meta_chunk.c, driven by meta_srv_write.c), and
 * truncate or unlink release a reference, the last one listing the
 * replicas for deletion (meta_chunk_drop_from).
 *
 * The new file remembers its origin (inodes.origin), the lineage that
 * IMAGE_LIST shows; nothing else depends on it, so removing an origin
 * changes nothing for its snapshots and clones, which keep its chunks
 * through their own references.
 *
 * IMAGE_ROLLBACK gives an image a snapshot's chunks and size in one
 * record; IMAGE_FLATTEN forgets the origin of a file that no longer
 * shares a chunk (the copies are made before, by the client, through the
 * ordinary copy-on-write).
 *
 * A snapshot carries META_INODE_READONLY: its data and size never change
 * (meta_chunk.c invariant 4, meta_ns.c invariant 5).  A clone is an
 * ordinary file from birth.  Either may be the source of further
 * snapshots and clones.
 *
 * What this file leaves to the daemon: making sure no writer still holds
 * a write lease on a chunk of the source when the record is applied
 * (meta_srv_image.c bumps those chunks first), since a lease lets a client
 * write without asking again.
 */
#include "meta_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Deepest directory nesting a path is built for (IMAGE_INFO sharers). */
#define PATH_DEPTH_MAX 256

/* SNAPSHOT (@readonly) or CLONE of the file named in @p/@n. */
static int image_copy(struct meta_db *db, int64_t now, const uint8_t *p,
                      size_t n, bool readonly, struct proto_wbuf *reply)
{
    struct proto_snapshot_req q;
    struct proto_attr src, dir, a;
    int r = proto_snapshot_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = meta_inode_get(db, q.ino, &src)) < 0)
        return r;
    if (S_ISDIR(src.mode))
        return -EISDIR;
    if (!S_ISREG(src.mode))
        return -EINVAL;
    /* Copying a file needs read permission on it, like cp. */
    if ((r = meta_perm_check(&q.cred, &src, META_MAY_READ)) < 0)
        return r;
    struct meta_name name = {q.name.p, q.name.len};
    if ((r = meta_ns_create_check(db, &q.cred, q.parent, &name, &dir, NULL)) <
        0)
        return r;

    a = src;
    a.ino = 0; /* a new number (meta_inode_insert()) */
    a.nlink = 1;
    /* Root keeps the source's owner (an operator's snapshot of a user's
     * disk stays the user's); anyone else owns the copy, and set-ID bits
     * do not survive the change of owner. */
    if (q.cred.uid != 0) {
        a.uid = q.cred.uid;
        a.gid = q.cred.gid;
        a.mode &= ~(uint32_t)(S_ISUID | S_ISGID);
    }
    a.atime = src.mtime;
    a.ctime = now;
    if ((r = meta_ns_create_commit(db, &dir, &name, &a, NULL, now)) < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SLOT_COPY);
    sqlite3_bind_int64(s, 1, (int64_t)src.ino);
    sqlite3_bind_int64(s, 2, (int64_t)a.ino);
    if ((r = meta_st_exec(db, s, "share chunks")) < 0)
        return r;
    if (readonly &&
        (r = meta_inode_flags_set(db, a.ino, META_INODE_READONLY)) < 0)
        return r;
    if ((r = meta_inode_origin_set(db, a.ino, src.ino)) < 0)
        return r;
    struct proto_attr_rep rep = {.attr = a};
    proto_attr_rep_encode(reply, &rep);
    return reply->err;
}

int meta_image_snapshot_apply(struct meta_db *db, const struct meta_op *op,
                              struct proto_wbuf *reply)
{
    return image_copy(db, op->now, op->payload, op->len, true, reply);
}

int meta_image_clone_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply)
{
    return image_copy(db, op->now, op->payload, op->len, false, reply);
}

/* ---- IMAGE_ROLLBACK, IMAGE_FLATTEN ------------------------------------- */

/* docs/protocol.md §12.6: image @q.ino takes snapshot @q.src's chunks and
 * size.  Its own chunks are released (the ones nobody else names go to
 * the gc list), then its slots name the snapshot's, shared from now on,
 * so the image's next write to any of them copies it (meta_chunk.c).
 * The daemon (meta_srv_image.c) has ended every write lease on the image
 * and refused an image whose writer lease someone holds. */
int meta_image_rollback_apply(struct meta_db *db, const struct meta_op *op,
                              struct proto_wbuf *reply)
{
    struct proto_image_pair_req q;
    struct proto_attr img, snap;
    uint32_t flags;
    int r = proto_image_pair_req_decode(op->payload, op->len, &q);
    if (r < 0)
        return r;
    if ((r = meta_inode_get(db, q.ino, &img)) < 0 ||
        (r = meta_inode_get(db, q.src, &snap)) < 0)
        return r;
    if (S_ISDIR(img.mode) || S_ISDIR(snap.mode))
        return -EISDIR;
    if (!S_ISREG(img.mode) || !S_ISREG(snap.mode) || q.ino == q.src)
        return -EINVAL;
    if ((r = meta_inode_writable(db, q.ino)) < 0)
        return r;
    /* Only to a snapshot: its content cannot have moved on since. */
    if ((r = meta_inode_flags(db, q.src, &flags)) < 0)
        return r;
    if (!(flags & META_INODE_READONLY))
        return -EINVAL;
    if ((r = meta_perm_check(&q.cred, &img, META_MAY_WRITE)) < 0 ||
        (r = meta_perm_check(&q.cred, &snap, META_MAY_READ)) < 0)
        return r;
    if ((r = meta_chunk_drop_from(db, q.ino, 0)) < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SLOT_COPY);
    sqlite3_bind_int64(s, 1, (int64_t)q.src);
    sqlite3_bind_int64(s, 2, (int64_t)q.ino);
    if ((r = meta_st_exec(db, s, "share chunks")) < 0)
        return r;
    img.size = snap.size;
    img.mtime = img.ctime = op->now;
    if ((r = meta_inode_update(db, &img)) < 0)
        return r;
    return meta_reply_attr(reply, &img);
}

/* docs/protocol.md §12.6: file @q.ino no longer depends on the file it
 * was made from.  The client has already given it a copy of every shared
 * chunk (CHUNK_WRITE_BEGIN on each slot); this forgets the origin, and is
 * refused with EBUSY while a slot is still shared (a snapshot taken
 * meanwhile), so that the client copies again. */
int meta_image_flatten_apply(struct meta_db *db, const struct meta_op *op,
                             struct proto_wbuf *reply)
{
    struct proto_image_pair_req q;
    struct proto_attr a;
    int r = proto_image_pair_req_decode(op->payload, op->len, &q);
    if (r < 0)
        return r;
    if (q.src != 0)
        return -EINVAL;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if (S_ISDIR(a.mode))
        return -EISDIR;
    if (!S_ISREG(a.mode))
        return -EINVAL;
    if ((r = meta_inode_writable(db, q.ino)) < 0 ||
        (r = meta_perm_check(&q.cred, &a, META_MAY_WRITE)) < 0)
        return r;
    sqlite3_stmt *s = meta_st(db, META_ST_SLOT_SHARED_ANY);
    sqlite3_bind_int64(s, 1, (int64_t)q.ino);
    int rc = sqlite3_step(s);
    bool shared = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) != 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return meta_sql_err(db, rc, "shared slots");
    if (shared)
        return -EBUSY;
    if ((r = meta_inode_origin_set(db, q.ino, 0)) < 0)
        return r;
    return meta_reply_attr(reply, &a);
}

/* ---- IMAGE_INFO ---------------------------------------------------------- */

int meta_path_of(struct meta_db *db, uint64_t ino, char *buf, size_t size)
{
    char tmp[PROTO_MAX_STR + 1];
    size_t len = 0; /* built backwards at the end of tmp */
    int depth = 0;

    tmp[sizeof(tmp) - 1] = '\0';
    while (ino != META_ROOT_INO && depth++ < PATH_DEPTH_MAX) {
        sqlite3_stmt *s = meta_st(db, META_ST_DIRENT_NAME_OF);
        sqlite3_bind_int64(s, 1, (int64_t)ino);
        int rc = sqlite3_step(s);
        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            if (rc != SQLITE_DONE)
                return meta_sql_err(db, rc, "name of inode");
            snprintf(buf, size, "?");
            return 0;
        }
        ino = (uint64_t)sqlite3_column_int64(s, 0);
        const void *nm = sqlite3_column_blob(s, 1);
        size_t k = (size_t)sqlite3_column_bytes(s, 1);
        if (len + k + 1 > sizeof(tmp) - 1) {
            sqlite3_reset(s);
            snprintf(buf, size, "?");
            return 0;
        }
        len += k + 1;
        char *at = tmp + sizeof(tmp) - 1 - len;
        at[0] = '/';
        if (k)
            memcpy(at + 1, nm, k);
        sqlite3_reset(s);
    }
    if (ino != META_ROOT_INO) {
        snprintf(buf, size, "?");
        return 0;
    }
    snprintf(buf, size, "%s", len ? tmp + sizeof(tmp) - 1 - len : "/");
    return 0;
}

/* Answer with the @count pairs in @kv, which is released, unless @r
 * already failed.  Returns @r, or the encoding's error. */
static int kv_reply(struct proto_wbuf *kv, uint32_t count, int r,
                    struct proto_wbuf *reply)
{
    if (r == 0 && kv->err)
        r = kv->err;
    if (r == 0) {
        struct proto_status_rep rep = {
            .count = count,
            .raw = {(const char *)kv->p, (uint32_t)kv->len},
        };
        proto_status_rep_encode(reply, &rep);
        r = reply->err;
    }
    proto_wbuf_free(kv);
    return r;
}

static void kv_u64(struct proto_wbuf *w, const char *key, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, v);
    proto_kv_put(w, key, num);
}

/* The "origin" and "origin_path" pairs of IMAGE_INFO for a snapshot or
 * clone; none for a file made from nothing.  The path is empty when the
 * origin was removed. */
static int add_origin(struct meta_db *db, uint64_t ino, struct proto_wbuf *kv,
                      uint32_t *count)
{
    char path[PROTO_MAX_STR + 1] = "";
    uint64_t origin = 0;
    uint32_t flags;
    int r = meta_inode_origin(db, ino, &origin);

    if (r < 0 || origin == 0)
        return r;
    r = meta_inode_flags(db, origin, &flags);
    if (r == 0)
        r = meta_path_of(db, origin, path, sizeof(path));
    else if (r == -ENOENT)
        r = 0;
    if (r < 0)
        return r;
    kv_u64(kv, "origin", origin);
    proto_kv_put(kv, "origin_path", path);
    *count += 2;
    return 0;
}

/* docs/protocol.md §12.3: size, mapped bytes, chunk slots, shared slots,
 * the read-only flag, the origin, then one "sharer" pair per other file
 * sharing a chunk with it: "INO CHUNKS PATH". */
int meta_image_info(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    struct proto_ino_req q;
    struct proto_attr a;
    struct proto_wbuf kv;
    uint32_t flags = 0, count = 0;
    int r = proto_ino_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if (S_ISDIR(a.mode))
        return -EISDIR;
    if (!S_ISREG(a.mode))
        return -EINVAL;
    if ((r = meta_inode_flags(db, q.ino, &flags)) < 0)
        return r;

    sqlite3_stmt *s = meta_st(db, META_ST_IMAGE_STATS);
    sqlite3_bind_int64(s, 1, (int64_t)q.ino);
    sqlite3_bind_int64(s, 2, PROTO_CHUNK_SIZE);
    sqlite3_bind_int64(s, 3, (int64_t)a.size);
    int rc = sqlite3_step(s);
    uint64_t slots = 0, shared = 0, mapped = 0;
    if (rc == SQLITE_ROW) {
        slots = (uint64_t)sqlite3_column_int64(s, 0);
        shared = (uint64_t)sqlite3_column_int64(s, 1);
        mapped = (uint64_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return meta_sql_err(db, rc, "image stats");

    proto_wbuf_init(&kv);
    kv_u64(&kv, "ino", a.ino);
    kv_u64(&kv, "size", a.size);
    kv_u64(&kv, "allocated", mapped);
    kv_u64(&kv, "chunks", slots);
    kv_u64(&kv, "shared", shared);
    kv_u64(&kv, "goal", a.goal);
    proto_kv_put(&kv, "readonly", (flags & META_INODE_READONLY) ? "1" : "0");
    count = 7;
    if ((r = add_origin(db, q.ino, &kv, &count)) < 0) {
        proto_wbuf_free(&kv);
        return r;
    }

    s = meta_st(db, META_ST_IMAGE_SHARERS);
    sqlite3_bind_int64(s, 1, (int64_t)q.ino);
    /* Collected first: meta_path_of() runs statements of its own. */
    uint64_t sh[64][2];
    size_t nsh = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && nsh < 64) {
        sh[nsh][0] = (uint64_t)sqlite3_column_int64(s, 0);
        sh[nsh][1] = (uint64_t)sqlite3_column_int64(s, 1);
        nsh++;
    }
    bool more = rc == SQLITE_ROW;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = meta_sql_err(db, rc, "image sharers");
    for (size_t i = 0; r == 0 && i < nsh; i++) {
        char path[PROTO_MAX_STR + 1], val[PROTO_MAX_STR + 48];
        if ((r = meta_path_of(db, sh[i][0], path, sizeof(path))) < 0)
            break;
        snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64 " %s", sh[i][0],
                 sh[i][1], path);
        val[PROTO_MAX_STR] = '\0';
        proto_kv_put(&kv, "sharer", val);
        count++;
    }
    if (r == 0 && more) {
        /* The list is cut at 64 files: say so rather than pretend. */
        proto_kv_put(&kv, "sharers_truncated", "1");
        count++;
    }
    return kv_reply(&kv, count, r, reply);
}

/* ---- IMAGE_LIST ---------------------------------------------------------- */

/* Most files one IMAGE_LIST reply describes, and the most bytes of pairs
 * (a path may be 4 KiB long: stop while one more surely fits a frame). */
#define IMAGE_LIST_MAX 4096
#define IMAGE_LIST_BYTES (PROTO_MAX_DATA - 4 * (PROTO_MAX_STR + 64))

/* docs/protocol.md §12.5: one "image" pair per regular file under the
 * directory (or the one file) @ino, "INO ORIGIN LIVE RO SIZE ALLOCATED
 * SHARED PATH", then "truncated" = "1" when there were more. */
int meta_image_list(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply)
{
    struct proto_ino_req q;
    struct proto_attr a;
    struct proto_wbuf kv;
    uint64_t(*rows)[7];
    size_t nrows = 0;
    uint32_t count = 0;
    int r = proto_ino_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if (!S_ISDIR(a.mode) && !S_ISREG(a.mode))
        return -EINVAL;
    rows = calloc(IMAGE_LIST_MAX + 1, sizeof(*rows));
    if (!rows)
        return -ENOMEM;

    /* Collected first: meta_path_of() runs statements of its own. */
    sqlite3_stmt *s = meta_st(db, META_ST_IMAGE_LIST);
    sqlite3_bind_int64(s, 1, (int64_t)q.ino);
    sqlite3_bind_int64(s, 2, PROTO_CHUNK_SIZE);
    sqlite3_bind_int64(s, 3, IMAGE_LIST_MAX + 1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && nrows <= IMAGE_LIST_MAX) {
        for (int c = 0; c < 5; c++)
            rows[nrows][c] = (uint64_t)sqlite3_column_int64(s, c);
        rows[nrows][5] = (uint64_t)sqlite3_column_double(s, 5);
        rows[nrows][6] = (uint64_t)sqlite3_column_double(s, 6);
        nrows++;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = meta_sql_err(db, rc, "image list");

    proto_wbuf_init(&kv);
    size_t i = 0;
    for (; r == 0 && i < nrows && i < IMAGE_LIST_MAX; i++) {
        if (kv.len > IMAGE_LIST_BYTES)
            break;
        char path[PROTO_MAX_STR + 1], val[PROTO_MAX_STR + 160];
        if ((r = meta_path_of(db, rows[i][0], path, sizeof(path))) < 0)
            break;
        snprintf(val, sizeof(val),
                 "%" PRIu64 " %" PRIu64 " %d %d %" PRIu64 " %" PRIu64
                 " %" PRIu64 " %s",
                 rows[i][0], rows[i][1], rows[i][2] != 0,
                 (rows[i][3] & META_INODE_READONLY) != 0, rows[i][4],
                 rows[i][5], rows[i][6], path);
        val[PROTO_MAX_STR] = '\0';
        proto_kv_put(&kv, "image", val);
        count++;
    }
    if (r == 0 && i < nrows) {
        proto_kv_put(&kv, "truncated", "1");
        count++;
    }
    free(rows);
    return kv_reply(&kv, count, r, reply);
}
