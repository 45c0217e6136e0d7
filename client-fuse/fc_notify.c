/* fc_notify.c: callback breaks reach the kernel's caches.
 *
 * The client library calls fc_notify_break() from its break worker
 * (cl_callback.c) after dropping its own caches.  The kernel is told with
 * fuse_lowlevel_notify_inval_entry() (an entry of a directory changed)
 * and fuse_lowlevel_notify_inval_inode() (attributes only, or attributes
 * and pages).  Those calls can block on kernel locks that a FUSE request
 * of ours holds while it waits on metad, and metad may be waiting for
 * this very break's answer: so they run on a thread of their own, never
 * inside a request handler, and the break worker waits for one at most
 * WAIT_MS before answering metad anyway.  In the normal case the kernel's
 * caches are gone before metad acknowledges the change to its author; in
 * the deadlock case the answer is late by WAIT_MS and the invalidation
 * completes once the request that held the lock does.
 */
#define FUSE_USE_VERSION 35

#include "fc_internal.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blocking.h"
#include "log.h"

#define WAIT_MS 300

struct job {
    uint64_t ino;
    uint32_t flags;
    char name[PROTO_NAME_MAX + 1];
    bool done;
    unsigned refs; /* the queue's and the waiter's */
    struct job *next;
};

struct fc_notify {
    struct fuse_session *se;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* new job, or stop */
    pthread_cond_t done; /* a job finished */
    struct job *head, *tail;
    bool stop;
    pthread_t thread;
};

static void job_put_locked(struct job *j)
{
    if (--j->refs == 0)
        free(j);
}

static void run(struct fc_notify *nt, const struct job *j)
{
    int rc = 0;

    if (j->flags & PROTO_CB_ENTRY)
        rc = fuse_lowlevel_notify_inval_entry(nt->se, j->ino, j->name,
                                              strlen(j->name));
    /* A directory's entries changed: its pages are the kernel's copy of
     * the listing (fc_ops.c, op_opendir), which it would otherwise check
     * only against the directory's version and mtime. */
    if (j->flags & (PROTO_CB_DATA | PROTO_CB_ENTRY))
        rc = fuse_lowlevel_notify_inval_inode(nt->se, j->ino, 0, 0);
    else if (j->flags & PROTO_CB_ATTR)
        rc = fuse_lowlevel_notify_inval_inode(nt->se, j->ino, -1, 0);
    /* ENOENT: the kernel does not cache it, which is as good. */
    if (rc < 0 && rc != -ENOENT)
        log_debug("fc.notify", "invalidate: %s ino=%llu flags=0x%x",
                  strerror(-rc), (unsigned long long)j->ino, j->flags);
}

static void *notify_main(void *arg)
{
    struct fc_notify *nt = arg;

    pthread_mutex_lock(&nt->lock);
    for (;;) {
        while (!nt->stop && !nt->head)
            pthread_cond_wait(&nt->cond, &nt->lock);
        if (nt->stop)
            break;
        struct job *j = nt->head;
        nt->head = j->next;
        if (!nt->head)
            nt->tail = NULL;
        pthread_mutex_unlock(&nt->lock);
        run(nt, j);
        pthread_mutex_lock(&nt->lock);
        j->done = true;
        pthread_cond_broadcast(&nt->done);
        job_put_locked(j);
    }
    while (nt->head) {
        struct job *j = nt->head;
        nt->head = j->next;
        j->done = true;
        job_put_locked(j);
    }
    pthread_cond_broadcast(&nt->done);
    pthread_mutex_unlock(&nt->lock);
    return NULL;
}

int fc_notify_start(struct fuse_session *se, struct fc_notify **out)
{
    struct fc_notify *nt = calloc(1, sizeof(*nt));
    if (!nt)
        return -ENOMEM;
    nt->se = se;
    pthread_mutex_init(&nt->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&nt->cond, NULL);
    pthread_cond_init(&nt->done, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -pthread_create(&nt->thread, NULL, notify_main, nt);
    if (rc < 0) {
        free(nt);
        return rc;
    }
    *out = nt;
    return 0;
}

void fc_notify_stop(struct fc_notify *nt)
{
    if (!nt)
        return;
    pthread_mutex_lock(&nt->lock);
    nt->stop = true;
    pthread_cond_broadcast(&nt->cond);
    pthread_mutex_unlock(&nt->lock);
    pthread_join(nt->thread, NULL);
    pthread_cond_destroy(&nt->cond);
    pthread_cond_destroy(&nt->done);
    pthread_mutex_destroy(&nt->lock);
    free(nt);
}

void fc_notify_break(void *arg, uint64_t ino, uint32_t flags, const char *name)
{
    struct fc_fs *fs = arg;
    struct fc_notify *nt = fs->notify;

    /* Another client changed the inode: its xattrs may have changed. */
    fc_inotab_forget(fs->nocap, ino);
    /* ... and, for a directory, its attributes and names we answer from. */
    fc_inotab_forget(fs->dirattr, ino);
    fc_dirlist_forget(fs->dirlist, ino);
    if (!nt)
        return;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->ino = ino;
    j->flags = flags;
    snprintf(j->name, sizeof(j->name), "%s", name ? name : "");
    j->refs = 2;

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += WAIT_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&nt->lock);
    if (nt->stop) {
        pthread_mutex_unlock(&nt->lock);
        free(j);
        return;
    }
    if (nt->tail)
        nt->tail->next = j;
    else
        nt->head = j;
    nt->tail = j;
    pthread_cond_broadcast(&nt->cond);
    /* Noted (blocking.h): the kernel may be waiting for a request to be
     * read before it can drop what the job asks. */
    while (!j->done &&
           blocking_cond_timedwait(&nt->done, &nt->lock, &until) == 0)
        ;
    if (!j->done)
        log_debug("fc.notify", "invalidate: slow, answering first: ino=%llu",
                  (unsigned long long)ino);
    job_put_locked(j);
    pthread_mutex_unlock(&nt->lock);
}
