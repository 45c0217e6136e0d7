/* chunk_internal.h: interfaces shared inside server/ only.
 *
 * Grouped by the file that implements them.  Nothing here is visible to
 * other folders: the daemon talks to the world only through protocol/.
 */
#ifndef TESSERA_CHUNK_INTERNAL_H
#define TESSERA_CHUNK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "lat.h"
#include "peer.h"
#include "proto.h"

/* ---- chunk_wmap.c ----------------------------------------------------- */

/* Which blocks of a chunk were written since it was created or copied;
 * unknown (bits NULL) when the chunk's history is not known here. */
struct chunk_wmap {
    int fd;
    uint8_t *bits; /* PROTO_WMAP_BYTES, or NULL: unknown */
};

void chunk_wmap_init(struct chunk_wmap *m);
/* Close the file and free the bits (an init-ed map is fine). */
void chunk_wmap_close(struct chunk_wmap *m);
bool chunk_wmap_known(const struct chunk_wmap *m);
/* A new, empty map at @path (borrowed), replacing any; not synced. */
int chunk_wmap_create(struct chunk_wmap *m, const char *path);
/* Open the map at @path: unknown when there is none or it is damaged. */
int chunk_wmap_load(struct chunk_wmap *m, const char *path);
/* True when blocks [@b0, @b0 + @nb) are marked already (or unknown). */
bool chunk_wmap_covers(const struct chunk_wmap *m, uint32_t b0, uint32_t nb);
/* Mark blocks [@b0, @b0 + @nb) written, in the file (not synced) and in
 * memory.  @rwf is 0 or RWF_NOWAIT (then -EAGAIN or -EOPNOTSUPP when the
 * write would block or cannot be tried so: nothing changed).  On another
 * failure the map becomes unknown. */
int chunk_wmap_mark(struct chunk_wmap *m, uint32_t b0, uint32_t nb, int rwf);
int chunk_wmap_sync(struct chunk_wmap *m);
/* Copy the PROTO_WMAP_BYTES bits into @out; -ENODATA when unknown. */
int chunk_wmap_get(const struct chunk_wmap *m, uint8_t *out);
/* Make the map unknown for good (its file emptied), and close it. */
void chunk_wmap_forget(struct chunk_wmap *m);
/* The store in @dir opens: when it was not closed cleanly in this boot
 * of the host, every map is dropped.  Then notes that it runs. */
int chunk_wmap_boot_begin(const char *dir);
/* The store closes cleanly: sync its file system, remove the note. */
void chunk_wmap_boot_end(const char *dir);

/* ---- chunk_store.c ---------------------------------------------------- */

#define CHUNK_BLOCK_SIZE 4096u
#define CHUNK_BLOCKS (PROTO_CHUNK_SIZE / CHUNK_BLOCK_SIZE)

struct chunk_store;

/* Open the store rooted at @dir (created if missing, with dir/chunks).
 * @dir is copied.  Caller owns *out; free with chunk_store_close(). */
int chunk_store_open(const char *dir, struct chunk_store **out);
/* Close @s (NULL is fine).  No operation may be running on it. */
void chunk_store_close(struct chunk_store *s);

/* Every operation below is thread-safe: operations on one chunk are
 * serialized by a per-chunk lock (reads share it).  A version mismatch is
 * -ESTALE (sent as PROTO_EOLDVER), a missing chunk -ENOENT, a stored
 * block failing its checksum -EBADMSG (PROTO_ECHECKSUM). */

/* Create chunk @id at version @new_ver (@old_ver 0), or move it from
 * @old_ver to @new_ver.  Setting the version a chunk already has succeeds,
 * so retries are harmless. */
int chunk_store_setversion(struct chunk_store *s, uint64_t id, uint64_t old_ver,
                           uint64_t new_ver);
/* Read @len bytes at @off of chunk @id at exactly @ver into @buf.  Bytes
 * never written or past the chunk's length read as zeros. */
int chunk_store_read(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint32_t off, uint32_t len, void *buf);
/* Write @len bytes from @buf (borrowed) at @off; with @sync, make them
 * durable before returning.  -ENOSPC leaves the chunk's contents as they
 * were. */
int chunk_store_write(struct chunk_store *s, uint64_t id, uint64_t ver,
                      uint32_t off, const void *buf, uint32_t len, bool sync);
