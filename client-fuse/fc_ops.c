/* fc_ops.c: the libfuse low-level callbacks.
 *
 * Each namespace operation becomes one metad request carrying the caller's
 * credentials (fuse_req_ctx() and fuse_req_getgroups()), and metad
 * checks permissions itself.  The mount also runs with default_permissions
 * (fc_main.c), so the kernel checks mode bits against the attributes it
 * caches before a request gets here.
 * File data goes through the client library (client/cl.h: cl_file_*());
 * this file only adapts arguments and replies.  Inode numbers are metad's;
 * forget has nothing to release.
 *
 * Kernel caching (docs/caching.md).  With callbacks the kernel keeps
 * entries and attributes for CB_TIMEOUT (metad breaks them when another
 * client changes them, fc_notify.c) and the pages of a file across opens
 * while its version is unchanged (keep_cache).  A reply that raced with a
 * break (the break counter moved during the call) is cached for no time.
 * Without callbacks (consistency=validate) entries and attributes live
 * ATTR_TIMEOUT, and an open keeps the pages only when the file's version
 * is the one they were read at (close-to-open).  The kernel's own
 * writeback cache is not used: delayed writes live in the client library
 * (cl_cache.c), which also reports our own size before metad knows it.
 * O_TRUNC reaches us as a SETATTR of size 0 (atomic_o_trunc is left off).
 * Truncation, fallocate and the open handle table are the places where
 * namespace and data meet.  lseek's SEEK_DATA and SEEK_HOLE come from the
 * client library's allocation walk (cl_file_alloc()), per chunk slot.
 */
#define FUSE_USE_VERSION 35

#include "fc_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"

#define ATTR_TIMEOUT 1.0
#define CB_TIMEOUT 30.0 /* at most half of metad's promise (60 s) */

/* The break counter when this thread's current metad call started. */
static __thread uint64_t call_epoch;
#define MAX_WRITE (1u << 20)

static struct fc_fs *fs_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* fc_groups_read_fn over libfuse: a read of /proc. */
static int groups_read(void *arg, uint32_t *out)
{
    gid_t groups[PROTO_MAX_GROUPS];
    int n = fuse_req_getgroups(arg, PROTO_MAX_GROUPS, groups);

    if (n < 0)
        return n;
    for (int i = 0; i < n && i < PROTO_MAX_GROUPS; i++)
        out[i] = groups[i];
    return n;
}

static void cred_fill(fuse_req_t req, struct proto_cred *c)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    memset(c, 0, sizeof(*c));
    c->uid = ctx->uid;
    c->gid = ctx->gid;
    /* Only the first PROTO_MAX_GROUPS are sent; none if unreadable. */
    int n = fc_groups_get(fs_of(req)->groups, (uint32_t)ctx->pid, ctx->uid,
                          ctx->gid, cl_now_ms(), groups_read, req, c->groups);
    c->ngroups = n < 0 ? 0 : (uint32_t)n;
}

/* The caller's credentials for a create or unlink in directory @dir,
 * creating a file of @mode (0 for an unlink).  The supplementary groups
 * cost a read of /proc per call (fuse_req_getgroups()): they are read
 * only when they can change metad's answer, i.e. when the caller is
 * neither root, nor @dir's owner, nor in its group by its own gid, and
 * the group and other permission bits of @dir differ, or when the
 * set-group-ID rule of a new file asks (meta_ns.c, new_attr()).  A read
 * is kept for a moment (fc_groups.c). */
static void cred_fill_in(fuse_req_t req, const struct proto_attr *dir,
                         uint32_t mode, struct proto_cred *c)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    bool groups = ctx->uid != 0 && ctx->uid != dir->uid &&
                  ctx->gid != dir->gid &&
                  ((dir->mode >> 3) & 07) != (dir->mode & 07);
    if (groups || ((dir->mode & S_ISGID) && (mode & S_ISGID))) {
        cred_fill(req, c);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->uid = ctx->uid;
    c->gid = ctx->gid;
}

static struct proto_str str_of(const char *s)
{
    struct proto_str r = {s, (uint32_t)strlen(s)};
    return r;
}

static bool name_bad(fuse_req_t req, const char *name)
{
    if (strlen(name) > PROTO_NAME_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return true;
    }
    return false;
}

/* Our own writes may have grown an open file past what metad reports
 * while its CHUNK_WRITE_END is deferred (cl_file.c): show the larger
 * size, and likewise the mtime of those writes and the blocks of those
 * not written back.  Attributes from metad
 * (@fresh) also raise the size the inode knows; attributes kept on it
 * (cl_inode_attr_get()) do not, since they may be older than a truncate
 * of ours. */
static void merge_writes(struct fc_fs *fs, struct proto_attr *a, bool fresh)
{
    struct cl_inode *n = cl_inode_find(fs->cl, a->ino);
    if (!n)
        return;
    uint64_t size = fresh ? cl_inode_grow_seen(n, a->size) : cl_inode_size(n);
    if (size > a->size)
        a->size = size;
    /* Data not written back yet takes space too (as a local file
     * system's delayed allocation does): tar --sparse takes a file of
     * 0 blocks for holes only. */
    uint64_t dirty = cl_inode_dirty_blocks(n);
    if (dirty > a->blocks)
        a->blocks = dirty;
    int64_t t = cl_inode_wmtime(n);
    if (t > a->mtime)
        a->mtime = t;
    if (t > a->ctime)
        a->ctime = t;
    cl_inode_put(fs->cl, n);
}

static void attr_merge_open(struct fc_fs *fs, struct proto_attr *a)
{
    merge_writes(fs, a, true);
}

static void attr_merge_kept(struct fc_fs *fs, struct proto_attr *a)
{
    merge_writes(fs, a, false);
}

static void call_start(struct fc_fs *fs)
{
    call_epoch = cl_cb_epoch(fs->cl);
}


/* A new session lost every promise the tables answer under, with no
 * break for them: they start over (fc_dirattr.c, fc_dirlist.c,
 * fc_nocap.c).  Called before answering from any of them. */
