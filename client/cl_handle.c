/* cl_handle.c: the table of open inodes.
 *
 * Every file the mount has open, and every image tessera-nbd serves, holds
 * a reference on one struct cl_inode per inode; handles on the same inode
 * share it, and with it what the data path must remember between
 * requests:
 *
 *   - the file size as far as this client knows it (from the attributes at
 *     open, raised by our own writes, set by our truncates), used to clamp
 *     reads;
 *   - the write leases held on chunks (CHUNK_WRITE_BEGIN replies), reused
 *     until CL_LEASE_RENEW_MS, with a dirty flag per chunk saying that a
 *     CHUNK_SYNC is owed at the next fsync or flush, and a stale flag set
 *     when a server of the chain goes down (the next write asks metad
 *     again; the dirty flag stays, so the sync goes to the new chain);
 *   - whether a CHUNK_WRITE_END (mtime, size) is owed;
 *   - how many open handles metad holds the file for (docs/protocol.md
 *     §6.22): the first open takes the hold, the last close releases it
 *     (cl_file_release()) after it lingered CL_LINGER_MS, so that a file
 *     opened and closed again and again costs metad one record, not two
 *     per open.  The hold lock keeps one inode's opens and its release in
 *     order, so that a RELEASE never overtakes the OPEN of a newer handle
 *     on the wire (§2.4: no order between requests in flight).
 *
 * The table lock guards the inode list and reference counts; each inode's
 * own lock guards its fields.  Lock order: table, then inode.  Nothing
 * here does I/O: cl_file.c and cl_chunk.c drive it.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256

struct node_link {
    struct node_link *next;
    struct cl_inode node;
};

struct cl_handles {
    pthread_mutex_t lock;
    struct node_link *buckets[NBUCKETS];
    struct cl_cache *cache; /* dirty accounting, when delayed writes */
};

void cl_handles_set_cache(struct cl_handles *t, struct cl_cache *k)
{
    t->cache = k;
}

/* Caller owns the result: cl_handles_free(). */
struct cl_handles *cl_handles_new(void)
{
    struct cl_handles *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void node_free(struct cl_handles *t, struct node_link *l)
{
    /* Delayed writes still here failed to write back at close (the
     * error went to the application) or the connection was aborted. */
    if (t->cache) {
        cl_cache_inode_free(t->cache, &l->node);
    } else {
        for (size_t i = 0; i < l->node.next; i++)
            free(l->node.ext[i].data);
        free(l->node.ext);
    }
    pthread_mutex_destroy(&l->node.lock);
    pthread_mutex_destroy(&l->node.sync_lock);
    pthread_cond_destroy(&l->node.wr_cv);
    pthread_mutex_destroy(&l->node.hold_lock);
    free(l->node.leases);
    free(l);
}

/* Frees inodes still open too: at unmount the kernel has released every
 * handle, so any left are from an aborted connection. */
void cl_handles_free(struct cl_handles *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct node_link *l = t->buckets[i];
        while (l) {
            struct node_link *next = l->next;
            node_free(t, l);
            l = next;
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct node_link **find_locked(struct cl_handles *t, uint64_t ino)
{
    struct node_link **pp = &t->buckets[ino % NBUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->node.ino == ino)
            return pp;
    return pp;
}

/* Caller owns the reference in *out: cl_handles_put(). */
int cl_handles_open(struct cl_handles *t, uint64_t ino, uint64_t size,
                    struct cl_inode **out)
{
    pthread_mutex_lock(&t->lock);
    struct node_link **pp = find_locked(t, ino);
    struct node_link *l = *pp;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l) {
            pthread_mutex_unlock(&t->lock);
            return -ENOMEM;
        }
        l->node.ino = ino;
        l->node.size = size;
        pthread_mutex_init(&l->node.lock, NULL);
        pthread_mutex_init(&l->node.sync_lock, NULL);
        pthread_cond_init(&l->node.wr_cv, NULL);
        pthread_mutex_init(&l->node.hold_lock, NULL);
        *pp = l;
    } else {
        cl_inode_grow(&l->node, size);
    }
    l->node.refs++;
    pthread_mutex_unlock(&t->lock);
    *out = &l->node;
    return 0;
}

void cl_handles_put(struct cl_handles *t, struct cl_inode *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&t->lock);
    struct node_link **pp = find_locked(t, n->ino);
    struct node_link *l = *pp;
    if (l && &l->node == n && --n->refs == 0) {
        *pp = l->next;
        node_free(t, l);
    }
    pthread_mutex_unlock(&t->lock);
}

