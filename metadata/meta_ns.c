/* meta_ns.c: namespace mutations: create (MKNOD, MKDIR, SYMLINK, LINK),
 * remove (UNLINK, RMDIR), RENAME, SETATTR and the extended attributes.
 *
 * Each handler decodes its request, checks it as a local POSIX file system
 * would (pjdfstest is the reference for errno values and their order), then
 * changes rows through the meta_db.c helpers.  Handlers run inside the
 * transaction meta_apply() opened, so a handler that fails half way leaves
 * nothing behind: it may return an error after writing.
 *
 * Invariants kept here:
 *   1. A directory's nlink is 2 plus the number of its subdirectories.
 *   2. A file's nlink is the number of entries naming it; at 0 the inode
 *      row goes and its chunks go to the gc list, unless a session holds
 *      the file open: then it stays, with nlink 0, as an orphan that
 *      meta_hold.c reclaims when the last hold ends.
 *   3. Every change to an inode bumps its version (meta_inode_update()).
 *   4. Times come from the op record, never from the clock: op->now, or
 *      for a change the client answered itself (MKNOD with INO, UNLINK
 *      with a time) the request's, within META_NS_SKEW_NS of op->now
 *      (change_time()).
 *   5. A snapshot (META_INODE_READONLY) keeps its size and extended
 *      attributes: SETATTR of the size and the xattr writes are EROFS;
 *      it may still be renamed, linked, unlinked, chmod-ed.
 */
#include "meta_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define CHMOD_BITS 07777u

/* How far a client's time of a change may be from the record's. */
#define META_NS_SKEW_NS (60 * 1000000000LL)

static struct meta_name nm(struct proto_str s)
{
    return (struct meta_name){s.p, s.len};
}

int meta_name_check(const struct meta_name *n)
{
    if (n->len == 0 || memchr(n->p, '/', n->len) || memchr(n->p, 0, n->len))
        return -EINVAL;
    if (n->len > PROTO_NAME_MAX)
        return -ENAMETOOLONG;
    return 0;
}

bool meta_name_is_dot(const struct meta_name *n)
{
    return n->len == 1 && n->p[0] == '.';
}

bool meta_name_is_dotdot(const struct meta_name *n)
{
    return n->len == 2 && n->p[0] == '.' && n->p[1] == '.';
}

static bool name_is_special(const struct meta_name *n)
{
    return meta_name_is_dot(n) || meta_name_is_dotdot(n);
}

int meta_reply_attr(struct proto_wbuf *w, const struct proto_attr *a)
{
    struct proto_attr_rep rep = {.attr = *a};
    proto_attr_rep_encode(w, &rep);
    return w->err;
}

/* docs/protocol.md §6.8-6.11: the entry and its directory after the
 * change (a version 1 peer gets the entry only, meta_srv_reply()). */
static int reply_entry(struct proto_wbuf *w, const struct proto_attr *a,
                       const struct proto_attr *dir)
{
    struct proto_entry_rep rep = {.attr = *a, .has_dir = true, .dir = *dir};
    proto_entry_rep_encode(w, &rep);
    return w->err;
}

/* §6.12, §6.13: the directories after the change; @d1 NULL for one. */
static int reply_dirs(struct proto_wbuf *w, const struct proto_attr *d0,
                      const struct proto_attr *d1)
{
    struct proto_dirs_rep rep = {.ndirs = d1 ? 2 : 1, .dir = {*d0}};
    if (d1)
        rep.dir[1] = *d1;
    proto_dirs_rep_encode(w, &rep);
    return w->err;
}

static int reply_empty(struct proto_wbuf *w)
{
    struct proto_empty e = {0};
    proto_empty_encode(w, &e);
    return w->err;
}

/* Directory @dir changed its entries at @now. */
static int dir_touch(struct meta_db *db, struct proto_attr *dir, int64_t now)
{
    dir->mtime = dir->ctime = now;
    return meta_inode_update(db, dir);
}

/* Checks for adding @name to directory @parent, in the order Linux makes
 * them: the parent (ENOENT, ENOTDIR), the name (EINVAL, ENAMETOOLONG,
 * EEXIST for "." and ".."), search permission, an existing entry (EEXIST,
 * its inode in *existing), then write permission.  Fills @dir. */
