/* cl.h: the Tessera client library, shared by tessera-mount and
 * tessera-nbd.
 *
 * A struct cl_client is one session with metad (SESSION_OPEN, renewed in
 * the background, reopened after a reconnect) plus everything the data
 * path keeps between requests: the chunk location cache, the table of open
 * inodes with their write leases and dirty chunks, and one connection per
 * chunk server.  On top of it, cl_file_*() read, write, sync, truncate and
 * zero the bytes of an inode over chunks (docs/architecture.md, "Data
 * flow"), failing over between replicas and recovering from failed ones
 * (docs/protocol.md §11.4, §11.7).
 *
 * Every function but the fast path's blocks and is thread-safe: the FUSE
 * mount calls them from its worker threads, the NBD export from its request
 * threads.  The fast path (cl_file_*_async) sends and returns; the reply
 * completes it on the thread that reads the chunk server's connection.
 * Nothing here knows about libfuse or NBD.
 */
#ifndef TESSERA_CL_H
#define TESSERA_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "auth_caps.h"
#include "proto.h"
#include "rpc.h"

/* Longest "host:port" of a chunk server kept; longer ones are refused as
 * a protocol error. */
#define CL_ADDR_MAX 64

/* Where one chunk of a file lives: a copy of a struct proto_chunk_loc that
 * owns its strings.  chunk_id 0 is a hole (nreplicas 0). */
struct cl_chunk {
    uint64_t index;
    uint64_t chunk_id;
    uint64_t version;
    uint32_t nreplicas;
    uint32_t server_id[PROTO_MAX_REPLICAS];
    char addr[PROTO_MAX_REPLICAS][CL_ADDR_MAX];
};

struct cl_client;
struct cl_inode;

/* How writes reach the storage servers (docs/caching.md). */
enum cl_cache_mode {
    CL_CACHE_WRITETHROUGH = 0, /* write() returns once on every replica */
    CL_CACHE_WRITEBACK = 1,    /* delayed: interval, dirty_max, fsync, close */
    CL_CACHE_WRITEONCLOSE = 2, /* delayed until close or fsync */
};

/* A callback break from metad (PROTO_CB_* @flags) for @ino, after the
 * client's own caches dropped it; @name (borrowed) names the entry of a
 * directory for PROTO_CB_ENTRY, else "".  Runs on a client thread that
 * is not the caller's; metad gets its answer when this returns. */
typedef void (*cl_break_cb)(void *arg, uint64_t ino, uint32_t flags,
                            const char *name);

struct cl_opts {
    const char *meta;         /* metad "host:port"; borrowed during open */
    const char *name;         /* session and HELLO name; borrowed during open */
    uint8_t role;             /* PROTO_ROLE_CLIENT or PROTO_ROLE_NBD */
    enum cl_cache_mode cache; /* 0: write-through */
    /* With a delayed policy: the writes to a file go through as in
     * write-through until its first successful cl_file_sync(), which shows
     * a writer that flushes (librbd's "writethrough until flush"). */
    bool delay_after_sync;
    uint32_t flush_interval_ms; /* writeback scan; 0: CL_FLUSH_INTERVAL_MS */
    uint64_t dirty_max;         /* bytes; 0: CL_DIRTY_MAX */
    /* Fast writes of up to this many bytes go straight to every replica
     * (one round trip); larger ones, and all when 0, down the chain (two
     * round trips, the client sends its bytes once).  docs/performance.md
     * measures both. */
    uint32_t direct_write_max;
    bool callbacks;             /* register for callback breaks */
    /* The identity's credentials (cl_auth_open(); borrowed, must outlive
     * the client); NULL: no authentication (a --no-auth cluster). */
    struct cl_auth *auth;
    cl_break_cb on_break;       /* NULL: only the client's caches drop */
    void *break_arg;
};

#define CL_FLUSH_INTERVAL_MS 5000
#define CL_DIRTY_MAX (256ull << 20)
#define CL_CLOSE_FLUSH_MS 20000
/* While closing, how long metad may be away (down, or silent) before the
 * calls to it give up: the last RELEASEs, WRITE_ENDs and SESSION_CLOSE
 * are then left to the session's expiry (rpc_client_wind_down()).  Long
 * enough for a metad group to elect a new leader. */
