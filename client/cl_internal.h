/* cl_internal.h: shared by the client library's files (client/cl_*.c) and
 * their unit tests only; programs use cl.h.
 *
 *   cl_client.c  the client: session, caches, pool; SERVER_STATE notices
 *   cl_session.c the metad connection and its session lease
 *   cl_meta.c    requests to metad: LOCATE, WRITE_BEGIN/END, REPORT, ...
 *   cl_file.c    an inode's bytes: ranges cut into chunk pieces
 *   cl_chunk.c   one chunk's I/O: replica failover, failed-write recovery
 *   cl_fast.c    the non-blocking fast path of one-chunk reads and writes
 *   cl_loc.c     chunk location cache (pure data structure)
 *   cl_handle.c  open inodes: known size, write leases, dirty chunks
 *   cl_range.c   cutting a byte range into per-chunk pieces
 *   cl_pool.c    one shared rpc client per chunk server address
 *   cl_cache.c   delayed writes: the store of dirty extents
 *   cl_flush.c   the flush thread: when delayed writes and WRITE_END go
 *   cl_callback.c callback breaks from metad, cached page versions
 */
#ifndef TESSERA_CL_INTERNAL_H
#define TESSERA_CL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocking.h"
#include "cl.h"

/* A write lease is renewed well before metad's 60 s expiry
 * (docs/architecture.md, "Writing"). */
#define CL_LEASE_RENEW_MS 50000
/* How long cached locations stay valid.  Holes expire soon because another
 * client may fill them without us hearing about it; chunks with data are
 * checked by version on every read, so a stale entry costs one retry. */
#define CL_LOC_TTL_MS 60000
#define CL_LOC_HOLE_TTL_MS 1000
/* A location a replica failed on is asked for again after at most this. */
#define CL_LOC_SUSPECT_TTL_MS 1000
/* A write or sync that keeps failing gives up after this long: metad
 * declares a silent server down after 5 s (docs/protocol.md §11.8), so
 * one recovery round fits with room to spare. */
#define CL_RECOVER_MS 10000
#define CL_RECOVER_TRIES 8
/* How long a read waits for metad to catch up with a version its
 * servers moved on to (cl_chunk_read()). */
#define CL_STALE_WAIT_MS 2000
/* Storage servers we remember as not up (SERVER_STATE). */
#define CL_DOWN_MAX 64

/* ---- cl_range.c -------------------------------------------------------- */

/* One piece of a byte range that stays within one chunk. */
struct cl_piece {
    uint64_t index;   /* chunk index */
    uint32_t off;     /* offset within the chunk */
    uint32_t len;     /* bytes, > 0 */
    uint64_t buf_off; /* offset of the piece within the caller's range */
};

struct cl_range_iter {
    uint64_t off, end; /* what is left: [off, end) */
    uint64_t start;    /* the range's first byte, for buf_off */
    uint32_t max;      /* largest piece */
};

/* Walk [@off, @off + @len) in pieces that never cross a chunk boundary and
 * are at most @max bytes (0 means no limit beyond the chunk). */
void cl_range_init(struct cl_range_iter *it, uint64_t off, uint64_t len,
                   uint32_t max);
bool cl_range_next(struct cl_range_iter *it, struct cl_piece *p);
/* Bytes of [@off, @off + @len) below @size. */
uint64_t cl_range_clamp(uint64_t off, uint64_t len, uint64_t size);
/* Number of chunks [@off, @off + @len) touches (0 for an empty range). */
uint64_t cl_range_nchunks(uint64_t off, uint64_t len);

/* ---- cl_loc.c ---------------------------------------------------------- */

struct cl_loc_cache;

/* A cache of at most @max entries.  NULL on out of memory.  Caller owns
 * the cache; free it with cl_loc_cache_free().  Thread-safe. */
struct cl_loc_cache *cl_loc_cache_new(size_t max);
void cl_loc_cache_free(struct cl_loc_cache *c);
/* Remember @chunk (copied) for @ino until @now_ms + the TTL of its kind. */
int cl_loc_put(struct cl_loc_cache *c, uint64_t ino,
               const struct cl_chunk *chunk, uint64_t now_ms);
/* The cache's sequence number, taken before a CHUNK_LOCATE is sent. */
uint64_t cl_loc_seq(struct cl_loc_cache *c);
/* As cl_loc_put(), for @chunk from a CHUNK_LOCATE reply asked at
 * cl_loc_seq() @since: not over an entry put since, and a hole not at
 * all when an entry was removed since (0 either way). */
int cl_loc_put_reply(struct cl_loc_cache *c, uint64_t ino,
                     const struct cl_chunk *chunk, uint64_t now_ms,
                     uint64_t since);
