/* chunk_store_file.h: the chunk store's own types and helpers, shared by
 * the files that implement it (chunk_store.c: flat chunks, handles,
 * versions, copies; chunk_overlay.c: overlays over a frozen base) and by
 * no one else.  The store's interface is in chunk_internal.h.
 */
#ifndef TESSERA_CHUNK_STORE_FILE_H
#define TESSERA_CHUNK_STORE_FILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunk_internal.h"

#define HDR_SIZE 512u
#define HDR_MAGIC 0x4B435354u  /* "TSCK" little-endian */
#define HDR_FORMAT 1u          /* a flat chunk */
#define HDR_FORMAT_OVERLAY 2u  /* an overlay over a frozen base */
#define HDR_FIELDS 24u         /* magic, format, version, length */
#define HDR_FIELDS_OVERLAY 32u /* the same, then the base length */
#define PRES_BYTES (CHUNK_BLOCKS / 8)
#define NBUCKETS 1024u
/* Aligned buffers the store keeps between direct writes (one per worker). */
#define BOUNCE_KEEP 8u
#define DBG "chunk.store"
/* Checksums of up to this many blocks are handled on the stack: a
 * PROTO_MAX_DATA request, unaligned at both ends. */
#define STACK_BLOCKS (PROTO_MAX_DATA / CHUNK_BLOCK_SIZE + 2)
#define RESV_WORDS (CHUNK_BLOCKS / 64)
#define BOUNCE_KEEP 8u

/* One chunk in use by at least one operation, or idle in the cache.
 *
 * Invariants (continued; 6-9 are about overlays):
 *   4. A handle is in the table while refs > 0 or while it is idle; it is
 *      idle (on the store's idle list) exactly when refs == 0, and an idle
 *      handle exists and holds both files open.  There is never more than
 *      one handle per chunk id.
 *   5. A set bit b of resv means both files have space allocated for
 *      block b (data at b * 4096, checksum at HDR_SIZE + 4 * b).  Bits
 *      are cleared whenever that could stop being true (truncate, delete,
 *      replace: file_shut()).
 *   6. Block b of an overlay is present (in its own layer) when its
 *      checksum in the overlay's .crc is not 0, or its bit in .pres is
 *      set; a present block reads from .ov, verified against that
 *      checksum (invariant 2 applies).
 *   7. A block that is not present reads from the base, verified against
 *      the base's checksums, when it starts below base_len, and as zeros
 *      otherwise; base_len <= length.
 *   8. A block of an overlay becomes present only by the write of its
 *      checksum after its data, or, when its checksum is 0, by its .pres
 *      bit set once its data and checksum are durable: a crash leaves
 *      each block either as it was, or new, or failing its checksum.
 *   9. A base is never written: its files are the data and checksum files
 *      a flat chunk had when it was first cloned, shared by hard links
 *      (one pair per overlay, and the flat chunk's own two names while it
 *      stays flat), and freed by the file system with the last link.  A
 *      flat chunk whose files are so shared (base_shared) becomes an
 *      overlay over them (chunk_ov_unshare()) before anything changes
 *      its data or checksums in place; only its header sector is still
 *      rewritten in place, and no overlay reads a base's header.
 *  10. dirty is false only when the data and checksum files hold nothing
 *      that a sync would still have to write (a handle starts dirty).
 *  11. A set bit b of absent means block b of an overlay is not present
 *      (invariant 6) and its checksum was not written since the handle
 *      learnt it: the bits are set only for a layer the handle has just
 *      made empty (chunk_ov_clone() of a flat chunk, the conversion of
 *      one), and cleared before anything writes block b's checksum.  Such
 *      a block needs no reservation (invariant 5) to be written: a write
 *      that fails half-way, for want of space or anything else, leaves its
 *      checksum 0, so the block is still not present and reads from the
 *      base as before (invariants 7 and 8), whatever its data became.
 *      Once that write succeeds, the space it took is the block's: its
 *      resv bit is set.
 *  12. A checksum file (ID.crc) whose header sector is empty (all zeros
 *      as far as the file goes, if anywhere) is no chunk: a create or
 *      copy that stopped before its first sync (chunk_files_prepare()
 *      makes the file under its final name, then writes and syncs the
 *      header).  A chunk's header is durable before its create returns,
 *      and is later rewritten only whole, in place, so it is never empty
 *      again; store_sweep() removes such a file with the rest.
 */