int meta_ns_create_check(struct meta_db *db, const struct proto_cred *c,
                         uint64_t parent, const struct meta_name *name,
                         struct proto_attr *dir, uint64_t *existing)
{
    int r = meta_inode_get(db, parent, dir);
    if (r < 0)
        return r;
    if (!S_ISDIR(dir->mode))
        return -ENOTDIR;
    if ((r = meta_name_check(name)) < 0)
        return r;
    if (name_is_special(name))
        return -EEXIST;
    if ((r = meta_perm_check(c, dir, META_MAY_EXEC)) < 0)
        return r;
    r = meta_dirent_find(db, parent, name, existing, NULL);
    if (r == 0)
        return -EEXIST;
    if (r != -ENOENT)
        return r;
    return meta_perm_check(c, dir, META_MAY_WRITE | META_MAY_EXEC);
}

/* Attributes of a new inode of @mode under @dir: owner from the caller,
 * group from the caller or, under a set-group-ID directory, from the
 * directory (and a new directory inherits the bit); the goal is the
 * directory's. */
static void new_attr(const struct proto_cred *c, const struct proto_attr *dir,
                     uint32_t mode, int64_t now, struct proto_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->mode = mode;
    a->nlink = 1;
    a->uid = c->uid;
    a->gid = c->gid;
    if (dir->mode & S_ISGID) {
        a->gid = dir->gid;
        if (S_ISDIR(mode))
            a->mode |= S_ISGID;
    }
    /* Linux's inode_init_owner(): a caller outside the group may not
     * create a set-group-ID executable in it. */
    if (!S_ISDIR(mode) && (a->mode & S_ISGID) && (a->mode & S_IXGRP) &&
        c->uid != 0 && !meta_perm_in_group(c, a->gid))
        a->mode &= ~S_ISGID;
    a->goal = dir->goal ? dir->goal : META_GOAL_DEFAULT;
    a->atime = a->mtime = a->ctime = now;
}

/* Insert @a (filled by new_attr) as @name in @dir and update @dir. */
int meta_ns_create_commit(struct meta_db *db, struct proto_attr *dir,
                          const struct meta_name *name, struct proto_attr *a,
                          const struct meta_name *target, int64_t now)
{
    int r = meta_inode_insert(db, a, target);
    if (r == 0)
        r = meta_dirent_insert(db, dir->ino, name, a->ino);
    if (r < 0)
        return r;
    if (S_ISDIR(a->mode))
        dir->nlink++;
    return dir_touch(db, dir, now);
}

/* MKNOD with PROTO_MKNOD_HOLD in a session: the caller holds the regular
 * file it created or found open (meta_hold.c). */
static int mknod_hold(struct meta_db *db, uint64_t session,
                      const struct proto_mknod_req *q,
                      const struct proto_attr *a)
{
    if (!(q->flags & PROTO_MKNOD_HOLD) || !session || !S_ISREG(a->mode))
        return 0;
    return meta_hold_add(db, session, a->ino);
}

/* The time of a change the client answered itself and timed @t
 * (docs/caching.md, "Delegated directories"): @t, for the inode and its
 * directory alike, so that what the client showed is what is stored;
 * op->now when @t is 0 or further than META_NS_SKEW_NS from it (a
 * client's clock that is off). */
static int64_t change_time(const struct meta_op *op, int64_t t)
{
    if (t == 0 || t < op->now - META_NS_SKEW_NS ||
        t > op->now + META_NS_SKEW_NS)
        return op->now;
    return t;
}

/* MKNOD with PROTO_MKNOD_INO (docs/protocol.md §6.8): the new inode @a
 * takes the client's number, which must be reserved to the record's
 * session (EINVAL) and free (EEXIST).  Checked after every other check,
 * so a request fails as it would without INO whenever that would fail. */
static int mknod_ino(struct meta_db *db, uint64_t session,
                     const struct proto_mknod_req *q, struct proto_attr *a)
{
    struct proto_attr used;
    int r;

    if (!(q->flags & PROTO_MKNOD_INO))
        return 0;
    if ((r = meta_ino_reserved(db, session, q->ino)) < 0)
        return r;
    r = meta_inode_get(db, q->ino, &used);
    if (r == 0)
        return -EEXIST;
    if (r != -ENOENT)
        return r;
    a->ino = q->ino;
    return 0;
}