#define CL_CLOSE_META_MS 5000

/* ---- Client (cl_client.c) ---------------------------------------------- */

/* Connect to metad, open a session and set up the data path.  Caller owns
 * *out: cl_client_close().  -errno when metad cannot be reached. */
int cl_client_open(const struct cl_opts *opts, struct cl_client **out);
/* Write back the delayed writes and owed CHUNK_WRITE_END of every inode
 * still open (for at most CL_CLOSE_FLUSH_MS; what fails or is left is
 * logged as lost), end the session and free @c (NULL is fine).  Calls to
 * metad give up once it has been away for CL_CLOSE_META_MS.  No call
 * may be running.  When the write-back does not finish in time @c is
 * left allocated, still in use by it: only a process about to exit may
 * close a client with open inodes. */
void cl_client_close(struct cl_client *c);
uint64_t cl_client_session(struct cl_client *c);
/* What identity @name (borrowed) may reach, asked of metad over @c's
 * session (cl_auth_rights()): the session's own identity needs the proxy
 * capability to ask for another's.  0, -ENOENT for no such identity,
 * -EPERM, or another -errno. */
int cl_client_rights(struct cl_client *c, const char *name,
                     struct auth_caps *out);
/* Bytes of delayed writes held now (0 when writes are not delayed).  Any
 * thread. */
uint64_t cl_client_dirty(struct cl_client *c);
/* Check that metad at @addr answers the handshake (as @auth, which may
 * be NULL), then hang up. */
int cl_probe(const char *addr, uint8_t role, struct cl_auth *auth);

/* ---- Credentials (cl_auth.c) --------------------------------------------- */

struct cl_auth;
/* Load key file @path (NULL: no key; *out is NULL and 0 returned).  The
 * errors of auth_key_load(): -EPERM for a file others may read.  Caller
 * owns *out: cl_auth_free(). */
int cl_auth_open(const char *path, struct cl_auth **out);
void cl_auth_free(struct cl_auth *a);
/* The identity's name ("" for NULL).  Owned by @a. */
const char *cl_auth_name(const struct cl_auth *a);
/* Make every connection made with @a's credentials a secure link
 * (docs/protocol.md §3.7): to metad and to the storage servers. */
void cl_auth_set_secure(struct cl_auth *a, bool on);
/* rpc_opts.get_cred with @arg a struct cl_auth: the key, for metad. */
int cl_auth_key_cred(void *arg, struct auth_cred *out);
/* The same with the current ticket, for chunk servers (-EKEYREJECTED
 * before the first ticket). */
int cl_auth_ticket_cred(void *arg, struct auth_cred *out);
/* Fetch a ticket over @rpc, a connection to metad authenticated as @a
 * (@raw: rpc_call_raw(), inside a reconnect hook). */
int cl_auth_ticket_fetch(struct cl_auth *a, struct rpc_client *rpc, bool raw);
/* auth_open() of @sealed with the identity's key. */
int cl_auth_unseal(const struct cl_auth *a, const char *label,
                   const uint8_t *sealed, size_t n, uint8_t *out, size_t size);
/* The capabilities of identity @name, asked of metad over @rpc (AUTH_LIST
 * of one name: an admin, a `proxy` or the identity itself may ask).  0,
 * -ENOENT (no such identity), -EPERM, -errno. */
int cl_auth_rights(struct rpc_client *rpc, const char *name,
                   struct auth_caps *out);
/* True when the ticket is missing or past half its life. */
bool cl_auth_ticket_due(struct cl_auth *a);

/* ---- Requests to metad (cl_meta.c) -------------------------------------- */

/* Call metad with the request encoded in @req (borrowed) and decode the
 * reply into @out, once the namespace changes queued before it are
 * applied (cl_ns_push()).  On 0 the caller owns @rep (borrowed fields of
 * @out point into it): rpc_reply_free().  On error @rep is empty. */
int cl_meta_call(struct cl_client *c, uint16_t opcode, struct proto_wbuf *req,
                 struct rpc_reply *rep, void *out);
