/* fc_dirlist.c: the whole contents of directories under a promise, so
 * that a lookup of a name they do not hold, and a listing, are answered
 * here.
 *
 * A create first looks its name up (the kernel's LOOKUP, before CREATE or
 * MKNOD), and in a directory of new names that lookup always finds
 * nothing: a metad round trip per create that only says so.  Programs
 * that list a directory before they create in it (Samba's name
 * resolution, dbench, build tools) pay a READDIR as well.  Under
 * callbacks the mount can know better.  A directory it has just made is
 * empty, and the MKDIR's reply granted the session a promise on it
 * (docs/protocol.md §14); a READDIR that returned the whole directory in
 * one window granted one too (meta_srv_callback.c grants it before the
 * listing is read).  Any name another session adds or removes there
 * breaks that promise first.  Every name this mount adds, removes or
 * renames there itself it learns from its own replies.  So, from the
 * MKDIR or the listing until a break of the directory, the mount knows
 * all its names, each with its inode number and type: a name not among
 * them does not exist (the lookup is answered as a negative entry), and
 * an opendir is served from a copy of them (fc_dirlist_list()) without
 * asking metad.
 *
 * How long it holds: as the directory's attributes in fc_dirattr.c do, for
 * as long as the kernel could keep what one call told it (fc_ops.c's
 * cache_timeout(), inside the promise), renewed by each change of ours in
 * the directory whose reply carried the directory's attributes (and so
 * renewed the promise).  What forgets a directory first: a callback break
 * of it (fc_notify_break()), a rename through this mount that failed or
 * whose entry it cannot follow (fc_dirlist_rename()), a new session (every
 * promise lost: the owner clears the table when cl_cb_resets() moves),
 * and a directory grown past FC_DIRLIST_NAMES names.  At most
 * FC_DIRLIST_DIRS directories are known at once; a new one takes the
 * place of the one that expires first.  The forget count closes the race
 * between a reply that teaches a whole directory and a break, as in
 * fc_inotab.c; a name added or removed is only ever applied to a
 * directory still known, and the kernel holds the directory's lock across
 * a create, unlink, rename or lookup of the same name, so our own change
 * and a lookup of its name never cross.
 *
 * Thread-safe: the FUSE request threads and the break thread use one
 * table under one lock.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One name: NULL @name is a free slot, TOMB a removed one. */
struct dl_ent {
    char *name;
    uint64_t ino;
    uint32_t mode; /* the S_IFMT bits */
};

struct dl_dir {
    uint64_t ino;    /* 0: free */
    uint64_t parent; /* its "..", for listings */
    uint64_t until_ms;
    size_t n, cap;       /* names held, slots (a power of two, or 0) */
    struct dl_ent *ents; /* open addressing */
};

struct fc_dirlist {
    pthread_mutex_t lock;
    uint64_t gen;     /* moves on every forget */
    uint64_t changes; /* moves on every change of ours (add, remove, rename) */
    struct dl_dir dirs[FC_DIRLIST_DIRS];
};

/* A removed name's slot: probing goes on past it. */
static char tomb;
#define TOMB (&tomb)

int fc_dirlist_new(struct fc_dirlist **out)
{
    struct fc_dirlist *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

static bool live(const struct dl_ent *e)
{
    return e->name && e->name != TOMB;
}

static void dir_drop(struct dl_dir *d)
{
    for (size_t i = 0; i < d->cap; i++)
        if (live(&d->ents[i]))
            free(d->ents[i].name);
    free(d->ents);
    memset(d, 0, sizeof(*d));
}

void fc_dirlist_free(struct fc_dirlist *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < FC_DIRLIST_DIRS; i++)
        dir_drop(&t->dirs[i]);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static uint64_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return h;
}

/* The slot of @name in @d: where it is, else the first free one probing
 * reached (NULL only in a table with no slot). */
static struct dl_ent *slot_of(struct dl_dir *d, const char *name)
{
    struct dl_ent *tomb_at = NULL;

