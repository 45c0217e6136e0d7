/* fc_groups.c: the supplementary groups of the threads that call the
 * mount, kept for a moment.
 *
 * FUSE tells the mount the caller's uid, gid and thread id, not its
 * supplementary groups; libfuse reads them from /proc/TID/task/TID/status
 * (fuse_req_getgroups()), an open, a read and a close of a file the kernel
 * formats anew each time.  A create, open or setattr needs them for
 * metad's permission check, so a busy mount read that file more than a
 * thousand times a second.  The groups are now kept per thread id for
 * -o groups_cache seconds (default 1, 0: not kept), with the uid and gid
 * they were read under: a thread seen with another uid or gid is read
 * again.
 *
 * What a kept list can cost: the mount runs with default_permissions, so
 * the kernel checks every access against the caller's current groups
 * before the request reaches us; metad's check is the second one.  A
 * thread that joined a group (setgroups()) less than the cache time ago
 * may be refused by metad where the kernel let it through; one that left
 * a group was already refused by the kernel.  A thread id reused by a new
 * thread within the cache time gets the old thread's groups only if it
 * also has the same uid and gid.
 *
 * The table is direct-mapped by thread id; a collision replaces the
 * older entry.  One mutex guards it: the time inside is a copy of at
 * most PROTO_MAX_GROUPS ids.
 */
#include "fc_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 256

struct slot {
    uint32_t pid, uid, gid;
    uint64_t ms; /* when read; 0: empty */
    int n;       /* groups kept, <= PROTO_MAX_GROUPS */
    uint32_t groups[PROTO_MAX_GROUPS];
};

struct fc_groups {
    pthread_mutex_t lock;
    uint64_t ttl_ms;
    uint64_t reads, hits; /* for tests and metrics */
    struct slot slots[SLOTS];
};

int fc_groups_new(uint32_t ttl_ms, struct fc_groups **out)
{
    struct fc_groups *g = calloc(1, sizeof(*g));

    if (!g)
        return -ENOMEM;
    pthread_mutex_init(&g->lock, NULL);
    g->ttl_ms = ttl_ms;
    *out = g;
    return 0;
}

void fc_groups_free(struct fc_groups *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->lock);
    free(g);
}

int fc_groups_get(struct fc_groups *g, uint32_t pid, uint32_t uid, uint32_t gid,
                  uint64_t now_ms, fc_groups_read_fn read, void *arg,
                  uint32_t *groups)
{
    struct slot *s = &g->slots[pid % SLOTS];
    int n;

    if (g->ttl_ms) {
        pthread_mutex_lock(&g->lock);
        if (s->ms && s->pid == pid && s->uid == uid && s->gid == gid &&
            now_ms >= s->ms && now_ms - s->ms < g->ttl_ms) {
            n = s->n;
            memcpy(groups, s->groups, (size_t)n * sizeof(*groups));
            g->hits++;
            pthread_mutex_unlock(&g->lock);
            return n;
        }
        pthread_mutex_unlock(&g->lock);
    }
    n = read(arg, groups);
    if (n < 0)
        return n; /* not kept: the next call asks again */
    if (n > PROTO_MAX_GROUPS)
        n = PROTO_MAX_GROUPS;
    pthread_mutex_lock(&g->lock);
    g->reads++;
    if (g->ttl_ms) {
        s->pid = pid;
        s->uid = uid;
        s->gid = gid;
        s->ms = now_ms ? now_ms : 1;
        s->n = n;
        memcpy(s->groups, groups, (size_t)n * sizeof(*groups));
    }
    pthread_mutex_unlock(&g->lock);
    return n;
}

void fc_groups_stats(struct fc_groups *g, uint64_t *reads, uint64_t *hits)
{
    pthread_mutex_lock(&g->lock);
    *reads = g->reads;
    *hits = g->hits;
    pthread_mutex_unlock(&g->lock);
}
