/* fc_loc.c: the client's cache of chunk locations, keyed by (inode, chunk
 * index).
 *
 * metad answers CHUNK_LOCATE with many chunks at once; fc_meta.c puts them
 * here and fc_data.c reads from here before each chunk request, so reads
 * do not pass metad (docs/architecture.md, "Reading").  Entries expire:
 * holes after FC_LOC_HOLE_TTL_MS (another client may fill them), chunks
 * after FC_LOC_TTL_MS.  Callers invalidate an entry when a chunk server
 * refuses it (old version, checksum, down server) and refetch.
 *
 * A fixed array of buckets with chained entries, under one mutex.  When
 * the cache holds @max entries an insert first empties it: crude, but a
 * miss only costs one CHUNK_LOCATE and the bound is what matters.  Time is
 * passed in by the caller so tests control it.
 */
#include "fc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

struct entry {
    struct entry *next;
    uint64_t ino;
    uint64_t expires_ms;
    struct fc_chunk chunk;
};

struct fc_loc_cache {
    pthread_mutex_t lock;
    size_t count, max;
    struct entry *buckets[NBUCKETS];
};

static size_t bucket_of(uint64_t ino, uint64_t index)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull ^ index * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h >> 32) % NBUCKETS;
}

/* Caller owns the result: fc_loc_cache_free(). */
struct fc_loc_cache *fc_loc_cache_new(size_t max)
{
    struct fc_loc_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->max = max ? max : 1;
    return c;
}

static void clear_locked(struct fc_loc_cache *c)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry *e = c->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void fc_loc_cache_free(struct fc_loc_cache *c)
{
    if (!c)
        return;
    clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct entry **find_locked(struct fc_loc_cache *c, uint64_t ino,
                                  uint64_t index)
{
    struct entry **pp = &c->buckets[bucket_of(ino, index)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->ino == ino && (*pp)->chunk.index == index)
            return pp;
    return pp;
}

/* @chunk is borrowed and copied. */
int fc_loc_put(struct fc_loc_cache *c, uint64_t ino,
               const struct fc_chunk *chunk, uint64_t now_ms)
{
    uint64_t ttl = chunk->chunk_id ? FC_LOC_TTL_MS : FC_LOC_HOLE_TTL_MS;

    pthread_mutex_lock(&c->lock);
    struct entry **pp = find_locked(c, ino, chunk->index);
    struct entry *e = *pp;
    if (!e) {
        if (c->count >= c->max) {
            clear_locked(c);
            pp = find_locked(c, ino, chunk->index);
        }
        e = malloc(sizeof(*e));
        if (!e) {
            pthread_mutex_unlock(&c->lock);
            return -ENOMEM;
        }
        e->next = NULL;
        e->ino = ino;
        *pp = e;
        c->count++;
    }
    e->chunk = *chunk;
    e->expires_ms = now_ms + ttl;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int fc_loc_get(struct fc_loc_cache *c, uint64_t ino, uint64_t index,
               uint64_t now_ms, struct fc_chunk *out)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&c->lock);
    struct entry **pp = find_locked(c, ino, index);
    struct entry *e = *pp;
    if (e && now_ms < e->expires_ms) {
        *out = e->chunk;
        rc = 0;
    } else if (e) {
        *pp = e->next;
        free(e);
        c->count--;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void fc_loc_invalidate(struct fc_loc_cache *c, uint64_t ino, uint64_t index)
{
    pthread_mutex_lock(&c->lock);
    struct entry **pp = find_locked(c, ino, index);
    struct entry *e = *pp;
    if (e) {
        *pp = e->next;
        free(e);
        c->count--;
    }
    pthread_mutex_unlock(&c->lock);
}

void fc_loc_invalidate_from(struct fc_loc_cache *c, uint64_t ino,
                            uint64_t first)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry **pp = &c->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->ino == ino && e->chunk.index >= first) {
                *pp = e->next;
                free(e);
                c->count--;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
}

size_t fc_loc_count(struct fc_loc_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* @loc is borrowed; its strings are copied into @out. */
int fc_chunk_from_loc(const struct proto_chunk_loc *loc, struct fc_chunk *out)
{
    if (loc->nreplicas > PROTO_MAX_REPLICAS)
        return -EPROTO;
    if (loc->chunk_id == 0 && loc->nreplicas != 0)
        return -EPROTO;
    memset(out, 0, sizeof(*out));
    out->index = loc->index;
    out->chunk_id = loc->chunk_id;
    out->version = loc->version;
    out->nreplicas = loc->nreplicas;
    for (uint32_t i = 0; i < loc->nreplicas; i++) {
        const struct proto_str *a = &loc->replicas[i].addr;
        if (a->len == 0 || a->len >= FC_ADDR_MAX)
            return -EPROTO;
        out->server_id[i] = loc->replicas[i].server_id;
        memcpy(out->addr[i], a->p, a->len);
        out->addr[i][a->len] = '\0';
    }
    return 0;
}