struct cl_inode *cl_handles_find(struct cl_handles *t, uint64_t ino)
{
    struct cl_inode *n = NULL;

    pthread_mutex_lock(&t->lock);
    struct node_link *l = *find_locked(t, ino);
    if (l) {
        n = &l->node;
        n->refs++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

void cl_handles_size_stale(struct cl_handles *t, uint64_t ino)
{
    pthread_mutex_lock(&t->lock);
    struct node_link *l = *find_locked(t, ino);
    if (l) {
        pthread_mutex_lock(&l->node.lock);
        l->node.size_stale = true;
        l->node.attr_ok = false;
        pthread_mutex_unlock(&l->node.lock);
    }
    pthread_mutex_unlock(&t->lock);
}

void cl_handles_reset(struct cl_handles *t)
{
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < NBUCKETS; i++)
        for (struct node_link *l = t->buckets[i]; l; l = l->next) {
            pthread_mutex_lock(&l->node.lock);
            l->node.attr_ok = false;
            l->node.hold_unsure = true;
            pthread_mutex_unlock(&l->node.lock);
        }
    pthread_mutex_unlock(&t->lock);
}

static struct cl_lease *lease_find_locked(struct cl_inode *n, uint64_t index)
{
    for (size_t i = 0; i < n->nleases; i++)
        if (n->leases[i].chunk.index == index)
            return &n->leases[i];
    return NULL;
}

int cl_inode_lease_get(struct cl_inode *n, uint64_t index, uint64_t now_ms,
                       struct cl_chunk *out)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&n->lock);
    struct cl_lease *l = lease_find_locked(n, index);
    if (l && !l->stale && now_ms - l->granted_ms < CL_LEASE_RENEW_MS) {
        *out = l->chunk;
        rc = 0;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

/* @chunk is borrowed and copied.  A renewed lease keeps its dirty flag:
 * the data written under the old one still needs its sync. */
int cl_inode_lease_put(struct cl_inode *n, const struct cl_chunk *chunk,
                       uint64_t now_ms)
{
    pthread_mutex_lock(&n->lock);
    struct cl_lease *l = lease_find_locked(n, chunk->index);
    if (!l) {
        if (n->nleases == n->cap) {
            size_t cap = n->cap ? n->cap * 2 : 4;
            struct cl_lease *v = realloc(n->leases, cap * sizeof(*v));
            if (!v) {
                pthread_mutex_unlock(&n->lock);
                return -ENOMEM;
            }
            n->leases = v;
            n->cap = cap;
        }
        l = &n->leases[n->nleases++];
        l->dirty = false;
    } else if (l->chunk.chunk_id != chunk->chunk_id) {
        l->dirty = false; /* a different chunk: the old one is gone */
    }
    l->chunk = *chunk;
    l->granted_ms = now_ms;
    l->stale = false;
    pthread_mutex_unlock(&n->lock);
    return 0;
}

static void lease_remove_locked(struct cl_inode *n, size_t i)
{
    n->leases[i] = n->leases[--n->nleases];
}

void cl_inode_lease_stale(struct cl_inode *n, uint64_t index)
{
    pthread_mutex_lock(&n->lock);
    struct cl_lease *l = lease_find_locked(n, index);
    if (l)
        l->stale = true;
    pthread_mutex_unlock(&n->lock);
}

size_t cl_handles_inos(struct cl_handles *t, uint64_t *out, size_t max)
{
    size_t k = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t b = 0; b < NBUCKETS && k < max; b++)
        for (struct node_link *l = t->buckets[b]; l && k < max; l = l->next)
            out[k++] = l->node.ino;
    pthread_mutex_unlock(&t->lock);
    return k;
}

