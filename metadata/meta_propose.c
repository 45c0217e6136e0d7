/* meta_propose.c: proposals of operation records and the local log
 * (meta_propose.h).
 *
 * Happy path: meta_propose() encodes the record (meta_op_record_encode)
 * and appends it to the log; when the log says it committed,
 * meta_log_commit() decodes that same record, applies it with
 * meta_apply() and calls the proposer back with the status and the reply
 * body.  The record is applied from its encoded bytes, exactly as a
 * replica that received it through a replicated log would.
 *
 * Records that can wait (meta_propose_later()) are encoded at once but
 * held back in the log's queue; the next meta_propose() appends them, in
 * the order they came, in one append with its own record after them, so
 * a replicated log writes them together (one disk write, one round of
 * replication), and the owner's timer appends them with meta_log_flush()
 * when no record comes.  Records that may not wait but gain from company
 * (meta_propose_soon()) join the same queue and mark it due: the owner's
 * event loop appends a due queue with meta_log_flush_due() at the end of
 * the turn that proposed them, so a burst of requests read in one turn
 * becomes one append.  Their order relative to every other record is the
 * order of their appends, which is what every replica applies.
 *
 * Failure modes: an encoding failure (-ENOMEM, -EMSGSIZE) or a refused
 * append is returned by meta_propose() and the callback is never called;
 * a log that loses a pending record calls meta_log_fail() and the
 * proposer gets that status; an engine refusal (-EEXIST, ...) is the
 * callback's status, with nothing changed.
 *
 * Nothing here reads a clock or talks to the network: the time and
 * session are in the record, and the log delivers commits.
 */
#include "meta_propose.h"

#include <errno.h>

#include "meta_op.h"

void meta_log_done(struct meta_propose *req, int status,
                   const struct proto_wbuf *result)
{
    meta_propose_cb cb = req->cb;

    /* Contract 2: the request may be freed inside the callback, so the
     * record goes first. */
    proto_wbuf_free(&req->record);
    req->cb = NULL;
    req->log = NULL;
    cb(req, status, result);
}

void meta_log_init(struct meta_log *log, const struct meta_log_ops *ops,
                   struct meta_db *db, void *impl)
{
    *log = (struct meta_log){.ops = ops, .db = db, .impl = impl};
}

/* @req holds no record any more. */
static void record_forget(struct meta_propose *req)
{
    proto_wbuf_free(&req->record);
    req->cb = NULL;
    req->log = NULL;
}

/* Encode @op into @req: 0 or -errno (nothing kept). */
static int record_make(struct meta_log *log, struct meta_propose *req,
                       const struct meta_op *op, meta_propose_cb cb)
{
    req->cb = cb;
    req->log = log;
    req->next = NULL;
    proto_wbuf_init(&req->record);
    meta_op_record_encode(&req->record, op);
    int rc = req->record.err;
    if (rc < 0)
        record_forget(req);
    return rc;
}

/* The records held back, taken out of @log (oldest first, chained). */
static struct meta_propose *later_take(struct meta_log *log)
{
    struct meta_propose *head = log->later;

    log->later = log->later_tail = NULL;
    log->due = false;
    return head;
}

/* Each request of the chain @req gets @status. */
static void chain_fail(struct meta_propose *req, int status)
{
    struct meta_propose *next;

    for (; req; req = next) {
        next = req->next;
        req->next = NULL;
        meta_log_fail(req, status);
    }
}

int meta_propose(struct meta_log *log, struct meta_propose *req,
                 const struct meta_op *op, meta_propose_cb cb)
{
    int rc = record_make(log, req, op, cb);

    if (rc < 0)
        return rc;
    struct meta_propose *held = log->later_tail;
    struct meta_propose *head = later_take(log);
    if (held)
        held->next = req;
    else
        head = req;
    rc = log->ops->append(log, head);
    if (rc < 0) {
        if (held) {
            held->next = NULL;
            chain_fail(head, rc);
        }
        record_forget(req);
    }
    return rc;
}

int meta_propose_later(struct meta_log *log, struct meta_propose *req,
                       const struct meta_op *op, meta_propose_cb cb)
{
    int rc = record_make(log, req, op, cb);

    if (rc < 0)
        return rc;
    if (log->later_tail)
        log->later_tail->next = req;
    else
        log->later = req;
    log->later_tail = req;
    return 0;
}

int meta_propose_soon(struct meta_log *log, struct meta_propose *req,
                      const struct meta_op *op, meta_propose_cb cb)
{
    int rc = meta_propose_later(log, req, op, cb);

    if (rc == 0)
        log->due = true;
    return rc;
}

void meta_log_flush_due(struct meta_log *log)
{
    if (log->due)
        meta_log_flush(log);
}

void meta_log_flush(struct meta_log *log)
{
    struct meta_propose *head = later_take(log);
    int rc = head ? log->ops->append(log, head) : 0;

    if (rc < 0)
        chain_fail(head, rc);
}

bool meta_log_waiting(const struct meta_log *log)
{
    return log->later != NULL;
}

void meta_log_drop(struct meta_log *log, int status)
{
    chain_fail(later_take(log), status);
}

int meta_log_apply(struct meta_db *db, uint64_t index, const void *entry,
                   size_t len, struct proto_wbuf *result)
{
    struct meta_op op;
    int rc = meta_op_record_decode(entry, len, &op);

    if (rc < 0)
        return rc;
    return meta_apply_at(db, &op, index, result);
}

void meta_log_commit(struct meta_propose *req)
{
    struct proto_wbuf result;
    int rc;

    proto_wbuf_init(&result);
    rc = meta_log_apply(req->log->db, 0, req->record.p, req->record.len,
                        &result);
    meta_log_done(req, rc, &result);
    proto_wbuf_free(&result);
}

void meta_log_fail(struct meta_propose *req, int status)
{
    struct proto_wbuf none;

    proto_wbuf_init(&none);
    meta_log_done(req, status < 0 ? status : -EIO, &none);
}

/* The local log commits on append: meta_apply()'s transaction, with
 * synchronous=FULL, is what makes the record durable. */
static int local_append(struct meta_log *log, struct meta_propose *req)
{
    struct meta_propose *next;

    (void)log;
    for (; req; req = next) {
        next = req->next;
        req->next = NULL;
        meta_log_commit(req);
    }
    return 0;
}

static const struct meta_log_ops local_ops = {.append = local_append};

void meta_log_local_init(struct meta_log *log, struct meta_db *db)
{
    meta_log_init(log, &local_ops, db, NULL);
}
