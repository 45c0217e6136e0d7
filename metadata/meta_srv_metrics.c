/* meta_srv_metrics.c: tessera-metad's Prometheus endpoint (--http).
 *
 * The page is rendered on the loop thread (http.h, loop mode), so it reads
 * the daemon's in-memory state as meta_srv_status.c does, but never the
 * database: a scrape costs no SQL.  It shows the requests answered by
 * message (opcount.h, counted in common/peer.c), the commit latency of
 * the database (the stage "meta.db.commit"), storage servers by state and
 * their capacity, chunk health from the last repair scan, repair and
 * rebalance progress, sessions, cache callbacks, the chunk pool, and the
 * process's CPU time.  The list with meanings is in docs/operations.md,
 * "Metrics". meta_srv_web.c serves it beside the status page.
 */
#include "meta_srv.h"

#include "metrics.h"
#include "opcount.h"

static void render_servers(struct meta_srv *srv, struct metrics_buf *b)
{
    uint64_t n[PROTO_SERVER_REMOVED + 1] = {0}, cap, free_b;
    uint32_t disks;

    for (size_t i = 0; i < srv->nservers; i++) {
        const struct meta_srv_server *s = &srv->servers[i];

        if (s->state <= PROTO_SERVER_REMOVED)
            n[s->state]++;
    }
    meta_srv_capacity(srv, &cap, &free_b, &disks);
    metrics_family(b, "tessera_metad_servers", METRICS_GAUGE,
                   "Registered storage servers, by state.");
    for (uint32_t st = PROTO_SERVER_UP; st <= PROTO_SERVER_REMOVED; st++) {
        struct metrics_label l = {"state", meta_srv_state_name(st)};
        metrics_sample_u64(b, "tessera_metad_servers", &l, 1, n[st]);
    }
    metrics_u64(b, "tessera_metad_capacity_bytes", METRICS_GAUGE,
                "Capacity of the storage servers not down, as they report, "
                "each disk once (servers of one host with the same size).",
                cap);
    metrics_u64(b, "tessera_metad_free_bytes", METRICS_GAUGE,
                "Free space of the storage servers not down, as they report, "
                "each disk once.",
                free_b);
}

static void render_chunks(struct meta_srv *srv, struct metrics_buf *b)
{
    const struct meta_srv_repair *r = &srv->repair;
    const struct {
        const char *health;
        uint64_t n;
    } rows[] = {
        {"ok", r->ok},
        {"under_goal", r->under},
        {"over_goal", r->over},
        {"missing", r->missing},
    };

    metrics_family(b, "tessera_metad_chunks", METRICS_GAUGE,
                   "Chunks by health at the last repair scan: ok, under_goal "
                   "(fewer good copies than the goal), over_goal, missing "
                   "(no copy on a server that is not down).");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct metrics_label l = {"health", rows[i].health};
        metrics_sample_u64(b, "tessera_metad_chunks", &l, 1, rows[i].n);
    }
}

/* One unlabelled series. */
struct series {
    const char *name;
    enum metrics_type type;
    const char *help;
    uint64_t v;
};

static void render_series(struct metrics_buf *b, const struct series *s,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        metrics_u64(b, s[i].name, s[i].type, s[i].help, s[i].v);
}

static void render_repair(struct meta_srv *srv, struct metrics_buf *b)
{
    const struct meta_srv_repair *r = &srv->repair;
    const struct series s[] = {
        {"tessera_metad_repair_scans_total", METRICS_COUNTER,
         "Repair scans of every chunk.", r->scans},
        {"tessera_metad_repair_copies_total", METRICS_COUNTER,
         "Chunk copies made for repair, drain and rebalance.", r->copied},
        {"tessera_metad_repair_copy_failures_total", METRICS_COUNTER,
         "Chunk copies that failed.", r->copy_failed},
        {"tessera_metad_repair_copied_bytes_total", METRICS_COUNTER,
         "Bytes of the chunk copies made.", r->bytes},
        {"tessera_metad_repair_dropped_total", METRICS_COUNTER,
         "Surplus copies dropped.", r->dropped},
        {"tessera_metad_rebalance_moved_total", METRICS_COUNTER,
         "Chunks moved by rebalance.", r->moved},
        {"tessera_metad_repair_inflight", METRICS_GAUGE,
         "Chunk copies in flight.", r->inflight},
        {"tessera_metad_repair_queued", METRICS_GAUGE,
         "Chunks waiting for a copy at the last scan.", r->queued},
        {"tessera_metad_scrub_requests_total", METRICS_COUNTER,
         "Scrub passes requested of the storage servers (tessera scrub).",
         r->scrubs},
    };

    render_series(b, s, sizeof(s) / sizeof(s[0]));
    if (r->last_done_ns > 0) {
        metrics_family(b, "tessera_metad_repair_last_done_timestamp_seconds",
                       METRICS_GAUGE,
                       "When every chunk was last back at its goal after "
                       "repair (Unix time).");
        metrics_sample_f64(b,
                           "tessera_metad_repair_last_done_timestamp_seconds",
                           NULL, 0, (double)r->last_done_ns / 1e9);
    }
}

static void render_sessions(struct meta_srv *srv, struct metrics_buf *b)
{
    struct meta_srv_cb_counts cb;

    meta_srv_cb_counts(srv, &cb);
    const struct series s[] = {
        {"tessera_metad_sessions", METRICS_GAUGE, "Client sessions open.",
         srv->nsessions},
        {"tessera_metad_callback_promises", METRICS_GAUGE,
         "Cache callback promises held by client sessions.", cb.promises},
        {"tessera_metad_callback_breaks_sent_total", METRICS_COUNTER,
         "Cache callback breaks sent to clients.", cb.sent},
        {"tessera_metad_callback_breaks_answered_total", METRICS_COUNTER,
         "Cache callback breaks clients answered.", cb.answered},
        {"tessera_metad_callback_breaks_timed_out_total", METRICS_COUNTER,
         "Cache callback breaks not answered in time (the session lost its "
         "promises).",
         cb.timedout},
        {"tessera_metad_callback_recalls_total", METRICS_COUNTER,
         "Recalls sent: breaks asking a writer to write back first.",
         cb.recalls},
    };

    render_series(b, s, sizeof(s) / sizeof(s[0]));
}

static void render_pool(struct meta_srv *srv, struct metrics_buf *b)
{
    unsigned ready, creating;

    meta_srv_pool_count(srv, &ready, &creating);
    const struct series s[] = {
        {"tessera_metad_chunk_pool_ready", METRICS_GAUGE,
         "Empty chunks created ahead of the writes to new files "
         "(--chunk-pool), ready to hand out.",
         ready},
        {"tessera_metad_chunk_pool_creating", METRICS_GAUGE,
         "Chunks of the pool being created on the storage servers.", creating},
        {"tessera_metad_chunk_pool_taken_total", METRICS_COUNTER,
         "New chunks of files that were taken from the pool.", srv->pool.taken},
        {"tessera_metad_chunk_pool_missed_total", METRICS_COUNTER,
         "New chunks of files created in the write's own path: the pool had "
         "none ready on servers fit for it.",
         srv->pool.missed},
    };

    render_series(b, s, sizeof(s) / sizeof(s[0]));
}

int meta_srv_metrics_render(struct metrics_buf *b, void *arg)
{
    struct meta_srv *srv = arg;

    opcount_render(&opcount_served, b, "tessera_", "answered");
    metrics_lat_stages(b);
    render_servers(srv, b);
    render_chunks(srv, b);
    render_repair(srv, b);
    render_sessions(srv, b);
    render_pool(srv, b);
    metrics_process(b);
    return 0;
}
