/* vd_main.c: tessera-nbd, the NBD export of Tessera images.
 *
 *   tessera-nbd [--meta ADDR:PORT] --listen ADDR:PORT [--unix PATH]
 *               [--backend tessera|mem|dir:PATH] [--images-dir PATH]
 *               [--readonly]
 *               [--default-export NAME] [--workers N] [--cache MODE]
 *               [--cache-size MIB] [--cache-max-dirty MIB]
 *               [--cache-max-dirty-age MS] [--direct-write-max KIB]
 *               [--http ADDR:PORT]
 *               [--tls off|on|require] [--tls-psk FILE]
 *               [--tls-certificates DIR] [--tls-verify-peer]
 *               [-D MODULE=1]
 *
 * Parses the command line, makes the image backend, starts the listeners
 * and runs the server until SIGINT or SIGTERM, then stops it (listeners
 * closed, connections shut down, their threads joined) and frees the
 * backend.  Exit status 0 after a signal, 1 on a usage or setup error.
 *
 * Backends (vd_backend.h): "tessera" (the default) serves Tessera files by
 * path and needs --meta (--images-dir: the folder NBD_OPT_LIST shows); "mem"
 * serves one empty 1 GiB in-memory image named "disk" (the default export);
 * "dir:PATH" serves the files under a local directory.  backend_make() is the
 * one place that knows them.
 *
 * TLS (vd_tls.c): --tls defaults to require when tessera-nbd listens on
 * TCP anywhere but loopback, and to off on loopback and unix sockets
 * unless credentials are given, which ask for require; on and require
 * need credentials, and tessera-nbd refuses to start without them.
 * tls_setup() is the one place that decides.
 */
#include "vd_internal.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "conn_limit.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "net.h"

#define MEM_IMAGE "disk"
#define MEM_SIZE (1ull << 30)

static struct vd_server *the_server;

static void on_signal(int sig)
{
    if (!the_server)
        return;
    if (sig == SIGUSR1)
        vd_server_stats(the_server);
    else
        vd_server_stop(the_server);
}

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s --listen ADDR:PORT [options]\n\n"
            "    --meta ADDR:PORT        metadata service (backend tessera)\n"
            "    --key FILE              the identity's key file (default\n"
            "                            $TESSERA_KEY; docs/security.md)\n"
            "    --secure                encrypted links to metad and the "
            "storage\n"
            "                            servers (default "
            "$TESSERA_SECURE)\n"
            "    --listen ADDR:PORT      serve NBD over TCP\n"
            "    --unix PATH             serve NBD on a unix socket\n"
            "    --backend KIND          tessera (default), mem, or dir:PATH\n"
            "    --images-dir PATH       folder listed to clients (tessera; "
            "default /)\n"
            "    --readonly              export every image read-only\n"
            "    --default-export NAME   image served for an empty name\n"
            "    --workers N             request threads per connection "
            "(default %d)\n"
            "    --cache MODE            block cache per image (tessera): "
            "none,\n"
            "                            writethrough, writeback, or "
            "auto (default:\n"
            "                            writethrough until the image's "
            "first FLUSH)\n"
            "    --cache-size MIB        block cache size per image "
            "(default %llu)\n"
            "    --cache-max-dirty MIB   writeback: unflushed data held "
            "(default %llu)\n"
            "    --cache-max-dirty-age MS  writeback: written within "
            "(default %u)\n"
            "    --direct-write-max KIB  writes up to KIB straight to every "
            "replica\n"
            "                            (default 0: down the chain)\n"
            "    --http ADDR:PORT        serve Prometheus metrics at "
            "http://ADDR:PORT/metrics\n"
            "                            (default: off)\n"
            "    --tls MODE              off, on (optional) or require; "
            "default require\n"
            "                            unless listening on loopback or "
            "unix only\n"
            "    --tls-psk FILE          TLS pre-shared keys, "
            "identity:hexkey lines\n"
            "    --tls-certificates DIR  ca-cert.pem, server-cert.pem, "
            "server-key.pem\n"
            "    --tls-verify-peer       require a client certificate signed "
            "by ca-cert.pem\n"
            "    --max-conns-per-addr N  NBD connections one address may "
            "hold (default %u,\n"
            "                            0 = no limit)\n"
            "    --max-sessions-per-identity N  connections one TLS name "
            "may hold\n"
            "                            (default %u, 0 = no limit)\n"
            "    -D, --debug MODULE=1    debug log for a module (vd.cmd, "
            "vd.handshake,\n"
            "                            vd.lease, cl.chunk, cl.state, "
            "cl.cb, rpc)\n"
            "    --config FILE           read options from FILE first: "
            "KEY = VALUE lines\n"
            "                            named as the long options here\n"
            "    --help                  this text\n",
            prog, VD_WORKERS_DEFAULT,
            (unsigned long long)(VD_CACHE_SIZE_DEFAULT >> 20),
            (unsigned long long)(VD_CACHE_MAX_DIRTY_DEFAULT >> 20),
            VD_CACHE_MAX_DIRTY_AGE_DEFAULT_MS, CONN_LIMIT_PER_ADDR,
            CONN_LIMIT_PER_IDENTITY);
}

