/* meta.h: the metadata state machine: namespace, sessions (and later chunk
 * maps) in one SQLite database.
 *
 * Every mutation is an operation record (struct meta_op): the request's
 * opcode and payload exactly as they came off the wire, plus the time and
 * session fixed when the record was made.  meta_apply() is the one function
 * that applies records: one transaction each, appended to the op log in the
 * same transaction.  Given the same database and the same records it
 * produces the same state and replies, so records can later be shipped
 * through a consensus log and replayed in tests.
 *
 * Reads (lookup, getattr, readdir, ...) go through meta_query() and never
 * write.  Both fill @reply with the reply body, ready for the wire.
 *
 * Not thread-safe: one loop thread owns a struct meta_db.
 */
#ifndef TESSERA_META_H
#define TESSERA_META_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct meta_db;

/* Internal operations with no wire request of their own: ids above every
 * protocol message.  Each payload is a struct of meta_op.h, which holds
 * its one codec; what it means is documented beside each. */
enum meta_internal_op {
    /* struct meta_op_session_expire: the session stopped renewing; drop
     * it. */
    META_OP_SESSION_EXPIRE = 0xF001,
    /* Point chunk slot (ino, index) at a chunk at a version with a replica
     * set, after the chunk servers confirmed it (docs/architecture.md,
     * "Writing").  Payload: struct meta_op_chunk_set (old_version 0: the
     * slot must be a hole and the chunk new).  Fails with -ESTALE
     * when the slot no longer holds chunk_id at old_version (a concurrent
     * change: the caller starts over), -ENOENT / -EISDIR for a bad inode.
     * Reply body: empty. */
    META_OP_CHUNK_SET = 0xF002,
    /* A chunk server deleted a replica listed for garbage collection.
     * Payload: struct meta_op_gc_done.  Reply body: empty. */
    META_OP_GC_DONE = 0xF003,
    /* Repair copied a replica (CHUNK_REPLICATE answered OK).  Payload:
     * struct meta_op_replica.  When the chunk is still
     * at @version the server joins the end of its replica chain (and any
     * gc entry for that chunk on that server is dropped); otherwise the
     * copy is stale at birth and is listed for deletion instead.  Reply
     * body: u8 1 when added, 0 when listed for deletion. */
    META_OP_REPLICA_ADD = 0xF004,
    /* Take one replica out of a chunk's replica set and list it for
     * deletion (a reported bad replica, a surplus copy, a drained server's
     * copy).  Payload: struct meta_op_replica.  -ESTALE
     * when the chunk is no longer at @version, -ENOENT when the chunk is
     * gone or the server holds no replica of it.  Reply body: empty. */
    META_OP_REPLICA_DROP = 0xF005,
    /* An operator changed a storage server's administrative state.
     * Payload: struct meta_op_server_state; its state (enum
     * proto_server_state) PROTO_SERVER_DRAINING marks the server
     * draining, PROTO_SERVER_UP clears that, PROTO_SERVER_REMOVED forgets the
     * server: its replicas leave every replica set and its gc entries are
     * dropped.  The time of the change is the record's.  -ENOENT for an unknown
     * server, -EINVAL for another state.  Reply body: empty. */
    META_OP_SERVER_STATE = 0xF006,
    /* Copy-on-write of a shared chunk (docs/vmdisk.md): the storage
     * servers made chunk new_id at new_version a copy of src_id at
     * src_version; point slot (ino, index) at it.  Payload: struct
     * meta_op_chunk_cow (set: the new chunk's replicas, n >= 1).
     * The source loses one reference; at zero its replicas go to the gc
     * list.  -ESTALE when the slot no longer holds src_id at src_version or
     * new_id is not above every id used; -EROFS on a snapshot.  Reply
     * body: empty.
     * With bump set, the record also says that the servers also moved the
     * source itself to a new version (so that a client reading the slot from an
     * old location is refused and locates again): src_new_version
     * (> src_version) and src (the source's replicas that took it,
     * m >= 1).  The source goes to src_new_version
     * with those of its replicas, the others are listed for deletion at
     * src_version.  With the trailer the bump is recorded whenever the
     * source is still at src_version, even if the slot changed
     * meanwhile: the reply body is then u8 1 when the slot moved to the
     * copy, u8 0 when only the bump was recorded (the caller plans
     * again).  -ESTALE when the source is gone or at another version. */
    META_OP_CHUNK_COW = 0xF007,
};