static void tables_check(struct fc_fs *fs)
{
    uint64_t now = cl_cb_resets(fs->cl);
    uint64_t seen = __atomic_load_n(&fs->resets, __ATOMIC_ACQUIRE);

    if (now == seen ||
        !__atomic_compare_exchange_n(&fs->resets, &seen, now, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    fc_inotab_clear(fs->nocap);
    fc_inotab_clear(fs->dirattr);
    fc_dirlist_clear(fs->dirlist);
}

/* How long the kernel may keep what the call just made returned. */
static double cache_timeout(struct fc_fs *fs)
{
    if (!cl_cb_enabled(fs->cl))
        return ATTR_TIMEOUT;
    if (cl_cb_epoch(fs->cl) != call_epoch)
        return 0.0;
    /* Well inside the promise, which the reply just renewed. */
    double half = cl_cb_promise_ms(fs->cl) / 2000.0;
    return half < CB_TIMEOUT ? half : CB_TIMEOUT;
}

static void entry_fill(struct fc_fs *fs, const struct proto_attr *a,
                       struct fuse_entry_param *e)
{
    memset(e, 0, sizeof(*e));
    e->ino = a->ino;
    e->generation = 1;
    fc_attr_to_stat(a, &e->attr);
    e->attr_timeout = cache_timeout(fs);
    e->entry_timeout = e->attr_timeout;
}

/* Send @w (freed here), a request on inode @on alone (cl_meta_call_on()),
 * or 0 for one that waits for every queued change (a LOOKUP: the inode it
 * finds, whose attributes it returns, is not known before), and decode an
 * attr reply into @out. */
static int call_attr(struct fc_fs *fs, uint64_t on, uint16_t opcode,
                     struct proto_wbuf *w, struct proto_attr *out)
{
    struct rpc_reply rep;
    struct proto_attr_rep a;
    call_start(fs);
    int rc = on ? cl_meta_call_on(fs->cl, on, opcode, w, &rep, &a)
                : cl_meta_call(fs->cl, opcode, w, &rep, &a);
    proto_wbuf_free(w);
    if (rc < 0)
        return rc;
    *out = a.attr;
    rpc_reply_free(&rep);
    return 0;
}

/* Send @w (freed here) for a request with an empty reply. */
static int call_empty(struct fc_fs *fs, uint16_t opcode, struct proto_wbuf *w)
{
    struct rpc_reply rep;
    struct proto_empty e;
    int rc = cl_meta_call(fs->cl, opcode, w, &rep, &e);
    proto_wbuf_free(w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}

/* Until when what the call just made returned may be kept (0: not at
 * all). */
static uint64_t keep_until(struct fc_fs *fs)
{
    double t = cache_timeout(fs);

    return t > 0 ? cl_now_ms() + (uint64_t)(t * 1000) : 0;
}

/* What a reply about inode @ino may be kept against, taken before the
 * request: the attribute generation and, when the file is open here,
 * its forget count (cl.h, cl_inode_attr_note()). */
struct attr_ticket {
    uint64_t ino, gen, forgets;
    bool open; /* the file was open here before the request */
};

static void attr_ticket_take(struct fc_fs *fs, uint64_t ino,
                             struct attr_ticket *t)
{
    struct cl_inode *n = cl_inode_find(fs->cl, ino);
    t->ino = ino;
    t->gen = cl_attr_gen(fs->cl);
    t->open = n != NULL;
    t->forgets = n ? cl_inode_attr_forgets(n) : 0;
    cl_inode_put(fs->cl, n);
}

/* Keep @a, a reply about regular file @t->ino that granted or renewed a
 * promise (a writer's: @writer), with the file's open inode, so that a
 * GETATTR while it is open is answered here (cl_inode_attr_note()); the
 * epoch is the call's. */
static void file_attr_note(struct fc_fs *fs, const struct proto_attr *a,
                           bool writer, const struct attr_ticket *t)
{
    if (!t->open || a->ino != t->ino || !S_ISREG(a->mode) ||
        !cl_cb_enabled(fs->cl))
        return;
    struct cl_inode *n = cl_inode_find(fs->cl, a->ino);
    if (n)
        cl_inode_attr_note(fs->cl, n, a, writer, call_epoch, t->gen,
                           t->forgets, keep_until(fs));
    cl_inode_put(fs->cl, n);
}

static void file_attr_forget(struct fc_fs *fs, uint64_t ino)
{
    struct cl_inode *n = cl_inode_find(fs->cl, ino);
    if (n)
        cl_inode_attr_forget(n);
    cl_inode_put(fs->cl, n);
}

/* Name @name of @parent goes, or is renamed or replaced: the attributes
 * kept of what it names (its nlink and ctime change) go too; when the
 * mount cannot tell which inode that is, every one kept. */
static void file_attr_forget_name(struct fc_fs *fs, uint64_t parent,
                                  const char *name)
{
    uint64_t now = cl_now_ms(), ino;
    if (fc_dirlist_ino(fs->dirlist, parent, name, now, &ino))
        file_attr_forget(fs, ino);
    else if (!fc_dirlist_absent(fs->dirlist, parent, name, now, NULL))
        cl_attr_forget_all(fs->cl);
}

/* Keep the directory attributes @dirs that a change's reply carried
 * (fc_dirattr.c) until @until; @gen is the forget count from before the
 * request. */
static void dirs_note(struct fc_fs *fs, uint64_t gen, uint64_t until,
                      const struct proto_attr *dirs, uint32_t n)
{
    if (!until)
        return;
    for (uint32_t i = 0; i < n; i++)
        fc_dirattr_note(fs->dirattr, &dirs[i], gen, until);
}

/* Send @w (freed here), a MKNOD, MKDIR, SYMLINK or LINK of @name in
 * @parent, and decode the new entry into @out; the directory's
 * attributes, when metad sent them (protocol version 2), are kept, and
 * @parent, when known whole, holds @name now (fc_dirlist.c; under
 * callbacks a new directory is known whole, empty). */
static int call_entry(struct fc_fs *fs, uint16_t opcode, struct proto_wbuf *w,
                      uint64_t parent, const char *name,
                      struct proto_attr *out)
{
    struct rpc_reply rep;
    struct proto_entry_rep e;
    uint64_t gen = fc_inotab_gen(fs->dirattr);
    uint64_t lgen = fc_dirlist_gen(fs->dirlist);
    call_start(fs);
    int rc = cl_meta_call(fs->cl, opcode, w, &rep, &e);
    proto_wbuf_free(w);
    if (rc < 0)
        return rc;
    *out = e.attr;
    uint64_t until = keep_until(fs);
    if (e.has_dir)
        dirs_note(fs, gen, until, &e.dir, 1);
    /* The reply renewed the promise on @parent only when it carried its
     * attributes. */
    uint64_t now = cl_now_ms();
    fc_dirlist_add(fs->dirlist, parent, name, e.attr.ino, e.attr.mode, now,
                   e.has_dir ? until : 0);
    if (opcode == PROTO_MSG_MKDIR_REQ && until && cl_cb_enabled(fs->cl)) {
        fc_dirlist_note_empty(fs->dirlist, e.attr.ino, parent, lgen, now,
                              until);
        /* The new directory's own attributes, which the reply granted a
         * promise on: its first create can be answered here. */
        if (e.has_dir)
            dirs_note(fs, gen, until, &e.attr, 1);
    }
    rpc_reply_free(&rep);
    return 0;
}

/* Name @name of @parent may go, or name another inode, in an RMDIR or
 * RENAME: the directory attributes kept of the inode it names go (a
 * directory removed, or moved: its ctime and ".."); when the mount cannot
 * tell which inode that is, every one kept.  Returns the inode, 0 when
 * none or not known. */
static uint64_t dirattr_forget_name(struct fc_fs *fs, uint64_t parent,
                                    const char *name)
{
    uint64_t now = cl_now_ms(), ino = 0;
    if (fc_dirlist_ino(fs->dirlist, parent, name, now, &ino))
        fc_inotab_forget(fs->dirattr, ino);
    else if (!fc_dirlist_absent(fs->dirlist, parent, name, now, NULL))
        fc_inotab_clear(fs->dirattr);
    return ino;
}

/* Send @w (freed here), an UNLINK or RMDIR of @name in @parent, or a
 * RENAME of @name to @newparent/@newname (@exchange: the two swap), and
 * keep the directories' attributes its reply carries.  An RMDIR or RENAME
 * may remove or move a directory we hold attributes of: it is forgotten
 * first (dirattr_forget_name()).
 * An unlink or rmdir takes @name out of @parent's names, a rename moves
 * it (fc_dirlist.c); a failed or swapping rename forgets the names of its
 * two directories. */
static int call_remove(struct fc_fs *fs, uint16_t opcode, struct proto_wbuf *w,
                       uint64_t parent, const char *name, uint64_t newparent,
                       const char *newname, bool exchange)
{
    struct rpc_reply rep;
    struct proto_dirs_rep d;
    bool rename = opcode == PROTO_MSG_RENAME_REQ;
    uint64_t gone[2] = {0, 0};
    if (opcode != PROTO_MSG_UNLINK_REQ) {
        gone[0] = dirattr_forget_name(fs, parent, name);
        if (rename)
            gone[1] = dirattr_forget_name(fs, newparent, newname);
    }
    uint64_t gen = fc_inotab_gen(fs->dirattr);
    call_start(fs);
    int rc = cl_meta_call(fs->cl, opcode, w, &rep, &d);
    proto_wbuf_free(w);
    if (rc < 0 || (rename && exchange)) {
        if (rename) {
            fc_dirlist_forget_tree(fs->dirlist, parent);
            fc_dirlist_forget_tree(fs->dirlist, newparent);
        }
        if (rc < 0)
            return rc;
    }
    uint64_t until = keep_until(fs), now = cl_now_ms();
    dirs_note(fs, gen, until, d.dir, d.ndirs);
    /* A GETATTR of them answered before this change may have been kept
     * since the forget above. */
    for (size_t i = 0; i < 2; i++)
        if (gone[i])
            fc_inotab_forget(fs->dirattr, gone[i]);
    if (!rename)
        fc_dirlist_remove(fs->dirlist, parent, name, now, d.ndirs ? until : 0);
    else if (!exchange)
        fc_dirlist_rename(fs->dirlist, parent, name, newparent, newname, now,
                          d.ndirs ? until : 0);
    rpc_reply_free(&rep);
    return 0;
}

static void reply_entry_or_err(fuse_req_t req, int rc,
                               const struct proto_attr *a)
{
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct fuse_entry_param e;
    entry_fill(fs_of(req), a, &e);
    fuse_reply_entry(req, &e);
}

/* ---- Session setup ----------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    /* libfuse 3.14 sizes its buffers for 256 pages and derives the
     * max_pages it offers the kernel from max_write, so 1 MiB writes
     * arrive whole when the kernel allows 256 pages. */
    conn->max_write = MAX_WRITE;
    if (conn->max_readahead > MAX_WRITE)
        conn->max_readahead = MAX_WRITE;
    if (conn->capable & FUSE_CAP_ASYNC_READ)
        conn->want |= FUSE_CAP_ASYNC_READ;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
        conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    /* Delayed writes are the client library's (cl_cache.c): dirty pages
     * in the kernel would make fsync and close errors, size and mtime
     * depend on the kernel's writeback timing. */
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* Without callbacks, a changed mtime or size seen in the attributes
     * drops the pages (close-to-open plus attribute revalidation); with
     * them, breaks do it. */
    struct fc_fs *fs = userdata;
    if (fs->consistency_validate && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA))
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    else
        conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    /* O_TRUNC arrives as SETATTR(size), which runs the truncate path. */
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    /* The kernel clears setuid and setgid before a write or truncate by
     * another user, with a chmod in that user's name (op_setattr). */
    conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
    conn->want &= ~FUSE_CAP_POSIX_ACL;
}

/* ---- Namespace --------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (name_bad(req, name))
        return;
    struct fc_fs *fs = fs_of(req);
    uint64_t now = cl_now_ms(), until;
    tables_check(fs);
    if (cl_cb_enabled(fs->cl) &&
        fc_dirlist_absent(fs->dirlist, parent, name, now, &until)) {
        /* A directory known whole holds no such name (fc_dirlist.c). */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = (double)(until - now) / 1000.0;
        fuse_reply_entry(req, &e);
        return;
    }
    struct proto_lookup_req m = {.parent = parent, .name = str_of(name)};
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &m);
    struct proto_attr a;
    int rc = call_attr(fs_of(req), 0, PROTO_MSG_LOOKUP_REQ, &w, &a);
    if (rc == 0)
        attr_merge_open(fs_of(req), &a);
    if (rc == -ENOENT && cl_cb_enabled(fs_of(req)->cl)) {
        /* The lookup granted a promise on @parent, so a name added there
         * by another client breaks it (an entry break of that name): the
         * kernel may keep the absence as a negative entry meanwhile. */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof(e));
        e.entry_timeout = cache_timeout(fs_of(req));
        if (e.entry_timeout > 0) {
            fuse_reply_entry(req, &e);
            return;
        }
    }
    reply_entry_or_err(req, rc, &a);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    (void)ino;
    (void)nlookup;
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    (void)count;
    (void)forgets;
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    (void)fi;
    struct proto_attr a;
    uint64_t now = cl_now_ms(), until;
    tables_check(fs_of(req));
    if (fc_dirattr_get(fs_of(req)->dirattr, ino, now, &a, &until)) {
        /* A directory our own change left as its reply described. */
        struct stat st;
        fc_attr_to_stat(&a, &st);
        fuse_reply_attr(req, &st, (double)(until - now) / 1000.0);
        return;
    }
    /* A file open here whose attributes a reply left (cl.h,
     * cl_inode_attr_note()), with our writes since merged in. */
    struct cl_inode *n = cl_inode_find(fs_of(req)->cl, ino);
    bool kept =
        n && cl_inode_attr_get(fs_of(req)->cl, n, now, false, &a, &until);
    cl_inode_put(fs_of(req)->cl, n);
    if (kept) {
        attr_merge_kept(fs_of(req), &a);
        struct stat st;
        fc_attr_to_stat(&a, &st);
        fuse_reply_attr(req, &st, (double)(until - now) / 1000.0);
        return;
    }
    struct attr_ticket t;
    attr_ticket_take(fs_of(req), ino, &t);
    uint64_t dgen = fc_inotab_gen(fs_of(req)->dirattr);
    call_start(fs_of(req));
    int rc = cl_meta_getattr(fs_of(req)->cl, ino, &a);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    log_debug("fc.ops", "getattr from metad: ino=%llu mode=0%o",
              (unsigned long long)ino, a.mode);
    /* The reply renewed the promise: a directory's attributes are kept
     * like those of our own changes' replies, a file's while open. */
    if (cl_cb_enabled(fs_of(req)->cl))
        fc_dirattr_note(fs_of(req)->dirattr, &a, dgen, keep_until(fs_of(req)));
    file_attr_note(fs_of(req), &a, false, &t);
    attr_merge_open(fs_of(req), &a);
    struct stat st;
    fc_attr_to_stat(&a, &st);
    fuse_reply_attr(req, &st, cache_timeout(fs_of(req)));
}

