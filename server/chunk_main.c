/* chunk_main.c: tessera-chunkd's main(): options, the data directory and
 * its uuid, the libuv loop, signals.
 *
 *   tessera-chunkd --data DIR --listen ADDR:PORT --meta ADDR:PORT
 *                  [--advertise ADDR:PORT] [--repair-mbps N]
 *                  [--scrub-mbps N] [--scrub-interval-s N]
 *                  [--http ADDR:PORT] [-D module=1] [--help]
 *
 * The uuid (16 random bytes, kept as 32 hex digits in DIR/uuid) is made on
 * the first start and identifies this server to metad across restarts and
 * address changes.  SIGUSR1 prints the latency stages (lat.h) and the CPU
 * time used since the last dump.  SIGINT and SIGTERM close the listener and every
 * connection; the loop then runs until the disk jobs in flight finish and
 * the process exits 0.  Serving requests, the store, the metad link,
 * repair copies and the scrubber live in the other chunk_*.c files; the
 * --repair-* and --scrub-* options only set how fast and how often those
 * run (given in MiB/s, kept in bytes/s).
 */
#include "chunk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "conf.h"
#include "conn_limit.h"
#include "http.h"
#include "lat.h"
#include "log.h"
#include "mem.h"

/* Writes of at least this many KiB skip the page cache by default
 * (chunk_store.c, "Direct writes"). */
