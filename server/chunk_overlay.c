/* chunk_overlay.c: copy-on-write without reflinks (docs/vmdisk.md,
 * "Copy-on-write, per block"): a chunk's files frozen as a base, shared
 * by hard links, and overlays that each write their own layer over it.
 * The chunk the base came from keeps its flat names on it until it is
 * changed in place; then it becomes an overlay over it too.
 *
 * Layout of an overlay (format 2 of the header, chunk_store.c):
 *
 *     ...01f3.crc    header with the base length, then its own checksums
 *     ...01f3.ov     its own layer: sparse, only the blocks it wrote
 *     ...01f3.bdata  hard link to the frozen base's data
 *     ...01f3.bcrc   hard link to the frozen base's checksum file
 *     ...01f3.pres   (rare) blocks of its layer whose checksum is 0
 *
 * This file knows what an overlay's files are and how they are read,
 * made (the copy, chunk_ov_clone(); the conversion of a flat source,
 * chunk_ov_unshare()),
 * shrunk and counted; invariants 6-9 in chunk_store_file.h.  Handles,
 * locks, versions, the write path and the sweep after a crash stay in
 * chunk_store.c, which calls in here where a chunk is an overlay.
 */
#include "chunk_store_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

/* The names an overlay has besides .crc and .wmap: its own data layer,
 * the links to its base's data and checksums, and the .pres bitmap. */
static const char *const ov_suffixes[] = {".ov", ".bdata", ".bcrc", ".pres"};
#define OV_NSUFFIXES (sizeof(ov_suffixes) / sizeof(ov_suffixes[0]))

bool chunk_ov_is_suffix(const char *suffix)
{
    for (size_t i = 0; i < OV_NSUFFIXES; i++)
        if (strcmp(suffix, ov_suffixes[i]) == 0)
            return true;
    return false;
}

void chunk_ov_unlink(struct chunk_store *s, uint64_t id)
{
    char path[4096];
    struct stat st;

    for (size_t i = 0; i < OV_NSUFFIXES; i++) {
        bool base = strcmp(ov_suffixes[i], ".bdata") == 0 ||
                    strcmp(ov_suffixes[i], ".bcrc") == 0;
        chunk_path(s, id, ov_suffixes[i], path, sizeof(path));
        /* Invariant 9: a base's space leaves with its last link. */
        bool last = base && stat(path, &st) == 0 && st.st_nlink == 1;
        if (unlink(path) == 0 && last)
            __atomic_sub_fetch(&s->alloc, (uint64_t)st.st_blocks * 512,
                               __ATOMIC_RELAXED);
    }
}

static bool pres_test(const struct chunk_file *f, uint32_t b)
{
    return f->pres && f->pres[b / 8] >> (b % 8) & 1;
}

/* Invariant 6: whether block @b of overlay @f, whose stored checksum in
 * the overlay's .crc is @stored, is in the overlay's own layer. */
static bool ov_present(const struct chunk_file *f, uint32_t b, uint32_t stored)
{
    return stored != 0 || pres_test(f, b);
}

/* Load @f's .pres bitmap, when it has one. */
static int pres_load(struct chunk_store *s, struct chunk_file *f)
{
    char path[4096];
    int fd, rc;

    chunk_path(s, f->id, ".pres", path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    f->pres = malloc(PRES_BYTES);
    rc = f->pres ? chunk_pread_full(fd, f->pres, PRES_BYTES, 0, 0) : -ENOMEM;
    close(fd);
    return rc;
}

/* Write @f's .pres bitmap and make it durable.  Its bits only ever go
 * from 0 to 1 while the file exists, and each is set only once its block
 * is durable (invariant 8), so an in-place write torn by a crash leaves a
 * bitmap that is still true. */
static int pres_store(struct chunk_store *s, struct chunk_file *f)
{
    char path[4096];
    int fd, rc;

    chunk_path(s, f->id, ".pres", path, sizeof(path));
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = chunk_pwrite_full(fd, f->pres, PRES_BYTES, 0, 0);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0) {
        chunk_dir_path(s, f->id, path, sizeof(path));
        rc = chunk_fsync_path(path);
    }
    return rc;
}

