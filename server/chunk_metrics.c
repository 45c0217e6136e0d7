/* chunk_metrics.c: tessera-chunkd's Prometheus endpoint (--http).
 *
 * The page is rendered on the loop thread (http.h, loop mode), so it reads
 * the store and the scrubber directly.  It shows: the requests this
 * server answered by message, with errors and payload bytes (opcount.h,
 * counted in common/peer.c); the latency stages of chunk_dispatch.c and
 * chunk_job.c; the chunks held, the file system's capacity and free
 * space; the scrubber's progress; the process's CPU time.  The list with
 * meanings is in docs/operations.md, "Metrics".
 */
#include "chunk_internal.h"

#include "http.h"
#include "metrics.h"
#include "opcount.h"

static void render_store(struct chunk_server *srv, struct metrics_buf *b)
{
    uint64_t cap = 0, free_b = 0;

    metrics_u64(b, "tessera_chunkd_chunks", METRICS_GAUGE,
                "Chunks stored on this server.", chunk_store_count(srv->store));
    metrics_u64(b, "tessera_chunkd_open_chunks", METRICS_GAUGE,
                "Idle chunks whose files are kept open.",
                chunk_store_cached(srv->store));
    metrics_u64(b, "tessera_chunkd_used_bytes", METRICS_GAUGE,
                "Bytes the chunk files take on disk.",
                chunk_store_allocated(srv->store));
    if (chunk_store_space(srv->store, &cap, &free_b) == 0) {
        metrics_u64(b, "tessera_chunkd_capacity_bytes", METRICS_GAUGE,
                    "Size of the file system holding the chunks.", cap);
        metrics_u64(b, "tessera_chunkd_free_bytes", METRICS_GAUGE,
                    "Bytes free for chunks on that file system.", free_b);
    }
}

static void render_scrub(struct chunk_server *srv, struct metrics_buf *b)
{
    struct chunk_scrub_stats st;

    if (!srv->scrub)
        return;
    chunk_scrub_get_stats(srv->scrub, &st);
    metrics_u64(b, "tessera_chunkd_scrub_passes_total", METRICS_COUNTER,
                "Checksum verification passes finished.", st.passes);
    metrics_u64(b, "tessera_chunkd_scrub_running", METRICS_GAUGE,
                "1 while a verification pass runs.", st.running);
    metrics_u64(b, "tessera_chunkd_scrub_pass_chunks", METRICS_GAUGE,
                "Chunks verified by the current or last pass.", st.chunks);
    metrics_u64(b, "tessera_chunkd_scrub_pass_bytes", METRICS_GAUGE,
                "Bytes verified by the current or last pass.", st.bytes);
    metrics_u64(b, "tessera_chunkd_scrub_pass_errors", METRICS_GAUGE,
                "Bad blocks found by the current or last pass.", st.errors);
}

static int render(struct metrics_buf *b, void *arg)
{
    struct chunk_server *srv = arg;

    opcount_render(&opcount_served, b, "tessera_", "answered");
    metrics_lat_stages(b);
    render_store(srv, b);
    render_scrub(srv, b);
    metrics_process(b);
    return 0;
}

int chunk_metrics_start(struct chunk_server *srv, const char *addr)
{
    return http_metrics_start(addr, srv->loop, render, srv, &srv->http);
}
