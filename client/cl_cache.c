/* cl_cache.c: the store of delayed writes (docs/caching.md, "Policies").
 *
 * Under the writeback and writeonclose policies a write does not go to
 * the storage servers: its bytes join the inode's dirty extents, a sorted
 * list of disjoint ranges.  A write that overlaps or touches an extent
 * merges with it, so data overwritten before it is written back is sent
 * once, and sequential small writes become one large write.  Reads lay the
 * extents over what the servers return (cl_cache_overlay), so a client
 * always reads its own writes.
 *
 * This file only keeps bytes and counts them; it never writes anything to
 * a server.  Writing back is the file layer's (cl_file_writeback()): it
 * takes the extents onto the inode's "flushing" list (cl_cache_take()),
 * which reads still see, writes them, and gives them back to be freed
 * (cl_cache_release()).  When to write back is the flusher's
 * (cl_flush.c), which sleeps in cl_cache_wait() until a tick passes or a
 * writer finds the client over dirty_max.  Writers wait here while the
 * client holds dirty_max or more, so memory stays bounded.
 *
 * Writing back streams: a write that takes the client past half of
 * dirty_max wakes the flusher; the file layer writes the flushing list a
 * batch of extents at a time (cl_cache_batch() bytes) and gives each
 * batch back as soon as it is written (cl_cache_release()'s @count), so
 * writers keep filling the other half meanwhile.  For that an extent
 * grows by appending only up to EXT_MAX bytes; the next sequential write
 * starts a new extent beside it.
 *
 * Lock order: an inode's sync_lock, then the cache lock or the inode lock
 * (never both at once).
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* The most an extent grows to by appending (overlapping writes may merge
 * beyond it): a batch of writing back holds whole extents.  Extents that
 * grow by appending past half of it get a buffer of exactly EXT_MAX bytes
 * at once, and such buffers, 2 MiB-aligned and offered to the kernel as
 * transparent huge pages, are kept for reuse (enough for all of
 * dirty_max, at most POOL_MAX, freed after a flusher tick that passed with
 * no delayed writes held): a sequential stream then neither copies an
 * extent as it grows nor faults in fresh pages 4 KiB at a time, and small
 * writes side by side still take no more than twice their bytes. */
#define EXT_MAX (4u << 20)
#define POOL_MAX 16

struct cl_cache {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the flusher waits here (cl_cache_wait) */
    pthread_cond_t room; /* writers over dirty_max wait here */
    uint64_t dirty;      /* bytes of delayed writes, every inode */
    uint64_t dirty_max;
    bool urgent, stop;
    /* EXT_MAX buffers for reuse.  pool_lock is a leaf: taken under an
     * inode's lock, nothing is taken under it. */
    pthread_mutex_t pool_lock;
    uint8_t *pool[POOL_MAX];
    size_t npool, pool_max;
};

/* ---- Buffers ----------------------------------------------------------- */

static uint8_t *buf_get_big(struct cl_cache *k)
{
    uint8_t *b = NULL;
    pthread_mutex_lock(&k->pool_lock);
    if (k->npool > 0)
        b = k->pool[--k->npool];
    pthread_mutex_unlock(&k->pool_lock);
    if (!b && posix_memalign((void **)&b, 2u << 20, EXT_MAX) == 0)
        madvise(b, EXT_MAX, MADV_HUGEPAGE); /* a hint: may fail */
    return b;
}

/* Free an extent's buffer, keeping it for reuse when it is a big one. */
static void buf_put(struct cl_cache *k, uint8_t *b, size_t cap)
{
    if (b && cap == EXT_MAX) {
        pthread_mutex_lock(&k->pool_lock);
        if (k->npool < k->pool_max) {
            k->pool[k->npool++] = b;
            b = NULL;
        }
        pthread_mutex_unlock(&k->pool_lock);
    }
    free(b);
}

static void pool_drain(struct cl_cache *k)
{
    uint8_t *v[POOL_MAX];
    pthread_mutex_lock(&k->pool_lock);
    size_t nv = k->npool;
    memcpy(v, k->pool, nv * sizeof(*v));
    k->npool = 0;
    pthread_mutex_unlock(&k->pool_lock);
    for (size_t i = 0; i < nv; i++)
        free(v[i]);
}

/* ---- Extents (under n->lock) ------------------------------------------- */

/* Room for @len bytes in @e.  An extent that starts @big, or grows (it
 * has bytes already) to half of EXT_MAX or more, gets a big buffer when
 * it fits one: never more than twice its bytes, as doubling would give. */