int chunk_store_sync(struct chunk_store *s, uint64_t id, uint64_t ver);

/* The same read and write for the loop thread: they never block.  They
 * give up with -EAGAIN when the store's or the chunk's lock is taken, when
 * the chunk's files are not open in the cache, when the file system
 * would block or does not support RWF_NOWAIT, and (writes) unless the
 * write is whole blocks whose space is already reserved; the caller then
 * does it with chunk_store_read()/_write() on a worker.  A read that gave
 * up changed nothing.  A write that gave up may have written part of its
 * blocks and grown the length: the same write redone whole with
 * chunk_store_write() before anything else touches the chunk leaves data
 * and checksums consistent (chunk_job.c keeps the chunk's lane for it).
 * Any other result is final, as from the blocking calls. */
int chunk_store_read_nowait(struct chunk_store *s, uint64_t id, uint64_t ver,
                            uint32_t off, uint32_t len, void *buf);
int chunk_store_write_nowait(struct chunk_store *s, uint64_t id, uint64_t ver,
                             uint32_t off, const void *buf, uint32_t len);
/* Which writes chunk_store_write_nowait() may do on the loop thread. */
enum chunk_inline_writes {
    /* Only with RWF_NOWAIT (where the file system has buffered nowait
     * writes, as XFS; never on ext4). */
    CHUNK_INLINE_NOWAIT = 0,
    /* Also, where the file system lacks it, as a plain buffered write of
     * at most CHUNK_INLINE_MAX bytes: it only waits when the kernel
     * throttles a writer over vm.dirty_ratio (the default). */
    CHUNK_INLINE_BUFFERED,
    CHUNK_INLINE_OFF, /* every write on a worker */
};
#define CHUNK_INLINE_MAX (64u << 10)
void chunk_store_set_inline_writes(struct chunk_store *s,
                                   enum chunk_inline_writes mode);
/* Fault injection for tests (--fault-read-eio): every read of chunk @id's
 * data fails with -EIO, as from a failing disk.  0 turns it off. */
void chunk_store_set_fault_read_eio(struct chunk_store *s, uint64_t id);
/* For tests: a chunk file with @max links takes no more, as if the file
 * system's limit (EMLINK) were there.  0 (the default): the file
 * system's own. */
void chunk_store_set_link_max(struct chunk_store *s, uint32_t max);
/* Whole-block writes of at least @min bytes go to the disk with O_DIRECT,
 * past the page cache (0: none); the store falls back to buffered writes
 * for good where the file system refuses O_DIRECT. */
void chunk_store_set_direct_writes(struct chunk_store *s, uint32_t min);
/* Set the chunk's length to @length, zeroing everything past it. */
int chunk_store_truncate(struct chunk_store *s, uint64_t id, uint64_t ver,
                         uint32_t length);
/* Delete chunk @id if its version is @ver or older (@ver 0: any).  A
 * chunk that does not exist is already deleted: 0. */
int chunk_store_delete(struct chunk_store *s, uint64_t id, uint64_t ver);
/* The written-block map of chunk @id at exactly @ver into @out
 * (PROTO_WMAP_BYTES): -ENODATA when this copy's history is unknown. */
int chunk_store_wmap(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint8_t *out);
/* The CRC32C of every block of chunk @id at exactly @ver as it reads,
 * from the checksums alone, into @out (PROTO_CRCS_BYTES; docs/protocol.md
 * §12.10). */
int chunk_store_crcs(struct chunk_store *s, uint64_t id, uint64_t ver,
                     uint8_t *out);
/* The data map of chunk @id at exactly @ver into @out (PROTO_WMAP_BYTES):
 * a bit for every block that may hold non-zero data; the others read as
 * zeros (docs/protocol.md §12.9). */
int chunk_store_datamap(struct chunk_store *s, uint64_t id, uint64_t ver,
                        uint8_t *out);

struct chunk_info {
    uint64_t id, version, length;
    uint64_t alloc; /* bytes its data and checksum files take on disk */
};
/* Call @cb for every chunk on disk; stops early when @cb returns non-zero
 * and returns that value. */
