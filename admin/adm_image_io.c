/* adm_image_io.c: physical-to-virtual and back (docs/vmdisk.md, "Import
 * and export"):
 *
 *   tessera image import [--progress] [-f raw|qcow2] SRC DST
 *   tessera image export [--progress] [-O raw|qcow2] SRC DST
 *
 * Import copies a local raw file, block device or qcow2 file into a new
 * Tessera image DST of the same (virtual) size.  Only 4 KiB blocks that
 * are not all zeros are written, so holes and zeroed space take nothing;
 * a sparse raw file's holes are skipped without being read (SEEK_DATA).
 * qcow2 is read as raw through `nbdcopy -- [ qemu-nbd --read-only -f qcow2
 * SRC ] -`: qemu-nbd decodes the format (backing files, compression,
 * encryption need nothing here) and nbdcopy streams the raw bytes to our
 * pipe.  The format is told by the qcow2 magic unless -f says.
 *
 * Export writes image SRC to DST.  Raw: chunk slots that are holes are not
 * read at all, all-zero blocks are not written, and the file is cut to the
 * size, so a sparse image stays sparse (a block device gets every byte).
 * qcow2: `qemu-img create -f qcow2 DST SIZE`, then the raw stream goes to
 * `nbdcopy -- - [ qemu-nbd -f qcow2 --detect-zeroes=unmap DST ]`, which
 * turns zero runs into unallocated clusters.
 *
 * The data goes through the client library (client/cl.h), as the mount
 * does: a session of its own, writes down the replica chain, one
 * cl_file_sync() at the end.  Metadata (create, resolve) goes through the
 * admin connection.  Failure: import removes nothing it made (the partial
 * DST stays, so the error can be looked at); export leaves a partial DST.
 */
#include "adm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cl.h"

#define IO_BUF (4u << 20) /* bytes per read */
#define BLK 4096u         /* zero detection unit */
#define QCOW2_MAGIC "QFI\xfb"

extern char **environ;

/* ---- Helpers ------------------------------------------------------------ */

static bool block_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zeros[BLK];
    while (n >= BLK) {
        if (memcmp(p, zeros, BLK))
            return false;
        p += BLK;
        n -= BLK;
    }
    return n == 0 || !memcmp(p, zeros, n);
}

/* Run @argv with its stdin (@to_child) or stdout (otherwise) on a pipe
 * whose other end goes to *fd.  Caller owns *fd and reaps *pid. */
static int spawn_pipe(char *const argv[], bool to_child, int *fd, pid_t *pid)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child ? p[0] : p[1],
                                     to_child ? 0 : 1);
    int rc = posix_spawnp(pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(to_child ? p[0] : p[1]);
    if (rc != 0) {
        close(to_child ? p[1] : p[0]);
        return -rc;
    }
    *fd = to_child ? p[1] : p[0];
    return 0;
}

static int reap(pid_t pid, const char *name)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    fprintf(stderr, "tessera: %s failed (status %d)\n", name,
            WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return -EIO;
}

