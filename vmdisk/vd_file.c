/* vd_file.c: an image backend over files in a local directory.
 *
 * `tessera-nbd --backend dir:PATH` serves every regular file (or block
 * device) under PATH; the export name is the file's path relative to PATH
 * ("vm/disk.raw").  It is what the integration tests drive, and the
 * baseline the Tessera backend is measured against.
 *
 * Names are hostile input.  A name must be relative, made of non-empty
 * components other than "." and "..", and is opened with openat2()
 * RESOLVE_BENEATH so that symbolic links cannot lead out of PATH either
 * (on kernels without openat2(), the last component may not be a link and
 * the lexical check stands alone).
 *
 * Operations map one to one onto system calls: pread/pwrite, fdatasync,
 * fallocate(PUNCH_HOLE) for trim, fallocate(PUNCH_HOLE or ZERO_RANGE) for
 * fast zeroing with a fallback to writing zeros, and lseek(SEEK_DATA /
 * SEEK_HOLE) for block status.  Each struct vd_image has its own file
 * descriptor, but the page cache belongs to the inode, so fdatasync() on
 * any descriptor flushes writes made through all of them: the backend is
 * multi-conn safe.
 */
#include "vd_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ZERO_BUF (1u << 20) /* bytes written per call when zeroing slowly */
#define LIST_DEPTH 8        /* directory levels walked by list() */
#define NAME_MAX_LEN 4096   /* longest export name NBD allows */

struct file_ctx {
    int dirfd;
};

struct file_image {
    struct vd_image base; /* first: the NBD side casts */
    int fd;
    int64_t size;
};

/* Lexical check of an export name: relative, no empty, "." or ".."
 * component.  0 or -EINVAL. */
static int name_check(const char *name)
{
    const char *p = name;

    if (!*name || *name == '/')
        return -EINVAL;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return -EINVAL;
        p += n;
        if (*p == '/') {
            p++;
            if (!*p)
                return -EINVAL; /* trailing slash */
        }
    }
    return 0;
}

static int open_beneath(int dirfd, const char *name, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    if (fd >= 0)
        return (int)fd;
    if (errno != ENOSYS)
        return -errno;
    fd = openat(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW);
    return fd >= 0 ? (int)fd : -errno;
}

static int file_open(void *vctx, const char *name, bool readonly,
                     struct vd_image **out, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    struct file_ctx *ctx = vctx;
    struct stat st;
    int fd, rc;

    rc = name_check(name);
    if (rc < 0)
        return rc;
    fd = open_beneath(ctx->dirfd, name, readonly ? O_RDONLY : O_RDWR);
    if (fd < 0)
        return fd == -EXDEV || fd == -ELOOP ? -EACCES : fd;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        rc = -ENOENT;
        goto fail;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        rc = -errno;
        goto fail;
    }
    struct file_image *fi = calloc(1, sizeof(*fi));
    if (!fi) {
        rc = -ENOMEM;
        goto fail;
    }
    fi->base.readonly = readonly;
    fi->fd = fd;
    fi->size = size;
    *out = &fi->base;
    return 0;
fail:
    close(fd);
    return rc;
}

static void file_close(struct vd_image *img)
{
    struct file_image *fi = (struct file_image *)img;
    if (!fi)
        return;
    close(fi->fd);
    free(fi);
}

static int64_t file_size(struct vd_image *img)
{
    return ((struct file_image *)img)->size;
}

