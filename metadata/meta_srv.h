/* meta_srv.h: the daemon around the metadata engine, shared by
 * meta_main.c and the meta_server.c / meta_srv_*.c files only.
 *
 * The engine (meta.h) is a pure state machine over SQLite.  This side owns
 * everything that lives in memory and on the network: connections, session
 * lease deadlines, the storage servers' liveness and control channels,
 * chunk write leases, in-flight version bumps and background deletes.  All
 * of it runs on one libuv loop thread, the same thread that touches the
 * database.
 */
#ifndef TESSERA_META_SRV_H
#define TESSERA_META_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth_caps.h"
#include "meta.h"
#include "meta_live.h"
#include "meta_optab.h"
#include "meta_propose.h"
#include "meta_raft.h"
#include "peer.h"
#include "proto.h"

#define META_SRV_VERSION "0.1.0"
#define META_SRV_TICK_MS 1000         /* session expiry, leases, GC */
#define META_SRV_LEASE_MS 60000       /* restart grace: the longest lease */
#define META_SRV_WRITE_LEASE_MS 60000 /* chunk write lease */
#define META_SRV_CTL_TIMEOUT_MS 5000  /* requests to storage servers */
#define META_SRV_GC_BATCH 256         /* deletes per GC round */
/* A CHUNK_DELETE waits on the server's thread pool behind client I/O and
 * then syncs a directory: under load it takes seconds, and giving up early
 * gains nothing (the entry is simply sent again next round). */
#define META_SRV_GC_TIMEOUT_MS 30000
#define META_SRV_WRITE_RETRIES 5      /* CHUNK_SET -ESTALE restarts */
#define META_SRV_LIVE_TICK_MS 250     /* liveness checks */
#define META_SRV_SUSPECT_MS 1500      /* heartbeat age: suspect, probe */
#define META_SRV_DOWN_MS 5000         /* heartbeat age: down */
#define META_SRV_PROBE_MS 1000        /* are-you-up probe timeout */
#define META_SRV_NOTIFY_MS 2000       /* SERVER_STATE to clients */
#define META_SRV_REPAIR_RATE 4        /* copies in flight */
#define META_SRV_CHUNK_POOL 8         /* chunks created ahead, per count */
#define META_SRV_CHUNK_POOL_MAX 1024
/* A metad that starts leading hands out new chunk ids from this far above
 * the highest recorded one: the ids an earlier leader (or this one
 * before a restart) gave to chunks it never recorded may exist on the
 * servers, a copy-on-write copy with data in it, and a server answers a
 * creation of an id it holds at version 1 as a retry (meta_server.c,
 * lead_begin()). */
#define META_SRV_CHUNK_ID_GAP (1ull << 20)
#define META_SRV_REPAIR_MBPS 100      /* repair and rebalance budget */
#define META_SRV_REPLICATE_MS 120000  /* one CHUNK_REPLICATE */
#define META_SRV_CLONE_MS 60000       /* one CHUNK_CLONE (local copy) */
#define META_SRV_CB_LEASE_MS 60000    /* a callback promise */
#define META_SRV_CB_BREAK_MS 2000     /* wait for a break's answer */
#define META_SRV_CB_RECALL_MS 15000   /* wait for a recall's answer */
#define META_SRV_TICKET_MS 3600000    /* a ticket's lifetime */
/* How long a record proposed LATER (meta_ops.def) waits for the next
 * record before it is appended on its own. */
#define META_SRV_LATER_MS 20

struct meta_srv_opts {
    const char *data_dir; /* borrowed: copied by meta_srv_start() */
    const char *listen;   /* "host:port" */
    uint32_t lease_ms;    /* restart grace; 0: META_SRV_LEASE_MS */
    uint32_t suspect_ms;  /* 0: META_SRV_SUSPECT_MS */
    uint32_t down_ms;     /* 0: META_SRV_DOWN_MS */
    uint32_t repair_rate; /* 0: META_SRV_REPAIR_RATE */
    uint32_t repair_mbps; /* 0: META_SRV_REPAIR_MBPS */
    uint32_t ticket_ms;   /* 0: META_SRV_TICKET_MS */
    uint32_t promise_ms;  /* 0: META_SRV_CB_LEASE_MS */
    bool no_auth;         /* --no-auth: nobody is asked for a key */
    /* Connections per address, sessions per identity (borrowed, outlives
     * the server; NULL: no limits). */
    struct conn_limit *limits;
    bool secure; /* --secure: refuse peers that ask for no secure link */
    /* The log records are proposed to (copied), or NULL: the local log.
     * With one, the daemon starts as a follower and leads only once told
     * (meta_srv_lead()). */
    const struct meta_log *log;
    /* The replica of a group this daemon is (borrowed), with the log
     * above; NULL for a single metad. */
    struct meta_raft *raft;
    /* Chunks to keep created ahead of writes per replica count
     * (meta_srv_pool.c); 0: none, each hole creates its own. */
    uint32_t chunk_pool;
};