static int read_full(int fd, uint8_t *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, buf + *got, n - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t n)
{
    while (n) {
        ssize_t r = write(fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Call @put for each run of non-zero 4 KiB blocks of @buf (@n bytes at
 * image offset @off). */
typedef int (*run_cb)(void *arg, uint64_t off, const uint8_t *p, size_t n);

static int nonzero_runs(const uint8_t *buf, size_t n, uint64_t off, run_cb put,
                        void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t len = n - i < BLK ? n - i : BLK;
        if (block_zero(buf + i, len)) {
            i += len;
            continue;
        }
        size_t start = i;
        while (i < n) {
            len = n - i < BLK ? n - i : BLK;
            if (block_zero(buf + i, len))
                break;
            i += len;
        }
        int rc = put(arg, off + start, buf + start, i - start);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int adm_client_open(struct adm *a, const char *what, struct cl_client **cl)
{
    char name[96];
    snprintf(name, sizeof(name), "tessera image %s pid %d", what,
             (int)getpid());
    int rc = adm_auth_open(a);
    if (rc < 0)
        return rc;
    struct cl_opts o = {.meta = a->meta,
                        .name = name,
                        .role = PROTO_ROLE_CLIENT,
                        .auth = a->auth};
    return cl_client_open(&o, cl);
}

/* ---- Import ------------------------------------------------------------- */

struct import {
    struct cl_client *cl;
    struct cl_inode *node;
    uint64_t written;
};

static int import_put(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
    struct import *im = arg;
    int rc = cl_file_write(im->cl, im->node, off, p, n, false);
    if (rc < 0)
        return rc;
    if ((size_t)rc != n)
        return -EIO;
    im->written += n;
    return 0;
}

/* Size and kind of the local source @fd. */
static int source_size(int fd, bool qcow2, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (qcow2) {
        uint8_t hdr[32];
        if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr))
            return -EINVAL;
        *size = 0;
        for (int i = 24; i < 32; i++)
            *size = *size << 8 | hdr[i]; /* qcow2 header: virtual size */
        return 0;
    }
    if (S_ISBLK(st.st_mode))
        return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* A raw file: its data ranges only (SEEK_DATA), a device: everything. */
static int import_raw(int fd, uint64_t size, struct import *im, uint8_t *buf,
                      struct adm_progress *pg)
{
    uint64_t off = 0;
    while (off < size) {
        off_t data = lseek(fd, (off_t)off, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break; /* only a hole is left */
        if (data >= 0 && (uint64_t)data > off)
            off = (uint64_t)data & ~(uint64_t)(BLK - 1);
        uint64_t n = size - off < IO_BUF ? size - off : IO_BUF;
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        int rc = nonzero_runs(buf, (size_t)r, off, import_put, im);
        if (rc < 0)
            return rc;
        off += (uint64_t)r;
        adm_progress_show(pg, off, false);
    }
    return 0;
}

/* A stream of raw bytes from a pipe (qcow2 through qemu-nbd/nbdcopy). */
static int import_stream(int fd, uint64_t size, struct import *im, uint8_t *buf,
                         struct adm_progress *pg)
{
    uint64_t off = 0;
    while (off < size) {
        size_t got;
        int rc = read_full(fd, buf, IO_BUF, &got);
        if (rc < 0)
            return rc;
        if (got == 0)
            break;
        rc = nonzero_runs(buf, got, off, import_put, im);
        if (rc < 0)
            return rc;
        off += got;
        adm_progress_show(pg, off, false);
    }
    return off == size ? 0 : -EIO;
}

/* Parse [--progress] [-f|-O FMT] SRC DST.  *fmt: 0 auto, 1 raw, 2 qcow2. */
static int io_args(int argc, char **argv, const char *fopt, bool *progress,
                   int *fmt, const char **src, const char **dst)
{
    *src = *dst = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--progress") || !strcmp(argv[i], "-p")) {
            *progress = true;
        } else if (!strcmp(argv[i], fopt) && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "raw"))
                *fmt = 1;
            else if (!strcmp(f, "qcow2"))
                *fmt = 2;
            else
                return -1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return -1;
        } else if (!*src) {
            *src = argv[i];
        } else if (!*dst) {
            *dst = argv[i];
        } else {
            return -1;
        }
    }
    return *src && *dst ? 0 : -1;
}

