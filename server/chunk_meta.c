/* chunk_meta.c: the storage server's link to metad.
 *
 * Happy path: dial metad (role CHUNKD, authenticating with this server's
 * key); once the handshake is done ask for the service keys that open the
 * clients' tickets (chunk_auth.c) and send SERVER_REGISTER_REQ (uuid,
 * advertised address, capacity, free) and keep the server id it answers; list
 * every chunk on a worker thread and send them in SERVER_INVENTORY_REQ batches
 * of at most PROTO_INV_MAX entries, the final one (possibly empty) with last=1,
 * each after the previous was answered; then send SERVER_HEARTBEAT_REQ every
 * second, at once, with the space figures of the last statvfs (which runs on a
 * worker thread and so may wait behind disk work: the heartbeat never does).
 * metad also sends its own requests on this connection (CHUNK_SETVERSION,
 * CHUNK_DELETE, CHUNK_TRUNCATE, CHUNK_REPLICATE, SCRUB_START); they go to
 * chunk_dispatch() like any other.
 *
 * Each heartbeat tick also sends, in one CHUNK_USAGE_REQ, the chunks whose
 * bytes on disk changed since the last one (chunk_usage.c), and after the
 * inventory every listed chunk's once (docs/protocol.md §9.5); figures
 * metad does not take are put back for the next tick.
 *
 * Bad replicas found by a read or a scrub (chunk_meta_report_bad()) are
 * queued as CHUNK_REPORT_REQ and sent while RUNNING: at once, and again
 * on every heartbeat tick while unanswered, so a report made while metad
 * is away goes out after the next registration and inventory.  The marks
 * outlive a restart (chunk_store.c), and every chunk still marked at
 * start is reported again (reports_requeue()).  A report
 * metad answers is done, unless the answer is EAGAIN (metad is busy with
 * the chunk: a write or a copy in flight), which is retried likewise.
 *
 * Failure modes: a refused dial, a lost connection, an error answer to
 * REGISTER or INVENTORY (ENOTLEADER from a metad replica that does not
 * lead among them), or a request timing out all close the connection
 * and redial after 1 s, forever, the next address of --meta each time; the
 * server keeps serving clients meanwhile.  Each new connection registers and
 * sends the inventory again.
 *
 *            start / 1 s timer
 *   WAIT ----------------------> DIALING --on_ready--> REGISTERING
 *    ^                                                      | REGISTER_REP
 *    |                                                      v
 *    +------- on_close (any state but STOPPED) --------- INVENTORY
 *                                                           | last answered
 *                                                           v
 *                                                        RUNNING
 *   FROM -> TO                  [function]
 *   WAIT -> DIALING             [on_redial -> dial]
 *   DIALING -> WAIT             [dial, peer_connect failed]
 *   DIALING -> REGISTERING      [on_ready]
 *   REGISTERING -> INVENTORY    [on_register_rep -> inv_start]
 *   INVENTORY -> RUNNING        [on_inventory_rep, after last=1]
 *   any -> WAIT                 [on_close]
 *   any -> STOPPED              [chunk_meta_stop]
 *
 * Invariants:
 *   1. m->p is set exactly from a successful peer_connect() until that
 *      peer's on_close; the link holds one reference on it meanwhile.
 *   2. A worker-thread job (inventory listing, space) started for one
 *      connection is ignored when it finishes on another: @gen differs.
 *   3. m is freed once stopped and no job and no handle is outstanding.
 */
#include "chunk_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net.h"

#define RETRY_MS 1000
#define RETRY_REDIRECT_MS 100 /* after ENOTLEADER: the next metad replica */
#define HEARTBEAT_MS 1000
#define REQ_TIMEOUT_MS 30000

enum meta_state {
    ST_WAIT,
    ST_DIALING,
    ST_REGISTERING,
    ST_INVENTORY,
    ST_RUNNING,
    ST_STOPPED
};