/* The backend named by @spec.  Caller owns *out.  Prints why on failure. */
static int backend_make(const char *spec, const struct vd_tessera_opts *to,
                        struct vd_backend **out, const char **default_export)
{
    int rc;

    if (!strcmp(spec, "mem")) {
        rc = vd_mem_new(out);
        if (rc == 0)
            rc = vd_mem_add(*out, MEM_IMAGE, MEM_SIZE);
        if (rc < 0) {
            fprintf(stderr, "tessera-nbd: mem backend: %s\n", strerror(-rc));
            return rc;
        }
        if (!*default_export)
            *default_export = MEM_IMAGE;
        return 0;
    }
    if (!strncmp(spec, "dir:", 4) && spec[4]) {
        rc = vd_file_new(spec + 4, out);
        if (rc < 0)
            fprintf(stderr, "tessera-nbd: dir backend: %s: %s\n", spec + 4,
                    strerror(-rc));
        return rc;
    }
    if (!strcmp(spec, "tessera")) {
        if (!to->meta) {
            fprintf(stderr, "tessera-nbd: backend tessera needs --meta\n");
            return -EINVAL;
        }
        rc = vd_tessera_new(to, out);
        if (rc < 0)
            fprintf(stderr, "tessera-nbd: cannot reach metad at %s: %s\n",
                    to->meta, strerror(-rc));
        return rc;
    }
    fprintf(stderr, "tessera-nbd: unknown backend '%s'\n", spec);
    return -EINVAL;
}

struct cli {
    const char *meta, *listen, *unix_path, *backend, *default_export;
    const char *images_dir, *http, *tls_mode, *key;
    struct vd_tls_opts tls;
    bool readonly, secure;
    unsigned workers;
    unsigned per_addr, per_identity; /* conn_limit.h */
    enum vd_cache_mode cache;
    uint64_t cache_size, max_dirty;
    uint32_t max_dirty_age_ms, direct_write_max;
};