/* Inode flags (inodes.flags). */
#define META_INODE_READONLY 0x1u /* a snapshot: its data never changes */

/* One chunk as the database knows it. */
struct meta_chunk {
    uint64_t chunk_id, version;
    uint64_t ino, index; /* a file slot that holds it (the lowest) */
    uint32_t refs;       /* slots holding it: > 1 when shared */
    uint32_t nreplicas;
    uint32_t servers[PROTO_MAX_REPLICAS];
};

/* A registered chunk server (SERVER_REGISTER_REQ goes through
 * meta_apply(): same uuid, same id; reply body server_register_rep). */
struct meta_server {
    uint32_t id;
    uint8_t uuid[16];
    char addr[64];
    bool draining;      /* META_OP_SERVER_STATE DRAINING, until UP */
    int64_t state_time; /* ns: the record that last changed the state */
};

struct meta_op {
    uint8_t format;         /* META_OP_FORMAT when made (meta_op.h) */
    uint16_t opcode;        /* PROTO_MSG_*_REQ or META_OP_* */
    int64_t now;            /* ns since the epoch, fixed at creation */
    uint64_t session_id;    /* 0 when not in a session */
    const uint8_t *payload; /* borrowed */
    size_t len;
};

/* Open (creating if needed) the database at @path, or ":memory:".  WAL
 * mode, synchronous=FULL: a committed operation survives kill -9 and power
 * loss.  Creates the root directory (inode 1) on first open.  Caller owns
 * *out; close with meta_db_close(). */
int meta_db_open(const char *path, struct meta_db **out);
/* Register the latency stage of transaction commits, "meta.db.commit"
 * (lat.h; the daemon's metrics show it).  Startup, once. */
void meta_db_stats_register(void);
void meta_db_close(struct meta_db *db);

/* True for opcodes that go through meta_apply() (kind MUTATION in
 * meta_ops.def). */
bool meta_op_is_mutation(uint16_t opcode);
/* Whether request @opcode with @payload from session @session (0: none)
 * becomes an operation record (1: meta_apply()) or is answered by
 * meta_query() (0), or -errno.  Every MUTATION is a record, except that
 * one with a records column in meta_ops.def (OPEN) asks it. */
int meta_op_records(struct meta_db *db, uint64_t session, uint16_t opcode,
                    const uint8_t *payload, size_t len);

/* Apply @op in one transaction.  On success returns 0 and @reply holds
 * the reply body; on failure returns a negative errno (ENOENT, EEXIST,
 * EACCES, ... as a local file system would) and nothing changed. -EPROTO
 * for an undecodable payload or a record format this build does not read
 * (meta_op.h). */
int meta_apply(struct meta_db *db, const struct meta_op *op,
               struct proto_wbuf *reply);

/* Answer a read-only request (LOOKUP, GETATTR, READLINK, READDIR, STATFS,
 * GETXATTR, LISTXATTR, ACCESS, OPEN, CHUNK_LOCATE, IMAGE_INFO).  Same
 * return convention. */
int meta_query(struct meta_db *db, uint16_t opcode, const uint8_t *payload,
               size_t len, struct proto_wbuf *reply);

/* Whether OPEN_REQ @payload from session @session must go through
 * meta_apply() (1: it asks for a hold the session does not have yet) or
 * is answered by meta_query() (0), or -errno.  Holding changes nothing
 * when the session holds the file already, so repeated opens of one file
 * cost no commit. */
int meta_open_records(struct meta_db *db, uint64_t session,
                      const uint8_t *payload, size_t len);