static int do_setattr(fuse_req_t req, fuse_ino_t ino, const struct stat *st,
                      uint32_t valid, struct proto_attr *out)
{
    struct proto_setattr_req m = {
        .ino = ino,
        .valid = valid,
        .mode = st->st_mode & 07777,
        .uid = st->st_uid,
        .gid = st->st_gid,
        .size = (uint64_t)st->st_size,
        .atime = fc_ns_from_ts(&st->st_atim),
        .mtime = fc_ns_from_ts(&st->st_mtim),
        .ctime = fc_ns_from_ts(&st->st_ctim),
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_setattr_req_encode(&w, &m);
    return call_attr(fs_of(req), m.ino, PROTO_MSG_SETATTR_REQ, &w, out);
}

static int check_access(fuse_req_t req, fuse_ino_t ino, uint32_t mask)
{
    struct proto_access_req m = {.ino = ino, .mask = mask};
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &m);
    return call_empty(fs_of(req), PROTO_MSG_ACCESS_REQ, &w);
}

/* Change the size of @ino (truncate, ftruncate, fallocate): zero the tail
 * of the new last chunk, SETATTR, then forget what lies past the end.
 * @fi is set when the caller holds an open file (then its open mode was
 * checked at open time, as for ftruncate(2)). */
static int set_size(fuse_req_t req, fuse_ino_t ino, const struct stat *st,
                    uint32_t valid, struct fuse_file_info *fi,
                    struct proto_attr *out)
{
    struct fc_fs *fs = fs_of(req);
    uint64_t size = (uint64_t)st->st_size;
    struct proto_attr cur;
    int rc;