typedef int (*chunk_store_list_cb)(const struct chunk_info *ci, void *arg);
int chunk_store_list(struct chunk_store *s, chunk_store_list_cb cb, void *arg);
/* Fill @ci with chunk @id's version and length; -ENOENT when absent. */
int chunk_store_stat(struct chunk_store *s, uint64_t id, struct chunk_info *ci);

/* Bad chunks: once marked, reads, writes, syncs and truncates of chunk @id
 * fail with -EBADMSG until it is deleted or replaced by a staged copy.
 * mark_bad returns 1 when newly marked, 0 when it already was, or
 * -ENOMEM.  The mark, with @reason (enum proto_report_reason, kept for
 * the store's user), outlives a restart: it is a file under DIR/bad. */
struct chunk_bad {
    uint64_t id;
    uint32_t reason;
};
int chunk_store_mark_bad(struct chunk_store *s, uint64_t id, uint32_t reason);
bool chunk_store_is_bad(struct chunk_store *s, uint64_t id);
/* The chunks marked bad, into *out (caller frees) and *n. */
int chunk_store_bad_list(struct chunk_store *s, struct chunk_bad **out,
                         size_t *n);

/* Staged copies (replication): begin creates an empty copy of chunk @id
 * at @ver outside the store, dropping any leftover one; stage_write
 * writes into it as chunk_store_write() does (without sync); commit makes
 * it durable and puts it in place of the chunk, which must be absent or
 * at a version up to @ver (else -ESTALE); abort drops the copy.  Until
 * commit returns 0 the copy is not a chunk: a crash loses it whole. */
int chunk_store_stage_begin(struct chunk_store *s, uint64_t id, uint64_t ver);
int chunk_store_stage_write(struct chunk_store *s, uint64_t id, uint64_t ver,
                            uint32_t off, const void *buf, uint32_t len);
int chunk_store_stage_commit(struct chunk_store *s, uint64_t id, uint64_t ver);
void chunk_store_stage_abort(struct chunk_store *s, uint64_t id);

/* Create chunk @new_id at @new_ver as a copy of chunk @src_id, which must
 * be at exactly @src_ver (else -ESTALE; -ENOENT when absent, -EBADMSG when
 * marked bad), durable before returning.  A reflink where the file system
 * supports it, else a sparse copy.  A chunk @new_id already at @new_ver
 * is a retry: 0; at another version -EEXIST. */
int chunk_store_clone(struct chunk_store *s, uint64_t src_id, uint64_t src_ver,
                      uint64_t new_id, uint64_t new_ver);
/* Test hook: with @on false, clones never try a reflink. */
void chunk_store_set_reflink(struct chunk_store *s, bool on);

/* Open-file cache: at most @max chunks nobody is using keep their files
 * open (0: none; the default is a quarter of RLIMIT_NOFILE, within
 * 16..1024).  Lowering it closes the excess at once. */
void chunk_store_set_cache(struct chunk_store *s, uint32_t max);
/* Chunks idle in the cache now (tests and metrics). */
uint32_t chunk_store_cached(struct chunk_store *s);

/* Bytes of the file system holding the store, and bytes free for it. */
int chunk_store_space(struct chunk_store *s, uint64_t *capacity,
                      uint64_t *free);
/* Number of chunks, counted at open and kept up to date since. */
uint32_t chunk_store_count(struct chunk_store *s);
/* Bytes the chunks' files take on disk (st_blocks), summed at open and
 * kept up to date since; the staged copies are not counted. */
uint64_t chunk_store_allocated(struct chunk_store *s);

/* The figures of chunks whose space on disk changed and that metad has not
 * been told yet (chunk_usage.c), or NULL for a stage.  Owned by @s. */
struct chunk_usage *chunk_store_usage(struct chunk_store *s);

/* ---- chunk_usage.c ---------------------------------------------------- */

/* A set of (chunk id, bytes on disk) figures waiting to be sent to metad,
 * the newest per chunk.  Thread-safe. */
struct chunk_usage;
int chunk_usage_new(struct chunk_usage **out);
void chunk_usage_free(struct chunk_usage *u); /* NULL is fine */
/* Chunk @id (not 0) takes @bytes now; with @keep a figure already waiting
 * for @id stays (it is newer).  0, or -ENOMEM (the figure is lost: the
 * next registration sends every chunk's again). */