/* Open the base of overlay @f (read-only: a base never changes). */
int chunk_ov_base_open(struct chunk_store *s, struct chunk_file *f)
{
    char path[4096];

    chunk_path(s, f->id, ".bdata", path, sizeof(path));
    f->bdfd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->bdfd < 0)
        return -errno;
    chunk_path(s, f->id, ".bcrc", path, sizeof(path));
    f->bcfd = open(path, O_RDONLY | O_CLOEXEC);
    return f->bcfd < 0 ? -errno : 0;
}

int chunk_ov_load(struct chunk_store *s, struct chunk_file *f)
{
    int rc = chunk_ov_base_open(s, f);

    return rc < 0 ? rc : pres_load(s, f);
}

int chunk_ov_pres_copy(struct chunk_store *s, struct chunk_file *f,
                       const uint8_t *pres)
{
    f->pres = malloc(PRES_BYTES);
    if (!f->pres)
        return -ENOMEM;
    memcpy(f->pres, pres, PRES_BYTES);
    return pres_store(s, f);
}

/* Where block @b of overlay @f is read from (invariants 6 and 7). */
enum chunk_ov_src chunk_ov_src_of(const struct chunk_file *f, uint32_t b,
                                  uint32_t stored)
{
    if (ov_present(f, b, stored))
        return CHUNK_OV_OWN;
    return (uint64_t)b * CHUNK_BLOCK_SIZE < f->base_len ? CHUNK_OV_BASE
                                                        : CHUNK_OV_ZERO;
}

/* chunk_blocks_load() of an overlay: each run of blocks from where it lives,
 * verified against that layer's checksums. */
int chunk_ov_blocks_load(struct chunk_store *s, struct chunk_file *f,
                         uint32_t b0, uint32_t nb, uint8_t *buf, int rwf)
{
    uint8_t stack[4 * STACK_BLOCKS];
    uint8_t *raw;
    uint32_t i = 0;
    int rc = chunk_crcs_load(f->cfd, b0, nb, stack, &raw, rwf);

    while (rc == 0 && i < nb) {
        enum chunk_ov_src src =
            chunk_ov_src_of(f, b0 + i, get_le32(raw + 4 * i));
        uint32_t j = i + 1;
        while (j < nb &&
               chunk_ov_src_of(f, b0 + j, get_le32(raw + 4 * j)) == src)
            j++;
        uint8_t *p = buf + (size_t)i * CHUNK_BLOCK_SIZE;
        size_t n = (size_t)(j - i) * CHUNK_BLOCK_SIZE;
        off_t off = (off_t)(b0 + i) * CHUNK_BLOCK_SIZE;
        if (src == CHUNK_OV_OWN) {
            rc = chunk_pread_full(f->dfd, p, n, off, rwf);
            if (rc == 0)
                rc = chunk_crcs_check(s, f->id, "overlay", raw + 4 * i, b0 + i,
                                      j - i, p);
        } else if (src == CHUNK_OV_BASE) {
            rc = chunk_pread_full(f->bdfd, p, n, off, rwf);
            if (rc == 0)
                rc = chunk_blocks_verify(s, f->id, f->bcfd, "base", b0 + i,
                                         j - i, p, rwf);
        } else {
            memset(p, 0, n);
        }
        i = j;
    }
    if (raw != stack)
        free(raw);
    return rc;
}

/* Link @from (of chunk @id) as @to.  When @from has all the links its
 * file system allows (EMLINK: 65,000 on ext4, so a base shared by that
 * many copies), @to becomes a full copy of it instead, durable, and
 * counted in the store's bytes on disk: it costs the file's space once
 * more but loses nothing, and everything else goes on as with a link. */
