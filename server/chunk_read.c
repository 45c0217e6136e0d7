/* chunk_read.c: CHUNK_READ_REQ -> CHUNK_READ_REP (bytes).
 *
 * Happy path: decode, submit a shared job on the chunk, read and verify,
 * answer with exactly the bytes asked for (zeros where nothing was
 * written).  When nothing conflicting is queued or running on the chunk
 * the read is first tried on the loop thread without blocking
 * (chunk_store_read_nowait(): the chunk's files already open, the blocks
 * and checksums in the page cache), and answered at once, inside
 * on_request; otherwise, or when that would block, it runs on a worker
 * thread (chunk_job.c).  The answer's body is built where the data is
 * read: the buffer starts with the bytes field's length (§7.2, u32) and
 * the store reads right after it, so the data is not copied again before
 * it is sent.  Failures are answered with their error: EOLDVER
 * when the replica's version differs, ECHECKSUM when a block fails its
 * CRC (the client then tries another replica), ENOENT for a chunk this
 * server does not hold, EIO when the disk failed the read.  A checksum
 * failure or a disk error also marks the replica bad and reports it to
 * metad (chunk_meta_report_bad(), once per chunk, reason CHECKSUM or
 * IOERROR): later reads of it fail with ECHECKSUM until metad has it
 * replaced.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>

/* The u32 length in front of the data of a bytes field. */
#define REP_HEAD 4u

struct read_op {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    struct proto_chunk_read_req m;
    uint8_t *buf; /* REP_HEAD + m.length: the whole reply body */
};

static int read_run(struct chunk_job *j)
{
    struct read_op *op = (struct read_op *)j;

    return chunk_store_read(j->srv->store, op->m.chunk_id, op->m.version,
                            op->m.offset, op->m.length, op->buf + REP_HEAD);
}

/* The same read on the loop thread, if it needs no disk (see above). */
static int read_run_nowait(struct chunk_job *j)
{
    struct read_op *op = (struct read_op *)j;

    return chunk_store_read_nowait(j->srv->store, op->m.chunk_id, op->m.version,
                                   op->m.offset, op->m.length,
                                   op->buf + REP_HEAD);
}

static void read_done(struct chunk_job *j, int rc)
{
    struct read_op *op = (struct read_op *)j;
    uint32_t n = op->m.length;

    if (rc == -EBADMSG || rc == -EIO)
        chunk_meta_report_bad(j->srv, op->m.chunk_id, op->m.version,
                              rc == -EIO ? PROTO_REPORT_IOERROR
                                         : PROTO_REPORT_CHECKSUM);
    /* proto_bytes_rep: big-endian u32 length, then the bytes. */
    for (int i = 0; i < 4; i++)
        op->buf[i] = (uint8_t)(n >> (24 - 8 * i));
    chunk_req_finish(&op->req, rc, op->buf, rc == 0 ? REP_HEAD + n : 0);
    free(op->buf);
    free(op);
}

void chunk_read_handle(struct chunk_server *srv, struct peer *p,
                       uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct read_op *op = calloc(1, sizeof(*op));
    int rc;

    if (!op) {
        chunk_reply(p, PROTO_MSG_CHUNK_READ_REP, req_id, -ENOMEM, NULL, 0);
        return;
    }
    rc = proto_chunk_read_req_decode(payload, len, &op->m);
    if (rc == 0 && op->m.length > PROTO_MAX_DATA)
        rc = -EPROTO;
    if (rc == 0 && !(op->buf = malloc(REP_HEAD + (size_t)op->m.length)))
        rc = -ENOMEM;
    if (rc < 0) {
        chunk_reply(p, PROTO_MSG_CHUNK_READ_REP, req_id, rc, NULL, 0);
        free(op);
        return;
    }
    op->job.srv = srv;
    op->job.chunk_id = op->m.chunk_id;
    op->job.shared = true;
    op->job.run = read_run;
    op->job.run_nowait = read_run_nowait;
    op->job.done = read_done;
    chunk_req_start(&op->req, p, PROTO_MSG_CHUNK_READ_REQ, req_id);
    rc = chunk_job_submit(srv->jobs, &op->job);
    if (rc < 0) {
        chunk_req_finish(&op->req, rc, NULL, 0);
        free(op->buf);
        free(op);
    }
}