/* 0 to run, 1 to exit 0 (--help), -1 to exit 1. */
static int parse_args(int argc, char **argv, struct cli *cli)
{
    static const struct option longopts[] = {
        {"meta", required_argument, NULL, 'm'},
        {"key", required_argument, NULL, 'k'},
        {"secure", no_argument, NULL, 'S'},
        {"listen", required_argument, NULL, 'l'},
        {"unix", required_argument, NULL, 'u'},
        {"backend", required_argument, NULL, 'b'},
        {"readonly", no_argument, NULL, 'r'},
        {"images-dir", required_argument, NULL, 'i'},
        {"default-export", required_argument, NULL, 'e'},
        {"workers", required_argument, NULL, 'w'},
        {"cache", required_argument, NULL, 'c'},
        {"cache-size", required_argument, NULL, 's'},
        {"cache-max-dirty", required_argument, NULL, 'd'},
        {"cache-max-dirty-age", required_argument, NULL, 'a'},
        {"direct-write-max", required_argument, NULL, 'W'},
        {"http", required_argument, NULL, 'H'},
        {"metrics", required_argument, NULL, 'H'},
        {"tls", required_argument, NULL, 'T'},
        {"tls-psk", required_argument, NULL, 'P'},
        {"tls-certificates", required_argument, NULL, 'C'},
        {"tls-verify-peer", no_argument, NULL, 'V'},
        {"max-conns-per-addr", required_argument, NULL, 'A'},
        {"max-sessions-per-identity", required_argument, NULL, 'I'},
        {"debug", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    char *end;

    if (conf_args("tessera-nbd", longopts, argc, argv, &argc, &argv) < 0)
        return -1;
    while ((ch = getopt_long(argc, argv, "D:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            cli->meta = optarg;
            break;
        case 'k':
            cli->key = optarg;
            break;
        case 'S':
            cli->secure = true;
            break;
        case 'l':
            cli->listen = optarg;
            break;
        case 'u':
            cli->unix_path = optarg;
            break;
        case 'b':
            cli->backend = optarg;
            break;
        case 'r':
            cli->readonly = true;
            break;
        case 'i':
            cli->images_dir = optarg;
            break;
        case 'e':
            cli->default_export = optarg;
            break;
        case 'H':
            cli->http = optarg;
            break;
        case 'T':
            cli->tls_mode = optarg;
            break;
        case 'P':
            cli->tls.psk_file = optarg;
            break;
        case 'C':
            cli->tls.cert_dir = optarg;
            break;
        case 'V':
            cli->tls.verify_peer = true;
            break;
        case 'A':
        case 'I':
            if (conn_limit_parse(optarg, ch == 'A' ? &cli->per_addr
                                                   : &cli->per_identity) < 0) {
                fprintf(stderr, "tessera-nbd: bad %s: %s\n", argv[optind - 1],
                        optarg);
                return -1;
            }
            break;
        case 'w': {
            unsigned long n = strtoul(optarg, &end, 10);
            if (*end || n == 0 || n > VD_WORKERS_MAX) {
                fprintf(stderr, "tessera-nbd: --workers: 1..%d\n",
                        VD_WORKERS_MAX);
                return -1;
            }
            cli->workers = (unsigned)n;
            break;
        }
        case 'c':
            if (!strcmp(optarg, "none")) {
                cli->cache = VD_CACHE_NONE;
            } else if (!strcmp(optarg, "writethrough")) {
                cli->cache = VD_CACHE_WRITETHROUGH;
            } else if (!strcmp(optarg, "writeback")) {
                cli->cache = VD_CACHE_WRITEBACK;
            } else if (!strcmp(optarg, "auto")) {
                cli->cache = VD_CACHE_AUTO;
            } else {
                fprintf(stderr, "tessera-nbd: --cache: none, writethrough, "
                                "writeback or auto\n");
                return -1;
            }
            break;
        case 'd': {
            unsigned long long n = strtoull(optarg, &end, 10);
            if (*end || n == 0 || n > (1ull << 20)) {
                fprintf(stderr,
                        "tessera-nbd: --cache-max-dirty: 1..1048576 MiB\n");
                return -1;
            }
            cli->max_dirty = (uint64_t)n << 20;
            break;
        }
        case 'W': {
            unsigned long long n = strtoull(optarg, &end, 10);
            if (*end || n > 4096) {
                fprintf(stderr,
                        "tessera-nbd: --direct-write-max: 0..4096 KiB\n");
                return -1;
            }
            cli->direct_write_max = (uint32_t)n << 10;
            break;
        }
        case 'a': {
            unsigned long long n = strtoull(optarg, &end, 10);
            if (*end || n == 0 || n > 3600000) {
                fprintf(stderr,
                        "tessera-nbd: --cache-max-dirty-age: 1..3600000 ms\n");
                return -1;
            }
            cli->max_dirty_age_ms = (uint32_t)n;
            break;
        }
        case 's': {
            unsigned long long n = strtoull(optarg, &end, 10);
            if (*end || n == 0 || n > (1ull << 20)) {
                fprintf(stderr, "tessera-nbd: --cache-size: 1..1048576 MiB\n");
                return -1;
            }
            cli->cache_size = (uint64_t)n << 20;
            break;
        }
        case 'D':
            if (log_debug_enable(optarg) < 0) {
                fprintf(stderr, "tessera-nbd: bad -D '%s'\n", optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 1;
        default:
            usage(stderr, argv[0]);
            return -1;
        }
    }
    if (optind != argc || (!cli->listen && !cli->unix_path)) {
        usage(stderr, argv[0]);
        return -1;
    }
    return 0;
}

/* True when TCP address @addr is on the loopback interface only. */
static bool addr_is_loopback(const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (net_addr_parse(addr, &ss, &len) < 0)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            return a->s6_addr[12] == 127;
        return IN6_IS_ADDR_LOOPBACK(a);
    }
    return false;
}

/* The export check: a client that named itself in TLS (a PSK identity, a
 * verified certificate) gets what the backend lets that identity open; a
 * client without one (plain, under --tls=on) gets what tessera-nbd's own
 * identity may. */
static int tls_user_check(void *ctx, const struct vd_identity *who,
                          const char *name, bool *readonly, char *why,
                          size_t whylen)
{
    const struct vd_backend *be = ctx;
    char cn[256];
    const char *user = who->tls_user;

    if (!user)
        return 0;
    /* A certificate names its identity in its common name. */
    if (who->auth == VD_TLS_AUTH_X509) {
        if (vd_tls_dn_cn(user, cn, sizeof(cn)) < 0) {
            snprintf(why, whylen,
                     "the client certificate %s names no identity (CN)",
                     user);
            return -EACCES;
        }
        user = cn;
    }
    return be->ops->authorize(be->ctx, user, name, readonly, why, whylen);
}

/* Decide the TLS mode and load the credentials into *mode and *out (NULL
 * when off).  Prints why and returns -1 when tessera-nbd must not start. */
static int tls_setup(const struct cli *cli, enum vd_tls_mode *mode,
                     struct vd_tls **out)
{
    bool creds = cli->tls.psk_file || cli->tls.cert_dir;
    bool exposed = cli->listen && !addr_is_loopback(cli->listen);
    char why[512];

    *out = NULL;
    if (!cli->tls_mode) {
        *mode = exposed || creds ? VD_TLS_REQUIRE : VD_TLS_OFF;
    } else if (!strcmp(cli->tls_mode, "off")) {
        *mode = VD_TLS_OFF;
    } else if (!strcmp(cli->tls_mode, "on")) {
        *mode = VD_TLS_ON;
    } else if (!strcmp(cli->tls_mode, "require")) {
        *mode = VD_TLS_REQUIRE;
    } else {
        fprintf(stderr, "tessera-nbd: --tls: off, on or require\n");
        return -1;
    }
    if (*mode == VD_TLS_OFF) {
        if (creds)
            fprintf(stderr, "tessera-nbd: --tls=off: TLS credentials "
                            "ignored\n");
        if (exposed)
            log_warn("nbd server: TLS off on %s, which is not loopback: "
                     "anyone who reaches it can open every image",
                     cli->listen);
        return 0;
    }
    if (!creds) {
        fprintf(stderr,
                "tessera-nbd: TLS is %s%s but no credentials were given: "
                "pass --tls-psk FILE or --tls-certificates DIR%s\n",
                vd_tls_mode_name(*mode),
                cli->tls_mode ? ""
                              : " (the default when listening on anything "
                                "but loopback or a unix socket)",
                cli->tls_mode ? "" : ", or --tls=off to serve in the clear");
        return -1;
    }
    if (cli->tls.psk_file && cli->tls.cert_dir) {
        fprintf(stderr, "tessera-nbd: give one of --tls-psk and "
                        "--tls-certificates, not both\n");
        return -1;
    }
    if (cli->tls.verify_peer && !cli->tls.cert_dir) {
        fprintf(stderr, "tessera-nbd: --tls-verify-peer needs "
                        "--tls-certificates\n");
        return -1;
    }
    if (vd_tls_new(&cli->tls, out, why, sizeof(why)) < 0) {
        fprintf(stderr, "tessera-nbd: TLS credentials: %s\n", why);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {.backend = "tessera",
                      .cache = VD_CACHE_AUTO,
                      .per_addr = CONN_LIMIT_PER_ADDR,
                      .per_identity = CONN_LIMIT_PER_IDENTITY};
    struct conn_limit *limits = NULL;
    struct vd_backend *be = NULL;
    struct vd_server *s = NULL;
    struct http_server *http = NULL;
    struct vd_tls *tls = NULL;
    enum vd_tls_mode tls_mode;
    int rc;

    mem_tune();
    log_init(argv[0]);
    rc = parse_args(argc, argv, &cli);
    if (rc != 0)
        return rc > 0 ? 0 : 1;
    if (tls_setup(&cli, &tls_mode, &tls) < 0)
        return 1;
    struct vd_tessera_opts to = {
        .meta = cli.meta,
        .images_dir = cli.images_dir,
        .key = auth_key_path(cli.key),
        .secure = auth_secure_wanted(cli.secure),
        .cache = cli.cache,
        .cache_size = cli.cache_size,
        .max_dirty = cli.max_dirty,
        .max_dirty_age_ms = cli.max_dirty_age_ms,
        .direct_write_max = cli.direct_write_max,
    };
    if (backend_make(cli.backend, &to, &be, &cli.default_export) < 0) {
        vd_tls_free(tls);
        return 1;
    }

    if (conn_limit_new(cli.per_addr, cli.per_identity, &limits) < 0) {
        fprintf(stderr, "tessera-nbd: out of memory\n");
        vd_backend_free(be);
        vd_tls_free(tls);
        return 1;
    }
    struct vd_config cfg = {
        .be = be,
        .default_export = cli.default_export,
        .readonly = cli.readonly,
        .workers = cli.workers,
        .tls_mode = tls_mode,
        .tls = tls,
        .export_check = be->ops->authorize ? tls_user_check : NULL,
        .export_check_ctx = be,
        .limits = limits,
    };
    rc = vd_server_new(&cfg, &s);
    if (rc == 0 && cli.listen) {
        rc = vd_server_listen_tcp(s, cli.listen);
        if (rc < 0)
            fprintf(stderr, "tessera-nbd: listen %s: %s\n", cli.listen,
                    strerror(-rc));
    }
    if (rc == 0 && cli.unix_path) {
        rc = vd_server_listen_unix(s, cli.unix_path);
        if (rc < 0)
            fprintf(stderr, "tessera-nbd: listen unix:%s: %s\n", cli.unix_path,
                    strerror(-rc));
    }
    if (rc == 0 && cli.http)
        rc = vd_metrics_start(cli.http, &http);
    if (rc == 0) {
        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        the_server = s;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        vd_cmd_stats_register();
        log_info("nbd server: started: backend=%s%s tls=%s%s", cli.backend,
                 cli.readonly ? " readonly" : "", vd_tls_mode_name(tls_mode),
                 !tls                  ? ""
                 : cli.tls.psk_file    ? " (psk)"
                 : cli.tls.verify_peer ? " (x509, client certificates verified)"
                                       : " (x509)");
        rc = vd_server_run(s);
    }
    the_server = NULL;
    http_server_stop(http);
    vd_server_free(s);
    vd_backend_free(be);
    vd_tls_free(tls);
    conn_limit_free(limits); /* every connection thread is joined */
    return rc == 0 ? 0 : 1;
}
