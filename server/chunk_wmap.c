/* chunk_wmap.c: a chunk's written-block map, the record of which 4 KiB
 * blocks were written since the chunk was created or copied for
 * copy-on-write (docs/vmdisk.md, "Incremental diffs").
 *
 * Beside DIR/chunks/f3/00000000000a01f3 and its .crc file a chunk may
 * have 00000000000a01f3.wmap: an 8-byte magic then one bit per block
 * (PROTO_WMAP_BYTES bytes, bit b in byte b / 8 at b % 8).  A chunk without
 * one has an unknown history: chunks from before the map existed, and
 * copies received from another server (CHUNK_REPLICATE), whose past writes
 * this server never saw.  Unknown means "maybe everything": a reader that
 * asks for the map (CHUNK_WMAP) gets ENODATA and takes the whole chunk as
 * changed, which is always sound.
 *
 * Bits are only ever set.  A write sets its blocks' bits (and writes the
 * bytes holding them) before its data goes to disk, and a sync makes the
 * map durable with the data, so a block whose data a crash kept is in the
 * map.  Only the first write to a block changes the map; later ones find
 * the bit set and cost nothing here.
 *
 * The store (chunk_store.c) owns the calls: it keeps one struct
 * chunk_wmap per open chunk and calls these under the chunk's lock.  This
 * file knows nothing of chunk data, versions or checksums.
 */
#include "chunk_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define WMAP_MAGIC "TSWMAP01"
#define WMAP_HDR 8u

void chunk_wmap_init(struct chunk_wmap *m)
{
    m->fd = -1;
    m->bits = NULL;
}

void chunk_wmap_close(struct chunk_wmap *m)
{
    if (m->fd >= 0)
        close(m->fd);
    free(m->bits);
    chunk_wmap_init(m);
}

bool chunk_wmap_known(const struct chunk_wmap *m)
{
    return m->bits != NULL;
}

int chunk_wmap_create(struct chunk_wmap *m, const char *path)
{
    uint8_t *bits = calloc(1, PROTO_WMAP_BYTES);
    int rc = 0;

    chunk_wmap_close(m);
    if (!bits)
        return -ENOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(bits);
        return -errno;
    }
    /* Not synced: until the chunk's first sync (chunk_wmap_sync()) an
     * empty map lost by a crash of the host is lost with every other map
     * (chunk_wmap_boot_begin()), and a crash of the process leaves it in
     * the page cache.  A copy-on-write saves a sync by this. */
    if (pwrite(fd, WMAP_MAGIC, WMAP_HDR, 0) != WMAP_HDR ||
        ftruncate(fd, WMAP_HDR + PROTO_WMAP_BYTES) < 0)
        rc = errno ? -errno : -EIO;
    if (rc < 0) {
        close(fd);
        unlink(path);
        free(bits);
        return rc;
    }
    m->fd = fd;
    m->bits = bits;
    return 0;
}

int chunk_wmap_load(struct chunk_wmap *m, const char *path)
{
    uint8_t hdr[WMAP_HDR];

    chunk_wmap_close(m);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    uint8_t *bits = malloc(PROTO_WMAP_BYTES);
    if (!bits) {
        close(fd);
        return -ENOMEM;
    }
    /* A map that is short or not a map is no map: unknown, not empty. */
    if (pread(fd, hdr, WMAP_HDR, 0) != WMAP_HDR ||
        memcmp(hdr, WMAP_MAGIC, WMAP_HDR) != 0 ||
        pread(fd, bits, PROTO_WMAP_BYTES, WMAP_HDR) != PROTO_WMAP_BYTES) {
        close(fd);
        free(bits);
        unlink(path);
        return 0;
    }
    m->fd = fd;
    m->bits = bits;
    return 0;
}

bool chunk_wmap_covers(const struct chunk_wmap *m, uint32_t b0, uint32_t nb)
{
    if (!m->bits)
        return true; /* unknown already means every block */
    for (uint32_t b = b0; b < b0 + nb; b++)
        if (!(m->bits[b / 8] & (1u << (b % 8))))
            return false;
    return true;
}