struct chunk_meta {
    struct chunk_server *srv;
    enum meta_state state;
    struct peer *p;
    uint64_t gen; /* connection number (invariant 2) */
    uint32_t server_id;
    uint64_t capacity, free;
    uv_timer_t redial, heartbeat;
    int open_handles;
    int jobs; /* worker-thread jobs in flight (invariant 3) */
    bool space_busy;
    bool down_logged; /* one warning per outage, not one per retry */
    /* The metad dialled now: item @cur of srv->meta_addr, a list for a
     * metad group, the next one at each dial. */
    char addr[256];
    size_t cur;
    bool redirected; /* the registration was answered ENOTLEADER */
    /* Inventory of the current connection. */
    struct chunk_info *inv;
    size_t ninv, inv_cap, inv_sent;
    struct meta_report *reports; /* unanswered, oldest last */
    bool usage_busy;             /* a CHUNK_USAGE_REQ is unanswered */
    /* SCRUB_STATUS: sent on this connection, and the passes it counted. */
    bool scrub_sent;
    uint64_t scrub_passes;
};

/* A CHUNK_REPORT_REQ waiting to be sent or answered. */
struct meta_report {
    struct meta_report *next;
    struct chunk_meta *m;
    bool in_flight;
    uint64_t chunk_id, version;
    uint32_t reason;
};

/* A worker-thread job of the link.  Not chunk_job: these touch no chunk. */
struct meta_work {
    uv_work_t work;
    struct chunk_meta *m;
    uint64_t gen;
    int rc;
    uint64_t capacity, free;
    struct chunk_info *inv;
    size_t ninv, cap;
};

static void dial(struct chunk_meta *m);
static void on_redial(uv_timer_t *t);
static void usage_send(struct chunk_meta *m);

static void maybe_free(struct chunk_meta *m)
{
    /* Invariant 3. */
    if (m->state == ST_STOPPED && !m->p && m->jobs == 0 &&
        m->open_handles == 0) {
        while (m->reports) {
            struct meta_report *r = m->reports;
            m->reports = r->next;
            free(r);
        }
        free(m->inv);
        free(m);
    }
}

static void fail(struct chunk_meta *m, const char *what, int rc)
{
    log_warn("chunk meta: %s failed: err=%d meta=%s", what, rc,
             m->srv->meta_addr);
    m->down_logged = true;
    if (m->p)
        peer_close(m->p);
}

/* ---- Reports of bad replicas ------------------------------------------- */

static void report_unlink(struct chunk_meta *m, struct meta_report *r)
{
    struct meta_report **pp;

    for (pp = &m->reports; *pp != r; pp = &(*pp)->next)
        ;
    *pp = r->next;
    free(r);
}

static void on_report_rep(struct peer *p, int status, const uint8_t *payload,
                          size_t len, void *arg)
{
    struct meta_report *r = arg;
    struct chunk_meta *m = r->m;

    (void)p;
    (void)payload;
    (void)len;
    r->in_flight = false;
    if (status == -ECONNRESET || status == -ETIMEDOUT || status == -EAGAIN)
        return; /* sent again on a later tick */
    if (status < 0)
        log_warn("chunk meta: report refused: chunk=%016llx err=%d meta=%s",
                 (unsigned long long)r->chunk_id, status, m->srv->meta_addr);
    report_unlink(m, r);
}

static void reports_send(struct chunk_meta *m)
{
    if (m->state != ST_RUNNING)
        return;
    for (struct meta_report *r = m->reports; r; r = r->next) {
        struct proto_chunk_report_req req = {
            .server_id = m->server_id,
            .chunk_id = r->chunk_id,
            .version = r->version,
            .reason = r->reason,
        };
        struct proto_wbuf wb;
        int rc;

        if (r->in_flight)
            continue;
        proto_wbuf_init(&wb);
        proto_chunk_report_req_encode(&wb, &req);
        rc = wb.err ? wb.err
                    : peer_request(m->p, PROTO_MSG_CHUNK_REPORT_REQ, wb.p,
                                   wb.len, REQ_TIMEOUT_MS, on_report_rep, r);
        proto_wbuf_free(&wb);
        if (rc < 0) {
            fail(m, "report", rc);
            return;
        }
        r->in_flight = true;
    }
}

