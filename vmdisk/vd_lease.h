/* vd_lease.h: the image writer lease, tessera-nbd's side (vd_lease.c).
 *
 * Used by vd_tessera.c only: every image opened for writing holds the
 * image's lease (or the hand-over standby place) through one struct
 * vd_lease per inode, shared by every connection of the process that has
 * the image open for writing.  docs/vmdisk.md, "Live-migration hand-over".
 */
#ifndef TESSERA_VD_LEASE_H
#define TESSERA_VD_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "cl.h"

struct vd_leases;
struct vd_lease;

/* What the image's other caches must do when its lease changes hands. */
struct vd_lease_hooks {
    /* Another process wrote, or will write, image @ino: forget its
     * bytes.  Runs with the image's gate closed (nothing in flight). */
    void (*drop)(void *arg, uint64_t ino);
    void *arg;
};

/* One entry of an IMAGE_LEASE_WAIT answer. */
struct vd_lease_news {
    uint64_t ino;
    uint32_t state; /* PROTO_LEASE_RECALL, _LOST */
};

/* What the lease table needs from metad and the client library: the real
 * one is built by vd_leases_new() over a struct cl_client; unit tests
 * pass a fake.  Every call comes with @arg. */
struct vd_lease_io {
    /* IMAGE_LEASE @op on @ino: *result (PROTO_LEASE_GRANTED...), and when
     * @why is not NULL a sentence naming the holder.  0 or -errno. */
    int (*lease)(void *arg, uint32_t op, uint64_t ino, const char *path,
                 uint32_t *result, char *why, size_t why_len);
    /* One IMAGE_LEASE_WAIT long poll naming @inos (@n of them), waiting
     * at most @timeout_ms; its answer into @news (room for
     * PROTO_LEASE_WAIT_MAX), counted in *nnews.  0 or -errno. */
    int (*wait)(void *arg, const uint64_t *inos, size_t n,
                unsigned timeout_ms, struct vd_lease_news *news,
                size_t *nnews);
    /* A reference on the open inode @ino, and its release. */
    int (*open)(void *arg, uint64_t ino, struct cl_inode **node);
    void (*put)(void *arg, struct cl_inode *node);
    /* Make everything written to @node durable (the hand-over flush). */
    int (*sync)(void *arg, struct cl_inode *node);
    /* Forget the cached chunk locations of @ino. */
    void (*forget)(void *arg, uint64_t ino);
    void *arg;
};

/* The lease table of one tessera-nbd, over @cl (borrowed: it must outlive
 * the table); @hooks is copied (NULL: none).  Starts the thread that
 * answers recalls.  Caller owns *out: vd_leases_free().  -ENOMEM, -errno
 * from pthread_create(). */
int vd_leases_new(struct cl_client *cl, const struct vd_lease_hooks *hooks,
                  struct vd_leases **out);
/* The same over @io (copied). */
int vd_leases_new_io(const struct vd_lease_io *io,
                     const struct vd_lease_hooks *hooks,
                     struct vd_leases **out);
/* Stop the recall thread and free @ls (NULL is fine).  Every lease must
 * have been closed. */
void vd_leases_free(struct vd_leases *ls);

/* Take the writer lease of @ino for an image opened for writing: granted,
 * or the standby place when a hand-over is armed.  The lease keeps its own
 * reference on the client's open inode; @path (borrowed) names the image
 * in messages.  Caller owns *out: vd_lease_close().  -EBUSY when another
 * session writes the image, with a sentence for the NBD client in @why
 * (@why_len bytes, NUL-terminated); other -errno from metad. */
int vd_lease_open(struct vd_leases *ls, uint64_t ino, const char *path,
                  char *why, size_t why_len, struct vd_lease **out);
/* Drop one user of @l (NULL is fine); the last one gives the lease back. */
void vd_lease_close(struct vd_leases *ls, struct vd_lease *l);

/* Around every operation on an image open for writing.  Before a read
 * (@write false) it only waits out a recall in progress.  Before a write,
 * zero, trim or flush (@write true) a standby first takes the lease over
 * (the hand-over switch-over); after the lease went elsewhere it fails
 * with -EROFS.  On 0 the caller must call vd_lease_end(). */
int vd_lease_begin(struct vd_leases *ls, struct vd_lease *l, bool write);
/* The same without ever waiting, for the fast path: -EAGAIN when a recall
 * or hand-over is in progress or waiting, or when @write and this process
 * is not the writer (vd_lease_begin() then knows what to do).  The matching
 * vd_lease_end() may run on any thread. */
int vd_lease_try_begin(struct vd_leases *ls, struct vd_lease *l, bool write);
void vd_lease_end(struct vd_lease *l);
/* True while this process is the image's writer (not standby, not lost). */
bool vd_lease_held(struct vd_leases *ls, struct vd_lease *l);
/* For a flush after the lease was lost: 0 when everything written before
 * was flushed at the hand-over, else the error that flush met. */
int vd_lease_lost_status(struct vd_lease *l);

#endif