    file_attr_forget(fs, ino);

    if (st->st_size < 0)
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    rc = cl_meta_getattr(fs->cl, ino, &cur);
    if (rc < 0)
        return rc;
    if (S_ISDIR(cur.mode))
        return -EISDIR;
    if (!S_ISREG(cur.mode))
        return -EINVAL;
    if (!fi) {
        rc = check_access(req, ino, W_OK);
        if (rc < 0)
            return rc;
    } else if ((((struct fc_handle *)(uintptr_t)fi->fh)->flags & O_ACCMODE) !=
               O_RDONLY) {
        valid |= PROTO_SETATTR_FILE; /* ftruncate(2): open(2) checked */
    }
    /* The kernel's clearing of setuid and setgid before another user's
     * truncate comes as a chmod in that user's name: metad clears them
     * with the size itself (see op_setattr).  The kernel drops S_ISGID
     * only with group execute, as metad does. */
    uint32_t kill = S_ISUID | ((cur.mode & S_IXGRP) ? S_ISGID : 0);
    if ((valid & PROTO_SETATTR_MODE) && fuse_req_ctx(req)->uid != cur.uid &&
        (st->st_mode & 07777) == (cur.mode & 07777 & ~kill))
        valid = (valid & ~PROTO_SETATTR_MODE) | PROTO_SETATTR_KILL_PRIV;

    struct cl_inode *n = cl_inode_find(fs->cl, ino);
    uint64_t old = cur.size;
    if (n && cl_inode_size(n) > old)
        old = cl_inode_size(n);
    rc = cl_file_truncate_prepare(fs->cl, ino, n, old, size);
    if (rc == 0)
        rc = do_setattr(req, ino, st, valid, out);
    if (rc == 0)
        cl_file_truncate_done(fs->cl, ino, n, size);
    cl_inode_put(fs->cl, n);
    /* The write-back before the truncate may have kept the attributes
     * of its WRITE_END, the size before. */
    file_attr_forget(fs, ino);
    return rc;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    uint32_t valid = fc_setattr_valid(to_set);
    struct proto_attr a;
    int rc;

    file_attr_forget(fs_of(req), ino);
    struct attr_ticket t;
    attr_ticket_take(fs_of(req), ino, &t);
    /* An explicit mtime comes after the writes made before it: their
     * WRITE_END goes first, and their time no longer shows over it. */
    struct cl_inode *n =
        (valid & (PROTO_SETATTR_MTIME | PROTO_SETATTR_MTIME_NOW))
            ? cl_inode_find(fs_of(req)->cl, ino)
            : NULL;
    if (n)
        cl_file_mtime_prepare(fs_of(req)->cl, n);
    if (valid & PROTO_SETATTR_SIZE) {
        rc = set_size(req, ino, attr, valid, fi, &a);
    } else {
        rc = do_setattr(req, ino, attr, valid, &a);
        /* default_permissions refuses a chmod by anyone but the owner
         * before it gets here, so a refused one is the kernel clearing
         * setuid and setgid before another user's write or truncate
         * (file_remove_privs()): metad does that itself, as the kernel
         * would on a local file system (docs/protocol.md §6.7). */
        if (rc == -EPERM && valid == PROTO_SETATTR_MODE) {
            rc = do_setattr(req, ino, attr, PROTO_SETATTR_KILL_PRIV, &a);
            if (rc == 0 && (a.mode & 07777) != (attr->st_mode & 07777))
                rc = -EPERM;
        }
    }
    fc_inotab_forget(fs_of(req)->dirattr, ino);
    if (n && rc == 0)
        cl_file_mtime_done(n);
    cl_inode_put(fs_of(req)->cl, n);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (!(valid & PROTO_SETATTR_SIZE)) {
        file_attr_note(fs_of(req), &a, false, &t);
        attr_merge_open(fs_of(req), &a);
    }
    cl_cb_note(fs_of(req)->cl, ino, a.version); /* our own change */
    struct stat st;
    fc_attr_to_stat(&a, &st);
    fuse_reply_attr(req, &st, cache_timeout(fs_of(req)));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct proto_ino_req m = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &m);
    struct rpc_reply rep;
    struct proto_readlink_rep out;
    int rc =
        cl_meta_call(fs_of(req)->cl, PROTO_MSG_READLINK_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    char *target = strndup(out.target.p, out.target.len);
    rpc_reply_free(&rep);
    if (!target) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fuse_reply_readlink(req, target);
    free(target);
}

