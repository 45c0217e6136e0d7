/* vd_backend.h: the image backend under tessera-nbd.
 *
 * The NBD side (handshake, commands) knows images only through this
 * interface, so the storage below can change without touching it:
 *
 *   vd_mem.c      sparse images in memory (unit tests, protocol testing)
 *   vd_file.c     files under a local directory (integration tests, baseline)
 *   vd_tessera.c  images stored in Tessera (over the client library, cl.h)
 *
 * An export name selects an image; each NBD connection opens its own
 * struct vd_image, and several connections may open the same name at once.
 *
 * Threads.  Every operation blocks and may be called from several worker
 * threads at once on the same struct vd_image (requests of one connection
 * run in parallel, out of order), and on different images of the same
 * name.  Operations return 0 or -errno.
 *
 * Durability and multi-conn.  A write is durable once pwrite() with @fua,
 * or a later flush() on the same image, returned 0.  A backend sets
 * VD_BACKEND_MULTI_CONN only when the stronger rule holds: flush() on any
 * struct vd_image of a name makes durable every write that returned on any
 * other struct vd_image of that name before the flush() started, and a read
 * sees every write that returned before it started, whichever connection
 * made it.  Only then does the server advertise NBD_FLAG_CAN_MULTI_CONN,
 * which lets clients spread one disk over several connections.
 */
#ifndef TESSERA_VD_BACKEND_H
#define TESSERA_VD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extent flags reported by block_status (the base:allocation bits). */
#define VD_EXTENT_HOLE (1u << 0) /* not allocated */
#define VD_EXTENT_ZERO (1u << 1) /* reads as zeros */
/* Extent flag reported by changes(): may differ from the other file. */
#define VD_EXTENT_CHANGED (1u << 2)

/* Backend capabilities (struct vd_backend.caps). */
#define VD_BACKEND_MULTI_CONN (1u << 0) /* see "Durability" above */

struct vd_backend;

/* One open image.  Backends embed it as the first member of their own
 * struct and cast; the NBD side reads only these fields. */
struct vd_image {
    bool readonly; /* as opened: writes fail with -EROFS */
};

/* One extent of block_status: @length bytes with VD_EXTENT_* @flags.
 * Return 0 to get the next extent, 1 to stop early, or -errno to fail the
 * whole call (block_status then returns it). */
typedef int (*vd_extent_cb)(void *arg, uint64_t length, uint32_t flags);
/* One export name of list(); @name is borrowed.  Return 0 to continue,
 * -errno to stop (list then returns it). */
typedef int (*vd_name_cb)(void *arg, const char *name);
/* Completion of a fast read or write (aio_pread, aio_pwrite): 0, or -errno
 * after which the caller runs the operation again with pread/pwrite. */
typedef void (*vd_done_cb)(void *arg, int status);

struct vd_backend_ops {
    /* Open export @name (borrowed; never empty).  Caller owns *out; close
     * it with close().  -ENOENT when there is no such image, -EACCES when
     * it may not be opened, -EINVAL for a malformed name, -EBUSY when
     * another writer has it.  An image that can only be read (a snapshot)
     * opens with readonly set even when @readonly is false.  On failure
     * the backend may leave a sentence for the NBD client in @why (@why_len
     * bytes, NUL-terminated; @why may be NULL). */
    int (*open)(void *ctx, const char *name, bool readonly,
                struct vd_image **out, char *why, size_t why_len);
    /* Release @img (NULL is fine).  No operation may be running on it. */
    void (*close)(struct vd_image *img);
    /* Size in bytes, fixed while the image is open; -errno on failure. */
    int64_t (*size)(struct vd_image *img);
    /* Read or write exactly @len bytes at @off, which the caller has
     * checked lies inside the image.  Unwritten bytes read as zeros. */
    int (*pread)(struct vd_image *img, void *buf, uint32_t len, uint64_t off);
    int (*pwrite)(struct vd_image *img, const void *buf, uint32_t len,
                  uint64_t off, bool fua);
    /* Optional fast path (NULL when the backend has none): start the same
     * read or write without blocking the calling thread, which goes on
     * reading requests.  0 when started: @done runs exactly once, on any
     * thread and possibly before this returns; @buf stays the caller's
     * until then.  -EAGAIN when it cannot be done that way now: nothing
     * was done and @done is never called.  A write reported done counts
     * for flush() as one returned by pwrite(). */
    int (*aio_pread)(struct vd_image *img, void *buf, uint32_t len,
                     uint64_t off, vd_done_cb done, void *arg);
    int (*aio_pwrite)(struct vd_image *img, const void *buf, uint32_t len,
                      uint64_t off, bool fua, vd_done_cb done, void *arg);
    /* Make every write that returned before this call durable. */
    int (*flush)(struct vd_image *img);
    /* Hint that [off, off+len) is no longer needed; its content afterwards
     * is unspecified.  May do nothing. */
    int (*trim)(struct vd_image *img, uint64_t len, uint64_t off, bool fua);
    /* Make [off, off+len) read as zeros.  @may_trim: holes may be punched.
     * @fast_only: fail with -ENOTSUP rather than do slow work (writing the
     * zeros); the range is then unchanged.  Not durable until flush(). */
    int (*zero)(struct vd_image *img, uint64_t len, uint64_t off, bool may_trim,
                bool fast_only);
    /* Describe [off, off+len) as consecutive extents from @off, calling
     * @cb for each; it may stop before @len is covered (the caller asks
     * again), and must report at least one extent when it returns 0. */
    int (*block_status)(struct vd_image *img, uint64_t len, uint64_t off,
                        vd_extent_cb cb, void *arg);
    /* Optional (NULL: no tessera:changes-since: metadata context).  0 when
     * @since (borrowed) names a file the changes of an image can be told
     * against, -ENOENT or -EINVAL otherwise. */
    int (*changes_check)(void *ctx, const char *since);
    /* Describe [off, off+len) as block_status does, each extent flagged
     * VD_EXTENT_CHANGED when its bytes may differ from file @since's, 0
     * when they are the same (docs/vmdisk.md, "Incremental diffs"). */
    int (*changes)(struct vd_image *img, const char *since, uint64_t len,
                   uint64_t off, vd_extent_cb cb, void *arg);
    /* Optional (NULL: a TLS username selects nothing).  May identity @user
     * (a TLS username, borrowed) open export @name?  0, setting *readonly
     * when it may only read; -EACCES with a sentence for the client in
     * @why (@why_len bytes) when not.  Any thread may call it. */
    int (*authorize)(void *ctx, const char *user, const char *name,
                     bool *readonly, char *why, size_t why_len);
    /* Call @cb for each export name.  -ENOTSUP when listing is refused. */
    int (*list)(void *ctx, vd_name_cb cb, void *arg);
    /* Release the backend's own state (called once, at exit). */
    void (*free)(void *ctx);
};