    if (!d->cap)
        return NULL;
    for (size_t i = name_hash(name) & (d->cap - 1), k = 0; k < d->cap;
         i = (i + 1) & (d->cap - 1), k++) {
        struct dl_ent *e = &d->ents[i];
        if (!e->name)
            return tomb_at ? tomb_at : e;
        if (e->name == TOMB) {
            if (!tomb_at)
                tomb_at = e;
        } else if (strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return tomb_at;
}

/* @name's entry in @d, or NULL. */
static struct dl_ent *lookup(struct dl_dir *d, const char *name)
{
    struct dl_ent *e = slot_of(d, name);

    return e && live(e) ? e : NULL;
}

/* Double @d's slots (from none: 16).  0 or -ENOMEM. */
static int grow(struct dl_dir *d)
{
    struct dl_dir old = *d;
    size_t cap = d->cap ? d->cap * 2 : 16;

    d->ents = calloc(cap, sizeof(*d->ents));
    if (!d->ents) {
        d->ents = old.ents;
        return -ENOMEM;
    }
    d->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (live(&old.ents[i]))
            *slot_of(d, old.ents[i].name) = old.ents[i];
    free(old.ents);
    return 0;
}

static struct dl_dir *find(struct fc_dirlist *t, uint64_t ino)
{
    for (size_t i = 0; i < FC_DIRLIST_DIRS; i++)
        if (t->dirs[i].ino == ino)
            return &t->dirs[i];
    return NULL;
}

/* Directory @ino to change at @now_ms, if still known: one expired is
 * dropped, since changes of others may have gone unbroken since and a
 * reply renewing the promise now would not bring them back. */
static struct dl_dir *find_live(struct fc_dirlist *t, uint64_t ino,
                                uint64_t now_ms)
{
    struct dl_dir *d = ino ? find(t, ino) : NULL;

    if (d && d->until_ms <= now_ms) {
        dir_drop(d);
        d = NULL;
    }
    return d;
}

/* Stop knowing @d whole. */
static void give_up(struct fc_dirlist *t, struct dl_dir *d)
{
    dir_drop(d);
    t->gen++;
}

/* Put @name (@ino, @mode) in @d, replacing an entry of that name; on
 * failure @d is given up.  0 or -ENOMEM. */
static int put(struct fc_dirlist *t, struct dl_dir *d, const char *name,
               uint64_t ino, uint32_t mode)
{
    struct dl_ent *e = lookup(d, name);

    if (!e) {
        char *copy = strdup(name);
        bool full = d->n >= FC_DIRLIST_NAMES;
        if (!full && copy && (d->n + 1) * 4 > d->cap * 3 && grow(d) < 0)
            full = true;
        if (full || !copy) {
            free(copy);
            give_up(t, d); /* not known whole any more */
            return -ENOMEM;
        }
        e = slot_of(d, name);
        e->name = copy;
        d->n++;
    }
    e->ino = ino;
    e->mode = mode & S_IFMT;
    return 0;
}

static void take_out(struct dl_dir *d, struct dl_ent *e)
{
    free(e->name);
    e->name = TOMB;
    d->n--;
}

static void renew(struct dl_dir *d, uint64_t until_ms)
{
    if (d && d->ino && until_ms > d->until_ms)
        d->until_ms = until_ms;
}

uint64_t fc_dirlist_gen(struct fc_dirlist *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->lock);
    return g;
}

uint64_t fc_dirlist_stamp(struct fc_dirlist *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t g = t->gen + t->changes;
    pthread_mutex_unlock(&t->lock);
    return g;
}

/* Stop knowing @ino and every directory known to hang from it (whose
 * ".." it is). */
static void forget_tree(struct fc_dirlist *t, uint64_t ino)
{
    t->gen++;
    for (size_t i = 0; ino && i < FC_DIRLIST_DIRS; i++)
        if (t->dirs[i].ino == ino || t->dirs[i].parent == ino)
            dir_drop(&t->dirs[i]);
}

/* A place for directory @ino, known whole from now until @until_ms, when
 * nothing was forgotten since @gen: emptied, or NULL. */
static struct dl_dir *place(struct fc_dirlist *t, uint64_t ino, uint64_t parent,
                            uint64_t gen, uint64_t now_ms, uint64_t until_ms)
{
    struct dl_dir *d = NULL;

    if (!ino || until_ms <= now_ms || gen != t->gen)
        return NULL;
    d = find(t, ino);
    if (!d) {
        /* A free place, or one expired, else the one to expire first. */
        for (size_t i = 0; i < FC_DIRLIST_DIRS; i++) {
            struct dl_dir *e = &t->dirs[i];
            if (!e->ino || e->until_ms <= now_ms) {
                d = e;
                break;
            }
            if (!d || e->until_ms < d->until_ms)
                d = e;
        }
    }
    dir_drop(d);
    d->ino = ino;
    d->parent = parent;
    d->until_ms = until_ms;
    return d;
}

void fc_dirlist_note_empty(struct fc_dirlist *t, uint64_t ino, uint64_t parent,
                           uint64_t gen, uint64_t now_ms, uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    if (!find(t, ino))
        place(t, ino, parent, gen, now_ms, until_ms);
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_note_list(struct fc_dirlist *t, uint64_t ino,
                          const struct proto_readdir_rep *rep, uint64_t stamp,
                          uint64_t now_ms, uint64_t until_ms)
{
    struct proto_dirent_iter it;
    struct proto_dirent e;
    uint64_t parent = 0;
    char *name;

    if (!t || !rep->eof || rep->count > FC_DIRLIST_NAMES + 2)
        return;
    /* ".." gives the parent; a listing without it is not whole. */
    proto_dirent_iter_init(&it, rep);
    while (proto_dirent_next(&it, &e))
        if (e.name.len == 2 && memcmp(e.name.p, "..", 2) == 0)
            parent = e.attr.ino;
    name = malloc(PROTO_MAX_STR + 1);
    if (!parent || !name) {
        free(name);
        return;
    }
    pthread_mutex_lock(&t->lock);
    /* Not over a directory known already (it may know our changes the
     * reply missed), nor after any forget or change of ours since the
     * READDIR left: metad may have listed before one of them applied. */
    struct dl_dir *d = NULL;
    if (!find(t, ino) && stamp == t->gen + t->changes)
        d = place(t, ino, parent, t->gen, now_ms, until_ms);
    proto_dirent_iter_init(&it, rep);
    while (d && proto_dirent_next(&it, &e)) {
        memcpy(name, e.name.p, e.name.len);
        name[e.name.len] = '\0';
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
            put(t, d, name, e.attr.ino, e.attr.mode) < 0)
            d = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    free(name);
}

void fc_dirlist_add(struct fc_dirlist *t, uint64_t dir, const char *name,
                    uint64_t ino, uint32_t mode, uint64_t now_ms,
                    uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->changes++;
    struct dl_dir *d = find_live(t, dir, now_ms);
    if (d && put(t, d, name, ino, mode) < 0)
        d = NULL;
    renew(d, until_ms);
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_remove(struct fc_dirlist *t, uint64_t dir, const char *name,
                       uint64_t now_ms, uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->changes++;
    struct dl_dir *d = find_live(t, dir, now_ms);
    struct dl_ent *e = d ? lookup(d, name) : NULL;
    if (e)
        take_out(d, e);
    renew(d, until_ms);
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_rename(struct fc_dirlist *t, uint64_t parent, const char *name,
                       uint64_t newparent, const char *newname, uint64_t now_ms,
                       uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->changes++;
    struct dl_dir *from = find_live(t, parent, now_ms);
    struct dl_dir *to = find_live(t, newparent, now_ms);
    struct dl_ent *e = from ? lookup(from, name) : NULL;
    if (!e) {
        /* Whatever moved is not known: neither directory is whole, and a
         * directory known to hang from the old one may be what moved
         * (its ".." is the new one now). */
        forget_tree(t, parent);
        if (to)
            give_up(t, to);
    } else {
        uint64_t ino = e->ino;
        uint32_t mode = e->mode;
        take_out(from, e);
        if (to && put(t, to, newname, ino, mode) < 0)
            to = NULL;
        /* A directory moved: its ".." is the new parent. */
        struct dl_dir *moved = S_ISDIR(mode) ? find(t, ino) : NULL;
        if (moved)
            moved->parent = newparent;
        renew(from, until_ms);
        renew(to, until_ms);
    }
    pthread_mutex_unlock(&t->lock);
}

/* @dir is known whole at @now_ms and holds @name (@want) or not. */
static bool known(struct fc_dirlist *t, uint64_t dir, const char *name,
                  bool want, uint64_t now_ms, uint64_t *until_ms)
{
    if (!t || !dir)
        return false;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    bool yes = d && now_ms < d->until_ms && (lookup(d, name) != NULL) == want;
    if (yes && until_ms)
        *until_ms = d->until_ms;
    pthread_mutex_unlock(&t->lock);
    return yes;
}

bool fc_dirlist_absent(struct fc_dirlist *t, uint64_t dir, const char *name,
                       uint64_t now_ms, uint64_t *until_ms)
{
    return known(t, dir, name, false, now_ms, until_ms);
}

bool fc_dirlist_present(struct fc_dirlist *t, uint64_t dir, const char *name,
                        uint64_t now_ms)
{
    return known(t, dir, name, true, now_ms, NULL);
}

bool fc_dirlist_ino(struct fc_dirlist *t, uint64_t dir, const char *name,
                    uint64_t now_ms, uint64_t *ino)
{
    if (!t || !dir)
        return false;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    struct dl_ent *e = d && now_ms < d->until_ms ? lookup(d, name) : NULL;
    if (e)
        *ino = e->ino;
    pthread_mutex_unlock(&t->lock);
    return e != NULL;
}

bool fc_dirlist_whole(struct fc_dirlist *t, uint64_t dir, uint64_t now_ms)
{
    if (!t || !dir)
        return false;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    bool whole = d && now_ms < d->until_ms;
    pthread_mutex_unlock(&t->lock);
    return whole;
}

static void list_put(struct proto_wbuf *w, uint64_t cookie, const char *name,
                     uint64_t ino, uint32_t mode)
{
    struct proto_dirent e = {.cookie = cookie, .name = {name, strlen(name)}};

    e.attr.ino = ino;
    e.attr.mode = mode;
    proto_dirent_put(w, 0, &e);
}

int fc_dirlist_list(struct fc_dirlist *t, uint64_t dir, uint64_t now_ms,
                    struct proto_wbuf *raw, uint32_t *count)
{
    int rc = -ENOENT;

    if (!t || !dir)
        return rc;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    if (d && now_ms < d->until_ms) {
        uint64_t cookie = FC_DIRLIST_COOKIE0;
        list_put(raw, cookie++, ".", d->ino, S_IFDIR);
        list_put(raw, cookie++, "..", d->parent, S_IFDIR);
        for (size_t i = 0; i < d->cap; i++)
            if (live(&d->ents[i]))
                list_put(raw, cookie++, d->ents[i].name, d->ents[i].ino,
                         d->ents[i].mode);
        *count = (uint32_t)(cookie - FC_DIRLIST_COOKIE0);
        rc = raw->err ? raw->err : 0;
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void fc_dirlist_forget(struct fc_dirlist *t, uint64_t ino)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    struct dl_dir *d = find(t, ino);
    if (d)
        dir_drop(d);
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_forget_tree(struct fc_dirlist *t, uint64_t ino)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    forget_tree(t, ino);
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_clear(struct fc_dirlist *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    for (size_t i = 0; i < FC_DIRLIST_DIRS; i++)
        dir_drop(&t->dirs[i]);
    pthread_mutex_unlock(&t->lock);
}