/* Chunks created ahead of the WRITE_BEGINs that take them
 * (meta_srv_pool.c).  The chunks are private to that file. */
struct meta_srv_pooled;
struct meta_srv_pool {
    unsigned size; /* chunks kept per replica count; 0: no pool */
    struct meta_srv_pooled *chunks;
    uint64_t taken, missed; /* holes that found one ready, or none */
};

/* A session's lease, in memory only (docs/architecture.md, "Sessions"). */
struct meta_srv_session {
    uint64_t id;
    char name[128], host[128];
    uint32_t lease_ms;  /* granted */
    uint64_t deadline;  /* uv_now() ms after which it expires */
    uint64_t last_seen; /* uv_now() ms of the last open or renew */
    bool expiring;      /* its META_OP_SESSION_EXPIRE is proposed */
};

/* A server's last inventory (docs/protocol.md §9.3), sorted by chunk id. */
struct meta_srv_inv {
    struct proto_inv_entry *v;
    size_t n, cap;
};

/* A registered storage server.  @peer is its control channel while it is
 * connected (not a reference: cleared when the connection closes).
 * @state is what was last announced (enum proto_server_state, see
 * meta_srv_state.c); @live is its liveness part alone (UP, SUSPECT or
 * DOWN); @draining is persisted (META_OP_SERVER_STATE). */
struct meta_srv_server {
    uint32_t id;
    char addr[64];
    struct peer *peer;
    uint64_t capacity, free;
    uint32_t chunks;
    uint64_t stored;       /* bytes its chunk files take on disk (heartbeat) */
    struct meta_live seen; /* uv_now() ms: heartbeats, other frames */

    uint32_t state, live;
    bool draining;
    bool probing;     /* a PING_REQ probe is out */
    int64_t since_ns; /* wall clock of the last state change */
    uint64_t used;    /* bytes of the replicas the database lists on it */
    uint64_t replicas;
    uint64_t inbound; /* bytes being copied to it right now */
    struct meta_srv_inv inv, inv_next; /* last whole inventory, one coming */
    bool inv_valid;
    /* Its scrubber, as it last said (SCRUB_STATUS); server_id 0: never. */
    struct proto_scrub_status_req scrub;
};

/* Repair, rebalance and scrub progress (meta_srv_repair.c). */
struct meta_srv_repair {
    uint32_t rate;    /* copies in flight at most */
    uint64_t bps;     /* byte budget per second */
    int64_t tokens;   /* bytes that may start now */
    uint64_t refilled; /* uv_now() ms of the last refill */
    unsigned inflight;
    struct meta_srv_rjob *jobs;
    struct meta_srv_rdrop *drops; /* surplus drops not yet applied */
    /* Since start. */
    uint64_t copied, copy_failed, bytes, dropped, moved, scans;
    /* The last scan. */
    uint64_t chunks, ok, under, over, missing, queued;
    uint64_t unplaced; /* copies tried that no server could take */
    bool rebalance;         /* tessera rebalance until balanced */
    uint64_t scrubs;        /* SCRUB_START requests accepted */
    int64_t last_done_ns;   /* wall clock when the goal last held again */
    bool lease_frozen;      /* a file is frozen for a leased chunk's copy */
    uv_timer_t kick;        /* a rescan soon after a copy finished */
    bool kick_init, kick_pending;
};

struct meta_srv_rjob;   /* meta_srv_repair.c */
struct meta_srv_rdrop;  /* meta_srv_repair.c */
struct meta_srv_report; /* meta_srv_report.c */

/* One accepted connection (peer_data() of the peer). */
struct meta_srv_conn {
    struct meta_srv *srv;
    struct peer *peer;
    uint64_t session_id; /* bound by SESSION_OPEN, 0 when none */
    uint32_t server_id;  /* bound by SERVER_REGISTER, 0 when none */
    /* The identity proven in the handshake ("" with --no-auth) and its
     * rights (meta_srv_auth.c). */
    char identity[PROTO_AUTH_NAME_MAX + 1];
    struct auth_caps caps;
    struct meta_srv_conn *prev, *next;
};

/* A live chunk write lease: no version bump until @expiry. */
struct meta_srv_wlease {
    uint64_t chunk_id;
    uint64_t expiry; /* uv_now() ms */
};