static int do_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                    mode_t mode, dev_t rdev, uint32_t flags,
                    struct proto_attr *out)
{
    struct proto_mknod_req m = {
        .parent = parent,
        .mode = mode,
        .rdev = (uint32_t)rdev,
        .umask = fuse_req_ctx(req)->umask,
        .flags = flags,
        .name = str_of(name),
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &m);
    return call_entry(fs_of(req), PROTO_MSG_MKNOD_REQ, &w, parent, name, out);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    if (name_bad(req, name))
        return;
    struct proto_attr a;
    int rc = do_mknod(req, parent, name, mode, rdev, PROTO_MKNOD_EXCL, &a);
    reply_entry_or_err(req, rc, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    if (name_bad(req, name))
        return;
    struct proto_mkdir_req m = {
        .parent = parent,
        .mode = mode,
        .umask = fuse_req_ctx(req)->umask,
        .name = str_of(name),
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_mkdir_req_encode(&w, &m);
    struct proto_attr a;
    int rc = call_entry(fs_of(req), PROTO_MSG_MKDIR_REQ, &w, parent, name, &a);
    reply_entry_or_err(req, rc, &a);
}

/* ---- Changes answered here (docs/caching.md, "Delegated directories") -- */

/* Whether @parent is delegated to the session, asking metad when it is
 * not (once per call): until when, or 0. */
static uint64_t delegated(struct fc_fs *fs, fuse_ino_t parent)
{
    if (!fs->delegate || !cl_cb_enabled(fs->cl))
        return 0;
    uint64_t until = cl_ns_dir_until(fs->cl, parent);
    if (until || cl_ns_dir_delegate(fs->cl, parent) < 0)
        return until;
    return cl_ns_dir_until(fs->cl, parent);
}

static bool cred_in_group(const struct proto_cred *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    for (uint32_t i = 0; i < c->ngroups; i++)
        if (c->groups[i] == gid)
            return true;
    return false;
}

/* The attributes metad gives a new regular file @ino of @mode, made by
 * @c at @now in directory @dir (meta_ns.c, new_attr()). */
static void local_attr(const struct proto_cred *c, const struct proto_attr *dir,
                       uint64_t ino, uint32_t mode, int64_t now,
                       struct proto_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->mode = mode;
    a->nlink = 1;
    a->uid = c->uid;
    a->gid = (dir->mode & S_ISGID) ? dir->gid : c->gid;
    if ((a->mode & S_ISGID) && (a->mode & S_IXGRP) && c->uid != 0 &&
        !cred_in_group(c, a->gid))
        a->mode &= ~S_ISGID;
    a->goal = dir->goal;
    a->atime = a->mtime = a->ctime = now;
    a->version = 1;
}

/* Our change to @dir (attributes @d, when known) at @now, answered here:
 * its times move as metad will move them. */
static void local_dir_touch(struct fc_fs *fs, uint64_t gen, uint64_t until,
                            struct proto_attr *d, int64_t now)
{
    if (!d)
        return;
    d->mtime = d->ctime = now;
    fc_dirattr_note(fs->dirattr, d, gen, until);
}

/* UNLINK of @name in @parent answered here, under the same conditions as
 * create_local() but with @name present.  -EAGAIN: not here. */
static int unlink_local(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fc_fs *fs = fs_of(req);
    uint64_t now = cl_now_ms();

    tables_check(fs);
    if (!fs->delegate || !cl_cb_enabled(fs->cl) ||
        !fc_dirlist_present(fs->dirlist, parent, name, now))
        return -EAGAIN;
    uint64_t gen = fc_inotab_gen(fs->dirattr);
    uint64_t until = delegated(fs, parent);
    if (!until || until <= now)
        return -EAGAIN;
    struct proto_lookup_req m = {
        .parent = parent, .name = str_of(name), .time = cl_now_ns()};
    struct proto_attr dir;
    uint64_t dir_until;
    bool dir_known = fc_dirattr_get(fs->dirattr, parent, now, &dir, &dir_until);
    if (dir_known)
        cred_fill_in(req, &dir, 0, &m.cred);
    else
        cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &m);
    uint64_t target = 0; /* not known: everything waits for it */
    (void)fc_dirlist_ino(fs->dirlist, parent, name, now, &target);
    file_attr_forget_name(fs, parent, name);
    int rc = cl_ns_push(fs->cl, parent, target, PROTO_MSG_UNLINK_REQ, &w);
    proto_wbuf_free(&w);
    if (rc < 0)
        return -EAGAIN;
    fc_dirlist_remove(fs->dirlist, parent, name, now, until);
    if (dir_known)
        local_dir_touch(fs, gen, until < dir_until ? dir_until : until, &dir,
                        m.time);
    return 0;
}

static void remove_entry(fuse_req_t req, uint16_t opcode, fuse_ino_t parent,
                         const char *name)
{
    if (name_bad(req, name))
        return;
    struct proto_lookup_req m = {.parent = parent, .name = str_of(name)};
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &m);
    if (opcode == PROTO_MSG_UNLINK_REQ)
        file_attr_forget_name(fs_of(req), parent, name);
    fuse_reply_err(req, -call_remove(fs_of(req), opcode, &w, parent, name, 0,
                                     NULL, false));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    if (name_bad(req, name))
        return;
    int rc = unlink_local(req, parent, name);
    if (rc != -EAGAIN) {
        fuse_reply_err(req, -rc);
        return;
    }
    remove_entry(req, PROTO_MSG_UNLINK_REQ, parent, name);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, PROTO_MSG_RMDIR_REQ, parent, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    if (name_bad(req, name))
        return;
    if (strlen(link) > PROTO_MAX_STR) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    struct proto_symlink_req m = {
        .parent = parent,
        .name = str_of(name),
        .target = str_of(link),
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_symlink_req_encode(&w, &m);
    struct proto_attr a;
    int rc =
        call_entry(fs_of(req), PROTO_MSG_SYMLINK_REQ, &w, parent, name, &a);
    reply_entry_or_err(req, rc, &a);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    if (name_bad(req, name) || name_bad(req, newname))
        return;
    uint32_t pf = 0;
    if (flags & RENAME_NOREPLACE)
        pf |= PROTO_RENAME_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        pf |= PROTO_RENAME_EXCHANGE;
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT */
        return;
    }
    struct proto_rename_req m = {
        .parent = parent,
        .name = str_of(name),
        .newparent = newparent,
        .newname = str_of(newname),
        .flags = pf,
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_rename_req_encode(&w, &m);
    /* The moved file's ctime, a replaced one's nlink. */
    file_attr_forget_name(fs_of(req), parent, name);
    file_attr_forget_name(fs_of(req), newparent, newname);
    fuse_reply_err(req, -call_remove(fs_of(req), PROTO_MSG_RENAME_REQ, &w,
                                     parent, name, newparent, newname,
                                     (flags & RENAME_EXCHANGE) != 0));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    if (name_bad(req, newname))
        return;
    struct proto_link_req m = {
        .ino = ino,
        .newparent = newparent,
        .newname = str_of(newname),
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_link_req_encode(&w, &m);
    file_attr_forget(fs_of(req), ino); /* its nlink and ctime */
    struct proto_attr a;
    int rc = call_entry(fs_of(req), PROTO_MSG_LINK_REQ, &w, newparent,
                        newname, &a);
    if (rc == 0)
        attr_merge_open(fs_of(req), &a);
    reply_entry_or_err(req, rc, &a);
}

/* ---- Files ------------------------------------------------------------- */

/* OPEN of @ino with open(2) @flags; @hold adds PROTO_OPEN_HOLD. */
static int open_check(fuse_req_t req, fuse_ino_t ino, int flags, bool hold,
                      struct proto_attr *out)
{
    struct proto_access_req m = {
        .ino = ino,
        .mask = (uint32_t)flags & (O_ACCMODE | O_APPEND | O_TRUNC),
    };
    if (hold)
        m.mask |= PROTO_OPEN_HOLD;
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &m);
    return call_attr(fs_of(req), m.ino, PROTO_MSG_OPEN_REQ, &w, out);
}

/* Fill @fi for handle @h on the file with attributes @a. */
static void handle_setup(fuse_req_t req, const struct proto_attr *a,
                         struct fuse_file_info *fi, struct fc_handle *h)
{
    h->flags = fi->flags;
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = (fi->flags & O_DIRECT) != 0;
    /* A close(2) of a read-only handle has nothing of its own to write
     * back or report (a shared writable mapping needs a writable handle),
     * so the kernel is told not to send FLUSH for it: one request fewer
     * per read-only open.  Another handle's delayed writes and their error
     * stay for that handle's close or fsync; RELEASE still runs. */
    fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
    /* Close-to-open: the kernel's pages stay only while they describe
     * the version metad reports now (a break forgets the version). */
    fi->keep_cache =
        cl_cb_open(fs_of(req)->cl, a->ino, a->version) && !fi->direct_io;
}

/* Whether the open of @n with @flags can be answered without metad, and
 * then its attributes into @a: this session holds the file already (a
 * handle, a linger: cl_inode_held()), so the OPEN's HOLD would add
 * nothing; the attributes kept under its promise are still good
 * (cl_inode_attr_get()), and a writer's when @writing, so metad already
 * recalls this session before another one looks at the file; and the open
 * changes nothing (no O_TRUNC).  The kernel checked the permissions
 * against the same attributes (default_permissions).  Called with @n's
 * hold lock held. */
static bool open_here(struct fc_fs *fs, struct cl_inode *n, int flags,
                      bool writing, struct proto_attr *a)
{
    uint64_t now = cl_now_ms(), until;
    if ((flags & O_TRUNC) || !cl_cb_enabled(fs->cl) || !cl_inode_held(n) ||
        !cl_inode_attr_get(fs->cl, n, now, writing, a, &until))
        return false;
    attr_merge_kept(fs, a);
    return true;
}

/* Open a handle on @ino: OPEN with HOLD, so that metad keeps the file
 * while it is open even when its last name goes (docs/protocol.md
 * §6.22).  The inode's hold lock is held across the call, so a concurrent
 * last release of the same file cannot overtake it.  @a gets the
 * attributes. */
static int handle_open(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi, struct proto_attr *a)
{
    struct fc_fs *fs = fs_of(req);
    struct fc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    int rc = cl_inode_open(fs->cl, ino, 0, &h->node);
    if (rc < 0) {
        free(h);
        return rc;
    }
    cl_inode_hold_begin(h->node);
    bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
    if (open_here(fs, h->node, fi->flags, writing, a)) {
        h->held = true;
        cl_inode_hold_end(fs->cl, h->node, true);
        handle_setup(req, a, fi, h);
        return 0;
    }
    struct attr_ticket t;
    attr_ticket_take(fs, ino, &t);
    rc = open_check(req, ino, fi->flags, true, a);
    if (rc == 0 && S_ISDIR(a->mode))
        rc = -EISDIR;
    h->held = rc == 0 && S_ISREG(a->mode);
    cl_inode_hold_end(fs->cl, h->node, h->held);
    if (rc < 0) {
        cl_inode_put(fs->cl, h->node);
        free(h);
        return rc;
    }
    cl_inode_grow_seen(h->node, a->size);
    file_attr_note(fs, a, writing, &t);
    handle_setup(req, a, fi, h);
    return 0;
}

/* A handle on a file this client just created with MKNOD and HOLD: metad
 * holds it already. */
static int handle_created(fuse_req_t req, const struct proto_attr *a,
                          struct fuse_file_info *fi)
{
    struct fc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    int rc = cl_inode_open(fs_of(req)->cl, a->ino, a->size, &h->node);
    if (rc < 0) {
        free(h);
        return rc;
    }
    cl_inode_hold_begin(h->node);
    h->held = true;
    cl_inode_hold_end(fs_of(req)->cl, h->node, true);
    /* A new file: nobody else can have changed it (the kernel holds the
     * directory across the create); the attributes and the lack of a
     * capability are known. */
    struct attr_ticket t;
    attr_ticket_take(fs_of(req), a->ino, &t);
    file_attr_note(fs_of(req), a, true, &t);
    fc_nocap_note(fs_of(req)->nocap, a->ino,
                  fc_inotab_gen(fs_of(req)->nocap), keep_until(fs_of(req)));
    handle_setup(req, a, fi, h);
    return 0;
}

static struct fc_handle *handle_of(struct fuse_file_info *fi)
{
    return (struct fc_handle *)(uintptr_t)fi->fh;
}

/* Drop @h, its hold (the last one releases the file at metad) and its
 * reference on the inode. */
static void handle_release(fuse_req_t req, struct fc_handle *h)
{
    cl_file_release(fs_of(req)->cl, h->node, h->held);
    free(h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct proto_attr a;
    int rc = handle_open(req, ino, fi, &a);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (fuse_reply_open(req, fi) == -ENOENT) /* interrupted */
        handle_release(req, handle_of(fi));
}

/* CREATE of @name in @parent answered here: @parent is delegated to the
 * session and known whole without @name (fc_dirlist.c), its attributes
 * are known (fc_dirattr.c).  The MKNOD, with an inode number reserved to
 * the session and the time given here, goes to metad behind the queue
 * (cl_ns_push()).  -EAGAIN: not here, the caller asks metad. */
static int create_local(fuse_req_t req, fuse_ino_t parent, const char *name,
                        mode_t mode, struct fuse_file_info *fi,
                        struct proto_attr *out)
{
    struct fc_fs *fs = fs_of(req);
    uint64_t now = cl_now_ms();
    struct proto_attr dir;
    uint64_t dir_until;

    tables_check(fs);
    if (!fs->delegate || !cl_cb_enabled(fs->cl))
        return -EAGAIN;
    /* What is answered here is as of now. */
    call_start(fs);
    if (!fc_dirlist_absent(fs->dirlist, parent, name, now, NULL)) {
        log_debug("fc.ops", "create here: not known whole: dir=%llu",
                  (unsigned long long)parent);
        return -EAGAIN;
    }
    if (!fc_dirattr_get(fs->dirattr, parent, now, &dir, &dir_until) ||
        !dir.goal) {
        log_debug("fc.ops", "create here: no attributes: dir=%llu",
                  (unsigned long long)parent);
        return -EAGAIN;
    }
    uint64_t gen = fc_inotab_gen(fs->dirattr);
    uint64_t until = delegated(fs, parent);
    uint64_t ino;
    if (!until || until <= now || cl_ns_ino_new(fs->cl, &ino) < 0) {
        log_debug("fc.ops", "create here: not delegated: dir=%llu",
                  (unsigned long long)parent);
        return -EAGAIN;
    }

    struct proto_mknod_req m = {
        .parent = parent,
        .mode = S_IFREG | (mode & 07777),
        .umask = fuse_req_ctx(req)->umask,
        .flags = PROTO_MKNOD_EXCL | PROTO_MKNOD_INO,
        .name = str_of(name),
        .ino = ino,
        .time = cl_now_ns(),
    };
    /* Its owner may read it: the hold can wait (cl_ns_hold_here()). */
    bool hold_here = (m.mode & ~m.umask & S_IRUSR) != 0;
    if (!hold_here)
        m.flags |= PROTO_MKNOD_HOLD;
    cred_fill_in(req, &dir, m.mode, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &m);
    int rc = cl_ns_push(fs->cl, parent, ino, PROTO_MSG_MKNOD_REQ, &w);
    proto_wbuf_free(&w);
    if (rc < 0)
        return -EAGAIN; /* the delegation ended meanwhile */
    if (hold_here)
        cl_ns_hold_here(fs->cl, ino, m.cred.uid, m.cred.gid);
    local_attr(&m.cred, &dir, ino, m.mode & ~m.umask, m.time, out);
    fc_dirlist_add(fs->dirlist, parent, name, ino, m.mode, now, until);
    local_dir_touch(fs, gen, until < dir_until ? dir_until : until, &dir,
                    m.time);
    return handle_created(req, out, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    if (name_bad(req, name))
        return;
    struct proto_attr a;
    mode = S_IFREG | (mode & 07777);
    int rc = create_local(req, parent, name, mode, fi, &a);
    if (rc != -EAGAIN)
        goto reply;
    /* A file we create may be opened in any mode, whatever its permission
     * bits say; an existing one goes through the open check. */
    rc = do_mknod(req, parent, name, mode, 0,
                  PROTO_MKNOD_EXCL | PROTO_MKNOD_HOLD, &a);
    if (rc == 0) {
        rc = handle_created(req, &a, fi);
    } else if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
        struct proto_lookup_req m = {.parent = parent, .name = str_of(name)};
        cred_fill(req, &m.cred);
        struct proto_wbuf w;
        proto_wbuf_init(&w);
        proto_lookup_req_encode(&w, &m);
        rc = call_attr(fs_of(req), 0, PROTO_MSG_LOOKUP_REQ, &w, &a);
        if (rc == 0)
            rc = handle_open(req, a.ino, fi, &a);
    }
reply:
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    struct fuse_entry_param e;
    entry_fill(fs_of(req), &a, &e);
    if (fuse_reply_create(req, &e, fi) == -ENOENT)
        handle_release(req, handle_of(fi));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    int rc = cl_file_read(fs_of(req)->cl, handle_of(fi)->node, (uint64_t)off,
                          size, buf);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_buf(req, (const char *)buf, (size_t)rc);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
    log_debug("fc.ops", "write: ino=%llu off=%lld size=%zu",
              (unsigned long long)ino, (long long)off, size);
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct fc_handle *h = handle_of(fi);
    bool sync = (h->flags & (O_SYNC | O_DSYNC)) != 0;
    int rc = cl_file_write(fs_of(req)->cl, h->node, (uint64_t)off,
                           (const uint8_t *)buf, size, sync);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_write(req, (size_t)rc);
}

/* close(2): delayed writes and the size go to the servers and metad, and
 * a delayed write's error is reported here (cl_file_flush). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fuse_reply_err(req, -cl_file_flush(fs_of(req)->cl, handle_of(fi)->node));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    /* The file's own create, answered here, is durable with its data. */
    int rc = cl_ns_sync(fs_of(req)->cl);
    int frc = cl_file_sync(fs_of(req)->cl, handle_of(fi)->node);
    fuse_reply_err(req, -(rc < 0 ? rc : frc));
}

/* fsync of a directory: the changes in it answered here are applied (and
 * so in metad's log on a majority of its replicas). */
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, -cl_ns_sync(fs_of(req)->cl));
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    (void)ino;
    struct fc_handle *h = handle_of(fi);
    /* flush ran at close(); this catches writes made after it through a
     * shared mapping.  release cannot report an error, so it is logged. */
    int rc = cl_file_flush(fs_of(req)->cl, h->node);
    if (rc < 0)
        log_warn("release: flush failed: %s ino=%llu", strerror(-rc),
                 (unsigned long long)cl_inode_ino(h->node));
    handle_release(req, h);
    fuse_reply_err(req, 0);
}