int chunk_wmap_mark(struct chunk_wmap *m, uint32_t b0, uint32_t nb, int rwf)
{
    uint8_t upd[PROTO_WMAP_BYTES];
    uint32_t lo, hi;

    if (!m->bits || nb == 0)
        return 0;
    if (b0 >= PROTO_WMAP_BITS || nb > PROTO_WMAP_BITS - b0)
        return -EINVAL;
    if (chunk_wmap_covers(m, b0, nb))
        return 0; /* the usual case: nothing new */
    /* The bytes holding the range, with its bits set, written first and
     * kept in memory only once written, so a write that would block
     * (RWF_NOWAIT) changes nothing and can be redone. */
    lo = b0 / 8;
    hi = (b0 + nb - 1) / 8;
    memcpy(upd, m->bits + lo, hi - lo + 1);
    for (uint32_t b = b0; b < b0 + nb; b++)
        upd[b / 8 - lo] |= (uint8_t)(1u << (b % 8));
    struct iovec iov = {upd, hi - lo + 1};
    ssize_t w = pwritev2(m->fd, &iov, 1, WMAP_HDR + (off_t)lo, rwf);
    if (w == (ssize_t)iov.iov_len) {
        memcpy(m->bits + lo, upd, iov.iov_len);
        return 0;
    }
    int rc = w < 0 ? -errno : -EIO;
    if (rc == -EAGAIN || rc == -EINTR ||
        (rwf && (rc == -EOPNOTSUPP || rc == -EINVAL)))
        return rc; /* not written: tried again the blocking way */
    /* Whether the file holds the bits is unknown now: forget the map
     * rather than let it lose a block. */
    chunk_wmap_forget(m);
    return rc;
}

int chunk_wmap_sync(struct chunk_wmap *m)
{
    if (m->fd >= 0 && fdatasync(m->fd) < 0)
        return -errno;
    return 0;
}

int chunk_wmap_get(const struct chunk_wmap *m, uint8_t *out)
{
    if (!m->bits)
        return -ENODATA;
    memcpy(out, m->bits, PROTO_WMAP_BYTES);
    return 0;
}

void chunk_wmap_forget(struct chunk_wmap *m)
{
    /* The path is not kept: truncating the file to nothing makes a later
     * load find no magic, and so an unknown map. */
    if (m->fd >= 0 && ftruncate(m->fd, 0) == 0)
        fdatasync(m->fd);
    chunk_wmap_close(m);
}

/* ---- Crashes of the host ---------------------------------------------------
 *
 * A map's bits and the blocks' data go to the page cache in that order,
 * but the kernel may write the data back to disk before the map: a power
 * loss can then keep a block whose bit was lost.  Syncing the map before
 * each first write to a block would cost a flush per write to fresh
 * space, so instead the store notes that it runs in DIR/wmap.boot, with
 * the kernel's boot id.  A process that died (kill -9) leaves the page
 * cache, and so the order, intact: same boot id, maps kept.  A host that
 * crashed or lost power leaves the note of an earlier boot: every map is
 * dropped (unknown, the whole chunk counts as changed), which is sound.
 * A clean close syncs the file system first and removes the note.
 */

#define BOOT_ID_LEN 36

static int boot_id(char *out)
{
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, out, BOOT_ID_LEN);
    close(fd);
    if (n != BOOT_ID_LEN)
        return -EIO;
    out[BOOT_ID_LEN] = '\0';
    return 0;
}

/* Unlink every DIR/chunks/XX/ *.wmap. */
static int forget_all(const char *dir)
{
    char path[4096];
    int dropped = 0;

    snprintf(path, sizeof(path), "%s/chunks", dir);
    DIR *top = opendir(path);
    if (!top)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *d;
    while ((d = readdir(top))) {
        if (d->d_name[0] == '.')
            continue;
        char sub[4096];
        snprintf(sub, sizeof(sub), "%s/chunks/%s", dir, d->d_name);
        DIR *in = opendir(sub);
        if (!in)
            continue;
        struct dirent *e;
        while ((e = readdir(in))) {
            size_t n = strlen(e->d_name);
            if (n > 5 && strcmp(e->d_name + n - 5, ".wmap") == 0 &&
                unlinkat(dirfd(in), e->d_name, 0) == 0)
                dropped++;
        }
        closedir(in);
    }
    closedir(top);
    return dropped;
}

int chunk_wmap_boot_begin(const char *dir)
{
    char path[4096], now[BOOT_ID_LEN + 1], was[BOOT_ID_LEN + 1] = "";
    int rc = boot_id(now);

    snprintf(path, sizeof(path), "%s/wmap.boot", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, was, BOOT_ID_LEN);
        was[n == BOOT_ID_LEN ? BOOT_ID_LEN : 0] = '\0';
        close(fd);
    }
    /* Not closed cleanly, and not in this boot (or no boot id to tell):
     * the maps may have lost bits their data kept. */
    if (fd >= 0 && (rc < 0 || strcmp(was, now) != 0)) {
        int n = forget_all(dir);
        if (n < 0)
            return n;
    }
    if (rc < 0)
        return 0; /* no boot id: every restart after a crash forgets */
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc =
        write(fd, now, BOOT_ID_LEN) == BOOT_ID_LEN && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    return rc;
}

void chunk_wmap_boot_end(const char *dir)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/chunks", dir);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* Everything written, maps included, is on disk before the note goes;
     * if syncing fails the note stays and the next start forgets. */
    if (syncfs(fd) == 0) {
        snprintf(path, sizeof(path), "%s/wmap.boot", dir);
        unlink(path);
    }
    close(fd);
}
