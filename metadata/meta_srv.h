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

#include "meta.h"
#include "peer.h"
#include "proto.h"

#define META_SRV_VERSION "0.1.0"
#define META_SRV_TICK_MS 1000         /* session expiry, leases, GC */
#define META_SRV_LEASE_MS 60000       /* restart grace: the longest lease */
#define META_SRV_SERVER_UP_MS 5000    /* heartbeat age that still counts */
#define META_SRV_WRITE_LEASE_MS 60000 /* chunk write lease */
#define META_SRV_CTL_TIMEOUT_MS 5000  /* requests to storage servers */
#define META_SRV_GC_BATCH 256         /* deletes per GC round */
#define META_SRV_WRITE_RETRIES 5      /* CHUNK_SET -ESTALE restarts */

struct meta_srv_opts {
    const char *data_dir; /* borrowed: copied by meta_srv_start() */
    const char *listen;   /* "host:port" */
    uint32_t lease_ms;    /* restart grace; 0: META_SRV_LEASE_MS */
};

/* A session's lease, in memory only (docs/architecture.md, "Sessions"). */
struct meta_srv_session {
    uint64_t id;
    char name[128], host[128];
    uint32_t lease_ms;  /* granted */
    uint64_t deadline;  /* uv_now() ms after which it expires */
    uint64_t last_seen; /* uv_now() ms of the last open or renew */
};

/* A registered storage server.  @peer is its control channel while it is
 * connected (not a reference: cleared when the connection closes). */
struct meta_srv_server {
    uint32_t id;
    char addr[64];
    struct peer *peer;
    uint64_t capacity, free;
    uint32_t chunks;
    uint64_t last_hb; /* uv_now() ms of the last register or heartbeat */
};

/* One accepted connection (peer_data() of the peer). */
struct meta_srv_conn {
    struct meta_srv *srv;
    struct peer *peer;
    uint64_t session_id; /* bound by SESSION_OPEN, 0 when none */
    uint32_t server_id;  /* bound by SERVER_REGISTER, 0 when none */
    struct meta_srv_conn *prev, *next;
};

/* A live chunk write lease: no version bump until @expiry. */
struct meta_srv_wlease {
    uint64_t chunk_id;
    uint64_t expiry; /* uv_now() ms */
};

struct meta_srv_write; /* meta_srv_write.c */

struct meta_srv {
    uv_loop_t *loop;
    struct meta_db *db; /* borrowed from the caller of meta_srv_start() */
    struct peer_listener *listener;
    uv_timer_t tick;
    bool stopping;

    char data_dir[4096];
    char listen[256];
    uint32_t lease_ms;
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
    uint64_t next_chunk_id;

    unsigned gc_inflight;
};

/* meta_server.c */

/* Restore the in-memory state from @db and start the periodic timer.  @db
 * is borrowed and must stay open until meta_srv_free().  Caller owns *out;
 * stop it with meta_srv_stop(), then meta_srv_free(). */
int meta_srv_start(uv_loop_t *loop, struct meta_db *db,
                   const struct meta_srv_opts *opts, struct meta_srv **out);
/* Listen on opts->listen and serve.  On error nothing listens. */
int meta_srv_listen(struct meta_srv *srv);
/* Stop listening, close every connection and the timer.  The loop then
 * runs down; call meta_srv_free() once uv_run() has returned. */
void meta_srv_stop(struct meta_srv *srv);
/* Free @srv (NULL is fine) after meta_srv_stop() and a finished uv_run(). */
void meta_srv_free(struct meta_srv *srv);

/* Grow the array *@p of *@cap elements of @size bytes to hold @n. */
int meta_srv_grow(void **p, size_t *cap, size_t n, size_t size);
/* CLOCK_REALTIME in ns: the time stamped into operation records. */
int64_t meta_srv_now_ns(void);
/* Apply one operation record stamped now.  Same return as meta_apply(). */
int meta_srv_apply(struct meta_srv *srv, uint16_t opcode, uint64_t session_id,
                   const void *payload, size_t len, struct proto_wbuf *reply);
/* Answer request @req_id (of request @opcode) with @rc and, on 0, the
 * body in @body (borrowed; NULL for an empty body). */
void meta_srv_reply(struct peer *p, uint64_t req_id, uint16_t opcode, int rc,
                    const struct proto_wbuf *body);

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
/* Connected, and a heartbeat within META_SRV_SERVER_UP_MS. */
bool meta_srv_server_up(struct meta_srv *srv, const struct meta_srv_server *s);

/* meta_srv_gc.c */

/* Send one round of CHUNK_DELETEs for the garbage list, unless the last
 * round is still in flight. */
void meta_srv_gc_tick(struct meta_srv *srv);

/* meta_srv_write.c */

void meta_srv_write_begin(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len);
/* Drop expired chunk write leases. */
void meta_srv_write_tick(struct meta_srv *srv);
/* True while a WRITE_BEGIN for a slot holding (or about to hold) @chunk_id
 * is talking to the storage servers: its chunk is not garbage yet. */
bool meta_srv_write_pending(struct meta_srv *srv, uint64_t chunk_id);

/* meta_srv_status.c */

void meta_srv_status(struct meta_srv_conn *c, uint64_t req_id);

#endif