static int extend_size(fuse_req_t req, fuse_ino_t ino, struct fc_handle *h,
                       uint64_t end, struct fuse_file_info *fi)
{
    if (end <= cl_inode_size(h->node))
        return 0;
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_size = (off_t)end;
    struct proto_attr a;
    return set_size(req, ino, &st, PROTO_SETATTR_SIZE, fi, &a);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                         off_t length, struct fuse_file_info *fi)
{
    struct fc_handle *h = handle_of(fi);
    int rc;

    if (offset < 0 || length <= 0 || offset > INT64_MAX - length) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    uint64_t off = (uint64_t)offset, len = (uint64_t)length;
    if (mode == 0) {
        /* Chunks are allocated on first write; allocating only extends. */
        rc = extend_size(req, ino, h, off + len, fi);
    } else if (mode == FALLOC_FL_KEEP_SIZE) {
        /* Preallocation past the end, as qemu-img and databases ask: the
         * chunks come at the first write, so there is nothing to do.  No
         * space is reserved (docs/operations.md). */
        rc = (h->flags & O_ACCMODE) == O_RDONLY ? -EBADF : 0;
    } else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
        rc = cl_file_zero(fs_of(req)->cl, h->node, off, len);
    } else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
        rc = cl_file_zero(fs_of(req)->cl, h->node, off, len);
        if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE))
            rc = extend_size(req, ino, h, off + len, fi);
    } else {
        rc = -EOPNOTSUPP;
    }
    fuse_reply_err(req, -rc);
}

