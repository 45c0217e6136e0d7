/* fc_metrics.c: tessera-mount's Prometheus endpoint (--http).
 *
 * The page runs on the HTTP server's own thread (http.h) and reads what
 * is safe from any thread: the client library's requests to metad and
 * the chunk servers by message (opcount.h, counted in common/rpc.c), its
 * latency stages, the delayed-write bytes held (one lock, as the writers
 * take it), the callback breaks received, the listing pages served, the
 * groups cache's counts (its lock), the request loop's threads and
 * handovers (atomics), the connections whose server stopped answering
 * (rpc.c), and the process's CPU time.  The list with meanings
 * is in docs/operations.md, "Metrics".
 */
#include "fc_internal.h"

#include "http.h"
#include "metrics.h"
#include "opcount.h"
#include "rpc.h"

static int render(struct metrics_buf *b, void *arg)
{
    struct fc_fs *fs = arg;

    opcount_render(&opcount_called, b, "tessera_client_",
                   "sent to metad and the chunk servers");
    rpc_metrics_render(b);
    metrics_lat_stages(b);
    metrics_u64(b, "tessera_mount_dirty_bytes", METRICS_GAUGE,
                "Bytes of delayed writes not yet written back.",
                cl_client_dirty(fs->cl));
    metrics_u64(b, "tessera_mount_callback_breaks_total", METRICS_COUNTER,
                "Cache callback breaks received from metad.",
                cl_cb_epoch(fs->cl));
    struct cl_ns_stats ns;
    cl_ns_stats(fs->cl, &ns);
    metrics_u64(b, "tessera_mount_local_changes_queued", METRICS_GAUGE,
                "Namespace changes answered by the mount, not yet applied "
                "by metad.",
                ns.queued);
    metrics_u64(b, "tessera_mount_local_changes_total", METRICS_COUNTER,
                "Namespace changes answered by the mount (creates, unlinks "
                "in delegated directories; releases).",
                ns.answered);
    metrics_u64(b, "tessera_mount_local_changes_sent_total", METRICS_COUNTER,
                "Namespace changes answered by the mount and sent to metad "
                "(again after a lost connection counts again).",
                ns.sent);
    metrics_u64(b, "tessera_mount_local_changes_failed_total", METRICS_COUNTER,
                "Namespace changes answered by the mount that metad "
                "refused (reported by the next fsync).",
                ns.failed);
    metrics_u64(b, "tessera_mount_dir_pages_total", METRICS_COUNTER,
                "Pages of directory listings the kernel asked for; a "
                "listing the kernel kept costs none.",
                __atomic_load_n(&fs->dir_pages, __ATOMIC_RELAXED));
    uint64_t reads, hits;
    fc_groups_stats(fs->groups, &reads, &hits);
    metrics_u64(b, "tessera_mount_groups_reads_total", METRICS_COUNTER,
                "Callers' supplementary groups read from /proc.", reads);
    metrics_u64(b, "tessera_mount_groups_cached_total", METRICS_COUNTER,
                "Callers' supplementary groups answered from the cache "
                "(-o groups_cache).",
                hits);
    metrics_u64(b, "tessera_mount_request_threads", METRICS_GAUGE,
                "Threads serving FUSE requests (one reads at a time).",
                __atomic_load_n(&fs->loop.threads, __ATOMIC_RELAXED));
    metrics_u64(b, "tessera_mount_request_handovers_total", METRICS_COUNTER,
                "Requests that waited (for metad, a chunk server, a lock) "
                "and handed the reading of the next ones to another "
                "thread first.",
                __atomic_load_n(&fs->loop.handovers, __ATOMIC_RELAXED));
    metrics_process(b);
    return 0;
}

int fc_metrics_start(struct fc_fs *fs, const char *addr,
                     struct http_server **out)
{
    cl_stats_register();
    return http_metrics_start(addr, NULL, render, fs, out);
}
