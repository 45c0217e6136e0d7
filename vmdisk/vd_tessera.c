/* vd_tessera.c: the image backend over Tessera itself (the default).
 *
 * An export name is the path of a regular file in the Tessera namespace
 * ("images/vm1.raw" or "/images/vm1.raw"), resolved with LOOKUP from the
 * root as uid 0; the image's size is the file's size when it is opened.
 * The bytes go through the client library (client/cl.h), the same data
 * path as the FUSE mount: reads from any replica with failover, writes
 * along the replica chain under a write lease, recovery from a failed
 * replica (docs/protocol.md §7, §8, §11.4).  One struct cl_client, so one
 * metad session, serves the whole process.
 *
 *   pread/pwrite   cl_file_read/cl_file_write; FUA writes with
 *                  PROTO_CHUNK_WRITE_SYNC (every replica fdatasyncs first)
 *   aio_pread/     the client's fast path (cl_file_read_async,
 *   aio_pwrite     cl_file_write_async): one-chunk I/O with the location
 *                  cached or the lease held, completed on the chunk
 *                  connection's reader thread (--cache writeback: a
 *                  write joins the client's delayed writes at once);
 *                  -EAGAIN otherwise
 *   flush          cl_file_sync: the delayed writes written back, then
 *                  CHUNK_SYNC of every chunk written through any image of
 *                  the same file since the last sync
 *   trim, zero     cl_file_zero: holes are skipped, ranges reaching the end
 *                  of a chunk are cut off with CHUNK_TRUNCATE (the servers
 *                  free the space), the rest is written with zeros
 *   block_status   cl_file_alloc: an empty chunk slot (chunk id 0) holding
 *                  none of the client's delayed writes is a hole that
 *                  reads as zeros; an allocated chunk is data
 *   changes        tessera:changes-since:SNAP: cl_changes_get() of SNAP
 *                  against the image (IMAGE_CHANGES, CHUNK_WMAP), per
 *                  4 KiB block, up to PROTO_LOCATE_MAX chunk slots a call
 *   list           the regular files of --images-dir (default "/")
 *
 * Writers and snapshots.  An image opened for writing takes the image's
 * writer lease from metad (vd_lease.c): a second writer elsewhere is
 * refused at open with a sentence naming the holder, and a live-migration
 * hand-over moves the lease at the destination's first write or flush.
 * Every operation runs inside vd_lease_begin()/vd_lease_end(), so a recall
 * flushes with nothing in flight; a fast operation enters with
 * vd_lease_try_begin() (never waiting: a recall under way sends it down
 * the blocking path) and leaves when it completes.  A read-only snapshot (OPEN
 * for writing fails with EROFS) is opened read-only: the NBD side then exports
 * it with NBD_FLAG_READ_ONLY.
 *
 * Multi-conn.  Every image open on one file shares the client's open
 * inode (cl_inode_open), and so its leases and its set of dirty chunks;
 * cl_file_sync() serialises syncs of an inode, so a flush on any
 * connection makes durable every write that returned on any other before
 * the flush began.  Reads go to the chunk servers, which see every write
 * that returned.  Hence VD_BACKEND_MULTI_CONN.
 *
 * Known gaps: WRITE_ZEROES with NO_HOLE may still leave holes (there is
 * no way to allocate a chunk without writing it), and a chunk zeroed
 * whole stays in the file map, reported as data.
 */
#include "vd_backend.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include "cl.h"
#include "log.h"
#include "vd_bcache.h"
#include "vd_lease.h"

#define ROOT_INO 1
#define NAME_MAX_LEN 4096
#define LIST_BATCH 256

/* The block cache of one image, shared by its connections. */
struct tess_cache {
    struct tess_cache *next;
    uint64_t ino;
    unsigned refs; /* under tess_ctx.lock */
    struct vd_bcache *bc;
};