struct meta_srv_write;  /* meta_srv_write.c */
struct meta_srv_cb;     /* meta_srv_callback.c */
struct meta_srv_freeze; /* meta_srv_write.c */

struct meta_srv {
    uv_loop_t *loop;
    struct meta_db *db; /* borrowed from the caller of meta_srv_start() */
    struct peer_listener *listener;
    uv_timer_t tick;
    bool stopping;

    char data_dir[4096];
    char listen[256];
    uint32_t lease_ms;
    uint32_t ticket_ms;
    uint32_t promise_ms; /* a callback promise's lease */
    bool no_auth;
    struct conn_limit *limits; /* borrowed: meta_srv_opts.limits */
    bool secure;
    uint64_t instance_id;
    uint64_t start_ms;

    struct meta_srv_conn *conns;

    struct meta_srv_session *sessions;
    size_t nsessions, csessions;

    struct meta_srv_server *servers;
    size_t nservers, cservers;

    struct meta_srv_wlease *wleases;
    size_t nwleases, cwleases;

    struct meta_srv_write *writes; /* one per slot being written */
    struct meta_srv_pool pool;     /* chunks created ahead of writes */
    struct meta_srv_freeze *freezes; /* files being snapshotted */
    uint64_t next_chunk_id;
    /* The highest id of a new chunk this leader has proposed a record of:
     * a new chunk with a lower id would be refused when applied
     * (meta_chunk.c, invariant 1), so none is proposed or handed out. */
    uint64_t proposed_chunk_id;

    unsigned gc_inflight;

    uint32_t suspect_ms, down_ms;
    uv_timer_t live_tick;
    uint64_t live_checked; /* uv_now() of the last liveness check */
    struct meta_srv_repair repair;
    struct meta_srv_report *reports; /* CHUNK_REPORTs being acted on */
    struct meta_srv_leases *leases; /* meta_srv_lease.c; NULL until used */
    struct meta_srv_cb *cb; /* meta_srv_callback.c: callback promises */
    struct meta_log log;    /* where records are proposed (meta_propose.h) */
    uv_timer_t later;       /* appends the records held back in @log */
    /* Append the records due in @log at the end of each loop turn: after
     * the I/O callbacks (check) and before the loop waits (prepare). */
    uv_check_t turn_check;
    uv_prepare_t turn_prepare;
    bool corked; /* between the two: frames written wait (peer_cork_*) */
    /* Serving: always with the local log; with a replicated one, while
     * this replica leads (meta_srv_lead()).  A replica that does not lead
     * answers requests NOT_LEADER and runs no timer work. */
    bool leading;
    uint64_t lead_ms;       /* uv_now() when it started to lead */
    struct meta_raft *raft; /* borrowed; NULL: a single metad */
};

/* meta_server.c */

/* Restore the in-memory state from @db and start the periodic timer.  @db
 * is borrowed and must stay open until meta_srv_free().  Caller owns *out;
 * stop it with meta_srv_stop(), then meta_srv_free(). */
int meta_srv_start(uv_loop_t *loop, struct meta_db *db,
                   const struct meta_srv_opts *opts, struct meta_srv **out);
/* This replica of a group now leads (@leading) or no longer does.
 * Leading, it rebuilds what lives in memory from the database with the
 * rules of a restart (servers down until they register, sessions with a
 * full lease, a fresh service key) and serves; no longer leading, it
 * closes every connection, so that clients and storage servers find the
 * new leader, and forgets the image leases and callback promises. */
void meta_srv_lead(struct meta_srv *srv, bool leading);
/* True for --down-ms after this metad started to lead (or started) while
 * a registered storage server is not back: it may still be registering,
 * so "no server" is not yet an answer. */
bool meta_srv_servers_returning(struct meta_srv *srv);
/* Listen on opts->listen and serve.  On error nothing listens. */
int meta_srv_listen(struct meta_srv *srv);
/* Stop listening, close every connection and the timer.  The loop then
 * runs down; call meta_srv_free() once uv_run() has returned. */
void meta_srv_stop(struct meta_srv *srv);
/* Free @srv (NULL is fine) after meta_srv_stop() and a finished uv_run(). */
void meta_srv_free(struct meta_srv *srv);

/* meta_srv_auth.c */

/* Bootstrap identities on first start and add a fresh service key. */
int meta_srv_auth_init(struct meta_srv *srv);
/* peer_ops.on_auth: the secret of the identity AUTH_REQ names. */
int meta_srv_auth_key(struct peer *p, const struct proto_auth_req *req,
                      uint8_t key[32]);