static int link_or_copy(struct chunk_store *s, uint64_t id, const char *from,
                        const char *to)
{
    struct stat st;
    int in, out, rc;

    if (s->link_max && stat(from, &st) == 0 && st.st_nlink >= s->link_max)
        errno = EMLINK; /* chunk_store_set_link_max() */
    else if (link(from, to) == 0)
        return 0;
    if (errno != EMLINK)
        return -errno;
    in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    out = open(to, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    rc = out < 0 ? -errno : chunk_copy_file(s, in, out, CHUNK_COPY_ANY);
    if (rc == 0 && fdatasync(out) < 0)
        rc = -errno;
    if (rc == 0 && fstat(out, &st) == 0)
        __atomic_add_fetch(&s->alloc, (uint64_t)st.st_blocks * 512,
                           __ATOMIC_RELAXED);
    if (out >= 0)
        close(out);
    close(in);
    if (rc < 0 && out >= 0)
        unlink(to);
    log_warn("chunk clone: base file at its link limit, copied in full: "
             "chunk=%016llx file=%s rc=%d",
             (unsigned long long)id, to, rc);
    return rc;
}

int chunk_ov_base_link(struct chunk_store *s, const struct chunk_copy_src *src,
                       uint64_t to)
{
    static const char *const names[] = {".bdata", ".bcrc"};
    static const char *const flat[] = {"", ".crc"};
    char a[4096], b[4096];
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < 2; i++) {
        chunk_path(s, src->id, src->base_flat ? flat[i] : names[i], a,
                   sizeof(a));
        chunk_path(s, to, names[i], b, sizeof(b));
        if (unlink(b) < 0 && errno != ENOENT)
            return -errno;
        rc = link_or_copy(s, to, a, b);
    }
    return rc;
}

/* An overlay being made of a flat chunk (ov_prepare(), ov_switch()). */
struct ov_new {
    int dfd, cfd; /* its own layer and new checksum file, not yet in place */
};

/* Undo ov_prepare() of @f: close and remove the new files and links. */
static void ov_unprepare(struct chunk_store *s, struct chunk_file *f,
                         struct ov_new *n)
{
    char path[4096];

    if (n->dfd >= 0)
        close(n->dfd);
    if (n->cfd >= 0)
        close(n->cfd);
    n->dfd = n->cfd = -1;
    chunk_path(s, f->id, ".crc.tmp", path, sizeof(path));
    unlink(path);
    chunk_ov_unlink(s, f->id);
}

/* The first half of turning flat chunk @f (locked exclusive) into an
 * overlay: its data and checksum files, made durable as they are, are
 * linked as the base (.bdata, .bcrc), and an empty layer and a format-2
 * checksum file (as ID.crc.tmp) are written beside them.  The chunk is
 * still flat and whole.  On failure nothing of it is left. */
static int ov_prepare(struct chunk_store *s, struct chunk_file *f,
                      struct ov_new *n)
{
    char path[4096], link_to[4096];
    struct chunk_hdr h = {f->version, f->length, f->length, true};
    int rc = 0;

    n->dfd = n->cfd = -1;
    if (fdatasync(f->dfd) < 0 || fdatasync(f->cfd) < 0)
        return -errno;
    chunk_ov_unlink(s, f->id); /* leftovers of an interrupted conversion */
    chunk_path(s, f->id, "", path, sizeof(path));
    chunk_path(s, f->id, ".bdata", link_to, sizeof(link_to));
    rc = link_or_copy(s, f->id, path, link_to);
    chunk_path(s, f->id, ".crc", path, sizeof(path));
    chunk_path(s, f->id, ".bcrc", link_to, sizeof(link_to));
    if (rc == 0)
        rc = link_or_copy(s, f->id, path, link_to);
    if (rc == 0)
        rc = chunk_open_new_pair(s, f->id, ".ov", false, &n->dfd, &n->cfd);
    if (rc == 0)
        rc = chunk_hdr_put(n->cfd, &h, 0);
    if (rc < 0)
        ov_unprepare(s, f, n);
    return rc;
}

/* The second half: make the new checksum file and names durable, then
 * rename the new .crc over the old one, which is the switch: from here on
 * @f is an overlay over its old files.  It is durable before returning,
 * so that nothing the caller changes next can reach the base.  The flat
 * name of the data goes last (a crash that leaves it: store_sweep()). */
static int ov_switch(struct chunk_store *s, struct chunk_file *f,
                     struct ov_new *n)
{
    char crc[4096], tmp[4096], dir[4096];
    int rc = 0;