struct tess_ctx {
    struct cl_client *cl;
    struct cl_auth *auth; /* the identity's key and ticket; NULL: none */
    struct vd_leases *leases;
    char *dir; /* --images-dir, without leading or trailing slashes */
    enum vd_cache_mode cache;
    uint64_t cache_size;
    pthread_mutex_t lock; /* @caches */
    struct tess_cache *caches;
};

struct tess_image {
    struct vd_image base; /* first: the NBD side casts */
    struct tess_ctx *ctx;
    struct cl_inode *node;  /* a reference on the client's open inode */
    struct vd_lease *lease; /* owned; NULL when read-only */
    struct tess_cache *cache; /* a reference, or NULL: not cached */
    bool snapshot;            /* read-only because nobody may write it */
    uint64_t ino;
    int64_t size;
};

static struct tess_image *image_of(struct vd_image *img)
{
    return (struct tess_image *)img;
}

static const struct proto_cred root_cred = {0};

/* Resolve @path (borrowed) from the root, component by component. */
static int resolve(struct tess_ctx *ctx, const char *path,
                   struct proto_attr *out)
{
    char comp[PROTO_NAME_MAX + 1];
    const char *p = path;
    uint64_t ino = ROOT_INO;
    int rc;

    if (strlen(path) > NAME_MAX_LEN)
        return -EINVAL;
    rc = cl_meta_getattr(ctx->cl, ROOT_INO, out);
    if (rc < 0)
        return rc;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, "/");
        if (n > PROTO_NAME_MAX)
            return -EINVAL;
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (!strcmp(comp, ".") || !strcmp(comp, ".."))
            return -EINVAL;
        if (!S_ISDIR(out->mode))
            return -ENOENT;
        rc = cl_meta_lookup(ctx->cl, &root_cred, ino, comp, out);
        if (rc < 0)
            return rc;
        ino = out->ino;
        p += n;
    }
    return 0;
}

/* Can @ino be opened for writing?  -EROFS for a read-only snapshot. */
static int writable(struct tess_ctx *ctx, uint64_t ino)
{
    struct proto_access_req q = {.cred = root_cred, .ino = ino, .mask = O_RDWR};
    struct proto_attr_rep out;
    struct rpc_reply rep;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &q);
    int rc = cl_meta_call(ctx->cl, PROTO_MSG_OPEN_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}

/* ---- Block cache -------------------------------------------------------- */

/* A reference on the block cache of @ino, made if needed; NULL when out
 * of memory (the image is then served uncached). */
static struct tess_cache *cache_get(struct tess_ctx *ctx, uint64_t ino)
{
    struct tess_cache *c;

    pthread_mutex_lock(&ctx->lock);
    for (c = ctx->caches; c && c->ino != ino; c = c->next)
        ;
    if (!c && (c = calloc(1, sizeof(*c))) != NULL) {
        if (vd_bcache_new(ctx->cache_size, &c->bc) < 0) {
            free(c);
            c = NULL;
        } else {
            c->ino = ino;
            c->next = ctx->caches;
            ctx->caches = c;
        }
    }
    if (c)
        c->refs++;
    pthread_mutex_unlock(&ctx->lock);
    return c;
}

static void cache_put(struct tess_ctx *ctx, struct tess_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&ctx->lock);
    if (--c->refs == 0) {
        struct tess_cache **pp = &ctx->caches;
        while (*pp != c)
            pp = &(*pp)->next;
        *pp = c->next;
    } else {
        c = NULL;
    }
    pthread_mutex_unlock(&ctx->lock);
    if (c) {
        struct vd_bcache_stats st;
        vd_bcache_get_stats(c->bc, &st);
        log_info("image close: block cache: hits=%llu misses=%llu "
                 "fills_skipped=%llu pages=%llu/%llu ino=%llu",
                 (unsigned long long)st.hits, (unsigned long long)st.misses,
                 (unsigned long long)st.fills_skipped,
                 (unsigned long long)st.pages,
                 (unsigned long long)st.max_pages, (unsigned long long)c->ino);
        vd_bcache_free(c->bc);
        free(c);
    }
}

