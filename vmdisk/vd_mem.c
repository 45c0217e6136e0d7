/* vd_mem.c: a sparse in-memory image backend.
 *
 * Serves the unit tests and `tessera-nbd --backend mem`, which exercises
 * the NBD side without any storage underneath.  An image is a two-level
 * table of 64 KiB pages: a directory per 64 MiB, allocated on first write,
 * and pages allocated on first write.  A page that was never written (or
 * was trimmed away whole) is a hole and reads as zeros; block_status
 * reports pages, not bytes, so a partly written page is all data.
 *
 * Every struct vd_image of a name shares one struct mem_disk, and data is
 * never anywhere but in that shared memory, so a flush on one connection
 * trivially covers writes from all of them: the backend is multi-conn
 * safe.  Nothing is durable past the process, and flush does nothing.
 *
 * A per-disk rwlock makes reads run in parallel and writes exclusive.
 * Images live until the backend is freed; vd_mem_add() creates them.
 */
#include "vd_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_SHIFT 16
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define DIR_PAGES 1024ull /* pages per directory: 64 MiB */

struct mem_disk {
    struct mem_disk *next;
    char *name;
    uint64_t size;
    pthread_rwlock_t lock;
    uint8_t ***dirs; /* [ndirs][DIR_PAGES] pages, NULL = hole */
    uint64_t ndirs;
    int fail_next; /* test hook: -errno for the next operation, or 0 */
};

struct mem_ctx {
    pthread_mutex_t lock; /* guards the list and every fail_next */
    struct mem_disk *disks;
};

struct mem_image {
    struct vd_image base; /* first: the NBD side casts */
    struct mem_ctx *ctx;
    struct mem_disk *disk;
};

static struct mem_disk *disk_find(struct mem_ctx *ctx, const char *name)
{
    for (struct mem_disk *d = ctx->disks; d; d = d->next)
        if (!strcmp(d->name, name))
            return d;
    return NULL;
}

static void disk_free(struct mem_disk *d)
{
    for (uint64_t i = 0; d->dirs && i < d->ndirs; i++) {
        if (!d->dirs[i])
            continue;
        for (uint64_t j = 0; j < DIR_PAGES; j++)
            free(d->dirs[i][j]);
        free(d->dirs[i]);
    }
    free(d->dirs);
    pthread_rwlock_destroy(&d->lock);
    free(d->name);
    free(d);
}

/* The injected failure, consumed once. */
static int take_fail(struct mem_image *mi)
{
    pthread_mutex_lock(&mi->ctx->lock);
    int err = mi->disk->fail_next;
    mi->disk->fail_next = 0;
    pthread_mutex_unlock(&mi->ctx->lock);
    return err;
}

/* The page holding byte @off, or NULL for a hole.  Caller holds the lock. */
static uint8_t *page_get(struct mem_disk *d, uint64_t off)
{
    uint64_t pg = off >> PAGE_SHIFT;
    uint8_t **dir = d->dirs[pg / DIR_PAGES];
    return dir ? dir[pg % DIR_PAGES] : NULL;
}

/* The page holding byte @off, allocated (zeroed) when it was a hole.
 * Caller holds the write lock.  NULL when out of memory. */
static uint8_t *page_make(struct mem_disk *d, uint64_t off)
{
    uint64_t pg = off >> PAGE_SHIFT;
    uint8_t ***dir = &d->dirs[pg / DIR_PAGES];
    if (!*dir) {
        *dir = calloc(DIR_PAGES, sizeof(**dir));
        if (!*dir)
            return NULL;
    }
    uint8_t **page = &(*dir)[pg % DIR_PAGES];
    if (!*page)
        *page = calloc(1, PAGE_SIZE);
    return *page;
}

static void page_drop(struct mem_disk *d, uint64_t off)
{
    uint64_t pg = off >> PAGE_SHIFT;
    uint8_t **dir = d->dirs[pg / DIR_PAGES];
    if (dir) {
        free(dir[pg % DIR_PAGES]);
        dir[pg % DIR_PAGES] = NULL;
    }
}

