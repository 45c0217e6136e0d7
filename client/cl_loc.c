/* cl_loc.c: the client's cache of chunk locations, keyed by (inode, chunk
 * index).
 *
 * metad answers CHUNK_LOCATE with many chunks at once; cl_meta.c puts them
 * here and cl_chunk.c reads from here before each chunk request, so reads
 * do not pass metad (docs/architecture.md, "Reading").  Entries expire:
 * holes after CL_LOC_HOLE_TTL_MS (another client may fill them), chunks
 * after CL_LOC_TTL_MS.  Callers invalidate an entry when a chunk server
 * refuses it (old version, checksum, down server) and refetch, or cut
 * its life to CL_LOC_SUSPECT_TTL_MS when one replica failed and another
 * answered (cl_loc_suspect(): metad may have dropped it); a server
 * metad announces as not up leaves every entry at once
 * (cl_loc_drop_server(), docs/protocol.md §11.7).
 *
 * A CHUNK_LOCATE reply may be older than what was put since it was asked:
 * a write-back's CHUNK_WRITE_BEGIN gave the slot its first chunk while the
 * locate was out, and the reply still says hole.  Put over the new chunk,
 * that hole would make reads of data just written back read zeros once it
 * left the delayed writes.  So a reply is put with cl_loc_put_reply() and
 * the cache's sequence number from before it was asked (cl_loc_seq()): it
 * does not replace an entry put since, and its holes are not kept when
 * an entry of the same bucket was removed since (the removed entry may
 * have been the newer chunk; by bucket, so that removals elsewhere do not
 * make a reply useless).
 *
 * A fixed array of buckets with chained entries, under one mutex.  When
 * the cache holds @max entries an insert first empties it: crude, but a
 * miss only costs one CHUNK_LOCATE and the bound is what matters.  Time is
 * passed in by the caller so tests control it.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

struct entry {
    struct entry *next;
    uint64_t ino;
    uint64_t expires_ms;
    uint64_t seq; /* @seq of the cache when put */
    struct cl_chunk chunk;
};

struct cl_loc_cache {
    pthread_mutex_t lock;
    size_t count, max;
    uint64_t seq;               /* moves on every put and every removal */
    uint64_t removed[NBUCKETS]; /* @seq at the last removal, by bucket */
    uint64_t cleared;           /* @seq when it was last emptied whole */
    struct entry *buckets[NBUCKETS];
};

static size_t bucket_of(uint64_t ino, uint64_t index)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull ^ index * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h >> 32) % NBUCKETS;
}

/* Caller owns the result: cl_loc_cache_free(). */
struct cl_loc_cache *cl_loc_cache_new(size_t max)
{
    struct cl_loc_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->max = max ? max : 1;
    return c;
}

static void clear_locked(struct cl_loc_cache *c)
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
    c->cleared = ++c->seq;
}