/* vd_lease_hooks.drop: another process writes image @ino from now on, or
 * did until now. */
static void cache_drop(void *arg, uint64_t ino)
{
    struct tess_ctx *ctx = arg;

    pthread_mutex_lock(&ctx->lock);
    for (struct tess_cache *c = ctx->caches; c; c = c->next)
        if (c->ino == ino)
            vd_bcache_drop_all(c->bc);
    pthread_mutex_unlock(&ctx->lock);
}

/* The cache @im may read from now, or NULL: a snapshot's bytes never
 * change; a writable image's only while this process holds its lease
 * (docs/vmdisk.md, "Block cache"). */
static struct vd_bcache *cache_for_read(struct tess_image *im)
{
    if (!im->cache)
        return NULL;
    if (im->snapshot || vd_lease_held(im->ctx->leases, im->lease))
        return im->cache->bc;
    return NULL;
}

/* The cache every change of @im's bytes must go through, or NULL. */
static struct vd_bcache *cache_for_write(struct tess_image *im)
{
    return im->cache ? im->cache->bc : NULL;
}

/* @name is borrowed.  Caller owns *out: tess_close(). */
int vd_export_path(const char *name, char *out, size_t size)
{
    size_t n = 0;

    for (const char *p = name; *p;) {
        p += strspn(p, "/");
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if ((len == 1 && p[0] == '.') || (len == 2 && !strncmp(p, "..", 2)))
            return -EINVAL;
        if (n + 1 + len + 1 > size)
            return -EINVAL;
        out[n++] = '/';
        memcpy(out + n, p, len);
        n += len;
        p += len;
    }
    if (n == 0)
        out[n++] = '/';
    out[n] = '\0';
    return 0;
}

/* A TLS user is the Tessera identity of that name: it may open what its
 * capabilities reach (a path= list, read-only with ro), asked of metad at
 * each open so that `tessera auth caps` and `rm` apply to the next one. */
static int tess_authorize(void *vctx, const char *user, const char *name,
                          bool *readonly, char *why, size_t why_len)
{
    struct tess_ctx *ctx = vctx;
    struct auth_caps caps;
    char path[NAME_MAX_LEN + 2];

    int rc = cl_client_rights(ctx->cl, user, &caps);
    if (rc == -ENOENT || rc == -EINVAL) {
        snprintf(why, why_len, "TLS user %s is not an identity of this cluster",
                 user);
        return -EACCES;
    }
    if (rc < 0) {
        snprintf(why, why_len,
                 "the rights of TLS user %s cannot be read (%s%s)", user,
                 strerror(-rc),
                 rc == -EPERM ? ": tessera-nbd's own identity needs the proxy "
                                "capability"
                              : "");
        return -EACCES;
    }
    if (vd_export_path(name, path, sizeof(path)) < 0 ||
        auth_caps_reach(&caps, path) != AUTH_REACH_INSIDE) {
        snprintf(why, why_len, "identity %s may not open %s", user, name);
        return -EACCES;
    }
    if (caps.flags & AUTH_CAP_RO)
        *readonly = true;
    return 0;
}

static int tess_open(void *vctx, const char *name, bool readonly,
                     struct vd_image **out, char *why, size_t why_len)
{
    struct tess_ctx *ctx = vctx;
    struct proto_attr a;
    char path[NAME_MAX_LEN + 2];
    bool snapshot = false;

    int rc = resolve(ctx, name, &a);
    if (rc < 0)
        return rc == -ENOTDIR ? -ENOENT : rc;
    if (S_ISDIR(a.mode)) {
        snprintf(why, why_len,
                 "/%s is a directory, not an image: export an image file "
                 "in it (nbdinfo --list shows them)",
                 name + strspn(name, "/"));
        return -EISDIR;
    }
    if (!S_ISREG(a.mode)) {
        snprintf(why, why_len, "/%s is not a regular file, not an image",
                 name + strspn(name, "/"));
        return -EINVAL;
    }
    if (a.size > INT64_MAX)
        return -EFBIG;
    snprintf(path, sizeof(path), "/%s", name + strspn(name, "/"));
    if (!readonly) {
        rc = writable(ctx, a.ino);
        if (rc == -EROFS) {
            log_info("image open: %s is a read-only snapshot: exported "
                     "read-only",
                     path);
            readonly = true;
            snapshot = true;
        } else if (rc < 0) {
            return rc;
        }
    } else {
        snapshot = writable(ctx, a.ino) == -EROFS;
    }

