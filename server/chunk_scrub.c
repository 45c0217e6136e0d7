/* chunk_scrub.c: background verification of every stored block.
 *
 * A pass lists the chunks on a worker thread, then reads each one from
 * start to length in pieces of up to 1 MiB through the store, which checks
 * every 4 KiB block against its CRC32C.  One piece is in flight at a time,
 * as a shared job on the chunk's lane (chunk_job.c), so client I/O on the
 * same chunk keeps its order and other chunks are not held up.  Before
 * each piece the pass takes its size from a token bucket (chunk_rate.c)
 * and waits on a timer while the bucket is in debt: a pass never reads
 * faster than its rate.
 *
 * Passes start every --scrub-interval-s (the first one an interval after
 * start) at --scrub-mbps, or when metad sends SCRUB_START_REQ (rate_mb 0:
 * the server's rate, or 8 MiB/s when periodic passes are off).  A
 * SCRUB_START during a pass restarts it from the first chunk at the new
 * rate (docs/protocol.md §11.3), once its piece in flight is done.
 *
 * Findings: a block failing its checksum (-EBADMSG) or a read failing with
 * an I/O error marks the chunk bad and reports it to metad with reason
 * CHECKSUM or IOERROR (chunk_meta_report_bad(): once per chunk, logged
 * once); the pass moves on to the next chunk.  A chunk deleted or moved to
 * another version during the pass is skipped; the next pass sees it.  The
 * counters (chunks and bytes verified, errors found, pass start and end)
 * are kept for chunk_scrub_get_stats() and logged at the end of a pass.
 *
 *            interval timer / SCRUB_START
 *   IDLE ------------------------------> LISTING --listed--> SCANNING
 *    ^                                                  | all chunks done
 *    +--------------------------------------------------+
 *   FROM -> TO           [function]
 *   IDLE -> LISTING      [chunk_scrub_pass -> pass_begin]
 *   LISTING -> SCANNING  [list_done -> scan_next]
 *   SCANNING -> IDLE     [pass_end]
 *   LISTING/SCANNING -> LISTING  [chunk_scrub_pass, or the job's done
 *                                 callback when @restart is set]
 *
 * Invariants:
 *   1. At most one worker job (listing or piece) is in flight, and the
 *      pace timer runs only when none is.
 *   2. The scrubber is freed once stopped with no job in flight and both
 *      timers closed.
 */
#include "chunk_internal.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

#define PIECE (1u << 20)

struct scrub_job {
    struct chunk_job job; /* first */
    struct chunk_scrub *sc;
};

struct chunk_scrub {
    struct chunk_server *srv;
    uv_timer_t period, pace;
    int open_handles;
    bool stopped;
    bool busy;    /* a worker job is in flight (invariant 1) */
    bool restart; /* start the pass again once the job is done */
    struct chunk_rate rate;
    struct chunk_scrub_stats st;
    /* The pass in progress. */
    uv_work_t list_work;
    int list_rc;
    struct chunk_info *list;
    size_t n, cap, next;
    uint32_t off, piece;
    uint8_t *buf; /* PIECE bytes, read into by the piece job */
    struct scrub_job sj;
};

static void maybe_free(struct chunk_scrub *sc)
{
    /* Invariant 2. */
    if (sc->stopped && !sc->busy && sc->open_handles == 0) {
        free(sc->list);
        free(sc->buf);
        free(sc);
    }
}

static void pass_end(struct chunk_scrub *sc, int rc)
{
    struct chunk_scrub_stats *st = &sc->st;

    st->running = false;
    st->last_end_s = (int64_t)time(NULL);
    st->passes++;
    free(sc->list);
    sc->list = NULL;
    sc->n = sc->cap = sc->next = 0;
    if (rc < 0)
        log_warn("chunk scrub: pass aborted: err=%d chunks=%llu bytes=%llu "
                 "errors=%llu",
                 rc, (unsigned long long)st->chunks,
                 (unsigned long long)st->bytes, (unsigned long long)st->errors);
    else
        log_info("chunk scrub: pass done: chunks=%llu bytes=%llu errors=%llu "
                 "seconds=%lld",
                 (unsigned long long)st->chunks, (unsigned long long)st->bytes,
                 (unsigned long long)st->errors,
                 (long long)(st->last_end_s - st->last_start_s));
}

/* ---- One piece --------------------------------------------------------- */