/* Queue a report of chunk @chunk_id at @version for metad. */
static void report_queue(struct chunk_meta *m, uint64_t chunk_id,
                         uint64_t version, uint32_t reason)
{
    struct meta_report *r = calloc(1, sizeof(*r));

    if (!r) {
        log_error("chunk meta: report lost: chunk=%016llx err=%d",
                  (unsigned long long)chunk_id, -ENOMEM);
        return;
    }
    r->m = m;
    r->chunk_id = chunk_id;
    r->version = version;
    r->reason = reason;
    r->next = m->reports;
    m->reports = r;
    reports_send(m);
}

void chunk_meta_report_bad(struct chunk_server *srv, uint64_t chunk_id,
                           uint64_t version, uint32_t reason)
{
    struct chunk_meta *m = srv->meta;
    int rc = chunk_store_mark_bad(srv->store, chunk_id, reason);

    if (rc == 0)
        return; /* known already: reported once */
    log_error("chunk bad replica: %s: chunk=%016llx version=%llu, no longer "
              "served, reporting to metad",
              reason == PROTO_REPORT_CHECKSUM ? "checksum mismatch"
                                              : "I/O error",
              (unsigned long long)chunk_id, (unsigned long long)version);
    if (m && m->state != ST_STOPPED)
        report_queue(m, chunk_id, version, reason);
}

/* The chunks marked bad before this start are reported again: metad may
 * never have heard of them (it was away, or the report was refused). */