    struct tess_image *im = calloc(1, sizeof(*im));
    if (!im)
        return -ENOMEM;
    im->snapshot = snapshot;
    rc = cl_inode_open(ctx->cl, a.ino, a.size, &im->node);
    if (rc < 0) {
        free(im);
        return rc;
    }
    if (!readonly) {
        rc = vd_lease_open(ctx->leases, a.ino, path, why, why_len, &im->lease);
        if (rc < 0) {
            cl_inode_put(ctx->cl, im->node);
            free(im);
            return rc;
        }
    }
    /* A read-only image that may still be written elsewhere is never
     * cached: nothing would tell this process of the writes. */
    if (ctx->cache != VD_CACHE_NONE && (im->lease || snapshot))
        im->cache = cache_get(ctx, a.ino);
    im->base.readonly = readonly;
    im->ctx = ctx;
    im->ino = a.ino;
    im->size = (int64_t)a.size;
    *out = &im->base;
    return 0;
}

static void tess_close(struct vd_image *img)
{
    if (!img)
        return;
    struct tess_image *im = image_of(img);
    struct tess_ctx *ctx = im->ctx;
    /* Whatever is still dirty is synced so the image is complete on
     * every replica when the last client goes; an error here has nobody
     * to go to but the log.  A standby or a writer whose lease went
     * elsewhere has nothing of its own to sync. */
    if (im->lease && vd_lease_begin(ctx->leases, im->lease, false) == 0) {
        if (vd_lease_held(ctx->leases, im->lease)) {
            int rc = cl_file_sync(ctx->cl, im->node);
            if (rc < 0)
                log_warn("image close: sync failed: %s ino=%llu", strerror(-rc),
                         (unsigned long long)im->ino);
        }
        vd_lease_end(im->lease);
    }
    vd_lease_close(ctx->leases, im->lease);
    cache_put(ctx, im->cache);
    cl_inode_put(ctx->cl, im->node);
    free(im);
}

/* Enter the lease gate of @im for an operation (no-op when read-only). */
static int gate_in(struct tess_image *im, bool write)
{
    if (!im->lease)
        return write ? -EROFS : 0;
    return vd_lease_begin(im->ctx->leases, im->lease, write);
}

static void gate_out(struct tess_image *im)
{
    if (im->lease)
        vd_lease_end(im->lease);
}

static int64_t tess_size(struct vd_image *img)
{
    return image_of(img)->size;
}

static int tess_pread(struct vd_image *img, void *buf, uint32_t len,
                      uint64_t off)
{
    struct tess_image *im = image_of(img);
    int rc = gate_in(im, false);
    if (rc < 0)
        return rc;
    struct vd_bcache *bc = cache_for_read(im);
    if (bc && vd_bcache_read(bc, off, len, buf)) {
        gate_out(im);
        return 0;
    }
    uint64_t ticket = bc ? vd_bcache_read_begin(bc) : 0;
    rc = cl_file_read(im->ctx->cl, im->node, off, len, buf);
    gate_out(im);
    if (rc < 0)
        return rc;
    /* Past what the file holds (another client shrank it): zeros. */
    if ((uint32_t)rc < len)
        memset((uint8_t *)buf + rc, 0, len - (uint32_t)rc);
    else if (ticket)
        vd_bcache_fill(bc, ticket, off, len, buf);
    return 0;
}

