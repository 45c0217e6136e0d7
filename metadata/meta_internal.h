/* meta_internal.h: shared inside metadata/ only.
 *
 * struct meta_db holds the SQLite connection and every statement the
 * state machine uses, prepared once at open (meta_db.c owns the SQL text).
 * The other files reach rows only through the helpers declared here, so a
 * schema change touches meta_db.c alone.
 *
 * Conventions: functions return 0 or -errno; SQLite failures are logged
 * once, where the statement failed, and become -EIO (-ENOSPC, -ENOMEM).
 */
#ifndef TESSERA_META_INTERNAL_H
#define TESSERA_META_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <sqlite3.h>

#include "meta.h"
#include "meta_optab.h"
#include "proto.h"

/* Largest number of hard links to one inode (LINK answers EMLINK). */
#define META_LINK_MAX 65000u
/* Default replication goal of the root directory. */
#define META_GOAL_DEFAULT 3u
/* Size reported for a directory, as ext4 reports one block. */
#define META_DIR_SIZE 4096u
/* Inode number of the root directory. */
#define META_ROOT_INO 1u

/* Every SQL statement, by id.  The SQL text is in meta_db.c. */
enum meta_st {
    META_ST_BEGIN,
    META_ST_COMMIT,
    META_ST_ROLLBACK,
    META_ST_SAVEPOINT,
    META_ST_RELEASE,
    META_ST_ROLLBACK_TO,
    META_ST_INODE_GET,
    META_ST_INODE_ALLOC,
    META_ST_INODE_INSERT,
    META_ST_INODE_UPDATE,
    META_ST_INODE_DELETE,
    META_ST_INODE_STATS,
    META_ST_SYMLINK_GET,
    META_ST_DIRENT_GET,
    META_ST_DIRENT_INSERT,
    META_ST_DIRENT_DELETE,
    META_ST_DIRENT_MOVE,
    META_ST_DIRENT_SET_INO,
    META_ST_DIRENT_PARENT,
    META_ST_DIRENT_ANY,
    META_ST_DIRENT_LIST,
    META_ST_XATTR_GET,
    META_ST_XATTR_PUT,
    META_ST_XATTR_DELETE,
    META_ST_XATTR_LIST,
    META_ST_CHUNK_GET,
    META_ST_CHUNK_AT,
    META_ST_CHUNK_RANGE,
    META_ST_CHUNK_INSERT,
    META_ST_CHUNK_SET_VERSION,
    META_ST_CHUNK_GC_FROM,
    META_ST_CHUNK_DROP_FROM,
    META_ST_REPLICA_LIST,
    META_ST_REPLICA_CLEAR,
    META_ST_REPLICA_ADD,
    META_ST_GC_ADD,
    META_ST_GC_DONE,
    META_ST_GC_LIST,
    META_ST_SERVER_BY_UUID,
    META_ST_SERVER_INSERT,
    META_ST_SERVER_UPDATE,
    META_ST_SERVER_EXISTS,
    META_ST_SERVER_LIST,
    META_ST_SERVER_SPACE,
    META_ST_SESSION_INSERT,
    META_ST_SESSION_DELETE,
    META_ST_SESSION_LIST,
    META_ST_SESSION_COUNT,
    META_ST_OPLOG_APPEND,
    META_ST_OPLOG_LIST,
    META_ST_OPLOG_COUNT,
    META_ST_OPLOG_PRUNE,
    META_ST_COUNTER_GET,
    META_ST_COUNTER_SET,
    META_ST_DB_BYTES,
    META_ST_CHUNK_COUNT,
    META_ST_CHUNK_LIST,
    META_ST_REPLICA_DEL,
    META_ST_REPLICA_DEL_SERVER,
    META_ST_GC_HAS,
    META_ST_GC_DEL_SERVER,
    META_ST_GC_LIST_SERVER,
    META_ST_SERVER_STATE,
    META_ST_SERVER_DELETE,
    META_ST_SERVER_USAGE,
    META_ST_SUBTREE,
    META_ST_SLOT_SET,
    META_ST_SLOT_COPY,
    META_ST_SLOT_DROP_FROM,
    META_ST_CHUNK_DELETE,
    META_ST_CHUNK_GC_ALL,
    META_ST_CHUNK_GOAL,
    META_ST_INODE_FLAGS_GET,
    META_ST_INODE_FLAGS_SET,
    META_ST_IMAGE_STATS,
    META_ST_IMAGE_SHARERS,
    META_ST_INODE_ORIGIN_GET,
    META_ST_INODE_ORIGIN_SET,
    META_ST_CHUNK_ORIGIN_SET,
    META_ST_CHUNK_ORIGIN_GET,
    META_ST_SLOT_SHARED_ANY,
    META_ST_SLOT_CHUNK_RANGE,
    META_ST_IMAGE_LIST,
    META_ST_DIRENT_NAME_OF,
    META_ST_SESSION_EXISTS,
    META_ST_HOLD_ADD,
    META_ST_HOLD_DEL,
    META_ST_HOLD_HAS,
    META_ST_HOLD_ANY,
    META_ST_HOLD_DEL_SESSION,
    META_ST_ORPHAN_FREE,
    META_ST_IDENT_GET,
    META_ST_IDENT_INSERT,
    META_ST_IDENT_CAPS,
    META_ST_IDENT_DELETE,
    META_ST_IDENT_LIST,
    META_ST_SVCKEY_ADD,
    META_ST_SVCKEY_LIST,
    META_ST_SVCKEY_PRUNE,
    META_ST_CHUNK_USAGE_GET,
    META_ST_CHUNK_USAGE_SET,
    META_ST_MEMBER_SET,
    META_ST_MEMBER_DEL,
    META_ST_MEMBER_GET,
    META_ST_ONCE_GET,
    META_ST_ONCE_PUT,
    META_ST_ONCE_DEL_SESSION,
    META_ST_INO_LAST,
    META_ST_INO_SKIP,
    META_ST_INO_RANGE_ADD,
    META_ST_INO_RANGE_TRIM,
    META_ST_INO_RANGE_HAS,
    META_ST_INO_RANGE_DEL_SESSION,
    META_ST_COUNT
};