/* A new connection's rights before authentication (all with --no-auth). */
void meta_srv_auth_conn_init(struct meta_srv_conn *c);
/* May @c send request @opcode?  0, or -EPERM (not its role), -EACCES
 * (outside its paths), -EROFS (read-only).  May point *@payload at a
 * rewritten copy in @scratch (root squash). */
int meta_srv_auth_gate(struct meta_srv_conn *c, uint16_t opcode,
                       const uint8_t **payload, size_t *len,
                       struct proto_wbuf *scratch);
/* The meta_optab.h caller bits the identity of @c may act as: CLIENT for
 * any, ADMIN and CHUNKD by its capabilities (docs/security.md). */
unsigned meta_srv_auth_callers(const struct meta_srv_conn *c);
/* The AUTH_* requests (docs/protocol.md §3.5, §3.6, §10.2). */
void meta_srv_auth_ticket(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
void meta_srv_auth_service(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len);
void meta_srv_auth_add(struct meta_srv_conn *c, uint64_t req_id,
                       const uint8_t *payload, size_t len);
void meta_srv_auth_rm(struct meta_srv_conn *c, uint64_t req_id,
                      const uint8_t *payload, size_t len);
void meta_srv_auth_caps(struct meta_srv_conn *c, uint64_t req_id,
                        const uint8_t *payload, size_t len);
void meta_srv_auth_list(struct meta_srv_conn *c, uint64_t req_id,
                        const uint8_t *payload, size_t len);

/* Grow the array *@p of *@cap elements of @size bytes to hold @n. */
int meta_srv_grow(void **p, size_t *cap, size_t n, size_t size);
/* CLOCK_REALTIME in ns: the time stamped into operation records. */
int64_t meta_srv_now_ns(void);
/* Propose one operation record stamped now to srv->log (meta_propose.h):
 * 0, and @cb gets the outcome (the status meta_apply() returned and the
 * reply body) exactly once, possibly before this returns; or -errno and
 * @cb is never called.  @req is the caller's, lent to the log until @cb;
 * @payload is borrowed (copied into the record).  Callers continue in
 * @cb, never after this returns: with a replicated log the record commits
 * later, on a later loop turn. */
int meta_srv_apply(struct meta_srv *srv, struct meta_propose *req,
                   uint16_t opcode, uint64_t session_id, const void *payload,
                   size_t len, meta_propose_cb cb);
/* meta_srv_apply() of a client's request @req_id in session @session_id:
 * the record carries the request id, so that the request sent again is
 * answered as the first time (meta_once.c). */
int meta_srv_apply_request(struct meta_srv *srv, struct meta_propose *req,
                           uint16_t opcode, uint64_t session_id,
                           uint64_t req_id, const void *payload, size_t len,
                           meta_propose_cb cb);
/* Inodes a request will drop or replace (UNLINK, RMDIR, RENAME), looked
 * up by meta_srv_cb_before() before it is applied. */
struct meta_srv_cb_victims {
    uint64_t ino[2];
    size_t n;
};

/* A request from a connection proposed as an operation record, kept
 * (its payload copied) until the record is applied. */
struct meta_srv_call {
    struct meta_propose req; /* req.data is this call */
    struct meta_srv *srv;
    struct peer *peer; /* referenced; peer_data() NULL once it closed */
    uint16_t opcode;
    uint64_t req_id;
    struct meta_srv_cb_victims victims; /* meta_srv_cb_victims_take() */
    size_t len;
    uint8_t payload[];
};
/* Propose request @opcode of @c, in session @session_id, as a record made
 * from a copy of @payload; @cb continues with the call in req->data and
 * releases it with meta_srv_call_free().  On failure (-errno) the request
 * is answered here and @cb never runs. */
int meta_srv_call_propose(struct meta_srv_conn *c, uint16_t opcode,
                          uint64_t session_id, uint64_t req_id,
                          const uint8_t *payload, size_t len,
                          meta_propose_cb cb);
void meta_srv_call_free(struct meta_srv_call *call);
/* Answer request @req_id (of request @opcode) with @rc and, on 0, the
 * body in @body (borrowed; NULL for an empty body). */
void meta_srv_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int rc,
                    const struct proto_wbuf *body);

/* Whether a replica that does not lead still serves request @opcode
 * (PING, META_STATUS); every other request it answers ENOTLEADER. */
bool meta_srv_follower_serves(uint16_t opcode);
/* Dispatch request @opcode again, as if it had just arrived on @p (a
 * request held by meta_srv_callback.c).  @payload is borrowed. */
void meta_srv_redispatch(struct peer *p, uint16_t opcode, uint64_t req_id,
                         const uint8_t *payload, size_t len);

/* meta_srv_session.c */