static int tess_pwrite(struct vd_image *img, const void *buf, uint32_t len,
                       uint64_t off, bool fua)
{
    struct tess_image *im = image_of(img);
    int rc = gate_in(im, true);
    if (rc < 0)
        return rc;
    struct vd_bcache *bc = cache_for_write(im);
    if (bc)
        vd_bcache_write_begin(bc, off, len);
    rc = cl_file_write(im->ctx->cl, im->node, off, buf, len, fua);
    if (bc)
        vd_bcache_write_end(bc, off, len, buf, (uint32_t)rc == len);
    gate_out(im);
    if (rc < 0)
        return rc;
    return (uint32_t)rc == len ? 0 : -EIO;
}

/* A fast operation in flight: its gate is left, and the cache told, when
 * it completes. */
struct tess_aio {
    struct tess_image *im;
    vd_done_cb done;
    void *arg;
    struct vd_bcache *bc; /* reads: to fill; writes: to end; or NULL */
    uint64_t ticket;      /* reads: from vd_bcache_read_begin() */
    uint64_t off;
    uint32_t len;
    const void *buf; /* the caller's, valid until done */
    bool write;
};

static void aio_complete(void *arg, int status)
{
    struct tess_aio *a = arg;

    if (a->bc && a->write)
        vd_bcache_write_end(a->bc, a->off, a->len, a->buf, status == 0);
    else if (a->bc && status == 0)
        vd_bcache_fill(a->bc, a->ticket, a->off, a->len, a->buf);
    gate_out(a->im);
    a->done(a->arg, status);
    free(a);
}

/* Enter the gate without waiting and set up the completion; -EAGAIN. */
static int aio_begin(struct tess_image *im, bool write, vd_done_cb done,
                     void *arg, struct tess_aio **out)
{
    if (im->lease && vd_lease_try_begin(im->ctx->leases, im->lease, write) < 0)
        return -EAGAIN;
    if (!im->lease && write)
        return -EAGAIN; /* pwrite() gives the error */
    struct tess_aio *a = malloc(sizeof(*a));
    if (!a) {
        gate_out(im);
        return -EAGAIN;
    }
    *a = (struct tess_aio){.im = im, .done = done, .arg = arg, .write = write};
    *out = a;
    return 0;
}

static void aio_abort(struct tess_aio *a)
{
    gate_out(a->im);
    free(a);
}

static int tess_aio_pread(struct vd_image *img, void *buf, uint32_t len,
                          uint64_t off, vd_done_cb done, void *arg)
{
    struct tess_image *im = image_of(img);
    struct vd_bcache *bc = cache_for_read(im);
    struct tess_aio *a;

    if (bc && vd_bcache_read(bc, off, len, buf)) {
        done(arg, 0); /* a hit: nothing to wait for */
        return 0;
    }
    if (aio_begin(im, false, done, arg, &a) < 0)
        return -EAGAIN;
    if (bc && (a->ticket = vd_bcache_read_begin(bc)) != 0) {
        a->bc = bc;
        a->off = off;
        a->len = len;
        a->buf = buf;
    }
    if (cl_file_read_async(im->ctx->cl, im->node, off, len, buf, aio_complete,
                           a) < 0) {
        aio_abort(a);
        return -EAGAIN;
    }
    return 0;
}

static int tess_aio_pwrite(struct vd_image *img, const void *buf, uint32_t len,
                           uint64_t off, bool fua, vd_done_cb done, void *arg)
{
    struct tess_image *im = image_of(img);
    struct tess_aio *a;
    if (aio_begin(im, true, done, arg, &a) < 0)
        return -EAGAIN;
    a->bc = cache_for_write(im);
    a->off = off;
    a->len = len;
    a->buf = buf;
    if (a->bc)
        vd_bcache_write_begin(a->bc, off, len);
    if (cl_file_write_async(im->ctx->cl, im->node, off, len, buf, fua,
                            aio_complete, a) < 0) {
        if (a->bc)
            vd_bcache_write_end(a->bc, off, len, NULL, false);
        aio_abort(a);
        return -EAGAIN;
    }
    return 0;
}

