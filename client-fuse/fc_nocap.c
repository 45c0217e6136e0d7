/* fc_nocap.c: the inodes known to carry no security.capability.
 *
 * Linux asks for security.capability before every write(2) to a file on
 * a FUSE mount and before every chown(2) (the kernel's file_remove_privs()
 * and notify_change(): a capability must be dropped like setuid), and
 * FUSE never marks such an inode as checked the way a local file system
 * does (S_NOSEC).  Each ask would be a metad round trip that nearly always
 * answers ENODATA: on a write that is otherwise local (a delayed write),
 * it was about half the cost.  So the mount remembers, per inode, that
 * metad said the attribute is absent, for as long as the kernel may keep
 * the inode's attributes (fc_ops.c's cache_timeout()), and answers the
 * next asks itself.  What forgets it first: a setxattr or removexattr
 * through this mount, and a callback break of the inode (another client
 * changed it, fc_notify_break()).  So a capability set elsewhere is seen
 * no later than a mode change would be.
 *
 * A small direct-mapped table: an inode whose slot another takes is only
 * asked about again.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define NSLOTS 4096

struct slot {
    uint64_t ino; /* 0: empty */
    uint64_t until_ms;
};

struct fc_nocap {
    pthread_mutex_t lock;
    uint64_t gen; /* moves on every forget */
    struct slot slots[NSLOTS];
};

int fc_nocap_new(struct fc_nocap **out)
{
    struct fc_nocap *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void fc_nocap_free(struct fc_nocap *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct slot *slot_of(struct fc_nocap *t, uint64_t ino)
{
    return &t->slots[(ino * 0x9E3779B97F4A7C15ull) >> 52];
}

bool fc_nocap_known(struct fc_nocap *t, uint64_t ino, uint64_t now_ms)
{
    if (!t)
        return false;
    pthread_mutex_lock(&t->lock);
    const struct slot *s = slot_of(t, ino);
    bool yes = s->ino == ino && now_ms < s->until_ms;
    pthread_mutex_unlock(&t->lock);
    return yes;
}

uint64_t fc_nocap_gen(struct fc_nocap *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->lock);
    return g;
}

void fc_nocap_note(struct fc_nocap *t, uint64_t ino, uint64_t gen,
                   uint64_t until_ms)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    /* A forget since the ask began: the answer may predate the change. */
    if (gen == t->gen)
        *slot_of(t, ino) = (struct slot){ino, until_ms};
    pthread_mutex_unlock(&t->lock);
}

void fc_nocap_forget(struct fc_nocap *t, uint64_t ino)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    struct slot *s = slot_of(t, ino);
    if (s->ino == ino)
        *s = (struct slot){0, 0};
    pthread_mutex_unlock(&t->lock);
}