/* Length of the piece of [off, end) that stays inside off's page. */
static uint64_t piece(uint64_t off, uint64_t end)
{
    uint64_t room = PAGE_SIZE - (off & (PAGE_SIZE - 1));
    return end - off < room ? end - off : room;
}

static int mem_open(void *vctx, const char *name, bool readonly,
                    struct vd_image **out, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    struct mem_ctx *ctx = vctx;
    struct mem_disk *d;

    pthread_mutex_lock(&ctx->lock);
    d = disk_find(ctx, name);
    pthread_mutex_unlock(&ctx->lock);
    if (!d)
        return -ENOENT;
    struct mem_image *mi = calloc(1, sizeof(*mi));
    if (!mi)
        return -ENOMEM;
    mi->base.readonly = readonly;
    mi->ctx = ctx;
    mi->disk = d;
    *out = &mi->base;
    return 0;
}

static void mem_close(struct vd_image *img)
{
    free(img);
}

static int64_t mem_size(struct vd_image *img)
{
    return (int64_t)((struct mem_image *)img)->disk->size;
}

static int mem_pread(struct vd_image *img, void *buf, uint32_t len,
                     uint64_t off)
{
    struct mem_image *mi = (struct mem_image *)img;
    struct mem_disk *d = mi->disk;
    uint8_t *p = buf;
    uint64_t end = off + len;
    int err = take_fail(mi);

    if (err)
        return err;
    pthread_rwlock_rdlock(&d->lock);
    while (off < end) {
        uint64_t n = piece(off, end);
        uint8_t *page = page_get(d, off);
        if (page)
            memcpy(p, page + (off & (PAGE_SIZE - 1)), n);
        else
            memset(p, 0, n);
        p += n;
        off += n;
    }
    pthread_rwlock_unlock(&d->lock);
    return 0;
}