static int ext_reserve(struct cl_cache *k, struct cl_extent *e, size_t len,
                       bool big)
{
    if (len <= e->cap)
        return 0;
    if (len <= EXT_MAX && (big || (e->cap > 0 && len >= EXT_MAX / 2))) {
        uint8_t *d = buf_get_big(k);
        if (!d)
            return -ENOMEM;
        if (e->len)
            memcpy(d, e->data, e->len);
        buf_put(k, e->data, e->cap);
        e->data = d;
        e->cap = EXT_MAX;
        return 0;
    }
    size_t cap = e->cap ? e->cap : 4096;
    while (cap < len)
        cap *= 2;
    uint8_t *d = realloc(e->data, cap);
    if (!d)
        return -ENOMEM;
    e->data = d;
    e->cap = cap;
    return 0;
}

/* The first of the sorted, disjoint extents @v[0..@nv) that ends at or
 * after @off (@nv when none does): binary search. */
static size_t first_ending_from(const struct cl_extent *v, size_t nv,
                                uint64_t off)
{
    size_t lo = 0, hi = nv;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].off + v[mid].len < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Insert [@off, @off + @len) of @buf as a new extent at index @at of @n's
 * extents.  Returns @len, or -ENOMEM with nothing changed. */
static int64_t ext_add(struct cl_cache *k, struct cl_inode *n, size_t at,
                       uint64_t off, const uint8_t *buf, size_t len, bool big)
{
    if (n->next == n->cext) {
        size_t cap = n->cext ? n->cext * 2 : 8;
        struct cl_extent *v = realloc(n->ext, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        n->ext = v;
        n->cext = cap;
    }
    struct cl_extent e = {.off = off};
    if (ext_reserve(k, &e, len, big) < 0)
        return -ENOMEM;
    memcpy(e.data, buf, len);
    e.len = len;
    memmove(n->ext + at + 1, n->ext + at, (n->next - at) * sizeof(e));
    n->ext[at] = e;
    n->next++;
    n->dirty_bytes += len;
    return (int64_t)len;
}

/* Merge [@off, @off + @len) of @buf into @n's extents.  Returns the change
 * in dirty bytes, or -ENOMEM with nothing changed. */
static int64_t ext_insert(struct cl_cache *k, struct cl_inode *n, uint64_t off,
                          const uint8_t *buf, size_t len)
{
    uint64_t end = off + len;
    size_t i, j;

    /* i: first extent ending at or after @off; j: past the last one
     * starting at or before @end.  [i, j) touch the new range. */
    i = first_ending_from(n->ext, n->next, off);
    j = i;
    while (j < n->next && n->ext[j].off <= end)
        j++;

    if (i == j)
        return ext_add(k, n, i, off, buf, len, false);

    /* Touching without overlapping, and too long together: side by side,
     * in a big buffer (a sequential stream goes on). */
    bool left = n->ext[i].off + n->ext[i].len == off;
    bool right = n->ext[j - 1].off == end;
    if (j - i == (size_t)left + (size_t)right) {
        uint64_t joined = len;
        for (size_t x = i; x < j; x++)
            joined += n->ext[x].len;
        if (joined > EXT_MAX)
            return ext_add(k, n, left ? i + 1 : i, off, buf, len, true);
    }

    uint64_t start = off < n->ext[i].off ? off : n->ext[i].off;
    uint64_t last = n->ext[j - 1].off + n->ext[j - 1].len;
    uint64_t stop = end > last ? end : last;
    uint64_t before = 0;
    for (size_t x = i; x < j; x++)
        before += n->ext[x].len;

    /* Grow the first extent in place (the common, sequential case). */
    struct cl_extent *e = &n->ext[i];
    if (start < e->off) {
        struct cl_extent fresh = {.off = start};
        if (ext_reserve(k, &fresh, (size_t)(stop - start), false) < 0)
            return -ENOMEM;
        memcpy(fresh.data + (e->off - start), e->data, e->len);
        fresh.len = (size_t)(e->off + e->len - start);
        buf_put(k, e->data, e->cap);
        *e = fresh;
    } else if (ext_reserve(k, e, (size_t)(stop - start), false) < 0) {
        return -ENOMEM;
    }
    for (size_t x = i + 1; x < j; x++) {
        struct cl_extent *o = &n->ext[x];
        memcpy(e->data + (o->off - start), o->data, o->len);
        buf_put(k, o->data, o->cap);
    }
    memcpy(e->data + (off - start), buf, len);
    e->len = (size_t)(stop - start);
    memmove(n->ext + i + 1, n->ext + j, (n->next - j) * sizeof(*e));
    n->next -= j - i - 1;
    n->dirty_bytes = n->dirty_bytes - before + e->len;
    return (int64_t)e->len - (int64_t)before;
}

static void overlay_list(const struct cl_extent *v, size_t nv, uint64_t off,
                         size_t len, uint8_t *buf)
{
    uint64_t end = off + len;
    for (size_t k = first_ending_from(v, nv, off); k < nv && v[k].off < end;
         k++) {
        uint64_t a = v[k].off, b = v[k].off + v[k].len;
        if (b <= off)
            continue;
        uint64_t from = a > off ? a : off, to = b < end ? b : end;
        memcpy(buf + (from - off), v[k].data + (from - a), (size_t)(to - from));
    }
}

uint64_t cl_cache_gen(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t gen = n->fl_gen;
    pthread_mutex_unlock(&n->lock);
    return gen;
}

bool cl_cache_overlay(struct cl_inode *n, uint64_t off, size_t len,
                      uint8_t *buf, uint64_t gen)
{
    pthread_mutex_lock(&n->lock);
    bool same = n->fl_gen == gen;
    if (same) {
        overlay_list(n->fl, n->nfl, off, len, buf);
        overlay_list(n->ext, n->next, off, len, buf);
    }
    pthread_mutex_unlock(&n->lock);
    return same;
}

/* Does a sorted list of extents meet [@off, @end)? */
static bool list_overlaps(const struct cl_extent *v, size_t nv, uint64_t off,
                          uint64_t end)
{
    size_t k = first_ending_from(v, nv, off);
    /* v[k] ends at or after @off; one that ends exactly there misses. */
    if (k < nv && v[k].off + v[k].len == off)
        k++;
    return k < nv && v[k].off < end;
}

bool cl_cache_overlaps(struct cl_inode *n, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&n->lock);
    bool hit = list_overlaps(n->fl, n->nfl, off, off + len) ||
               list_overlaps(n->ext, n->next, off, off + len);
    pthread_mutex_unlock(&n->lock);
    return hit;
}