/* Copy the entry for (@ino, @index) into @out: 0, or -ENOENT when absent
 * or expired at @now_ms. */
int cl_loc_get(struct cl_loc_cache *c, uint64_t ino, uint64_t index,
               uint64_t now_ms, struct cl_chunk *out);
void cl_loc_invalidate(struct cl_loc_cache *c, uint64_t ino, uint64_t index);
/* A replica of (@ino, @index) failed: keep the entry at most
 * CL_LOC_SUSPECT_TTL_MS past @now_ms, so metad is asked again soon but not
 * at every read while the replica stays listed. */
void cl_loc_suspect(struct cl_loc_cache *c, uint64_t ino, uint64_t index,
                    uint64_t now_ms);
/* Forget every chunk of @ino with index >= @first. */
void cl_loc_invalidate_from(struct cl_loc_cache *c, uint64_t ino,
                            uint64_t first);
/* Forget every entry. */
void cl_loc_invalidate_all(struct cl_loc_cache *c);
/* Remove server @server_id from every cached replica list; an entry left
 * without replicas is forgotten.  Returns how many entries changed. */
size_t cl_loc_drop_server(struct cl_loc_cache *c, uint32_t server_id);
size_t cl_loc_count(struct cl_loc_cache *c);
/* Copy a decoded location into @out.  -EPROTO when an address does not fit
 * or the replica count is out of range. */
int cl_chunk_from_loc(const struct proto_chunk_loc *loc, struct cl_chunk *out);
/* True when @server_id is one of @chunk's replicas. */
bool cl_chunk_has_server(const struct cl_chunk *chunk, uint32_t server_id);

/* ---- cl_handle.c ------------------------------------------------------- */

/* A chunk this client holds a write lease on. */
struct cl_lease {
    struct cl_chunk chunk; /* id, version and replica chain */
    uint64_t granted_ms;
    bool dirty; /* written since the last CHUNK_SYNC */
    bool stale; /* a replica of the chain went down: WRITE_BEGIN again */
};

/* A byte range of an inode written while in flight (cl_wrange.c). */
struct cl_wrange {
    struct cl_wrange *prev, *next;
    uint64_t off, end; /* [off, end) in the file */
};

/* An inode with at least one open handle.  Fields below @lock are
 * protected by it. */
struct cl_inode {
    uint64_t ino;
    unsigned refs;             /* protected by the table lock */
    pthread_mutex_t sync_lock; /* one cl_file_sync() at a time */
    pthread_mutex_t lock;
    uint64_t size;      /* largest size known: attrs and our own writes */
    /* A read past @size asks metad for the size (cl_file_read): with
     * callbacks once a break said it may have changed (@size_stale, set
     * by cl_handles_size_stale), without them at most every
     * CL_SIZE_CHECK_MS (@size_ms: when metad last told us the size). */
    bool size_stale;
    uint64_t size_ms;
    bool end_pending;   /* written since the last CHUNK_WRITE_END */
    bool synced;        /* atomic: a cl_file_sync() of it succeeded */
    uint64_t end_index; /* a chunk written since then, for WRITE_END */
    uint64_t end_chunk;
    uint64_t end_size; /* end of the furthest write since then */
    uint64_t end_ms;   /* when end_pending was set */
    struct cl_lease *leases;
    size_t nleases, cap;
    /* Delayed writes (cl_cache.c): sorted, disjoint, not adjacent. */
    struct cl_extent *ext;
    size_t next, cext;
    struct cl_extent *fl; /* being written back; read under @ext */
    size_t nfl;
    uint64_t fl_gen; /* moves each time written-back extents leave @fl */
    uint64_t dirty_bytes;
    /* Delayed writes written back whose CHUNK_WRITE_END has not been
     * answered yet: metad's st_blocks may not count them (write_end()). */
    uint64_t unended_bytes;
    uint64_t dirty_ms; /* when the oldest delayed write was made */
    int werr;          /* first failed delayed write: next flush/sync */
    int64_t wmtime_ns; /* wall clock of our latest write */
    /* Attributes under a promise (cl_inode_attr_note()), good while
     * @attr_ok, before @attr_until_ms, and while the client's attr_gen
     * is still @attr_gen. */
    bool attr_ok;
    bool attr_writer; /* a reply since made the promise a writer's */
    struct proto_attr attr;
    uint64_t attr_until_ms, attr_gen;
    uint64_t attr_forgets; /* moves on each cl_inode_attr_forget() */
    /* A new session came since the holds were counted: metad may hold
     * nothing for them (cl_handles_reset()); the next OPEN clears it. */
    bool hold_unsure;
    /* Writes in flight, oldest first (cl_wrange.c); @wr_cv wakes the
     * @wr_waiters blocked behind one of them. */
    struct cl_wrange *wr_head, *wr_tail;
    unsigned wr_waiters;
    pthread_cond_t wr_cv;
    /* Open handles metad holds the file for (docs/protocol.md §6.22); the
     * hold lock orders a first OPEN after a last RELEASE. */
    pthread_mutex_t hold_lock;
    unsigned holds; /* protected by @hold_lock */
    /* The last handle closed at @linger_ms and the RELEASE waits
     * CL_LINGER_MS, holding a reference, so that opening the file again
     * costs metad no record.  Changed under @hold_lock and @lock, read
     * under either. */
    bool linger;
    uint64_t linger_ms;
};

