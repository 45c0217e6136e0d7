/* fc_internal.h: shared inside client-fuse/ only.
 *
 * The mount is layered so that everything below fc_ops.c can be tested
 * without libfuse:
 *
 *   fc_main.c      command line, mount, daemonise, session loop
 *   fc_ops.c       libfuse low-level callbacks -> metad requests, fc_data
 *   fc_data.c      read/write/sync/truncate of file bytes over chunks
 *   fc_loc.c       per-inode chunk location cache (pure data structure)
 *   fc_handle.c    open inodes: known size, write leases, dirty chunks
 *   fc_range.c     cutting a byte range into per-chunk pieces
 *   fc_chunkconn.c one shared rpc client per chunk server address
 *   fc_meta.c      credentials and request helpers for metad
 *   fc_session.c   the metad connection and its session lease
 */
#ifndef TESSERA_FC_INTERNAL_H
#define TESSERA_FC_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rpc.h"

/* Longest "host:port" of a chunk server we keep; longer ones are refused
 * as a protocol error. */
#define FC_ADDR_MAX 64

/* A write lease is renewed well before metad's 60 s expiry
 * (docs/architecture.md, "Writing"). */
#define FC_LEASE_RENEW_MS 50000
/* How long cached locations stay valid.  Holes expire soon because another
 * client may fill them without us hearing about it; chunks with data are
 * checked by version on every read, so a stale entry costs one retry. */
#define FC_LOC_TTL_MS 60000
#define FC_LOC_HOLE_TTL_MS 1000

/* Where one chunk of a file lives: a copy of a struct proto_chunk_loc that
 * owns its strings.  chunk_id 0 is a hole (nreplicas 0). */
struct fc_chunk {
    uint64_t index;
    uint64_t chunk_id;
    uint64_t version;
    uint32_t nreplicas;
    uint32_t server_id[PROTO_MAX_REPLICAS];
    char addr[PROTO_MAX_REPLICAS][FC_ADDR_MAX];
};

/* fc_range.c */

/* One piece of a byte range that stays within one chunk. */
struct fc_piece {
    uint64_t index;   /* chunk index */
    uint32_t off;     /* offset within the chunk */
    uint32_t len;     /* bytes, > 0 */
    uint64_t buf_off; /* offset of the piece within the caller's range */
};

struct fc_range_iter {
    uint64_t off, end; /* what is left: [off, end) */
    uint64_t start;    /* the range's first byte, for buf_off */
    uint32_t max;      /* largest piece */
};

/* Walk [@off, @off + @len) in pieces that never cross a chunk boundary and
 * are at most @max bytes (0 means no limit beyond the chunk). */
void fc_range_init(struct fc_range_iter *it, uint64_t off, uint64_t len,
                   uint32_t max);
bool fc_range_next(struct fc_range_iter *it, struct fc_piece *p);
/* Bytes of [@off, @off + @len) below @size. */
uint64_t fc_range_clamp(uint64_t off, uint64_t len, uint64_t size);
/* Number of chunks [@off, @off + @len) touches (0 for an empty range). */
uint64_t fc_range_nchunks(uint64_t off, uint64_t len);

/* fc_loc.c */

struct fc_loc_cache;

/* A cache of at most @max entries.  NULL on out of memory.  Caller owns
 * the cache; free it with fc_loc_cache_free().  Thread-safe. */
struct fc_loc_cache *fc_loc_cache_new(size_t max);
void fc_loc_cache_free(struct fc_loc_cache *c);
/* Remember @chunk (copied) for @ino until @now_ms + the TTL of its kind. */
int fc_loc_put(struct fc_loc_cache *c, uint64_t ino,
               const struct fc_chunk *chunk, uint64_t now_ms);
/* Copy the entry for (@ino, @index) into @out: 0, or -ENOENT when absent
 * or expired at @now_ms. */
int fc_loc_get(struct fc_loc_cache *c, uint64_t ino, uint64_t index,
               uint64_t now_ms, struct fc_chunk *out);
void fc_loc_invalidate(struct fc_loc_cache *c, uint64_t ino, uint64_t index);
/* Forget every chunk of @ino with index >= @first. */
void fc_loc_invalidate_from(struct fc_loc_cache *c, uint64_t ino,
                            uint64_t first);