/* Give every session in the database a full lease (restart grace). */
int meta_srv_session_restore(struct meta_srv *srv);
void meta_srv_session_open(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len);
void meta_srv_session_renew(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len);
void meta_srv_session_close(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len);
/* Expire sessions whose deadline passed. */
void meta_srv_session_tick(struct meta_srv *srv);
/* Returns a pointer owned by @srv, valid until the next session change. */
struct meta_srv_session *meta_srv_session_find(struct meta_srv *srv,
                                               uint64_t id);

/* meta_srv_storage.c */

/* Load the registered servers (all down until they connect). */
int meta_srv_server_load(struct meta_srv *srv);
void meta_srv_server_register(struct meta_srv_conn *c, uint64_t req_id,
                              const uint8_t *payload, size_t len);
void meta_srv_server_heartbeat(struct meta_srv_conn *c, uint64_t req_id,
                               const uint8_t *payload, size_t len);
void meta_srv_server_inventory(struct meta_srv_conn *c, uint64_t req_id,
                               const uint8_t *payload, size_t len);
/* The connection of @c closed: its server (if any) loses its channel. */
void meta_srv_server_detach(struct meta_srv_conn *c);
/* Returns a pointer owned by @srv, valid until the next registration. */
struct meta_srv_server *meta_srv_server_find(struct meta_srv *srv, uint32_t id);
/* Up: connected and heartbeating (not suspect, not down); a draining
 * server is up too. */
bool meta_srv_server_up(struct meta_srv *srv, const struct meta_srv_server *s);
/* UP, SUSPECT or DOWN now, from the connection and meta_live_judge(). */
uint32_t meta_srv_server_liveness(struct meta_srv *srv,
                                  const struct meta_srv_server *s);
/* Not down: up or suspect. */
bool meta_srv_server_alive(struct meta_srv *srv,
                           const struct meta_srv_server *s);
/* Full: less free space than one whole chunk (its last heartbeat), so it
 * is given no new chunk, neither by WRITE_BEGIN nor by repair. */
#define META_SRV_FULL_FREE ((uint64_t)PROTO_CHUNK_SIZE)
bool meta_srv_server_full(const struct meta_srv_server *s);
/* The server @id registered on @c's connection, or NULL. */
struct meta_srv_server *meta_srv_server_bound(struct meta_srv_conn *c,
                                              uint32_t id);
