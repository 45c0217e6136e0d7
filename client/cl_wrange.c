/* cl_wrange.c: an inode's writes in flight, never two overlapping.
 *
 * Every write this client sends to chunk servers (a fast write straight to
 * every replica, a blocking write down a chain, a truncate of a chunk) holds
 * the byte range it changes in the inode's list while it is in flight.  Two
 * requests in flight together have no defined order (docs/protocol.md
 * §2.4), so two overlapping writes in flight could land in one order on one
 * replica and the other order on the next, and the replicas would differ
 * for good.  With at most one write in flight over any byte, the replicas
 * agree whatever order each applies them in: writes to disjoint ranges
 * commute.
 *
 * The list is in the order ranges were taken.  A fast write only tries
 * (cl_wrange_try()): if its range overlaps any range held or awaited, it
 * is declined and the caller takes the blocking path, which waits
 * (cl_wrange_wait()) behind the overlapping ranges taken before it, and
 * only those, so a blocking write is never starved by later fast ones.
 * Everything is under the inode's lock; a range's owner embeds the
 * struct cl_wrange and keeps it until cl_wrange_end().
 */
#include "cl_internal.h"

static bool overlap(const struct cl_wrange *r, uint64_t off, uint64_t end)
{
    return r->off < end && off < r->end;
}

static void append_locked(struct cl_inode *n, struct cl_wrange *r,
                          uint64_t off, uint64_t end)
{
    *r = (struct cl_wrange){.off = off, .end = end, .prev = n->wr_tail};
    if (n->wr_tail)
        n->wr_tail->next = r;
    else
        n->wr_head = r;
    n->wr_tail = r;
}

bool cl_wrange_try(struct cl_inode *n, struct cl_wrange *r, uint64_t off,
                   uint64_t end)
{
    pthread_mutex_lock(&n->lock);
    for (const struct cl_wrange *o = n->wr_head; o; o = o->next) {
        if (overlap(o, off, end)) {
            pthread_mutex_unlock(&n->lock);
            return false;
        }
    }
    append_locked(n, r, off, end);
    pthread_mutex_unlock(&n->lock);
    return true;
}

/* Does a range taken before @r overlap it? */
static bool blocked_locked(const struct cl_wrange *r)
{
    for (const struct cl_wrange *o = r->prev; o; o = o->prev)
        if (overlap(o, r->off, r->end))
            return true;
    return false;
}

void cl_wrange_wait(struct cl_inode *n, struct cl_wrange *r, uint64_t off,
                    uint64_t end)
{
    pthread_mutex_lock(&n->lock);
    append_locked(n, r, off, end);
    if (blocked_locked(r)) {
        n->wr_waiters++;
        while (blocked_locked(r))
            blocking_cond_wait(&n->wr_cv, &n->lock);
        n->wr_waiters--;
    }
    pthread_mutex_unlock(&n->lock);
}

void cl_wrange_end(struct cl_inode *n, struct cl_wrange *r)
{
    pthread_mutex_lock(&n->lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        n->wr_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        n->wr_tail = r->prev;
    if (n->wr_waiters > 0)
        pthread_cond_broadcast(&n->wr_cv);
    pthread_mutex_unlock(&n->lock);
}
