/* meta_main.c: tessera-metad's main(): arguments, the data directory, the
 * database, the libuv loop and signals.
 *
 *   tessera-metad --data DIR --listen ADDR:PORT [--lease-ms N]
 *                 [--suspect-ms N] [--down-ms N] [--repair-rate N]
 *                 [--repair-mbps N] [--promise-ms N] [--http ADDR:PORT]
 *                 [-D module=1]
 *                 [--raft ADDR:PORT --id N [--bootstrap 1=ADDR,2=ADDR,...]]
 *                 [--help]
 *
 * Creates DIR if needed and opens DIR/meta.db; everything on the network
 * is meta_server.c's.  With --raft this metad is replica N of a group
 * whose records go through the Raft log in DIR/raft (meta_raft.c); it
 * serves while it leads.  Without, it is alone, with the local log.
 * SIGINT and SIGTERM stop cleanly: the listener and every connection
 * close, the loop runs down, the database is closed and the process exits
 * 0; a stop not done within META_STOP_GRACE_MS, or a second signal, ends
 * the process with exit 1 (common/stop_guard.c).  Bad arguments, an
 * unusable data directory or database, or an address it cannot listen on
 * exit 1 with one message.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "conf.h"
#include "conn_limit.h"
#include "http.h"
#include "log.h"
#include "meta.h"
#include "meta_raft.h"
#include "meta_srv.h"
#include "stop_guard.h"

/* --repair-mbps 0: 1 TiB/s, which no repair reaches, so the budget never
 * holds a copy back (and the token arithmetic stays far from overflow). */
#define REPAIR_MBPS_UNLIMITED (1u << 20)
/* A clean stop closes sockets and files: far less than this. */
#define META_STOP_GRACE_MS 5000

struct metad {
    uv_loop_t loop;
    struct stop_guard *guard; /* SIGINT, SIGTERM */
    struct meta_srv *srv;
    struct meta_raft *raft;   /* --raft, or NULL */
    struct http_server *http; /* --http, or NULL */
    struct meta_srv_wal *wal; /* checkpoints off the loop thread */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tessera-metad --data DIR --listen ADDR:PORT [options]\n"
            "\n"
            "The Tessera metadata server.\n"
            "\n"
            "  --data DIR        data directory (created if missing); the\n"
            "                    database is DIR/meta.db\n"
            "  --listen ADDR     address to listen on, host:port\n"
            "  --lease-ms N      lease given at startup to the sessions found\n"
            "                    in the database, so their clients can\n"
            "                    reconnect and renew (default %u)\n"
            "  --suspect-ms N    heartbeat age after which a storage server\n"
            "                    is suspect and gets an are-you-up probe\n"
            "                    (default %u)\n"
            "  --down-ms N       heartbeat age after which a storage server\n"
            "                    is down (default %u)\n"
            "  --repair-rate N   chunk copies in flight at once for repair,\n"
            "                    drain and rebalance (default %u)\n"
            "  --repair-mbps N   MiB/s budget for those copies (default %u,\n"
            "                    0 = unlimited)\n"
            "  --http ADDR       serve the status page at http://ADDR/,\n"
            "                    its JSON at /api/status and /api/images,\n"
            "                    Prometheus metrics at /metrics\n"
            "                    (default: off)\n"
            "  --ticket-ms N     lifetime of the tickets for the storage\n"
            "                    servers (default %u)\n"
            "  --promise-ms N    lease of a client's cache callback promise,\n"
            "                    renewed by its requests and while it has\n"
            "                    the file open (default %u)\n"
            "  --raft ADDR       be a replica of a group: the Raft log's\n"
            "                    address, host:port (default: off, one\n"
            "                    metad with a local log)\n"
            "  --id N            this replica's id in the group (with --raft)\n"
            "  --bootstrap LIST  start a new group: 1=ADDR,2=ADDR,... the\n"
            "                    replicas' --raft addresses; only on the very\n"
            "                    first start (a restart reads them from DIR)\n"
            "  --snapshot-every N  records between snapshots of the database\n"
            "                    (default: one per %u bytes of the last\n"
            "                    snapshot, at least %u)\n"
            "  --chunk-pool N    empty chunks kept created ahead of the\n"
            "                    writes to new files, per replica count\n"
            "                    (default %u, 0 = each write creates its own)\n"
            "  --no-auth         ask nobody for a key: every peer that\n"
            "                    reaches the port has every right\n"
            "                    (docs/security.md)\n"
            "  --secure          refuse every peer that does not ask for a\n"
            "                    secure link (TLS keyed from the handshake)\n"
            "  --max-conns-per-addr N  connections one address may hold;\n"
            "                    more are refused (default %u, 0 = no limit)\n"
            "  --max-sessions-per-identity N  authenticated connections\n"
            "                    one identity may hold (default %u, 0 = no\n"
            "                    limit)\n"
            "  -D, --debug MODULE=1  enable debug logging for MODULE\n"
            "                    (meta.srv, meta.write, meta.gc, meta.state,\n"
            "                    meta.repair, meta.lease, meta.cb, meta.auth,\n"
            "                    peer)\n"
            "  --config FILE     read options from FILE first, KEY = VALUE\n"
            "                    lines named as the long options here\n"
            "  -h, --help        show this help\n",
            META_SRV_LEASE_MS, META_SRV_SUSPECT_MS, META_SRV_DOWN_MS,
            META_SRV_REPAIR_RATE, META_SRV_REPAIR_MBPS, META_SRV_TICKET_MS,
            META_SRV_CB_LEASE_MS, META_RAFT_SNAPSHOT_BYTES,
            META_RAFT_SNAPSHOT_MIN, META_SRV_CHUNK_POOL, CONN_LIMIT_PER_ADDR,
            CONN_LIMIT_PER_IDENTITY);
}

