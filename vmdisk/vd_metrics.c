/* vd_metrics.c: tessera-nbd's Prometheus endpoint (--http) and the NBD
 * request counters behind it.
 *
 * vd_cmd.c counts every answered request here, by command, with its error
 * and its length: relaxed atomic adds from whichever thread sends the
 * reply (reader, worker or a chunk connection's reader on the fast path).
 * The page runs on the HTTP server's own thread (http.h) and reads only
 * atomics: these counters, the block caches' totals (vd_bcache.c), the
 * client library's requests to metad and the
 * chunk servers (opcount.h, counted in common/rpc.c), and the latency
 * stages (nbd.* from vd_cmd.c, cl.chunk.* from the client's fast path).
 * The list with meanings is in docs/operations.md, "Metrics".
 */
#include "vd_internal.h"

#include <stdatomic.h>

#include "http.h"
#include "metrics.h"
#include "opcount.h"
#include "rpc.h"
#include "vd_bcache.h"

/* NBD commands are 0..7 (NBD_CMD_READ .. NBD_CMD_BLOCK_STATUS). */
#define NCMDS 8

static const char *const cmd_names[NCMDS] = {
    "read", "write", "disc",         "flush",
    "trim", "cache", "write_zeroes", "block_status",
};

/* The closed list of NBD error values; index 0 is any other. */
static const struct {
    uint32_t err;
    const char *name;
} errs[] = {
    {0, "other"},
    {NBD_EPERM, "EPERM"},
    {NBD_EIO, "EIO"},
    {NBD_ENOMEM, "ENOMEM"},
    {NBD_EINVAL, "EINVAL"},
    {NBD_ENOSPC, "ENOSPC"},
    {NBD_EOVERFLOW, "EOVERFLOW"},
    {NBD_ENOTSUP, "ENOTSUP"},
    {NBD_ESHUTDOWN, "ESHUTDOWN"},
};
#define NERRS (sizeof(errs) / sizeof(errs[0]))

static _Atomic uint64_t requests[NCMDS + 1]; /* + unknown commands */
static _Atomic uint64_t bytes[NCMDS + 1];
static _Atomic uint64_t errors[NCMDS + 1][NERRS];

void vd_metrics_count(uint16_t type, uint32_t len, uint32_t nbd_err)
{
    unsigned t = type < NCMDS ? type : NCMDS;

    atomic_fetch_add_explicit(&requests[t], 1, memory_order_relaxed);
    if (nbd_err == 0) {
        if (len)
            atomic_fetch_add_explicit(&bytes[t], len, memory_order_relaxed);
        return;
    }
    unsigned k = 0;
    for (unsigned i = 1; i < NERRS; i++)
        if (errs[i].err == nbd_err)
            k = i;
    atomic_fetch_add_explicit(&errors[t][k], 1, memory_order_relaxed);
}

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static const char *cmd_name(unsigned t)
{
    return t < NCMDS ? cmd_names[t] : "other";
}

/* One counter per command, every command. */
static void render_by_cmd(struct metrics_buf *b, const char *name,
                          const char *help, const _Atomic uint64_t *v)
{
    metrics_family(b, name, METRICS_COUNTER, help);
    for (unsigned t = 0; t <= NCMDS; t++) {
        struct metrics_label l = {"command", cmd_name(t)};
        metrics_sample_u64(b, name, &l, 1, load(&v[t]));
    }
}

/* Only the errors that happened, the family too. */
static void render_errors(struct metrics_buf *b)
{
    bool any = false;

    for (unsigned t = 0; t <= NCMDS; t++) {
        for (unsigned k = 0; k < NERRS; k++) {
            uint64_t n = load(&errors[t][k]);
            if (n == 0)
                continue;
            if (!any)
                metrics_family(b, "tessera_nbd_request_errors_total",
                               METRICS_COUNTER,
                               "NBD requests answered with an error, by "
                               "command and NBD error.");
            any = true;
            struct metrics_label l[2] = {{"command", cmd_name(t)},
                                         {"error", errs[k].name}};
            metrics_sample_u64(b, "tessera_nbd_request_errors_total", l, 2, n);
        }
    }
}

static void render_bcache(struct metrics_buf *b)
{
    struct vd_bcache_stats t;

    vd_bcache_get_totals(&t);
    metrics_u64(b, "tessera_nbd_cache_hits_total", METRICS_COUNTER,
                "Reads answered from the block cache.", t.hits);
    metrics_u64(b, "tessera_nbd_cache_misses_total", METRICS_COUNTER,
                "Reads the block cache could not answer.", t.misses);
    metrics_u64(b, "tessera_nbd_cache_fills_skipped_total", METRICS_COUNTER,
                "Reads not kept in the block cache because a write "
                "overlapped them.",
                t.fills_skipped);
    metrics_u64(b, "tessera_nbd_cache_bytes", METRICS_GAUGE,
                "Bytes of image data held by the block caches.",
                t.pages * VD_BCACHE_PAGE);
}

static int render(struct metrics_buf *b, void *arg)
{
    (void)arg;
    render_by_cmd(b, "tessera_nbd_requests_total",
                  "NBD requests answered, by command.", requests);
    render_by_cmd(b, "tessera_nbd_bytes_total",
                  "Bytes of the NBD requests that succeeded (their length), "
                  "by command.",
                  bytes);
    render_errors(b);
    render_bcache(b);
    opcount_render(&opcount_called, b, "tessera_client_",
                   "sent to metad and the chunk servers");
    rpc_metrics_render(b);
    metrics_lat_stages(b);
    metrics_process(b);
    return 0;
}

int vd_metrics_start(const char *addr, struct http_server **out)
{
    return http_metrics_start(addr, NULL, render, NULL, out);
}