int meta_ns_mknod(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply)
{
    int64_t now = op->now;
    uint64_t session = op->session_id;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_mknod_req q;
    int r = proto_mknod_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if (q.flags & PROTO_MKNOD_INO)
        now = change_time(op, q.time);
    uint32_t type = q.mode & S_IFMT;
    switch (type) {
    case 0:
        type = S_IFREG;
        break;
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
        break;
    case S_IFDIR:
        return -EPERM;
    default:
        return -EINVAL;
    }
    struct meta_name name = nm(q.name);
    struct proto_attr dir, a;
    uint64_t existing = 0;
    r = meta_ns_create_check(db, &q.cred, q.parent, &name, &dir, &existing);
    if (r == -EEXIST && existing && !(q.flags & PROTO_MKNOD_EXCL)) {
        /* open(O_CREAT) without O_EXCL of an existing name opens it. */
        if ((r = meta_inode_get(db, existing, &a)) < 0)
            return r;
        if (S_ISDIR(a.mode))
            return -EISDIR;
        if (S_ISLNK(a.mode))
            return -EEXIST;
        if ((r = mknod_hold(db, session, &q, &a)) < 0)
            return r;
        return reply_entry(reply, &a, &dir);
    }
    if (r < 0)
        return r;
    if ((type == S_IFCHR || type == S_IFBLK) && q.cred.uid != 0)
        return -EPERM;
    new_attr(&q.cred, &dir, type | (q.mode & ~q.umask & CHMOD_BITS), now, &a);
    if (type == S_IFCHR || type == S_IFBLK)
        a.rdev = q.rdev;
    if ((r = mknod_ino(db, session, &q, &a)) < 0)
        return r;
    if ((r = meta_ns_create_commit(db, &dir, &name, &a, NULL, now)) < 0)
        return r;
    if ((r = mknod_hold(db, session, &q, &a)) < 0)
        return r;
    return reply_entry(reply, &a, &dir);
}

int meta_ns_mkdir(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_mkdir_req q;
    int r = proto_mkdir_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name);
    struct proto_attr dir, a;
    if ((r = meta_ns_create_check(db, &q.cred, q.parent, &name, &dir, NULL)) <
        0)
        return r;
    if (dir.nlink >= META_LINK_MAX)
        return -EMLINK;
    new_attr(&q.cred, &dir, S_IFDIR | (q.mode & ~q.umask & CHMOD_BITS), now,
             &a);
    a.nlink = 2;
    a.size = META_DIR_SIZE;
    if ((r = meta_ns_create_commit(db, &dir, &name, &a, NULL, now)) < 0)
        return r;
    return reply_entry(reply, &a, &dir);
}

int meta_ns_symlink(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_symlink_req q;
    int r = proto_symlink_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name), target = nm(q.target);
    struct proto_attr dir, a;
    if ((r = meta_ns_create_check(db, &q.cred, q.parent, &name, &dir, NULL)) <
        0)
        return r;
    /* symlink(2): an empty target is ENOENT; PATH_MAX counts the NUL. */
    if (target.len == 0)
        return -ENOENT;
    if (target.len >= 4096 || memchr(target.p, 0, target.len))
        return target.len >= 4096 ? -ENAMETOOLONG : -EINVAL;
    new_attr(&q.cred, &dir, S_IFLNK | 0777, now, &a);
    a.size = target.len;
    if ((r = meta_ns_create_commit(db, &dir, &name, &a, &target, now)) < 0)
        return r;
    return reply_entry(reply, &a, &dir);
}

int meta_ns_link(struct meta_db *db, const struct meta_op *op,
                 struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_link_req q;
    int r = proto_link_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.newname);
    struct proto_attr a, dir;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if (S_ISDIR(a.mode))
        return -EPERM;
    /* linkat(2) of an open file whose last name is gone: ENOENT. */
    if (a.nlink == 0)
        return -ENOENT;
    if ((r = meta_ns_create_check(db, &q.cred, q.newparent, &name, &dir,
                                  NULL)) < 0)
        return r;
    if (a.nlink >= META_LINK_MAX)
        return -EMLINK;
    if ((r = meta_dirent_insert(db, dir.ino, &name, a.ino)) < 0)
        return r;
    a.nlink++;
    a.ctime = now;
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    if ((r = dir_touch(db, &dir, now)) < 0)
        return r;
    return reply_entry(reply, &a, &dir);
}