struct vd_backend {
    const char *name; /* "mem", "dir", "tessera": for logs and descriptions */
    const struct vd_backend_ops *ops;
    void *ctx;
    unsigned caps; /* VD_BACKEND_* */
};

/* Release @be and its state (NULL is fine). */
void vd_backend_free(struct vd_backend *be);

/* vd_tessera.c: the namespace path export @name opens, normalised as
 * auth_caps_reach() wants it ("/a/b": one slash between parts, none at
 * the end) into @out (@size bytes).  -EINVAL for a "." or ".." part or a
 * path too long. */
int vd_export_path(const char *name, char *out, size_t size);

/* vd_mem.c: images live in memory until the backend is freed.  Caller owns
 * *out: vd_backend_free().  -ENOMEM. */
int vd_mem_new(struct vd_backend **out);
/* Add an image of @size bytes (all zeros) named @name (copied).  -EEXIST,
 * -EINVAL for an empty name, -ENOMEM.  Not thread-safe against open(). */
int vd_mem_add(struct vd_backend *be, const char *name, uint64_t size);
/* Test hook: the next pread, pwrite, flush, trim, zero or block_status on
 * image @name fails with @neg_errno.  -ENOENT when there is no such image. */
int vd_mem_fail_next(struct vd_backend *be, const char *name, int neg_errno);

/* vd_file.c: export names are paths of regular files relative to @dir
 * (copied); they may not leave it.  Caller owns *out: vd_backend_free().
 * -errno when @dir cannot be opened as a directory. */
int vd_file_new(const char *dir, struct vd_backend **out);

/* vd_tessera.c: export names are paths of regular files in the Tessera
 * namespace served by metad at @meta; list() shows the regular files in
 * @images_dir (NULL: "/").  One session with metad for the backend. */
enum vd_cache_mode {
    VD_CACHE_NONE = 0,     /* every read goes to the servers */
    VD_CACHE_WRITETHROUGH, /* reads may be served from the block cache */
    VD_CACHE_WRITEBACK,    /* that, and writes wait in memory for FLUSH */
    /* Write-through until the image's first FLUSH, write-back from then
     * on: a client that flushes gets write-back, one that never does
     * loses nothing to a crash (librbd's "writethrough until flush"). */
    VD_CACHE_AUTO,
};
#define VD_CACHE_SIZE_DEFAULT (64ull << 20)      /* bytes per image */
#define VD_CACHE_MAX_DIRTY_DEFAULT (32ull << 20) /* bytes, the process */
#define VD_CACHE_MAX_DIRTY_AGE_DEFAULT_MS 1000u

struct vd_tessera_opts {
    const char *meta;       /* borrowed during vd_tessera_new() */
    const char *images_dir; /* likewise; NULL: "/" */
    const char *key;        /* key file (--key, $TESSERA_KEY); NULL: no key */
    bool secure;            /* --secure: encrypted links (needs a key) */
    enum vd_cache_mode cache;
    uint64_t cache_size; /* bytes per image; 0: VD_CACHE_SIZE_DEFAULT */
    /* VD_CACHE_WRITEBACK, _AUTO: unflushed bytes held at most (0: the default)
     * and how long one may wait before it is written (0: the default). */
    uint64_t max_dirty;
    uint32_t max_dirty_age_ms;
    /* Writes of up to this many bytes straight to every replica; 0: all
     * down the chain (cl_opts.direct_write_max). */
    uint32_t direct_write_max;
};

/* Caller owns *out: vd_backend_free().  -errno when metad cannot be
 * reached. */
int vd_tessera_new(const struct vd_tessera_opts *o, struct vd_backend **out);

#endif