struct meta_db {
    sqlite3 *sql;
    sqlite3_stmt *st[META_ST_COUNT];
    meta_db_wal_cb wal_cb; /* meta_db_wal_watch(), or NULL */
    void *wal_arg;
    bool batch;      /* meta_db_batch_begin()'s transaction is open */
    bool batch_lost; /* SQLite rolled it back whole: its records are gone */
    uint64_t batch_applied;   /* the last index applied in it (0: none) */
    uint64_t applied_pending; /* the index of the record in its savepoint,
                                 batch_applied once released */
};

/* A name borrowed from a request: not NUL-terminated. */
struct meta_name {
    const char *p;
    size_t len;
};

/* ---- meta_db.c --------------------------------------------------------- */

/* The statement @id, reset and with its bindings cleared.  Returns a
 * pointer owned by @db, valid until meta_db_close(). */
/* The first column of the row statement @id finds for ?1 = @key, into *v:
 * 0, -ENOENT when there is no row, or -errno (logged with @what). */
int meta_row_int(struct meta_db *db, enum meta_st id, uint64_t key, int64_t *v,
                 const char *what);
sqlite3_stmt *meta_st(struct meta_db *db, enum meta_st id);
/* Log a failed SQLite call (@what names the operation) and return the
 * matching -errno. */
int meta_sql_err(struct meta_db *db, int rc, const char *what);
/* The -errno of SQLite result code @rc, without logging. */
int meta_sqlite_errno(int rc);
/* Run statement @s to completion (no rows expected) and reset it. */
int meta_st_exec(struct meta_db *db, sqlite3_stmt *s, const char *what);
/* Run statement @s for its first row and reset it: 1 when there is one,
 * 0 when not, or -errno. */
int meta_st_row(struct meta_db *db, sqlite3_stmt *s, const char *what);
/* Bind a possibly empty byte range (a NULL pointer would bind SQL NULL).
 * @p is borrowed: it must stay valid until @s is reset. */
void meta_bind_blob(sqlite3_stmt *s, int i, const void *p, size_t n);
/* Fill @a from the inode columns starting at column @i (ino, mode, nlink,
 * uid, gid, rdev, goal, size, atime, mtime, ctime, version). */
void meta_attr_from_row(sqlite3_stmt *s, int i, struct proto_attr *a);

/* One record's transaction: BEGIN IMMEDIATE, or a savepoint inside an
 * open batch (meta_db_batch_begin()); committed or rolled back alone. */
int meta_tx_begin(struct meta_db *db);
int meta_tx_commit(struct meta_db *db);
void meta_tx_rollback(struct meta_db *db);

/* Inode rows.  meta_inode_get() fills @a (blocks derived from size);
 * -ENOENT when there is no such inode. */
