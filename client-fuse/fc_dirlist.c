/* fc_dirlist.c: the whole contents of directories this mount made, so
 * that a lookup of a name they do not hold is answered here.
 *
 * A create first looks its name up (the kernel's LOOKUP, before CREATE or
 * MKNOD), and in a directory of new names that lookup always finds
 * nothing: a metad round trip per create that only says so.  Under
 * callbacks the mount can know better.  A directory it has just made is
 * empty, and the MKDIR's reply granted the session a promise on it
 * (docs/protocol.md §14): any name another session adds or removes there
 * breaks that promise first.  Every name this mount adds or removes
 * there itself it learns from its own replies.  So, from the MKDIR until
 * a break of the directory, the mount knows all its names, and a name
 * not among them does not exist: the lookup is answered as a negative
 * entry without asking metad.
 *
 * How long it holds: as the directory's attributes in fc_dirattr.c do, for
 * as long as the kernel could keep what one call told it (fc_ops.c's
 * cache_timeout(), inside the promise), renewed by each change of ours in
 * the directory whose reply carried the directory's attributes (and so
 * renewed the promise).  What forgets a directory first: a callback break
 * of it (fc_notify_break()), a rename through this mount involving it
 * (fc_dirlist_forget()), a new session (every promise lost: the owner
 * clears the table when cl_cb_resets() moves), and a directory grown
 * past FC_DIRLIST_NAMES names.  At most FC_DIRLIST_DIRS directories are
 * known at once; a new one takes the place of the one that expires
 * first.  The forget count closes the race between a MKDIR's reply and a
 * break, as in fc_inotab.c; a name added or removed is only ever applied
 * to a directory still known, and the kernel holds the directory's lock
 * across a create, unlink or lookup of the same name, so our own change
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

struct dl_dir {
    uint64_t ino; /* 0: free */
    uint64_t until_ms;
    size_t n, cap; /* names held, slots (a power of two, or 0) */
    char **names;  /* open addressing; NULL free, TOMB removed */
};

struct fc_dirlist {
    pthread_mutex_t lock;
    uint64_t gen; /* moves on every forget */
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

static void dir_drop(struct dl_dir *d)
{
    for (size_t i = 0; i < d->cap; i++)
        if (d->names[i] != TOMB)
            free(d->names[i]);
    free(d->names);
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
static char **slot_of(struct dl_dir *d, const char *name)
{
    char **tomb_at = NULL;

    if (!d->cap)
        return NULL;
    for (size_t i = name_hash(name) & (d->cap - 1), k = 0; k < d->cap;
         i = (i + 1) & (d->cap - 1), k++) {
        char *s = d->names[i];
        if (!s)
            return tomb_at ? tomb_at : &d->names[i];
        if (s == TOMB) {
            if (!tomb_at)
                tomb_at = &d->names[i];
        } else if (strcmp(s, name) == 0) {
            return &d->names[i];
        }
    }
    return tomb_at;
}

static bool holds(struct dl_dir *d, const char *name)
{
    char **s = slot_of(d, name);

    return s && *s && *s != TOMB;
}

/* Double @d's slots (from none: 16).  0 or -ENOMEM. */
static int grow(struct dl_dir *d)
{
    struct dl_dir old = *d;
    size_t cap = d->cap ? d->cap * 2 : 16;

    d->names = calloc(cap, sizeof(*d->names));
    if (!d->names) {
        d->names = old.names;
        return -ENOMEM;
    }
    d->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.names[i] && old.names[i] != TOMB)
            *slot_of(d, old.names[i]) = old.names[i];
    free(old.names);
    return 0;
}

static struct dl_dir *find(struct fc_dirlist *t, uint64_t ino)
{
    for (size_t i = 0; i < FC_DIRLIST_DIRS; i++)
        if (t->dirs[i].ino == ino)
            return &t->dirs[i];
    return NULL;
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

void fc_dirlist_note_empty(struct fc_dirlist *t, uint64_t ino, uint64_t gen,
                           uint64_t now_ms, uint64_t until_ms)
{
    if (!t || !ino || until_ms <= now_ms)
        return;
    pthread_mutex_lock(&t->lock);
    if (gen == t->gen && !find(t, ino)) {
        struct dl_dir *d = NULL;
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
        dir_drop(d);
        d->ino = ino;
        d->until_ms = until_ms;
    }
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_add(struct fc_dirlist *t, uint64_t dir, const char *name,
                    uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    if (d && !holds(d, name)) {
        char *copy = strdup(name);
        bool full = d->n >= FC_DIRLIST_NAMES;
        if (!full && copy && (d->n + 1) * 4 > d->cap * 3 && grow(d) < 0)
            full = true;
        if (full || !copy) {
            free(copy);
            dir_drop(d); /* not known whole any more */
            t->gen++;
        } else {
            *slot_of(d, name) = copy;
            d->n++;
        }
    }
    if (d && d->ino && until_ms > d->until_ms)
        d->until_ms = until_ms;
    pthread_mutex_unlock(&t->lock);
}

void fc_dirlist_remove(struct fc_dirlist *t, uint64_t dir, const char *name,
                       uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    struct dl_dir *d = find(t, dir);
    char **s = d ? slot_of(d, name) : NULL;
    if (s && *s && *s != TOMB) {
        free(*s);
        *s = TOMB;
        d->n--;
    }
    if (d && until_ms > d->until_ms)
        d->until_ms = until_ms;
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
    bool yes = d && now_ms < d->until_ms && holds(d, name) == want;
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
