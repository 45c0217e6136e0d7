/* chunk_usage.c: the chunks whose bytes on disk changed since metad last
 * heard of them (docs/protocol.md §9.5, CHUNK_USAGE).
 *
 * The store notes a chunk's new figure whenever a change moves the space
 * its files take (chunk_alloc_update(), on whatever thread made the
 * change); the link to metad (chunk_meta.c) takes the figures out once per
 * heartbeat and sends them, and puts back the ones metad did not take,
 * unless a newer one arrived meanwhile.  One figure per chunk is kept, the
 * newest, so a chunk written a thousand times between two heartbeats is
 * sent once.  Nothing here knows about metad or the wire beyond the entry
 * type.
 *
 * The set is an open-addressing table keyed by chunk id (never 0: 0 is a
 * hole), under a mutex; taken entries leave tombstones, cleared when the
 * table empties or grows.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_MIN_CAP 64u
#define TOMBSTONE UINT64_MAX

struct chunk_usage {
    pthread_mutex_t lock;
    struct proto_usage_entry *v; /* chunk_id 0: empty */
    size_t cap;                  /* a power of two */
    size_t n;                    /* live entries */
    size_t used;                 /* live entries and tombstones */
};

int chunk_usage_new(struct chunk_usage **out)
{
    struct chunk_usage *u = calloc(1, sizeof(*u));

    if (!u)
        return -ENOMEM;
    pthread_mutex_init(&u->lock, NULL);
    *out = u;
    return 0;
}

void chunk_usage_free(struct chunk_usage *u)
{
    if (!u)
        return;
    pthread_mutex_destroy(&u->lock);
    free(u->v);
    free(u);
}

static size_t slot_of(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);
}

/* The slot holding @id, or the first free one its probe reaches (a
 * tombstone before an empty slot).  The table is never full (put()). */
static struct proto_usage_entry *find(struct proto_usage_entry *v, size_t cap,
                                      uint64_t id)
{
    struct proto_usage_entry *free_slot = NULL;

    for (size_t i = slot_of(id, cap);; i = (i + 1) & (cap - 1)) {
        if (v[i].chunk_id == id)
            return &v[i];
        if (v[i].chunk_id == TOMBSTONE && !free_slot)
            free_slot = &v[i];
        if (v[i].chunk_id == 0)
            return free_slot ? free_slot : &v[i];
    }
}

/* Rebuild the table at a capacity that keeps it at most half used. */
static int rehash(struct chunk_usage *u)
{
    size_t cap = USAGE_MIN_CAP;
    struct proto_usage_entry *v;

    while (cap < 4 * (u->n + 1))
        cap *= 2;
    v = calloc(cap, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < u->cap; i++)
        if (u->v[i].chunk_id && u->v[i].chunk_id != TOMBSTONE)
            *find(v, cap, u->v[i].chunk_id) = u->v[i];
    free(u->v);
    u->v = v;
    u->cap = cap;
    u->used = u->n;
    return 0;
}

int chunk_usage_put(struct chunk_usage *u, uint64_t id, uint64_t bytes,
                    bool keep)
{
    struct proto_usage_entry *e;
    int rc = 0;

    if (id == 0 || id == TOMBSTONE)
        return -EINVAL;
    pthread_mutex_lock(&u->lock);
    if (2 * (u->used + 1) > u->cap)
        rc = rehash(u);
    if (rc == 0) {
        e = find(u->v, u->cap, id);
        if (e->chunk_id != id) {
            if (e->chunk_id == 0)
                u->used++;
            e->chunk_id = id;
            e->bytes = bytes;
            u->n++;
        } else if (!keep) {
            e->bytes = bytes;
        }
    }
    pthread_mutex_unlock(&u->lock);
    return rc;
}

size_t chunk_usage_take(struct chunk_usage *u, struct proto_usage_entry *out,
                        size_t max)
{
    size_t k = 0;

    pthread_mutex_lock(&u->lock);
    for (size_t i = 0; i < u->cap && k < max; i++) {
        if (!u->v[i].chunk_id || u->v[i].chunk_id == TOMBSTONE)
            continue;
        out[k++] = u->v[i];
        u->v[i].chunk_id = TOMBSTONE;
        u->n--;
    }
    if (u->n == 0 && u->cap) {
        memset(u->v, 0, u->cap * sizeof(*u->v));
        u->used = 0;
    }
    pthread_mutex_unlock(&u->lock);
    return k;
}

size_t chunk_usage_count(struct chunk_usage *u)
{
    size_t n;

    pthread_mutex_lock(&u->lock);
    n = u->n;
    pthread_mutex_unlock(&u->lock);
    return n;
}