int meta_inode_get(struct meta_db *db, uint64_t ino, struct proto_attr *a);
/* Insert a new inode from @a.  a->ino 0: the allocator numbers it and
 * a->ino gets the new number, which is never reused; otherwise a number
 * the caller checked is free and the allocator passed over (a reserved
 * one, meta_ino.c).  @target is the symlink target or NULL; it is
 * borrowed. */
int meta_inode_insert(struct meta_db *db, struct proto_attr *a,
                      const struct meta_name *target);
/* Flags of inode @ino (meta.h, META_INODE_*): get, set. */
int meta_inode_flags_set(struct meta_db *db, uint64_t ino, uint32_t flags);
/* The inode @ino was made from (a snapshot or clone; 0: none): get, set. */
int meta_inode_origin(struct meta_db *db, uint64_t ino, uint64_t *origin);
int meta_inode_origin_set(struct meta_db *db, uint64_t ino, uint64_t origin);
/* 0 when the data of @ino may change, -EROFS for a snapshot, -ENOENT. */
int meta_inode_writable(struct meta_db *db, uint64_t ino);
/* Write @a back, bumping a->version first (every change bumps it). */
int meta_inode_update(struct meta_db *db, struct proto_attr *a);
/* Delete inode @ino: its chunks go to the gc list (every replica), its
 * xattrs go with it.  The caller removed every entry naming it. */
int meta_inode_delete(struct meta_db *db, uint64_t ino);
/* The target of symlink @ino into @buf (NUL-terminated, at most @size-1
 * bytes); *len gets its length.  -ENOENT, -EINVAL when not a symlink. */
int meta_symlink_get(struct meta_db *db, uint64_t ino, char *buf, size_t size,
                     size_t *len);

/* Directory entries.  Each has a monotonic id, never reused: READDIR
 * cookies are built from it. */
int meta_dirent_find(struct meta_db *db, uint64_t parent,
                     const struct meta_name *name, uint64_t *ino, uint64_t *id);
int meta_dirent_insert(struct meta_db *db, uint64_t parent,
                       const struct meta_name *name, uint64_t ino);
int meta_dirent_delete(struct meta_db *db, uint64_t id);
int meta_dirent_move(struct meta_db *db, uint64_t id, uint64_t newparent,
                     const struct meta_name *name);
int meta_dirent_set_ino(struct meta_db *db, uint64_t id, uint64_t ino);
/* The directory holding directory @ino (root: itself). */
int meta_dir_parent(struct meta_db *db, uint64_t ino, uint64_t *parent);
/* 1 when directory @ino has no entries, 0 when it has some, or -errno. */
int meta_dir_empty(struct meta_db *db, uint64_t ino);

/* Named counters that only grow ("chunk_max", META_COUNTER_APPLIED). */
#define META_COUNTER_APPLIED "log_applied" /* meta_apply_at() */
int meta_counter_get(struct meta_db *db, const char *name, uint64_t *v);
int meta_counter_set(struct meta_db *db, const char *name, uint64_t v);
/* Record @index as the last log index applied: at once in a transaction
 * of its own record, or in a batch once, by the batch's commit (one
 * write for all its records, in the same transaction). */
int meta_db_applied_set(struct meta_db *db, uint64_t index);

/* ---- meta_perm.c ------------------------------------------------------- */

#define META_MAY_EXEC 1
#define META_MAY_WRITE 2
#define META_MAY_READ 4

bool meta_perm_in_group(const struct proto_cred *c, uint32_t gid);
bool meta_perm_owner(const struct proto_cred *c, const struct proto_attr *a);
/* rwx check of @mask (META_MAY_*) on @a: 0 or -EACCES.  Root passes
 * everything except exec on a non-directory with no x bit at all. */
int meta_perm_check(const struct proto_cred *c, const struct proto_attr *a,
                    int mask);
/* Sticky-directory rule for removing or replacing @victim in @dir:
 * 0 or -EPERM. */
int meta_perm_sticky(const struct proto_cred *c, const struct proto_attr *dir,
                     const struct proto_attr *victim);
/* Look up permission on @dir: exists, is a directory, searchable.
 * Fills @dir. -ENOENT, -ENOTDIR, -EACCES. */
int meta_perm_dir(struct meta_db *db, const struct proto_cred *c, uint64_t ino,
                  struct proto_attr *dir);

/* ---- meta_ns.c --------------------------------------------------------- */

