/* chunk_replicate.c: CHUNK_REPLICATE_REQ -> CHUNK_REPLICATE_REP (empty).
 *
 * metad asks a server to make a copy of chunk @chunk_id at @version from
 * @source, another chunk server (repair, drain, rebalance).  Happy path:
 *
 *   1. check   (job)  the local chunk: already at @version and not bad ->
 *                     answer OK at once; otherwise start an empty staged
 *                     copy at @version (chunk_store_stage_begin()).
 *   2. map     (net)  CHUNK_DATAMAP_REQ at exactly @version from @source:
 *                     the blocks that may hold data (docs/protocol.md
 *                     §12.9).  Only the pieces holding one of them are
 *                     read, so a chunk with 4 MiB written costs 4 MiB, not
 *                     64.  A source without the message (ENOSYS) has every
 *                     piece read.
 *   3. read    (net)  CHUNK_READ_REQ of the next such 1 MiB piece at
 *                     exactly @version from @source over the chain
 *                     connection cache; the source verifies its checksums,
 *                     so any error aborts.
 *   4. write   (job)  the piece into the staged copy, skipping every 4 KiB
 *                     block that is all zeros, so copies stay sparse.
 *                     Back to 3 until no piece with data is left.
 *   5. commit  (job)  sync the copy and rename it into place over an
 *                     older local version (chunk_store_stage_commit()).
 *   6. answer OK and log one line: chunk, bytes written, bytes read,
 *      milliseconds.
 *
 * Each read first takes its size from the server's repair token bucket
 * (--repair-mbps, shared by all copies in progress) and waits on a timer
 * when the bucket is in debt.  The bucket holds up to PIECE_BURST pieces
 * of credit, so the wait overlaps the reads and writes instead of adding
 * to them: a copy alone runs at the limit, not below it.
 *
 * Failure modes: a source error (EOLDVER when it holds another version,
 * ECHECKSUM when its copy is damaged, ENOENT, a lost connection or a 30 s
 * timeout) or a local one (ENOSPC, EIO) drops the staged copy and is
 * answered as is; the local chunk, if any, is left as it was.  A local
 * chunk newer than @version is EOLDVER.  A second request for a chunk
 * already being copied is EBUSY.  Nothing of a failed copy survives: the
 * staged files are deleted, or emptied at the next start after a crash.
 *
 *   check --noop--------------------------------------------> answered
 *     |                                                          ^
 *     v         all read                                         |
 *   map --> read <--> write --------> commit --------------------+
 *     |       | error     | error        | error                 |
 *     +-------+-----------+--------------+--> abort (drop copy) -+
 *
 *   FROM -> TO          [function]
 *   check -> map        [repl_done(STEP_CHECK) -> map_send]
 *   map -> read         [on_map_rep -> piece_next]
 *   read -> write       [on_read_rep -> step_submit(STEP_WRITE)]
 *   read -> read        [on_read_rep, an all-zero piece]
 *   write -> read       [repl_done(STEP_WRITE) -> piece_next]
 *   read -> commit      [piece_next, no piece with data left]
 *   any -> abort        [repl_fail]
 *   commit/abort/check -> answered [repl_finish]
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define PIECE (1u << 20)
#define PIECE_BURST 4u /* pieces of credit the repair bucket may hold */
#define PIECE_MAP_BYTES (PIECE / CHUNK_BLOCK_SIZE / 8) /* a piece's map */

enum repl_step { STEP_CHECK, STEP_WRITE, STEP_COMMIT, STEP_ABORT };

struct chunk_repl {
    struct chunk_job job; /* first: the job is the op */
    struct chunk_req req;
    struct chunk_repl *next; /* srv->replicating */
    uv_timer_t pace;
    enum repl_step step;
    uint64_t chunk_id, version;
    uint32_t off;                  /* next byte to read */
    uint8_t *buf;                  /* the piece being written, PIECE bytes */
    uint8_t map[PROTO_WMAP_BYTES]; /* the source's data map */
    int status;                    /* the error an abort answers with */
    bool noop;                     /* already here at that version */
    uint64_t start_ns, bytes_read, bytes_written;
    char source[]; /* address, NUL-terminated */
};

static void piece_next(struct chunk_repl *r);
static void map_send(struct chunk_repl *r);

/* ---- Worker side ------------------------------------------------------- */

/* @p may be unaligned (it points into a received frame). */
static bool block_zero(const uint8_t *p)
{
    return p[0] == 0 && memcmp(p, p + 1, CHUNK_BLOCK_SIZE - 1) == 0;
}

/* Write the non-zero runs of blocks of the piece at @r->off - PIECE. */
static int write_piece(struct chunk_repl *r, struct chunk_store *s)
{
    uint32_t base = r->off - PIECE;
    uint32_t nb = PIECE / CHUNK_BLOCK_SIZE;

    for (uint32_t b = 0; b < nb;) {
        uint32_t e;
        int rc;

        if (block_zero(r->buf + (size_t)b * CHUNK_BLOCK_SIZE)) {
            b++;
            continue;
        }
        for (e = b + 1;
             e < nb && !block_zero(r->buf + (size_t)e * CHUNK_BLOCK_SIZE); e++)
            ;
        rc = chunk_store_stage_write(
            s, r->chunk_id, r->version, base + b * CHUNK_BLOCK_SIZE,
            r->buf + (size_t)b * CHUNK_BLOCK_SIZE, (e - b) * CHUNK_BLOCK_SIZE);
        if (rc < 0)
            return rc;
        r->bytes_written += (uint64_t)(e - b) * CHUNK_BLOCK_SIZE;
        b = e;
    }
    return 0;
}