/* Drop one link to non-directory @a (its entry is already gone).  The
 * last one deletes the inode, or makes it an orphan while a session holds
 * it open (invariant 2). */
static int drop_link(struct meta_db *db, struct proto_attr *a, int64_t now)
{
    if (a->nlink <= 1) {
        int r = meta_hold_any(db, a->ino);
        if (r <= 0)
            return r < 0 ? r : meta_inode_delete(db, a->ino);
        a->nlink = 0;
        a->ctime = now;
        return meta_inode_update(db, a);
    }
    a->nlink--;
    a->ctime = now;
    return meta_inode_update(db, a);
}

/* Checks for removing @name from @parent, in Linux's may_delete() order:
 * the parent and search permission, the name, the entry (ENOENT), write
 * permission, the sticky bit.  Fills @dir, @victim and the entry id. */
static int remove_check(struct meta_db *db, const struct proto_cred *c,
                        uint64_t parent, const struct meta_name *name,
                        struct proto_attr *dir, struct proto_attr *victim,
                        uint64_t *id)
{
    int r = meta_perm_dir(db, c, parent, dir);
    if (r < 0)
        return r;
    if ((r = meta_name_check(name)) < 0)
        return r;
    uint64_t ino;
    if ((r = meta_dirent_find(db, parent, name, &ino, id)) < 0)
        return r;
    if ((r = meta_inode_get(db, ino, victim)) < 0)
        return r;
    if ((r = meta_perm_check(c, dir, META_MAY_WRITE | META_MAY_EXEC)) < 0)
        return r;
    return meta_perm_sticky(c, dir, victim);
}

int meta_ns_unlink(struct meta_db *db, const struct meta_op *op,
                   struct proto_wbuf *reply)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_lookup_req q;
    int r = proto_lookup_req_decode(p, n, &q);
    if (r < 0)
        return r;
    int64_t now = change_time(op, q.time);
    struct meta_name name = nm(q.name);
    struct proto_attr dir, a;
    uint64_t id;
    if (name_is_special(&name)) {
        /* "." and ".." always name directories. */
        if ((r = meta_perm_dir(db, &q.cred, q.parent, &dir)) < 0)
            return r;
        return -EISDIR;
    }
    if ((r = remove_check(db, &q.cred, q.parent, &name, &dir, &a, &id)) < 0)
        return r;
    if (S_ISDIR(a.mode))
        return -EISDIR;
    if ((r = meta_dirent_delete(db, id)) < 0)
        return r;
    if ((r = drop_link(db, &a, now)) < 0)
        return r;
    if ((r = dir_touch(db, &dir, now)) < 0)
        return r;
    return reply_dirs(reply, &dir, NULL);
}

int meta_ns_rmdir(struct meta_db *db, const struct meta_op *op,
                  struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_lookup_req q;
    int r = proto_lookup_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name);
    struct proto_attr dir, a;
    uint64_t id;
    if (name_is_special(&name)) {
        if ((r = meta_perm_dir(db, &q.cred, q.parent, &dir)) < 0)
            return r;
        /* rmdir(2): "." is EINVAL; ".." is never empty. */
        return meta_name_is_dot(&name) ? -EINVAL : -ENOTEMPTY;
    }
    if ((r = remove_check(db, &q.cred, q.parent, &name, &dir, &a, &id)) < 0)
        return r;
    if (!S_ISDIR(a.mode))
        return -ENOTDIR;
    if (a.ino == META_ROOT_INO)
        return -EBUSY;
    if ((r = meta_dir_empty(db, a.ino)) < 0)
        return r;
    if (r == 0)
        return -ENOTEMPTY;
    if ((r = meta_dirent_delete(db, id)) < 0)
        return r;
    if ((r = meta_inode_delete(db, a.ino)) < 0)
        return r;
    dir.nlink--;
    if ((r = dir_touch(db, &dir, now)) < 0)
        return r;
    return reply_dirs(reply, &dir, NULL);
}

/* ---- RENAME ------------------------------------------------------------ */

/* -EINVAL when directory @dir is @top or lies below it: a directory may
 * not move into its own subtree. */