static int tess_flush(struct vd_image *img)
{
    struct tess_image *im = image_of(img);
    if (!im->lease)
        return 0; /* nothing written through a read-only image */
    int rc = gate_in(im, true);
    if (rc == -EROFS)
        return vd_lease_lost_status(im->lease);
    if (rc < 0)
        return rc;
    rc = cl_file_sync(im->ctx->cl, im->node);
    gate_out(im);
    return rc;
}

/* Can zeroing [off, off + len) be done without writing zeros? */
static int zero_is_fast(struct tess_image *im, uint64_t len, uint64_t off)
{
    uint64_t end = off + len;
    while (off < end) {
        uint64_t index = off / PROTO_CHUNK_SIZE;
        uint64_t cend = (index + 1) * (uint64_t)PROTO_CHUNK_SIZE;
        struct cl_chunk ch;
        int rc = cl_file_locate(im->ctx->cl, im->ino, index, 1, &ch);
        if (rc < 0)
            return rc;
        if (ch.chunk_id != 0 && end < cend && end < (uint64_t)im->size)
            return -ENOTSUP;
        off = cend;
    }
    return 0;
}

static int tess_zero(struct vd_image *img, uint64_t len, uint64_t off,
                     bool may_trim, bool fast_only)
{
    struct tess_image *im = image_of(img);
    (void)may_trim;
    int rc = gate_in(im, true);
    if (rc < 0)
        return rc;
    if (fast_only)
        rc = zero_is_fast(im, len, off);
    struct vd_bcache *bc = rc == 0 ? cache_for_write(im) : NULL;
    if (bc)
        vd_bcache_write_begin(bc, off, len);
    if (rc == 0)
        rc = cl_file_zero(im->ctx->cl, im->node, off, len);
    if (bc)
        vd_bcache_write_end(bc, off, len, NULL, false);
    gate_out(im);
    return rc;
}

static int tess_trim(struct vd_image *img, uint64_t len, uint64_t off, bool fua)
{
    int rc = tess_zero(img, len, off, true, false);
    if (rc == 0 && fua)
        rc = tess_flush(img);
    return rc;
}

/* cl_file_alloc()'s runs as NBD extents. */
struct status_walk {
    vd_extent_cb cb;
    void *arg;
};

static int status_run(void *arg, uint64_t len, bool data)
{
    struct status_walk *w = arg;
    return w->cb(w->arg, len, data ? 0 : VD_EXTENT_HOLE | VD_EXTENT_ZERO);
}

static int tess_block_status(struct vd_image *img, uint64_t len, uint64_t off,
                             vd_extent_cb cb, void *arg)
{
    struct tess_image *im = image_of(img);
    struct status_walk w = {.cb = cb, .arg = arg};
    return cl_file_alloc(im->ctx->cl, im->node, off, len, status_run, &w);
}

/* READDIR of @ino from @cookie; calls @cb with "@prefix<name>" for each
 * regular file.  Sets *cookie and *eof for the next batch. */