int chunk_usage_put(struct chunk_usage *u, uint64_t id, uint64_t bytes,
                    bool keep);
/* Move at most @max waiting figures into @out; returns how many. */
size_t chunk_usage_take(struct chunk_usage *u, struct proto_usage_entry *out,
                        size_t max);
/* Figures waiting. */
size_t chunk_usage_count(struct chunk_usage *u);

/* ---- chunk_rate.c ----------------------------------------------------- */

/* A token bucket that paces background I/O (repair, scrub) to a byte
 * rate.  Plain arithmetic on a caller-supplied clock, so it is tested
 * without a loop.  Not thread-safe: used on the loop thread. */
struct chunk_rate {
    uint64_t bps;   /* bytes per second; 0 = unlimited */
    uint64_t burst; /* most bytes that may go without waiting */
    double tokens;  /* may go negative: a debt paid by waiting */
    uint64_t last_ns;
};
/* Start empty at @now_ns: the first bytes already wait their share. */
void chunk_rate_init(struct chunk_rate *r, uint64_t bps, uint64_t burst,
                     uint64_t now_ns);
void chunk_rate_set(struct chunk_rate *r, uint64_t bps);
/* Take @n bytes at @now_ns; returns how many nanoseconds to wait before
 * using them (0: go now). */
uint64_t chunk_rate_take(struct chunk_rate *r, uint64_t n, uint64_t now_ns);
/* Milliseconds for a uv_timer, rounded up: 0 only for 0. */
uint64_t chunk_rate_ms(uint64_t ns);

/* ---- chunk_main.c ----------------------------------------------------- */

/* The daemon: everything below runs on the loop thread except chunk_job
 * work functions. */
/* Authentication state (chunk_auth.c). */
struct chunk_service_key {
    uint32_t id;
    uint8_t secret[32];
};
struct chunk_auth {
    bool no_auth;        /* --no-auth */
    bool secure;         /* --secure: every link a secure one (§3.7) */
    struct auth_key key; /* this server's identity */
    struct chunk_service_key service[PROTO_AUTH_SERVICE_MAX]; /* newest 1st */
    uint32_t nservice;
};

struct chunk_server {
    uv_loop_t *loop;
    struct chunk_store *store;
    const char *listen_addr;    /* borrowed from argv */
    const char *advertise_addr; /* --advertise, else --listen */
    const char *meta_addr;
    uint8_t uuid[16];
    char name[128]; /* HELLO name: "tessera-chunkd <advertise>" */
    struct peer_listener *listener;
    struct chunk_jobs *jobs;
    struct chunk_chain *chain;
    struct chunk_meta *meta;
    struct chunk_scrub *scrub;
    /* Background I/O: bytes per second (0 = unlimited for repair, and no
     * periodic pass for scrub) and the time between scrub passes. */
    uint64_t repair_bps, scrub_bps;
    uint64_t scrub_interval_s;
    struct chunk_rate repair_rate;  /* shared by every copy in progress */
    bool repair_rate_set;           /* repair_rate initialised */
    struct chunk_repl *replicating; /* copies in progress (chunk_replicate.c) */
    struct http_server *http;       /* --http, or NULL */
    struct chunk_auth auth;
    bool stopping;
};

/* ---- chunk_auth.c ------------------------------------------------------- */

/* Load this server's key (@key_path; NULL fails unless @no_auth).  0 or
 * -errno, logged. */
int chunk_auth_init(struct chunk_server *srv, const char *key_path,
                    bool no_auth);
/* Authenticate the metad link @link (just dialled) with this server's key. */
int chunk_auth_link_cred(struct chunk_server *srv, struct peer *link);
/* Ask metad on @link for the service keys (AUTH_SERVICE). */
void chunk_auth_service_fetch(struct chunk_server *srv, struct peer *link);
/* peer_ops.on_auth of the listener: open the ticket, set the rights. */
int chunk_auth_key(struct peer *p, const struct proto_auth_req *req,
                   uint8_t key[32]);
/* A credential to dial another storage server with: a ticket this server
 * seals for itself.  -EKEYREJECTED before the service keys arrived. */
int chunk_auth_cred(struct chunk_server *srv, struct auth_cred *out);
/* May @p send request @opcode?  0, -EROFS (read-only), -EPERM. */
int chunk_auth_allowed(const struct chunk_server *srv, struct peer *p,
                       uint16_t opcode);