/* ---- SEEK_DATA and SEEK_HOLE ------------------------------------------- */

/* Looking for the first run of one kind from @pos. */
struct seek_walk {
    bool want_data;
    bool found;
    uint64_t pos; /* start of the next run; of the one found once @found */
};

static int seek_run(void *arg, uint64_t len, bool data)
{
    struct seek_walk *w = arg;
    if (data == w->want_data) {
        w->found = true;
        return 1;
    }
    w->pos += len;
    return 0;
}

/* lseek(2) with SEEK_DATA or SEEK_HOLE, at chunk slot granularity
 * (cl_file_alloc()): data at or past the end is ENXIO, and the end of
 * the file is the hole that ends every file.  The size is the one stat
 * shows: metad's, or ours while our writes' WRITE_END is deferred.  Our
 * delayed writes count as data without being written back. */
static int seek_find(struct fc_fs *fs, struct cl_inode *n, uint64_t off,
                     bool want_data, uint64_t *out)
{
    struct proto_attr a;
    int rc = cl_meta_getattr(fs->cl, cl_inode_ino(n), &a);
    if (rc < 0)
        return rc;
    uint64_t size = cl_inode_grow_seen(n, a.size);
    if (off >= size)
        return -ENXIO;
    struct seek_walk w = {.want_data = want_data, .pos = off};
    while (!w.found && w.pos < size) {
        uint64_t from = w.pos;
        rc = cl_file_alloc(fs->cl, n, from, size - from, seek_run, &w);
        if (rc < 0)
            return rc;
        assert(w.found || w.pos > from); /* a walk covers a slot at least */
    }
    if (w.found) {
        *out = w.pos;
        return 0;
    }
    if (want_data)
        return -ENXIO;
    *out = size;
    return 0;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
    (void)ino;
    uint64_t pos;
    int rc;

    if (whence != SEEK_DATA && whence != SEEK_HOLE)
        rc = -EINVAL; /* the kernel answers the others itself */
    else if (off < 0)
        rc = -ENXIO;
    else
        rc = seek_find(fs_of(req), handle_of(fi)->node, (uint64_t)off,
                       whence == SEEK_DATA, &pos);
    if (rc < 0)
        fuse_reply_err(req, -rc);
    else
        fuse_reply_lseek(req, (off_t)pos);
}