/* Without callbacks, how often a read past an open file's size may ask
 * metad whether another client extended it (cl_file.c): attributes are
 * this old at most in validate mode too (docs/caching.md §4). */
#define CL_SIZE_CHECK_MS 1000

/* How long the hold of a file outlives its last handle (cl_file.c). */
#define CL_LINGER_MS 2000

/* One range of delayed writes. */
struct cl_extent {
    uint64_t off;
    size_t len, cap;
    uint8_t *data;
};

struct cl_handles;
struct cl_cache;

/* NULL on out of memory.  Caller owns the table: cl_handles_free(). */
struct cl_handles *cl_handles_new(void);
void cl_handles_free(struct cl_handles *t);
/* A reference on the inode @ino, created with @size if not open (else its
 * size is raised to @size).  Release it with cl_handles_put(). */
int cl_handles_open(struct cl_handles *t, uint64_t ino, uint64_t size,
                    struct cl_inode **out);
/* The open inode for @ino with a reference taken, or NULL. */
struct cl_inode *cl_handles_find(struct cl_handles *t, uint64_t ino);
void cl_handles_put(struct cl_handles *t, struct cl_inode *n);
/* Let freed inodes return their delayed-write bytes to @k. */
void cl_handles_set_cache(struct cl_handles *t, struct cl_cache *k);
/* The inode numbers of up to @max open (or lingering) inodes into @out;
 * returns how many. */
size_t cl_handles_inos(struct cl_handles *t, uint64_t *out, size_t max);
/* Take a reference on up to @max open inodes with delayed writes or a
 * pending WRITE_END into @out, and, when @linger_ms is not 0, those whose
 * hold has lingered CL_LINGER_MS by then; returns how many (put each). */
size_t cl_handles_collect(struct cl_handles *t, struct cl_inode **out,
                          size_t max, uint64_t linger_ms);
/* A break says the size of @ino may have changed, if it is open. */
void cl_handles_size_stale(struct cl_handles *t, uint64_t ino);
/* A new session: every open inode's kept attributes go, and its holds
 * are unsure until an OPEN with HOLD (cl_inode_held()). */
void cl_handles_reset(struct cl_handles *t);
/* Mark stale every lease whose chain holds @server_id; returns how many. */
size_t cl_handles_server_down(struct cl_handles *t, uint32_t server_id);

/* The rest take n->lock themselves. */

/* Copy a lease on chunk @index valid at @now_ms and not stale: 0 or
 * -ENOENT. */
int cl_inode_lease_get(struct cl_inode *n, uint64_t index, uint64_t now_ms,
                       struct cl_chunk *out);
/* Record a lease granted at @now_ms, replacing any for the same index. */
int cl_inode_lease_put(struct cl_inode *n, const struct cl_chunk *chunk,
                       uint64_t now_ms);
/* Make the next write to @index ask metad for the lease again. */
void cl_inode_lease_stale(struct cl_inode *n, uint64_t index);
void cl_inode_lease_drop(struct cl_inode *n, uint64_t index);
/* Drop leases on chunks with index >= @first (after a truncate). */
void cl_inode_lease_drop_from(struct cl_inode *n, uint64_t first);
/* Mark the lease on @index written: it needs a CHUNK_SYNC. */
void cl_inode_lease_dirty(struct cl_inode *n, uint64_t index);
/* Copy the indexes of up to @max dirty leases into @out and mark them
 * clean; returns how many.  A failed sync gives them back with
 * cl_inode_lease_dirty(). */
size_t cl_inode_take_dirty(struct cl_inode *n, uint64_t *out, size_t max);
size_t cl_inode_ndirty(struct cl_inode *n);

/* Under the hold lock (cl_inode_hold_begin()): one handle fewer; true
 * when it was the last that metad holds the file for. */