/* Append an attr_rep body for @a to @w: 0 or its error. */
int meta_reply_attr(struct proto_wbuf *w, const struct proto_attr *a);
/* Validate a name to look up: -EINVAL (empty, '/'), -ENAMETOOLONG. */
int meta_name_check(const struct meta_name *n);
bool meta_name_is_dot(const struct meta_name *n);    /* "." */
bool meta_name_is_dotdot(const struct meta_name *n); /* ".." */

/* Checks for adding @name to directory @parent as Linux orders them
 * (ENOENT, ENOTDIR, EINVAL, ENAMETOOLONG, EEXIST, EACCES); fills @dir and,
 * for an existing name, *existing. */
int meta_ns_create_check(struct meta_db *db, const struct proto_cred *c,
                         uint64_t parent, const struct meta_name *name,
                         struct proto_attr *dir, uint64_t *existing);
/* Insert inode @a as @name in @dir (a->ino set) and update @dir.  @target
 * (a symlink's) is borrowed, may be NULL. */
int meta_ns_create_commit(struct meta_db *db, struct proto_attr *dir,
                          const struct meta_name *name, struct proto_attr *a,
                          const struct meta_name *target, int64_t now);

/* Record handlers (the apply column of meta_ops.def) all take the record
 * @op (payload, time, session) and, on success, append the reply body to
 * @reply.  These are the namespace's. */
int meta_ns_mknod(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply);
int meta_ns_mkdir(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply);
int meta_ns_symlink(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply);
int meta_ns_link(struct meta_db *db, const struct meta_op *op,
                 struct proto_wbuf *reply);
int meta_ns_unlink(struct meta_db *db, const struct meta_op *op,
                   struct proto_wbuf *reply);
int meta_ns_rmdir(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply);
int meta_ns_rename(struct meta_db *db, const struct meta_op *op,
                   struct proto_wbuf *reply);
int meta_ns_setattr(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply);
int meta_ns_setxattr(struct meta_db *db, const struct meta_op *op,
                     struct proto_wbuf *reply);
int meta_ns_removexattr(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply);

/* Validate an xattr name (ERANGE, EOPNOTSUPP) and check whether @c may
 * access it on @a for writing or reading: -EPERM, -EACCES, -ENODATA
 * (reading user.* of a special file). */
int meta_xattr_perm(const struct proto_cred *c, const struct proto_attr *a,
                    const struct meta_name *name, bool write);

/* ---- meta_query.c ------------------------------------------------------ */

/* The checks of OPEN_REQ @q (open(2) flags against the mode bits, a
 * directory opened for writing, a symlink, a snapshot opened for writing):
 * fills @a with the inode's attributes, 0 or -errno. */
int meta_open_check(struct meta_db *db, const struct proto_access_req *q,
                    struct proto_attr *a);

/* ---- meta_once.c ------------------------------------------------------- */

/* Outcomes kept per session (the slots of replies). */
#define META_ONCE_SLOTS 128

/* @op is a client's request in a session: its outcome is kept. */
bool meta_once_applies(const struct meta_op *op);
/* Outcome @status is one to keep (not out of memory, not an I/O error). */
bool meta_once_keeps(int status);
/* The outcome kept for @op: 1 with *@status and, for a success, the body
 * appended to @reply; 0 when none is kept; or -errno. */
int meta_once_get(struct meta_db *db, const struct meta_op *op, int *status,
                  struct proto_wbuf *reply);
/* Keep @op's outcome: @status and, for a success, @body (copied). */
int meta_once_put(struct meta_db *db, const struct meta_op *op, int status,
                  const uint8_t *body, size_t len);
/* Session @session_id ended: its kept outcomes go. */
int meta_once_session_end(struct meta_db *db, uint64_t session_id);

/* ---- meta_ino.c -------------------------------------------------------- */

/* Ranges a session keeps; a reservation past them drops the oldest. */
#define META_INO_RANGES_MAX 8

/* INO_RESERVE_REQ: a range of inode numbers for the record's session. */
int meta_ino_reserve_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply);
/* 0 when @ino lies in a range reserved to session @session, -EINVAL when
 * not, or -errno. */
int meta_ino_reserved(struct meta_db *db, uint64_t session, uint64_t ino);
/* Session @session ended: its ranges go (numbers left unused stay
 * unused). */
int meta_ino_session_end(struct meta_db *db, uint64_t session);

/* ---- meta_hold.c ------------------------------------------------------- */