/* ---- chunk_metrics.c -------------------------------------------------- */

/* Serve /metrics on @addr (--http) from the loop; sets srv->http.  Stop
 * it with http_server_stop(srv->http).  0 or -errno (logged). */
int chunk_metrics_start(struct chunk_server *srv, const char *addr);

/* ---- chunk_dispatch.c ------------------------------------------------- */

/* Close every accepted client and server connection (on stop). */
void chunk_dispatch_close_all(void);

/* Hooks for every peer of the daemon (accepted, dialled downstream, and
 * the metad link, which supplies its own on_ready/on_close).  peer_data()
 * or the listener data is the struct chunk_server. */
extern const struct peer_ops chunk_peer_ops;
void chunk_dispatch(struct peer *p, uint16_t opcode, uint64_t req_id,
                    const uint8_t *payload, size_t len);
struct chunk_server *chunk_server_of(struct peer *p);

/* A request being answered later.  chunk_req_start() takes a reference
 * on @p; chunk_req_finish() answers and drops it. */
struct chunk_req {
    struct peer *p;
    uint64_t req_id;
    uint16_t rep_opcode;
    struct lat_stage *stage; /* timed kind (reads, writes, syncs) or NULL */
    uint64_t t0;             /* lat_now_ns() at the start */
};
/* Register the latency stages of requests and jobs (startup, once). */
void chunk_stats_register(void);
void chunk_req_start(struct chunk_req *r, struct peer *p, uint16_t opcode,
                     uint64_t req_id);
/* Answer with @status (0 or -errno: -ESTALE goes out as PROTO_EOLDVER,
 * -EBADMSG as PROTO_ECHECKSUM).  @payload is copied. */
void chunk_req_finish(struct chunk_req *r, int status, const void *payload,
                      size_t len);
/* The same for an answer given at once, inside on_request. */
void chunk_reply(struct peer *p, uint16_t opcode, uint64_t req_id, int status,
                 const void *payload, size_t len);

/* Handlers: @payload is borrowed (valid only during the call). */
typedef void (*chunk_handler_cb)(struct chunk_server *srv, struct peer *p,
                                 uint64_t req_id, const uint8_t *payload,
                                 size_t len);

/* ---- chunk_job.c ------------------------------------------------------ */

/* Disk work on the libuv thread pool, in arrival order per chunk: a job
 * starts once every earlier exclusive job on its chunk finished, and an
 * exclusive job also waits for earlier shared ones.  A job that can start
 * at once is first tried on the loop thread (@run_nowait). */
struct chunk_job {
    uv_work_t work;
    struct chunk_server *srv;
    uint64_t chunk_id;
    bool shared; /* a read: may overlap other shared jobs */
    /* Runs on a worker thread; its result goes to @done. */
    int (*run)(struct chunk_job *j);
    /* Optional (NULL: always @run).  Runs on the loop thread, inside
     * chunk_job_submit(), when the job could start at once; it MUST NOT
     * block.  -EAGAIN sends the job on to @run as usual, which must then
     * redo whatever the try did; any other value is the job's result and
     * goes to @done at once. */
    int (*run_nowait)(struct chunk_job *j);
    /* Runs on the loop thread; owns @j from then on (frees it). */
    void (*done)(struct chunk_job *j, int rc);
    struct chunk_job *next; /* queue link, private */
    uint64_t t_queued;      /* lat_now_ns() when sent to the pool, private */
};

struct chunk_jobs;
/* Caller owns *out; free with chunk_jobs_free() once no job is queued. */
int chunk_jobs_new(uv_loop_t *loop, struct chunk_jobs **out);
void chunk_jobs_free(struct chunk_jobs *js);
/* Queue @j (filled in by the caller, who keeps ownership until @done).
 * Returns 0, or -ENOMEM (then @done is never called).  @done may run
 * before this returns (the job completed inline): the caller must not
 * touch @j after a 0. */
int chunk_job_submit(struct chunk_jobs *js, struct chunk_job *j);
void chunk_job_stats_register(void);

/* ---- chunk_chain.c ---------------------------------------------------- */

/* Dialled connections to the other replicas of replication chains, one
 * per address, reused across requests. */
