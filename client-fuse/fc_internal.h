/* fc_internal.h: shared inside client-fuse/ only.
 *
 * The mount is the libfuse glue over the client library (client/cl.h),
 * which owns the session with metad and the whole data path:
 *
 *   fc_main.c      command line, mount, daemonise
 *   fc_loop.c      the session loop: one reader, handed on before a wait
 *   fc_ops.c       libfuse low-level callbacks -> metad requests, cl_file_*
 *   fc_attr.c      attributes and times between the wire and libfuse
 *   fc_notify.c    callback breaks -> kernel cache invalidation
 *   fc_nocap.c     inodes known to have no security.capability
 *   fc_groups.c    callers' supplementary groups, kept for a moment
 *   fc_dirattr.c   directory attributes from our own changes' replies
 *   fc_dirlist.c   every name of directories this mount made
 *   fc_dirwin.c    an open directory's window of entries
 *   fc_inotab.c    the table both keep their facts in
 *   fc_conf.c      --config FILE
 */
#ifndef TESSERA_FC_INTERNAL_H
#define TESSERA_FC_INTERNAL_H

#include <pthread.h>

#include "cl.h"

/* The whole mount: fuse_req_userdata() of every request. */
struct fc_dirlist;
struct fc_dirwin;
struct fc_groups;
struct fc_inotab;
struct fc_notify;
struct fuse_opt;
struct fuse_session;

/* The session loop's (fc_loop.c), kept current while it runs; read with
 * __atomic_load_n(). */
struct fc_loop_stats {
    uint64_t handovers; /* readings handed on before a wait */
    unsigned threads;   /* workers running */
};

struct fc_fs {
    struct cl_client *cl; /* set once the session is open */
    struct fuse_session *se;
    struct fc_notify *notify;
    struct fc_inotab *nocap;
    struct fc_inotab *dirattr;
    struct fc_dirlist *dirlist;
    struct fc_groups *groups; /* -o groups_cache */
    uint64_t resets; /* cl_cb_resets() the tables were last cleared at */
    bool consistency_validate; /* -o consistency=validate */
    bool delegate;             /* -o delegate=yes (fc_ops.c) */
    /* The last STATFS answer and when it came (fc_ops.c's op_statfs()). */
    pthread_mutex_t statfs_lock;
    struct proto_statfs_rep statfs;
    uint64_t statfs_ms;        /* 0: none yet */
    uint64_t dir_pages;        /* atomic: READDIR(PLUS) requests served */
    struct fc_loop_stats loop; /* the session loop's (fc_loop.c) */
};

/* One open() of a file: fi->fh points at it.  Holds a reference on the
 * client's open inode. */
struct fc_handle {
    struct cl_inode *node;
    int flags; /* open(2) flags */
    bool held; /* metad holds the file for it (cl_inode_hold_end) */
};

/* fc_loop.c */

struct fuse_buf;
/* Where the loop's requests come from (a FUSE session, or a test's
 * fake); every callback but exited() runs on a worker. */
struct fc_loop_ops {
    /* The next request into @buf (its memory the loop's, allocated by
     * the callee when NULL): > 0, 0 at the end, -EINTR to read again,
     * another -errno to end.  Workers may be cancelled only in it. */
    int (*receive)(void *arg, struct fuse_buf *buf);
    void (*process)(void *arg, const struct fuse_buf *buf);
    bool (*exited)(void *arg); /* also on the calling thread */
    void (*exit)(void *arg);   /* end it: exited() is true from now on */
    void *arg;
};
/* Serve requests until exited() is true (@ops's receive() ended, or a
 * signal; a signal must interrupt the calling thread's sem_wait()), with
 * up to @max_threads workers of which up to @max_idle wait for work.
 * Installs the blocking hook (blocking.h) for as long as it runs.  0, or
 * the -errno that ended reading.  @stats is borrowed until it returns. */
int fc_loop_run(const struct fc_loop_ops *ops, unsigned max_threads,
                unsigned max_idle, struct fc_loop_stats *stats);
