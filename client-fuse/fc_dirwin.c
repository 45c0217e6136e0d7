/* fc_dirwin.c: an open directory's window of entries.
 *
 * The kernel lists a directory a page at a time (getdents fills about
 * 4 KiB: some 25 entries with attributes), and asks once more past the
 * last entry to learn the end.  Asked page by page, a listing of 100
 * names is five READDIRs to metad; `find`, `ls` and dbench's Find list
 * small directories all the time, and READDIR was the request metad
 * answered most.  So each opendir gets a window: one READDIR of up to
 * PROTO_READDIR_MAX entries from where the kernel asks, kept with the
 * handle, from which the kernel's pages are served; the kernel's ask past
 * the end of a window that reached the directory's end is answered empty
 * without metad.  A page past the window (a directory larger than it)
 * fetches the next window from there.
 *
 * What a window shows is the directory as it was when fetched: POSIX
 * leaves open whether a readdir after opendir or rewinddir shows entries
 * added or removed since, and a rewind (offset 0) always fetches anew.
 * Attributes in it (READDIRPLUS) are given to the kernel for a time only
 * when no callback break came since the fetch (fc_ops.c's read_dir()).
 *
 * A directory the mount knows whole (fc_dirlist.c) is listed without
 * metad: the window is a copy of its names, inode numbers and types, with
 * cookies of its own (FC_DIRLIST_COOKIE0 on), so a window made that way
 * serves every later page of the same handle until the next rewind.  It
 * carries no attributes; read_dir() gives its entries to a READDIRPLUS
 * without a node, so the kernel looks up the names it then wants.  A
 * window fetched from metad that reached the directory's end from its
 * start teaches the mount the whole directory (fc_dirlist_note_list()),
 * when no break came meanwhile.
 *
 * One handle is used by one open file description; the kernel serialises
 * its getdents, and @lock covers the rest.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fc_dirwin {
    pthread_mutex_t lock;
    bool have;          /* a window is held */
    bool plus;          /* fetched with attributes */
    uint64_t from;      /* the cookie it starts after (0: the start) */
    uint64_t epoch;     /* cl_cb_epoch() before the fetch */
    bool local;         /* made here: @raw owns what @out points into */
    struct rpc_reply rep;          /* else it owns them */
    struct proto_wbuf raw;
    struct proto_readdir_rep out;
};

int fc_dirwin_new(struct fc_dirwin **out)
{
    struct fc_dirwin *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->lock, NULL);
    proto_wbuf_init(&w->raw);
    *out = w;
    return 0;
}

static void drop(struct fc_dirwin *w)
{
    if (w->have && !w->local)
        rpc_reply_free(&w->rep);
    proto_wbuf_free(&w->raw);
    w->have = false;
    w->local = false;
}

void fc_dirwin_free(struct fc_dirwin *w)
{
    if (!w)
        return;
    drop(w);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void fc_dirwin_lock(struct fc_dirwin *w)
{
    pthread_mutex_lock(&w->lock);
}

void fc_dirwin_unlock(struct fc_dirwin *w)
{
    pthread_mutex_unlock(&w->lock);
}

/* Whether the held window serves a page after cookie @off: it starts
 * there, or holds the entry @off names, and has an entry after it or
 * reaches the directory's end; then @it is at the entry after. */
static bool find_in(struct fc_dirwin *w, uint64_t off,
                    struct proto_dirent_iter *it)
{
    struct proto_dirent_iter next;
    struct proto_dirent d;
    bool found = off == w->from;

    proto_dirent_iter_init(it, &w->out);
    while (!found && proto_dirent_next(it, &d))
        found = d.cookie == off;
    next = *it;
    return found && (w->out.eof || proto_dirent_next(&next, &d));
}

/* A window of directory @ino from fc_dirlist.c, when it is known whole;
 * false otherwise. */
static bool list_here(struct fc_dirwin *w, struct fc_fs *fs, uint64_t ino)
{
    uint32_t count = 0;

    drop(w);
    if (fc_dirlist_list(fs->dirlist, ino, cl_now_ms(), &w->raw, &count) < 0) {
        proto_wbuf_free(&w->raw);
        return false;
    }
    w->have = true;
    w->local = true;
    w->plus = false;
    w->from = 0;
    w->epoch = cl_cb_epoch(fs->cl);
    w->out = (struct proto_readdir_rep){
        .eof = 1,
        .count = count,
        .raw = {(const char *)w->raw.p, (uint32_t)w->raw.len},
    };
    return true;
}

int fc_dirwin_at(struct fc_dirwin *w, struct fc_fs *fs,
                 const struct proto_cred *cred, uint64_t ino, uint64_t off,
                 bool plus, struct proto_dirent_iter *it, uint64_t *epoch)
{
    if ((off == 0 && list_here(w, fs, ino)) || (w->have && w->local)) {
        /* Past the end of what it holds, or at a cookie it never gave:
         * nothing more. */
        if (!find_in(w, off, it))
            proto_dirent_iter_init(it, &(struct proto_readdir_rep){.eof = 1});
        *epoch = w->epoch;
        return 0;
    }
    /* A window with attributes serves a listing without as well. */
    if (!w->have || off == 0 || (plus && !w->plus) || !find_in(w, off, it)) {
        struct proto_readdir_req m = {
            .cred = *cred,
            .ino = ino,
            .cookie = off,
            .max_entries = PROTO_READDIR_MAX,
            .flags = plus ? PROTO_READDIR_PLUS : 0,
        };
        struct proto_wbuf q;
        uint64_t e = cl_cb_epoch(fs->cl);
        uint64_t stamp = fc_dirlist_stamp(fs->dirlist);
        int rc;

        drop(w);
        proto_wbuf_init(&q);
        proto_readdir_req_encode(&q, &m);
        rc = cl_meta_call(fs->cl, PROTO_MSG_READDIR_REQ, &q, &w->rep, &w->out);
        proto_wbuf_free(&q);
        if (rc < 0)
            return rc;
        w->have = true;
        w->plus = plus;
        w->from = off;
        w->epoch = e;
        proto_dirent_iter_init(it, &w->out);
        if (off == 0 && w->out.eof && cl_cb_enabled(fs->cl) &&
            cl_cb_epoch(fs->cl) == e) {
            uint64_t now = cl_now_ms();
            fc_dirlist_note_list(fs->dirlist, ino, &w->out, stamp, now,
                                 now + cl_cb_keep_ms(fs->cl));
        }
    }
    *epoch = w->epoch;
    return 0;
}
