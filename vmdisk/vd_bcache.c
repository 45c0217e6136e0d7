/* vd_bcache.c: the pages of one image's block cache (see vd_bcache.h).
 *
 * Pages live in a chained hash table keyed by page index and on one LRU
 * list (most recent at the head).  A full cache reuses its least recently
 * used page for the next one it keeps.
 *
 * Why the tickets.  A read that misses goes to the servers and may come
 * back after a write to the same bytes was sent or finished: keeping what
 * it read would bring back bytes the write replaced.  So @wseq counts every
 * write begin and end and every drop, and a fill is kept only when @wseq
 * is still what it was when the read was sent and no write was in flight
 * then: no write overlapped the read at all.  Under a mix of reads and
 * writes some fills are skipped; a cache that keeps less is still right.
 *
 * A write keeps the pages it wrote once every replica has them, unless
 * another write to the same bytes is in flight: two overlapping writes
 * may reach the servers in either order, so neither copy is sure.
 *
 * Invariants:
 *   1. Every cached page holds the bytes the servers hold for it, as of the
 *      last write to it that ended (or of a read no write overlapped).
 *      Under tessera-nbd's write-back a write "ends" when the client has
 *      it among its delayed writes, which every read of the process sees
 *      too: the page then holds what the client reads, not yet what the
 *      servers hold.
 *   2. @npages <= @max_pages; every page is in the table and on the list.
 *
 * Memory.  Pages come from slabs of SLAB_PAGES pages whose bytes are one
 * 2 MiB-aligned block, offered to the kernel as a transparent huge page:
 * filling the cache then costs one page fault per 2 MiB instead of one
 * per 4 KiB, which is most of what keeping a large write's pages cost.  A
 * dropped page goes to a free list; slabs are freed with the cache.
 */
#include "vd_bcache.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SLAB_PAGES 512u /* 2 MiB of page bytes */

struct page {
    uint64_t idx;
    struct page *hnext;       /* hash chain, or the free list */
    struct page *prev, *next; /* LRU list */
    uint8_t *data;            /* VD_BCACHE_PAGE bytes in a slab */
};

struct slab {
    struct slab *next;
    uint8_t *bytes; /* SLAB_PAGES * VD_BCACHE_PAGE, 2 MiB-aligned */
    struct page pages[SLAB_PAGES];
};

struct range {
    uint64_t off, len;
    bool tainted; /* an overlapping write ended while this one flew */
};

struct vd_bcache {
    pthread_mutex_t lock;
    struct page **table;
    size_t nbuckets; /* a power of two */
    struct page *head, *tail;
    uint64_t npages, max_pages;
    struct slab *slabs;
    uint64_t made;        /* pages in slabs */
    struct page *free;    /* pages in slabs, not in use */
    uint64_t wseq;      /* write begins, ends and drops so far */
    struct range *wr;   /* writes begun, not ended */
    size_t nwr, cwr;
    bool off; /* out of memory once: keeps nothing */
    struct vd_bcache_stats st;
};

/* Every cache of the process together, for the metrics: relaxed atomics
 * moved under each cache's own lock, read by vd_bcache_get_totals(). */
static _Atomic uint64_t total_hits, total_misses, total_skipped, total_pages;

static void total_add(_Atomic uint64_t *v, int64_t n)
{
    atomic_fetch_add_explicit(v, (uint64_t)n, memory_order_relaxed);
}

void vd_bcache_get_totals(struct vd_bcache_stats *out)
{
    out->hits = atomic_load_explicit(&total_hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&total_misses, memory_order_relaxed);
    out->fills_skipped =
        atomic_load_explicit(&total_skipped, memory_order_relaxed);
    out->pages = atomic_load_explicit(&total_pages, memory_order_relaxed);
    out->max_pages = 0;
}

