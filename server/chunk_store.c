/* chunk_store.c: chunk files on the local disk, with a CRC32C per block.
 *
 * Layout under the data directory:
 *
 *     DIR/chunks/f3/00000000000a01f3       data: sparse, up to 64 MiB
 *     DIR/chunks/f3/00000000000a01f3.crc   header sector, then checksums
 *     DIR/chunks/f3/00000000000a01f3.wmap  written-block map (chunk_wmap.c)
 *
 * The folder is the id's last two hex digits.  The .crc file starts with a
 * 512-byte header sector (magic, format, version, logical length and a
 * CRC32C of those fields), followed by one little-endian CRC32C per 4 KiB
 * block of data.  A chunk exists when its .crc file does and holds a
 * header: create makes the .crc under its final name, writes and syncs
 * its header, then syncs the folder; a .crc whose header is still empty
 * is the leftover of a create that a crash stopped (invariant 12 in
 * chunk_store_file.h).
 *
 * An overlay (format 2; copy-on-write without reflinks, below) has no
 * plain data file but its own layer and links to a frozen base; its
 * files and how they are read and made are in chunk_overlay.c.
 *
 * This file does the disk work only: it neither knows about connections
 * nor queues anything.  Callers run it on worker threads; every function
 * takes the chunk's lock itself (shared for reads, exclusive otherwise).
 *
 * Nowait reads and writes (chunk_store_read_nowait(), _write_nowait())
 * are the exception: chunk_job.c tries them on the loop thread first, so
 * they must never block.  They only try-lock (the store lock, then the
 * chunk's), only use a handle already in the table (no open()), and do
 * their I/O with preadv2()/pwritev2() and RWF_NOWAIT, so that a page not
 * in the page cache, or a write that would wait for writeback, fails with
 * EAGAIN instead of sleeping; any of these gives -EAGAIN and the caller
 * runs the blocking call on a worker instead.  Writes go nowait only when
 * they are whole blocks (no read-merge-write) with their space already
 * reserved (no fallocate()), or blocks an overlay's layer is known not to
 * have (which need no reservation, invariant 11), and without sync.  A
 * nowait write that gave up part-way may leave some of its blocks written
 * without their checksums: the blocking redo of the same write rewrites every
 * block and checksum whole, reading none of them, so it ends consistent; until
 * then nobody reads the chunk, as its lane in chunk_job.c stays exclusive. File
 * systems without RWF_NOWAIT (ext4 and tmpfs have no buffered nowait writes;
 * tmpfs has no nowait reads either) are noticed at the first EOPNOTSUPP, and
 * from then on the nowait calls give up at once; except that, in
 * CHUNK_INLINE_BUFFERED mode (chunkd's default), a small whole-block write to
 * reserved space is then done as a plain buffered write on the loop thread.
 * Such a write copies into the page cache and returns; it sleeps only when the
 * kernel throttles writers whose dirty pages passed vm.dirty_ratio, and a
 * worker doing it would sleep just as long while the request waited for it.
 * What it saves is the two thread hand-offs of the pool, most of the cost of a
 * 4 KiB write.
 *
 * Invariants (asserts and comments cite them by number):
 *   1. Data and checksums past the logical length are zero (holes), so a
 *      read past the length, or of a block never written, sees zeros.
 *   2. A stored checksum of 0 means "never written": the block is valid
 *      when its contents are all zeros (crc32c of a zero block).  Any other
 *      stored value must equal crc32c of the block's 4096 bytes.
 *   3. The header is rewritten in place, one sector, and carries its own
 *      checksum: a torn header is reported (-EIO), never trusted.
 *
 * Crash safety of a write: the header grows the length first (keeping
 * invariant 1 true for whatever follows), then the data blocks are
 * written, then their checksums.  A crash in between leaves blocks whose
 * checksum does not match and a later read fails with -EBADMSG: detected,
 * never silently wrong.  Partial blocks are read, verified, merged and
 * written whole, so a corrupt block is never blessed with a fresh
 * checksum.
 *
 * Versions (docs/architecture.md "Writing"):
 *
 *     (absent) --create(0 -> v)--> [v] --setversion(v -> w)--> [w]
 *        ^                          |
 *        +-------- delete ----------+
 *
 *     FROM      TO        [function]
 *     absent    v         chunk_store_setversion(old 0)
 *     v         w         chunk_store_setversion(old v)
 *     v         absent    chunk_store_delete()
 *     absent/v  w (w>=v)  chunk_store_stage_commit()
 *
 * Copies from another server (chunk_replicate.c) are built in a second,
 * private store under DIR/staging, with the same layout and the same
 * write path, so a half copy is never a chunk of the main store.
 * chunk_store_stage_commit() syncs the copy and installs it over the
 * chunk's files, if any (stage_move()), so that a failure or a crash at
 * any point leaves either the old chunk, whole, or the new one, never the
 * new checksums over the old data or the reverse:
 *
 *   1. staged .crc -> ID.crc.copy, sync the folder
 *   2. staged data -> ID.copy, ID.wmap removed, sync the folder
 *   3. ID.crc.copy -> ID.crc           the switch: the new chunk exists
 *   4. sync the folder, ID.copy -> ID, the old overlay files removed,
 *      sync the folder
 *
 * Before the switch the old chunk's .crc and data are untouched (only its
 * written-block map goes, which leaves its history unknown, as a copy's
 * is): a failed step removes ID.copy and ID.crc.copy and the old chunk
 * reads as before.  The syncs order the steps on disk: ID.copy never
 * exists without ID.crc.copy before the switch, and the data never takes
 * its name before the switch is durable.  So the next open
 * (sweep_install()) tells a crash's leftovers apart by ID.crc.copy alone:
 * with it, the switch was not made and the copy's files go; without it,
 * ID.copy is the data of the new ID.crc and takes the data name.  A
 * failure after the switch (the last rename) drops the chunk: the old one
 * was replaced and the new one cannot be read whole.  DIR/staging is
 * emptied at every open: an interrupted copy is simply started again.
 *
 * Local copies (chunk_store_clone, copy-on-write of a chunk shared by a
 * snapshot or clone, docs/vmdisk.md): where the file system shares
 * blocks, the data file and the checksum file are reflinked (FICLONE)
 * under the new id, the header rewritten with the new version, and the
 * .crc made as create makes it.  Elsewhere nothing is
 * copied: the copy becomes an overlay over the source's files, frozen
 * as its base and shared by hard links (chunk_ov_clone()), writing only
 * its own layer, so the first 4 KiB write into it costs one 4 KiB block.
 * The source stays as it is, flat, until something would change its data
 * or checksums in place (its remaining owner writes or shrinks it): then
 * it first becomes an overlay over those same files too
 * (chunk_ov_unshare(), invariant 9), off the copy's write path and only
 * for the sources that are ever written again.  A clone of an overlay
 * shares the same base and copies the source's own layer (its writes
 * since it became an overlay; reflinked or sparse): chains are one level
 * deep, so a read goes to at most two files whatever the history.
 *
 * What a copy-on-write costs (chunk_ov_clone()): on a journaling file
 * system one journal commit: the sync of the copy's checksum file, whose
 * header makes it a chunk, commits every new name with it, and the
 * folder's sync after it (before the reply) finds nothing more to
 * commit.  A source with writes not synced yet is synced first, so that
 * no copy is made over blocks a crash could take back.  The written-block
 * map of the copy is not synced (chunk_wmap.c).  A crash before that sync
 * leaves the copy's files with an empty header, or none of them, which
 * the next open removes; the source never changed.  The source's own
 * conversion, later, is two commits more (its new checksum file and
 * names, then its switch), durable before the write that needed it.
 * The store's bytes on disk count each overlay's own files and each base
 * once (chunk_ov_unlink(), chunk_ov_shared_bytes(),
 * chunk_ov_list_alloc(), share_of()).  Whatever a crash leaves half-done
 * (a .crc with an empty header, a .crc.tmp, links of a conversion that
 * did not switch, the flat name of a converted chunk, files of no chunk)
 * is removed at the next open (store_sweep()), and an interrupted install
 * of a copy is finished or undone.
 *
 * Open files are kept: a handle (struct chunk_file) whose last user is
 * done stays in the table, idle, with its two descriptors, version and
 * length, on a least-recently-used list of at most idle_max handles; the
 * next operation on the chunk takes it from there without open() or a
 * header read.  This is safe because every change to a chunk's files is
 * made through its one handle, under the handle's exclusive lock, which
 * updates the cached version and length as it writes them: the cache is
 * never behind the disk.  Delete and the replacement by a staged copy
 * close the handle's files (a replaced chunk is reopened at once, as the
 * new files); a version change rewrites the header through the same
 * descriptor, so the handle stays valid.  Someone editing the files in
 * place behind the store's back (a disk error, a test) is still seen by
 * the checksums; someone replacing or deleting them is not, until the
 * handle is evicted.  With the handle the store remembers which blocks
 * already have space reserved (fallocate) in both files, so a rewrite of
 * them does not reserve again.
 *
 * Bad chunks: a chunk that failed a checksum or an I/O (chunk_scrub.c,
 * or a client read) is marked bad, and from then on every read, write,
 * sync and truncate of it fails with -EBADMSG, so a replica that is known
 * to be damaged is not served while metad replaces it.  Deleting the
 * chunk or committing a fresh copy over it clears the mark.  The mark is
 * kept in memory and as a file DIR/bad/<id> holding the reason, read back
 * at open, so a restart neither serves the chunk again nor forgets to
 * report it (chunk_meta.c reports every marked chunk once registered).
 * The file is not synced: a host crash that loses it loses nothing the
 * checksums will not find again.
 *
 * Space on disk: the store keeps the bytes its chunks' data and checksum
 * files take on disk (st_blocks * 512), summed once at open and moved by
 * every change that can allocate or free space: create, clone, a write
 * (blocking; a nowait write only fills space already reserved), truncate,
 * delete and the replacement by a staged copy.  Each handle remembers
 * its chunk's share (alloc), so an update is two fstat() calls and a
 * difference.  chunkd sends the sum to metad with every heartbeat
 * (docs/protocol.md §9.2): what a server uses is what its disk holds, not
 * 64 MiB per chunk.  Each chunk's own figure, when it changes, is noted in
 * the store's usage set (chunk_usage.c) for metad, which sums them into
 * the files' st_blocks (§9.5).
 */
#include "chunk_store_file.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

/* Idle handles kept by default: a quarter of the descriptor limit (two
 * descriptors each, the rest for sockets), within these bounds; the stage
 * keeps a few for the copies in progress. */
#define IDLE_MIN 16u
#define IDLE_MAX 1024u
#define IDLE_STAGE 16u
/* Direct writes: buffer, offset and length alignment. */
#define DIRECT_ALIGN 4096u

/* ---- Small helpers ----------------------------------------------------- */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void chunk_path(const struct chunk_store *s, uint64_t id, const char *suffix,
                char *buf, size_t size)
{
    snprintf(buf, size, "%s/chunks/%02x/%016llx%s", s->dir,
             (unsigned)(id & 0xFF), (unsigned long long)id, suffix);
}

void chunk_dir_path(const struct chunk_store *s, uint64_t id, char *buf,
                    size_t size)
{
    snprintf(buf, size, "%s/chunks/%02x", s->dir, (unsigned)(id & 0xFF));
}

/* Read exactly @n bytes at @off; bytes past the end of the file read as
 * zeros (invariant 1: a short file is a file with a hole at the end).
 * @rwf is 0, or RWF_NOWAIT for the loop thread: then a read that would
 * block fails with -EAGAIN (a short read is simply continued, so only the
 * part that would block fails), and a file system without it gives
 * -EOPNOTSUPP or -EINVAL. */
