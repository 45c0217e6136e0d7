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

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
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
    if (pwrite(fd, WMAP_MAGIC, WMAP_HDR, 0) != WMAP_HDR ||
        ftruncate(fd, WMAP_HDR + PROTO_WMAP_BYTES) < 0 || fdatasync(fd) < 0)
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

int chunk_wmap_mark(struct chunk_wmap *m, uint32_t b0, uint32_t nb)
{
    uint32_t lo = UINT32_MAX, hi = 0;

    if (!m->bits || nb == 0)
        return 0;
    if (b0 >= PROTO_WMAP_BITS || nb > PROTO_WMAP_BITS - b0)
        return -EINVAL;
    for (uint32_t b = b0; b < b0 + nb; b++) {
        uint8_t bit = (uint8_t)(1u << (b % 8));
        if (m->bits[b / 8] & bit)
            continue;
        m->bits[b / 8] |= bit;
        if (b / 8 < lo)
            lo = b / 8;
        hi = b / 8;
    }
    if (lo == UINT32_MAX)
        return 0;
    size_t n = hi - lo + 1;
    ssize_t w = pwrite(m->fd, m->bits + lo, n, WMAP_HDR + (off_t)lo);
    if (w != (ssize_t)n) {
        /* The bits stay set in memory (a later mark or sync does not
         * rewrite them), so the map can no longer be trusted: forget it
         * rather than let it lose a block. */
        int rc = w < 0 ? -errno : -EIO;
        chunk_wmap_forget(m);
        return rc;
    }
    return 0;
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