int vd_bcache_new(uint64_t max_bytes, struct vd_bcache **out)
{
    uint64_t max_pages = max_bytes / VD_BCACHE_PAGE;
    struct vd_bcache *b;

    if (max_pages == 0)
        return -EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->nbuckets = 64;
    while (b->nbuckets < max_pages && b->nbuckets < (1u << 24))
        b->nbuckets <<= 1;
    b->table = calloc(b->nbuckets, sizeof(*b->table));
    if (!b->table) {
        free(b);
        return -ENOMEM;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->max_pages = max_pages;
    b->wseq = 1; /* tickets are never 0 */
    *out = b;
    return 0;
}

/* ---- Pages' memory (under @lock) --------------------------------------- */

/* A page to use, or NULL when out of memory.  The caller keeps @npages
 * within @max_pages, so a new slab is never made past it. */
static struct page *page_alloc(struct vd_bcache *b)
{
    if (!b->free) {
        uint64_t n = b->max_pages - b->made;
        if (n == 0)
            return NULL;
        if (n > SLAB_PAGES)
            n = SLAB_PAGES;
        size_t bytes = (size_t)n * VD_BCACHE_PAGE;
        struct slab *sl = calloc(1, sizeof(*sl));
        if (!sl || posix_memalign((void **)&sl->bytes, 2u << 20, bytes) != 0) {
            free(sl);
            return NULL;
        }
        madvise(sl->bytes, bytes, MADV_HUGEPAGE); /* a hint: may fail */
        for (uint64_t i = 0; i < n; i++) {
            sl->pages[i].data = sl->bytes + i * VD_BCACHE_PAGE;
            sl->pages[i].hnext = b->free;
            b->free = &sl->pages[i];
        }
        sl->next = b->slabs;
        b->slabs = sl;
        b->made += n;
    }
    struct page *p = b->free;
    b->free = p->hnext;
    return p;
}

static void page_free(struct vd_bcache *b, struct page *p)
{
    p->hnext = b->free;
    b->free = p;
}

static void forget_all(struct vd_bcache *b)
{
    struct page *p = b->head;

    while (p) {
        struct page *next = p->next;
        page_free(b, p);
        p = next;
    }
    memset(b->table, 0, b->nbuckets * sizeof(*b->table));
    b->head = b->tail = NULL;
    total_add(&total_pages, -(int64_t)b->npages);
    b->npages = 0;
}

void vd_bcache_free(struct vd_bcache *b)
{
    if (!b)
        return;
    forget_all(b);
    while (b->slabs) {
        struct slab *sl = b->slabs;
        b->slabs = sl->next;
        free(sl->bytes);
        free(sl);
    }
    free(b->table);
    free(b->wr);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* ---- Table and list (under @lock) -------------------------------------- */

static struct page **slot(struct vd_bcache *b, uint64_t idx)
{
    uint64_t h = idx * 0x9E3779B97F4A7C15ull;
    struct page **pp = &b->table[(h >> 32) & (b->nbuckets - 1)];

    while (*pp && (*pp)->idx != idx)
        pp = &(*pp)->hnext;
    return pp;
}

static void lru_unlink(struct vd_bcache *b, struct page *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        b->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        b->tail = p->prev;
    p->prev = p->next = NULL;
}

static void lru_push(struct vd_bcache *b, struct page *p)
{
    p->prev = NULL;
    p->next = b->head;
    if (b->head)
        b->head->prev = p;
    b->head = p;
    if (!b->tail)
        b->tail = p;
}

/* Take @p out of the table and the list; the caller frees or reuses it. */
static void page_remove(struct vd_bcache *b, struct page *p)
{
    struct page **pp = slot(b, p->idx);

    assert(*pp == p); /* invariant 2 */
    *pp = p->hnext;
    lru_unlink(b, p);
    b->npages--;
    total_add(&total_pages, -1);
}

/* Keep @data as page @idx: replace the cached copy, or take a new page
 * (the least recently used one when full).  Out of memory: not kept. */
static void page_put(struct vd_bcache *b, uint64_t idx, const uint8_t *data)
{
    struct page **pp = slot(b, idx), *p = *pp;

    if (p) {
        lru_unlink(b, p);
    } else {
        if (b->npages < b->max_pages) {
            p = page_alloc(b);
            if (!p)
                return;
        } else {
            p = b->tail;
            page_remove(b, p);
            pp = slot(b, idx); /* the removal may have moved the chain */
        }
        p->idx = idx;
        p->hnext = *pp;
        *pp = p;
        b->npages++;
        total_add(&total_pages, 1);
    }
    memcpy(p->data, data, VD_BCACHE_PAGE);
    lru_push(b, p);
}

/* Drop the pages touching [@off, @off + @len). */
static void range_drop(struct vd_bcache *b, uint64_t off, uint64_t len)
{
    if (len == 0)
        return;
    uint64_t first = off / VD_BCACHE_PAGE;
    uint64_t last = (off + len - 1) / VD_BCACHE_PAGE;

    if (last - first >= b->npages) { /* a big range: walk the pages */
        struct page *p = b->head;
        while (p) {
            struct page *next = p->next;
            if (p->idx >= first && p->idx <= last) {
                page_remove(b, p);
                page_free(b, p);
            }
            p = next;
        }
        return;
    }
    for (uint64_t i = first; i <= last; i++) {
        struct page *p = *slot(b, i);
        if (p) {
            page_remove(b, p);
            page_free(b, p);
        }
    }
}

/* Keep the pages that [@off, @off + @len) of @data covers whole. */
static void range_keep(struct vd_bcache *b, uint64_t off, uint64_t len,
                       const uint8_t *data)
{
    uint64_t start = (off + VD_BCACHE_PAGE - 1) / VD_BCACHE_PAGE;
    uint64_t end = (off + len) / VD_BCACHE_PAGE; /* exclusive */

    for (uint64_t i = start; i < end; i++)
        page_put(b, i, data + (i * VD_BCACHE_PAGE - off));
}

/* ---- Interface --------------------------------------------------------- */

bool vd_bcache_read(struct vd_bcache *b, uint64_t off, uint32_t len,
                    void *buf)
{
    if (len == 0)
        return false;
    uint64_t first = off / VD_BCACHE_PAGE;
    uint64_t last = (off + len - 1) / VD_BCACHE_PAGE;
    struct page *one[16], **pages = one;
    bool hit = true;

    if (last - first >= 16)
        return false; /* longer reads go to the servers whole */
    pthread_mutex_lock(&b->lock);
    for (uint64_t i = first; i <= last && hit; i++)
        hit = (pages[i - first] = *slot(b, i)) != NULL;
    if (hit) {
        uint8_t *out = buf;
        for (uint64_t i = first; i <= last; i++) {
            struct page *p = pages[i - first];
            uint64_t from = i == first ? off % VD_BCACHE_PAGE : 0;
            uint64_t to = i == last ? (off + len - 1) % VD_BCACHE_PAGE + 1
                                    : VD_BCACHE_PAGE;
            memcpy(out, p->data + from, to - from);
            out += to - from;
            lru_unlink(b, p);
            lru_push(b, p);
        }
        b->st.hits++;
        total_add(&total_hits, 1);
    } else {
        b->st.misses++;
        total_add(&total_misses, 1);
    }
    pthread_mutex_unlock(&b->lock);
    return hit;
}

uint64_t vd_bcache_read_begin(struct vd_bcache *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t t = b->nwr ? 0 : b->wseq;
    pthread_mutex_unlock(&b->lock);
    return t;
}

void vd_bcache_fill(struct vd_bcache *b, uint64_t ticket, uint64_t off,
                    uint32_t len, const void *data)
{
    pthread_mutex_lock(&b->lock);
    if (ticket && ticket == b->wseq && !b->off) { /* no write overlapped */
        range_keep(b, off, len, data);
    } else {
        b->st.fills_skipped++;
        total_add(&total_skipped, 1);
    }
    pthread_mutex_unlock(&b->lock);
}

static bool overlaps(const struct range *r, uint64_t off, uint64_t len)
{
    return r->off < off + len && off < r->off + r->len;
}

void vd_bcache_write_begin(struct vd_bcache *b, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&b->lock);
    b->wseq++;
    range_drop(b, off, len);
    if (b->nwr == b->cwr) {
        size_t n = b->cwr ? 2 * b->cwr : 16;
        struct range *w = realloc(b->wr, n * sizeof(*w));
        if (!w) {
            /* Out of memory: the write cannot be tracked, so the cache
             * empties and keeps nothing from now on. */
            b->off = true;
            forget_all(b);
            pthread_mutex_unlock(&b->lock);
            return;
        }
        b->wr = w;
        b->cwr = n;
    }
    b->wr[b->nwr++] = (struct range){off, len, false};
    pthread_mutex_unlock(&b->lock);
}

void vd_bcache_write_end(struct vd_bcache *b, uint64_t off, uint64_t len,
                         const void *data, bool ok)
{
    bool alone = true;

    pthread_mutex_lock(&b->lock);
    b->wseq++;
    for (size_t i = 0; i < b->nwr; i++) {
        if (b->wr[i].off == off && b->wr[i].len == len) {
            alone = !b->wr[i].tainted;
            b->wr[i] = b->wr[--b->nwr];
            break;
        }
    }
    /* Overlapping writes in flight together reach the servers in either
     * order: keep no copy of their bytes unless this write met no other
     * on them from begin to end. */
    for (size_t i = 0; i < b->nwr; i++) {
        if (overlaps(&b->wr[i], off, len)) {
            alone = false;
            b->wr[i].tainted = true;
        }
    }
    range_drop(b, off, len);
    if (ok && data && alone && !b->off)
        range_keep(b, off, len, data);
    pthread_mutex_unlock(&b->lock);
}

void vd_bcache_drop_all(struct vd_bcache *b)
{
    pthread_mutex_lock(&b->lock);
    b->wseq++;
    forget_all(b);
    pthread_mutex_unlock(&b->lock);
}

void vd_bcache_get_stats(struct vd_bcache *b, struct vd_bcache_stats *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->st;
    out->pages = b->npages;
    out->max_pages = b->max_pages;
    pthread_mutex_unlock(&b->lock);
}