static int piece_run(struct chunk_job *j)
{
    struct chunk_scrub *sc = ((struct scrub_job *)j)->sc;
    const struct chunk_info *ci = &sc->list[sc->next];

    return chunk_store_read(j->srv->store, ci->id, ci->version, sc->off,
                            sc->piece, sc->buf);
}

static void scan_next(struct chunk_scrub *sc);
static void pass_begin(struct chunk_scrub *sc);

static void chunk_skip(struct chunk_scrub *sc)
{
    sc->next++;
    sc->off = 0;
}

static void piece_done(struct chunk_job *j, int rc)
{
    struct chunk_scrub *sc = ((struct scrub_job *)j)->sc;
    const struct chunk_info *ci;

    sc->busy = false;
    if (sc->stopped) {
        maybe_free(sc);
        return;
    }
    if (sc->restart) {
        pass_begin(sc);
        return;
    }
    ci = &sc->list[sc->next];
    if (rc == 0) {
        sc->st.bytes += sc->piece;
        sc->off += sc->piece;
        if (sc->off >= ci->length) {
            sc->st.chunks++;
            chunk_skip(sc);
        }
    } else if (rc == -ENOENT || rc == -ESTALE) {
        chunk_skip(sc); /* deleted or bumped meanwhile */
    } else if (rc == -ENOMEM) {
        log_warn("chunk scrub: chunk skipped: chunk=%016llx err=%d",
                 (unsigned long long)ci->id, rc);
        chunk_skip(sc);
    } else {
        sc->st.errors++;
        chunk_meta_report_bad(sc->srv, ci->id, ci->version,
                              rc == -EBADMSG ? PROTO_REPORT_CHECKSUM
                                             : PROTO_REPORT_IOERROR);
        chunk_skip(sc);
    }
    scan_next(sc);
}

static void piece_submit(struct chunk_scrub *sc)
{
    struct chunk_job *j = &sc->sj.job;
    int rc;

    j->srv = sc->srv;
    j->chunk_id = sc->list[sc->next].id;
    j->shared = true;
    j->run = piece_run;
    j->done = piece_done;
    sc->busy = true;
    rc = chunk_job_submit(sc->srv->jobs, j);
    if (rc < 0) {
        sc->busy = false;
        pass_end(sc, rc);
    }
}

static void on_pace(uv_timer_t *t)
{
    struct chunk_scrub *sc = t->data;

    if (!sc->stopped)
        piece_submit(sc);
}

/* Start the next piece, waiting for the bucket first; end the pass after
 * the last chunk. */
static void scan_next(struct chunk_scrub *sc)
{
    struct chunk_store *s = sc->srv->store;
    uint64_t wait;

    while (sc->next < sc->n) {
        const struct chunk_info *ci = &sc->list[sc->next];
        if (sc->off < ci->length && !chunk_store_is_bad(s, ci->id))
            break;
        if (sc->off >= ci->length)
            sc->st.chunks++; /* empty: nothing to verify */
        chunk_skip(sc);
    }
    if (sc->next >= sc->n) {
        pass_end(sc, 0);
        return;
    }
    sc->piece = (uint32_t)(sc->list[sc->next].length - sc->off);
    if (sc->piece > PIECE)
        sc->piece = PIECE;
    wait = chunk_rate_take(&sc->rate, sc->piece, uv_hrtime());
    if (wait == 0)
        piece_submit(sc);
    else
        uv_timer_start(&sc->pace, on_pace, chunk_rate_ms(wait), 0);
}

/* ---- Listing ----------------------------------------------------------- */

static int list_add(const struct chunk_info *ci, void *arg)
{
    struct chunk_scrub *sc = arg;

    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 256;
        struct chunk_info *n = realloc(sc->list, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        sc->list = n;
        sc->cap = cap;
    }
    sc->list[sc->n++] = *ci;
    return 0;
}

static void list_run(uv_work_t *w)
{
    struct chunk_scrub *sc = w->data;

    sc->list_rc = chunk_store_list(sc->srv->store, list_add, sc);
}

static void list_done(uv_work_t *w, int status)
{
    struct chunk_scrub *sc = w->data;

    sc->busy = false;
    if (sc->stopped) {
        maybe_free(sc);
        return;
    }
    if (sc->restart) {
        pass_begin(sc);
        return;
    }
    if (status < 0)
        sc->list_rc = status;
    if (sc->list_rc < 0) {
        pass_end(sc, sc->list_rc);
        return;
    }
    sc->st.total = sc->n;
    log_info("chunk scrub: pass started: chunks=%zu rate_bps=%llu", sc->n,
             (unsigned long long)sc->rate.bps);
    scan_next(sc);
}