#define DIRECT_KIB_DEFAULT 256
#define DIRECT_KIB_DEFAULT_STR "256"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tessera-chunkd --data DIR --listen ADDR:PORT "
            "--meta ADDR:PORT\n"
            "                      [--advertise ADDR:PORT] [--repair-mbps N]\n"
            "                      [--scrub-mbps N] [--scrub-interval-s N] "
            "[--inline-writes MODE]\n"
            "                      [--direct-write-kib N]\n"
            "                      [--http ADDR:PORT] [-D module=1] "
            "[--config FILE] [--help]\n"
            "  --data DIR        chunk files and the server uuid\n"
            "  --listen ADDR     where clients and other servers connect\n"
            "  --meta ADDR       the metadata service\n"
            "  --key FILE        this server's key file (default "
            "$TESSERA_KEY)\n"
            "  --no-auth         ask clients for no ticket and use no key "
            "(docs/security.md)\n"
            "  --secure          every link encrypted and authenticated: "
            "refuse peers\n"
            "                    that do not ask, ask metad and other "
            "servers\n"
            "  --max-conns-per-addr N  connections one address may hold "
            "(default 256, 0 = no limit)\n"
            "  --max-sessions-per-identity N  authenticated connections one "
            "identity may hold (default 1024, 0 = no limit)\n"
            "  --advertise ADDR  address given to metad (default: --listen)\n"
            "  --repair-mbps N   copy chunks for repair at most N MiB/s "
            "(default 100, 0 = unlimited)\n"
            "  --scrub-mbps N    verify stored data at most N MiB/s "
            "(default 8, 0 = no periodic pass)\n"
            "  --scrub-interval-s N  seconds between scrub passes "
            "(default 86400)\n"
            "  --inline-writes MODE  small writes on the event loop: "
            "buffered (default),\n"
            "                    nowait (only where the file system has "
            "RWF_NOWAIT) or off\n"
            "  --direct-write-kib N  writes of at least N KiB skip the page "
            "cache (O_DIRECT;\n"
            "                    default " DIRECT_KIB_DEFAULT_STR ", 0 = never)\n"
            "  --http ADDR       serve Prometheus metrics at "
            "http://ADDR/metrics (default: off)\n"
            "  -D, --debug module=1  enable debug logging for a module "
            "(chunk.store, chunk.dispatch, chunk.replicate, peer)\n"
            "  --config FILE     read options from FILE first, KEY = VALUE "
            "lines named as the long options here\n"
            "  --fault-read-eio ID  for tests: every read of chunk ID (hex) "
            "fails with EIO\n");
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int uuid_parse(const char *s, uint8_t uuid[16])
{
    for (int i = 0; i < 16; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        uuid[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Read DIR/uuid, or make it: written to a temporary file, synced, then
 * renamed into place so a crash never leaves a half-written uuid. */
static int uuid_load(const char *dir, uint8_t uuid[16])
{
    char path[4096], tmp[4096], text[34];
    ssize_t n;
    int fd, rc = 0;

    snprintf(path, sizeof(path), "%s/uuid", dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, text, sizeof(text) - 1);
        close(fd);
        if (n < 32 || uuid_parse(text, uuid) < 0) {
            log_error("chunkd: bad uuid file: path=%s", path);
            return -EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT)
        return -errno;
    if (getrandom(uuid, 16, 0) != 16)
        return -errno;
    for (int i = 0; i < 16; i++)
        snprintf(text + 2 * i, 3, "%02x", uuid[i]);
    text[32] = '\n';
    snprintf(tmp, sizeof(tmp), "%s/uuid.tmp", dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    if (write(fd, text, 33) != 33 || fsync(fd) < 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0) {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        log_info("chunkd: new server uuid: uuid=%.32s", text);
    }
    return rc;
}

static uv_signal_t sigs[2], sig_stats;

/* SIGUSR1: the latency stages and the CPU time used since the last dump,
 * to the log (docs/performance.md, "Latency budget"). */
static void on_stats(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    log_info("chunkd: stats (since the last dump) follow");
    lat_dump_interval(stderr);
    lat_cpu_line(stderr);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct chunk_server *srv = h->data;

    if (srv->stopping)
        return;
    log_info("chunkd: stopping: signal=%d", signum);
    srv->stopping = true;
    peer_listener_close(srv->listener);
    srv->listener = NULL;
    chunk_dispatch_close_all();
    chunk_meta_stop(srv->meta);
    chunk_scrub_stop(srv->scrub);
    chunk_chain_close(srv->chain);
    http_server_stop(srv->http);
    srv->http = NULL;
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&sigs[i], NULL);
    uv_close((uv_handle_t *)&sig_stats, NULL);
}

struct opts {
    const char *data, *listen, *meta, *advertise, *http, *key;
    bool no_auth, secure;
    unsigned per_addr, per_identity; /* conn_limit.h */
    uint64_t repair_mbps, scrub_mbps, scrub_interval_s, direct_write_kib;
    enum chunk_inline_writes inline_writes;
    uint64_t fault_read_eio;
};

/* A whole non-negative decimal number no larger than @max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"meta", required_argument, NULL, 'm'},
        {"key", required_argument, NULL, 'k'},
        {"no-auth", no_argument, NULL, 'N'},
        {"secure", no_argument, NULL, 'E'},
        {"max-conns-per-addr", required_argument, NULL, 'C'},
        {"max-sessions-per-identity", required_argument, NULL, 'P'},
        {"advertise", required_argument, NULL, 'a'},
        {"repair-mbps", required_argument, NULL, 'R'},
        {"scrub-mbps", required_argument, NULL, 'S'},
        {"scrub-interval-s", required_argument, NULL, 'I'},
        {"inline-writes", required_argument, NULL, 'W'},
        {"direct-write-kib", required_argument, NULL, 'O'},
        {"http", required_argument, NULL, 'H'},
        {"metrics", required_argument, NULL, 'H'},
        {"debug", required_argument, NULL, 'D'},
        {"fault-read-eio", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    if (conf_args("tessera-chunkd", longopts, argc, argv, &argc, &argv) < 0)
        return -1;
    while ((c = getopt_long(argc, argv, "D:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o->data = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'm':
            o->meta = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'N':
            o->no_auth = true;
            break;
        case 'E':
            o->secure = true;
            break;
        case 'C':
        case 'P':
            if (conn_limit_parse(optarg, c == 'C' ? &o->per_addr
                                                  : &o->per_identity) < 0) {
                fprintf(stderr, "tessera-chunkd: bad number: %s\n", optarg);
                return 2;
            }
            break;
        case 'a':
            o->advertise = optarg;
            break;
        case 'H':
            o->http = optarg;
            break;
        case 'R':
        case 'S':
        case 'I':
        case 'O':
            if (parse_u64(optarg, 1u << 20,
                          c == 'R'   ? &o->repair_mbps
                          : c == 'S' ? &o->scrub_mbps
                          : c == 'O' ? &o->direct_write_kib
                                     : &o->scrub_interval_s) < 0) {
                fprintf(stderr, "tessera-chunkd: bad number: %s\n", optarg);
                return 2;
            }
            break;
        case 'W':
            if (!strcmp(optarg, "buffered")) {
                o->inline_writes = CHUNK_INLINE_BUFFERED;
            } else if (!strcmp(optarg, "nowait")) {
                o->inline_writes = CHUNK_INLINE_NOWAIT;
            } else if (!strcmp(optarg, "off")) {
                o->inline_writes = CHUNK_INLINE_OFF;
            } else {
                fprintf(stderr, "tessera-chunkd: --inline-writes: buffered, "
                                "nowait or off\n");
                return 2;
            }
            break;
        case 'F': {
            char *end;

            errno = 0;
            o->fault_read_eio = strtoull(optarg, &end, 16);
            if (errno || *end || !*optarg || !o->fault_read_eio) {
                fprintf(stderr, "tessera-chunkd: bad chunk id: %s\n", optarg);
                return 2;
            }
            break;
        }
        case 'D':
            if (log_debug_enable(optarg) < 0) {
                fprintf(stderr, "tessera-chunkd: bad -D spec: %s\n", optarg);
                return 2;
            }
            log_set_level(LOG_LVL_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !o->data || !o->listen || !o->meta) {
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct chunk_server srv;
    struct opts o = {
        .repair_mbps = 100,
        .scrub_mbps = 8,
        .scrub_interval_s = 86400,
        .inline_writes = CHUNK_INLINE_BUFFERED,
        .per_addr = CONN_LIMIT_PER_ADDR,
        .per_identity = CONN_LIMIT_PER_IDENTITY,
        .direct_write_kib = DIRECT_KIB_DEFAULT,
    };
    struct conn_limit *limits = NULL;
    uv_loop_t loop;
    int rc;

    mem_tune();
    log_init(argv[0]);
    rc = parse_args(argc, argv, &o);
    if (rc) /* 1: --help; anything else: a bad command line */
        return rc == 1 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);

    memset(&srv, 0, sizeof(srv));
    srv.loop = &loop;
    srv.listen_addr = o.listen;
    srv.advertise_addr = o.advertise ? o.advertise : o.listen;
    srv.meta_addr = o.meta;
    srv.repair_bps = o.repair_mbps << 20;
    srv.scrub_bps = o.scrub_mbps << 20;
    srv.scrub_interval_s = o.scrub_interval_s;
    snprintf(srv.name, sizeof(srv.name), "tessera-chunkd %s",
             srv.advertise_addr);

    if (o.secure && o.no_auth) {
        log_error("chunkd: --secure needs authentication: drop --no-auth");
        return 1;
    }
    if (chunk_auth_init(&srv, auth_key_path(o.key), o.no_auth) < 0)
        return 1;
    srv.auth.secure = o.secure;
    rc = chunk_store_open(o.data, &srv.store);
    if (rc < 0) {
        log_error("chunkd: cannot open data directory: err=%d dir=%s", rc,
                  o.data);
        return 1;
    }
    chunk_store_set_inline_writes(srv.store, o.inline_writes);
    chunk_store_set_fault_read_eio(srv.store, o.fault_read_eio);
    chunk_store_set_direct_writes(
        srv.store, (uint32_t)(o.direct_write_kib > PROTO_MAX_DATA / 1024
                                  ? PROTO_MAX_DATA
                                  : o.direct_write_kib * 1024));
    rc = uuid_load(o.data, srv.uuid);
    if (rc < 0) {
        log_error("chunkd: cannot load uuid: err=%d dir=%s", rc, o.data);
        chunk_store_close(srv.store);
        return 1;
    }
    uv_loop_init(&loop);
    rc = conn_limit_new(o.per_addr, o.per_identity, &limits);
    if (rc == 0)
        rc = chunk_jobs_new(&loop, &srv.jobs);
    if (rc == 0)
        rc = chunk_chain_new(&srv, &srv.chain);
    if (rc == 0) {
        rc = peer_listen(&loop, o.listen, &chunk_peer_ops, &srv, &srv.listener);
        if (rc < 0)
            log_error("chunkd: cannot listen: err=%d addr=%s", rc, o.listen);
    }
    if (rc == 0)
        peer_listener_set_identity(srv.listener, srv.name, 0);
    if (rc == 0 && !o.no_auth)
        peer_listener_set_auth(srv.listener, PROTO_AUTH_BIT(PROTO_AUTH_TICKET));
    if (rc == 0) {
        peer_listener_set_limits(srv.listener, limits);
        peer_listener_set_secure(srv.listener, o.secure);
    }
    if (rc == 0)
        rc = chunk_meta_start(&srv, &srv.meta);
    if (rc == 0)
        rc = chunk_scrub_start(&srv);
    if (rc == 0 && o.http)
        rc = chunk_metrics_start(&srv, o.http);
    if (rc < 0) {
        chunk_scrub_stop(srv.scrub);
        chunk_meta_stop(srv.meta);
        peer_listener_close(srv.listener);
        chunk_chain_close(srv.chain);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        chunk_jobs_free(srv.jobs);
        chunk_store_close(srv.store);
        conn_limit_free(limits);
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &sigs[i]);
        sigs[i].data = &srv;
        uv_signal_start(&sigs[i], on_signal, i == 0 ? SIGINT : SIGTERM);
    }
    chunk_stats_register();
    uv_signal_init(&loop, &sig_stats);
    uv_signal_start(&sig_stats, on_stats, SIGUSR1);
    log_info("chunkd: serving: listen=%s advertise=%s meta=%s data=%s "
             "chunks=%u repair_mbps=%llu scrub_mbps=%llu "
             "scrub_interval_s=%llu",
             o.listen, srv.advertise_addr, o.meta, o.data,
             chunk_store_count(srv.store), (unsigned long long)o.repair_mbps,
             (unsigned long long)o.scrub_mbps,
             (unsigned long long)o.scrub_interval_s);

    uv_run(&loop, UV_RUN_DEFAULT);

    rc = uv_loop_close(&loop);
    if (rc < 0)
        log_warn("chunkd: loop closed with handles open: err=%d", rc);
    chunk_jobs_free(srv.jobs);
    chunk_store_close(srv.store);
    conn_limit_free(limits); /* every peer is gone */
    log_info("chunkd: stopped");
    return 0;
}
