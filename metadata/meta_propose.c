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

int meta_propose(struct meta_log *log, struct meta_propose *req,
                 const struct meta_op *op, meta_propose_cb cb)
{
    int rc;

    req->cb = cb;
    req->log = log;
    req->next = NULL;
    proto_wbuf_init(&req->record);
    meta_op_record_encode(&req->record, op);
    rc = req->record.err;
    if (rc == 0)
        rc = log->ops->append(log, req);
    if (rc < 0) {
        proto_wbuf_free(&req->record);
        req->cb = NULL;
        req->log = NULL;
    }
    return rc;
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
    (void)log;
    meta_log_commit(req);
    return 0;
}

static const struct meta_log_ops local_ops = {.append = local_append};

void meta_log_local_init(struct meta_log *log, struct meta_db *db)
{
    log->ops = &local_ops;
    log->db = db;
    log->impl = NULL;
}