void cl_loc_cache_free(struct cl_loc_cache *c)
{
    if (!c)
        return;
    clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static struct entry **find_locked(struct cl_loc_cache *c, uint64_t ino,
                                  uint64_t index)
{
    struct entry **pp = &c->buckets[bucket_of(ino, index)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->ino == ino && (*pp)->chunk.index == index)
            return pp;
    return pp;
}

uint64_t cl_loc_seq(struct cl_loc_cache *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t seq = c->seq;
    pthread_mutex_unlock(&c->lock);
    return seq;
}

/* Put @chunk (borrowed and copied) unless @since (a reply's cl_loc_seq(),
 * UINT64_MAX: none) says something newer is known. */
static int put(struct cl_loc_cache *c, uint64_t ino,
               const struct cl_chunk *chunk, uint64_t now_ms, uint64_t since)
{
    uint64_t ttl = chunk->chunk_id ? CL_LOC_TTL_MS : CL_LOC_HOLE_TTL_MS;

    pthread_mutex_lock(&c->lock);
    struct entry **pp = find_locked(c, ino, chunk->index);
    struct entry *e = *pp;
    size_t b = bucket_of(ino, chunk->index);
    bool removed = c->removed[b] > since || c->cleared > since;
    if (since != UINT64_MAX &&
        ((e && e->seq > since) || (!chunk->chunk_id && removed))) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
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
    e->seq = ++c->seq;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int cl_loc_put(struct cl_loc_cache *c, uint64_t ino,
               const struct cl_chunk *chunk, uint64_t now_ms)
{
    return put(c, ino, chunk, now_ms, UINT64_MAX);
}

int cl_loc_put_reply(struct cl_loc_cache *c, uint64_t ino,
                     const struct cl_chunk *chunk, uint64_t now_ms,
                     uint64_t since)
{
    return put(c, ino, chunk, now_ms, since);
}

int cl_loc_get(struct cl_loc_cache *c, uint64_t ino, uint64_t index,
               uint64_t now_ms, struct cl_chunk *out)
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

void cl_loc_invalidate(struct cl_loc_cache *c, uint64_t ino, uint64_t index)
{
    pthread_mutex_lock(&c->lock);
    struct entry **pp = find_locked(c, ino, index);
    struct entry *e = *pp;
    if (e) {
        *pp = e->next;
        free(e);
        c->count--;
        c->removed[bucket_of(ino, index)] = ++c->seq;
    }
    pthread_mutex_unlock(&c->lock);
}

void cl_loc_suspect(struct cl_loc_cache *c, uint64_t ino, uint64_t index,
                    uint64_t now_ms)
{
    pthread_mutex_lock(&c->lock);
    struct entry *e = *find_locked(c, ino, index);
    if (e && e->expires_ms > now_ms + CL_LOC_SUSPECT_TTL_MS)
        e->expires_ms = now_ms + CL_LOC_SUSPECT_TTL_MS;
    pthread_mutex_unlock(&c->lock);
}

void cl_loc_invalidate_from(struct cl_loc_cache *c, uint64_t ino,
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
                c->removed[i] = ++c->seq;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
}

/* Remove replica @i of @chunk, keeping the others in chain order. */
void cl_loc_invalidate_all(struct cl_loc_cache *c)
{
    pthread_mutex_lock(&c->lock);
    clear_locked(c);
    pthread_mutex_unlock(&c->lock);
}

static void chunk_remove_replica(struct cl_chunk *chunk, uint32_t i)
{
    for (uint32_t k = i + 1; k < chunk->nreplicas; k++) {
        chunk->server_id[k - 1] = chunk->server_id[k];
        memcpy(chunk->addr[k - 1], chunk->addr[k], CL_ADDR_MAX);
    }
    chunk->nreplicas--;
}

size_t cl_loc_drop_server(struct cl_loc_cache *c, uint32_t server_id)
{
    size_t changed = 0;

    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry **pp = &c->buckets[i];
        while (*pp) {
            struct entry *e = *pp;
            bool hit = false;
            for (uint32_t r = 0; r < e->chunk.nreplicas;) {
                if (e->chunk.server_id[r] == server_id) {
                    chunk_remove_replica(&e->chunk, r);
                    hit = true;
                } else {
                    r++;
                }
            }
            changed += hit;
            if (hit && e->chunk.nreplicas == 0) {
                *pp = e->next;
                free(e);
                c->count--;
                c->removed[i] = ++c->seq;
            } else {
                pp = &e->next;
            }
        }
    }
    pthread_mutex_unlock(&c->lock);
    return changed;
}

bool cl_chunk_has_server(const struct cl_chunk *chunk, uint32_t server_id)
{
    for (uint32_t r = 0; r < chunk->nreplicas; r++)
        if (chunk->server_id[r] == server_id)
            return true;
    return false;
}

size_t cl_loc_count(struct cl_loc_cache *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* @loc is borrowed; its strings are copied into @out. */
int cl_chunk_from_loc(const struct proto_chunk_loc *loc, struct cl_chunk *out)
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
        if (a->len == 0 || a->len >= CL_ADDR_MAX)
            return -EPROTO;
        out->server_id[i] = loc->replicas[i].server_id;
        memcpy(out->addr[i], a->p, a->len);
        out->addr[i][a->len] = '\0';
    }
    return 0;
}