bool cl_inode_hold_drop(struct cl_inode *n);
/* Under the hold lock: start lingering (true) or stop (false); returns
 * whether @n was lingering before. */
bool cl_inode_linger_set(struct cl_inode *n, bool on, uint64_t now_ms);
/* Whether @n has lingered at least CL_LINGER_MS at @now_ms (or at all,
 * with @now_ms UINT64_MAX). */
bool cl_inode_linger_due(struct cl_inode *n, uint64_t now_ms);

/* ---- cl_pool.c --------------------------------------------------------- */

struct cl_pool;

/* Connections to chunk servers, opened on first use with @name and @role
 * in HELLO.  NULL on out of memory.  Caller owns it: cl_pool_free(). */
struct cl_pool *cl_pool_new(const char *name, uint8_t role);
/* Authenticate to chunk servers with @auth's ticket (borrowed, outlives
 * @p); before the first connection. */
void cl_pool_set_auth(struct cl_pool *p, struct cl_auth *auth);
void cl_pool_free(struct cl_pool *p);
/* The client for @addr, opened if needed.  Returns a pointer owned by
 * @p, valid until cl_pool_free(); -errno when it cannot connect. */
int cl_pool_get(struct cl_pool *p, const char *addr, struct rpc_client **out);
/* The client for @addr if one is open, else NULL; never dials.  The
 * pointer is owned by @p, valid until cl_pool_free(). */
struct rpc_client *cl_pool_find(struct cl_pool *p, const char *addr);
/* Does the server at @addr answer a handshake within a second, on a new
 * connection?  0 or -errno. */
int cl_pool_probe(struct cl_pool *p, const char *addr);

/* ---- cl_session.c ------------------------------------------------------ */

struct cl_session;

struct cl_session_hooks {
    /* A request metad sent on the connection (reader thread). */
    void (*on_request)(struct rpc_client *, uint16_t, uint64_t, const uint8_t *,
                       size_t, void *);
    /* The callback promises are gone: a new session replaced the one
     * before (expiry), or it was resumed on a new connection. */
    void (*on_reopen)(void *arg);
    void *arg;
    bool callbacks; /* send CALLBACK_REGISTER ON with every SESSION_OPEN */
    struct cl_auth *auth; /* borrowed; NULL: no authentication */
};

/* Connect to metad at @addr and open a session named @name (borrowed),
 * with a thread renewing it.  @hooks is copied.  Caller owns *out:
 * cl_session_close(). */
int cl_session_open(const char *addr, const char *name, uint8_t role,
                    const struct cl_session_hooks *hooks,
                    struct cl_session **out);
/* True when the last SESSION_OPEN's CALLBACK_REGISTER succeeded. */
bool cl_session_callbacks(struct cl_session *s);
/* The lease metad gives this session's callback promises (ms), 0 when it
 * has none. */
uint32_t cl_session_promise_ms(struct cl_session *s);
void cl_session_close(struct cl_session *s);
/* Returns a pointer owned by @s, valid until cl_session_close(). */
struct rpc_client *cl_session_rpc(struct cl_session *s);
uint64_t cl_session_id(struct cl_session *s);

/* ---- cl_client.c ------------------------------------------------------- */

/* Servers announced as not up, by id (a small set). */
struct cl_downset {
    pthread_mutex_t lock;
    uint32_t ids[CL_DOWN_MAX];
    size_t n;
};

void cl_downset_init(struct cl_downset *d);
void cl_downset_destroy(struct cl_downset *d);
void cl_downset_add(struct cl_downset *d, uint32_t id);
void cl_downset_remove(struct cl_downset *d, uint32_t id);
bool cl_downset_has(struct cl_downset *d, uint32_t id);

/* ---- cl_reported.c ----------------------------------------------------- */

#define CL_REPORTED_MAX 32
#define CL_REPORTED_MS 10000u /* how long a claim to report lasts */

struct cl_reported_entry {
    uint32_t server_id;
    uint64_t chunk_id, version; /* chunk_id 0: a free slot */
    uint64_t at_ms;
};

/* Reports of bad replicas sent lately, by (server, chunk, version). */
struct cl_reported {
    pthread_mutex_t lock;
    struct cl_reported_entry v[CL_REPORTED_MAX];
};

void cl_reported_init(struct cl_reported *r);
void cl_reported_destroy(struct cl_reported *r);
/* True when the caller is the one to report @server_id's replica of
 * @chunk_id at @version (then claimed until @now_ms + CL_REPORTED_MS);
 * false when another caller claimed it within that time. */
bool cl_reported_claim(struct cl_reported *r, uint32_t server_id,
                       uint64_t chunk_id, uint64_t version, uint64_t now_ms);
