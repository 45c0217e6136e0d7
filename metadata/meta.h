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
 * protocol message.  Payloads are documented beside each. */
enum meta_internal_op {
    /* u64 session_id: the session stopped renewing; drop it. */
    META_OP_SESSION_EXPIRE = 0xF001,
};

struct meta_op {
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
void meta_db_close(struct meta_db *db);

/* True for opcodes that go through meta_apply(). */
bool meta_op_is_mutation(uint16_t opcode);

/* Apply @op in one transaction.  On success returns 0 and @reply holds
 * the reply body; on failure returns a negative errno (ENOENT, EEXIST,
 * EACCES, ... as a local file system would) and nothing changed. -EPROTO
 * for an undecodable payload. */
int meta_apply(struct meta_db *db, const struct meta_op *op,
               struct proto_wbuf *reply);

/* Answer a read-only request (LOOKUP, GETATTR, READLINK, READDIR, STATFS,
 * GETXATTR, LISTXATTR, ACCESS, OPEN).  Same return convention. */
int meta_query(struct meta_db *db, uint16_t opcode, const uint8_t *payload,
               size_t len, struct proto_wbuf *reply);

/* Counters for STATUS: inodes, directories, files, sessions, op log
 * length, database bytes. */
struct meta_stats {
    uint64_t inodes, dirs, files, sessions, ops, db_bytes;
};
int meta_stats_get(struct meta_db *db, struct meta_stats *st);

/* Sessions present in the database (for lease tracking after restart):
 * calls @fn for each; stops early if it returns nonzero. */
int meta_session_foreach(struct meta_db *db,
                         int (*fn)(uint64_t id, const char *name,
                                   const char *host, void *arg),
                         void *arg);

/* Walk the op log from @after (exclusive) in order; for replay tests. */
int meta_oplog_foreach(struct meta_db *db, uint64_t after,
                       int (*fn)(uint64_t seq, const struct meta_op *op,
                                 void *arg),
                       void *arg);

#endif