static int mem_pwrite(struct vd_image *img, const void *buf, uint32_t len,
                      uint64_t off, bool fua)
{
    struct mem_image *mi = (struct mem_image *)img;
    struct mem_disk *d = mi->disk;
    const uint8_t *p = buf;
    uint64_t end = off + len;
    int rc = take_fail(mi);

    (void)fua; /* memory is as durable as it gets */
    if (rc)
        return rc;
    if (img->readonly)
        return -EROFS;
    pthread_rwlock_wrlock(&d->lock);
    while (off < end) {
        uint64_t n = piece(off, end);
        uint8_t *page = page_make(d, off);
        if (!page) {
            rc = -ENOMEM;
            break;
        }
        memcpy(page + (off & (PAGE_SIZE - 1)), p, n);
        p += n;
        off += n;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

static int mem_flush(struct vd_image *img)
{
    return take_fail((struct mem_image *)img);
}

/* Zero [off, off+len): whole pages become holes when @may_trim, others
 * are zeroed in place (allocated first when !@may_trim so the range stays
 * allocated, as NBD_CMD_FLAG_NO_HOLE asks). */
static int zero_range(struct mem_disk *d, uint64_t len, uint64_t off,
                      bool may_trim)
{
    uint64_t end = off + len;
    int rc = 0;

    pthread_rwlock_wrlock(&d->lock);
    while (off < end) {
        uint64_t n = piece(off, end);
        if (may_trim && n == PAGE_SIZE) {
            page_drop(d, off);
        } else {
            uint8_t *page = may_trim ? page_get(d, off) : page_make(d, off);
            if (!page && !may_trim) {
                rc = -ENOMEM;
                break;
            }
            if (page)
                memset(page + (off & (PAGE_SIZE - 1)), 0, n);
        }
        off += n;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

static int mem_trim(struct vd_image *img, uint64_t len, uint64_t off, bool fua)
{
    struct mem_image *mi = (struct mem_image *)img;
    int rc = take_fail(mi);

    (void)fua;
    if (rc)
        return rc;
    if (img->readonly)
        return -EROFS;
    return zero_range(mi->disk, len, off, true);
}

static int mem_zero(struct vd_image *img, uint64_t len, uint64_t off,
                    bool may_trim, bool fast_only)
{
    struct mem_image *mi = (struct mem_image *)img;
    int rc = take_fail(mi);

    (void)fast_only; /* zeroing memory is always fast */
    if (rc)
        return rc;
    if (img->readonly)
        return -EROFS;
    return zero_range(mi->disk, len, off, may_trim);
}

static int mem_block_status(struct vd_image *img, uint64_t len, uint64_t off,
                            vd_extent_cb cb, void *arg)
{
    struct mem_image *mi = (struct mem_image *)img;
    struct mem_disk *d = mi->disk;
    uint64_t end = off + len;
    int rc = take_fail(mi);

    if (rc)
        return rc;
    pthread_rwlock_rdlock(&d->lock);
    while (off < end && rc == 0) {
        bool hole = page_get(d, off) == NULL;
        uint64_t run = 0;
        while (off + run < end && (page_get(d, off + run) == NULL) == hole)
            run += piece(off + run, end);
        rc = cb(arg, run, hole ? VD_EXTENT_HOLE | VD_EXTENT_ZERO : 0);
        off += run;
    }
    pthread_rwlock_unlock(&d->lock);
    return rc < 0 ? rc : 0;
}

static int mem_list(void *vctx, vd_name_cb cb, void *arg)
{
    struct mem_ctx *ctx = vctx;
    int rc = 0;

    pthread_mutex_lock(&ctx->lock);
    for (struct mem_disk *d = ctx->disks; d && rc == 0; d = d->next)
        rc = cb(arg, d->name);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

static void mem_free(void *vctx)
{
    struct mem_ctx *ctx = vctx;
    if (!ctx)
        return;
    while (ctx->disks) {
        struct mem_disk *d = ctx->disks;
        ctx->disks = d->next;
        disk_free(d);
    }
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

static const struct vd_backend_ops mem_ops = {
    .open = mem_open,
    .close = mem_close,
    .size = mem_size,
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .flush = mem_flush,
    .trim = mem_trim,
    .zero = mem_zero,
    .block_status = mem_block_status,
    .list = mem_list,
    .free = mem_free,
};

int vd_mem_new(struct vd_backend **out)
{
    struct vd_backend *be = calloc(1, sizeof(*be));
    struct mem_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!be || !ctx) {
        free(be);
        free(ctx);
        return -ENOMEM;
    }
    pthread_mutex_init(&ctx->lock, NULL);
    be->name = "mem";
    be->ops = &mem_ops;
    be->ctx = ctx;
    be->caps = VD_BACKEND_MULTI_CONN;
    *out = be;
    return 0;
}

int vd_mem_add(struct vd_backend *be, const char *name, uint64_t size)
{
    struct mem_ctx *ctx = be->ctx;
    uint64_t dir_bytes = DIR_PAGES * PAGE_SIZE;

    if (!name[0])
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX - dir_bytes)
        return -EFBIG;
    struct mem_disk *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->size = size;
    d->ndirs = (size + dir_bytes - 1) / dir_bytes;
    d->name = strdup(name);
    d->dirs = calloc(d->ndirs ? d->ndirs : 1, sizeof(*d->dirs));
    pthread_rwlock_init(&d->lock, NULL);
    if (!d->name || !d->dirs) {
        disk_free(d);
        return -ENOMEM;
    }
    pthread_mutex_lock(&ctx->lock);
    if (disk_find(ctx, name)) {
        pthread_mutex_unlock(&ctx->lock);
        disk_free(d);
        return -EEXIST;
    }
    d->next = ctx->disks;
    ctx->disks = d;
    pthread_mutex_unlock(&ctx->lock);
    return 0;
}

int vd_mem_fail_next(struct vd_backend *be, const char *name, int neg_errno)
{
    struct mem_ctx *ctx = be->ctx;
    int rc = -ENOENT;

    pthread_mutex_lock(&ctx->lock);
    struct mem_disk *d = disk_find(ctx, name);
    if (d) {
        d->fail_next = neg_errno;
        rc = 0;
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}