/* The same for a request that reads or changes inode @ino alone: it waits
 * only for the queued changes it may depend on (cl_nsq_wait_on()).  Not
 * for a LOOKUP: the inode whose attributes it returns is not known before
 * (a queued UNLINK of another name of it changes its link count). */
int cl_meta_call_on(struct cl_client *c, uint64_t ino, uint16_t opcode,
                    struct proto_wbuf *req, struct rpc_reply *rep, void *out);
/* The same at once, for a request no queued change can matter to. */
int cl_meta_call_now(struct cl_client *c, uint16_t opcode,
                     struct proto_wbuf *req, struct rpc_reply *rep, void *out);
/* GETATTR without credentials. */
int cl_meta_getattr(struct cl_client *c, uint64_t ino, struct proto_attr *out);
/* LOOKUP of @name (borrowed) under @parent as @cred. */
int cl_meta_lookup(struct cl_client *c, const struct proto_cred *cred,
                   uint64_t parent, const char *name, struct proto_attr *out);

/* ---- Open inodes (cl_handle.c) ----------------------------------------- */

/* Take a reference on open inode @ino, creating it with @size (or raising
 * its known size to @size).  Caller owns the reference: cl_inode_put(). */
int cl_inode_open(struct cl_client *c, uint64_t ino, uint64_t size,
                  struct cl_inode **out);
/* The open inode @ino with a reference taken, or NULL when none is open. */
struct cl_inode *cl_inode_find(struct cl_client *c, uint64_t ino);
/* Drop a reference (NULL is fine); the inode goes with the last one. */
void cl_inode_put(struct cl_client *c, struct cl_inode *n);
uint64_t cl_inode_ino(const struct cl_inode *n);
/* Raise the known size to @size if larger; returns the size now known. */
uint64_t cl_inode_grow(struct cl_inode *n, uint64_t size);
/* The same with @size just reported by metad: without callbacks a read
 * past the size asks metad again only CL_SIZE_CHECK_MS later. */
uint64_t cl_inode_grow_seen(struct cl_inode *n, uint64_t size);
void cl_inode_set_size(struct cl_inode *n, uint64_t size);
uint64_t cl_inode_size(struct cl_inode *n);
/* @n's delayed writes not written back yet, in 512-byte blocks: space the
 * file will take that metad's attributes do not count yet. */
uint64_t cl_inode_dirty_blocks(struct cl_inode *n);
/* Wall clock (ns) of this client's latest write to @n, 0 when none: the
 * mtime metad will record with the deferred WRITE_END. */
int64_t cl_inode_wmtime(struct cl_inode *n);

/* An open inode's attributes, kept so that a GETATTR of a file open here
 * is answered without metad.  Noted from a reply that granted or renewed
 * a promise on @n (OPEN, a create, SETATTR, WRITE_END), asked when the
 * callback epoch was @epoch and the attribute generation @gen: kept only
 * when neither moved since (a break or a forget in between voids it), and
 * only over an older version, until @until_ms.  A break of the inode
 * (cl_callback.c), cl_inode_attr_forget() and cl_attr_forget_all() end
 * them.  What the kept attributes lack is this client's own writes since:
 * callers merge cl_inode_grow_seen() and cl_inode_wmtime() in. */
void cl_inode_attr_note(struct cl_client *c, struct cl_inode *n,
                        const struct proto_attr *a, bool writer,
                        uint64_t epoch, uint64_t gen, uint64_t forgets,
                        uint64_t until_ms);
/* @n's forget count, taken with cl_attr_gen() before a request whose reply
 * is noted: a cl_inode_attr_forget() in between voids the note. */
uint64_t cl_inode_attr_forgets(struct cl_inode *n);
/* The attributes kept, when still good at @now_ms: into *@out, and until
 * when into *@until_ms.  With @writer, only when one of the replies since
 * the last break made the promise a writer's (@writer of a note: an OPEN
 * for writing, a create, a WRITE_END; metad keeps that mark until the
 * promise ends). */
bool cl_inode_attr_get(struct cl_client *c, struct cl_inode *n,
                       uint64_t now_ms, bool writer, struct proto_attr *out,
                       uint64_t *until_ms);
void cl_inode_attr_forget(struct cl_inode *n);
/* The attribute generation, taken before a request whose reply is noted;
 * and its move, for a change of ours whose effect on some open inode's
 * attributes (an unlink's nlink, a rename's ctime) is not followed. */