/* CHUNK_USAGE_REQ from a chunkd (docs/protocol.md §9.5; meta_srv_usage.c). */
void meta_srv_chunk_usage(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* SCRUB_STATUS_REQ from a chunkd (docs/protocol.md §9.4). */
void meta_srv_server_scrub(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len);
/* Capacity and free space of the servers not down, each disk counted
 * once: servers on one host (the address without its port) reporting the
 * same file-system size are taken to share a disk, as several chunkd on
 * one machine's data folder do.  *disks gets how many were counted. */
void meta_srv_capacity(struct meta_srv *srv, uint64_t *capacity,
                       uint64_t *free, uint32_t *disks);
/* Forget server @id (after META_OP_SERVER_STATE REMOVED). */
void meta_srv_server_forget(struct meta_srv *srv, uint32_t id);
/* Release every server's inventories (meta_srv_free). */
void meta_srv_server_free_all(struct meta_srv *srv);
/* Refresh every server's used bytes and replica count from the database. */
void meta_srv_server_usage(struct meta_srv *srv);

/* meta_srv_state.c */

/* Recompute @s's state now (after a heartbeat, a registration, a closed
 * connection or an operator action); a change is logged and announced to
 * every client session. */
void meta_srv_state_update(struct meta_srv *srv, struct meta_srv_server *s);
/* Every META_SRV_LIVE_TICK_MS: suspect, probe, down. */
void meta_srv_state_tick(struct meta_srv *srv);
/* "up", "suspect", ... for enum proto_server_state. */
const char *meta_srv_state_name(uint32_t state);
/* Tell every client session that @s is now in @state. */
/* A peer_request() callback for a notice whose answer nobody waits for
 * (SERVER_STATE, a break of ALL). */
void meta_srv_answer_ignored(struct peer *p, int status,
                             const uint8_t *payload, size_t len, void *arg);

void meta_srv_state_broadcast(struct meta_srv *srv,
                              const struct meta_srv_server *s, uint32_t state);

/* meta_srv_pool.c */

/* Up, not draining, not full: @s may get a new chunk. */
bool meta_srv_server_placeable(struct meta_srv *srv,
                               const struct meta_srv_server *s);
/* Take the lowest-id chunk created ahead on @n servers that are all still
 * placeable and whose id is above srv->proposed_chunk_id: 0 with its id in
 * *@chunk_id and its servers in @servers (it exists on each at version 1,
 * in no record yet), or -ENOENT. */
int meta_srv_pool_take(struct meta_srv *srv, uint32_t n, uint64_t *chunk_id,
                       uint32_t *servers);
/* Start creating chunks on the @n servers @ids until the pool holds
 * srv->pool.size of @n replicas, created or being created. */
void meta_srv_pool_fill(struct meta_srv *srv, const uint32_t *ids, uint32_t n);
/* How many chunks the pool holds ready, and how many it is creating. */
void meta_srv_pool_count(struct meta_srv *srv, unsigned *ready,
                         unsigned *creating);
/* How many chunks ready in the pool have a replica on @server_id. */
uint32_t meta_srv_pool_on(struct meta_srv *srv, uint32_t server_id);
/* The chunks server @s holds, as its last heartbeat says, less those of
 * the pool: the chunks of files (what status shows). */
uint32_t meta_srv_server_chunks(struct meta_srv *srv,
                                const struct meta_srv_server *s);
/* True while @chunk_id is in the pool: not garbage. */
bool meta_srv_pool_has(struct meta_srv *srv, uint64_t chunk_id);
/* Server @server_id went down: its pooled chunks are deleted on their
 * other servers, and those being made will be. */
void meta_srv_pool_server_down(struct meta_srv *srv, uint32_t server_id);
/* Forget the pool (leadership lost, stopping): the next leader's
 * inventories delete its chunks. */
void meta_srv_pool_drop(struct meta_srv *srv);

/* meta_srv_gc.c */

/* Send one round of CHUNK_DELETEs for the garbage list, unless the last
 * round is still in flight. */
void meta_srv_gc_tick(struct meta_srv *srv);

/* meta_srv_write.c */

void meta_srv_write_begin(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* Drop expired chunk write leases. */
void meta_srv_write_tick(struct meta_srv *srv);
/* Registers the WRITE_BEGIN stages (lat.h) with the process's. */
void meta_srv_write_stats_register(void);
/* True while a WRITE_BEGIN for a slot holding (or about to hold) @chunk_id
 * is talking to the storage servers or recording the outcome, or while
 * @chunk_id is in the chunk pool: its chunk is not garbage yet. */
bool meta_srv_write_pending(struct meta_srv *srv, uint64_t chunk_id);
/* Attributes of inode @ino into @a, through the engine's GETATTR: 0,
 * -ENOENT, or a database error. */
int meta_srv_inode_attr(struct meta_srv *srv, uint64_t ino,
                        struct proto_attr *a);

/* True while @chunk_id has a write lease (live or not yet collected) or a
 * WRITE_BEGIN in flight: repair leaves it alone. */
bool meta_srv_write_busy(struct meta_srv *srv, uint64_t chunk_id);
/* Server @server_id went down: end the write leases of the chunks it
 * holds a replica of. */
void meta_srv_write_server_down(struct meta_srv *srv, uint32_t server_id);
/* End the write lease on @chunk_id: the next WRITE_BEGIN bumps. */
void meta_srv_write_lease_end(struct meta_srv *srv, uint64_t chunk_id);
/* Freeze file @ino for a snapshot: its new WRITE_BEGINs wait, and every
 * chunk of it with a write lease or a WRITE_BEGIN in flight gets its lease
 * ended and its version bumped.  @cb(@arg, rc) runs once that is done
 * (possibly before this returns); rc < 0 when a bump failed.  The freeze
 * holds until meta_srv_write_thaw(@arg), which the callback or later code
 * must call.  Returns 0, or -ENOMEM (then @cb is never called). */
int meta_srv_write_freeze(struct meta_srv *srv, uint64_t ino,
                          void (*cb)(void *arg, int rc), void *arg);
/* Lift the freeze made with @arg and start the requests it held. */
void meta_srv_write_thaw(struct meta_srv *srv, void *arg);
/* The facts a CHUNK_WRITE_BEGIN attempt is planned from. */
struct meta_srv_wfacts {
    bool internal;       /* a freeze's bump: no writer behind it */
    bool readonly;       /* the file is a snapshot */
    bool hole;           /* the slot names no chunk (the rest is unset) */
    uint32_t refs;       /* slots naming the chunk: > 1 when shared */
    uint32_t nreplicas;  /* replicas the database lists */
    uint32_t nreachable; /* those up or suspect */
    bool all_up;         /* every replica up */
    bool lease_live;     /* the chunk has a live write lease */
    bool copying;        /* another slot is copying the chunk now */
};
enum meta_srv_wplan {
    META_SRV_WPLAN_NONE = 1, /* answer as things are */
    META_SRV_WPLAN_EXTEND,   /* extend the live lease, answer */
    META_SRV_WPLAN_ALLOCATE, /* a new chunk on chosen servers */
    META_SRV_WPLAN_BUMP,     /* bump the version on the reachable replicas */
    META_SRV_WPLAN_COPY,     /* copy-on-write of the shared chunk */
    META_SRV_WPLAN_PARK,     /* wait for the other copy of the chunk */
};
/* What an attempt does: an enum meta_srv_wplan, or -EROFS (a user's write
 * to a snapshot) or -EIO (no replica reachable).  Pure: no I/O. */
int meta_srv_write_plan(const struct meta_srv_wfacts *f);
/* CHUNK_LOCATE_REQ: the engine's answer without down servers, suspect
 * ones last. */
void meta_srv_locate(struct meta_srv_conn *c, uint64_t req_id,
                     const uint8_t *payload, size_t len);

/* meta_srv_report.c */

void meta_srv_chunk_report(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len);

/* meta_srv_repair.c */

void meta_srv_repair_init(struct meta_srv *srv, uint32_t rate, uint32_t mbps);
/* One scan: start copies, drop surplus, rebalance.  Every tick. */
void meta_srv_repair_tick(struct meta_srv *srv);
/* Copies of @c that count toward its goal: on servers not down and not
 * draining. */
uint32_t meta_srv_repair_good(struct meta_srv *srv, const struct meta_chunk *c);
/* True while a copy of @chunk_id is in flight, or a repair record about
 * it (REPLICA_ADD, REPLICA_DROP) is proposed and not yet applied. */
bool meta_srv_repair_busy(struct meta_srv *srv, uint64_t chunk_id);
/* Close the rescan timer (meta_srv_stop); copies in flight end with the
 * storage connections. */
void meta_srv_repair_stop(struct meta_srv *srv);

/* meta_srv_image.c */

/* SNAPSHOT_REQ and CLONE_REQ. */
void meta_srv_image_snapshot(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len);
void meta_srv_image_clone(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* IMAGE_ROLLBACK_REQ: the image frozen, as SNAPSHOT's source is. */
void meta_srv_image_rollback(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len);

/* meta_srv_lease.c */

struct meta_srv_leases;
/* IMAGE_LEASE_REQ and IMAGE_LEASE_WAIT_REQ (the long poll). */
void meta_srv_lease_request(struct meta_srv_conn *c, uint64_t req_id,
                            const uint8_t *payload, size_t len);
void meta_srv_lease_wait(struct meta_srv_conn *c, uint64_t req_id,
                         const uint8_t *payload, size_t len);
/* At the start of CHUNK_WRITE_BEGIN: false (and the request answered
 * EROFS) when another session holds the image's writer lease. */
bool meta_srv_lease_write_ok(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len);
/* The session holding the writer lease of image @ino, 0 when none. */
uint64_t meta_srv_lease_holder(struct meta_srv *srv, uint64_t ino);
/* Every tick: leases of gone sessions, recall timeouts, expired polls. */
void meta_srv_lease_tick(struct meta_srv *srv);
/* Drop every lease and parked request (meta_srv_stop, meta_srv_free). */
void meta_srv_lease_free(struct meta_srv *srv);

/* meta_srv_admin.c */

void meta_srv_server_ctl(struct meta_srv_conn *c, uint64_t req_id,
                         const uint8_t *payload, size_t len);
void meta_srv_admin_action(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len);

/* meta_srv_callback.c */

struct meta_srv_kv;
/* Allocate the promise table (meta_srv_start); -ENOMEM. */
int meta_srv_cb_init(struct meta_srv *srv);
/* Free it and every promise (NULL table is fine). */
void meta_srv_cb_free(struct meta_srv *srv);
/* Forget every promise and every session's registration, as a restart
 * does: a replica that no longer leads (meta_srv_lead()). */
void meta_srv_cb_forget(struct meta_srv *srv);
/* CALLBACK_REGISTER_REQ. */
void meta_srv_cb_register(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* DIR_DELEGATE_REQ (docs/protocol.md §14.3): the breaks and recalls it
 * needs were answered by meta_srv_cb_before(); grant and reply. */
void meta_srv_cb_delegate(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* Before dispatching a request: grant promises it implies and, when it
 * must wait for breaks or recalls first, hold it (a copy) and return true:
 * it is dispatched again once they are answered. */
bool meta_srv_cb_before(struct meta_srv_conn *c, uint16_t opcode,
                        uint64_t req_id, const uint8_t *payload, size_t len);
/* Move the victims meta_srv_cb_before() found for the request it just saw
 * into @out, to hand them to meta_srv_cb_reply() with its answer. */
void meta_srv_cb_victims_take(struct meta_srv *srv,
                              struct meta_srv_cb_victims *out);
/* Answer an engine request (in place of meta_srv_reply): grant promises
 * for the attributes in @body and, for a mutation, break the other
 * sessions' promises (the request's and @victims') before the answer goes
 * out.  @body and @victims are borrowed. */
void meta_srv_cb_reply(struct meta_srv_conn *c, uint16_t opcode,
                       uint64_t req_id, const uint8_t *payload, size_t len,
                       int rc, const struct meta_srv_cb_victims *victims,
                       const struct proto_wbuf *body);
/* Expire promises; forget sessions that ended.  Every tick. */
/* Break every session's attribute promise on @ino (no session is spared)
 * after a change no request waits on (st_blocks moved, CHUNK_USAGE);
 * nothing waits for the answers, but a session that does not answer loses
 * its promises as after any break. */
void meta_srv_cb_break_attr(struct meta_srv *srv, uint64_t ino);
void meta_srv_cb_tick(struct meta_srv *srv);
/* The cache.* pairs of STATUS. */
void meta_srv_cb_status(struct meta_srv *srv, struct meta_srv_kv *o);
/* The callback totals, for the metrics. */
struct meta_srv_cb_counts {
    uint64_t promises;                 /* held now */
    uint64_t sent, answered, timedout; /* breaks, since start */
    uint64_t recalls;                  /* since start */
};
void meta_srv_cb_counts(struct meta_srv *srv, struct meta_srv_cb_counts *out);

/* meta_srv_metrics.c */

struct metrics_buf;
/* The Prometheus page of @arg (the struct meta_srv), on the loop thread;
 * always 0. */
int meta_srv_metrics_render(struct metrics_buf *b, void *arg);

/* meta_srv_web.c */

struct http_server;
/* Serve the status page (/), /api/status, /api/images and /metrics on
 * @addr (--http) from @srv's loop.  Caller owns *out; stop it with
 * http_server_stop() before meta_srv_stop().  0 or -errno (logged). */
int meta_srv_http_start(struct meta_srv *srv, const char *addr,
                        struct http_server **out);

/* meta_srv_wal.c */

struct meta_srv_wal;
/* Checkpoint @db's write-ahead log (the database at @path) on @loop's
 * thread pool from now on, instead of in the commits (meta_wal.c).  @db
 * is borrowed until meta_srv_wal_free().  Caller owns *out:
 * meta_srv_wal_stop() while the loop runs, meta_srv_wal_free() once
 * uv_run() returned.  0 or -errno (logged). */
int meta_srv_wal_start(uv_loop_t *loop, struct meta_db *db, const char *path,
                       struct meta_srv_wal **out);
/* No more checkpoints queued; SQLite checkpoints by itself again. */
void meta_srv_wal_stop(struct meta_srv_wal *w);
void meta_srv_wal_free(struct meta_srv_wal *w);

/* meta_srv_group.c */

/* META_STATUS_REQ (every replica answers) and META_MEMBER_REQ
 * (docs/protocol.md §10.3). */
void meta_srv_meta_status(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
void meta_srv_meta_member(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);

/* meta_srv_status.c */

void meta_srv_status(struct meta_srv_conn *c, uint64_t req_id,
                     const uint8_t *payload, size_t len);
/* The STATUS_REP body (the pairs above) into @body: what STATUS answers,
 * and what /api/status turns into JSON.  0 or -errno. */
int meta_srv_status_build(struct meta_srv *srv, struct proto_wbuf *body);

/* A key/value reply (STATUS_REP, ADMIN_ACTION_REP) being built. */
struct meta_srv_kv {
    struct proto_wbuf w;
    uint32_t n;
};
/* Append a pair (both borrowed: copied). */
void meta_srv_kv(struct meta_srv_kv *o, const char *key, const char *value);
void meta_srv_kv_u64(struct meta_srv_kv *o, const char *key, uint64_t v);
/* Encode the pairs in @o, which is released, as a STATUS_REP body at the
 * end of @body.  0 or -errno. */
int meta_srv_kv_encode(struct meta_srv_kv *o, struct proto_wbuf *body);
/* Answer @req_id with the pairs in @o, which is released. */
void meta_srv_kv_reply(struct peer *p, uint64_t req_id, uint16_t opcode,
                       struct meta_srv_kv *o);
/* The repair, rebalance and drain progress pairs (also in STATUS). */
void meta_srv_kv_progress(struct meta_srv *srv, struct meta_srv_kv *o);

#endif
