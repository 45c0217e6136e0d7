/* fc_inotab.c: a small table of facts about inodes that the mount answers
 * from for a while instead of asking metad (fc_nocap.c, fc_dirattr.c).
 *
 * Direct-mapped by inode number: an inode whose slot another takes is only
 * asked about again.  Each entry holds until its own expiry.  The forget
 * count closes the race between an answer in flight and a forget (a
 * callback break, a change through this mount): the asker takes the count
 * before it asks, and the answer is kept only when nothing was forgotten
 * since.  Thread-safe: the FUSE request threads and the break thread use
 * one table.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct slot {
    uint64_t ino; /* 0: empty */
    uint64_t until_ms;
    /* value_size bytes follow, at a multiple of 8 */
};

struct fc_inotab {
    pthread_mutex_t lock;
    uint64_t gen; /* moves on every forget */
    unsigned bits;
    size_t value_size, stride;
    unsigned char *slots; /* 1 << bits slots of stride bytes */
};

int fc_inotab_new(unsigned bits, size_t value_size, struct fc_inotab **out)
{
    struct fc_inotab *t = calloc(1, sizeof(*t));

    if (!t)
        return -ENOMEM;
    t->bits = bits;
    t->value_size = value_size;
    t->stride = sizeof(struct slot) + (value_size + 7) / 8 * 8;
    t->slots = calloc((size_t)1 << bits, t->stride);
    if (!t->slots) {
        free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&t->lock, NULL);
    *out = t;
    return 0;
}

void fc_inotab_free(struct fc_inotab *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static struct slot *slot_of(struct fc_inotab *t, uint64_t ino)
{
    size_t i = (size_t)((ino * 0x9E3779B97F4A7C15ull) >> (64 - t->bits));

    return (struct slot *)(t->slots + i * t->stride);
}

static void *value_of(struct slot *s)
{
    return s + 1;
}

bool fc_inotab_get(struct fc_inotab *t, uint64_t ino, uint64_t now_ms,
                   void *value, uint64_t *until_ms)
{
    if (!t || !ino)
        return false;
    pthread_mutex_lock(&t->lock);
    struct slot *s = slot_of(t, ino);
    bool yes = s->ino == ino && now_ms < s->until_ms;
    if (yes && value)
        memcpy(value, value_of(s), t->value_size);
    if (yes && until_ms)
        *until_ms = s->until_ms;
    pthread_mutex_unlock(&t->lock);
    return yes;
}

uint64_t fc_inotab_gen(struct fc_inotab *t)
{
    if (!t)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t g = t->gen;
    pthread_mutex_unlock(&t->lock);
    return g;
}

void fc_inotab_note(struct fc_inotab *t, uint64_t ino, uint64_t gen,
                    uint64_t until_ms, const void *value,
                    bool (*held_newer)(const void *held, const void *offered))
{
    if (!t || !ino)
        return;
    pthread_mutex_lock(&t->lock);
    struct slot *s = slot_of(t, ino);
    /* A forget since the ask began: the answer may predate the change. */
    if (gen == t->gen &&
        (s->ino != ino || !held_newer || !held_newer(value_of(s), value))) {
        s->ino = ino;
        s->until_ms = until_ms;
        if (t->value_size)
            memcpy(value_of(s), value, t->value_size);
    }
    pthread_mutex_unlock(&t->lock);
}

void fc_inotab_forget(struct fc_inotab *t, uint64_t ino)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    struct slot *s = slot_of(t, ino);
    if (s->ino == ino)
        memset(s, 0, t->stride);
    pthread_mutex_unlock(&t->lock);
}

void fc_inotab_clear(struct fc_inotab *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->gen++;
    memset(t->slots, 0, ((size_t)1 << t->bits) * t->stride);
    pthread_mutex_unlock(&t->lock);
}