/* The same on FUSE session @se. */
int fc_loop_run_session(struct fuse_session *se, unsigned max_threads,
                        unsigned max_idle, struct fc_loop_stats *stats);

/* fc_metrics.c */
struct http_server;
/* Serve /metrics on @addr (--http) from a thread of its own; fs->cl must
 * stay open until http_server_stop().  Caller owns *out.  0 or -errno
 * (logged). */
int fc_metrics_start(struct fc_fs *fs, const char *addr,
                     struct http_server **out);

/* fc_attr.c */

struct stat;
struct timespec;
/* Fill @st from @a (nanosecond times split into timespecs). */
/* fc_conf.c: --config FILE as arguments before the command line's, its
 * keys those of @spec (the mount's fuse_opt table); see conf_args(). */
int fc_conf_args(const struct fuse_opt *spec, int argc, char **argv,
                 int *out_argc, char ***out_argv);

void fc_attr_to_stat(const struct proto_attr *a, struct stat *st);
/* Nanoseconds since the epoch of @ts. */
int64_t fc_ns_from_ts(const struct timespec *ts);
/* PROTO_SETATTR_* bits for libfuse's FUSE_SET_ATTR_* bits in @to_set; the
 * _NOW variants win over explicit times. */
uint32_t fc_setattr_valid(int to_set);

/* fc_notify.c */

/* Start the thread that passes invalidations to the kernel for @se.
 * Caller owns *out: fc_notify_stop(). */
int fc_notify_start(struct fuse_session *se, struct fc_notify **out);
/* Stop it (pending invalidations are dropped) and free (NULL is fine). */
void fc_notify_stop(struct fc_notify *nt);
/* The client library's break hook (cl_break_cb); @arg is the struct
 * fc_fs.  Waits a bounded time for the kernel to drop its caches. */
void fc_notify_break(void *arg, uint64_t ino, uint32_t flags, const char *name);

/* fc_inotab.c */

/* A table of facts about inodes, each with the value_size bytes given to
 * fc_inotab_new() (0: the entry is the fact), 1 << @bits slots.  Caller
 * owns *out: fc_inotab_free() (NULL is fine).  0 or -ENOMEM.  A table of
 * NULL knows nothing and learns nothing. */
int fc_inotab_new(unsigned bits, size_t value_size, struct fc_inotab **out);
void fc_inotab_free(struct fc_inotab *t);
/* Whether @ino is known at @now_ms; its value into *@value and until when
 * it holds into *@until_ms (each when not NULL). */
bool fc_inotab_get(struct fc_inotab *t, uint64_t ino, uint64_t now_ms,
                   void *value, uint64_t *until_ms);
/* The forget count, taken before asking metad. */
uint64_t fc_inotab_gen(struct fc_inotab *t);
/* An answer asked for when the forget count was @gen: @value (copied)
 * holds for @ino until @until_ms, unless something was forgotten since,
 * or @held_newer (when not NULL) says the entry held for @ino is newer. */
void fc_inotab_note(struct fc_inotab *t, uint64_t ino, uint64_t gen,
                    uint64_t until_ms, const void *value,
                    bool (*held_newer)(const void *held, const void *offered));
/* Forget @ino (it changed, or another client changed it). */
void fc_inotab_forget(struct fc_inotab *t, uint64_t ino);
/* Forget every inode. */
void fc_inotab_clear(struct fc_inotab *t);

/* fc_groups.c */
#define FC_GROUPS_CACHE_S 1 /* -o groups_cache default, seconds */
/* Read the caller's supplementary groups into @groups (room for
 * PROTO_MAX_GROUPS): how many (more than PROTO_MAX_GROUPS: the first
 * ones are there), or -errno. */