/* Give a claim up (the report was not sent): the next caller reports. */
void cl_reported_drop(struct cl_reported *r, uint32_t server_id,
                      uint64_t chunk_id, uint64_t version);

struct cl_cache;
struct cl_cb;

struct cl_client {
    struct cl_session *session;
    /* Moves when attributes of open inodes may have changed in a way no
     * one followed: every one noted before is void (cl_attr_forget_all). */
    _Atomic uint64_t attr_gen;
    struct rpc_client *meta; /* owned by @session */
    struct cl_pool *pool;
    struct cl_loc_cache *loc;
    struct cl_handles *handles;
    struct cl_downset down;
    struct cl_reported reported; /* read-side bad-replica reports */
    enum cl_cache_mode mode;
    bool delay_after_sync;     /* cl_opts */
    uint32_t direct_write_max; /* cl_opts */
    struct cl_cache *cache;    /* delayed writes */
    struct cl_flush *flush;    /* when they go */
    struct cl_cb *cb;          /* callback breaks */
    struct cl_nsq *nsq;        /* namespace changes answered locally */
};

/* ---- cl_cache.c -------------------------------------------------------- */

/* The store of delayed writes and their accounting.  NULL on out of
 * memory.  Caller owns it: cl_cache_stop(), then cl_cache_free(). */
struct cl_cache *cl_cache_new(const struct cl_opts *o);
/* Wake the flusher and every waiting writer for good. */
void cl_cache_stop(struct cl_cache *k);
/* Free (NULL is fine).  Delayed writes still held are not written back
 * here: cl_client_close() does that first. */
void cl_cache_free(struct cl_cache *k);
/* How many bytes of delayed writes one batch of writing back holds. */
uint64_t cl_cache_batch(struct cl_cache *k);
/* Bytes of delayed writes held, every inode (0 for NULL). */
uint64_t cl_cache_dirty(struct cl_cache *k);
/* Keep @len bytes of @buf (borrowed, copied) at @off as a delayed write,
 * waiting while the client holds dirty_max or more (unless !@wait: then
 * -EAGAIN and nothing kept).  0, -EAGAIN or -ENOMEM. */
int cl_cache_write(struct cl_client *c, struct cl_inode *n, uint64_t off,
                   const uint8_t *buf, size_t len, bool wait);
/* Does [@off, @off + @len) of @n meet a delayed write, kept or being
 * written back?  Takes @n's lock. */
bool cl_cache_overlaps(struct cl_inode *n, uint64_t off, uint64_t len);
/* @n's fl_gen, taken before a read asks the chunk servers. */
uint64_t cl_cache_gen(struct cl_inode *n);
/* Lay @n's delayed writes over @buf, which holds [@off, @off + @len) as
 * read from the chunk servers since cl_cache_gen() gave @gen.  False, and
 * nothing laid, when written-back extents left the cache since: the read
 * may have missed them on the servers and must be made again. */
bool cl_cache_overlay(struct cl_inode *n, uint64_t off, size_t len,
                      uint8_t *buf, uint64_t gen);
/* Move @n's delayed writes onto its flushing list (n->fl, n->nfl), which
 * reads still see: false when it has none.  The caller holds
 * n->sync_lock, writes them, then calls cl_cache_release(), at once or a
 * batch at a time. */
bool cl_cache_take(struct cl_inode *n);
/* Free the first @count extents of the flushing list (all of it when
 * @count >= n->nfl); @err (0 or -errno) is kept in n->werr. */
void cl_cache_release(struct cl_cache *k, struct cl_inode *n, size_t count,
                      int err);
/* Forget delayed writes past @size (a truncate). */
void cl_cache_cut(struct cl_client *c, struct cl_inode *n, uint64_t size);
/* Free an inode's extents, returning their bytes to the client's count. */
void cl_cache_inode_free(struct cl_cache *k, struct cl_inode *n);
/* The flusher's sleep: up to @ms, or until the client holds half of
 * dirty_max.  True when writing back is urgent; *@stop once stopped. */
bool cl_cache_wait(struct cl_cache *k, uint32_t ms, bool *stop);
/* Let writers waiting for room look again. */
void cl_cache_retry_writers(struct cl_cache *k);

/* cl_file.c: write [@off, @off + @len) to the servers now. */
int cl_file_write_now(struct cl_client *c, struct cl_inode *n, uint64_t off,
                      const uint8_t *buf, size_t len, bool sync);
/* cl_file.c: write every delayed write of @n to the servers (the caller
 * holds n->sync_lock).  A failure is also kept in n->werr. */