/* 1 when some session holds @ino open, 0 when none does, or -errno. */
int meta_hold_any(struct meta_db *db, uint64_t ino);
/* Session @session holds regular file @ino open (idempotent).  -ENOTCONN
 * when the database has no such session (it ended meanwhile). */
int meta_hold_add(struct meta_db *db, uint64_t session, uint64_t ino);
/* Session @session ended: its holds go, and every orphan no other session
 * holds is reclaimed (its chunks to the gc list). */
int meta_hold_session_end(struct meta_db *db, uint64_t session);
/* OPEN_REQ as a record: the checks of OPEN, then, with PROTO_OPEN_HOLD in
 * a session (op->session_id not 0), a hold on a regular file. */
int meta_open_apply(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply);
/* OPEN_REQ without a record: the checks and the attributes, no hold. */
int meta_open_query(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply);
/* RELEASE_REQ: session @session no longer holds the file open; an orphan
 * nobody holds any more is reclaimed. */
int meta_release_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply);

/* ---- meta_chunk.c ------------------------------------------------------ */

/* Move every chunk of @ino with index >= @from to the gc list. */
int meta_chunk_drop_from(struct meta_db *db, uint64_t ino, uint64_t from);
int meta_chunk_set_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply);
int meta_gc_done_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply);
int meta_server_register_apply(struct meta_db *db, const struct meta_op *op,
                               struct proto_wbuf *reply);
int meta_write_end_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply);
int meta_chunk_cow_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply);
int meta_chunk_usage_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply);
/* Fill @loc's replicas of chunk @loc->chunk_id from the servers table;
 * the addresses are copied into @addrs, which @loc then points into. */
int meta_chunk_replicas_fill(struct meta_db *db, struct proto_chunk_loc *loc,
                             char (*addrs)[64]);

/* ---- meta_image.c ------------------------------------------------------ */

/* The path of @ino from the root into @buf ("/a/b"), through each
 * inode's first name; "?" when it has none (an orphan) or is nested too
 * deep. */
int meta_path_of(struct meta_db *db, uint64_t ino, char *buf, size_t size);
/* SNAPSHOT_REQ and CLONE_REQ records. */
int meta_image_snapshot_apply(struct meta_db *db, const struct meta_op *op,
                              struct proto_wbuf *reply);
int meta_image_clone_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply);
/* IMAGE_INFO_REQ (read-only). */
int meta_image_info(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply);
/* IMAGE_LIST_REQ (read-only). */
int meta_image_list(struct meta_db *db, const uint8_t *p, size_t n,
                    struct proto_wbuf *reply);
/* IMAGE_ROLLBACK_REQ and IMAGE_FLATTEN_REQ. */
int meta_image_rollback_apply(struct meta_db *db, const struct meta_op *op,
                              struct proto_wbuf *reply);
int meta_image_flatten_apply(struct meta_db *db, const struct meta_op *op,
                             struct proto_wbuf *reply);

/* ---- meta_image_changes.c ---------------------------------------------- */

/* IMAGE_CHANGES_REQ (read-only). */
int meta_image_changes(struct meta_db *db, const uint8_t *p, size_t n,
                       struct proto_wbuf *reply);
/* ---- meta_repl.c ------------------------------------------------------- */

/* Replication records: GOAL_SET_REQ, META_OP_REPLICA_ADD,
 * META_OP_REPLICA_DROP, META_OP_SERVER_STATE. */
int meta_goal_set_apply(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply);
int meta_replica_add_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply);
int meta_replica_drop_apply(struct meta_db *db, const struct meta_op *op,
                            struct proto_wbuf *reply);
int meta_server_state_apply(struct meta_db *db, const struct meta_op *op,
                            struct proto_wbuf *reply);

/* ---- meta_auth.c ------------------------------------------------------- */

/* META_OP_AUTH_ADD, AUTH_CAPS_REQ, AUTH_RM_REQ, META_OP_SERVICE_KEY. */
int meta_auth_add_apply(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply);
int meta_auth_caps_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply);
int meta_auth_rm_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply);
/* META_OP_MEMBER (meta_member.c). */
int meta_member_apply(struct meta_db *db, const struct meta_op *op,
                      struct proto_wbuf *reply);
int meta_service_key_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply);

/* CHUNK_LOCATE_REQ (read-only). */
int meta_chunk_locate(struct meta_db *db, const uint8_t *p, size_t n,
                      struct proto_wbuf *reply);

#endif