/* ---- Passes ------------------------------------------------------------ */

void chunk_scrub_pass(struct chunk_scrub *sc, uint64_t bps)
{
    struct chunk_server *srv = sc->srv;

    if (sc->stopped)
        return;
    if (bps == 0)
        bps = srv->scrub_bps ? srv->scrub_bps : CHUNK_SCRUB_DEFAULT_BPS;
    if (sc->st.running) {
        chunk_rate_set(&sc->rate, bps);
        log_info("chunk scrub: pass restarted: rate_bps=%llu",
                 (unsigned long long)bps);
        if (sc->busy) {
            sc->restart = true; /* the job's done callback restarts */
            return;
        }
        uv_timer_stop(&sc->pace);
        pass_begin(sc);
        return;
    }
    sc->st.running = true;
    chunk_rate_init(&sc->rate, bps, 0, uv_hrtime());
    pass_begin(sc);
}

/* (Re)start the pass: counters to zero, list the chunks again. */
static void pass_begin(struct chunk_scrub *sc)
{
    assert(!sc->busy); /* invariant 1 */
    sc->restart = false;
    sc->st.chunks = sc->st.bytes = sc->st.errors = sc->st.total = 0;
    sc->st.last_start_s = (int64_t)time(NULL);
    free(sc->list);
    sc->list = NULL;
    sc->n = sc->cap = sc->next = 0;
    sc->off = 0;
    sc->list_rc = 0;
    sc->list_work.data = sc;
    sc->busy = true;
    uv_queue_work(sc->srv->loop, &sc->list_work, list_run, list_done);
}

static void on_period(uv_timer_t *t)
{
    struct chunk_scrub *sc = t->data;

    chunk_scrub_pass(sc, sc->srv->scrub_bps);
}

void chunk_scrub_get_stats(const struct chunk_scrub *sc,
                           struct chunk_scrub_stats *st)
{
    *st = sc->st;
}

static void on_closed(uv_handle_t *h)
{
    struct chunk_scrub *sc = h->data;

    sc->open_handles--;
    maybe_free(sc);
}

int chunk_scrub_start(struct chunk_server *srv)
{
    struct chunk_scrub *sc = calloc(1, sizeof(*sc));

    if (!sc || !(sc->buf = malloc(PIECE))) {
        free(sc);
        return -ENOMEM;
    }
    sc->srv = srv;
    sc->sj.sc = sc;
    uv_timer_init(srv->loop, &sc->period);
    uv_timer_init(srv->loop, &sc->pace);
    sc->period.data = sc;
    sc->pace.data = sc;
    sc->open_handles = 2;
    if (srv->scrub_bps && srv->scrub_interval_s) {
        uint64_t ms = srv->scrub_interval_s * 1000;
        uv_timer_start(&sc->period, on_period, ms, ms);
    }
    srv->scrub = sc;
    return 0;
}

void chunk_scrub_stop(struct chunk_scrub *sc)
{
    if (!sc || sc->stopped)
        return;
    sc->stopped = true;
    if (sc->srv->scrub == sc)
        sc->srv->scrub = NULL;
    uv_timer_stop(&sc->period);
    uv_timer_stop(&sc->pace);
    uv_close((uv_handle_t *)&sc->period, on_closed);
    uv_close((uv_handle_t *)&sc->pace, on_closed);
}

/* ---- SCRUB_START_REQ --------------------------------------------------- */

void chunk_scrub_handle(struct chunk_server *srv, struct peer *p,
                        uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct proto_scrub_start_req m;
    int rc = proto_scrub_start_req_decode(payload, len, &m);

    if (rc == 0 && srv->stopping)
        rc = -ESHUTDOWN;
    if (rc == 0 && !srv->scrub)
        rc = -EOPNOTSUPP;
    if (rc == 0) {
        log_info("chunk scrub: requested: rate_mb=%u peer=%s", m.rate_mb,
                 peer_name(p));
        chunk_scrub_pass(srv->scrub, (uint64_t)m.rate_mb << 20);
    }
    chunk_reply(p, PROTO_MSG_SCRUB_START_REP, req_id, rc, NULL, 0);
}