typedef int (*fc_groups_read_fn)(void *arg, uint32_t *groups);
/* Keep groups @ttl_ms (0: never).  Caller owns *out.  0 or -ENOMEM. */
int fc_groups_new(uint32_t ttl_ms, struct fc_groups **out);
void fc_groups_free(struct fc_groups *g);
/* The supplementary groups of thread @pid calling as @uid, @gid, into
 * @groups (room for PROTO_MAX_GROUPS): those read for the same thread,
 * uid and gid less than the cache time before @now_ms, else @read's,
 * which are kept.  Returns how many, or @read's -errno (not kept). */
int fc_groups_get(struct fc_groups *g, uint32_t pid, uint32_t uid, uint32_t gid,
                  uint64_t now_ms, fc_groups_read_fn read, void *arg,
                  uint32_t *groups);
/* How many times groups were read, and answered from the table. */
void fc_groups_stats(struct fc_groups *g, uint64_t *reads, uint64_t *hits);

/* fc_nocap.c */

/* The attribute file capabilities live in (<linux/xattr.h>'s
 * XATTR_NAME_CAPS, which clashes with <sys/xattr.h>). */
#define FC_XATTR_CAPS "security.capability"

/* A table of inodes metad said have no security.capability (forget one
 * with fc_inotab_forget() when its extended attributes change). */
int fc_nocap_new(struct fc_inotab **out);
/* Whether @ino is known, at @now_ms, to have none. */
bool fc_nocap_known(struct fc_inotab *t, uint64_t ino, uint64_t now_ms);
/* metad said @ino has none, asked when the forget count was @gen: true
 * until @until_ms, unless something was forgotten since. */
void fc_nocap_note(struct fc_inotab *t, uint64_t ino, uint64_t gen,
                   uint64_t until_ms);

/* fc_dirattr.c */

/* A table of directory attributes. */
int fc_dirattr_new(struct fc_inotab **out);
/* The attributes of directory @ino into *@out and until when they hold
 * into *@until_ms, when known at @now_ms. */
bool fc_dirattr_get(struct fc_inotab *t, uint64_t ino, uint64_t now_ms,
                    struct proto_attr *out, uint64_t *until_ms);
/* A reply to a request sent when the forget count was @gen gave @a (kept
 * only for a directory): true until @until_ms, unless something was
 * forgotten since.  @a is copied. */
void fc_dirattr_note(struct fc_inotab *t, const struct proto_attr *a,
                     uint64_t gen, uint64_t until_ms);

/* fc_ops.c */

struct fuse_lowlevel_ops;
/* The callback table; userdata must be a struct fc_fs. */
const struct fuse_lowlevel_ops *fc_ops_get(void);

/* fc_dirlist.c */

/* Directories known whole at once, and names one may hold. */
#define FC_DIRLIST_DIRS 256
#define FC_DIRLIST_NAMES 100000
/* The cookie of a listing's first entry ("."); the rest follow by one.
 * Cookies of a listing served here mean something only to the window
 * that holds it (fc_dirwin.c). */
#define FC_DIRLIST_COOKIE0 1

/* A table of directories whose every name the mount knows.  Caller owns
 * *out: fc_dirlist_free() (NULL is fine).  0 or -ENOMEM. */
int fc_dirlist_new(struct fc_dirlist **out);
void fc_dirlist_free(struct fc_dirlist *t);
/* The forget count, taken before a MKDIR or READDIR is sent. */
uint64_t fc_dirlist_gen(struct fc_dirlist *t);
/* Directory @ino, in @parent, was just made empty by us, asked when the
 * forget count was @gen: known whole until @until_ms, unless something
 * was forgotten since. */
void fc_dirlist_note_empty(struct fc_dirlist *t, uint64_t ino, uint64_t parent,
                           uint64_t gen, uint64_t now_ms, uint64_t until_ms);
/* The forget count and the count of our own changes together, taken
 * before a READDIR is sent. */
uint64_t fc_dirlist_stamp(struct fc_dirlist *t);
/* READDIR reply @rep listed directory @ino from its start to its end
 * (eof), under a promise, asked at @stamp: known whole until @until_ms,
 * unless something was forgotten or changed by us since (metad may have
 * listed before our change applied), or @ino is known already.  A reply
 * short of the end teaches nothing. */