int adm_image_import(struct adm *a, int argc, char **argv)
{
    struct adm_progress pg;
    bool forced = false;
    const char *src, *dst;
    int fmt = 0, rc, fd;
    uint64_t size;

    if (io_args(argc, argv, "-f", &forced, &fmt, &src, &dst) < 0)
        return adm_verb_usage("image", "import");
    fd = open(src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "tessera: image import: %s: %s\n", src,
                strerror(errno));
        return ADM_EXIT_FAIL;
    }
    if (fmt == 0) {
        char magic[4] = {0};
        fmt = pread(fd, magic, 4, 0) == 4 && !memcmp(magic, QCOW2_MAGIC, 4) ? 2
                                                                            : 1;
    }
    rc = source_size(fd, fmt == 2, &size);
    if (rc < 0) {
        close(fd);
        fprintf(stderr,
                "tessera: image import: %s: not a raw file, block "
                "device or qcow2 image: %s\n",
                src, strerror(-rc));
        return ADM_EXIT_FAIL;
    }
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK) {
        close(fd);
        return rc;
    }
    struct proto_attr at;
    rc = adm_image_make(a, dst, size, &at);
    if (rc < 0) {
        close(fd);
        return adm_fail(a, "image import: creating the image", rc);
    }

    struct import im = {0};
    uint8_t *buf = malloc(IO_BUF);
    rc = buf ? adm_client_open(a, "import", &im.cl) : -ENOMEM;
    if (rc == 0)
        rc = cl_inode_open(im.cl, at.ino, size, &im.node);
    adm_progress_start(&pg, "import", forced, size);
    if (rc == 0 && fmt == 1) {
        rc = import_raw(fd, size, &im, buf, &pg);
    } else if (rc == 0) {
        char *args[] = {"nbdcopy",     "--", "[",     "qemu-nbd",
                        "--read-only", "-f", "qcow2", (char *)src,
                        "]",           "-",  NULL};
        int pfd;
        pid_t pid;
        rc = spawn_pipe(args, false, &pfd, &pid);
        if (rc < 0) {
            fprintf(stderr,
                    "tessera: image import: cannot run nbdcopy and "
                    "qemu-nbd (needed for qcow2): %s\n",
                    strerror(-rc));
        } else {
            rc = import_stream(pfd, size, &im, buf, &pg);
            close(pfd);
            if (rc < 0)
                kill(pid, SIGTERM);
            int rc2 = reap(pid, "nbdcopy");
            if (rc == 0)
                rc = rc2;
        }
    }
    if (rc == 0)
        rc = cl_file_sync(im.cl, im.node);
    adm_progress_show(&pg, rc == 0 ? size : 0, true);
    cl_inode_put(im.cl, im.node);
    cl_client_close(im.cl);
    free(buf);
    close(fd);
    if (rc < 0)
        return adm_fail(a, "image import", rc);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, dst, strlen(dst));
        printf(", \"size\": %" PRIu64 ", \"written\": %" PRIu64
               ", \"format\": \"%s\"}\n",
               size, im.written, fmt == 2 ? "qcow2" : "raw");
    } else {
        char s1[32], s2[32];
        adm_fmt_bytes(size, s1, sizeof(s1));
        adm_fmt_bytes(im.written, s2, sizeof(s2));
        printf("%s: imported from %s (%s), %s, %s written\n", dst, src,
               fmt == 2 ? "qcow2" : "raw", s1, s2);
    }
    return ADM_EXIT_OK;
}

/* ---- Export ------------------------------------------------------------- */

struct export
{
    int fd;
    bool stream; /* a pipe or block device: every byte goes out */
    uint64_t written;
};

static int export_put(void *arg, uint64_t off, const uint8_t *p, size_t n)
{
    struct export *ex = arg;
    while (n) {
        ssize_t r = pwrite(ex->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
        ex->written += (uint64_t)r;
    }
    return 0;
}

/* Bytes [off, off + n) of the image: a hole (@hole) or read into @buf. */
static int export_piece(struct cl_client *cl, struct cl_inode *node,
                        struct export *ex, uint64_t off, size_t n, bool hole,
                        uint8_t *buf)
{
    if (hole && !ex->stream)
        return 0;
    if (hole) {
        memset(buf, 0, n);
    } else {
        int rc = cl_file_read(cl, node, off, n, buf);
        if (rc < 0)
            return rc;
        if ((size_t)rc < n)
            memset(buf + rc, 0, n - (size_t)rc);
    }
    if (ex->stream) {
        ex->written += n;
        return write_full(ex->fd, buf, n);
    }
    return nonzero_runs(buf, n, off, export_put, ex);
}

static int export_all(struct cl_client *cl, struct proto_attr *at,
                      struct export *ex, uint8_t *buf, struct adm_progress *pg)
{
    struct cl_inode *node;
    int rc = cl_inode_open(cl, at->ino, at->size, &node);
    if (rc < 0)
        return rc;
    uint64_t nchunks = (at->size + PROTO_CHUNK_SIZE - 1) / PROTO_CHUNK_SIZE;
    for (uint64_t idx = 0; rc == 0 && idx < nchunks; idx++) {
        struct cl_chunk ch;
        rc = cl_file_locate(cl, at->ino, idx, nchunks - idx, &ch);
        uint64_t off = idx * (uint64_t)PROTO_CHUNK_SIZE;
        uint64_t end = off + PROTO_CHUNK_SIZE;
        if (end > at->size)
            end = at->size;
        while (rc == 0 && off < end) {
            size_t n = end - off < IO_BUF ? (size_t)(end - off) : IO_BUF;
            rc = export_piece(cl, node, ex, off, n, ch.chunk_id == 0, buf);
            off += n;
            adm_progress_show(pg, off, false);
        }
    }
    cl_inode_put(cl, node);
    return rc;
}

static int run_wait(char *const argv[])
{
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0)
        return -rc;
    return reap(pid, argv[0]);
}