static int not_below(struct meta_db *db, uint64_t top, uint64_t dir)
{
    for (;;) {
        if (dir == top)
            return -EINVAL;
        if (dir == META_ROOT_INO)
            return 0;
        int r = meta_dir_parent(db, dir, &dir);
        if (r < 0)
            return r;
    }
}

struct rename_ctx {
    struct proto_rename_req q;
    struct meta_name name, newname;
    struct proto_attr sdir, ddir_copy, src, dst;
    struct proto_attr *ddir; /* &sdir when both parents are the same */
    uint64_t sid, did;
    bool have_dst, exchange, cross;
};

/* Checks after both entries are known, in vfs_rename() order. */
static int rename_check(struct meta_db *db, struct rename_ctx *x)
{
    const struct proto_cred *c = &x->q.cred;
    bool sdirp = S_ISDIR(x->src.mode);
    bool ddirp = x->have_dst && S_ISDIR(x->dst.mode);
    int r;
    if ((r = meta_perm_check(c, &x->sdir, META_MAY_WRITE | META_MAY_EXEC)))
        return r;
    if ((r = meta_perm_check(c, x->ddir, META_MAY_WRITE | META_MAY_EXEC)))
        return r;
    if ((r = meta_perm_sticky(c, &x->sdir, &x->src)) < 0)
        return r;
    if (x->have_dst && (r = meta_perm_sticky(c, x->ddir, &x->dst)) < 0)
        return r;
    if (x->have_dst && !x->exchange) {
        if (sdirp && !ddirp)
            return -ENOTDIR;
        if (!sdirp && ddirp)
            return -EISDIR;
    }
    if (x->cross && sdirp && (r = not_below(db, x->src.ino, x->ddir->ino)))
        return r;
    if (x->cross && x->exchange && ddirp &&
        (r = not_below(db, x->dst.ino, x->sdir.ino)))
        return r;
    if (ddirp && !x->exchange) {
        if ((r = meta_dir_empty(db, x->dst.ino)) < 0)
            return r;
        if (r == 0)
            return -ENOTEMPTY;
    }
    /* A directory changing parents rewrites its "..": write permission on
     * it, as Linux asks. */
    if (x->cross && sdirp &&
        (r = meta_perm_check(c, &x->src, META_MAY_WRITE)) < 0)
        return r;
    if (x->cross && x->exchange && ddirp &&
        (r = meta_perm_check(c, &x->dst, META_MAY_WRITE)) < 0)
        return r;
    if (x->cross && sdirp && !ddirp && x->ddir->nlink >= META_LINK_MAX)
        return -EMLINK;
    return 0;
}

static int rename_exchange(struct meta_db *db, struct rename_ctx *x,
                           int64_t now)
{
    int r = meta_dirent_set_ino(db, x->sid, x->dst.ino);
    if (r == 0)
        r = meta_dirent_set_ino(db, x->did, x->src.ino);
    if (r < 0)
        return r;
    if (x->cross) {
        if (S_ISDIR(x->src.mode)) {
            x->sdir.nlink--;
            x->ddir->nlink++;
        }
        if (S_ISDIR(x->dst.mode)) {
            x->ddir->nlink--;
            x->sdir.nlink++;
        }
    }
    x->dst.ctime = now;
    return meta_inode_update(db, &x->dst);
}

static int rename_replace(struct meta_db *db, struct rename_ctx *x, int64_t now)
{
    int r;
    if (x->have_dst) {
        if ((r = meta_dirent_delete(db, x->did)) < 0)
            return r;
        if (S_ISDIR(x->dst.mode)) {
            if ((r = meta_inode_delete(db, x->dst.ino)) < 0)
                return r;
            x->ddir->nlink--;
        } else if ((r = drop_link(db, &x->dst, now)) < 0) {
            return r;
        }
    }
    if ((r = meta_dirent_move(db, x->sid, x->ddir->ino, &x->newname)) < 0)
        return r;
    if (x->cross && S_ISDIR(x->src.mode)) {
        x->sdir.nlink--;
        x->ddir->nlink++;
    }
    return 0;
}