size_t fc_loc_count(struct fc_loc_cache *c);
/* Copy a decoded location into @out.  -EPROTO when an address does not fit
 * or the replica count is out of range. */
int fc_chunk_from_loc(const struct proto_chunk_loc *loc, struct fc_chunk *out);

/* fc_handle.c */

/* A chunk this mount holds a write lease on. */
struct fc_lease {
    struct fc_chunk chunk; /* id, version and replica chain */
    uint64_t granted_ms;
    bool dirty; /* written since the last CHUNK_SYNC */
};

/* An inode with at least one open file handle.  Fields below @lock are
 * protected by it. */
struct fc_inode {
    uint64_t ino;
    unsigned refs; /* open handles; protected by the table lock */
    pthread_mutex_t lock;
    uint64_t size;      /* largest size known: attrs and our own writes */
    bool end_pending;   /* written since the last CHUNK_WRITE_END */
    uint64_t end_index; /* a chunk written since then, for WRITE_END */
    uint64_t end_chunk;
    struct fc_lease *leases;
    size_t nleases, cap;
};

/* One open() of a file: fi->fh points at it. */
struct fc_handle {
    struct fc_inode *node;
    int flags; /* open(2) flags */
};

struct fc_handles;

/* NULL on out of memory.  Caller owns the table: fc_handles_free(). */
struct fc_handles *fc_handles_new(void);
void fc_handles_free(struct fc_handles *t);
/* Open a handle on @ino with @flags; the first handle of an inode starts
 * with @size.  Caller owns *out: release it with fc_handles_release(). */
int fc_handles_open(struct fc_handles *t, uint64_t ino, int flags,
                    uint64_t size, struct fc_handle **out);
/* Drop @h; the inode goes with its last handle. */
void fc_handles_release(struct fc_handles *t, struct fc_handle *h);
/* The open inode for @ino with a reference taken, or NULL when no handle
 * is open.  Drop the reference with fc_handles_put(). */
struct fc_inode *fc_handles_find(struct fc_handles *t, uint64_t ino);
void fc_handles_put(struct fc_handles *t, struct fc_inode *n);

/* The rest take n->lock themselves. */

/* Copy a lease on chunk @index still valid at @now_ms: 0 or -ENOENT. */
int fc_inode_lease_get(struct fc_inode *n, uint64_t index, uint64_t now_ms,
                       struct fc_chunk *out);
/* Record a lease granted at @now_ms, replacing any for the same index. */
int fc_inode_lease_put(struct fc_inode *n, const struct fc_chunk *chunk,
                       uint64_t now_ms);
void fc_inode_lease_drop(struct fc_inode *n, uint64_t index);
/* Drop leases on chunks with index >= @first (after a truncate). */
void fc_inode_lease_drop_from(struct fc_inode *n, uint64_t first);
/* Mark the lease on @index written: it needs a CHUNK_SYNC. */
void fc_inode_lease_dirty(struct fc_inode *n, uint64_t index);
/* Copy up to @max dirty leases into @out and mark them clean; returns how
 * many.  A failed sync gives them back with fc_inode_lease_dirty(). */
size_t fc_inode_take_dirty(struct fc_inode *n, struct fc_chunk *out,
                           size_t max);
size_t fc_inode_ndirty(struct fc_inode *n);
/* Raise the known size to @size if larger; returns the size now known. */
uint64_t fc_inode_grow(struct fc_inode *n, uint64_t size);
void fc_inode_set_size(struct fc_inode *n, uint64_t size);
uint64_t fc_inode_size(struct fc_inode *n);

/* fc_chunkconn.c */

struct fc_pool;

/* Connections to chunk servers, opened on first use with @name in HELLO.
 * NULL on out of memory.  Caller owns it: fc_pool_free() closes all. */
struct fc_pool *fc_pool_new(const char *name);
void fc_pool_free(struct fc_pool *p);
/* The client for @addr, opened if needed.  Returns a pointer owned by
 * @p, valid until fc_pool_free(); -errno when it cannot connect. */