int cl_file_writeback(struct cl_client *c, struct cl_inode *n);
/* cl_file.c: a CHUNK_WRITE_END is owed for chunk @chunk_id at @index, for
 * a write ending at @end. */
void cl_file_mark_end(struct cl_inode *n, uint64_t index, uint64_t chunk_id,
                      uint64_t end);

/* ---- cl_flush.c -------------------------------------------------------- */

struct cl_flush;

/* The flusher of @c (borrowed; its cache must exist), not started yet.
 * NULL on out of memory.  Caller owns it: cl_flush_free(). */
struct cl_flush *cl_flush_new(struct cl_client *c, const struct cl_opts *o);
int cl_flush_start(struct cl_flush *f);
/* Stop the thread (it stops the cache too) and free (NULL is fine). */
void cl_flush_free(struct cl_flush *f);

/* ---- cl_nsq.c ---------------------------------------------------------- */

/* Directories one client holds delegated at once; files it may hold
 * without metad knowing (cl_nsq_hold_here()). */
#define CL_NSQ_DIRS 64
#define CL_NSQ_HOLDS 1024

struct cl_nsq;
/* How the queue reaches metad: @send as rpc_call_async() (0 once sent,
 * -ENOTCONN when not connected); @now_ms NULL for cl_now_ms(). */
struct cl_nsq_ops {
    int (*send)(void *arg, uint16_t opcode, const void *payload, size_t len,
                rpc_done_cb cb, void *cb_arg);
    uint64_t (*now_ms)(void *arg);
    void *arg;
};
struct cl_nsq_stats {
    uint64_t queued, pushed, sent, resent, failed;
};
/* Start the queue and its sender thread.  Caller owns *out: cl_nsq_free(),
 * which sends what is queued first (giving up after a bound when metad is
 * away).  0, -ENOMEM or -errno from pthread_create. */
int cl_nsq_new(const struct cl_nsq_ops *ops, struct cl_nsq **out);
void cl_nsq_free(struct cl_nsq *q);
/* Queue request @opcode with @w's payload (copied), a change in directory
 * @dir while it is delegated (0: no directory, e.g. RELEASE) to inode @ino
 * (the one it creates, unlinks or releases; 0 when not known: then every
 * request waits for it, cl_nsq_wait_on()).  Waits while the queue is full.
 * -ESTALE when @dir is not delegated (any more): the caller sends the
 * change the ordinary way.  0, -ESTALE, -ENOMEM or @w's encode error. */
int cl_nsq_push(struct cl_nsq *q, uint64_t dir, uint64_t ino, uint16_t opcode,
                const struct proto_wbuf *w);
/* Wait until everything queued before the call is answered; 0, or the
 * first error of a queued change not reported before (-EIO), once. */
int cl_nsq_sync(struct cl_nsq *q);
/* The same without taking the error (for requests that must not overtake
 * the queue; NULL is fine). */
void cl_nsq_wait(struct cl_nsq *q);
/* The same for a request that reads or changes inode @ino alone: it
 * waits only for the queued changes to @ino, in @ino, or to an inode not
 * known, and those before them.  The queue is answered in order, so what
 * it waits for is applied before the request reaches metad, as with
 * cl_nsq_wait(); a change to other inodes cannot change what the request
 * reads or does. */
void cl_nsq_wait_on(struct cl_nsq *q, uint64_t ino);
/* Add cl.nsq.wait, the time spent waiting for queued changes, to the
 * stages lat_dump() and the metrics show.  Once, at startup. */
void cl_nsq_stats_register(void);
/* Until when (cl_now_ms()) @dir stays delegated: 0 when it is not. */
uint64_t cl_nsq_dir_until(struct cl_nsq *q, uint64_t dir);
/* DIR_DELEGATE of @dir, asked at @asked_ms, granted for @lease_ms; or
 * refused (another session holds a promise on @dir): then it is not asked
 * again for a while (cl_nsq_dir_may_ask()). */
void cl_nsq_dir_granted(struct cl_nsq *q, uint64_t dir, uint64_t asked_ms,
                        uint32_t lease_ms);
void cl_nsq_dir_refused(struct cl_nsq *q, uint64_t dir);
bool cl_nsq_dir_may_ask(struct cl_nsq *q, uint64_t dir);
/* A break of @dir (any kind) ends its delegation; a new session ends all
 * (NULL is fine for both). */
void cl_nsq_dir_broken(struct cl_nsq *q, uint64_t dir);
void cl_nsq_dirs_clear(struct cl_nsq *q);
/* The next inode number reserved to session @session: false when none is
 * left (or the range was another session's). */