int meta_ns_rename(struct meta_db *db, const struct meta_op *op,
                   struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct rename_ctx x;
    memset(&x, 0, sizeof(x));
    int r = proto_rename_req_decode(p, n, &x.q);
    if (r < 0)
        return r;
    if ((x.q.flags & PROTO_RENAME_NOREPLACE) &&
        (x.q.flags & PROTO_RENAME_EXCHANGE))
        return -EINVAL;
    x.exchange = x.q.flags & PROTO_RENAME_EXCHANGE;
    x.name = nm(x.q.name);
    x.newname = nm(x.q.newname);
    x.cross = x.q.parent != x.q.newparent;
    if ((r = meta_perm_dir(db, &x.q.cred, x.q.parent, &x.sdir)) < 0)
        return r;
    x.ddir = &x.sdir;
    if (x.cross) {
        x.ddir = &x.ddir_copy;
        if ((r = meta_perm_dir(db, &x.q.cred, x.q.newparent, x.ddir)) < 0)
            return r;
    }
    if ((r = meta_name_check(&x.name)) < 0 ||
        (r = meta_name_check(&x.newname)) < 0)
        return r;
    if (name_is_special(&x.name) || name_is_special(&x.newname))
        return -EBUSY;
    uint64_t sino, dino = 0;
    if ((r = meta_dirent_find(db, x.q.parent, &x.name, &sino, &x.sid)) < 0)
        return r;
    if ((r = meta_inode_get(db, sino, &x.src)) < 0)
        return r;
    r = meta_dirent_find(db, x.q.newparent, &x.newname, &dino, &x.did);
    if (r < 0 && r != -ENOENT)
        return r;
    x.have_dst = r == 0;
    /* rename(2): two names of the same file: do nothing, successfully. */
    if (x.have_dst && dino == sino)
        return reply_dirs(reply, &x.sdir, x.ddir);
    if (x.exchange && !x.have_dst)
        return -ENOENT;
    if ((x.q.flags & PROTO_RENAME_NOREPLACE) && x.have_dst)
        return -EEXIST;
    if (x.have_dst && (r = meta_inode_get(db, dino, &x.dst)) < 0)
        return r;
    if ((r = rename_check(db, &x)) < 0)
        return r;
    r = x.exchange ? rename_exchange(db, &x, now) : rename_replace(db, &x, now);
    if (r < 0)
        return r;
    x.src.ctime = now;
    if ((r = meta_inode_update(db, &x.src)) < 0)
        return r;
    if ((r = dir_touch(db, &x.sdir, now)) < 0)
        return r;
    if (x.cross && (r = dir_touch(db, x.ddir, now)) < 0)
        return r;
    return reply_dirs(reply, &x.sdir, x.ddir);
}

/* ---- SETATTR ----------------------------------------------------------- */

/* The set-user-ID and set-group-ID bits of @mode that a write, truncate or
 * chown removes: S_ISUID, and S_ISGID when group-executable (without it,
 * S_ISGID marks mandatory locking and stays), as Linux's
 * should_remove_suid(). */
static uint32_t priv_bits(uint32_t mode)
{
    uint32_t k = mode & S_ISUID;
    if ((mode & S_ISGID) && (mode & S_IXGRP))
        k |= S_ISGID;
    return k;
}

/* Permission for each kind of change, as Linux's setattr_prepare().
 * @open_write: the caller's session holds the file open and says it has
 * it open for writing (PROTO_SETATTR_FILE): ftruncate(2) checks no mode
 * bits, open(2) did. */
static int setattr_check(const struct proto_setattr_req *q,
                         const struct proto_attr *a, bool open_write)
{
    const struct proto_cred *c = &q->cred;
    bool root = c->uid == 0, owner = c->uid == a->uid;
    uint32_t v = q->valid;
    int r;
    if (v & PROTO_SETATTR_SIZE) {
        if (S_ISDIR(a->mode))
            return -EISDIR;
        if (!S_ISREG(a->mode))
            return -EINVAL;
        if (q->size > INT64_MAX)
            return -EFBIG;
        if (!open_write && (r = meta_perm_check(c, a, META_MAY_WRITE)) < 0)
            return r;
    }
    if ((v & PROTO_SETATTR_UID) && !root && !(owner && q->uid == a->uid))
        return -EPERM;
    if ((v & PROTO_SETATTR_GID) && !root &&
        !(owner && (q->gid == a->gid || meta_perm_in_group(c, q->gid))))
        return -EPERM;
    if ((v & PROTO_SETATTR_MODE) && !root && !owner)
        return -EPERM;
    bool explicit_time =
        ((v & PROTO_SETATTR_ATIME) && !(v & PROTO_SETATTR_ATIME_NOW)) ||
        ((v & PROTO_SETATTR_MTIME) && !(v & PROTO_SETATTR_MTIME_NOW)) ||
        (v & PROTO_SETATTR_CTIME);
    if (explicit_time && !root && !owner)
        return -EPERM;
    if ((v & (PROTO_SETATTR_ATIME_NOW | PROTO_SETATTR_MTIME_NOW)) && !root &&
        !owner && (r = meta_perm_check(c, a, META_MAY_WRITE)) < 0)
        return r;
    return 0;
}