struct chunk_file {
    uint64_t id;
    int refs;                         /* under store->lock */
    struct chunk_file *next;          /* table chain, under store->lock */
    struct chunk_file *newer, *older; /* idle list, under store->lock */
    pthread_rwlock_t rw;
    /* Under rw: */
    bool exists;
    int dfd, cfd; /* -1 unless exists */
    uint64_t version, length;
    uint64_t alloc;   /* bytes both files take on disk, as in store->alloc */
    uint64_t *resv;   /* RESV_WORDS words; NULL: nothing known reserved */
    uint64_t *absent; /* invariant 11: RESV_WORDS words; NULL: none known */
    struct chunk_wmap wmap; /* main store only; unknown in the stage */
    /* An overlay (invariants 6-9): dfd and cfd are its own layer (.ov and
     * .crc), bdfd and bcfd the frozen base it reads through to. */
    bool overlay;
    int bdfd, bcfd;    /* -1 unless overlay */
    uint64_t base_len; /* base bytes visible through the overlay */
    uint8_t *pres;     /* PRES_BYTES, or NULL: no block in .pres */
    /* A flat chunk whose files some overlay links as its base (invariant
     * 9); may stay true after the last such link went. */
    bool base_shared;
    bool dirty; /* invariant 10 */
};

struct chunk_store {
    char *dir;
    pthread_mutex_t lock;
    struct chunk_file *buckets[NBUCKETS];
    /* Under lock: idle handles, most recently used first (invariant 4). */
    struct chunk_file *idle_new, *idle_old;
    uint32_t nidle, idle_max;
    uint32_t count;            /* atomic */
    uint64_t alloc;            /* atomic: bytes on disk, sum of f->alloc */
    uint32_t zero_crc;         /* crc32c of CHUNK_BLOCK_SIZE zero bytes */
    struct chunk_store *stage; /* copies being built; NULL in the stage */
    struct chunk_usage *usage; /* figures for metad; NULL in the stage */
    /* Under lock: chunks marked bad, unordered (few). */
    struct chunk_bad *bad;
    size_t nbad, bad_cap;
    bool no_reflink;     /* clones never reflink (chunk_store_set_reflink) */
    bool reflink_failed; /* atomic: the file system refused FICLONE */
    /* Atomic, set once: the file system refused RWF_NOWAIT for reads or
     * for writes, so the nowait calls give up at once (-EAGAIN). */
    bool no_nowait_read, no_nowait_write;
    enum chunk_inline_writes inline_writes;
    uint64_t fault_read_eio; /* a chunk whose reads fail (tests); 0: none */
    /* Tests: a file with this many links takes no more (EMLINK), as
     * ext4's 65,000; 0: only the file system's own limit. */
    uint32_t link_max;
    /* Direct writes (chunk_store_set_direct_writes): whole-block writes of
     * at least direct_min bytes skip the page cache; 0: never.  Atomic:
     * set to 0 for good when the file system refuses O_DIRECT. */
    uint32_t direct_min;
    /* Under lock: aligned buffers for direct writes whose data is not. */
    void *bounce[BOUNCE_KEEP];
    unsigned nbounce;
};

/* The fields of a .crc header sector.  A flat chunk has no base_len (it
 * reads as the length). */
struct chunk_hdr {
    uint64_t version, length, base_len;
    bool overlay;
};

/* What a new chunk is made from (chunk_files_prepare()): nothing (NULL), a
 * flat chunk's files to reflink, or an overlay's base with its own layer
 * to copy (@dfd and @cfd; -1 for an empty layer).  The base is @id's
 * .bdata and .bcrc, or, when @base_flat, flat chunk @id's own files. */
struct chunk_copy_src {
    uint64_t id;
    bool overlay, base_flat;
    int dfd, cfd;
    uint64_t length, base_len;
    const uint8_t *pres; /* PRES_BYTES or NULL */
};

static inline void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

/* ---- chunk_store.c ---------------------------------------------------- */

/* The path of chunk @id's file with @suffix ("" for a flat chunk's data),
 * and of the folder holding it, into @buf. */
void chunk_path(const struct chunk_store *s, uint64_t id, const char *suffix,
                char *buf, size_t size);
void chunk_dir_path(const struct chunk_store *s, uint64_t id, char *buf,
                    size_t size);
int chunk_pread_full(int fd, void *buf, size_t n, off_t off, int rwf);
int chunk_pwrite_full(int fd, const void *buf, size_t n, off_t off, int rwf);
int chunk_flush_early(int fd);
int chunk_fsync_path(const char *path);
int chunk_hdr_put(int cfd, const struct chunk_hdr *h, int rwf);
int chunk_hdr_write(struct chunk_file *f, uint64_t version, uint64_t length,
                    int rwf);