/* ---- Accounting -------------------------------------------------------- */

/* Count @delta bytes more (or fewer) of delayed writes: room for waiting
 * writers below dirty_max, the flusher woken when the count crosses half
 * of it (writing back starts before writers have to wait). */
static void account(struct cl_cache *k, int64_t delta)
{
    pthread_mutex_lock(&k->lock);
    uint64_t was = k->dirty;
    if (delta < 0 && (uint64_t)-delta > k->dirty)
        k->dirty = 0;
    else
        k->dirty = (uint64_t)((int64_t)k->dirty + delta);
    if (k->dirty < k->dirty_max)
        pthread_cond_broadcast(&k->room);
    if (was < k->dirty_max / 2 && k->dirty >= k->dirty_max / 2) {
        k->urgent = true;
        pthread_cond_signal(&k->cond);
    }
    pthread_mutex_unlock(&k->lock);
}

int cl_cache_write(struct cl_client *c, struct cl_inode *n, uint64_t off,
                   const uint8_t *buf, size_t len, bool wait)
{
    struct cl_cache *k = c->cache;

    pthread_mutex_lock(&k->lock);
    while (!k->stop && k->dirty > 0 && k->dirty + len > k->dirty_max) {
        k->urgent = true;
        pthread_cond_signal(&k->cond);
        if (!wait) {
            pthread_mutex_unlock(&k->lock);
            return -EAGAIN;
        }
        blocking_cond_wait(&k->room, &k->lock);
    }
    pthread_mutex_unlock(&k->lock);

    pthread_mutex_lock(&n->lock);
    int64_t delta = ext_insert(k, n, off, buf, len);
    if (delta >= 0) {
        if (n->dirty_ms == 0)
            n->dirty_ms = cl_now_ms();
        if (off + len > n->size)
            n->size = off + len;
    }
    pthread_mutex_unlock(&n->lock);
    if (delta < 0)
        return (int)delta;
    account(k, delta);
    return 0;
}

void cl_cache_cut(struct cl_client *c, struct cl_inode *n, uint64_t size)
{
    int64_t delta = 0;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->next;) {
        struct cl_extent *e = &n->ext[i];
        if (e->off >= size) {
            delta -= (int64_t)e->len;
            if (c->cache)
                buf_put(c->cache, e->data, e->cap);
            else
                free(e->data);
            memmove(e, e + 1, (n->next - i - 1) * sizeof(*e));
            n->next--;
            continue;
        }
        if (e->off + e->len > size) {
            delta -= (int64_t)(e->off + e->len - size);
            e->len = (size_t)(size - e->off);
        }
        i++;
    }
    n->dirty_bytes = (uint64_t)((int64_t)n->dirty_bytes + delta);
    if (n->next == 0)
        n->dirty_ms = 0;
    pthread_mutex_unlock(&n->lock);
    if (c->cache)
        account(c->cache, delta);
}