int fc_pool_get(struct fc_pool *p, const char *addr, struct rpc_client **out);

/* fc_session.c */

struct fc_session;

/* Connect to metad at @addr and open a session named @name, with a thread
 * renewing it.  Caller owns *out: fc_session_close() ends the session. */
int fc_session_open(const char *addr, const char *name,
                    struct fc_session **out);
void fc_session_close(struct fc_session *s);
/* Returns a pointer owned by @s, valid until fc_session_close(). */
struct rpc_client *fc_session_rpc(struct fc_session *s);
uint64_t fc_session_id(struct fc_session *s);
/* Check that metad at @addr answers the handshake, then hang up. */
int fc_session_probe(const char *addr);

/* fc_meta.c */

/* The whole mount: fuse_req_userdata() of every request. */
struct fc_fs {
    struct fc_session *session;
    struct rpc_client *meta; /* owned by @session */
    struct fc_pool *pool;
    struct fc_loc_cache *loc;
    struct fc_handles *handles;
};

/* Call metad with the request encoded in @req and decode the reply into
 * @out.  On 0 the caller owns @rep (borrowed fields of @out point into
 * it): rpc_reply_free().  On error @rep is empty. */
int fc_meta_call(struct fc_fs *fs, uint16_t opcode, struct proto_wbuf *req,
                 struct rpc_reply *rep, void *out);
/* Milliseconds of CLOCK_MONOTONIC, and nanoseconds of wall clock. */
uint64_t fc_now_ms(void);
int64_t fc_now_ns(void);
/* Map an error from a chunk server or metad on the data path to what the
 * application sees: ENOSPC, EDQUOT, EFBIG, EROFS, EACCES, EPERM and
 * ENOENT pass, everything else is EIO.  @err is a negative errno. */
int fc_data_errno(int err);
/* Locations of chunks [@first, @first + @count) of @ino from metad, put in
 * the cache.  Indices metad leaves out are cached as holes. */
int fc_meta_locate(struct fc_fs *fs, uint64_t ino, uint64_t first,
                   uint32_t count);
/* CHUNK_WRITE_BEGIN on (@ino, @index): the lease's chunk in @out. */
int fc_meta_write_begin(struct fc_fs *fs, uint64_t ino, uint64_t index,
                        struct fc_chunk *out);
/* CHUNK_WRITE_END with @size (0: did not grow) and @mtime_ns. */
int fc_meta_write_end(struct fc_fs *fs, uint64_t ino, uint64_t index,
                      uint64_t chunk_id, uint64_t size, int64_t mtime_ns);
/* GETATTR without credentials. */
int fc_meta_getattr(struct fc_fs *fs, uint64_t ino, struct proto_attr *out);

/* fc_ops.c */

struct fuse_lowlevel_ops;
/* The callback table; userdata must be a struct fc_fs. */
const struct fuse_lowlevel_ops *fc_ops_get(void);

/* fc_data.c */

/* Read up to @len bytes at @off of the file open as @h into @buf, clamped
 * to the size known: returns the count or -errno. */
int fc_data_read(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                 size_t len, uint8_t *buf);
/* Write @len bytes of @buf (borrowed) at @off: returns @len or -errno. */
int fc_data_write(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                  const uint8_t *buf, size_t len);
/* CHUNK_SYNC every chunk written since the last sync, then WRITE_END. */
int fc_data_sync(struct fc_fs *fs, struct fc_inode *n);
/* Before a SETATTR shrinking @ino from @old_size to @new_size: zero the
 * boundary chunk's tail on every replica.  @n may be NULL. */
int fc_data_truncate_prepare(struct fc_fs *fs, uint64_t ino, struct fc_inode *n,
                             uint64_t old_size, uint64_t new_size);
/* After a successful SETATTR to @new_size: forget what lies past it. */
void fc_data_truncate_done(struct fc_fs *fs, uint64_t ino, struct fc_inode *n,
                           uint64_t new_size);
/* Write zeros over [@off, @off + @len), skipping holes. */
int fc_data_zero(struct fc_fs *fs, struct fc_handle *h, uint64_t off,
                 uint64_t len);

#endif