/* ---- Directories ------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    /* The kernel checked read permission on the directory already
     * (default_permissions, as open(2) of a directory does), and metad
     * checks every READDIR again: nothing to ask here. */
    struct fc_fs *fs = fs_of(req);
    struct fc_dirwin *w;
    /* Under callbacks the kernel keeps the listing it was given, and an
     * opendir while the mount still knows the directory whole keeps
     * what the kernel has: nothing changed it since, or the change came
     * through this mount (the kernel drops its copy on its own) or broke
     * the promise (fc_notify.c drops it; fc_dirlist.c forgets).  Otherwise
     * the kernel's copy goes now and this listing fills it again. */
    if (cl_cb_enabled(fs->cl)) {
        tables_check(fs);
        fi->cache_readdir = 1;
        fi->keep_cache = fc_dirlist_whole(fs->dirlist, ino, cl_now_ms());
    }
    if (fc_dirwin_new(&w) < 0) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)w;
    if (fuse_reply_open(req, fi) == -ENOENT)
        fc_dirwin_free(w); /* the opener was interrupted */
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    (void)ino;
    fc_dirwin_free((struct fc_dirwin *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* A page of directory @ino after cookie @off, from the handle's window
 * (fc_dirwin.c). */
static void read_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi, bool plus)
{
    struct fc_fs *fs = fs_of(req);
    struct fc_dirwin *w = (struct fc_dirwin *)(uintptr_t)fi->fh;
    __atomic_add_fetch(&fs->dir_pages, 1, __ATOMIC_RELAXED);
    tables_check(fs); /* before a listing from fc_dirlist.c */
    char *buf = malloc(size ? size : 1);
    char *name = malloc(PROTO_MAX_STR + 1);
    if (!w || !buf || !name) {
        free(buf);
        free(name);
        fuse_reply_err(req, w ? ENOMEM : EBADF);
        return;
    }
    struct proto_cred cred;
    cred_fill(req, &cred);
    struct proto_dirent_iter it;
    fc_dirwin_lock(w);
    int rc =
        fc_dirwin_at(w, fs, &cred, ino, (uint64_t)off, plus, &it, &call_epoch);
    if (rc < 0) {
        fc_dirwin_unlock(w);
        free(buf);
        free(name);
        fuse_reply_err(req, -rc);
        return;
    }
    /* Attributes are given for a time only when no break came since the
     * window was fetched (cache_timeout() against that epoch). */
    bool have_attrs = plus && (it.flags & PROTO_READDIR_PLUS);
    size_t used = 0;
    struct proto_dirent d;
    while (proto_dirent_next(&it, &d)) {
        memcpy(name, d.name.p, d.name.len);
        name[d.name.len] = '\0';
        size_t need;
        if (plus) {
            struct fuse_entry_param e;
            entry_fill(fs, &d.attr, &e);
            if (!have_attrs) {
                /* No attributes: no node either, so the kernel keeps
                 * nothing of the entry but its name, inode number and
                 * type, and looks it up when it wants more. */
                e.ino = 0;
                e.attr_timeout = 0;
                e.entry_timeout = 0;
            }
            need = fuse_add_direntry_plus(req, buf + used, size - used, name,
                                          &e, (off_t)d.cookie);
        } else {
            struct stat st;
            memset(&st, 0, sizeof(st));
            st.st_ino = d.attr.ino;
            st.st_mode = d.attr.mode;
            need = fuse_add_direntry(req, buf + used, size - used, name, &st,
                                     (off_t)d.cookie);
        }
        if (need > size - used)
            break; /* the next readdir resumes from the last cookie */
        used += need;
    }
    fc_dirwin_unlock(w);
    fuse_reply_buf(req, buf, used);
    free(buf);
    free(name);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    read_dir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
    read_dir(req, ino, size, off, fi, true);
}

/* How long a STATFS answer serves df and statvfs(2): the figures behind
 * it are the chunk servers' usage reports, themselves about a second
 * old, and programs that check free space before each write (Samba,
 * package managers) would otherwise send one request per write. */
#define STATFS_KEEP_MS 1000

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct fc_fs *fs = fs_of(req);
    struct proto_statfs_rep out;
    uint64_t now = cl_now_ms();
    pthread_mutex_lock(&fs->statfs_lock);
    bool kept = fs->statfs_ms && now - fs->statfs_ms < STATFS_KEEP_MS;
    out = fs->statfs;
    pthread_mutex_unlock(&fs->statfs_lock);
    if (!kept) {
        struct proto_empty m = {0};
        struct proto_wbuf w;
        struct rpc_reply rep;
        proto_wbuf_init(&w);
        proto_empty_encode(&w, &m);
        int rc = cl_meta_call(fs->cl, PROTO_MSG_STATFS_REQ, &w, &rep, &out);
        proto_wbuf_free(&w);
        if (rc < 0) {
            fuse_reply_err(req, -rc);
            return;
        }
        rpc_reply_free(&rep);
        pthread_mutex_lock(&fs->statfs_lock);
        fs->statfs = out;
        fs->statfs_ms = now ? now : 1;
        pthread_mutex_unlock(&fs->statfs_lock);
    }
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = out.bsize ? out.bsize : 4096;
    sv.f_frsize = sv.f_bsize;
    sv.f_blocks = out.blocks;
    sv.f_bfree = out.bfree;
    sv.f_bavail = out.bavail;
    sv.f_files = out.files;
    sv.f_ffree = out.ffree;
    sv.f_favail = out.ffree;
    sv.f_namemax = out.namemax ? out.namemax : PROTO_NAME_MAX;
    fuse_reply_statfs(req, &sv);
}

/* ---- Extended attributes ----------------------------------------------- */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        const char *value, size_t size, int flags)
{
    if (strlen(name) > PROTO_NAME_MAX) {
        fuse_reply_err(req, ERANGE);
        return;
    }
    if (size > PROTO_MAX_XATTR) {
        fuse_reply_err(req, E2BIG);
        return;
    }
    if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct proto_setxattr_req m = {
        .ino = ino,
        .flags = ((flags & XATTR_CREATE) ? PROTO_XATTR_CREATE : 0) |
                 ((flags & XATTR_REPLACE) ? PROTO_XATTR_REPLACE : 0),
        .name = str_of(name),
        .value = {value, (uint32_t)size},
    };
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_setxattr_req_encode(&w, &m);
    int rc = call_empty(fs_of(req), PROTO_MSG_SETXATTR_REQ, &w);
    file_attr_forget(fs_of(req), ino); /* its ctime */
    fc_inotab_forget(fs_of(req)->nocap, ino);
    fc_inotab_forget(fs_of(req)->dirattr, ino); /* its ctime moved */
    fuse_reply_err(req, -rc);
}

/* Reply to getxattr/listxattr: size 0 asks for the length only. */
static void reply_xattr_data(fuse_req_t req, const struct proto_str *d,
                             size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, d->len);
    else if (d->len > size)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, d->p, d->len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                        size_t size)
{
    struct fc_fs *fs = fs_of(req);

    if (strlen(name) > PROTO_NAME_MAX) {
        fuse_reply_err(req, ERANGE);
        return;
    }
    /* The kernel's ask before every write and chown (fc_nocap.c). */
    bool cap = strcmp(name, FC_XATTR_CAPS) == 0;
    tables_check(fs);
    if (cap && fc_nocap_known(fs->nocap, ino, cl_now_ms())) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    uint64_t gen = fc_inotab_gen(fs->nocap);
    struct proto_xattr_name_req m = {.ino = ino, .name = str_of(name)};
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_xattr_name_req_encode(&w, &m);
    struct rpc_reply rep;
    struct proto_bytes_rep out;
    call_start(fs);
    int rc =
        cl_meta_call_on(fs->cl, ino, PROTO_MSG_GETXATTR_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc == -ENODATA && cap) {
        /* Known absent for as long as the inode's attributes may be
         * kept: not at all when a break came during the call. */
        double t = cache_timeout(fs);
        if (t > 0)
            fc_nocap_note(fs->nocap, ino, gen,
                          cl_now_ms() + (uint64_t)(t * 1000));
    }
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    reply_xattr_data(req, &out.data, size);
    rpc_reply_free(&rep);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct proto_ino_req m = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &m);
    struct rpc_reply rep;
    struct proto_bytes_rep out;
    int rc =
        cl_meta_call(fs_of(req)->cl, PROTO_MSG_LISTXATTR_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    reply_xattr_data(req, &out.data, size);
    rpc_reply_free(&rep);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    if (strlen(name) > PROTO_NAME_MAX) {
        fuse_reply_err(req, ERANGE);
        return;
    }
    struct proto_xattr_name_req m = {.ino = ino, .name = str_of(name)};
    cred_fill(req, &m.cred);
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_xattr_name_req_encode(&w, &m);
    int rc = call_empty(fs_of(req), PROTO_MSG_REMOVEXATTR_REQ, &w);
    file_attr_forget(fs_of(req), ino);
    fc_inotab_forget(fs_of(req)->nocap, ino);
    fc_inotab_forget(fs_of(req)->dirattr, ino);
    fuse_reply_err(req, -rc);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    fuse_reply_err(req, -check_access(req, ino, (uint32_t)mask));
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .create = op_create,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .fsyncdir = op_fsyncdir,
    .fallocate = op_fallocate,
    .lseek = op_lseek,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .setxattr = op_setxattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .removexattr = op_removexattr,
    .access = op_access,
};

const struct fuse_lowlevel_ops *fc_ops_get(void)
{
    return &ops;
}