static int list_batch(struct tess_ctx *ctx, uint64_t ino, const char *prefix,
                      uint64_t *cookie, bool *eof, vd_name_cb cb, void *arg)
{
    struct proto_readdir_req req = {
        .cred = root_cred,
        .ino = ino,
        .cookie = *cookie,
        .max_entries = LIST_BATCH,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_readdir_req_encode(&w, &req);
    struct rpc_reply rep;
    struct proto_readdir_rep out;
    int rc = cl_meta_call(ctx->cl, PROTO_MSG_READDIR_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;

    struct proto_dirent_iter it;
    struct proto_dirent d;
    char name[NAME_MAX_LEN + 1];
    proto_dirent_iter_init(&it, &out);
    *eof = out.eof || out.count == 0;
    while (rc == 0 && proto_dirent_next(&it, &d)) {
        *cookie = d.cookie;
        if (!S_ISREG(d.attr.mode))
            continue;
        int n = snprintf(name, sizeof(name), "%s%.*s", prefix, (int)d.name.len,
                         d.name.p);
        if (n < 0 || (size_t)n >= sizeof(name))
            continue;
        rc = cb(arg, name);
    }
    rpc_reply_free(&rep);
    return rc;
}

static int tess_list(void *vctx, vd_name_cb cb, void *arg)
{
    struct tess_ctx *ctx = vctx;
    struct proto_attr a;
    char prefix[NAME_MAX_LEN + 2];

    int rc = resolve(ctx, ctx->dir, &a);
    if (rc < 0)
        return rc;
    if (!S_ISDIR(a.mode))
        return -ENOTDIR;
    snprintf(prefix, sizeof(prefix), "%s%s", ctx->dir, *ctx->dir ? "/" : "");
    uint64_t cookie = 0;
    bool eof = false;
    while (rc == 0 && !eof)
        rc = list_batch(ctx, a.ino, prefix, &cookie, &eof, cb, arg);
    return rc;
}

static void tess_free(void *vctx)
{
    struct tess_ctx *ctx = vctx;
    if (!ctx)
        return;
    vd_leases_free(ctx->leases);
    cl_client_close(ctx->cl);
    assert(!ctx->caches); /* every image was closed */
    pthread_mutex_destroy(&ctx->lock);
    free(ctx->dir);
    cl_auth_free(ctx->auth);
    free(ctx);
}

static int tess_changes_check(void *vctx, const char *since)
{
    struct proto_attr a;
    int rc = resolve(vctx, since, &a);
    if (rc == 0 && !S_ISREG(a.mode))
        rc = -EINVAL;
    return rc;
}

/* Extents of [off, end) from @ch, a block at a time, coalesced. */
static int changes_report(const struct cl_changes *ch, uint64_t off,
                          uint64_t end, vd_extent_cb cb, void *arg)
{
    uint64_t run_len = 0;
    bool run_changed = false;

    while (off < end) {
        uint64_t b = off / PROTO_WMAP_BLOCK;
        uint64_t bend = (b + 1) * PROTO_WMAP_BLOCK;
        uint64_t n = (bend < end ? bend : end) - off;
        bool changed = cl_changes_block(ch, b);
        if (run_len && changed != run_changed) {
            int rc = cb(arg, run_len, run_changed ? VD_EXTENT_CHANGED : 0);
            if (rc != 0)
                return rc < 0 ? rc : 0;
            run_len = 0;
        }
        run_changed = changed;
        run_len += n;
        off += n;
    }
    if (run_len) {
        int rc = cb(arg, run_len, run_changed ? VD_EXTENT_CHANGED : 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int tess_changes(struct vd_image *img, const char *since, uint64_t len,
                        uint64_t off, vd_extent_cb cb, void *arg)
{
    struct tess_image *im = image_of(img);
    struct proto_attr a;
    struct cl_changes ch;
    uint64_t first = off / PROTO_CHUNK_SIZE;
    uint64_t last = (off + len - 1) / PROTO_CHUNK_SIZE;
    uint32_t count = last - first + 1 > PROTO_LOCATE_MAX
                         ? PROTO_LOCATE_MAX
                         : (uint32_t)(last - first + 1);
    /* Resolved at each call: SNAP may have been removed meanwhile. */
    int rc = resolve(im->ctx, since, &a);
    if (rc < 0)
        return rc;
    rc = cl_changes_get(im->ctx->cl, a.ino, im->ino, first, count, &ch);
    if (rc < 0)
        return rc;
    uint64_t end = (first + count) * (uint64_t)PROTO_CHUNK_SIZE;
    rc = changes_report(&ch, off, off + len < end ? off + len : end, cb, arg);
    cl_changes_free(&ch);
    return rc;
}

static const struct vd_backend_ops tess_ops = {
    .open = tess_open,
    .authorize = tess_authorize,
    .close = tess_close,
    .size = tess_size,
    .pread = tess_pread,
    .pwrite = tess_pwrite,
    .aio_pread = tess_aio_pread,
    .aio_pwrite = tess_aio_pwrite,
    .flush = tess_flush,
    .trim = tess_trim,
    .zero = tess_zero,
    .block_status = tess_block_status,
    .changes_check = tess_changes_check,
    .changes = tess_changes,
    .list = tess_list,
    .free = tess_free,
};

/* "/images/" -> "images": the form names are listed in. */
static char *dir_normalise(const char *dir)
{
    while (*dir == '/')
        dir++;
    char *d = strdup(dir);
    if (!d)
        return NULL;
    size_t n = strlen(d);
    while (n > 0 && d[n - 1] == '/')
        d[--n] = '\0';
    return d;
}

int vd_tessera_new(const struct vd_tessera_opts *o, struct vd_backend **out)
{
    const char *meta = o->meta, *images_dir = o->images_dir;
    struct vd_backend *be = calloc(1, sizeof(*be));
    struct tess_ctx *ctx = calloc(1, sizeof(*ctx));
    char name[160], host[64] = "unknown";
    int rc = -ENOMEM;

    if (!be || !ctx)
        goto fail;
    ctx->dir = dir_normalise(images_dir ? images_dir : "/");
    if (!ctx->dir)
        goto fail;
    gethostname(host, sizeof(host) - 1);
    snprintf(name, sizeof(name), "tessera-nbd %s pid %d", host, (int)getpid());
    rc = cl_auth_open(o->key, &ctx->auth);
    if (rc < 0) {
        log_error("nbd: key file %s: %s", o->key, auth_key_why(rc));
        goto fail;
    }
    if (o->secure) {
        if (!ctx->auth) {
            log_error("nbd: --secure needs a key: --key FILE or "
                      "$TESSERA_KEY");
            rc = -ENOKEY;
            goto fail;
        }
        cl_auth_set_secure(ctx->auth, true);
    }
    struct cl_opts opts = {.meta = meta,
                           .name = name,
                           .role = PROTO_ROLE_NBD,
                           .direct_write_max = o->direct_write_max,
                           .auth = ctx->auth};
    if (o->cache == VD_CACHE_WRITEBACK || o->cache == VD_CACHE_AUTO) {
        /* Writes wait in the client's delayed-write store until a FLUSH,
         * the age limit or the dirty limit; metad recalls them before a
         * snapshot, a clone or another client's open (callbacks).  In
         * auto mode only once the image was flushed (tess_flush() syncs
         * the file: cl_opts.delay_after_sync). */
        opts.cache = CL_CACHE_WRITEBACK;
        opts.delay_after_sync = o->cache == VD_CACHE_AUTO;
        opts.callbacks = true;
        opts.dirty_max =
            o->max_dirty ? o->max_dirty : VD_CACHE_MAX_DIRTY_DEFAULT;
        opts.flush_interval_ms = o->max_dirty_age_ms
                                     ? o->max_dirty_age_ms
                                     : VD_CACHE_MAX_DIRTY_AGE_DEFAULT_MS;
    }
    rc = cl_client_open(&opts, &ctx->cl);
    if (rc < 0)
        goto fail;
    ctx->cache = o->cache;
    ctx->cache_size = o->cache_size ? o->cache_size : VD_CACHE_SIZE_DEFAULT;
    pthread_mutex_init(&ctx->lock, NULL);
    struct vd_lease_hooks hooks = {.drop = cache_drop, .arg = ctx};
    rc = vd_leases_new(ctx->cl, &hooks, &ctx->leases);
    if (rc < 0) {
        cl_client_close(ctx->cl);
        goto fail;
    }
    cl_stats_register();
    be->name = "tessera";
    be->ops = &tess_ops;
    be->ctx = ctx;
    be->caps = VD_BACKEND_MULTI_CONN;
    *out = be;
    return 0;

fail:
    if (ctx) {
        free(ctx->dir);
        cl_auth_free(ctx->auth);
    }
    free(ctx);
    free(be);
    return rc;
}