bool cl_nsq_ino_take(struct cl_nsq *q, uint64_t session, uint64_t *ino);
/* INO_RESERVE gave session @session [@first, @first + @count). */
void cl_nsq_ino_add(struct cl_nsq *q, uint64_t session, uint64_t first,
                    uint32_t count);
/* Holds (docs/protocol.md §6.22) of files created here.  A file created
 * by a queued MKNOD without HOLD is held here only, by @uid and @gid, who
 * may read it: metad learns of the hold (OPEN with HOLD, queued) before
 * anything but another create is queued or waited for, and at the latest
 * once cl_nsq_holds_due() finds it older than its @age_ms.  A file
 * closed before that costs metad no hold and no RELEASE: cl_nsq_hold_end()
 * is true when the file was held here only (and no longer is). */
void cl_nsq_hold_here(struct cl_nsq *q, uint64_t ino, uint32_t uid,
                      uint32_t gid);
bool cl_nsq_hold_end(struct cl_nsq *q, uint64_t ino);
void cl_nsq_holds_due(struct cl_nsq *q, uint64_t age_ms);
void cl_nsq_stats(struct cl_nsq *q, struct cl_nsq_stats *out);

/* ---- cl_callback.c ----------------------------------------------------- */

/* NULL on out of memory.  Caller owns it: cl_cb_free(). */
struct cl_cb *cl_cb_new(struct cl_client *c, const struct cl_opts *o);
int cl_cb_start(struct cl_cb *b);
/* Stop the workers (answering what they hold); the session must still be
 * open.  Later breaks are answered at once. */
void cl_cb_stop(struct cl_cb *b);
void cl_cb_free(struct cl_cb *b);
/* CALLBACK_BREAK_REQ @req_id on @rpc (reader thread): drop our caches of
 * the inode now, answer from a worker thread. */
void cl_cb_break(struct cl_client *c, struct rpc_client *rpc, uint64_t req_id,
                 const uint8_t *payload, size_t len);
/* The session was replaced: every promise is gone. */
void cl_cb_reset(void *arg);

/* Act on SERVER_STATE (docs/protocol.md §11.7): a server not up leaves
 * the location cache and the lease chains, and is remembered as down. */
void cl_client_server_state(struct cl_client *c, uint32_t server_id,
                            uint32_t state);

/* ---- cl_changes.c ------------------------------------------------------ */

/* OR the written-block map of chunk @loc into @bits (PROTO_WMAP_BYTES);
 * -errno when none can be had. */
typedef int (*cl_wmap_fetch_cb)(void *arg, const struct proto_chunk_loc *loc,
                                uint8_t *bits);
/* Mark in @ch the blocks IMAGE_CHANGES entry @e says may have changed:
 * every block of the slot for WHOLE and ZERO, and for BLOCKS the union of
 * the maps @fetch gives, or every block when one cannot be had.  Entries
 * outside @ch's slots are ignored. */
void cl_changes_apply(struct cl_changes *ch,
                      const struct proto_changes_entry *e,
                      cl_wmap_fetch_cb fetch, void *arg);

/* ---- cl_meta.c --------------------------------------------------------- */

/* Locations of chunks [@first, @first + @count) of @ino from metad, put in
 * the cache.  Indices metad leaves out are cached as holes. */
int cl_meta_locate(struct cl_client *c, uint64_t ino, uint64_t first,
                   uint32_t count);
/* CHUNK_WRITE_BEGIN on (@ino, @index): the lease's chunk in @out. */
int cl_meta_write_begin(struct cl_client *c, uint64_t ino, uint64_t index,
                        struct cl_chunk *out);
/* CHUNK_WRITE_END with @size (0: did not grow) and @mtime_ns. */
int cl_meta_write_end(struct cl_client *c, uint64_t ino, uint64_t index,
                      uint64_t chunk_id, uint64_t size, int64_t mtime_ns);
/* CHUNK_REPORT: replica @server_id of @chunk_id at @version failed for
 * @reason (enum proto_report_reason).  Retries metad's EAGAIN for a
 * while. */
/* RELEASE_REQ of @ino: this session no longer holds it open. */
int cl_meta_release(struct cl_client *c, uint64_t ino);
/* INO_RESERVE_REQ (docs/protocol.md §6.23): @count (1..65536) inode
 * numbers reserved to this session, [*first, *first + *got), for MKNOD
 * with PROTO_MKNOD_INO.  -ENOTCONN without a session, -ENOSYS from a
 * metad that predates it. */
int cl_meta_ino_reserve(struct cl_client *c, uint32_t count, uint64_t *first,
                        uint32_t *got);