uint64_t cl_attr_gen(struct cl_client *c);
void cl_attr_forget_all(struct cl_client *c);

/* Open handles metad holds a file for (docs/protocol.md §6.22), so that
 * an unlinked file lives while open.  Around an OPEN or MKNOD with HOLD of
 * @n: cl_inode_hold_begin(), the request, then cl_inode_hold_end() with
 * @held true when it succeeded and metad holds the file (a regular file).
 * Each handle that counted is closed with cl_file_release(). */
void cl_inode_hold_begin(struct cl_inode *n);
/* Between cl_inode_hold_begin() and cl_inode_hold_end(): whether metad
 * holds @n for this session already (a handle is open, or the last one's
 * linger is on), or will (a hold answered here, cl_nsq.c), so that a new
 * handle needs no OPEN to hold it.  Not after a new session, until an
 * OPEN with HOLD succeeded again. */
bool cl_inode_held(struct cl_inode *n);
void cl_inode_hold_end(struct cl_client *c, struct cl_inode *n, bool held);

/* ---- File bytes (cl_file.c) --------------------------------------------- */

/* Read up to @len bytes at @off of @n into @buf, clamped to the size
 * known: returns the count or -errno. */
int cl_file_read(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 size_t len, uint8_t *buf);
/* Write @len bytes of @buf (borrowed) at @off; with @sync every replica
 * makes them durable first.  Returns @len (or the bytes written before an
 * error) or -errno. */
int cl_file_write(struct cl_client *c, struct cl_inode *n, uint64_t off,
                  const uint8_t *buf, size_t len, bool sync);
/* Write back @n's delayed writes, then the pending CHUNK_WRITE_END (size
 * and mtime to metad).  Under write-through it is cl_file_sync().  Returns
 * the first error of a delayed write since the last flush or sync (then
 * forgotten), or this flush's own. */
int cl_file_flush(struct cl_client *c, struct cl_inode *n);
/* Before a SETATTR that sets @n's mtime (utimensat, touch, cp -p): write
 * back its delayed writes and send their WRITE_END now, so that none
 * lands at metad after the new time.  A failure stays for the file's
 * next fsync or close. */
void cl_file_mtime_prepare(struct cl_client *c, struct cl_inode *n);
/* After that SETATTR: the time of this client's last write no longer
 * stands over metad's mtime (cl_inode_wmtime()), until its next write. */
void cl_file_mtime_done(struct cl_inode *n);
/* Write back @n's delayed writes, CHUNK_SYNC every chunk of @n written
 * since the last sync, then CHUNK_WRITE_END.  Reports a delayed write's
 * earlier error like cl_file_flush().  Concurrent syncs of one inode run one
 * after the other, so a sync returns only when every write that returned before
 * it started is durable. */
int cl_file_sync(struct cl_client *c, struct cl_inode *n);
/* A handle on @n closes: when it was counted by cl_inode_hold_end()
 * (@held) and was the last, RELEASE tells metad CL_LINGER_MS later unless
 * the file is opened again meanwhile (metad then reclaims the file if it
 * was unlinked; a failure is logged, metad drops the hold with the
 * session anyway).  The handle's reference goes with it. */
void cl_file_release(struct cl_client *c, struct cl_inode *n, bool held);
/* Before a SETATTR shrinking @ino from @old_size to @new_size: zero the
 * boundary chunk's tail on every replica.  @n may be NULL. */
int cl_file_truncate_prepare(struct cl_client *c, uint64_t ino,
                             struct cl_inode *n, uint64_t old_size,
                             uint64_t new_size);
/* After a successful SETATTR to @new_size: forget what lies past it. */
void cl_file_truncate_done(struct cl_client *c, uint64_t ino,
                           struct cl_inode *n, uint64_t new_size);
/* Make [@off, @off + @len) read as zeros, below the size known.  Holes
 * are skipped; a range reaching the end of a chunk (or of the file) is
 * cut off with CHUNK_TRUNCATE, which lets the servers free the space;
 * the rest is written with zeros. */
int cl_file_zero(struct cl_client *c, struct cl_inode *n, uint64_t off,
                 uint64_t len);