static int repl_run(struct chunk_job *j)
{
    struct chunk_repl *r = (struct chunk_repl *)j;
    struct chunk_store *s = j->srv->store;
    struct chunk_info ci;
    int rc;

    switch (r->step) {
    case STEP_CHECK:
        rc = chunk_store_stat(s, r->chunk_id, &ci);
        if (rc == 0 && ci.version == r->version &&
            !chunk_store_is_bad(s, r->chunk_id)) {
            r->noop = true;
            return 0;
        }
        if (rc == 0 && ci.version > r->version)
            return -ESTALE;
        if (rc < 0 && rc != -ENOENT)
            return rc;
        return chunk_store_stage_begin(s, r->chunk_id, r->version);
    case STEP_WRITE:
        return write_piece(r, s);
    case STEP_COMMIT:
        return chunk_store_stage_commit(s, r->chunk_id, r->version);
    case STEP_ABORT:
        chunk_store_stage_abort(s, r->chunk_id);
        return r->status;
    }
    return -EINVAL;
}

/* ---- Loop side --------------------------------------------------------- */

static void on_pace_closed(uv_handle_t *h)
{
    struct chunk_repl *r = h->data;

    free(r->buf);
    free(r);
}

static void repl_finish(struct chunk_repl *r, int rc)
{
    struct chunk_server *srv = r->job.srv;
    struct chunk_repl **pp;
    uint64_t ms = (uv_hrtime() - r->start_ns) / 1000000;

    for (pp = &srv->replicating; *pp != r; pp = &(*pp)->next)
        ;
    *pp = r->next;
    if (rc == 0 && r->noop)
        log_debug("chunk.replicate",
                  "chunk replicate: already here: chunk=%016llx version=%llu",
                  (unsigned long long)r->chunk_id,
                  (unsigned long long)r->version);
    else if (rc == 0)
        log_info("chunk replicate: done: chunk=%016llx version=%llu "
                 "source=%s bytes=%llu read=%llu ms=%llu",
                 (unsigned long long)r->chunk_id,
                 (unsigned long long)r->version, r->source,
                 (unsigned long long)r->bytes_written,
                 (unsigned long long)r->bytes_read, (unsigned long long)ms);
    else
        log_warn("chunk replicate: failed: chunk=%016llx version=%llu "
                 "source=%s err=%d read=%llu ms=%llu",
                 (unsigned long long)r->chunk_id,
                 (unsigned long long)r->version, r->source, rc,
                 (unsigned long long)r->bytes_read, (unsigned long long)ms);
    chunk_req_finish(&r->req, rc, NULL, 0);
    uv_close((uv_handle_t *)&r->pace, on_pace_closed);
}

static void step_submit(struct chunk_repl *r, enum repl_step step)
{
    int rc;

    r->step = step;
    rc = chunk_job_submit(r->job.srv->jobs, &r->job);
    if (rc < 0)
        repl_finish(r, rc); /* cannot even queue the clean-up */
}

/* Drop the staged copy, then answer @rc. */
static void repl_fail(struct chunk_repl *r, int rc)
{
    r->status = rc;
    step_submit(r, STEP_ABORT);
}

static void repl_done(struct chunk_job *j, int rc)
{
    struct chunk_repl *r = (struct chunk_repl *)j;

    switch (r->step) {
    case STEP_CHECK:
        if (rc < 0 || r->noop)
            repl_finish(r, rc);
        else
            map_send(r);
        break;
    case STEP_WRITE:
        if (rc < 0)
            repl_fail(r, rc);
        else
            piece_next(r);
        break;
    case STEP_COMMIT:
    case STEP_ABORT:
        repl_finish(r, rc);
        break;
    }
}

/* Does the piece at @off hold a block the source's map lists? */
static bool piece_has_data(const struct chunk_repl *r, uint32_t off)
{
    const uint8_t *m = r->map + off / PIECE * PIECE_MAP_BYTES;

    for (uint32_t i = 0; i < PIECE_MAP_BYTES; i++)
        if (m[i])
            return true;
    return false;
}

static void on_map_rep(struct peer *p, int status, const uint8_t *payload,
                       size_t len, void *arg)
{
    struct chunk_repl *r = arg;
    struct proto_bytes_rep rep;

    (void)p;
    if (status == -ENOSYS) { /* a source without data maps: read it all */
        memset(r->map, 0xFF, sizeof(r->map));
        piece_next(r);
        return;
    }
    if (status == 0)
        status = proto_bytes_rep_decode(payload, len, &rep);
    if (status == 0 && rep.data.len != sizeof(r->map))
        status = -EPROTO;
    if (status < 0) {
        repl_fail(r, status);
        return;
    }
    memcpy(r->map, rep.data.p, sizeof(r->map));
    piece_next(r);
}