static void reports_requeue(struct chunk_meta *m)
{
    struct chunk_bad *bad;
    size_t n;

    if (chunk_store_bad_list(m->srv->store, &bad, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct chunk_info ci;

        if (chunk_store_stat(m->srv->store, bad[i].id, &ci) < 0)
            continue;
        log_warn("chunk bad replica: still marked bad, reporting again: "
                 "chunk=%016llx version=%llu",
                 (unsigned long long)ci.id, (unsigned long long)ci.version);
        report_queue(m, ci.id, ci.version, bad[i].reason);
    }
    free(bad);
}

/* ---- Space (statvfs) on a worker thread -------------------------------- */

static void space_run(uv_work_t *w)
{
    struct meta_work *mw = w->data;

    mw->rc = chunk_store_space(mw->m->srv->store, &mw->capacity, &mw->free);
}

static void on_heartbeat_rep(struct peer *p, int status, const uint8_t *payload,
                             size_t len, void *arg)
{
    struct chunk_meta *m = arg;

    (void)payload;
    (void)len;
    if (status < 0 && m->p == p && status != -ECONNRESET)
        fail(m, "heartbeat", status);
}

static void on_scrub_status_rep(struct peer *p, int status,
                                const uint8_t *payload, size_t len, void *arg)
{
    /* docs/protocol.md §9.4: a metad that does not know the message
     * answers an error; the status is only for display, so it is
     * dropped. */
    (void)p;
    (void)status;
    (void)payload;
    (void)len;
    (void)arg;
}

/* docs/protocol.md §9.4: the scrubber's state with each heartbeat while a
 * pass runs, and once more when it ends (or on a new connection). */
static void scrub_status_send(struct chunk_meta *m)
{
    struct chunk_scrub_stats st;
    struct proto_scrub_status_req q;
    struct proto_wbuf wb;

    if (!m->srv->scrub)
        return;
    chunk_scrub_get_stats(m->srv->scrub, &st);
    if (!st.running && m->scrub_sent && st.passes == m->scrub_passes)
        return;
    q = (struct proto_scrub_status_req){
        .server_id = m->server_id,
        .running = st.running,
        .passes = st.passes,
        .chunks = st.chunks,
        .total = st.total,
        .bytes = st.bytes,
        .errors = st.errors,
        .start_s = st.last_start_s,
        .end_s = st.running ? 0 : st.last_end_s,
    };
    proto_wbuf_init(&wb);
    proto_scrub_status_req_encode(&wb, &q);
    if (wb.err == 0 &&
        peer_request(m->p, PROTO_MSG_SCRUB_STATUS_REQ, wb.p, wb.len,
                     REQ_TIMEOUT_MS, on_scrub_status_rep, m) == 0) {
        m->scrub_sent = true;
        m->scrub_passes = st.passes;
    }
    proto_wbuf_free(&wb);
}

static void space_done(uv_work_t *w, int status)
{
    struct meta_work *mw = w->data;
    struct chunk_meta *m = mw->m;

    m->jobs--;
    m->space_busy = false;
    if (status == 0 && mw->rc == 0) {
        m->capacity = mw->capacity;
        m->free = mw->free;
    }
    free(mw);
    maybe_free(m);
}

/* The heartbeat goes out at once, with the space figures of the last
 * statvfs: the fresh ones come from the thread pool, where they may wait
 * behind the disk work of clients, and a heartbeat that waits there makes
 * a busy server look dead to metad. */
static void heartbeat_send(struct chunk_meta *m)
{
    struct proto_server_heartbeat_req hb = {
        .server_id = m->server_id,
        .capacity = m->capacity,
        .free = m->free,
        .chunks = chunk_store_count(m->srv->store),
        .used = chunk_store_allocated(m->srv->store),
    };
    struct proto_wbuf wb;
    int rc;

    proto_wbuf_init(&wb);
    proto_server_heartbeat_req_encode(&wb, &hb);
    rc = wb.err ? wb.err
                : peer_request(m->p, PROTO_MSG_SERVER_HEARTBEAT_REQ, wb.p,
                               wb.len, REQ_TIMEOUT_MS, on_heartbeat_rep, m);
    proto_wbuf_free(&wb);
    if (rc < 0)
        fail(m, "heartbeat", rc);
    else
        scrub_status_send(m);
}

static void on_heartbeat_timer(uv_timer_t *t)
{
    struct chunk_meta *m = t->data;
    struct meta_work *mw;

    if (m->state != ST_RUNNING)
        return;
    reports_send(m);
    if (m->state != ST_RUNNING)
        return;
    heartbeat_send(m);
    if (m->state == ST_RUNNING)
        usage_send(m);
    if (m->state != ST_RUNNING || m->space_busy)
        return; /* the last refresh is still queued: no second one */
    mw = calloc(1, sizeof(*mw));
    if (!mw)
        return; /* try again next second */
    mw->m = m;
    mw->gen = m->gen;
    mw->work.data = mw;
    m->space_busy = true;
    m->jobs++;
    uv_queue_work(m->srv->loop, &mw->work, space_run, space_done);
}

/* ---- Chunks' space on disk (docs/protocol.md §9.5) --------------------- */

/* One CHUNK_USAGE_REQ in flight: its figures, put back unless metad took
 * them. */
struct usage_batch {
    struct chunk_meta *m;
    uint32_t n;
    struct proto_usage_entry v[PROTO_USAGE_MAX];
};

static void usage_put_back(struct chunk_meta *m, const struct usage_batch *b)
{
    struct chunk_usage *u = chunk_store_usage(m->srv->store);

    for (uint32_t i = 0; i < b->n; i++)
        chunk_usage_put(u, b->v[i].chunk_id, b->v[i].bytes, true);
}

static void on_usage_rep(struct peer *p, int status, const uint8_t *payload,
                         size_t len, void *arg)
{
    struct usage_batch *b = arg;
    struct chunk_meta *m = b->m;

    (void)p;
    (void)payload;
    (void)len;
    m->usage_busy = false;
    if (status < 0)
        usage_put_back(m, b);
    free(b);
}

/* Send the figures that changed, one message per heartbeat, while the
 * previous one is answered. */
static void usage_send(struct chunk_meta *m)
{
    struct chunk_usage *u = chunk_store_usage(m->srv->store);
    struct usage_batch *b;
    struct proto_wbuf raw, wb;
    int rc;

    if (m->usage_busy || !u || chunk_usage_count(u) == 0)
        return;
    b = malloc(sizeof(*b));
    if (!b)
        return; /* next second */
    b->m = m;
    b->n = (uint32_t)chunk_usage_take(u, b->v, PROTO_USAGE_MAX);
    proto_wbuf_init(&raw);
    proto_wbuf_init(&wb);
    for (uint32_t i = 0; i < b->n; i++) {
        proto_put_u64(&raw, b->v[i].chunk_id);
        proto_put_u64(&raw, b->v[i].bytes);
    }
    struct proto_chunk_usage_req req = {
        .server_id = m->server_id,
        .count = b->n,
        .raw = {(const char *)raw.p, (uint32_t)raw.len},
    };
    rc = raw.err;
    if (rc == 0) {
        proto_chunk_usage_req_encode(&wb, &req);
        rc = wb.err;
    }
    if (rc == 0)
        rc = peer_request(m->p, PROTO_MSG_CHUNK_USAGE_REQ, wb.p, wb.len,
                          REQ_TIMEOUT_MS, on_usage_rep, b);
    proto_wbuf_free(&raw);
    proto_wbuf_free(&wb);
    if (rc < 0) {
        usage_put_back(m, b);
        free(b);
        return;
    }
    m->usage_busy = true;
}

/* After a registration metad hears every chunk's figure once: it may have
 * missed changes while away, or never have known them.  A figure already
 * waiting is newer than the listing's and stays. */
static void usage_queue_all(struct chunk_meta *m)
{
    struct chunk_usage *u = chunk_store_usage(m->srv->store);

    for (size_t i = 0; u && i < m->ninv; i++)
        chunk_usage_put(u, m->inv[i].id, m->inv[i].alloc, true);
}

/* ---- Inventory --------------------------------------------------------- */

static int inv_add(const struct chunk_info *ci, void *arg)
{
    struct meta_work *mw = arg;

    if (mw->ninv == mw->cap) {
        size_t cap = mw->cap ? 2 * mw->cap : 1024;
        struct chunk_info *n = realloc(mw->inv, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        mw->inv = n;
        mw->cap = cap;
    }
    mw->inv[mw->ninv++] = *ci;
    return 0;
}

static void inv_run(uv_work_t *w)
{
    struct meta_work *mw = w->data;

    mw->rc = chunk_store_list(mw->m->srv->store, inv_add, mw);
}

static void inv_send_next(struct chunk_meta *m);

static void on_inventory_rep(struct peer *p, int status, const uint8_t *payload,
                             size_t len, void *arg)
{
    struct chunk_meta *m = arg;

    (void)payload;
    (void)len;
    if (m->p != p || m->state != ST_INVENTORY)
        return;
    if (status < 0) {
        fail(m, "inventory", status);
        return;
    }
    if (m->inv_sent >= m->ninv) {
        log_info("chunk meta: inventory sent: chunks=%zu server_id=%u", m->ninv,
                 m->server_id);
        usage_queue_all(m);
        free(m->inv);
        m->inv = NULL;
        m->ninv = m->inv_cap = m->inv_sent = 0;
        m->state = ST_RUNNING;
        m->scrub_sent = false;             /* this metad has not heard it yet */
        on_heartbeat_timer(&m->heartbeat); /* first heartbeat now */
        return;
    }
    inv_send_next(m);
}

/* Send the next batch; the last one (maybe empty) carries last=1.  When
 * the inventory is an exact multiple of the batch size a final empty
 * batch is not needed: the batch that reaches the end is the last. */
static void inv_send_next(struct chunk_meta *m)
{
    size_t n = m->ninv - m->inv_sent;
    struct proto_wbuf raw, wb;
    int rc;

    if (n > PROTO_INV_MAX)
        n = PROTO_INV_MAX;
    proto_wbuf_init(&raw);
    proto_wbuf_init(&wb);
    for (size_t i = 0; i < n; i++) {
        const struct chunk_info *ci = &m->inv[m->inv_sent + i];
        proto_put_u64(&raw, ci->id);
        proto_put_u64(&raw, ci->version);
        proto_put_u64(&raw, ci->length);
    }
    struct proto_server_inventory_req req = {
        .server_id = m->server_id,
        .last = m->inv_sent + n == m->ninv,
        .count = (uint32_t)n,
        .raw = {(const char *)raw.p, (uint32_t)raw.len},
    };
    rc = raw.err;
    if (rc == 0) {
        proto_server_inventory_req_encode(&wb, &req);
        rc = wb.err;
    }
    if (rc == 0)
        rc = peer_request(m->p, PROTO_MSG_SERVER_INVENTORY_REQ, wb.p, wb.len,
                          REQ_TIMEOUT_MS, on_inventory_rep, m);
    proto_wbuf_free(&raw);
    proto_wbuf_free(&wb);
    if (rc < 0) {
        fail(m, "inventory", rc);
        return;
    }
    m->inv_sent += n;
}

static void inv_done(uv_work_t *w, int status)
{
    struct meta_work *mw = w->data;
    struct chunk_meta *m = mw->m;

    m->jobs--;
    if (status < 0)
        mw->rc = status;
    if (m->state == ST_INVENTORY && mw->gen == m->gen) {
        if (mw->rc < 0) {
            fail(m, "inventory listing", mw->rc);
        } else {
            m->inv = mw->inv;
            m->ninv = mw->ninv;
            m->inv_cap = mw->cap;
            m->inv_sent = 0;
            mw->inv = NULL;
            inv_send_next(m);
        }
    }
    free(mw->inv);
    free(mw);
    maybe_free(m);
}

static void inv_start(struct chunk_meta *m)
{
    struct meta_work *mw = calloc(1, sizeof(*mw));

    if (!mw) {
        fail(m, "inventory", -ENOMEM);
        return;
    }
    m->state = ST_INVENTORY;
    mw->m = m;
    mw->gen = m->gen;
    mw->work.data = mw;
    m->jobs++;
    uv_queue_work(m->srv->loop, &mw->work, inv_run, inv_done);
}

/* ---- Register ---------------------------------------------------------- */

static void on_register_rep(struct peer *p, int status, const uint8_t *payload,
                            size_t len, void *arg)
{
    struct chunk_meta *m = arg;
    struct proto_server_register_rep rep;

    if (m->p != p || m->state != ST_REGISTERING)
        return;
    if (status == 0)
        status = proto_server_register_rep_decode(payload, len, &rep);
    if (status < 0) {
        m->redirected = status == -EREMCHG; /* docs/protocol.md §5.3 */
        fail(m, "register", status);
        return;
    }
    m->server_id = rep.server_id;
    m->down_logged = false;
    log_info("chunk meta: registered: server_id=%u meta=%s addr=%s",
             rep.server_id, m->srv->meta_addr, m->srv->advertise_addr);
    inv_start(m);
}

static void meta_on_ready(struct peer *p)
{
    struct chunk_meta *m = chunk_server_of(p)->meta;
    struct chunk_server *srv = m->srv;
    struct proto_server_register_req req = {
        .addr = {srv->advertise_addr, (uint32_t)strlen(srv->advertise_addr)},
        .capacity = m->capacity,
        .free = m->free,
    };
    struct proto_wbuf wb;
    int rc;

    if (m->p != p)
        return;
    chunk_auth_service_fetch(srv, p);
    memcpy(req.uuid, srv->uuid, sizeof(req.uuid));
    m->state = ST_REGISTERING;
    proto_wbuf_init(&wb);
    proto_server_register_req_encode(&wb, &req);
    rc = wb.err;
    if (rc == 0)
        rc = peer_request(p, PROTO_MSG_SERVER_REGISTER_REQ, wb.p, wb.len,
                          REQ_TIMEOUT_MS, on_register_rep, m);
    proto_wbuf_free(&wb);
    if (rc < 0)
        fail(m, "register", rc);
}

/* ---- Connection -------------------------------------------------------- */

static void meta_on_close(struct peer *p, int status)
{
    struct chunk_meta *m = chunk_server_of(p)->meta;

    assert(m->p == p); /* invariant 1 */
    if (m->state != ST_STOPPED && !m->down_logged) {
        log_warn("chunk meta: connection lost: err=%d meta=%s, redialling "
                 "every %d ms",
                 status, m->srv->meta_addr, RETRY_MS);
        m->down_logged = true;
    }
    m->p = NULL;
    peer_unref(p);
    free(m->inv);
    m->inv = NULL;
    m->ninv = m->inv_cap = m->inv_sent = 0;
    if (m->state == ST_STOPPED) {
        maybe_free(m);
        return;
    }
    m->state = ST_WAIT;
    /* A replica that does not lead: the next one at once. */
    uv_timer_start(&m->redial, on_redial,
                   m->redirected ? RETRY_REDIRECT_MS : RETRY_MS, 0);
    m->redirected = false;
}

static const struct peer_ops meta_ops = {
    .on_ready = meta_on_ready,
    .on_request = chunk_dispatch,
    .on_close = meta_on_close,
};

static void dial(struct chunk_meta *m)
{
    int rc;

    if (m->state == ST_STOPPED)
        return;
    m->gen++;
    m->state = ST_DIALING;
    /* docs/protocol.md §5.3: a replica that does not lead refuses the
     * registration and the link closes; the next dial tries the next. */
    net_addr_list_item(m->srv->meta_addr, m->cur++, m->addr, sizeof(m->addr));
    rc = peer_connect(m->srv->loop, m->addr, PROTO_ROLE_CHUNKD, m->srv->name,
                      &meta_ops, m->srv, &m->p);
    if (rc == 0 && chunk_auth_link_cred(m->srv, m->p) < 0) {
        peer_close(m->p); /* meta_on_close redials */
        return;
    }
    if (rc < 0) {
        m->p = NULL;
        if (!m->down_logged)
            log_warn("chunk meta: dial failed: err=%d meta=%s, retrying "
                     "every %d ms",
                     rc, m->srv->meta_addr, RETRY_MS);
        m->down_logged = true;
        m->state = ST_WAIT;
        uv_timer_start(&m->redial, on_redial, RETRY_MS, 0);
    }
}

static void on_redial(uv_timer_t *t)
{
    dial(t->data);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct chunk_meta *m = h->data;

    m->open_handles--;
    maybe_free(m);
}

int chunk_meta_start(struct chunk_server *srv, struct chunk_meta **out)
{
    struct chunk_meta *m = calloc(1, sizeof(*m));
    int rc;

    if (!m)
        return -ENOMEM;
    m->srv = srv;
    rc = chunk_store_space(srv->store, &m->capacity, &m->free);
    if (rc < 0) {
        free(m);
        return rc;
    }
    uv_timer_init(srv->loop, &m->redial);
    uv_timer_init(srv->loop, &m->heartbeat);
    m->redial.data = m;
    m->heartbeat.data = m;
    m->open_handles = 2;
    uv_timer_start(&m->heartbeat, on_heartbeat_timer, HEARTBEAT_MS,
                   HEARTBEAT_MS);
    *out = m;
    srv->meta = m;
    m->state = ST_WAIT;
    reports_requeue(m);
    uv_timer_start(&m->redial, on_redial, 0, 0);
    return 0;
}

void chunk_meta_stop(struct chunk_meta *m)
{
    if (!m || m->state == ST_STOPPED)
        return;
    m->state = ST_STOPPED;
    uv_timer_stop(&m->redial);
    uv_timer_stop(&m->heartbeat);
    uv_close((uv_handle_t *)&m->redial, on_handle_closed);
    uv_close((uv_handle_t *)&m->heartbeat, on_handle_closed);
    if (m->p)
        peer_close(m->p); /* meta_on_close frees once all is done */
}