/* The location of chunk @index of @ino, from the cache or from metad
 * (prefetching @prefetch chunks). */
int cl_file_locate(struct cl_client *c, uint64_t ino, uint64_t index,
                   uint64_t prefetch, struct cl_chunk *out);

/* ---- Allocation (cl_alloc.c) -------------------------------------------- */

/* One run of cl_file_alloc(): @len bytes that may hold data (@data) or
 * read as zeros.  Return 0 to go on, > 0 to stop, -errno to stop with it. */
typedef int (*cl_alloc_cb)(void *arg, uint64_t len, bool data);

/* Chunk slots one cl_file_alloc() looks at, at most. */
#define CL_ALLOC_MAX_SLOTS 4096

/* Describe [@off, @off + @len) of @n as runs of data and holes, in order,
 * adjoining runs of one kind merged, by chunk slot: a slot is a hole when
 * the chunk map names no chunk for it and no delayed write of this client
 * lies in it.  Looks at CL_ALLOC_MAX_SLOTS slots at most, so the runs may
 * cover less than @len.  0 (also when @cb stopped the walk with > 0), or
 * -errno from metad or from @cb. */
int cl_file_alloc(struct cl_client *c, struct cl_inode *n, uint64_t off,
                  uint64_t len, cl_alloc_cb cb, void *arg);

/* ---- Block checksums (cl_crcs.c) ---------------------------------------- */

/* The CRC32C of each 4 KiB block of slot @index of @ino as it reads, from
 * the servers' checksums (a hole: a zero block's), big-endian into @out
 * (PROTO_CRCS_BYTES). */
int cl_file_crcs(struct cl_client *c, uint64_t ino, uint64_t index,
                 uint8_t *out);

/* ---- Changes between files (cl_changes.c) ------------------------------- */

/* The PROTO_WMAP_BLOCK-sized blocks of chunk slots [first, first + count)
 * of file @to that may differ from file @from (docs/vmdisk.md,
 * "Incremental diffs"): never one too few, maybe some too many. */
struct cl_changes {
    uint64_t from_size, to_size;
    uint64_t first;
    uint32_t count;
    uint8_t *bits; /* count * PROTO_WMAP_BYTES, one bit per block */
};

/* Ask metad and the chunk servers; @count 1..PROTO_LOCATE_MAX.  Caller
 * owns *out: cl_changes_free(). */
int cl_changes_get(struct cl_client *c, uint64_t from, uint64_t to,
                   uint64_t first, uint32_t count, struct cl_changes *out);
void cl_changes_free(struct cl_changes *ch);
/* True when block @block of the file (offset / PROTO_WMAP_BLOCK) may have
 * changed; false outside the slots asked for. */
bool cl_changes_block(const struct cl_changes *ch, uint64_t block);

/* Give slot @index of @ino a chunk of its own: copy-on-write of a shared
 * chunk without writing a byte (CHUNK_WRITE_BEGIN).  `tessera image
 * flatten` calls it for every allocated slot. */
int cl_file_unshare(struct cl_client *c, uint64_t ino, uint64_t index);

/* ---- The fast path (cl_fast.c) ------------------------------------------ */

/* Completion of a fast operation: 0, or -errno after which the caller runs
 * the same operation on the blocking path (cl_file_read/cl_file_write). */
typedef void (*cl_done_cb)(void *arg, int status);

/* Start reading @len bytes at @off of @n into @buf without blocking: only
 * when the range lies in one chunk whose location is cached, below the size
 * known, meeting no delayed write, and a replica's connection is up.  0 when
 * started: @cb runs exactly once, on a client thread or before this
 * returns, and @buf (and @n) must stay valid until then.  -EAGAIN when the
 * fast path cannot take it (nothing was done; @cb is never called). */
int cl_file_read_async(struct cl_client *c, struct cl_inode *n, uint64_t off,
                       uint32_t len, uint8_t *buf, cl_done_cb cb, void *arg);