/* DIR_DELEGATE of directory @ino (docs/protocol.md §14.3): 0 with the
 * promise lease in *@lease_ms, or -EOPNOTSUPP (no callbacks, or a metad
 * older than protocol version 2), -ENOENT, -ENOTDIR. */
int cl_meta_dir_delegate(struct cl_client *c, uint64_t ino, uint32_t *lease_ms);

/* cl_file.c, for the flusher: RELEASE @n when its hold has lingered long
 * enough (cl_file_release()). */
void cl_file_linger_end(struct cl_client *c, struct cl_inode *n,
                        uint64_t now_ms);
int cl_meta_report(struct cl_client *c, uint32_t server_id, uint64_t chunk_id,
                   uint64_t version, uint32_t reason);

/* ---- cl_chunk.c -------------------------------------------------------- */

/* Read piece @p of @ino into @buf from any replica; a hole reads as
 * zeros.  @prefetch: chunks to locate at once on a cache miss. */
int cl_chunk_read(struct cl_client *c, uint64_t ino, const struct cl_piece *p,
                  uint64_t prefetch, uint8_t *buf);
/* Write piece @p under a write lease of @n, on every replica of its
 * chain, recovering from failed replicas.  The chunk written is copied
 * to @used. */
int cl_chunk_write(struct cl_client *c, struct cl_inode *n,
                   const struct cl_piece *p, const uint8_t *data, bool sync,
                   struct cl_chunk *used);
/* CHUNK_SYNC chunk @index of @n along its chain, recovering likewise. */
int cl_chunk_sync(struct cl_client *c, struct cl_inode *n, uint64_t index);
/* CHUNK_SYNC chunks @index[0..@k) of @n all at once, to every replica of
 * each, under the leases @n holds; a chunk whose sync fails, or with no
 * lease at hand, then goes through cl_chunk_sync().  @rc[i] is chunk i's
 * outcome; returns the first error, or 0.  @during, when not NULL, is
 * called with @arg on the caller's thread while the syncs are in flight
 * (cl_file_sync() reports the size to metad then). */
int cl_chunk_sync_many(struct cl_client *c, struct cl_inode *n,
                       const uint64_t *index, size_t k, int *rc,
                       void (*during)(void *arg), void *arg);
/* CHUNK_TRUNCATE chunk @index of @ino to @length on every replica, under
 * a write lease (recorded in @n when not NULL). */
int cl_chunk_truncate(struct cl_client *c, uint64_t ino, struct cl_inode *n,
                      uint64_t index, uint32_t length);
/* The replicas of @ch from @from on, as a CHUNK_WRITE/SYNC chain in
 * @chain (addresses borrowed from @ch); their count in *@n. */
void cl_chunk_chain_fill(const struct cl_chunk *ch, uint32_t from,
                         struct proto_replica *chain, uint32_t *n);
/* cl_fast.c: send piece @p of @n (the range ends at @end in the file) to
 * every replica of its lease's chain without blocking, when the lease is
 * held, every connection up and no overlapping write in flight: 0 and @cb
 * runs once (with the lease marked dirty and the WRITE_END owed on
 * success), or -EAGAIN and nothing was done. */
int cl_fast_write_piece(struct cl_client *c, struct cl_inode *n,
                        const struct cl_piece *p, uint64_t end,
                        const uint8_t *data, bool sync, cl_done_cb cb,
                        void *arg);
/* ---- cl_wrange.c ------------------------------------------------------- */

/* Take [@off, @end) of @n into @r (owned by the caller until
 * cl_wrange_end()) unless a write in flight or waiting overlaps it: true
 * when taken, false (and nothing done) otherwise.  Never blocks. */
bool cl_wrange_try(struct cl_inode *n, struct cl_wrange *r, uint64_t off,
                   uint64_t end);
/* Take [@off, @end) of @n into @r, waiting until no range taken before it
 * overlaps it. */
void cl_wrange_wait(struct cl_inode *n, struct cl_wrange *r, uint64_t off,
                    uint64_t end);
/* The write of @r is over: give its range back. */
void cl_wrange_end(struct cl_inode *n, struct cl_wrange *r);

/* True for errors a retry on another chain cannot fix. */
bool cl_chunk_error_final(int err);

/* Whether writes to @n may wait in the delayed-write store (the client's
 * policy, and cl_opts.delay_after_sync). */
static inline bool cl_file_delays(const struct cl_client *c,
                                  struct cl_inode *n)
{
    return c->mode != CL_CACHE_WRITETHROUGH && c->cache &&
           (!c->delay_after_sync ||
            __atomic_load_n(&n->synced, __ATOMIC_ACQUIRE));
}

#endif
