/* meta_propose.h: proposing an operation record to the log, in the shape
 * of raft_apply(): the caller owns a request struct, the record goes to a
 * log, and once the log has committed it and the engine applied it, a
 * callback gets the status and the reply body.
 *
 *   caller            meta_propose()         log               engine
 *     |-- op, req, cb -->|-- encode record --->|                   |
 *     |                  |                     |-- committed: ---->|
 *     |                  |                     |   meta_log_commit |--
 * meta_apply
 *     |<------------ cb(req, status, result) --------------------- |
 *
 * The log behind it is a struct meta_log_ops: today the local log
 * (meta_log_local), which commits at once because the SQLite commit in
 * meta_apply() is the durability point; a replicated log appends the
 * record to its own log, and calls meta_log_commit() when a majority has
 * it (and meta_log_apply() on every replica).  Callers do not change.
 *
 * Contract (as raft_apply's):
 *  1. meta_propose() returns 0 and @cb is called exactly once, possibly
 *     before meta_propose() returns; or it returns -errno and @cb is never
 *     called.
 *  2. The request belongs to the log from meta_propose() until @cb is
 *     called; the caller may free or reuse it inside @cb.
 *  3. @result is borrowed: valid only during @cb.
 */
#ifndef TESSERA_META_PROPOSE_H
#define TESSERA_META_PROPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta.h"
#include "proto.h"

struct meta_propose;
struct meta_log;

/* @status is 0 or -errno (the engine's refusal, or the log's failure);
 * @result holds the reply body when @status is 0. */
typedef void (*meta_propose_cb)(struct meta_propose *req, int status,
                                const struct proto_wbuf *result);

/* A proposal.  The caller owns the struct and sets @data; the rest is the
 * log's while the proposal is pending. */
struct meta_propose {
    void *data; /* the caller's */
    meta_propose_cb cb;
    struct meta_log *log;
    struct proto_wbuf record;  /* the encoded record (meta_op.h) */
    struct meta_propose *next; /* a log's queue */
};

struct meta_log_ops {
    /* Take @req and the requests chained after it by ->next, in that
     * order (their records encoded), into the log, as one write where the
     * log can.  0, and later exactly one meta_log_commit() or
     * meta_log_fail() for each; or -errno and none taken. */
    int (*append)(struct meta_log *log, struct meta_propose *req);
};

struct meta_log {
    const struct meta_log_ops *ops;
    struct meta_db *db; /* the state machine records are applied to */
    void *impl;         /* the log's own state */
    /* Proposals held back by meta_propose_later() and
     * meta_propose_soon(), oldest first. */
    struct meta_propose *later, *later_tail;
    bool due; /* one of them came from meta_propose_soon() */
    /* Set by the log: records proposed together are worth appending
     * together (a replicated log sends one message per append), so the
     * owner proposes with meta_propose_soon().  The local log commits each
     * record on its own either way. */
    bool gather;
};

/* Make @log a log over @ops, its records applied to @db (borrowed), with
 * @impl the log's own state and nothing held back. */
void meta_log_init(struct meta_log *log, const struct meta_log_ops *ops,
                   struct meta_db *db, void *impl);

/* Encode @op as a record and hand it to @log; @cb as the contract above
 * says.  @op and its payload are borrowed (copied into the record). */
int meta_propose(struct meta_log *log, struct meta_propose *req,
                 const struct meta_op *op, meta_propose_cb cb);

/* As meta_propose(), but the record is held back in @log until the next
 * meta_propose() or meta_log_flush(), which append it (and every other
 * one held back, in the order they came) together with their own, just
 * before it: a record that can wait shares the next record's log write
 * instead of taking one of its own.  0 (the contract above holds: the callback comes once the
 * record committed, or with the error that kept it from the log), or
 * -errno for an encoding failure, and the callback never comes. */
int meta_propose_later(struct meta_log *log, struct meta_propose *req,
                       const struct meta_op *op, meta_propose_cb cb);
/* As meta_propose_later(), but the record may not wait past the current
 * turn of the owner's event loop: the owner calls meta_log_flush_due()
 * after its I/O callbacks and before it waits for more, so the records
 * proposed in one turn (a burst of requests read together) go to the log
 * as one append.  Same return and contract. */
int meta_propose_soon(struct meta_log *log, struct meta_propose *req,
                      const struct meta_op *op, meta_propose_cb cb);
/* meta_log_flush() when a record held back came from meta_propose_soon();
 * nothing otherwise (records that can wait go on waiting). */
void meta_log_flush_due(struct meta_log *log);
/* Append every record held back (the owner of @log calls it when they
 * have waited long enough).  A record the log refuses gets its callback
 * with the error. */
void meta_log_flush(struct meta_log *log);
/* Whether records are held back in @log. */
bool meta_log_waiting(const struct meta_log *log);
/* Give up every record held back: each callback gets @status (< 0), e.g.
 * when this replica stops leading. */
void meta_log_drop(struct meta_log *log, int status);

/* Apply one committed record @entry/@len to @db: decode it (meta_op.h)
 * and meta_apply_at() it with its log position @index (0: the local log,
 * which stores none); what a replica does with every committed entry.
 * Same return as meta_apply(); -EPROTO for an undecodable record. */
int meta_log_apply(struct meta_db *db, uint64_t index, const void *entry,
                   size_t len, struct proto_wbuf *result);
/* For a log: @req's record is committed.  Applies it to log->db and calls
 * the proposer back with the outcome. */
void meta_log_commit(struct meta_propose *req);
/* For a log that applied @req's record itself (meta_log_apply(), as a
 * replica applies every entry): calls the proposer back with the outcome
 * @status and @result (borrowed). */
void meta_log_done(struct meta_propose *req, int status,
                   const struct proto_wbuf *result);
/* For a log: @req will never commit (@status < 0, e.g. -EIO for a failed
 * append, or leadership lost).  Calls the proposer back with @status. */
void meta_log_fail(struct meta_propose *req, int status);

/* The local log of a single metad: every record commits at once (the
 * SQLite transaction is the durability point).  @db is borrowed. */
void meta_log_local_init(struct meta_log *log, struct meta_db *db);

#endif