/* mkdir -p @path. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void on_stop(void *arg, int signum)
{
    struct metad *d = arg;

    log_info("metad: caught %s, stopping",
             signum == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_stop(d->http);
    d->http = NULL;
    meta_srv_stop(d->srv);
    meta_raft_close(d->raft);
    meta_srv_wal_stop(d->wal);
}

static void on_role(void *arg, bool leading)
{
    meta_srv_lead(arg, leading);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v == 0 || v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"lease-ms", required_argument, NULL, 'L'},
        {"suspect-ms", required_argument, NULL, 'S'},
        {"down-ms", required_argument, NULL, 'O'},
        {"repair-rate", required_argument, NULL, 'R'},
        {"repair-mbps", required_argument, NULL, 'M'},
        {"http", required_argument, NULL, 'H'},
        {"metrics", required_argument, NULL, 'H'},
        {"ticket-ms", required_argument, NULL, 'T'},
        {"promise-ms", required_argument, NULL, 'P'},
        {"no-auth", no_argument, NULL, 'N'},
        {"secure", no_argument, NULL, 'E'},
        {"max-conns-per-addr", required_argument, NULL, 'A'},
        {"max-sessions-per-identity", required_argument, NULL, 'I'},
        {"raft", required_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"snapshot-every", required_argument, NULL, 'X'},
        {"chunk-pool", required_argument, NULL, 'C'},
        {"debug", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct meta_srv_opts opts = {.chunk_pool = META_SRV_CHUNK_POOL};
    unsigned per_addr = CONN_LIMIT_PER_ADDR;
    unsigned per_identity = CONN_LIMIT_PER_IDENTITY;
    struct meta_raft_opts ropts = {0};
    struct meta_log rlog;
    uint32_t id = 0;
    char raftdir[PATH_MAX];
    struct metad d;
    struct meta_db *db = NULL;
    const char *http = NULL;
    char dbpath[PATH_MAX];
    int c, rc;

    log_init(argv[0]);
    /* Before any thread: only the stop guard's takes them. */
    if (stop_guard_block_signals() < 0) {
        log_error("metad: cannot block SIGINT and SIGTERM");
        return 1;
    }
    if (conf_args("tessera-metad", longopts, argc, argv, &argc, &argv) < 0)
        return 1;
    while ((c = getopt_long(argc, argv, "D:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            opts.data_dir = optarg;
            break;
        case 'l':
            opts.listen = optarg;
            break;
        case 'H':
            http = optarg;
            break;
        case 'L':
            if (parse_u32(optarg, &opts.lease_ms) < 0) {
                fprintf(stderr, "tessera-metad: bad --lease-ms: %s\n", optarg);
                return 1;
            }
            break;
        case 'M':
            /* 0 = unlimited, as for chunkd; in meta_srv_opts 0 means the
             * default, so unlimited is a budget no repair reaches. */
            if (!strcmp(optarg, "0")) {
                opts.repair_mbps = REPAIR_MBPS_UNLIMITED;
                break;
            }
            if (parse_u32(optarg, &opts.repair_mbps) < 0 ||
                opts.repair_mbps > REPAIR_MBPS_UNLIMITED) {
                fprintf(stderr, "tessera-metad: bad --repair-mbps: %s\n",
                        optarg);
                return 1;
            }
            break;
        case 'N':
            opts.no_auth = true;
            break;
        case 'E':
            opts.secure = true;
            break;
        case 'A':
        case 'I':
            if (conn_limit_parse(optarg, c == 'A' ? &per_addr : &per_identity) <
                0) {
                fprintf(stderr, "tessera-metad: bad %s: %s\n", argv[optind - 1],
                        optarg);
                return 1;
            }
            break;
        case 'r':
            ropts.addr = optarg;
            break;
        case 'b':
            ropts.bootstrap = optarg;
            break;
        case 'i':
        case 'X':
            if (parse_u32(optarg, c == 'i' ? &id : &ropts.snapshot_every) < 0) {
                fprintf(stderr, "tessera-metad: bad %s: %s\n", argv[optind - 1],
                        optarg);
                return 1;
            }
            break;
        case 'C':
            if (parse_u32(optarg, &opts.chunk_pool) < 0 ||
                opts.chunk_pool > META_SRV_CHUNK_POOL_MAX) {
                fprintf(stderr, "tessera-metad: bad %s: %s (0 to %u)\n",
                        argv[optind - 1], optarg, META_SRV_CHUNK_POOL_MAX);
                return 1;
            }
            break;
        case 'S':
        case 'O':
        case 'T':
        case 'P':
        case 'R': {
            uint32_t *dst = c == 'S'   ? &opts.suspect_ms
                            : c == 'O' ? &opts.down_ms
                            : c == 'T' ? &opts.ticket_ms
                            : c == 'P' ? &opts.promise_ms
                                       : &opts.repair_rate;

            if (parse_u32(optarg, dst) < 0) {
                fprintf(stderr, "tessera-metad: bad %s: %s\n", argv[optind - 1],
                        optarg);
                return 1;
            }
            break;
        }
        case 'D':
            if (log_debug_enable(optarg) < 0) {
                fprintf(stderr, "tessera-metad: bad -D: %s\n", optarg);
                return 1;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tessera-metad: unexpected argument: %s\n",
                argv[optind]);
        return 1;
    }
    if (opts.secure && opts.no_auth) {
        fprintf(stderr, "tessera-metad: --secure needs authentication: "
                        "drop --no-auth\n");
        return 1;
    }
    if (!opts.data_dir || !opts.listen) {
        fprintf(stderr, "tessera-metad: --data and --listen are required "
                        "(see --help)\n");
        return 1;
    }
    if ((ropts.addr || ropts.bootstrap || id) && !(ropts.addr && id)) {
        fprintf(stderr, "tessera-metad: a replica needs both --raft and --id "
                        "(see --help)\n");
        return 1;
    }

    rc = make_dirs(opts.data_dir);
    if (rc < 0) {
        log_error("metad: cannot create data directory: %s dir=%s",
                  strerror(-rc), opts.data_dir);
        return 1;
    }
    if ((size_t)snprintf(dbpath, sizeof(dbpath), "%s/meta.db", opts.data_dir) >=
        sizeof(dbpath)) {
        log_error("metad: data directory path too long: dir=%s", opts.data_dir);
        return 1;
    }
    rc = meta_db_open(dbpath, &db);
    if (rc < 0) {
        log_error("metad: cannot open database: %s path=%s", strerror(-rc),
                  dbpath);
        return 1;
    }

    if (conn_limit_new(per_addr, per_identity, &opts.limits) < 0) {
        log_error("metad: out of memory");
        meta_db_close(db);
        return 1;
    }
    memset(&d, 0, sizeof(d));
    uv_loop_init(&d.loop);
    signal(SIGPIPE, SIG_IGN);
    if (ropts.addr) {
        snprintf(raftdir, sizeof(raftdir), "%s/raft", opts.data_dir);
        ropts.dir = raftdir;
        ropts.id = id;
        /* The Raft log is the durability point: a commit the database
         * loses to a power cut is applied again from the log. */
        rc = meta_db_sync_full(db, false);
        if (rc == 0)
            rc = meta_raft_open(&d.loop, db, &ropts, &d.raft);
        if (rc < 0) {
            uv_run(&d.loop, UV_RUN_DEFAULT);
            meta_raft_free(d.raft);
            uv_loop_close(&d.loop);
            meta_db_close(db);
            return 1;
        }
        meta_raft_log_init(d.raft, &rlog);
        opts.log = &rlog;
        opts.raft = d.raft;
    }
    rc = meta_srv_start(&d.loop, db, &opts, &d.srv);
    if (rc < 0) {
        log_error("metad: cannot load state from the database: %s path=%s",
                  strerror(-rc), dbpath);
        meta_raft_close(d.raft);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        meta_raft_free(d.raft);
        uv_loop_close(&d.loop);
        meta_db_close(db);
        return 1;
    }
    if (d.raft)
        meta_raft_on_role(d.raft, on_role, d.srv);
    rc = meta_srv_listen(d.srv);
    if (rc < 0)
        log_error("metad: cannot listen on %s: %s", opts.listen, strerror(-rc));
    if (rc == 0 && http)
        rc = meta_srv_http_start(d.srv, http, &d.http);
    if (rc == 0) {
        rc = stop_guard_start(&d.loop, META_STOP_GRACE_MS, on_stop, &d,
                              &d.guard);
        if (rc < 0)
            log_error("metad: cannot watch for signals: %s", strerror(-rc));
    }
    if (rc < 0) {
        http_server_stop(d.http);
        meta_srv_stop(d.srv);
        meta_raft_close(d.raft);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        meta_raft_free(d.raft);
        meta_srv_free(d.srv);
        uv_loop_close(&d.loop);
        meta_db_close(db);
        conn_limit_free(opts.limits);
        return 1;
    }
    /* Without it SQLite checkpoints in the commits, as before. */
    meta_srv_wal_start(&d.loop, db, dbpath, &d.wal);
    log_info("metad: listening on %s data=%s instance=%016llx", d.srv->listen,
             opts.data_dir, (unsigned long long)d.srv->instance_id);
    uv_run(&d.loop, UV_RUN_DEFAULT);

    stop_guard_free(d.guard);
    meta_raft_free(d.raft);
    meta_srv_free(d.srv);
    meta_srv_wal_free(d.wal);
    conn_limit_free(opts.limits); /* every peer is gone */
    rc = uv_loop_close(&d.loop);
    if (rc < 0)
        log_warn("metad: loop close: %s", uv_strerror(rc));
    meta_db_close(db);
    log_info("metad: stopped");
    return 0;
}