size_t cl_handles_collect(struct cl_handles *t, struct cl_inode **out,
                          size_t max, uint64_t linger_ms)
{
    size_t k = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t b = 0; b < NBUCKETS && k < max; b++) {
        for (struct node_link *l = t->buckets[b]; l && k < max; l = l->next) {
            struct cl_inode *n = &l->node;
            pthread_mutex_lock(&n->lock);
            bool want = n->dirty_bytes > 0 || n->end_pending ||
                        (linger_ms && n->linger &&
                         linger_ms - n->linger_ms >= CL_LINGER_MS);
            pthread_mutex_unlock(&n->lock);
            if (want) {
                n->refs++;
                out[k++] = n;
            }
        }
    }
    pthread_mutex_unlock(&t->lock);
    return k;
}

size_t cl_handles_server_down(struct cl_handles *t, uint32_t server_id)
{
    size_t k = 0;

    pthread_mutex_lock(&t->lock);
    for (size_t b = 0; b < NBUCKETS; b++) {
        for (struct node_link *l = t->buckets[b]; l; l = l->next) {
            struct cl_inode *n = &l->node;
            pthread_mutex_lock(&n->lock);
            for (size_t i = 0; i < n->nleases; i++) {
                if (cl_chunk_has_server(&n->leases[i].chunk, server_id)) {
                    n->leases[i].stale = true;
                    k++;
                }
            }
            pthread_mutex_unlock(&n->lock);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return k;
}

void cl_inode_lease_drop(struct cl_inode *n, uint64_t index)
{
    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases; i++) {
        if (n->leases[i].chunk.index == index) {
            lease_remove_locked(n, i);
            break;
        }
    }
    pthread_mutex_unlock(&n->lock);
}

void cl_inode_lease_drop_from(struct cl_inode *n, uint64_t first)
{
    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases;) {
        if (n->leases[i].chunk.index >= first)
            lease_remove_locked(n, i);
        else
            i++;
    }
    pthread_mutex_unlock(&n->lock);
}

void cl_inode_lease_dirty(struct cl_inode *n, uint64_t index)
{
    pthread_mutex_lock(&n->lock);
    struct cl_lease *l = lease_find_locked(n, index);
    if (l)
        l->dirty = true;
    pthread_mutex_unlock(&n->lock);
}

size_t cl_inode_take_dirty(struct cl_inode *n, uint64_t *out, size_t max)
{
    size_t k = 0;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases && k < max; i++) {
        if (n->leases[i].dirty) {
            out[k++] = n->leases[i].chunk.index;
            n->leases[i].dirty = false;
        }
    }
    pthread_mutex_unlock(&n->lock);
    return k;
}

size_t cl_inode_ndirty(struct cl_inode *n)
{
    size_t k = 0;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases; i++)
        k += n->leases[i].dirty;
    pthread_mutex_unlock(&n->lock);
    return k;
}

uint64_t cl_inode_grow(struct cl_inode *n, uint64_t size)
{
    pthread_mutex_lock(&n->lock);
    if (size > n->size)
        n->size = size;
    size = n->size;
    pthread_mutex_unlock(&n->lock);
    return size;
}

uint64_t cl_inode_grow_seen(struct cl_inode *n, uint64_t size)
{
    uint64_t now = cl_now_ms();
    pthread_mutex_lock(&n->lock);
    if (size > n->size)
        n->size = size;
    size = n->size;
    n->size_ms = now;
    pthread_mutex_unlock(&n->lock);
    return size;
}

void cl_inode_set_size(struct cl_inode *n, uint64_t size)
{
    pthread_mutex_lock(&n->lock);
    n->size = size;
    pthread_mutex_unlock(&n->lock);
}

int64_t cl_inode_wmtime(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    int64_t t = n->wmtime_ns;
    pthread_mutex_unlock(&n->lock);
    return t;
}

void cl_inode_attr_note(struct cl_client *c, struct cl_inode *n,
                        const struct proto_attr *a, bool writer, uint64_t epoch,
                        uint64_t gen, uint64_t forgets, uint64_t until_ms)
{
    if (!until_ms)
        return;
    pthread_mutex_lock(&n->lock);
    /* Read under the lock: a break moves the epoch before it takes the
     * lock to mark the inode stale, so it either voids this note here or
     * undoes it after. */
    bool held = n->attr_ok && n->attr_gen == gen;
    if (cl_cb_epoch(c) == epoch && cl_attr_gen(c) == gen &&
        n->attr_forgets == forgets &&
        (!held || a->version >= n->attr.version)) {
        n->attr_writer = (held && n->attr_writer) || writer;
        n->attr = *a;
        n->attr_ok = true;
        n->attr_until_ms = until_ms;
        n->attr_gen = gen;
    }
    pthread_mutex_unlock(&n->lock);
}