void chunk_alloc_update(struct chunk_store *s, struct chunk_file *f);
int chunk_crcs_check(const struct chunk_store *s, uint64_t id,
                     const char *layer, const uint8_t *raw, uint32_t b0,
                     uint32_t nb, const uint8_t *buf);
int chunk_crcs_load(int cfd, uint32_t b0, uint32_t nb, uint8_t *stack,
                    uint8_t **raw, int rwf);
int chunk_blocks_verify(struct chunk_store *s, uint64_t id, int cfd,
                        const char *layer, uint32_t b0, uint32_t nb,
                        const uint8_t *buf, int rwf);
int chunk_blocks_load(struct chunk_store *s, struct chunk_file *f, uint32_t b0,
                      uint32_t nb, uint8_t *buf, int rwf);
int chunk_crcs_store(struct chunk_file *f, uint32_t b0, const uint8_t *raw,
                     uint32_t nb, int rwf);
int chunk_reserve_blocks(struct chunk_file *f, uint32_t b0, uint32_t nb);
/* Invariant 11: every block of overlay @f's layer, which it has just
 * made empty, is absent. */
void chunk_absent_set_all(struct chunk_file *f);
void chunk_resv_clear_from(struct chunk_file *f, uint32_t b0);
/* How chunk_copy_file() copies: a reflink or nothing (-EOPNOTSUPP), or
 * a reflink where it can and the data segments otherwise. */
enum chunk_copy_mode { CHUNK_COPY_REFLINK, CHUNK_COPY_ANY };
int chunk_copy_file(struct chunk_store *s, int in, int out,
                    enum chunk_copy_mode mode);
int chunk_open_new_pair(struct chunk_store *s, uint64_t id,
                        const char *data_suffix, bool named, int *dfd,
                        int *cfd);
int chunk_files_prepare(struct chunk_store *s, struct chunk_file *f,
                        uint64_t ver, const struct chunk_copy_src *src);
void chunk_files_abort(struct chunk_store *s, struct chunk_file *f);
int chunk_files_commit(struct chunk_store *s, struct chunk_file *f,
                       uint64_t ver, uint64_t length);

/* ---- chunk_overlay.c -------------------------------------------------- */

/* Where block @b of an overlay is read from (invariants 6 and 7). */
enum chunk_ov_src { CHUNK_OV_OWN, CHUNK_OV_BASE, CHUNK_OV_ZERO };

/* Whether @suffix (after the 16 hex digits) names one of an overlay's
 * own files besides .crc and .wmap. */
bool chunk_ov_is_suffix(const char *suffix);
/* Remove the overlay names of chunk @id (those that exist); a base file
 * whose last name goes leaves the store's sum of bytes on disk. */
void chunk_ov_unlink(struct chunk_store *s, uint64_t id);
/* The overlay parts of loading @f, whose header said overlay: its base
 * and its .pres bitmap.  On failure the caller shuts @f. */
int chunk_ov_load(struct chunk_store *s, struct chunk_file *f);
int chunk_ov_base_open(struct chunk_store *s, struct chunk_file *f);
/* Give chunk @to the base that @src names (hard links). */
int chunk_ov_base_link(struct chunk_store *s, const struct chunk_copy_src *src,
                       uint64_t to);
/* Invariant 9: make flat chunk @f (locked exclusive) an overlay over its
 * own files when some overlay links them, before they change in place. */
int chunk_ov_unshare(struct chunk_store *s, struct chunk_file *f);
/* The bytes of flat chunk @f's files that other chunks link as their
 * base: they stay counted when @f's files go (delete, replacement). */
uint64_t chunk_ov_shared_bytes(const struct chunk_file *f);
/* Give new overlay @f a copy of @pres (PRES_BYTES; borrowed), durable. */
int chunk_ov_pres_copy(struct chunk_store *s, struct chunk_file *f,
                       const uint8_t *pres);
enum chunk_ov_src chunk_ov_src_of(const struct chunk_file *f, uint32_t b,
                                  uint32_t stored);
int chunk_ov_blocks_load(struct chunk_store *s, struct chunk_file *f,
                         uint32_t b0, uint32_t nb, uint8_t *buf, int rwf);
int chunk_ov_clone(struct chunk_store *s, struct chunk_file *sf,
                   struct chunk_file *df, uint64_t ver);
int chunk_ov_mark_zero_crcs(struct chunk_store *s, struct chunk_file *f,
                            uint32_t b0, uint32_t nb, const uint8_t *crc);
int chunk_ov_truncate_shrink(struct chunk_store *s, struct chunk_file *f,
                             uint32_t length);
uint64_t chunk_ov_list_alloc(int dfd, uint64_t id);

#endif