int adm_image_export(struct adm *a, int argc, char **argv)
{
    struct adm_progress pg;
    bool forced = false;
    struct export ex = {.fd = -1};
    struct proto_attr at;
    struct cl_client *cl = NULL;
    const char *src, *dst;
    int fmt = 1, rc;
    pid_t pid = 0;

    if (io_args(argc, argv, "-O", &forced, &fmt, &src, &dst) < 0)
        return adm_verb_usage("image", "export");
    if (fmt == 0)
        fmt = 1;
    rc = adm_connect(a);
    if (rc != ADM_EXIT_OK)
        return rc;
    rc = adm_resolve(a, src, &at);
    if (rc == 0 && !S_ISREG(at.mode))
        rc = -EINVAL;
    if (rc < 0)
        return adm_fail(a, "image export", rc);

    char sizebuf[32];
    snprintf(sizebuf, sizeof(sizebuf), "%" PRIu64, at.size);
    if (fmt == 2) {
        char *create[] = {"qemu-img", "create",    "-q",    "-f",
                          "qcow2",    (char *)dst, sizebuf, NULL};
        /* nbdcopy does not sparsify a pipe: qemu-nbd turns the zero
         * blocks into unallocated clusters instead. */
        char *copy[] = {"nbdcopy",
                        "--",
                        "-",
                        "[",
                        "qemu-nbd",
                        "-f",
                        "qcow2",
                        "--discard=unmap",
                        "--detect-zeroes=unmap",
                        (char *)dst,
                        "]",
                        NULL};
        rc = run_wait(create);
        if (rc == 0)
            rc = spawn_pipe(copy, true, &ex.fd, &pid);
        ex.stream = true;
    } else {
        ex.fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        struct stat st;
        if (ex.fd < 0 || fstat(ex.fd, &st) < 0)
            rc = -errno;
        else if (S_ISREG(st.st_mode) && ftruncate(ex.fd, 0) < 0)
            rc = -errno;
        else if (S_ISREG(st.st_mode) && ftruncate(ex.fd, (off_t)at.size) < 0)
            rc = -errno;
        else if (!S_ISREG(st.st_mode))
            ex.stream = S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode) ||
                        S_ISCHR(st.st_mode);
    }
    if (rc < 0) {
        fprintf(stderr, "tessera: image export: %s: %s\n", dst, strerror(-rc));
        if (ex.fd >= 0)
            close(ex.fd);
        return ADM_EXIT_FAIL;
    }
    uint8_t *buf = malloc(IO_BUF);
    rc = buf ? adm_client_open(a, "export", &cl) : -ENOMEM;
    adm_progress_start(&pg, "export", forced, at.size);
    if (rc == 0)
        rc = export_all(cl, &at, &ex, buf, &pg);
    if (rc == 0 && fmt == 1 && fsync(ex.fd) < 0 && errno != EINVAL)
        rc = -errno;
    close(ex.fd);
    if (pid) {
        int rc2 = reap(pid, "nbdcopy");
        if (rc == 0)
            rc = rc2;
    }
    adm_progress_show(&pg, rc == 0 ? at.size : 0, true);
    cl_client_close(cl);
    free(buf);
    if (rc < 0)
        return adm_fail(a, "image export", rc);
    if (a->json) {
        printf("{\"path\": ");
        adm_json_str(stdout, dst, strlen(dst));
        printf(", \"size\": %" PRIu64 ", \"format\": \"%s\"}\n", at.size,
               fmt == 2 ? "qcow2" : "raw");
    } else {
        char s1[32];
        adm_fmt_bytes(at.size, s1, sizeof(s1));
        printf("%s: exported from %s (%s), %s\n", dst, src,
               fmt == 2 ? "qcow2" : "raw", s1);
    }
    return ADM_EXIT_OK;
}