/* Start writing @len bytes of @buf at @off of @n likewise (with @sync every
 * replica makes them durable first), inside one chunk.  Under a delayed
 * policy and without @sync, the bytes join the delayed writes at once (not
 * over dirty_max) and @cb sees 0 before this returns.  Otherwise only with
 * the chunk's write lease held and every replica connected: @cb sees 0
 * once the bytes are on every replica.  Either way they count for the next
 * cl_file_sync() as any write does.  -EAGAIN as for reads. */
int cl_file_write_async(struct cl_client *c, struct cl_inode *n, uint64_t off,
                        uint32_t len, const uint8_t *buf, bool sync,
                        cl_done_cb cb, void *arg);

/* Register the fast path's latency stages with lat.h (startup, once). */
void cl_stats_register(void);

/* ---- Namespace changes answered locally (cl_ns.c) ----------------------- */

/* Until when (cl_now_ms()) directory @dir is delegated to the session
 * (docs/caching.md, "Delegated directories"): 0 when it is not. */
uint64_t cl_ns_dir_until(struct cl_client *c, uint64_t dir);
/* DIR_DELEGATE of @dir: 0, or -errno (-EOPNOTSUPP without callbacks). */
int cl_ns_dir_delegate(struct cl_client *c, uint64_t dir);
/* A new inode number reserved to the session (INO_RESERVE when none is
 * left): 0 or -errno. */
int cl_ns_ino_new(struct cl_client *c, uint64_t *ino);
/* Queue the change @opcode (@w's payload, copied) in delegated directory
 * @dir to inode @ino (created or unlinked; 0: not known), for metad in
 * order behind the others; 0, or -ESTALE when @dir is not delegated (any
 * more): then send it the ordinary way. */
int cl_ns_push(struct cl_client *c, uint64_t dir, uint64_t ino,
               uint16_t opcode, const struct proto_wbuf *w);
/* File @ino, just created by a queued MKNOD without HOLD by @uid and @gid
 * (who may read it), is open here: metad learns of the hold only when it
 * may matter (client/cl_nsq.c), and a file closed before that needs no
 * RELEASE. */
void cl_ns_hold_here(struct cl_client *c, uint64_t ino, uint32_t uid,
                     uint32_t gid);
/* Wait until every change queued so far is applied: 0, or -EIO (once)
 * when metad refused one. */
int cl_ns_sync(struct cl_client *c);
struct cl_ns_stats {
    uint64_t queued; /* not applied yet */
    uint64_t answered, sent, resent, failed; /* since the client opened */
};
void cl_ns_stats(struct cl_client *c, struct cl_ns_stats *out);

/* ---- Cache coherence (cl_callback.c) ------------------------------------ */

/* True when the session caches under callbacks (registered at metad). */
bool cl_cb_enabled(struct cl_client *c);
/* How long (ms) a promise lasts once granted, 0 without callbacks: what
 * the kernel caches on the strength of one must not outlive it. */
uint32_t cl_cb_promise_ms(struct cl_client *c);
/* How long what a reply told may be kept: well inside the promise it
 * renewed (half of it), and at most CL_CB_KEEP_MAX_MS. */
#define CL_CB_KEEP_MAX_MS 30000
uint32_t cl_cb_keep_ms(struct cl_client *c);
/* Counter of breaks received: a reply that arrived while it moved may
 * describe a state a break has already invalidated. */
uint64_t cl_cb_epoch(struct cl_client *c);
/* Counter of new sessions (cl_cb_reset): each loses every promise, with
 * no break for what the owner cached on their strength. */
uint64_t cl_cb_resets(struct cl_client *c);
/* At open of @ino at @version: true when the pages cached for it
 * describe that version (keep them); records @version as cached. */
bool cl_cb_open(struct cl_client *c, uint64_t ino, uint64_t version);
/* Our own change moved @ino to @version: cached pages still match. */
void cl_cb_note(struct cl_client *c, uint64_t ino, uint64_t version);

/* Map an error from a chunk server or metad on the data path to what an
 * application may see: ENOSPC, EDQUOT, EFBIG, EROFS, EACCES, EPERM,
 * ENOENT and ENOMEM pass, everything else is EIO.  @err is -errno. */
int cl_errno(int err);
/* Milliseconds of CLOCK_MONOTONIC, and nanoseconds of wall clock. */
uint64_t cl_now_ms(void);
int64_t cl_now_ns(void);

#endif