int meta_ns_setattr(struct meta_db *db, const struct meta_op *op,
                    struct proto_wbuf *reply)
{
    int64_t now = op->now;
    uint64_t session = op->session_id;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_setattr_req q;
    struct proto_attr a;
    int r = proto_setattr_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    bool open_write = false;
    if ((q.valid & PROTO_SETATTR_FILE) && session) {
        if ((r = meta_hold_has(db, session, a.ino)) < 0)
            return r;
        open_write = r == 1;
    }
    if ((r = setattr_check(&q, &a, open_write)) < 0)
        return r;
    /* docs/vmdisk.md: a snapshot's size is part of its data. */
    if ((q.valid & PROTO_SETATTR_SIZE) &&
        (r = meta_inode_writable(db, a.ino)) < 0)
        return r;
    uint32_t v = q.valid & ~(uint32_t)PROTO_SETATTR_FILE;
    bool root = q.cred.uid == 0;
    /* A write or truncate by anyone but root drops the privileges of a
     * regular file (Linux's file_remove_privs(), on the caller's behalf:
     * the mount handles killpriv). */
    uint32_t kill = 0;
    if ((v & (PROTO_SETATTR_KILL_PRIV | PROTO_SETATTR_SIZE)) && !root &&
        S_ISREG(a.mode))
        kill = priv_bits(a.mode);
    v &= ~(uint32_t)PROTO_SETATTR_KILL_PRIV;
    if (v == 0 && kill == 0)
        return meta_reply_attr(reply, &a);
    a.mode &= ~kill;
    if (v & PROTO_SETATTR_UID)
        a.uid = q.uid;
    if (v & PROTO_SETATTR_GID)
        a.gid = q.gid;
    /* chown(2) drops the privileges of anything but a directory, whoever
     * the caller (Linux's notify_change() with ATTR_KILL_SUID|SGID). */
    if ((v & (PROTO_SETATTR_UID | PROTO_SETATTR_GID)) && !S_ISDIR(a.mode))
        a.mode &= ~priv_bits(a.mode);
    if (v & PROTO_SETATTR_MODE) {
        uint32_t mode = q.mode & CHMOD_BITS;
        /* chmod(2): outside the file's group, S_ISGID is dropped. */
        if (!root && !meta_perm_in_group(&q.cred, a.gid))
            mode &= ~(uint32_t)S_ISGID;
        a.mode = (a.mode & S_IFMT) | mode;
    }
    if (v & PROTO_SETATTR_SIZE) {
        if (q.size < a.size) {
            uint64_t keep = (q.size + PROTO_CHUNK_SIZE - 1) / PROTO_CHUNK_SIZE;
            if ((r = meta_chunk_drop_from(db, a.ino, keep)) < 0)
                return r;
        }
        a.size = q.size;
        a.mtime = now;
    }
    if (v & PROTO_SETATTR_ATIME_NOW)
        a.atime = now;
    else if (v & PROTO_SETATTR_ATIME)
        a.atime = q.atime;
    if (v & PROTO_SETATTR_MTIME_NOW)
        a.mtime = now;
    else if (v & PROTO_SETATTR_MTIME)
        a.mtime = q.mtime;
    a.ctime = (v & PROTO_SETATTR_CTIME) ? q.ctime : now;
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    return meta_reply_attr(reply, &a);
}

/* ---- Extended attributes ----------------------------------------------- */

static bool has_prefix(const struct meta_name *n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n->len > k && memcmp(n->p, prefix, k) == 0;
}