struct chunk_chain;
int chunk_chain_new(struct chunk_server *srv, struct chunk_chain **out);
/* Close every connection; the cache frees itself once they are closed
 * (NULL is fine). */
void chunk_chain_close(struct chunk_chain *c);
/* Send request @opcode with @payload (copied) to @addr (borrowed), dialling
 * it first if needed.  As peer_request(): on error @cb is never called. */
int chunk_chain_request(struct chunk_chain *c, struct proto_str addr,
                        uint16_t opcode, const void *payload, size_t len,
                        peer_reply_cb cb, void *arg);

/* ---- chunk_read.c, chunk_write.c, chunk_manage.c ---------------------- */

/* The body of CHUNK_WRITE_REQ @m (decoded from @payload, @len bytes, which
 * it points into) as forwarded to every replica of m->chain: the same
 * fields with an empty chain (nchain 0), followed by the data; one body
 * for all of them.  *body (*body_len bytes) lies in a new allocation
 * *out, which the caller owns (free with free()); *data is where the data
 * starts in the body: page-aligned when it is FWD_ALIGN_MIN bytes or more,
 * for direct writes. */
#define FWD_ALIGN 4096u
#define FWD_ALIGN_MIN (64u << 10)
int chunk_write_fwd_build(const uint8_t *payload, size_t len,
                          const struct proto_chunk_write_req *m, void **out,
                          const uint8_t **body, size_t *body_len,
                          const uint8_t **data);

void chunk_read_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_write_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_sync_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_setversion_handle(struct chunk_server *srv, struct peer *p,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len);
void chunk_truncate_handle(struct chunk_server *srv, struct peer *p,
                           uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_delete_handle(struct chunk_server *srv, struct peer *p,
                         uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_clone_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len);
/* chunk_wmap_req.c */
void chunk_wmap_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_datamap_handle(struct chunk_server *srv, struct peer *p,
                          uint64_t req_id, const uint8_t *payload, size_t len);
void chunk_crcs_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len);

/* ---- chunk_replicate.c ------------------------------------------------ */

struct chunk_repl;
void chunk_replicate_handle(struct chunk_server *srv, struct peer *p,
                            uint64_t req_id, const uint8_t *payload,
                            size_t len);

/* ---- chunk_scrub.c ---------------------------------------------------- */

#define CHUNK_SCRUB_DEFAULT_BPS (8ull << 20)

struct chunk_scrub;
struct chunk_scrub_stats {
    uint64_t passes;                  /* passes finished */
    uint64_t chunks, bytes, errors;   /* of the current or last pass */
    uint64_t total;                   /* chunks it lists, 0 while listing */
    int64_t last_start_s, last_end_s; /* wall clock; 0 = never */
    bool running;
};
/* Start the periodic scrubber of @srv (srv->scrub_bps, scrub_interval_s):
 * a pass every interval, none when scrub_bps is 0.  Sets srv->scrub. */
int chunk_scrub_start(struct chunk_server *srv);
/* Start a pass now at @bps (0: the server's default); a pass already
 * running starts again from the first chunk at the new rate. */
void chunk_scrub_pass(struct chunk_scrub *sc, uint64_t bps);
void chunk_scrub_get_stats(const struct chunk_scrub *sc,
                           struct chunk_scrub_stats *st);
/* Stop; frees itself once its handles and job are done (NULL is fine). */
void chunk_scrub_stop(struct chunk_scrub *sc);
void chunk_scrub_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len);

/* ---- chunk_meta.c ----------------------------------------------------- */

/* The link to metad: register, inventory, heartbeats, redial forever. */
struct chunk_meta;
int chunk_meta_start(struct chunk_server *srv, struct chunk_meta **out);
/* Close the link and stop redialling; frees itself once its handles are
 * closed (NULL is fine). */
void chunk_meta_stop(struct chunk_meta *m);
/* A replica here is bad (@reason: enum proto_report_reason): mark it so
 * it is no longer served and, the first time, log it and queue a
 * CHUNK_REPORT_REQ to metad, sent (and resent after a reconnect) until
 * metad answers.  Loop thread only. */
void chunk_meta_report_bad(struct chunk_server *srv, uint64_t chunk_id,
                           uint64_t version, uint32_t reason);

#endif