    chunk_dir_path(s, f->id, dir, sizeof(dir));
    chunk_path(s, f->id, ".crc", crc, sizeof(crc));
    chunk_path(s, f->id, ".crc.tmp", tmp, sizeof(tmp));
    if (fdatasync(n->cfd) < 0)
        rc = -errno;
    if (rc == 0)
        rc = chunk_fsync_path(dir); /* the new names before the switch */
    if (rc == 0 && rename(tmp, crc) < 0)
        rc = -errno;
    if (rc < 0) {
        ov_unprepare(s, f, n);
        return rc;
    }
    /* An overlay from here on, whatever happens next. */
    f->bdfd = f->dfd;
    f->bcfd = f->cfd;
    f->dfd = n->dfd;
    f->cfd = n->cfd;
    f->overlay = true;
    f->base_len = f->length;
    f->base_shared = false;
    f->dirty = false;
    free(f->resv); /* invariant 5: other files, other space */
    f->resv = NULL;
    chunk_absent_set_all(f); /* invariant 11: its layer is empty */
    /* Its old files stay counted in the store's sum as the base (until
     * chunk_ov_unlink() of their last link); its own are the new ones. */
    f->alloc = 0;
    chunk_alloc_update(s, f);
    chunk_path(s, f->id, "", tmp, sizeof(tmp));
    unlink(tmp); /* its inode lives on as .bdata */
    log_debug(DBG, "chunk overlay: chunk=%016llx version=%llu",
              (unsigned long long)f->id, (unsigned long long)f->version);
    return chunk_fsync_path(dir);
}

/* Whether another name links flat chunk @f's data or checksum file (one
 * that cannot be stat'ed counts as linked). */
static bool flat_linked(const struct chunk_file *f)
{
    int fds[2] = {f->dfd, f->cfd};
    struct stat st;

    for (int i = 0; i < 2; i++)
        if (fstat(fds[i], &st) < 0 || st.st_nlink > 1)
            return true;
    return false;
}

int chunk_ov_unshare(struct chunk_store *s, struct chunk_file *f)
{
    struct ov_new n;
    int rc;

    if (f->overlay || !f->base_shared)
        return 0;
    if (!flat_linked(f)) {
        f->base_shared = false; /* every overlay over it is gone */
        return 0;
    }
    rc = ov_prepare(s, f, &n);
    if (rc == 0)
        rc = ov_switch(s, f, &n);
    return rc;
}

uint64_t chunk_ov_shared_bytes(const struct chunk_file *f)
{
    int fds[2] = {f->dfd, f->cfd};
    uint64_t n = 0;
    struct stat st;

    for (int i = 0; f->base_shared && !f->overlay && i < 2; i++)
        if (fds[i] >= 0 && fstat(fds[i], &st) == 0 && st.st_nlink > 1)
            n += (uint64_t)st.st_blocks * 512;
    return n;
}

/* Create chunk @df at @ver as an overlay copy of @sf (both locked
 * exclusive; invariant 9).  A flat @sf is left as it is: its own two
 * files are the base, which @df links; @sf becomes an overlay over them
 * only if it is ever changed in place (chunk_ov_unshare(), not on the
 * copy's write path).  An overlay @sf gives its base and a copy of its
 * layer.  On a journaling file system this is one journal commit: @df's
 * new files, names and header (chunk_files_prepare()), then the folder's
 * sync, which finds nothing more to commit (chunk_files_commit()); one
 * sync more, first, when @sf has writes not synced yet, so that no copy
 * is ever made over blocks that a crash of the host could still take
 * back. */
int chunk_ov_clone(struct chunk_store *s, struct chunk_file *sf,
                   struct chunk_file *df, uint64_t ver)
{
    struct chunk_copy_src src = {sf->id,  true,       false,        sf->dfd,
                                 sf->cfd, sf->length, sf->base_len, sf->pres};
    int rc;

    if (!sf->overlay) {
        if (sf->dirty && (fdatasync(sf->dfd) < 0 || fdatasync(sf->cfd) < 0))
            return -errno;
        sf->dirty = false;
        sf->base_shared = true; /* before the first link exists */
        src.base_flat = true;
        src.dfd = src.cfd = -1; /* the copy's layer starts empty */
        src.base_len = sf->length;
        src.pres = NULL;
    }
    rc = chunk_files_prepare(s, df, ver, &src);
    if (rc == 0)
        rc = chunk_files_commit(s, df, ver, src.length);
    if (rc == 0 && src.base_flat)
        chunk_absent_set_all(df); /* invariant 11: its layer is empty */
    return rc;
}

/* Invariant 8: blocks [@b0, @b0 + @nb) of overlay @f were just written
 * with checksums @crc; those whose checksum is 0 are not present by it,
 * so they go into .pres, once their data and checksums are durable.
 * (crc32c of a block is 0 for one block in 2^32: this is rarely done.) */