/* Counters for STATUS: inodes, directories, files, sessions, op log
 * length, database bytes. */
struct meta_stats {
    uint64_t inodes, dirs, files, sessions, ops, db_bytes;
    uint64_t chunks;  /* distinct chunks in every file map */
    uint64_t orphans; /* unlinked files still held open (§6.22) */
};
int meta_stats_get(struct meta_db *db, struct meta_stats *st);

/* Sessions present in the database (for lease tracking after restart):
 * calls @fn for each with the lease granted at open (ms); stops early if
 * it returns nonzero. */
int meta_session_foreach(struct meta_db *db,
                         int (*fn)(uint64_t id, const char *name,
                                   const char *host, uint32_t lease_ms,
                                   void *arg),
                         void *arg);

/* Chunk by id: 0, or -ENOENT when the database has no such chunk. */
int meta_chunk_get(struct meta_db *db, uint64_t chunk_id,
                   struct meta_chunk *out);
/* Chunk in slot (ino, index): 0, -ENOENT for a hole or no such inode. */
int meta_chunk_at(struct meta_db *db, uint64_t ino, uint64_t index,
                  struct meta_chunk *out);
/* The highest replication goal among the files sharing @chunk_id;
 * -ENOENT when no file holds it. */
int meta_chunk_goal(struct meta_db *db, uint64_t chunk_id, uint32_t *goal);
/* Slots of file @ino holding a chunk, in index order: @fn(chunk) with
 * c->index the slot's index; stops early when @fn returns nonzero. */
int meta_file_chunk_foreach(struct meta_db *db, uint64_t ino,
                            int (*fn)(const struct meta_chunk *c, void *arg),
                            void *arg);
/* META_INODE_* flags of inode @ino; -ENOENT. */
int meta_inode_flags(struct meta_db *db, uint64_t ino, uint32_t *flags);
/* Largest chunk id ever used (ids are never reused), 0 if none. */
uint64_t meta_chunk_max_id(struct meta_db *db);
/* The replication goal of inode @ino (inherited from its parent at
 * creation, default 3); -ENOENT. */
int meta_goal_get(struct meta_db *db, uint64_t ino, uint32_t *goal);
int meta_server_foreach(struct meta_db *db,
                        int (*fn)(const struct meta_server *s, void *arg),
                        void *arg);
/* Replicas waiting to be deleted: chunks no file refers to any more
 * (truncate, unlink of the last link), stale and dropped replicas.  Only
 * those on server @server_id (0: every server).  At most @max calls. */
int meta_gc_foreach(struct meta_db *db, uint32_t server_id, int max,
                    int (*fn)(uint64_t chunk_id, uint64_t version,
                              uint32_t server_id, void *arg),
                    void *arg);

/* 1 when the gc list holds a replica of @chunk_id on @server_id, 0 when
 * not, or -errno. */
int meta_gc_has(struct meta_db *db, uint64_t chunk_id, uint32_t server_id);

/* One chunk as repair sees it: the chunk, the goal of its file and its
 * length (the part of the file inside it). */
struct meta_chunk_info {
    struct meta_chunk c;
    uint32_t goal;
    uint64_t length;
};
/* Chunks with an id above @after in id order, at most @max; @fn must not
 * change the database.  Stops early when @fn returns nonzero. */
int meta_chunk_foreach(struct meta_db *db, uint64_t after, int max,
                       int (*fn)(const struct meta_chunk_info *ci, void *arg),
                       void *arg);
/* Replicas per server as the database lists them: @fn(server_id, count,
 * bytes) for each server holding at least one. */
int meta_server_usage_foreach(struct meta_db *db,
                              int (*fn)(uint32_t server_id, uint64_t replicas,
                                        uint64_t bytes, void *arg),
                              void *arg);

/* Walk the op log from @after (exclusive) in order; for replay tests. */
int meta_oplog_foreach(struct meta_db *db, uint64_t after,
                       int (*fn)(uint64_t seq, const struct meta_op *op,
                                 void *arg),
                       void *arg);

#endif