void fc_dirlist_note_list(struct fc_dirlist *t, uint64_t ino,
                          const struct proto_readdir_rep *rep, uint64_t stamp,
                          uint64_t now_ms, uint64_t until_ms);
/* Our own change added @name (inode @ino of mode @mode) to @dir, or
 * removed it, at @now_ms; when @dir is known, it stays known with it,
 * until @until_ms if that is later (0: no later). */
void fc_dirlist_add(struct fc_dirlist *t, uint64_t dir, const char *name,
                    uint64_t ino, uint32_t mode, uint64_t now_ms,
                    uint64_t until_ms);
void fc_dirlist_remove(struct fc_dirlist *t, uint64_t dir, const char *name,
                       uint64_t now_ms, uint64_t until_ms);
/* Our own rename of @parent/@name to @newparent/@newname succeeded at
 * @now_ms: the entry moves, replacing any of the new name.  When the old
 * directory is not known, neither is the new one any more. */
void fc_dirlist_rename(struct fc_dirlist *t, uint64_t parent, const char *name,
                       uint64_t newparent, const char *newname, uint64_t now_ms,
                       uint64_t until_ms);
/* @dir is known whole at @now_ms and holds no @name: until when into
 * *@until_ms (when not NULL). */
bool fc_dirlist_absent(struct fc_dirlist *t, uint64_t dir, const char *name,
                       uint64_t now_ms, uint64_t *until_ms);
/* @dir is known whole at @now_ms and holds @name. */
bool fc_dirlist_present(struct fc_dirlist *t, uint64_t dir, const char *name,
                        uint64_t now_ms);
/* @dir is known whole at @now_ms and holds @name: its inode into *@ino. */
bool fc_dirlist_ino(struct fc_dirlist *t, uint64_t dir, const char *name,
                    uint64_t now_ms, uint64_t *ino);
/* @dir is known whole at @now_ms. */
bool fc_dirlist_whole(struct fc_dirlist *t, uint64_t dir, uint64_t now_ms);
/* When @dir is known whole at @now_ms: its entries, "." and ".." first,
 * appended to @raw as a READDIR reply's entries without attributes
 * (inode and type only), cookies from FC_DIRLIST_COOKIE0, and their
 * number into *@count; 0.  -ENOENT when not known, -ENOMEM. */
int fc_dirlist_list(struct fc_dirlist *t, uint64_t dir, uint64_t now_ms,
                    struct proto_wbuf *raw, uint32_t *count);
/* Forget @ino, or every directory. */
void fc_dirlist_forget(struct fc_dirlist *t, uint64_t ino);
/* Forget @ino and every directory known to hang from it: a rename of
 * ours that failed or swapped two names may have moved one of them. */
void fc_dirlist_forget_tree(struct fc_dirlist *t, uint64_t ino);
void fc_dirlist_clear(struct fc_dirlist *t);

/* fc_dirwin.c */

/* An open directory's window (fi->fh of a directory).  Caller owns *out:
 * fc_dirwin_free() (NULL is fine).  0 or -ENOMEM. */
int fc_dirwin_new(struct fc_dirwin **out);
void fc_dirwin_free(struct fc_dirwin *w);
/* Held around fc_dirwin_at() and the walk of what it gives. */
void fc_dirwin_lock(struct fc_dirwin *w);
void fc_dirwin_unlock(struct fc_dirwin *w);
/* Position @it at the entries after cookie @off of directory @ino (0: from
 * the start), as @cred lists it, with attributes when @plus: from the
 * window held, else from a new one fetched from metad (always at 0, and
 * when the window ends at @off short of the directory's end).  *@epoch:
 * cl_cb_epoch() before its fetch.  @it stays valid until the next call or
 * the unlock.  0 or -errno. */
int fc_dirwin_at(struct fc_dirwin *w, struct fc_fs *fs,
                 const struct proto_cred *cred, uint64_t ino, uint64_t off,
                 bool plus, struct proto_dirent_iter *it, uint64_t *epoch);

#endif