static void map_send(struct chunk_repl *r)
{
    struct proto_chunk_ref m = {.chunk_id = r->chunk_id, .version = r->version};
    struct proto_str addr = {r->source, (uint32_t)strlen(r->source)};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &m);
    rc = w.err ? w.err
               : chunk_chain_request(r->job.srv->chain, addr,
                                     PROTO_MSG_CHUNK_DATAMAP_REQ, w.p, w.len,
                                     on_map_rep, r);
    proto_wbuf_free(&w);
    if (rc < 0)
        repl_fail(r, rc);
}

static void on_read_rep(struct peer *p, int status, const uint8_t *payload,
                        size_t len, void *arg)
{
    struct chunk_repl *r = arg;
    struct proto_bytes_rep rep;
    bool zero = true;

    (void)p;
    if (status == 0)
        status = proto_bytes_rep_decode(payload, len, &rep);
    if (status == 0 && rep.data.len != PIECE)
        status = -EPROTO;
    if (status < 0) {
        repl_fail(r, status);
        return;
    }
    r->off += PIECE;
    r->bytes_read += PIECE;
    for (uint32_t b = 0; zero && b < PIECE / CHUNK_BLOCK_SIZE; b++)
        zero = block_zero((const uint8_t *)rep.data.p +
                          (size_t)b * CHUNK_BLOCK_SIZE);
    if (zero) {
        piece_next(r);
        return;
    }
    memcpy(r->buf, rep.data.p, PIECE);
    step_submit(r, STEP_WRITE);
}

static void read_send(struct chunk_repl *r)
{
    struct chunk_server *srv = r->job.srv;
    struct proto_chunk_read_req m = {
        .chunk_id = r->chunk_id,
        .version = r->version,
        .offset = r->off,
        .length = PIECE,
    };
    struct proto_str addr = {r->source, (uint32_t)strlen(r->source)};
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    proto_chunk_read_req_encode(&w, &m);
    rc = w.err ? w.err
               : chunk_chain_request(srv->chain, addr, PROTO_MSG_CHUNK_READ_REQ,
                                     w.p, w.len, on_read_rep, r);
    proto_wbuf_free(&w);
    if (rc < 0)
        repl_fail(r, rc);
}

static void on_pace(uv_timer_t *t)
{
    read_send(t->data);
}

static void piece_next(struct chunk_repl *r)
{
    struct chunk_server *srv = r->job.srv;
    uint64_t now = uv_hrtime(), wait;

    while (r->off < PROTO_CHUNK_SIZE && !piece_has_data(r, r->off))
        r->off += PIECE;
    if (r->off >= PROTO_CHUNK_SIZE) {
        step_submit(r, STEP_COMMIT);
        return;
    }
    if (!srv->repair_rate_set) {
        chunk_rate_init(&srv->repair_rate, srv->repair_bps,
                        (uint64_t)PIECE_BURST * PIECE, now);
        srv->repair_rate_set = true;
    }
    wait = chunk_rate_take(&srv->repair_rate, PIECE, now);
    if (wait == 0) {
        read_send(r);
        return;
    }
    uv_timer_start(&r->pace, on_pace, chunk_rate_ms(wait), 0);
}

void chunk_replicate_handle(struct chunk_server *srv, struct peer *p,
                            uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct proto_chunk_replicate_req m;
    struct chunk_repl *r;
    int rc = proto_chunk_replicate_req_decode(payload, len, &m);

    if (rc == 0 && (m.version == 0 || m.source.addr.len == 0))
        rc = -EINVAL;
    for (r = srv->replicating; rc == 0 && r; r = r->next)
        if (r->chunk_id == m.chunk_id)
            rc = -EBUSY;
    if (rc == 0 && srv->stopping)
        rc = -ESHUTDOWN;
    if (rc < 0) {
        chunk_reply(p, PROTO_MSG_CHUNK_REPLICATE_REP, req_id, rc, NULL, 0);
        return;
    }
    r = calloc(1, sizeof(*r) + m.source.addr.len + 1);
    if (r && !(r->buf = malloc(PIECE))) {
        free(r);
        r = NULL;
    }
    if (!r) {
        chunk_reply(p, PROTO_MSG_CHUNK_REPLICATE_REP, req_id, -ENOMEM, NULL, 0);
        return;
    }
    memcpy(r->source, m.source.addr.p, m.source.addr.len);
    r->chunk_id = m.chunk_id;
    r->version = m.version;
    r->start_ns = uv_hrtime();
    r->job.srv = srv;
    r->job.chunk_id = m.chunk_id;
    r->job.shared = false;
    r->job.run = repl_run;
    r->job.done = repl_done;
    uv_timer_init(srv->loop, &r->pace);
    r->pace.data = r;
    r->next = srv->replicating;
    srv->replicating = r;
    chunk_req_start(&r->req, p, PROTO_MSG_CHUNK_REPLICATE_REQ, req_id);
    step_submit(r, STEP_CHECK);
}
