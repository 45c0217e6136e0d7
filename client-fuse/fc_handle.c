/* fc_handle.c: the table of open files.
 *
 * Every open() gets a struct fc_handle (its pointer is fi->fh); handles on
 * the same inode share one struct fc_inode holding what the data path must
 * remember between requests:
 *
 *   - the file size as far as this mount knows it (from the attributes at
 *     open, raised by our own writes, set by our truncates), used to clamp
 *     reads;
 *   - the write leases held on chunks (CHUNK_WRITE_BEGIN replies), reused
 *     until FC_LEASE_RENEW_MS, with a dirty flag per chunk saying that a
 *     CHUNK_SYNC is owed at the next fsync or flush;
 *   - whether a CHUNK_WRITE_END (mtime, size) is owed.
 *
 * The table lock guards the inode list and reference counts; each inode's
 * own lock guards its fields.  Nothing here does I/O: fc_data.c drives it.
 */
#include "fc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 256

struct node_link {
    struct node_link *next;
    struct fc_inode node;
};

struct fc_handles {
    pthread_mutex_t lock;
    struct node_link *buckets[NBUCKETS];
};

/* Caller owns the result: fc_handles_free(). */
struct fc_handles *fc_handles_new(void)
{
    struct fc_handles *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void node_free(struct node_link *l)
{
    pthread_mutex_destroy(&l->node.lock);
    free(l->node.leases);
    free(l);
}

/* Frees inodes still open too: at unmount the kernel has released every
 * handle, so any left are from an aborted connection. */
void fc_handles_free(struct fc_handles *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct node_link *l = t->buckets[i];
        while (l) {
            struct node_link *next = l->next;
            node_free(l);
            l = next;
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct node_link **find_locked(struct fc_handles *t, uint64_t ino)
{
    struct node_link **pp = &t->buckets[ino % NBUCKETS];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->node.ino == ino)
            return pp;
    return pp;
}

int fc_handles_open(struct fc_handles *t, uint64_t ino, int flags,
                    uint64_t size, struct fc_handle **out)
{
    struct fc_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;

    pthread_mutex_lock(&t->lock);
    struct node_link **pp = find_locked(t, ino);
    struct node_link *l = *pp;
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l) {
            pthread_mutex_unlock(&t->lock);
            free(h);
            return -ENOMEM;
        }
        l->node.ino = ino;
        l->node.size = size;
        pthread_mutex_init(&l->node.lock, NULL);
        *pp = l;
    } else {
        fc_inode_grow(&l->node, size);
    }
    l->node.refs++;
    pthread_mutex_unlock(&t->lock);

    h->node = &l->node;
    h->flags = flags;
    *out = h;
    return 0;
}

void fc_handles_put(struct fc_handles *t, struct fc_inode *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&t->lock);
    struct node_link **pp = find_locked(t, n->ino);
    struct node_link *l = *pp;
    if (l && &l->node == n && --n->refs == 0) {
        *pp = l->next;
        node_free(l);
    }
    pthread_mutex_unlock(&t->lock);
}

void fc_handles_release(struct fc_handles *t, struct fc_handle *h)
{
    if (!h)
        return;
    fc_handles_put(t, h->node);
    free(h);
}

struct fc_inode *fc_handles_find(struct fc_handles *t, uint64_t ino)
{
    struct fc_inode *n = NULL;

    pthread_mutex_lock(&t->lock);
    struct node_link *l = *find_locked(t, ino);
    if (l) {
        n = &l->node;
        n->refs++;
    }
    pthread_mutex_unlock(&t->lock);
    return n;
}

static struct fc_lease *lease_find_locked(struct fc_inode *n, uint64_t index)
{
    for (size_t i = 0; i < n->nleases; i++)
        if (n->leases[i].chunk.index == index)
            return &n->leases[i];
    return NULL;
}

int fc_inode_lease_get(struct fc_inode *n, uint64_t index, uint64_t now_ms,
                       struct fc_chunk *out)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&n->lock);
    struct fc_lease *l = lease_find_locked(n, index);
    if (l && now_ms - l->granted_ms < FC_LEASE_RENEW_MS) {
        *out = l->chunk;
        rc = 0;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

/* @chunk is borrowed and copied.  A renewed lease keeps its dirty flag:
 * the data written under the old one still needs its sync. */
int fc_inode_lease_put(struct fc_inode *n, const struct fc_chunk *chunk,
                       uint64_t now_ms)
{
    pthread_mutex_lock(&n->lock);
    struct fc_lease *l = lease_find_locked(n, chunk->index);
    if (!l) {
        if (n->nleases == n->cap) {
            size_t cap = n->cap ? n->cap * 2 : 4;
            struct fc_lease *v = realloc(n->leases, cap * sizeof(*v));
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
    pthread_mutex_unlock(&n->lock);
    return 0;
}

static void lease_remove_locked(struct fc_inode *n, size_t i)
{
    n->leases[i] = n->leases[--n->nleases];
}

void fc_inode_lease_drop(struct fc_inode *n, uint64_t index)
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

void fc_inode_lease_drop_from(struct fc_inode *n, uint64_t first)
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

void fc_inode_lease_dirty(struct fc_inode *n, uint64_t index)
{
    pthread_mutex_lock(&n->lock);
    struct fc_lease *l = lease_find_locked(n, index);
    if (l)
        l->dirty = true;
    pthread_mutex_unlock(&n->lock);
}

size_t fc_inode_take_dirty(struct fc_inode *n, struct fc_chunk *out, size_t max)
{
    size_t k = 0;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases && k < max; i++) {
        if (n->leases[i].dirty) {
            out[k++] = n->leases[i].chunk;
            n->leases[i].dirty = false;
        }
    }
    pthread_mutex_unlock(&n->lock);
    return k;
}

size_t fc_inode_ndirty(struct fc_inode *n)
{
    size_t k = 0;

    pthread_mutex_lock(&n->lock);
    for (size_t i = 0; i < n->nleases; i++)
        k += n->leases[i].dirty;
    pthread_mutex_unlock(&n->lock);
    return k;
}

uint64_t fc_inode_grow(struct fc_inode *n, uint64_t size)
{
    pthread_mutex_lock(&n->lock);
    if (size > n->size)
        n->size = size;
    size = n->size;
    pthread_mutex_unlock(&n->lock);
    return size;
}

void fc_inode_set_size(struct fc_inode *n, uint64_t size)
{
    pthread_mutex_lock(&n->lock);
    n->size = size;
    pthread_mutex_unlock(&n->lock);
}

uint64_t fc_inode_size(struct fc_inode *n)
{
    pthread_mutex_lock(&n->lock);
    uint64_t size = n->size;
    pthread_mutex_unlock(&n->lock);
    return size;
}
