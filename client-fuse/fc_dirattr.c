/* fc_dirattr.c: directory attributes learnt from this mount's own
 * namespace changes.
 *
 * A create, unlink, mkdir, rmdir or rename through the mount changes the
 * directory's mtime and ctime (and nlink for a subdirectory); the kernel
 * then drops the directory's attributes, and default_permissions asks for
 * them (GETATTR) before the next change in it.  From protocol version 2
 * metad's reply to the change carries the directory's attributes after
 * it (docs/protocol.md §6.8-6.13) and grants the session a promise on the
 * directory, so the mount keeps them here and answers that GETATTR
 * itself, for as long as the kernel itself could have kept attributes
 * it was given (fc_ops.c's cache_timeout(): under a promise, or 1 s in
 * validate mode).  What forgets an entry first: a callback break of the
 * directory (another client changed it, fc_notify_break()), and any change
 * of the directory through this mount whose reply does not carry its new
 * attributes (SETATTR, the extended attributes, an RMDIR or RENAME, which
 * may remove a directory held here, clears the table).
 *
 * The forget count closes the race between a reply and a break: an answer
 * is noted only when nothing was forgotten since the request left, as in
 * fc_nocap.c.  A small direct-mapped table: a directory whose slot
 * another takes is only asked about again.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS 1024

struct slot {
    struct proto_attr attr; /* attr.ino 0: empty */
    uint64_t until_ms;
};

struct fc_dirattr {
    pthread_mutex_t lock;
    uint64_t gen; /* moves on every forget */
    struct slot slots[NSLOTS];
};

int fc_dirattr_new(struct fc_dirattr **out)
{
    struct fc_dirattr *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void fc_dirattr_free(struct fc_dirattr *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct slot *slot_of(struct fc_dirattr *t, uint64_t ino)
{
    return &t->slots[(ino * 0x9E3779B97F4A7C15ull) >> 54];
}

bool fc_dirattr_get(struct fc_dirattr *t, uint64_t ino, uint64_t now_ms,
                    struct proto_attr *out, uint64_t *until_ms)
{
    if (!t || !ino)
        return false;
    pthread_mutex_lock(&t->lock);
    const struct slot *s = slot_of(t, ino);
    bool yes = s->attr.ino == ino && now_ms < s->until_ms;
    if (yes) {
        *out = s->attr;
        *until_ms = s->until_ms;
    }
    pthread_mutex_unlock(&t->lock);
    return yes;
}

uint64_t fc_dirattr_gen(struct fc_dirattr *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->lock);
    return g;
}

void fc_dirattr_note(struct fc_dirattr *t, const struct proto_attr *a,
                     uint64_t gen, uint64_t until_ms)
{
    if (!t || !a->ino || (a->mode & 0170000) != 0040000)
        return;
    pthread_mutex_lock(&t->lock);
    /* A forget since the request left: the reply may predate a change
     * another client made. */
    if (gen == t->gen) {
        struct slot *s = slot_of(t, a->ino);
        /* Two changes of ours in flight at once: the later state wins. */
        if (s->attr.ino != a->ino || s->attr.version <= a->version)
            *s = (struct slot){*a, until_ms};
    }
    pthread_mutex_unlock(&t->lock);
}

void fc_dirattr_forget(struct fc_dirattr *t, uint64_t ino)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    struct slot *s = slot_of(t, ino);
    if (s->attr.ino == ino)
        memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&t->lock);
}

void fc_dirattr_clear(struct fc_dirattr *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    memset(t->slots, 0, sizeof(t->slots));
    pthread_mutex_unlock(&t->lock);
}