int chunk_pread_full(int fd, void *buf, size_t n, off_t off, int rwf)
{
    uint8_t *p = buf;

    while (n > 0) {
        struct iovec iov = {p, n};
        ssize_t r = preadv2(fd, &iov, 1, off, rwf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0) {
            memset(p, 0, n);
            return 0;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* Write all @n bytes at @off, going on after a short write.  @rwf as for
 * chunk_pread_full(): with RWF_NOWAIT the bytes before the one that would
 * block may have been written when it returns -EAGAIN.  A write that makes
 * no progress is -EIO. */
int chunk_pwrite_full(int fd, const void *buf, size_t n, off_t off, int rwf)
{
    const uint8_t *p = buf;

    while (n > 0) {
        struct iovec iov = {(void *)p, n};
        ssize_t r = pwritev2(fd, &iov, 1, off, rwf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* no progress: retrying would spin */
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* Write @iov (modified in place) at @off, all of it; @rwf as for
 * chunk_pwrite_full(). */
static int pwritev_full(int fd, struct iovec *iov, int iovcnt, off_t off,
                        int rwf)
{
    while (iovcnt > 0) {
        ssize_t r = pwritev2(fd, iov, iovcnt, off, rwf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -EIO; /* no progress: retrying would spin */
        off += r;
        while (iovcnt > 0 && (size_t)r >= iov->iov_len) {
            r -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + r;
            iov->iov_len -= (size_t)r;
        }
    }
    return 0;
}

/* ---- Direct writes ------------------------------------------------------ */

/* A large write of whole blocks goes to the disk with O_DIRECT instead of
 * through the page cache.  Measured on the hosts this runs on, copying a
 * MiB into the page cache and having the kernel write it back costs
 * several times the CPU of a direct write of it, and a replica set does it
 * once per replica on one host: for sequential writes CPU is the limit.
 * Small writes stay buffered (a direct write waits for the disk).  The
 * kernel keeps the page cache coherent with direct writes; durability is
 * unchanged (a sync still fdatasyncs, for the device's cache and the
 * extents).  The data file's descriptor is switched to O_DIRECT for the
 * write only, under the chunk's exclusive lock, so no other I/O on it
 * sees the flag. */

static void *bounce_get(struct chunk_store *s)
{
    void *b = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->nbounce)
        b = s->bounce[--s->nbounce];
    pthread_mutex_unlock(&s->lock);
    if (!b && posix_memalign(&b, DIRECT_ALIGN, PROTO_MAX_DATA) != 0)
        b = NULL;
    return b;
}

static void bounce_put(struct chunk_store *s, void *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->nbounce < BOUNCE_KEEP) {
        s->bounce[s->nbounce++] = b;
        b = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    free(b);
}

/* Write @len bytes of @buf at @off of @fd with O_DIRECT.  -EINVAL when
 * the file system (or the alignment) does not allow it: nothing written. */
static int direct_write(struct chunk_store *s, int fd, const uint8_t *buf,
                        size_t len, off_t off)
{
    void *bounce = NULL;
    int fl, rc;

    if ((uintptr_t)buf % DIRECT_ALIGN) {
        bounce = bounce_get(s);
        if (!bounce)
            return -ENOMEM;
        memcpy(bounce, buf, len);
        buf = bounce;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0) {
        rc = -errno;
    } else {
        struct iovec iov = {(void *)buf, len};
        rc = pwritev_full(fd, &iov, 1, off, 0);
        if (fcntl(fd, F_SETFL, fl) < 0) {
            /* Left in O_DIRECT, the next buffered read of it fails with
             * EINVAL: a failed I/O, as a bad disk would give. */
            log_error("chunk write: cannot leave O_DIRECT: %s",
                      strerror(errno));
        }
    }
    bounce_put(s, bounce);
    return rc;
}

/* The data part of a write: @iov (@niov entries, modified) at @off. */
static int data_write(struct chunk_store *s, int fd, struct iovec *iov,
                      int niov, off_t off, int rwf)
{
    uint32_t min = __atomic_load_n(&s->direct_min, __ATOMIC_RELAXED);

    if (rwf || niov != 1 || !min || iov->iov_len < min ||
        iov->iov_len > PROTO_MAX_DATA || iov->iov_len % DIRECT_ALIGN ||
        off % DIRECT_ALIGN)
        return pwritev_full(fd, iov, niov, off, rwf);
    int rc = direct_write(s, fd, iov->iov_base, iov->iov_len, off);
    if (rc == -EINVAL || rc == -ENOMEM) {
        if (rc == -EINVAL &&
            __atomic_exchange_n(&s->direct_min, 0, __ATOMIC_RELAXED))
            log_info("chunk store: the file system refuses direct writes: "
                     "writing through the page cache: dir=%s",
                     s->dir);
        rc = pwritev_full(fd, iov, niov, off, rwf);
    }
    return rc;
}

void chunk_store_set_direct_writes(struct chunk_store *s, uint32_t min)
{
    __atomic_store_n(&s->direct_min, min, __ATOMIC_RELAXED);
}

/* Reserve space so that a later write cannot fail half-way with ENOSPC.
 * File systems without fallocate() are written without the reservation. */
static int reserve(int fd, off_t off, off_t len)
{
    if (fallocate(fd, 0, off, len) == 0)
        return 0;
    if (errno == EOPNOTSUPP || errno == ENOSYS)
        return 0;
    return -errno;
}

/* Start writing @fd's dirty pages and wait for them, without a journal
 * commit: the sync that follows (of this file or any other on the same
 * journaling file system) then commits their allocation with everything
 * else, one commit instead of one per file. */
int chunk_flush_early(int fd)
{
    if (sync_file_range(
            fd, 0, 0, SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0 &&
        errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP &&
        errno != ESPIPE)
        return -errno; /* where it is not supported, the sync does it all */
    return 0;
}

int chunk_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* ---- Header (invariant 3) ---------------------------------------------- */

static int hdr_read(int cfd, struct chunk_hdr *h)
{
    uint8_t b[HDR_FIELDS_OVERLAY + 4];
    uint32_t format, fields;
    int rc = chunk_pread_full(cfd, b, sizeof(b), 0, 0);

    if (rc < 0)
        return rc;
    format = get_le32(b + 4);
    fields = format == HDR_FORMAT_OVERLAY ? HDR_FIELDS_OVERLAY : HDR_FIELDS;
    if (get_le32(b) != HDR_MAGIC ||
        (format != HDR_FORMAT && format != HDR_FORMAT_OVERLAY) ||
        get_le32(b + fields) != crc32c(0, b, fields))
        return -EIO;
    h->overlay = format == HDR_FORMAT_OVERLAY;
    h->version = get_le64(b + 8);
    h->length = get_le64(b + 16);
    h->base_len = h->overlay ? get_le64(b + 24) : h->length;
    if (h->version == 0 || h->length > PROTO_CHUNK_SIZE ||
        h->base_len > h->length) /* invariant 7 */
        return -EIO;
    return 0;
}

/* Invariant 12: what @cfd holds of its header is zeros, if anything (a
 * header is written whole, so a short one is a file still empty), so the
 * file is no chunk's. */
static bool hdr_empty(int cfd)
{
    uint8_t b[HDR_FIELDS_OVERLAY + 4];
    ssize_t n = pread(cfd, b, sizeof(b), 0);

    if (n < 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Write the header sector @h: one page, so even with RWF_NOWAIT in @rwf
 * it is written whole or not at all. */
int chunk_hdr_put(int cfd, const struct chunk_hdr *h, int rwf)
{
    uint32_t fields = h->overlay ? HDR_FIELDS_OVERLAY : HDR_FIELDS;
    uint8_t b[HDR_SIZE];

    memset(b, 0, sizeof(b));
    put_le32(b, HDR_MAGIC);
    put_le32(b + 4, h->overlay ? HDR_FORMAT_OVERLAY : HDR_FORMAT);
    put_le64(b + 8, h->version);
    put_le64(b + 16, h->length);
    if (h->overlay)
        put_le64(b + 24, h->base_len);
    put_le32(b + fields, crc32c(0, b, fields));
    return chunk_pwrite_full(cfd, b, sizeof(b), 0, rwf);
}

/* Rewrite @f's header with @version and @length, keeping its kind and
 * base length. */
int chunk_hdr_write(struct chunk_file *f, uint64_t version, uint64_t length,
                    int rwf)
{
    struct chunk_hdr h = {version, length, f->base_len, f->overlay};

    return chunk_hdr_put(f->cfd, &h, rwf);
}

/* ---- Handles ----------------------------------------------------------- */

static void file_shut(struct chunk_file *f)
{
    int *fds[] = {&f->dfd, &f->cfd, &f->bdfd, &f->bcfd};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    f->exists = false;
    f->overlay = false;
    f->base_shared = false;
    f->base_len = 0;
    free(f->pres);
    f->pres = NULL;
    free(f->resv); /* invariant 5: other files, other space */
    f->resv = NULL;
    free(f->absent); /* invariant 11 */
    f->absent = NULL;
    chunk_wmap_close(&f->wmap);
}

static void file_free(struct chunk_file *f)
{
    file_shut(f);
    pthread_rwlock_destroy(&f->rw);
    free(f);
}

/* Free a list of handles linked by @next (evicted ones, already out of the
 * table), outside the store lock. */
static void file_free_list(struct chunk_file *f)
{
    while (f) {
        struct chunk_file *next = f->next;
        file_free(f);
        f = next;
    }
}

/* Bytes the data file @dfd and checksum file @cfd take on disk; a file
 * that cannot be stat'ed counts as none. */
static uint64_t files_alloc(int dfd, int cfd)
{
    struct stat st;
    uint64_t n = 0;

    if (dfd >= 0 && fstat(dfd, &st) == 0)
        n += (uint64_t)st.st_blocks * 512;
    if (cfd >= 0 && fstat(cfd, &st) == 0)
        n += (uint64_t)st.st_blocks * 512;
    return n;
}

/* Re-read the space @f's files take (exclusive lock held; none once it
 * stopped existing) and move the store's sum by the change. */
void chunk_alloc_update(struct chunk_store *s, struct chunk_file *f)
{
    uint64_t now = f->exists ? files_alloc(f->dfd, f->cfd) : 0;

    if (now >= f->alloc)
        __atomic_add_fetch(&s->alloc, now - f->alloc, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&s->alloc, f->alloc - now, __ATOMIC_RELAXED);
    if (s->usage && now != f->alloc)
        chunk_usage_put(s->usage, f->id, now, false);
    f->alloc = now;
}

/* The number of names file @fd has (1 when it cannot be stat'ed). */
static nlink_t links_of(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 ? st.st_nlink : 1;
}

/* Open the files of a chunk that may exist.  A missing .crc file means no
 * chunk; a missing data file is an empty one (its blocks will then fail
 * their checksums, which is what lost data should do).  An overlay whose
 * base is missing cannot be read: -EIO. */
static int file_load(struct chunk_store *s, struct chunk_file *f)
{
    char path[4096];
    struct chunk_hdr h;
    int rc;

    chunk_path(s, f->id, ".crc", path, sizeof(path));
    f->cfd = open(path, O_RDWR | O_CLOEXEC);
    if (f->cfd < 0)
        return errno == ENOENT ? 0 : -errno;
    rc = hdr_read(f->cfd, &h);
    if (rc < 0) {
        log_error("chunk open: bad header: chunk=%016llx path=%s",
                  (unsigned long long)f->id, path);
        file_shut(f);
        return rc;
    }
    f->version = h.version;
    f->length = h.length;
    if (h.overlay) {
        f->overlay = true;
        f->base_len = h.base_len;
        rc = chunk_ov_load(s, f);
        if (rc < 0) {
            log_error("chunk open: overlay base unreadable: chunk=%016llx "
                      "errno=%d",
                      (unsigned long long)f->id, -rc);
            file_shut(f);
            return rc == -ENOENT ? -EIO : rc;
        }
    }
    chunk_path(s, f->id, h.overlay ? ".ov" : "", path, sizeof(path));
    f->dfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f->dfd < 0) {
        rc = -errno;
        file_shut(f);
        return rc;
    }
    f->exists = true;
    f->dirty = true; /* invariant 10: what the page cache holds is unknown */
    f->base_shared =
        !h.overlay && (links_of(f->dfd) > 1 || links_of(f->cfd) > 1);
    /* Counted in s->alloc already: at open, or by the change that made
     * the files as they are. */
    f->alloc = files_alloc(f->dfd, f->cfd);
    if (s->stage) {
        chunk_path(s, f->id, ".wmap", path, sizeof(path));
        if ((rc = chunk_wmap_load(&f->wmap, path)) < 0) {
            file_shut(f);
            return rc;
        }
    }
    return 0;
}

static void table_remove(struct chunk_store *s, struct chunk_file *f)
{
    struct chunk_file **pp;

    for (pp = &s->buckets[f->id % NBUCKETS]; *pp != f; pp = &(*pp)->next)
        ;
    *pp = f->next;
}

static void idle_unlink(struct chunk_store *s, struct chunk_file *f)
{
    if (f->newer)
        f->newer->older = f->older;
    else
        s->idle_new = f->older;
    if (f->older)
        f->older->newer = f->newer;
    else
        s->idle_old = f->newer;
    f->newer = f->older = NULL;
    s->nidle--;
}

/* Take idle handles out of the table, oldest first, until at most @keep
 * remain; returns them linked by @next for file_free_list().  Under
 * s->lock. */
static struct chunk_file *idle_evict(struct chunk_store *s, uint32_t keep)
{
    struct chunk_file *out = NULL;

    while (s->nidle > keep) {
        struct chunk_file *f = s->idle_old;
        assert(f->refs == 0); /* invariant 4 */
        idle_unlink(s, f);
        table_remove(s, f);
        f->next = out;
        out = f;
    }
    return out;
}

/* Find or open the handle of chunk @id and take a reference.  Release it
 * with file_put(). */
static int file_get(struct chunk_store *s, uint64_t id, struct chunk_file **out)
{
    unsigned b = (unsigned)(id % NBUCKETS);
    struct chunk_file *f;
    int rc;

    pthread_mutex_lock(&s->lock);
    for (f = s->buckets[b]; f; f = f->next)
        if (f->id == id)
            break;
    if (f) {
        if (f->refs++ == 0)
            idle_unlink(s, f);
        pthread_mutex_unlock(&s->lock);
        *out = f;
        return 0;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    f->id = id;
    f->refs = 1;
    f->dfd = f->cfd = f->bdfd = f->bcfd = -1;
    chunk_wmap_init(&f->wmap);
    pthread_rwlock_init(&f->rw, NULL);
    /* Loading under the store lock keeps a half-loaded handle invisible;
     * it costs two open() calls once per chunk brought into the cache. */
    rc = file_load(s, f);
    if (rc == -EMFILE || rc == -ENFILE) {
        /* Out of descriptors: give back the idle ones and try again. */
        file_free_list(idle_evict(s, 0));
        rc = file_load(s, f);
    }
    if (rc < 0) {
        pthread_mutex_unlock(&s->lock);
        file_free(f);
        return rc;
    }
    f->next = s->buckets[b];
    s->buckets[b] = f;
    pthread_mutex_unlock(&s->lock);
    *out = f;
    return 0;
}

/* Drop a reference.  The last one makes an existing chunk's handle idle
 * (evicting the least recently used beyond idle_max); a handle of a chunk
 * that does not exist is freed at once. */
static void file_put(struct chunk_store *s, struct chunk_file *f)
{
    struct chunk_file *evicted = NULL;

    pthread_mutex_lock(&s->lock);
    if (--f->refs > 0) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    /* No one else holds @f (refs 0 under the lock), so @exists is stable:
     * the last user released rw before taking the lock. */
    if (f->exists && s->idle_max > 0) {
        f->older = s->idle_new;
        f->newer = NULL;
        if (s->idle_new)
            s->idle_new->newer = f;
        else
            s->idle_old = f;
        s->idle_new = f;
        s->nidle++;
        evicted = idle_evict(s, s->idle_max);
        f = NULL;
    } else {
        table_remove(s, f);
    }
    pthread_mutex_unlock(&s->lock);
    if (f)
        file_free(f);
    file_free_list(evicted);
}

/* open() for a new chunk's files: when out of descriptors, close the idle
 * handles and try once more.  Not under s->lock. */
static int open_evicting(struct chunk_store *s, const char *path, int flags)
{
    int fd = open(path, flags, 0644);

    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        struct chunk_file *evicted;
        pthread_mutex_lock(&s->lock);
        evicted = idle_evict(s, 0);
        pthread_mutex_unlock(&s->lock);
        file_free_list(evicted);
        fd = open(path, flags, 0644);
    }
    return fd < 0 ? -errno : fd;
}

void chunk_store_set_cache(struct chunk_store *s, uint32_t max)
{
    struct chunk_file *evicted;

    pthread_mutex_lock(&s->lock);
    s->idle_max = max;
    evicted = idle_evict(s, max);
    pthread_mutex_unlock(&s->lock);
    file_free_list(evicted);
}

uint32_t chunk_store_cached(struct chunk_store *s)
{
    uint32_t n;

    pthread_mutex_lock(&s->lock);
    n = s->nidle;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- Bad chunks --------------------------------------------------------- */

static bool bad_find(struct chunk_store *s, uint64_t id, size_t *at)
{
    for (size_t i = 0; i < s->nbad; i++) {
        if (s->bad[i].id == id) {
            if (at)
                *at = i;
            return true;
        }
    }
    return false;
}

/* DIR/bad/<id>: the mark's file (main store only: s->stage is set). */
static void bad_path(struct chunk_store *s, uint64_t id, char *buf, size_t n)
{
    snprintf(buf, n, "%s/bad/%016llx", s->dir, (unsigned long long)id);
}

bool chunk_store_is_bad(struct chunk_store *s, uint64_t id)
{
    bool bad;

    pthread_mutex_lock(&s->lock);
    bad = bad_find(s, id, NULL);
    pthread_mutex_unlock(&s->lock);
    return bad;
}

/* Add @id to the list in memory (under s->lock): 1, 0 or -ENOMEM. */
static int bad_add(struct chunk_store *s, uint64_t id, uint32_t reason)
{
    if (bad_find(s, id, NULL))
        return 0;
    if (s->nbad == s->bad_cap) {
        size_t cap = s->bad_cap ? 2 * s->bad_cap : 16;
        struct chunk_bad *n = realloc(s->bad, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->bad = n;
        s->bad_cap = cap;
    }
    s->bad[s->nbad].id = id;
    s->bad[s->nbad].reason = reason;
    s->nbad++;
    return 1;
}

int chunk_store_mark_bad(struct chunk_store *s, uint64_t id, uint32_t reason)
{
    char path[4096];
    FILE *f;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = bad_add(s, id, reason);
    pthread_mutex_unlock(&s->lock);
    if (rc != 1 || !s->stage)
        return rc;
    bad_path(s, id, path, sizeof(path));
    f = fopen(path, "we");
    if (!f || fprintf(f, "%u\n", reason) < 0 || fclose(f) != 0)
        log_warn("chunk bad replica: mark not kept on disk: %s: chunk=%016llx "
                 "path=%s",
                 strerror(errno), (unsigned long long)id, path);
    return rc;
}

int chunk_store_bad_list(struct chunk_store *s, struct chunk_bad **out,
                         size_t *n)
{
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    *n = s->nbad;
    *out = malloc((s->nbad ? s->nbad : 1) * sizeof(**out));
    if (!*out)
        rc = -ENOMEM;
    else if (s->nbad)
        memcpy(*out, s->bad, s->nbad * sizeof(**out));
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void bad_clear(struct chunk_store *s, uint64_t id)
{
    char path[4096];
    size_t i;
    bool found;

    pthread_mutex_lock(&s->lock);
    found = bad_find(s, id, &i);
    if (found)
        s->bad[i] = s->bad[--s->nbad];
    pthread_mutex_unlock(&s->lock);
    if (found && s->stage) {
        bad_path(s, id, path, sizeof(path));
        unlink(path);
    }
}

/* Read back the marks under DIR/bad (a missing folder is made). */
static int bad_load(struct chunk_store *s)
{
    char path[4096];
    struct dirent *de;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/bad", s->dir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    if (!(d = opendir(path)))
        return -errno;
    while (rc >= 0 && (de = readdir(d))) {
        char *end, file[4096 + 512];
        unsigned reason = 0;
        uint64_t id = strtoull(de->d_name, &end, 16);
        FILE *f;

        if (strlen(de->d_name) != 16 || *end)
            continue;
        snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
        if ((f = fopen(file, "re")) != NULL) {
            if (fscanf(f, "%u", &reason) != 1)
                reason = 0;
            fclose(f);
        }
        rc = bad_add(s, id, reason);
    }
    closedir(d);
    return rc < 0 ? rc : 0;
}

/* Lock chunk @id shared or exclusive and check that it exists at @ver and
 * is not marked bad. */
static int file_lock(struct chunk_store *s, uint64_t id, uint64_t ver,
                     bool excl, struct chunk_file **out)
{
    struct chunk_file *f;
    int rc = file_get(s, id, &f);

    if (rc < 0)
        return rc;
    if (excl)
        pthread_rwlock_wrlock(&f->rw);
    else
        pthread_rwlock_rdlock(&f->rw);
    if (!f->exists)
        rc = -ENOENT;
    else if (f->version != ver)
        rc = -ESTALE;
    else if (chunk_store_is_bad(s, id))
        rc = -EBADMSG;
    if (rc < 0) {
        pthread_rwlock_unlock(&f->rw);
        file_put(s, f);
        return rc;
    }
    *out = f;
    return 0;
}

static void file_unlock(struct chunk_store *s, struct chunk_file *f)
{
    pthread_rwlock_unlock(&f->rw);
    file_put(s, f);
}

/* file_lock() for the loop thread, which must not wait: -EAGAIN when the
 * store lock or the chunk's lock is taken, or when the chunk has no
 * handle in the table (it would need open(), and a header read).  A
 * handle in the table is always loaded (file_get() loads it under the
 * store lock), so this never touches the disk.  The chunk's lock is only
 * tried while holding the store lock, so the usual order (a chunk's lock,
 * then the store lock) cannot deadlock with it.  Release with
 * file_unlock(), whose store lock is held by others only for short,
 * in-memory steps, except while another thread brings a chunk into the
 * table (file_get(): two open() calls). */
static int file_lock_nowait(struct chunk_store *s, uint64_t id, uint64_t ver,
                            bool excl, struct chunk_file **out)
{
    struct chunk_file *f;
    bool bad;
    int rc = 0;

    if (pthread_mutex_trylock(&s->lock) != 0)
        return -EAGAIN;
    for (f = s->buckets[id % NBUCKETS]; f; f = f->next)
        if (f->id == id)
            break;
    if (!f || (excl ? pthread_rwlock_trywrlock(&f->rw)
                    : pthread_rwlock_tryrdlock(&f->rw)) != 0) {
        pthread_mutex_unlock(&s->lock);
        return -EAGAIN;
    }
    if (f->refs++ == 0)
        idle_unlink(s, f);
    bad = bad_find(s, id, NULL);
    pthread_mutex_unlock(&s->lock);
    if (!f->exists)
        rc = -ENOENT;
    else if (f->version != ver)
        rc = -ESTALE;
    else if (bad)
        rc = -EBADMSG;
    if (rc < 0) {
        file_unlock(s, f);
        return rc;
    }
    *out = f;
    return 0;
}

/* The result of a nowait call: a file system that does not know
 * RWF_NOWAIT (-EOPNOTSUPP, or -EINVAL from older kernels) is told to the
 * store once, and either way the caller sees -EAGAIN: do it the blocking
 * way. */
static int nowait_result(bool *off, int rc)
{
    if (rc == -EOPNOTSUPP || rc == -EINVAL) {
        __atomic_store_n(off, true, __ATOMIC_RELAXED);
        rc = -EAGAIN;
    }
    return rc;
}

/* ---- Blocks and checksums ---------------------------------------------- */

static bool block_ok(const struct chunk_store *s, uint32_t stored,
                     uint32_t actual)
{
    /* Invariant 2. */
    return stored == actual || (stored == 0 && actual == s->zero_crc);
}

/* Check blocks [@b0, @b0 + @nb) of chunk @id, in @buf (nb * block size
 * bytes), against their stored checksums @raw (little-endian); @layer
 * names where they were read from, for the log. */
int chunk_crcs_check(const struct chunk_store *s, uint64_t id,
                     const char *layer, const uint8_t *raw, uint32_t b0,
                     uint32_t nb, const uint8_t *buf)
{
    int rc = 0;

    for (uint32_t i = 0; i < nb; i++) {
        uint32_t want = get_le32(raw + 4 * i);
        uint32_t got =
            crc32c(0, buf + (size_t)i * CHUNK_BLOCK_SIZE, CHUNK_BLOCK_SIZE);
        if (!block_ok(s, want, got)) {
            log_error("chunk read: checksum mismatch: chunk=%016llx "
                      "block=%u layer=%s",
                      (unsigned long long)id, b0 + i, layer);
            rc = -EBADMSG;
        }
    }
    return rc;
}

/* Read the checksums of blocks [@b0, @b0 + @nb) from @cfd into @stack
 * (STACK_BLOCKS entries) or, for more, a buffer it allocates; *raw is the
 * one used (free it unless it is @stack).  @rwf as for chunk_pread_full(). */
int chunk_crcs_load(int cfd, uint32_t b0, uint32_t nb, uint8_t *stack,
                    uint8_t **raw, int rwf)
{
    *raw = nb <= STACK_BLOCKS ? stack : malloc((size_t)nb * 4);
    if (!*raw)
        return -ENOMEM;
    return chunk_pread_full(cfd, *raw, (size_t)nb * 4, HDR_SIZE + (off_t)b0 * 4,
                            rwf);
}

/* Verify blocks [@b0, @b0 + @nb) of chunk @id, already read into @buf (nb
 * * block size bytes), against the checksums in @cfd: one read of exactly
 * the entries concerned (@rwf as for chunk_pread_full()). */
int chunk_blocks_verify(struct chunk_store *s, uint64_t id, int cfd,
                        const char *layer, uint32_t b0, uint32_t nb,
                        const uint8_t *buf, int rwf)
{
    uint8_t stack[4 * STACK_BLOCKS];
    uint8_t *raw;
    int rc = chunk_crcs_load(cfd, b0, nb, stack, &raw, rwf);

    if (rc == 0)
        rc = chunk_crcs_check(s, id, layer, raw, b0, nb, buf);
    if (raw != stack)
        free(raw);
    return rc;
}

/* Read blocks [@b0, @b0 + @nb) of @f into @buf (nb * block size bytes) and
 * verify each against its stored checksum (@rwf as for chunk_pread_full()). */
int chunk_blocks_load(struct chunk_store *s, struct chunk_file *f, uint32_t b0,
                      uint32_t nb, uint8_t *buf, int rwf)
{
    int rc;

    if (s->fault_read_eio && f->id == s->fault_read_eio)
        return -EIO; /* chunk_store_set_fault_read_eio(): a failing disk */
    if (f->overlay)
        return chunk_ov_blocks_load(s, f, b0, nb, buf, rwf);
    rc = chunk_pread_full(f->dfd, buf, (size_t)nb * CHUNK_BLOCK_SIZE,
                          (off_t)b0 * CHUNK_BLOCK_SIZE, rwf);
    return rc < 0 ? rc
                  : chunk_blocks_verify(s, f->id, f->cfd, "data", b0, nb, buf,
                                        rwf);
}

/* Store @nb checksums, already little-endian in @raw, with one write
 * (@rwf as for chunk_pwrite_full()). */
int chunk_crcs_store(struct chunk_file *f, uint32_t b0, const uint8_t *raw,
                     uint32_t nb, int rwf)
{
    return chunk_pwrite_full(f->cfd, raw, (size_t)nb * 4,
                             HDR_SIZE + (off_t)b0 * 4, rwf);
}

/* ---- Space reservation (invariant 5) ----------------------------------- */

static bool resv_test(const struct chunk_file *f, uint32_t b)
{
    return f->resv[b / 64] >> (b % 64) & 1;
}

/* Whether blocks [@b0, @b0 + @nb) are all known to be reserved. */
static bool resv_known(const struct chunk_file *f, uint32_t b0, uint32_t nb)
{
    uint32_t b;

    for (b = b0; f->resv && b < b0 + nb && resv_test(f, b); b++)
        ;
    return f->resv && b == b0 + nb;
}

/* Remember that blocks [@b0, @b0 + @nb) have space in both files. */
static void resv_mark(struct chunk_file *f, uint32_t b0, uint32_t nb)
{
    if (!f->resv)
        f->resv = calloc(RESV_WORDS, sizeof(*f->resv)); /* NULL: no memo */
    for (uint32_t b = b0; f->resv && b < b0 + nb; b++)
        f->resv[b / 64] |= (uint64_t)1 << (b % 64);
}

/* Invariant 11: whether blocks [@b0, @b0 + @nb) of an overlay are all
 * known not to be in its layer. */
static bool absent_known(const struct chunk_file *f, uint32_t b0, uint32_t nb)
{
    uint32_t b;

    for (b = b0;
         f->absent && b < b0 + nb && (f->absent[b / 64] >> (b % 64) & 1); b++)
        ;
    return f->absent && b == b0 + nb;
}

/* Invariant 11: the checksums of blocks [@b0, @b0 + @nb) are about to be
 * written. */
static void absent_clear(struct chunk_file *f, uint32_t b0, uint32_t nb)
{
    for (uint32_t b = b0; f->absent && b < b0 + nb; b++)
        f->absent[b / 64] &= ~((uint64_t)1 << (b % 64));
}

void chunk_absent_set_all(struct chunk_file *f)
{
    free(f->absent);
    f->absent = malloc(RESV_WORDS * sizeof(*f->absent)); /* NULL: no memo */
    if (f->absent)
        memset(f->absent, 0xff, RESV_WORDS * sizeof(*f->absent));
}

/* Reserve space for blocks [@b0, @b0 + @nb) in both files, unless it is
 * known to be reserved already; they are about to be written, so they
 * are no longer known to be absent (invariant 11). */
int chunk_reserve_blocks(struct chunk_file *f, uint32_t b0, uint32_t nb)
{
    int rc;

    absent_clear(f, b0, nb);
    if (resv_known(f, b0, nb))
        return 0;
    rc = reserve(f->dfd, (off_t)b0 * CHUNK_BLOCK_SIZE,
                 (off_t)nb * CHUNK_BLOCK_SIZE);
    if (rc == 0)
        rc = reserve(f->cfd, HDR_SIZE + (off_t)b0 * 4, (off_t)nb * 4);
    if (rc < 0)
        return rc;
    resv_mark(f, b0, nb);
    return 0;
}

/* Forget the reservation of blocks @b0 and up (they were truncated). */
void chunk_resv_clear_from(struct chunk_file *f, uint32_t b0)
{
    for (uint32_t b = b0; f->resv && b < CHUNK_BLOCKS; b++)
        f->resv[b / 64] &= ~((uint64_t)1 << (b % 64));
}

static int range_check(uint32_t off, uint32_t len)
{
    return (uint64_t)off + len > PROTO_CHUNK_SIZE ? -EINVAL : 0;
}

/* ---- Open and close ---------------------------------------------------- */

static int count_one(const struct chunk_info *ci, void *arg)
{
    struct chunk_store *s = arg;

    s->count++;
    s->alloc += ci->alloc;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int store_open(const char *dir, bool with_stage,
                      struct chunk_store **out);

/* What chunk @id in directory @dfd is: 0 none (no .crc, or one with an
 * empty header: invariant 12), 1 flat, 2 overlay, -1 unknown (a header
 * that cannot be read: its files are left alone). */
static int sweep_kind(int dfd, uint64_t id)
{
    char name[32];
    struct chunk_hdr h;
    int fd, rc;

    snprintf(name, sizeof(name), "%016llx.crc", (unsigned long long)id);
    fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    rc = hdr_read(fd, &h);
    if (rc < 0)
        rc = hdr_empty(fd) ? 0 : -1;
    else
        rc = h.overlay ? 2 : 1;
    close(fd);
    return rc;
}

/* The install of a staged copy of chunk @id in folder @dfd (stage_move())
 * that a crash stopped, finished one way or the other: with ID.crc.copy
 * still there the switch was not made and the copy's files go (ID.copy
 * first, as install_undo() does); without it ID.copy is the data of the
 * ID.crc the switch put in place (a flat chunk) and takes the data name.
 * Data beside no flat chunk goes. */
static void sweep_install(int dfd, uint64_t id, const char *path)
{
    char data[32], copy[32], crc_copy[32];
    bool undo, forward = false;
    int kind;

    snprintf(data, sizeof(data), "%016llx", (unsigned long long)id);
    snprintf(copy, sizeof(copy), "%016llx.copy", (unsigned long long)id);
    snprintf(crc_copy, sizeof(crc_copy), "%016llx.crc.copy",
             (unsigned long long)id);
    undo = faccessat(dfd, crc_copy, F_OK, 0) == 0;
    if (!undo) {
        kind = sweep_kind(dfd, id);
        if (kind < 0)
            return; /* a header that cannot be read: left alone */
        forward = kind == 1;
    }
    if (forward ? renameat(dfd, copy, dfd, data) == 0
                : unlinkat(dfd, copy, 0) == 0)
        log_info("chunk store: %s interrupted copy: %s/%s",
                 forward ? "finished" : "removed", path, copy);
    else if (errno != ENOENT)
        return; /* ID.crc.copy stays, and so does the decision */
    if (undo && unlinkat(dfd, crc_copy, 0) == 0)
        log_info("chunk store: removed leftover file: %s/%s", path, crc_copy);
}

/* Remove from @path (one folder of chunks/) what a crash left half-done:
 * a .crc.tmp (an unfinished conversion), a .crc with an empty header and
 * every file of its id (an unfinished create or copy, invariant 12), data
 * of no chunk or of an overlay (its flat name), the overlay files of no
 * chunk or of a flat one, and the map of no chunk; removing the last link
 * of a base frees it (invariant 9).  An install of a staged copy is
 * finished or undone (sweep_install()). */
static int sweep_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;

    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        const char *suffix = de->d_name + 16;
        int owner = -1; /* the kind of chunk the file belongs to */
        if (strlen(de->d_name) < 16 ||
            strspn(de->d_name, "0123456789abcdef") < 16)
            continue;
        if (strcmp(suffix, ".copy") == 0 || strcmp(suffix, ".crc.copy") == 0) {
            sweep_install(dirfd(d), strtoull(de->d_name, NULL, 16), path);
            continue;
        }
        if (strcmp(suffix, "") == 0)
            owner = 1;
        else if (strcmp(suffix, ".crc.tmp") == 0)
            owner = 3; /* none: always a leftover */
        else if (strcmp(suffix, ".crc") == 0)
            owner = 5; /* itself: a leftover only when empty */
        else if (strcmp(suffix, ".wmap") == 0)
            owner = 4; /* any chunk */
        else if (chunk_ov_is_suffix(suffix))
            owner = 2;
        if (owner < 0)
            continue;
        int kind = owner == 3
                       ? 0
                       : sweep_kind(dirfd(d), strtoull(de->d_name, NULL, 16));
        if (kind < 0 || kind == owner || (owner == 4 && kind > 0) ||
            (owner == 5 && kind > 0))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            log_info("chunk store: removed leftover file: %s/%s", path,
                     de->d_name);
    }
    closedir(d);
    return 0;
}

/* sweep_dir() over every folder of chunks/; at open, before anything
 * else touches the store. */
static int store_sweep(const char *dir)
{
    char path[4096];
    struct dirent *de;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/chunks", dir);
    d = opendir(path);
    if (!d)
        return -errno;
    while (rc == 0 && (de = readdir(d))) {
        if (strlen(de->d_name) != 2 ||
            strspn(de->d_name, "0123456789abcdef") != 2)
            continue;
        snprintf(path, sizeof(path), "%s/chunks/%s", dir, de->d_name);
        rc = sweep_dir(path);
    }
    closedir(d);
    return rc;
}

/* Make every folder of DIR/chunks that is missing, durable with one sync
 * of DIR/chunks, so that the first chunk made in a folder (a create, a
 * copy-on-write) does not pay a journal commit of its own for it. */
static int folders_make(const char *dir)
{
    char path[4096];
    bool made = false;

    for (unsigned i = 0; i < 256; i++) {
        snprintf(path, sizeof(path), "%s/chunks/%02x", dir, i);
        if (mkdir(path, 0755) == 0)
            made = true;
        else if (errno != EEXIST)
            return -errno;
    }
    snprintf(path, sizeof(path), "%s/chunks", dir);
    return made ? chunk_fsync_path(path) : 0;
}

static uint32_t idle_default(void)
{
    struct rlimit rl;
    uint64_t n = IDLE_MAX;

    /* Five descriptors for an overlay's handle (data, checksums, map and
     * the base's two), twice that to leave the rest for sockets. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        n = rl.rlim_cur / 10;
    return n < IDLE_MIN ? IDLE_MIN : n > IDLE_MAX ? IDLE_MAX : (uint32_t)n;
}

/* Empty DIR/staging and open it as the stage of the store in @dir. */
static int stage_open(const char *dir, struct chunk_store **out)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/staging", dir);
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return -errno;
    return store_open(path, false, out);
}

static int store_open(const char *dir, bool with_stage,
                      struct chunk_store **out)
{
    struct chunk_store *s;
    char path[4096];
    uint8_t *zero;
    int rc;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/chunks", dir);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    s = calloc(1, sizeof(*s));
    zero = calloc(1, CHUNK_BLOCK_SIZE);
    if (!s || !zero || !(s->dir = strdup(dir))) {
        free(zero);
        if (s)
            free(s->dir);
        free(s);
        return -ENOMEM;
    }
    s->zero_crc = crc32c(0, zero, CHUNK_BLOCK_SIZE);
    free(zero);
    s->idle_max = with_stage ? idle_default() : IDLE_STAGE;
    pthread_mutex_init(&s->lock, NULL);
    rc = with_stage ? store_sweep(dir) : 0;
    if (rc == 0 && with_stage)
        rc = folders_make(dir);
    if (rc == 0)
        rc = chunk_store_list(s, count_one, s);
    if (rc == 0 && with_stage)
        rc = bad_load(s);
    if (rc == 0 && with_stage)
        rc = chunk_wmap_boot_begin(dir);
    if (rc == 0 && with_stage)
        rc = stage_open(dir, &s->stage);
    if (rc == 0 && with_stage)
        rc = chunk_usage_new(&s->usage);
    if (rc < 0) {
        chunk_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int chunk_store_open(const char *dir, struct chunk_store **out)
{
    return store_open(dir, true, out);
}

void chunk_store_close(struct chunk_store *s)
{
    if (!s)
        return;
    file_free_list(idle_evict(s, 0));
    for (unsigned b = 0; b < NBUCKETS; b++)
        assert(!s->buckets[b]); /* no operation may be running */
    if (s->stage)
        chunk_wmap_boot_end(s->dir);
    chunk_store_close(s->stage);
    chunk_usage_free(s->usage);
    while (s->nbounce)
        free(s->bounce[--s->nbounce]);
    pthread_mutex_destroy(&s->lock);
    free(s->bad);
    free(s->dir);
    free(s);
}

/* ---- Versions ---------------------------------------------------------- */

/* Create (empty) the data file of chunk @id, named with @data_suffix,
 * and its checksum file, into *dfd and *cfd (-1 when not opened): under
 * its final name ID.crc when @named (a new chunk: it must not exist yet),
 * else as ID.crc.tmp (the new checksum file of a chunk that exists). */
int chunk_open_new_pair(struct chunk_store *s, uint64_t id,
                        const char *data_suffix, bool named, int *dfd,
                        int *cfd)
{
    char path[4096];
    int fd;

    *dfd = *cfd = -1;
    chunk_path(s, id, data_suffix, path, sizeof(path));
    fd = open_evicting(s, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return fd;
    *dfd = fd;
    chunk_path(s, id, named ? ".crc" : ".crc.tmp", path, sizeof(path));
    fd = open_evicting(s, path,
                       O_RDWR | O_CREAT | O_CLOEXEC |
                           (named ? O_EXCL : O_TRUNC));
    if (fd < 0)
        return fd;
    *cfd = fd;
    return 0;
}

/* Remove what chunk_files_prepare() made of @f and close its files.
 * Its ID.crc goes only if it made it (it is open): an ID.crc that was
 * there already, which its O_EXCL met, is some chunk's. */
void chunk_files_abort(struct chunk_store *s, struct chunk_file *f)
{
    static const char *const names[] = {"", ".crc", ".wmap"};
    char path[4096];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (i == 1 && f->cfd < 0)
            continue;
        chunk_path(s, f->id, names[i], path, sizeof(path));
        unlink(path);
    }
    chunk_ov_unlink(s, f->id);
    file_shut(f);
}

/* The first half of making chunk @f at @ver: every file written under
 * its final name, the checksum file ID.crc too (invariant 12: until its
 * header sector is written and synced, it is no chunk), with the
 * written-block map created last.  Only the files with contents are
 * synced: the checksum file (its header) and a copied data file; on a
 * journaling file system that sync commits every new name with it, so
 * the folder's sync in chunk_files_commit() finds nothing more to write
 * and the whole costs one journal commit.  The map is not synced here
 * (chunk_wmap.c says why).  A copy of a flat chunk is a
 * reflink or nothing (-EOPNOTSUPP); an overlay's copy links its base and
 * copies the source's layer (reflinked or sparse).  A folder of chunks/
 * made here (the stage's: the main store makes them all at open) is made
 * durable at once.  On failure nothing of @f is left. */
int chunk_files_prepare(struct chunk_store *s, struct chunk_file *f,
                        uint64_t ver, const struct chunk_copy_src *src)
{
    char path[4096];
    bool ov = src && src->overlay;
    int rc = 0;

    chunk_dir_path(s, f->id, path, sizeof(path));
    if (mkdir(path, 0755) == 0) {
        snprintf(path, sizeof(path), "%s/chunks", s->dir);
        rc = chunk_fsync_path(path);
    } else if (errno != EEXIST) {
        return -errno;
    }
    if (rc == 0 && ov) {
        rc = chunk_ov_base_link(s, src, f->id);
        f->overlay = true;
        f->base_len = src->base_len;
    }
    if (rc == 0)
        rc = chunk_open_new_pair(s, f->id, ov ? ".ov" : "", true, &f->dfd,
                                 &f->cfd);
    if (rc == 0 && src && src->dfd >= 0) {
        enum chunk_copy_mode mode = ov ? CHUNK_COPY_ANY : CHUNK_COPY_REFLINK;
        rc = chunk_copy_file(s, src->dfd, f->dfd, mode);
        if (rc == 0)
            rc = chunk_copy_file(s, src->cfd, f->cfd, mode);
    }
    if (rc == 0 && ov && src->pres)
        rc = chunk_ov_pres_copy(s, f, src->pres);
    if (rc == 0 && ov)
        rc = chunk_ov_base_open(s, f);
    if (rc == 0)
        rc = chunk_hdr_write(f, ver, src ? src->length : 0, 0);
    if (rc == 0)
        rc = chunk_flush_early(f->cfd);
    if (rc == 0)
        rc = chunk_flush_early(f->dfd);
    /* A new chunk, or a copy for copy-on-write, starts with nothing
     * written since.  Without its map (an error; a crash after its
     * commit) the history is unknown, which readers take as everything. */
    chunk_path(s, f->id, ".wmap", path, sizeof(path));
    if (rc == 0 && s->stage && chunk_wmap_create(&f->wmap, path) < 0)
        log_warn("chunk create: written-block map not created: "
                 "chunk=%016llx",
                 (unsigned long long)f->id);
    if (rc == 0 && (fdatasync(f->cfd) < 0 ||
                    (src && src->dfd >= 0 && fdatasync(f->dfd) < 0)))
        rc = -errno;
    if (rc < 0)
        chunk_files_abort(s, f);
    return rc;
}

/* The second half: make the folder's entries durable (one sync), after
 * which the chunk exists whatever happens to the host.  On failure
 * nothing of @f is left. */
int chunk_files_commit(struct chunk_store *s, struct chunk_file *f,
                       uint64_t ver, uint64_t length)
{
    char dir[4096];
    int rc;

    chunk_dir_path(s, f->id, dir, sizeof(dir));
    rc = chunk_fsync_path(dir);
    if (rc < 0) {
        chunk_files_abort(s, f);
        return rc;
    }
    f->exists = true;
    f->version = ver;
    f->length = length;
    f->dirty = false; /* invariant 10: its files were synced */
    f->alloc = 0;
    chunk_alloc_update(s, f);
    __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
    return rc;
}

/* Create chunk @f at @ver from @src (see chunk_files_prepare()).  A crash
 * part-way leaves no chunk (and files that the next open sweeps). */
static int files_create(struct chunk_store *s, struct chunk_file *f,
                        uint64_t ver, const struct chunk_copy_src *src)
{
    int rc = chunk_files_prepare(s, f, ver, src);

    return rc < 0 ? rc : chunk_files_commit(s, f, ver, src ? src->length : 0);
}

static int chunk_create(struct chunk_store *s, struct chunk_file *f,
                        uint64_t ver)
{
    int rc = files_create(s, f, ver, NULL);

    log_debug(DBG, "chunk create: chunk=%016llx version=%llu rc=%d",
              (unsigned long long)f->id, (unsigned long long)ver, rc);
    return rc;
}

int chunk_store_setversion(struct chunk_store *s, uint64_t id, uint64_t old_ver,
                           uint64_t new_ver)
{
    struct chunk_file *f;
    int rc;

    if (new_ver == 0)
        return -EINVAL;
    rc = file_get(s, id, &f);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&f->rw);
    if (f->exists && f->version == new_ver)
        rc = 0; /* a retry of a change already made */
    else if (old_ver == 0)
        rc = f->exists ? -EEXIST : chunk_create(s, f, new_ver);
    else if (!f->exists)
        rc = -ENOENT;
    else if (f->version != old_ver)
        rc = -ESTALE;
    else {
        rc = chunk_hdr_write(f, new_ver, f->length, 0);
        if (rc == 0 && fdatasync(f->cfd) < 0)
            rc = -errno;
        if (rc == 0)
            f->version = new_ver;
        log_debug(DBG, "chunk setversion: chunk=%016llx %llu -> %llu rc=%d",
                  (unsigned long long)id, (unsigned long long)old_ver,
                  (unsigned long long)new_ver, rc);
    }
    file_unlock(s, f);
    return rc;
}

int chunk_store_delete(struct chunk_store *s, uint64_t id, uint64_t ver)
{
    struct chunk_file *f;
    char path[4096];
    int rc;

    rc = file_get(s, id, &f);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&f->rw);
    if (!f->exists)
        rc = -ENOENT; /* docs/protocol.md §7.6: metad treats it as done */
    else if (ver != 0 && f->version > ver)
        rc = -ESTALE;
    else {
        /* Invariant 9: a flat chunk's files that overlays link stay. */
        uint64_t kept = chunk_ov_shared_bytes(f);
        /* The .crc file goes first: it is what makes a chunk exist. */
        chunk_path(s, id, ".crc", path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT)
            rc = -errno;
        if (rc == 0) {
            chunk_path(s, id, "", path, sizeof(path));
            unlink(path);
            chunk_path(s, id, ".wmap", path, sizeof(path));
            unlink(path);
            /* Invariant 9: an overlay's base goes with its last link.  A
             * flat chunk has no overlay files (the links of it that
             * overlays hold are under their ids; leftovers of a conversion
             * a crash stopped went at open, store_sweep()), so its delete
             * spends no stat and unlink on them. */
            if (f->overlay)
                chunk_ov_unlink(s, id);
            file_shut(f);
            chunk_alloc_update(s, f);
            __atomic_add_fetch(&s->alloc, kept, __ATOMIC_RELAXED);
            __atomic_sub_fetch(&s->count, 1, __ATOMIC_RELAXED);
            bad_clear(s, id);
            /* docs/protocol.md §7.6: the deletion is durable before the
             * reply, so a crash cannot bring the chunk back after metad
             * forgot it. */
            chunk_dir_path(s, id, path, sizeof(path));
            rc = chunk_fsync_path(path);
            log_debug(DBG, "chunk delete: chunk=%016llx rc=%d",
                      (unsigned long long)id, rc);
        }
    }
    file_unlock(s, f);
    return rc;
}

int chunk_store_stat(struct chunk_store *s, uint64_t id, struct chunk_info *ci)
{
    struct chunk_file *f;
    int rc = file_get(s, id, &f);

    if (rc < 0)
        return rc;
    pthread_rwlock_rdlock(&f->rw);
    if (!f->exists) {
        rc = -ENOENT;
    } else {
        ci->id = id;
        ci->version = f->version;
        ci->length = f->length;
        ci->alloc = f->alloc;
    }
    file_unlock(s, f);
    return rc;
}

/* ---- Staged copies ----------------------------------------------------- */

int chunk_store_stage_begin(struct chunk_store *s, uint64_t id, uint64_t ver)
{
    int rc;

    if (!s->stage)
        return -EINVAL;
    /* A leftover of an earlier, interrupted copy is never reused. */
    rc = chunk_store_delete(s->stage, id, 0);
    if (rc == 0 || rc == -ENOENT)
        rc = chunk_store_setversion(s->stage, id, 0, ver);
    return rc;
}

int chunk_store_stage_write(struct chunk_store *s, uint64_t id, uint64_t ver,
                            uint32_t off, const void *buf, uint32_t len)
{
    if (!s->stage)
        return -EINVAL;
    return chunk_store_write(s->stage, id, ver, off, buf, len, false);
}

void chunk_store_stage_abort(struct chunk_store *s, uint64_t id)
{
    if (s->stage)
        chunk_store_delete(s->stage, id, 0);
}

/* Rename chunk @id's file with @from_suffix in store @a to @to_suffix in
 * store @b (the stage or the main store). */
static int install_rename(struct chunk_store *a, struct chunk_store *b,
                          uint64_t id, const char *from_suffix,
                          const char *to_suffix)
{
    char from[4096], to[4096];

    chunk_path(a, id, from_suffix, from, sizeof(from));
    chunk_path(b, id, to_suffix, to, sizeof(to));
    return rename(from, to) < 0 ? -errno : 0;
}

/* Undo an install of a copy of @id that did not switch: its data first,
 * then the ID.crc.copy that marks it as not switched, as sweep_dir()
 * does.  What cannot be removed is left to the next open. */
static void install_undo(struct chunk_store *s, uint64_t id)
{
    char path[4096];

    chunk_path(s, id, ".copy", path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        return;
    chunk_path(s, id, ".crc.copy", path, sizeof(path));
    unlink(path);
}

/* Install the files of the staged copy @sf as chunk @f of @s, both locked
 * exclusive (the order is in the comment at the top of this file): the
 * copy's files come in beside the chunk as ID.crc.copy, then ID.copy; the
 * rename of ID.crc.copy over ID.crc is the switch; ID.copy then takes the
 * data name.  Until the switch the old chunk is untouched (but for its
 * written-block map): a failure removes the copy's files and keeps it. */
static int stage_move(struct chunk_store *s, struct chunk_file *sf,
                      struct chunk_file *f)
{
    char to[4096], dir[4096];
    int rc = 0;

    chunk_dir_path(s, f->id, dir, sizeof(dir));
    if (mkdir(dir, 0755) == 0) {
        snprintf(to, sizeof(to), "%s/chunks", s->dir);
        rc = chunk_fsync_path(to);
    } else if (errno != EEXIST) {
        return -errno;
    }
    /* Step 1: the new .crc, durable before any data comes in, so that an
     * ID.copy without an ID.crc.copy means a switch was made. */
    if (rc == 0)
        rc = install_rename(s->stage, s, f->id, ".crc", ".crc.copy");
    if (rc == 0)
        rc = chunk_fsync_path(dir);
    /* Step 2: the new data; both files have left the stage. */
    if (rc == 0 &&
        (rc = install_rename(s->stage, s, f->id, "", ".copy")) == 0) {
        file_shut(sf);
        chunk_alloc_update(s->stage, sf);
        __atomic_sub_fetch(&s->stage->count, 1, __ATOMIC_RELAXED);
        /* The copy's past writes were never seen here: its map is
         * unknown.  The old chunk loses its map with it, which leaves
         * its own history unknown: sound too (chunk_wmap.c). */
        chunk_path(s, f->id, ".wmap", to, sizeof(to));
        if (unlink(to) < 0 && errno != ENOENT)
            rc = -errno;
        else
            chunk_wmap_close(&f->wmap);
    }
    if (rc == 0)
        rc = chunk_fsync_path(dir);
    /* Step 3: the switch. */
    if (rc == 0)
        rc = install_rename(s, s, f->id, ".crc.copy", ".crc");
    if (rc < 0) {
        install_undo(s, f->id);
        return rc;
    }
    if (f->exists) {
        uint64_t kept = chunk_ov_shared_bytes(f); /* as in delete */
        file_shut(f);
        chunk_alloc_update(s, f);
        __atomic_add_fetch(&s->alloc, kept, __ATOMIC_RELAXED);
        __atomic_sub_fetch(&s->count, 1, __ATOMIC_RELAXED);
    }
    /* Step 4: the switch durable before the data takes its name (a data
     * name that a crash kept without the switch would mix), then the
     * data. */
    rc = chunk_fsync_path(dir);
    if (rc == 0)
        rc = install_rename(s, s, f->id, ".copy", "");
    if (rc < 0) {
        /* The old chunk was replaced at the switch and the new one cannot
         * be finished: no chunk rather than the new checksums over the old
         * data.  The next open removes the rest. */
        log_error("chunk stage commit: copy switched in but its data not "
                  "named, chunk dropped: %s chunk=%016llx",
                  strerror(-rc), (unsigned long long)f->id);
        chunk_path(s, f->id, ".crc", to, sizeof(to));
        unlink(to);
        return rc;
    }
    /* The copy is flat: the files of an overlay it replaced go. */
    chunk_ov_unlink(s, f->id);
    rc = chunk_fsync_path(dir);
    if (rc < 0)
        return rc;
    rc = file_load(s, f);
    if (rc == 0 && !f->exists)
        rc = -EIO;
    if (rc == 0) {
        /* file_load() took the files' space as counted; it is new here. */
        __atomic_add_fetch(&s->alloc, f->alloc, __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
        if (s->usage)
            chunk_usage_put(s->usage, f->id, f->alloc, false);
    }
    return rc;
}

int chunk_store_stage_commit(struct chunk_store *s, uint64_t id, uint64_t ver)
{
    struct chunk_file *sf, *f;
    int rc;

    if (!s->stage)
        return -EINVAL;
    rc = file_lock(s->stage, id, ver, true, &sf);
    if (rc < 0)
        return rc;
    if (fdatasync(sf->dfd) < 0 || fdatasync(sf->cfd) < 0) {
        rc = -errno;
        goto out_stage;
    }
    rc = file_get(s, id, &f);
    if (rc < 0)
        goto out_stage;
    pthread_rwlock_wrlock(&f->rw);
    if (f->exists && f->version > ver)
        rc = -ESTALE; /* this server moved on meanwhile: keep its chunk */
    else
        rc = stage_move(s, sf, f);
    if (rc == 0)
        bad_clear(s, id);
    log_debug(DBG, "chunk stage commit: chunk=%016llx version=%llu rc=%d",
              (unsigned long long)id, (unsigned long long)ver, rc);
    file_unlock(s, f);
out_stage:
    file_unlock(s->stage, sf);
    if (rc < 0)
        chunk_store_stage_abort(s, id);
    return rc;
}

/* ---- Local copies ------------------------------------------------------ */

void chunk_store_set_reflink(struct chunk_store *s, bool on)
{
    s->no_reflink = !on;
}

/* Copy bytes [off, end) of @in to the same place in @out. */
static int copy_range(int in, int out, off_t off, off_t end)
{
    static const size_t step = 1u << 20;
    bool kernel = true;
    uint8_t *buf = NULL;
    int rc = 0;

    while (off < end) {
        size_t n = (size_t)(end - off) < step ? (size_t)(end - off) : step;
        ssize_t r = -1;

        if (kernel) {
            loff_t a = off, b = off;
            r = copy_file_range(in, &a, out, &b, n, 0);
            if (r < 0 && (errno == EXDEV || errno == EINVAL ||
                          errno == ENOSYS || errno == EOPNOTSUPP)) {
                kernel = false;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = -errno;
                break;
            }
            if (r == 0) /* the source ended early: the rest is a hole */
                break;
        } else {
            if (!buf && !(buf = malloc(step))) {
                rc = -ENOMEM;
                break;
            }
            r = pread(in, buf, n, off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = -errno;
                break;
            }
            if (r == 0)
                break;
            if ((rc = chunk_pwrite_full(out, buf, (size_t)r, off, 0)) < 0)
                break;
        }
        off += r;
    }
    free(buf);
    return rc;
}

/* Make @out a copy of @in: a reflink when allowed and possible, else
 * (CHUNK_COPY_ANY) the data segments one by one, holes left as holes, and the
 * same size. */
int chunk_copy_file(struct chunk_store *s, int in, int out,
                    enum chunk_copy_mode mode)
{
    struct stat st;
    off_t off = 0;
    int rc = 0;

    if (!s->no_reflink &&
        !__atomic_load_n(&s->reflink_failed, __ATOMIC_RELAXED)) {
        if (ioctl(out, FICLONE, in) == 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != ENOTTY && errno != EXDEV &&
            errno != EINVAL && errno != ENOSYS && errno != EPERM)
            return -errno;
        __atomic_store_n(&s->reflink_failed, true, __ATOMIC_RELAXED);
    }
    if (mode == CHUNK_COPY_REFLINK)
        return -EOPNOTSUPP;
    if (fstat(in, &st) < 0)
        return -errno;
    while (rc == 0 && off < st.st_size) {
        off_t data = lseek(in, off, SEEK_DATA), hole;

        if (data < 0) {
            if (errno == ENXIO) /* only a hole is left */
                break;
            if (errno != EINVAL)
                return -errno;
            data = off; /* no SEEK_DATA here: copy everything */
            hole = st.st_size;
        } else {
            hole = lseek(in, data, SEEK_HOLE);
            if (hole < 0)
                hole = st.st_size;
        }
        rc = copy_range(in, out, data, hole);
        off = hole;
    }
    if (rc == 0 && ftruncate(out, st.st_size) < 0)
        rc = -errno;
    return rc;
}

/* Create chunk @df at @ver as a copy of @sf (both locked exclusive): a
 * reflink of a flat chunk where the file system has them, else an
 * overlay copy (chunk_ov_clone()). */
static int clone_files(struct chunk_store *s, struct chunk_file *sf,
                       struct chunk_file *df, uint64_t ver)
{
    struct chunk_copy_src flat = {sf->id,  false,      false,      sf->dfd,
                                  sf->cfd, sf->length, sf->length, NULL};
    int rc = -EOPNOTSUPP;

    if (!sf->overlay && !s->no_reflink &&
        !__atomic_load_n(&s->reflink_failed, __ATOMIC_RELAXED))
        rc = files_create(s, df, ver, &flat);
    if (rc == -EOPNOTSUPP)
        rc = chunk_ov_clone(s, sf, df, ver);
    log_debug(DBG,
              "chunk clone: chunk=%016llx version=%llu -> %016llx "
              "overlay=%d rc=%d",
              (unsigned long long)sf->id, (unsigned long long)sf->version,
              (unsigned long long)df->id, df->overlay, rc);
    return rc;
}

int chunk_store_clone(struct chunk_store *s, uint64_t src_id, uint64_t src_ver,
                      uint64_t new_id, uint64_t new_ver)
{
    struct chunk_file *sf, *df;
    int rc;

    if (new_ver == 0 || src_id == new_id)
        return -EINVAL;
    /* Exclusive: the source may become an overlay (chunk_ov_clone()). */
    rc = file_lock(s, src_id, src_ver, true, &sf);
    if (rc < 0)
        return rc;
    rc = file_get(s, new_id, &df);
    if (rc < 0) {
        file_unlock(s, sf);
        return rc;
    }
    /* A new id is never in use by anything else, so holding both locks
     * cannot deadlock. */
    pthread_rwlock_wrlock(&df->rw);
    if (df->exists)
        rc = df->version == new_ver ? 0 : -EEXIST; /* a retry */
    else
        rc = clone_files(s, sf, df, new_ver);
    file_unlock(s, df);
    file_unlock(s, sf);
    return rc;
}

/* ---- Data -------------------------------------------------------------- */

/* Read under @f's shared lock; @rwf as for chunk_pread_full(). */
static int read_locked(struct chunk_store *s, struct chunk_file *f,
                       uint32_t off, uint32_t len, void *buf, int rwf)
{
    uint64_t end;
    uint32_t b0, nb;
    uint8_t *tmp;
    int rc = 0;

    end = (uint64_t)off + len;
    if (end > f->length)
        end = f->length; /* invariant 1: the rest is zeros */
    if (off >= end) {
        memset(buf, 0, len);
        return 0;
    }
    memset((uint8_t *)buf + (end - off), 0, (size_t)(off + len - end));
    b0 = off / CHUNK_BLOCK_SIZE;
    nb = (uint32_t)((end + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE) - b0;
    if (off % CHUNK_BLOCK_SIZE == 0 && end % CHUNK_BLOCK_SIZE == 0) {
        /* Whole blocks: straight into the caller's buffer. */
        return chunk_blocks_load(s, f, b0, nb, buf, rwf);
    }
    tmp = malloc((size_t)nb * CHUNK_BLOCK_SIZE);
    if (!tmp)
        return -ENOMEM;
    rc = chunk_blocks_load(s, f, b0, nb, tmp, rwf);
    if (rc == 0)
        memcpy(buf, tmp + (off - (size_t)b0 * CHUNK_BLOCK_SIZE),
               (size_t)(end - off));
    free(tmp);
    return rc;
}

int chunk_store_read(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint32_t off, uint32_t len, void *buf)
{
    struct chunk_file *f;
    int rc;

    rc = range_check(off, len);
    if (rc == 0)
        rc = file_lock(s, id, ver, false, &f);
    if (rc < 0)
        return rc;
    rc = read_locked(s, f, off, len, buf, 0);
    file_unlock(s, f);
    return rc;
}

int chunk_store_read_nowait(struct chunk_store *s, uint64_t id, uint64_t ver,
                            uint32_t off, uint32_t len, void *buf)
{
    struct chunk_file *f;
    int rc;

    rc = range_check(off, len);
    if (rc < 0)
        return rc;
    if (__atomic_load_n(&s->no_nowait_read, __ATOMIC_RELAXED))
        return -EAGAIN;
    rc = file_lock_nowait(s, id, ver, false, &f);
    if (rc < 0)
        return rc;
    /* Reads change nothing, so giving up half-way is free. */
    rc = read_locked(s, f, off, len, buf, RWF_NOWAIT);
    file_unlock(s, f);
    return nowait_result(&s->no_nowait_read, rc);
}

/* Fill @blk with block @b as it will be after a write of @buf at @off:
 * its current contents (verified) overlaid with the written bytes. */
static int block_merge(struct chunk_store *s, struct chunk_file *f, uint32_t b,
                       uint32_t off, const uint8_t *buf, uint32_t len,
                       uint8_t *blk)
{
    uint64_t bstart = (uint64_t)b * CHUNK_BLOCK_SIZE;
    uint64_t lo = off > bstart ? off : bstart;
    uint64_t hi = (uint64_t)off + len;
    int rc;

    if (hi > bstart + CHUNK_BLOCK_SIZE)
        hi = bstart + CHUNK_BLOCK_SIZE;
    if (bstart >= f->length) {
        memset(blk, 0, CHUNK_BLOCK_SIZE); /* invariant 1 */
    } else {
        rc = chunk_blocks_load(s, f, b, 1, blk, 0);
        if (rc < 0)
            return rc;
    }
    memcpy(blk + (lo - bstart), buf + (lo - off), (size_t)(hi - lo));
    return 0;
}

/* Whether any of the @nb checksums in @crc is 0. */
static bool crcs_any_zero(const uint8_t *crc, uint32_t nb)
{
    for (uint32_t i = 0; i < nb; i++)
        if (get_le32(crc + 4 * i) == 0)
            return true;
    return false;
}

/* Make @f's data, checksums and written-block map durable. */
static int sync_files(struct chunk_file *f)
{
    if (fdatasync(f->dfd) < 0 || fdatasync(f->cfd) < 0)
        return -errno;
    f->dirty = false; /* invariant 10 */
    return chunk_wmap_sync(&f->wmap);
}

/* Write under @f's exclusive lock.  @rwf as for chunk_pwrite_full(); with
 * RWF_NOWAIT the caller (chunk_store_write_nowait()) has made sure that
 * the write is whole blocks, so that no block is read, and that their
 * space is known to be reserved, so that nothing is fallocated. */
static int write_locked(struct chunk_store *s, struct chunk_file *f,
                        uint32_t off, const uint8_t *buf, uint32_t len,
                        bool sync, int rwf)
{
    uint64_t end = (uint64_t)off + len;
    uint32_t b0 = off / CHUNK_BLOCK_SIZE;
    uint32_t b1 = (uint32_t)((end + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE);
    uint32_t nb = b1 - b0;
    bool head = off % CHUNK_BLOCK_SIZE || (nb == 1 && end % CHUNK_BLOCK_SIZE);
    bool tail = nb > 1 && end % CHUNK_BLOCK_SIZE;
    uint8_t hblk[CHUNK_BLOCK_SIZE], tblk[CHUNK_BLOCK_SIZE];
    uint8_t stack[4 * STACK_BLOCKS];
    uint8_t *crc = nb <= STACK_BLOCKS ? stack : malloc((size_t)nb * 4);
    struct iovec iov[3];
    int niov = 0, rc;
    /* Invariant 11: blocks not in an overlay's layer need no reservation;
     * their space is taken by the write itself. */
    bool fresh = !resv_known(f, b0, nb) && absent_known(f, b0, nb);

    if (!crc)
        return -ENOMEM;
    assert(!rwf ||
           (!head && !tail && !sync && (fresh || resv_known(f, b0, nb))));
    assert(f->overlay || !f->base_shared); /* invariant 9 */
    rc = fresh ? 0 : chunk_reserve_blocks(f, b0, nb);
    if (rc < 0)
        goto out;
    if (head)
        rc = block_merge(s, f, b0, off, buf, len, hblk);
    if (rc == 0 && tail)
        rc = block_merge(s, f, b1 - 1, off, buf, len, tblk);
    if (rc < 0)
        goto out;

    /* Whole blocks go out in one pwritev: merged head, the caller's
     * aligned middle, merged tail. */
    uint32_t mid0 = b0 + (head ? 1 : 0), mid1 = b1 - (tail ? 1 : 0);
    if (head)
        iov[niov++] = (struct iovec){hblk, CHUNK_BLOCK_SIZE};
    if (mid1 > mid0)
        iov[niov++] = (struct iovec){
            (void *)(buf + ((size_t)mid0 * CHUNK_BLOCK_SIZE - off)),
            (size_t)(mid1 - mid0) * CHUNK_BLOCK_SIZE};
    if (tail)
        iov[niov++] = (struct iovec){tblk, CHUNK_BLOCK_SIZE};
    for (uint32_t b = b0; b < b1; b++) {
        const uint8_t *p;
        if (b == b0 && head)
            p = hblk;
        else if (b == b1 - 1 && tail)
            p = tblk;
        else
            p = buf + ((size_t)b * CHUNK_BLOCK_SIZE - off);
        put_le32(crc + 4 * (b - b0), crc32c(0, p, CHUNK_BLOCK_SIZE));
    }
    /* A block of an overlay whose checksum is 0 needs a sync (invariant
     * 8): not on the loop thread. */
    if (rwf && f->overlay && crcs_any_zero(crc, nb)) {
        rc = -EAGAIN;
        goto out;
    }

    /* The written-block map before the data, so that no block written
     * is missing from it (chunk_wmap.c). */
    rc = chunk_wmap_mark(&f->wmap, b0, nb, rwf);
    if (rc < 0)
        goto out;
    /* Length first, so invariant 1 holds whatever happens next.  The
     * header is cached in the handle: growing it is this one write. */
    if (end > f->length) {
        rc = chunk_hdr_write(f, f->version, end, rwf);
        if (rc < 0)
            goto out;
        f->length = end;
    }
    f->dirty = true; /* invariant 10 */
    rc = data_write(s, f->dfd, iov, niov, (off_t)b0 * CHUNK_BLOCK_SIZE, rwf);
    if (rc == 0)
        absent_clear(f, b0, nb); /* before their checksums, invariant 11 */
    if (rc == 0)
        rc = chunk_crcs_store(f, b0, crc, nb, rwf);
    if (rc == 0 && fresh)
        resv_mark(f, b0, nb); /* invariant 11: the space is theirs now */
    if (rc == 0 && f->overlay)
        rc = chunk_ov_mark_zero_crcs(s, f, b0, nb, crc);
    if (rc == 0 && sync)
        rc = sync_files(f);
out:
    /* A nowait write fills space already reserved, or new blocks of an
     * overlay's layer (invariant 11): only the first kind allocates
     * nothing. */
    if (!rwf || fresh)
        chunk_alloc_update(s, f);
    if (crc != stack)
        free(crc);
    return rc;
}

int chunk_store_write(struct chunk_store *s, uint64_t id, uint64_t ver,
                      uint32_t off, const void *buf, uint32_t len, bool sync)
{
    struct chunk_file *f;
    int rc;

    rc = range_check(off, len);
    if (rc == 0)
        rc = file_lock(s, id, ver, true, &f);
    if (rc < 0)
        return rc;
    if (len > 0)
        rc = chunk_ov_unshare(s, f); /* invariant 9 */
    if (len > 0 && rc == 0)
        rc = write_locked(s, f, off, buf, len, sync, 0);
    else if (len == 0 && sync)
        rc = sync_files(f);
    file_unlock(s, f);
    return rc;
}

int chunk_store_write_nowait(struct chunk_store *s, uint64_t id, uint64_t ver,
                             uint32_t off, const void *buf, uint32_t len)
{
    uint32_t b0 = off / CHUNK_BLOCK_SIZE, nb = len / CHUNK_BLOCK_SIZE;
    struct chunk_file *f;
    int rc;

    rc = range_check(off, len);
    if (rc < 0)
        return rc;
    /* Whole blocks only: a partial block would be read and merged, and a
     * redo after a torn attempt would then verify a block whose new data
     * is on disk without its checksum.  Rewriting whole blocks needs no
     * read, so the redo puts data and checksums right whatever the
     * attempt left. */
    int rwf = RWF_NOWAIT;
    if (__atomic_load_n(&s->no_nowait_write, __ATOMIC_RELAXED))
        rwf = 0; /* the file system has none: a plain write, if allowed */
    if (len == 0 || off % CHUNK_BLOCK_SIZE || len % CHUNK_BLOCK_SIZE ||
        s->inline_writes == CHUNK_INLINE_OFF ||
        (!rwf &&
         (s->inline_writes != CHUNK_INLINE_BUFFERED || len > CHUNK_INLINE_MAX)))
        return -EAGAIN;
    rc = file_lock_nowait(s, id, ver, true, &f);
    if (rc < 0)
        return rc;
    if ((!resv_known(f, b0, nb) && !absent_known(f, b0, nb)) || f->base_shared)
        rc = -EAGAIN; /* fallocate() or chunk_ov_unshare() may block */
    else
        rc = write_locked(s, f, off, buf, len, false, rwf);
    file_unlock(s, f);
    return nowait_result(&s->no_nowait_write, rc);
}

void chunk_store_set_inline_writes(struct chunk_store *s,
                                   enum chunk_inline_writes mode)
{
    s->inline_writes = mode;
}

void chunk_store_set_fault_read_eio(struct chunk_store *s, uint64_t id)
{
    s->fault_read_eio = id;
}

void chunk_store_set_link_max(struct chunk_store *s, uint32_t max)
{
    s->link_max = max;
}

int chunk_store_sync(struct chunk_store *s, uint64_t id, uint64_t ver)
{
    return chunk_store_write(s, id, ver, 0, NULL, 0, true);
}

int chunk_store_truncate(struct chunk_store *s, uint64_t id, uint64_t ver,
                         uint32_t length)
{
    struct chunk_file *f;
    uint32_t bl = length / CHUNK_BLOCK_SIZE;
    uint32_t keep = (length + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE;
    uint8_t *blk = NULL;
    uint8_t crc[4];
    int rc;

    if (length > PROTO_CHUNK_SIZE)
        return -EINVAL;
    rc = file_lock(s, id, ver, true, &f);
    if (rc < 0)
        return rc;
    if (length >= f->length) {
        /* Growing: the new range is already zeros (invariant 1; for an
         * overlay also invariant 7). */
        rc = chunk_hdr_write(f, f->version, length, 0);
        goto done;
    }
    rc = chunk_ov_unshare(s, f); /* invariant 9: the base's tail stays */
    if (rc < 0)
        goto out;
    /* The blocks that become zeros are written, for the map. */
    uint32_t old_nb =
        (uint32_t)((f->length + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE);
    rc = chunk_wmap_mark(&f->wmap, bl, old_nb - bl, 0);
    if (rc < 0)
        goto out;
    if (f->overlay) {
        rc = chunk_ov_truncate_shrink(s, f, length);
        goto done;
    }
    if (length % CHUNK_BLOCK_SIZE) {
        /* The boundary block keeps its head; verify it before giving the
         * block a new checksum. */
        blk = malloc(CHUNK_BLOCK_SIZE);
        if (!blk) {
            rc = -ENOMEM;
            goto out;
        }
        rc = chunk_blocks_load(s, f, bl, 1, blk, 0);
        if (rc < 0)
            goto out;
        memset(blk + length % CHUNK_BLOCK_SIZE, 0,
               CHUNK_BLOCK_SIZE - length % CHUNK_BLOCK_SIZE);
        put_le32(crc, crc32c(0, blk, CHUNK_BLOCK_SIZE));
    }
    /* Data first: a crash before the checksum is fixed leaves the boundary
     * block failing its checksum, which is detected. */
    chunk_resv_clear_from(f, bl); /* invariant 5: the space past it goes */
    if (ftruncate(f->dfd, length) < 0) {
        rc = -errno;
        goto out;
    }
    if (length % CHUNK_BLOCK_SIZE)
        rc = chunk_crcs_store(f, bl, crc, 1, 0);
    if (rc == 0 && ftruncate(f->cfd, HDR_SIZE + (off_t)keep * 4) < 0)
        rc = -errno;
    if (rc == 0)
        rc = chunk_hdr_write(f, f->version, length, 0);
done:
    if (rc == 0) {
        f->length = length;
        rc = sync_files(f);
    }
out:
    chunk_alloc_update(s, f);
    free(blk);
    file_unlock(s, f);
    return rc;
}

/* ---- Written-block maps -------------------------------------------------- */

int chunk_store_wmap(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint8_t *out)
{
    struct chunk_file *f;
    int rc = file_lock(s, id, ver, false, &f);

    if (rc < 0)
        return rc;
    rc = chunk_wmap_get(&f->wmap, out);
    file_unlock(s, f);
    return rc;
}

/* The checksums of @f's @nb blocks, and of its base's for an overlay, in
 * two buffers of PROTO_CRCS_BYTES that the caller frees. */
static int crcs_read(struct chunk_file *f, uint32_t nb, uint8_t **raw,
                     uint8_t **braw)
{
    *raw = malloc(PROTO_CRCS_BYTES);
    *braw = f->overlay ? malloc(PROTO_CRCS_BYTES) : NULL;
    if (!*raw || (f->overlay && !*braw))
        return -ENOMEM;
    int rc = chunk_pread_full(f->cfd, *raw, (size_t)nb * 4, HDR_SIZE, 0);
    if (rc == 0 && *braw)
        rc = chunk_pread_full(f->bcfd, *braw, (size_t)nb * 4, HDR_SIZE, 0);
    return rc;
}

/* Whether block @b of @f may read as anything but zeros, from the
 * checksums crcs_read() gave, and into *@crc its checksum when so.  A
 * stored 0 was never written and reads as zeros (invariant 2), and so do
 * the blocks past the length (invariant 1).  A block of an overlay is
 * judged by the layer it reads from (invariants 6 and 7): one present in
 * its own layer by that layer's checksum (0 included: its .pres bit),
 * any other below the base length by the base's checksum. */
static bool block_data(const struct chunk_file *f, uint32_t b, uint32_t nb,
                       const uint8_t *raw, const uint8_t *braw, uint32_t *crc)
{
    *crc = b < nb ? get_le32(raw + 4 * b) : 0;
    if (b < nb && f->overlay) {
        enum chunk_ov_src src = chunk_ov_src_of(f, b, *crc);
        if (src == CHUNK_OV_OWN)
            return true;
        *crc = src == CHUNK_OV_BASE ? get_le32(braw + 4 * b) : 0;
    }
    return *crc != 0;
}

/* What the checksums of chunk @id at @ver tell of its blocks, without
 * reading data: into @map (PROTO_WMAP_BYTES, unless NULL) a bit for
 * every block that may hold data; into @crcs (PROTO_CRCS_BYTES, unless
 * NULL) each block's CRC32C, big-endian, a zero block's for one that
 * reads as zeros (block_data()). */
static int blocks_facts(struct chunk_store *s, uint64_t id, uint64_t ver,
                        uint8_t *map, uint8_t *crcs)
{
    struct chunk_file *f;
    uint8_t *raw = NULL, *braw = NULL;
    uint32_t nb, crc;
    int rc = file_lock(s, id, ver, false, &f);

    if (rc < 0)
        return rc;
    if (map)
        memset(map, 0, PROTO_WMAP_BYTES);
    nb = (uint32_t)((f->length + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE);
    rc = crcs_read(f, nb, &raw, &braw);
    for (uint32_t b = 0; rc == 0 && b < CHUNK_BLOCKS; b++) {
        bool data = block_data(f, b, nb, raw, braw, &crc);
        if (map && data)
            map[b / 8] |= (uint8_t)(1u << (b % 8));
        if (crcs && !data)
            crc = s->zero_crc;
        for (int i = 0; crcs && i < 4; i++)
            crcs[4 * b + i] = (uint8_t)(crc >> (24 - 8 * i));
    }
    free(raw);
    free(braw);
    file_unlock(s, f);
    return rc;
}

int chunk_store_datamap(struct chunk_store *s, uint64_t id, uint64_t ver,
                        uint8_t *out)
{
    return blocks_facts(s, id, ver, out, NULL);
}

int chunk_store_crcs(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint8_t *out)
{
    return blocks_facts(s, id, ver, NULL, out);
}

/* ---- Inventory and space ----------------------------------------------- */

static bool parse_name(const char *name, uint64_t *id)
{
    char *end;

    if (strlen(name) != 16 + 4 || strcmp(name + 16, ".crc") != 0)
        return false;
    for (int i = 0; i < 16; i++)
        if (!strchr("0123456789abcdef", name[i]))
            return false;
    *id = strtoull(name, &end, 16);
    return end == name + 16;
}

/* The data file's name of checksum file @crc_name (as parse_name()
 * accepted it), into @out (17 bytes). */
static const char *data_name(const char *crc_name, char *out)
{
    memcpy(out, crc_name, 16);
    out[16] = '\0';
    return out;
}

/* The bytes file @st takes on disk divided by its names. */
static uint64_t share_of(const struct stat *st)
{
    return st->st_nlink ? (uint64_t)st->st_blocks * 512 / st->st_nlink : 0;
}

static int list_dir(struct chunk_store *s, const char *sub,
                    chunk_store_list_cb cb, void *arg)
{
    char path[4096];
    struct dirent *de;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/chunks/%s", s->dir, sub);
    d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while (rc == 0 && (de = readdir(d))) {
        struct chunk_info ci;
        struct chunk_hdr h;
        char name[17];
        struct stat st;
        int fd;

        if (!parse_name(de->d_name, &ci.id))
            continue;
        fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* deleted while we walk */
        if (hdr_read(fd, &h) < 0) {
            if (!hdr_empty(fd)) /* else one being made: invariant 12 */
                log_warn("chunk list: bad header, skipped: path=%s/%s", path,
                         de->d_name);
            close(fd);
            continue;
        }
        /* A flat chunk's files that overlays link as their base count
         * for their share, as chunk_ov_list_alloc() counts the rest. */
        ci.alloc = fstat(fd, &st) == 0 ? share_of(&st) : 0;
        if (h.overlay)
            ci.alloc += chunk_ov_list_alloc(dirfd(d), ci.id);
        else if (fstatat(dirfd(d), data_name(de->d_name, name), &st, 0) == 0)
            ci.alloc += share_of(&st);
        close(fd);
        ci.version = h.version;
        ci.length = h.length;
        rc = cb(&ci, arg);
    }
    closedir(d);
    return rc;
}

int chunk_store_list(struct chunk_store *s, chunk_store_list_cb cb, void *arg)
{
    char path[4096];
    struct dirent *de;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "%s/chunks", s->dir);
    d = opendir(path);
    if (!d)
        return -errno;
    while (rc == 0 && (de = readdir(d))) {
        if (strlen(de->d_name) != 2 ||
            !strchr("0123456789abcdef", de->d_name[0]) ||
            !strchr("0123456789abcdef", de->d_name[1]))
            continue;
        rc = list_dir(s, de->d_name, cb, arg);
    }
    closedir(d);
    return rc;
}

int chunk_store_space(struct chunk_store *s, uint64_t *capacity, uint64_t *free)
{
    struct statvfs sv;

    if (statvfs(s->dir, &sv) < 0)
        return -errno;
    *capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    *free = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

uint32_t chunk_store_count(struct chunk_store *s)
{
    return __atomic_load_n(&s->count, __ATOMIC_RELAXED);
}

struct chunk_usage *chunk_store_usage(struct chunk_store *s)
{
    return s->usage;
}

uint64_t chunk_store_allocated(struct chunk_store *s)
{
    return __atomic_load_n(&s->alloc, __ATOMIC_RELAXED);
}