bool cl_inode_attr_get(struct cl_client *c, struct cl_inode *n, uint64_t now_ms,
                       bool writer, struct proto_attr *out, uint64_t *until_ms)
{
    pthread_mutex_lock(&n->lock);
    bool ok = n->attr_ok && now_ms < n->attr_until_ms &&
              n->attr_gen == cl_attr_gen(c) && (!writer || n->attr_writer);
    if (ok) {
        *out = n->attr;
        *until_ms = n->attr_until_ms;
    }
    pthread_mutex_unlock(&n->lock);
    return ok;
}

uint64_t cl_inode_attr_forgets(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t f = n->attr_forgets;
    pthread_mutex_unlock(&n->lock);
    return f;
}

void cl_inode_attr_forget(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    n->attr_ok = false;
    n->attr_forgets++;
    pthread_mutex_unlock(&n->lock);
}

uint64_t cl_attr_gen(struct cl_client *c)
{
    return atomic_load(&c->attr_gen);
}

void cl_attr_forget_all(struct cl_client *c)
{
    atomic_fetch_add(&c->attr_gen, 1);
}

uint64_t cl_inode_dirty_blocks(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t bytes = n->dirty_bytes + n->unended_bytes;
    pthread_mutex_unlock(&n->lock);
    return (bytes + 511) / 512;
}

uint64_t cl_inode_size(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t size = n->size;
    pthread_mutex_unlock(&n->lock);
    return size;
}

/* ---- Holds ------------------------------------------------------------- */

void cl_inode_hold_begin(struct cl_inode *n)
{
    pthread_mutex_lock(&n->hold_lock);
}

bool cl_inode_held(struct cl_inode *n)
{
    pthread_mutex_lock(&n->lock);
    bool lingering = n->linger, unsure = n->hold_unsure;
    pthread_mutex_unlock(&n->lock);
    return !unsure && (n->holds > 0 || lingering);
}

void cl_inode_hold_end(struct cl_client *c, struct cl_inode *n, bool held)
{
    /* A new handle ends a linger: the file stays held for it, and the
     * reference the linger kept goes. */
    bool lingered = held && cl_inode_linger_set(n, false, 0);
    if (held) {
        n->holds++;
        /* metad holds it now (an OPEN or MKNOD with HOLD, or a hold
         * answered here and queued), or did already (cl_inode_held()). */
        pthread_mutex_lock(&n->lock);
        n->hold_unsure = false;
        pthread_mutex_unlock(&n->lock);
    }
    pthread_mutex_unlock(&n->hold_lock);
    if (lingered)
        cl_inode_put(c, n);
}

bool cl_inode_linger_set(struct cl_inode *n, bool on, uint64_t now_ms)
{
    pthread_mutex_lock(&n->lock);
    bool was = n->linger;
    n->linger = on;
    if (on)
        n->linger_ms = now_ms;
    pthread_mutex_unlock(&n->lock);
    return was;
}

bool cl_inode_linger_due(struct cl_inode *n, uint64_t now_ms)
{
    pthread_mutex_lock(&n->lock);
    bool due = n->linger &&
               (now_ms == UINT64_MAX || now_ms - n->linger_ms >= CL_LINGER_MS);
    pthread_mutex_unlock(&n->lock);
    return due;
}

bool cl_inode_hold_drop(struct cl_inode *n)
{
    return n->holds > 0 && --n->holds == 0;
}

/* ---- The public face (cl.h) -------------------------------------------- */

int cl_inode_open(struct cl_client *c, uint64_t ino, uint64_t size,
                  struct cl_inode **out)
{
    return cl_handles_open(c->handles, ino, size, out);
}

struct cl_inode *cl_inode_find(struct cl_client *c, uint64_t ino)
{
    return cl_handles_find(c->handles, ino);
}

void cl_inode_put(struct cl_client *c, struct cl_inode *n)
{
    cl_handles_put(c->handles, n);
}

uint64_t cl_inode_ino(const struct cl_inode *n)
{
    return n->ino;
}