int meta_xattr_perm(const struct proto_cred *c, const struct proto_attr *a,
                    const struct meta_name *name, bool write)
{
    if (name->len == 0 || name->len > PROTO_NAME_MAX ||
        memchr(name->p, 0, name->len))
        return -ERANGE;
    bool root = c->uid == 0;
    if (has_prefix(name, "trusted.")) {
        /* Linux's xattr_permission(): privileged only; hidden on read. */
        if (!root)
            return write ? -EPERM : -ENODATA;
        return 0;
    }
    if (has_prefix(name, "security.")) {
        /* Without a security module only root labels files. */
        return write && !root ? -EPERM : 0;
    }
    if (has_prefix(name, "system.")) {
        /* No ACL semantics here: the owner may store them. */
        return write && !meta_perm_owner(c, a) ? -EPERM : 0;
    }
    if (!has_prefix(name, "user."))
        return -EOPNOTSUPP;
    if (!S_ISREG(a->mode) && !S_ISDIR(a->mode))
        return write ? -EPERM : -ENODATA;
    if (write && S_ISDIR(a->mode) && (a->mode & S_ISVTX) &&
        !meta_perm_owner(c, a))
        return -EPERM;
    return meta_perm_check(c, a, write ? META_MAY_WRITE : META_MAY_READ);
}

/* 1 when @ino has xattr @name, 0 when not, or -errno. */
static int xattr_exists(struct meta_db *db, uint64_t ino,
                        const struct meta_name *name)
{
    sqlite3_stmt *s = meta_st(db, META_ST_XATTR_GET);
    sqlite3_bind_int64(s, 1, (int64_t)ino);
    meta_bind_blob(s, 2, name->p, name->len);
    return meta_st_row(db, s, "get xattr");
}

int meta_ns_setxattr(struct meta_db *db, const struct meta_op *op,
                     struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_setxattr_req q;
    struct proto_attr a;
    int r = proto_setxattr_req_decode(p, n, &q);
    if (r < 0)
        return r;
    if ((q.flags & PROTO_XATTR_CREATE) && (q.flags & PROTO_XATTR_REPLACE))
        return -EINVAL;
    if (q.value.len > PROTO_MAX_XATTR)
        return -E2BIG;
    struct meta_name name = nm(q.name);
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if ((r = meta_xattr_perm(&q.cred, &a, &name, true)) < 0)
        return r;
    if ((r = meta_inode_writable(db, a.ino)) < 0)
        return r;
    if ((r = xattr_exists(db, a.ino, &name)) < 0)
        return r;
    if (r && (q.flags & PROTO_XATTR_CREATE))
        return -EEXIST;
    if (!r && (q.flags & PROTO_XATTR_REPLACE))
        return -ENODATA;
    sqlite3_stmt *s = meta_st(db, META_ST_XATTR_PUT);
    sqlite3_bind_int64(s, 1, (int64_t)a.ino);
    meta_bind_blob(s, 2, name.p, name.len);
    meta_bind_blob(s, 3, q.value.p, q.value.len);
    if ((r = meta_st_exec(db, s, "set xattr")) < 0)
        return r;
    a.ctime = now;
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    return reply_empty(reply);
}

int meta_ns_removexattr(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply)
{
    int64_t now = op->now;
    const uint8_t *p = op->payload;
    size_t n = op->len;
    struct proto_xattr_name_req q;
    struct proto_attr a;
    int r = proto_xattr_name_req_decode(p, n, &q);
    if (r < 0)
        return r;
    struct meta_name name = nm(q.name);
    if ((r = meta_inode_get(db, q.ino, &a)) < 0)
        return r;
    if ((r = meta_xattr_perm(&q.cred, &a, &name, true)) < 0)
        return r;
    if ((r = meta_inode_writable(db, a.ino)) < 0)
        return r;
    if ((r = xattr_exists(db, a.ino, &name)) < 0)
        return r;
    if (r == 0)
        return -ENODATA;
    sqlite3_stmt *s = meta_st(db, META_ST_XATTR_DELETE);
    sqlite3_bind_int64(s, 1, (int64_t)a.ino);
    meta_bind_blob(s, 2, name.p, name.len);
    if ((r = meta_st_exec(db, s, "remove xattr")) < 0)
        return r;
    a.ctime = now;
    if ((r = meta_inode_update(db, &a)) < 0)
        return r;
    return reply_empty(reply);
}