int chunk_ov_mark_zero_crcs(struct chunk_store *s, struct chunk_file *f,
                            uint32_t b0, uint32_t nb, const uint8_t *crc)
{
    bool any = false;

    for (uint32_t i = 0; i < nb && !any; i++)
        any = get_le32(crc + 4 * i) == 0 && !pres_test(f, b0 + i);
    if (!any)
        return 0;
    if (fdatasync(f->dfd) < 0 || fdatasync(f->cfd) < 0)
        return -errno;
    if (!f->pres && !(f->pres = calloc(1, PRES_BYTES)))
        return -ENOMEM;
    for (uint32_t i = 0; i < nb; i++)
        if (get_le32(crc + 4 * i) == 0)
            f->pres[(b0 + i) / 8] |= (uint8_t)(1u << ((b0 + i) % 8));
    return pres_store(s, f);
}

/* Shrink overlay @f (locked exclusive) to @length.  Unlike a flat chunk,
 * whose boundary block is fixed after the cut, an overlay takes the new
 * boundary block into its own layer and makes the new header durable
 * before anything is cut: a block cut from its layer would otherwise read
 * through to the base again (invariant 7) after a crash. */
int chunk_ov_truncate_shrink(struct chunk_store *s, struct chunk_file *f,
                             uint32_t length)
{
    uint32_t bl = length / CHUNK_BLOCK_SIZE;
    uint32_t keep = (length + CHUNK_BLOCK_SIZE - 1) / CHUNK_BLOCK_SIZE;
    uint64_t base_len = (uint64_t)bl * CHUNK_BLOCK_SIZE;
    int rc = 0;

    if (length % CHUNK_BLOCK_SIZE) {
        uint8_t *blk = malloc(CHUNK_BLOCK_SIZE);
        uint8_t crc[4];
        if (!blk)
            return -ENOMEM;
        rc = chunk_blocks_load(s, f, bl, 1, blk, 0);
        if (rc == 0) {
            memset(blk + length % CHUNK_BLOCK_SIZE, 0,
                   CHUNK_BLOCK_SIZE - length % CHUNK_BLOCK_SIZE);
            put_le32(crc, crc32c(0, blk, CHUNK_BLOCK_SIZE));
            rc = chunk_reserve_blocks(f, bl, 1);
        }
        if (rc == 0)
            rc = chunk_pwrite_full(f->dfd, blk, CHUNK_BLOCK_SIZE,
                                   (off_t)bl * CHUNK_BLOCK_SIZE, 0);
        if (rc == 0)
            rc = chunk_crcs_store(f, bl, crc, 1, 0);
        if (rc == 0)
            rc = chunk_ov_mark_zero_crcs(s, f, bl, 1, crc);
        free(blk);
    }
    if (rc == 0 && (fdatasync(f->dfd) < 0 || fdatasync(f->cfd) < 0))
        rc = -errno;
    if (rc < 0)
        return rc;
    if (base_len < f->base_len)
        f->base_len = base_len;
    rc = chunk_hdr_write(f, f->version, length, 0);
    if (rc == 0 && fdatasync(f->cfd) < 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    f->length = length;
    chunk_resv_clear_from(f, keep); /* invariant 5 */
    if (ftruncate(f->dfd, (off_t)keep * CHUNK_BLOCK_SIZE) < 0 ||
        ftruncate(f->cfd, HDR_SIZE + (off_t)keep * 4) < 0)
        return -errno;
    return 0;
}

/* The space of overlay @id's files in directory @dfd but its .crc: its
 * layer, and its share of the base's two files (their space divided by
 * their links, so that the overlays over one base add up to it once). */
uint64_t chunk_ov_list_alloc(int dfd, uint64_t id)
{
    static const char *const names[] = {".ov", ".bdata", ".bcrc"};
    uint64_t n = 0;

    for (size_t i = 0; i < 3; i++) {
        char name[32];
        struct stat st;
        snprintf(name, sizeof(name), "%016llx%s", (unsigned long long)id,
                 names[i]);
        if (fstatat(dfd, name, &st, 0) == 0 && st.st_nlink > 0)
            n += (uint64_t)st.st_blocks * 512 / st.st_nlink;
    }
    return n;
}