static int file_pread(struct vd_image *img, void *buf, uint32_t len,
                      uint64_t off)
{
    struct file_image *fi = (struct file_image *)img;
    char *p = buf;

    while (len) {
        ssize_t n = pread(fi->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) { /* the file shrank underneath us: zeros */
            memset(p, 0, len);
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (uint32_t)n;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;

    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int file_flush(struct vd_image *img)
{
    struct file_image *fi = (struct file_image *)img;
    return fdatasync(fi->fd) < 0 ? -errno : 0;
}

static int file_pwrite(struct vd_image *img, const void *buf, uint32_t len,
                       uint64_t off, bool fua)
{
    struct file_image *fi = (struct file_image *)img;
    int rc = write_all(fi->fd, buf, len, off);
    if (rc == 0 && fua)
        rc = file_flush(img);
    return rc;
}

static int punch(struct file_image *fi, uint64_t len, uint64_t off)
{
    if (fallocate(fi->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)off, (off_t)len) < 0)
        return -errno;
    return 0;
}

static int file_trim(struct vd_image *img, uint64_t len, uint64_t off, bool fua)
{
    struct file_image *fi = (struct file_image *)img;
    int rc = punch(fi, len, off);

    /* Trim is advisory: a file system that cannot punch holes keeps the
     * data, which is allowed. */
    if (rc == -EOPNOTSUPP || rc == -ENOSYS)
        rc = 0;
    if (rc == 0 && fua)
        rc = file_flush(img);
    return rc;
}

static int zero_slow(struct file_image *fi, uint64_t len, uint64_t off)
{
    size_t bufsz = len < ZERO_BUF ? (size_t)len : ZERO_BUF;
    char *buf = calloc(1, bufsz ? bufsz : 1);
    int rc = 0;

    if (!buf)
        return -ENOMEM;
    while (len && rc == 0) {
        size_t n = len < bufsz ? (size_t)len : bufsz;
        rc = write_all(fi->fd, buf, n, off);
        off += n;
        len -= n;
    }
    free(buf);
    return rc;
}

static int file_zero(struct vd_image *img, uint64_t len, uint64_t off,
                     bool may_trim, bool fast_only)
{
    struct file_image *fi = (struct file_image *)img;
    int rc = -EOPNOTSUPP;

    if (may_trim)
        rc = punch(fi, len, off);
    if (rc == -EOPNOTSUPP || rc == -ENOSYS) {
        rc = fallocate(fi->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                       (off_t)off, (off_t)len) < 0
                 ? -errno
                 : 0;
    }
    if (rc != -EOPNOTSUPP && rc != -ENOSYS && rc != -ENODEV)
        return rc;
    if (fast_only)
        return -ENOTSUP;
    return zero_slow(fi, len, off);
}

/* SEEK_DATA/SEEK_HOLE: data extents are reported as plain data even when
 * they happen to hold zeros; holes as HOLE|ZERO. */
static int file_block_status(struct vd_image *img, uint64_t len, uint64_t off,
                             vd_extent_cb cb, void *arg)
{
    struct file_image *fi = (struct file_image *)img;
    uint64_t end = off + len;
    int rc = 0;

    while (off < end && rc == 0) {
        off_t data = lseek(fi->fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno != ENXIO) {
            if (errno != EINVAL && errno != EOPNOTSUPP)
                return -errno;
            rc = cb(arg, end - off, 0); /* no support: all data */
            break;
        }
        if (data < 0 || (uint64_t)data > off) {
            /* A hole up to the next data, or to the end of file. */
            uint64_t stop =
                data < 0 || (uint64_t)data > end ? end : (uint64_t)data;
            rc = cb(arg, stop - off, VD_EXTENT_HOLE | VD_EXTENT_ZERO);
            off = stop;
            continue;
        }
        off_t hole = lseek(fi->fd, (off_t)off, SEEK_HOLE);
        if (hole < 0)
            return -errno;
        uint64_t stop = (uint64_t)hole > end ? end : (uint64_t)hole;
        if (stop <= off) /* the file changed underneath: report data */
            stop = end;
        rc = cb(arg, stop - off, 0);
        off = stop;
    }
    return rc < 0 ? rc : 0;
}

/* Walk @dirfd (taken over) listing regular files as @prefix/NAME. */
static int list_dir(int dirfd, const char *prefix, int depth, vd_name_cb cb,
                    void *arg)
{
    DIR *dir = fdopendir(dirfd);
    struct dirent *de;
    char path[NAME_MAX_LEN + 1];
    int rc = 0;

    if (!dir) {
        close(dirfd);
        return -errno;
    }
    while (rc == 0 && (de = readdir(dir)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue; /* ".", ".." and hidden files */
        if (snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "",
                     de->d_name) >= (int)sizeof(path))
            continue;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
            rc = cb(arg, path);
        } else if (S_ISDIR(st.st_mode) && depth > 0) {
            int sub = openat(dirfd, de->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = list_dir(sub, path, depth - 1, cb, arg);
        }
    }
    closedir(dir);
    return rc;
}

static int file_list(void *vctx, vd_name_cb cb, void *arg)
{
    struct file_ctx *ctx = vctx;
    int fd = openat(ctx->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return list_dir(fd, "", LIST_DEPTH, cb, arg);
}

static void file_free(void *vctx)
{
    struct file_ctx *ctx = vctx;
    if (!ctx)
        return;
    close(ctx->dirfd);
    free(ctx);
}

static const struct vd_backend_ops file_ops = {
    .open = file_open,
    .close = file_close,
    .size = file_size,
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .trim = file_trim,
    .zero = file_zero,
    .block_status = file_block_status,
    .list = file_list,
    .free = file_free,
};

int vd_file_new(const char *dir, struct vd_backend **out)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct vd_backend *be = calloc(1, sizeof(*be));
    struct file_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!be || !ctx) {
        free(be);
        free(ctx);
        close(fd);
        return -ENOMEM;
    }
    ctx->dirfd = fd;
    be->name = "dir";
    be->ops = &file_ops;
    be->ctx = ctx;
    be->caps = VD_BACKEND_MULTI_CONN;
    *out = be;
    return 0;
}