void cl_cache_inode_free(struct cl_cache *k, struct cl_inode *n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n->next; i++) {
        bytes += n->ext[i].len;
        buf_put(k, n->ext[i].data, n->ext[i].cap);
    }
    free(n->ext);
    n->ext = NULL;
    n->next = n->cext = 0;
    if (bytes)
        account(k, -(int64_t)bytes);
}

/* ---- Writing back ------------------------------------------------------ */

bool cl_cache_take(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    bool any = n->next > 0;
    if (any) {
        n->fl = n->ext;
        n->nfl = n->next;
        n->ext = NULL;
        n->next = n->cext = 0;
        n->dirty_ms = 0;
    }
    pthread_mutex_unlock(&n->lock);
    return any;
}

void cl_cache_release(struct cl_cache *k, struct cl_inode *n, size_t count,
                      int err)
{
    pthread_mutex_lock(&n->lock);
    struct cl_extent *fl = n->fl;
    uint64_t bytes = 0;
    if (count > n->nfl)
        count = n->nfl;
    for (size_t i = 0; i < count; i++) {
        bytes += fl[i].len;
        if (k)
            buf_put(k, fl[i].data, fl[i].cap);
        else
            free(fl[i].data);
    }
    n->nfl -= count;
    if (count > 0)
        n->fl_gen++;
    if (n->nfl > 0) {
        memmove(fl, fl + count, n->nfl * sizeof(*fl));
    } else {
        free(fl);
        n->fl = NULL;
    }
    n->dirty_bytes -= bytes < n->dirty_bytes ? bytes : n->dirty_bytes;
    if (!err)
        n->unended_bytes += bytes;
    else if (!n->werr)
        n->werr = err;
    pthread_mutex_unlock(&n->lock);
    if (k)
        account(k, -(int64_t)bytes);
}

/* ---- The flusher's side ------------------------------------------------ */

bool cl_cache_wait(struct cl_cache *k, uint32_t ms, bool *stop)
{
    bool timed_out = false;

    pthread_mutex_lock(&k->lock);
    if (!k->urgent && !k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (long)(ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        timed_out =
            blocking_cond_timedwait(&k->cond, &k->lock, &until) == ETIMEDOUT;
    }
    bool urgent = k->urgent || k->dirty >= k->dirty_max / 2;
    bool idle = timed_out && k->dirty == 0; /* a whole tick of nothing */
    k->urgent = false;
    *stop = k->stop;
    pthread_mutex_unlock(&k->lock);
    if (idle)
        pool_drain(k);
    return urgent;
}

void cl_cache_retry_writers(struct cl_cache *k)
{
    pthread_mutex_lock(&k->lock);
    pthread_cond_broadcast(&k->room);
    pthread_mutex_unlock(&k->lock);
}

struct cl_cache *cl_cache_new(const struct cl_opts *o)
{
    struct cl_cache *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->dirty_max = o->dirty_max ? o->dirty_max : CL_DIRTY_MAX;
    k->pool_max = k->dirty_max / EXT_MAX + 2;
    if (k->pool_max > POOL_MAX)
        k->pool_max = POOL_MAX;
    pthread_mutex_init(&k->lock, NULL);
    pthread_mutex_init(&k->pool_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&k->room, NULL);
    return k;
}

uint64_t cl_cache_batch(struct cl_cache *k)
{
    return k->dirty_max / 4 > EXT_MAX ? k->dirty_max / 4 : EXT_MAX;
}

uint64_t cl_cache_dirty(struct cl_cache *k)
{
    if (!k)
        return 0;
    pthread_mutex_lock(&k->lock);
    uint64_t v = k->dirty;
    pthread_mutex_unlock(&k->lock);
    return v;
}

void cl_cache_stop(struct cl_cache *k)
{
    pthread_mutex_lock(&k->lock);
    k->stop = true;
    pthread_cond_broadcast(&k->cond);
    pthread_cond_broadcast(&k->room);
    pthread_mutex_unlock(&k->lock);
}

void cl_cache_free(struct cl_cache *k)
{
    if (!k)
        return;
    pool_drain(k);
    pthread_cond_destroy(&k->room);
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->pool_lock);
    pthread_mutex_destroy(&k->lock);
    free(k);
}
