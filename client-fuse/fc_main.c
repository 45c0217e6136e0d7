/* fc_main.c: tessera-mount, the FUSE client.
 *
 *   tessera-mount --meta ADDR:PORT [--key FILE] [--http ADDR:PORT] [-f] [-d]
 *                 [-o OPTS]
 *                 MOUNTPOINT
 *
 * Order matters: metad is probed first so a wrong address fails here with
 * a clear message and exit status 1, before anything is mounted or the
 * process detaches.  Then the mount, then fuse_daemonize() (unless -f),
 * and only then the real metad session: the rpc client and the session's
 * renew thread are threads, and threads do not survive the fork inside
 * fuse_daemonize(); so is the metrics server's (--http).  The session loop
 * (fc_loop.c) runs up to -o max_threads workers (DEFAULT_MAX_THREADS), of
 * which -o max_idle_threads may wait idle (DEFAULT_IDLE_THREADS); one reads
 * at a time, so -o clone_fd, which libfuse parses, changes nothing.
 *
 * The file system is unmounted by `fusermount3 -u MOUNTPOINT` or by
 * SIGINT/SIGTERM (fuse_set_signal_handlers); either way the loop returns,
 * files still open get their delayed writes written back
 * (cl_client_close), the session is closed at metad (SESSION_CLOSE) and
 * the process exits 0.
 */
/* 3.12: the API fc_loop.c and fc_ops.c are written against. */
#define FUSE_USE_VERSION 312

#include "fc_internal.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "mem.h"

#define DEFAULT_MAX_THREADS 16
#define DEFAULT_IDLE_THREADS 16
#define MAX_THREADS_LIMIT 1024
#define GROUPS_CACHE_MAX_S 3600

struct cli {
    char *meta;
    char *key; /* --key FILE, else $TESSERA_KEY */
    char *http;
    char *debug_spec;
    char *cache;             /* -o cache=writethrough|writeback|writeonclose */
    char *consistency;       /* -o consistency=callback|validate */
    char *delegate;          /* -o delegate=yes|no */
    char *dirty_max;         /* -o dirty_max=SIZE[K|M|G] */
    unsigned flush_interval; /* -o flush_interval=SECONDS */
    unsigned groups_cache;   /* -o groups_cache=SECONDS; UINT_MAX: not given */
    unsigned max_threads;    /* -o max_threads=N; 0: the default */
    int allow_other;         /* -o allow_other: given explicitly */
    int allow_root;          /* -o allow_root */
    int private_mount;       /* -o private: only the mounting user */
    int secure;              /* --secure, -o secure: encrypted links */
};

static const struct fuse_opt cli_spec[] = {
    {"--meta %s", offsetof(struct cli, meta), 0},
    {"--meta=%s", offsetof(struct cli, meta), 0},
    {"--key %s", offsetof(struct cli, key), 0},
    {"--key=%s", offsetof(struct cli, key), 0},
    {"--http %s", offsetof(struct cli, http), 0},
    {"--http=%s", offsetof(struct cli, http), 0},
    {"--metrics %s", offsetof(struct cli, http), 0},
    {"--metrics=%s", offsetof(struct cli, http), 0},
    {"-D %s", offsetof(struct cli, debug_spec), 0},
    {"cache=%s", offsetof(struct cli, cache), 0},
    {"consistency=%s", offsetof(struct cli, consistency), 0},
    {"delegate=%s", offsetof(struct cli, delegate), 0},
    {"dirty_max=%s", offsetof(struct cli, dirty_max), 0},
    {"flush_interval=%u", offsetof(struct cli, flush_interval), 0},
    {"groups_cache=%u", offsetof(struct cli, groups_cache), 0},
    /* Ours rather than libfuse's, which cannot tell "not given". */
    {"max_threads=%u", offsetof(struct cli, max_threads), 0},
    /* Who may use the mount: decided in access_opt(), which adds the
     * FUSE option back. */
    {"allow_other", offsetof(struct cli, allow_other), 1},
    {"allow_root", offsetof(struct cli, allow_root), 1},
    {"private", offsetof(struct cli, private_mount), 1},
    {"--secure", offsetof(struct cli, secure), 1},
    {"secure", offsetof(struct cli, secure), 1},
    FUSE_OPT_END,
};

/* The caching options as the client library takes them.  -EINVAL for a
 * value we do not know. */
static int cache_opts(const struct cli *cli, struct cl_opts *o, bool *validate)
{
    o->cache = CL_CACHE_WRITEBACK;
    if (cli->cache) {
        if (!strcmp(cli->cache, "writethrough"))
            o->cache = CL_CACHE_WRITETHROUGH;
        else if (!strcmp(cli->cache, "writeonclose"))
            o->cache = CL_CACHE_WRITEONCLOSE;
        else if (strcmp(cli->cache, "writeback"))
            return -EINVAL;
    }
    *validate = false;
    if (cli->consistency) {
        if (!strcmp(cli->consistency, "validate"))
            *validate = true;
        else if (strcmp(cli->consistency, "callback"))
            return -EINVAL;
    }
    o->callbacks = !*validate;
    o->flush_interval_ms = cli->flush_interval ? cli->flush_interval * 1000u
                                               : CL_FLUSH_INTERVAL_MS;
    o->dirty_max = CL_DIRTY_MAX;
    if (cli->dirty_max) {
        char *end;
        unsigned long long v = strtoull(cli->dirty_max, &end, 10);
        switch (*end) {
        case 'k':
        case 'K':
            v <<= 10;
            end++;
            break;
        case 'm':
        case 'M':
            v <<= 20;
            end++;
            break;
        case 'g':
        case 'G':
            v <<= 30;
            end++;
            break;
        default:
            break;
        }
        if (*end || v < (1u << 20))
            return -EINVAL;
        o->dirty_max = v;
    }
    return 0;
}

/* True when fusermount3 lets this user mount with allow_other: root, or
 * user_allow_other in /etc/fuse.conf. */
static bool may_allow_other(void)
{
    if (geteuid() == 0)
        return true;
    FILE *f = fopen("/etc/fuse.conf", "r");
    if (!f)
        return false;
    char line[256];
    bool ok = false;
    while (!ok && fgets(line, sizeof(line), f)) {
        const char *p = line + strspn(line, " \t");
        ok = strncmp(p, "user_allow_other", 16) == 0 &&
             (p[16] == '\n' || p[16] == '\0' || p[16] == ' ' || p[16] == '\t');
    }
    fclose(f);
    return ok;
}

/* The FUSE option deciding who may use the mount, or NULL for the
 * mounting user only.  By default every user may, as on a local file
 * system: the kernel (default_permissions, with the caller's groups) and
 * metad check each access.  -o private keeps the mount to its owner;
 * -o allow_root to its owner and root. */
static const char *access_opt(const struct cli *cli)
{
    if (cli->allow_root)
        return "-oallow_root";
    if (cli->private_mount)
        return NULL;
    if (cli->allow_other || may_allow_other())
        return "-oallow_other";
    fprintf(stderr, "tessera-mount: warning: only this user can use the "
                    "mount (add user_allow_other to /etc/fuse.conf to let "
                    "others in)\n");
    return NULL;
}

static void usage(const char *prog)
{
    printf("usage: %s --meta ADDR:PORT [options] MOUNTPOINT\n\n"
           "    --meta ADDR:PORT       metadata service to use; a metad\n"
           "                           group: a,b,c (default $TESSERA_META)\n"
           "    --key FILE             the identity's key file (default\n"
           "                           $TESSERA_KEY; docs/security.md)\n"
           "    --secure, -o secure    encrypted links to metad and the "
           "storage\n"
           "                           servers (default $TESSERA_SECURE)\n"
           "    --http ADDR:PORT       serve Prometheus metrics at "
           "http://ADDR:PORT/metrics\n"
           "                           (default: off)\n"
           "    -D MODULE=1            debug log for a module (fc.ops, "
           "fc.notify,\n"
           "                           cl.chunk, cl.state, cl.cb, rpc)\n"
           "    -f                     stay in the foreground\n"
           "    -d                     FUSE debug output (implies -f)\n"
           "    -o OPT[,OPT...]        mount options\n"
           "    -o private             only the mounting user may use the "
           "mount\n"
           "                           (default: every user, within the "
           "permissions)\n"
           "    -o allow_root          only the mounting user and root\n"
           "    -o cache=MODE          writeback (default), writethrough, "
           "writeonclose\n"
           "    -o flush_interval=S    writeback flush interval (default 5)\n"
           "    -o dirty_max=SIZE      delayed-write memory (default 256M)\n"
           "    -o consistency=MODE    callback (default) or validate\n"
           "    -o delegate=yes|no     answer creates and unlinks in "
           "delegated\n"
           "                           directories locally (default yes; "
           "callback only)\n"
           "    -o groups_cache=S      keep callers' supplementary groups "
           "S seconds\n"
           "                           (default %d, 0: read them every "
           "time)\n"
           "    -o max_threads=N       request threads (default %d)\n"
           "    --config FILE          read options from FILE first: "
           "KEY = VALUE lines,\n"
           "                           KEY one of meta, http, debug, "
           "foreground or an\n"
           "                           -o option above (cache = "
           "writethrough, private = yes)\n\n",
           prog, FC_GROUPS_CACHE_S, DEFAULT_MAX_THREADS);
    fuse_cmdline_help();
    fuse_lowlevel_help();
}

static int run(struct fuse_args *args, struct fuse_cmdline_opts *opts,
               const struct cli *cli)
{
    const char *meta = cli->meta;

    if (cli->max_threads > MAX_THREADS_LIMIT) {
        fprintf(stderr, "tessera-mount: max_threads must be 1 to %d\n",
                MAX_THREADS_LIMIT);
        return 1;
    }
    unsigned groups_s =
        cli->groups_cache == UINT_MAX ? FC_GROUPS_CACHE_S : cli->groups_cache;
    if (groups_s > GROUPS_CACHE_MAX_S) {
        fprintf(stderr, "tessera-mount: groups_cache must be 0 to %d\n",
                GROUPS_CACHE_MAX_S);
        return 1;
    }
    struct fc_fs *fs = NULL;
    struct fuse_session *se = NULL;
    struct http_server *http = NULL;
    int ret = 1;

    const char *key = auth_key_path(cli->key);
    struct cl_auth *auth = NULL;
    int rc = cl_auth_open(key, &auth);
    if (rc < 0) {
        fprintf(stderr, "tessera-mount: key file %s: %s\n", key,
                auth_key_why(rc));
        return 1;
    }
    if (auth_secure_wanted(cli->secure)) {
        if (!auth) {
            fprintf(stderr, "tessera-mount: --secure needs a key: --key "
                            "FILE or $TESSERA_KEY\n");
            return 1;
        }
        cl_auth_set_secure(auth, true);
    }
    rc = cl_probe(meta, PROTO_ROLE_CLIENT, auth);
    if (rc < 0) {
        fprintf(stderr, "tessera-mount: cannot reach metad at %s: %s%s\n", meta,
                strerror(-rc),
                rc == -EKEYREJECTED
                    ? (auth ? " (wrong key, or unknown identity)"
                            : " (a key is required: --key)")
                : rc == -ENOPROTOOPT
                    ? " (secure links: both sides need --secure, or the "
                      "server requires it)"
                    : "");
        cl_auth_free(auth);
        return 1;
    }

    struct cl_opts copts = {
        .meta = meta, .role = PROTO_ROLE_CLIENT, .auth = auth};
    bool validate;
    if (cache_opts(cli, &copts, &validate) < 0) {
        fprintf(stderr, "tessera-mount: bad cache, consistency, "
                        "flush_interval or dirty_max option\n");
        return 1;
    }
    fs = calloc(1, sizeof(*fs));
    if (!fs) {
        fprintf(stderr, "tessera-mount: out of memory\n");
        return 1;
    }
    fs->consistency_validate = validate;
    pthread_mutex_init(&fs->statfs_lock, NULL);
    /* docs/caching.md, "Delegated directories". */
    fs->delegate = !validate && (!cli->delegate || !strcmp(cli->delegate, "yes"));
    if (cli->delegate && strcmp(cli->delegate, "yes") &&
        strcmp(cli->delegate, "no")) {
        fprintf(stderr, "tessera-mount: delegate must be yes or no\n");
        fc_inotab_free(fs->nocap);
        fc_inotab_free(fs->dirattr);
        fc_dirlist_free(fs->dirlist);
        free(fs);
        return 1;
    }
    if (fc_nocap_new(&fs->nocap) < 0 || fc_dirattr_new(&fs->dirattr) < 0 ||
        fc_dirlist_new(&fs->dirlist) < 0 ||
        fc_groups_new(groups_s * 1000u, &fs->groups) < 0) {
        fprintf(stderr, "tessera-mount: out of memory\n");
        fc_inotab_free(fs->nocap);
        fc_inotab_free(fs->dirattr);
        fc_dirlist_free(fs->dirlist);
        free(fs);
        return 1;
    }
    se = fuse_session_new(args, fc_ops_get(), sizeof(struct fuse_lowlevel_ops),
                          fs);
    if (!se)
        goto out; /* libfuse printed why */
    if (fuse_set_signal_handlers(se) != 0)
        goto out_session;
    if (fuse_session_mount(se, opts->mountpoint) != 0)
        goto out_signals;
    fuse_daemonize(opts->foreground);

    char name[160];
    snprintf(name, sizeof(name), "tessera-mount %s", opts->mountpoint);
    copts.name = name;
    fs->se = se;
    rc = fc_notify_start(se, &fs->notify);
    if (rc < 0) {
        log_error("mount: cannot start the notify thread: %s", strerror(-rc));
        goto out_unmount;
    }
    copts.on_break = fc_notify_break;
    copts.break_arg = fs;
    rc = cl_client_open(&copts, &fs->cl);
    if (rc < 0) {
        log_error("mount: cannot open a session at metad: %s meta=%s",
                  strerror(-rc), meta);
        goto out_unmount;
    }
    if (cli->http && fc_metrics_start(fs, cli->http, &http) < 0)
        goto out_unmount;
    log_info("mount: ready: mountpoint=%s meta=%s session=%llu cache=%s "
             "consistency=%s",
             opts->mountpoint, meta,
             (unsigned long long)cl_client_session(fs->cl),
             copts.cache == CL_CACHE_WRITETHROUGH   ? "writethrough"
             : copts.cache == CL_CACHE_WRITEONCLOSE ? "writeonclose"
                                                    : "writeback",
             validate ? "validate" : "callback");

    if (opts->singlethread) {
        rc = fuse_session_loop(se);
    } else {
        unsigned max = cli->max_threads ? cli->max_threads : DEFAULT_MAX_THREADS;
        /* UINT_MAX: -o max_idle_threads not given. */
        unsigned idle = opts->max_idle_threads == UINT_MAX
                            ? DEFAULT_IDLE_THREADS
                            : opts->max_idle_threads;
        log_info("mount: request threads: max=%u idle=%u", max,
                 idle < max ? idle : max);
        rc = fc_loop_run_session(se, max, idle < max ? idle : max, &fs->loop);
    }
    ret = rc < 0 ? 1 : 0; /* a positive value is the signal that ended it */
    log_info("mount: unmounting: mountpoint=%s", opts->mountpoint);

out_unmount:
    /* The metrics read the client; the break workers call into the
     * notify thread, which calls into the session: all go before it. */
    http_server_stop(http);
    cl_client_close(fs->cl);
    fs->cl = NULL;
    fc_notify_stop(fs->notify);
    fs->notify = NULL;
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out_session:
    fuse_session_destroy(se);
out:
    if (fs) {
        cl_client_close(fs->cl);
        fc_notify_stop(fs->notify);
        fc_inotab_free(fs->nocap);
        fc_inotab_free(fs->dirattr);
        fc_dirlist_free(fs->dirlist);
        fc_groups_free(fs->groups);
    }
    free(fs);
    /* @auth stays: a client close that timed out may still use it, and
     * the process exits now. */
    return ret;
}

int main(int argc, char **argv)
{
    struct fuse_cmdline_opts opts;
    struct cli cli = {.groups_cache = UINT_MAX};
    int ret = 1;

    mem_tune();
    log_init("tessera-mount");
    if (fc_conf_args(cli_spec, argc, argv, &argc, &argv) < 0)
        return 1;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    memset(&opts, 0, sizeof(opts));
    if (fuse_opt_parse(&args, &cli, cli_spec, NULL) != 0)
        return 1;
    if (cli.debug_spec && log_debug_enable(cli.debug_spec) < 0) {
        fprintf(stderr, "tessera-mount: bad -D %s\n", cli.debug_spec);
        goto out;
    }
    if (cli.debug_spec)
        log_set_level(LOG_LVL_DEBUG);
    if (fuse_parse_cmdline(&args, &opts) != 0)
        goto out;
    if (opts.show_help) {
        usage(argv[0]);
        ret = 0;
        goto out;
    }
    if (opts.show_version) {
        printf("tessera-mount, libfuse %s\n", fuse_pkgversion());
        fuse_lowlevel_version();
        ret = 0;
        goto out;
    }
    if (!cli.meta && getenv("TESSERA_META"))
        cli.meta = strdup(getenv("TESSERA_META"));
    if (!cli.meta) {
        fprintf(stderr, "tessera-mount: --meta ADDR:PORT is required "
                        "(see --help)\n");
        goto out;
    }
    if (!opts.mountpoint) {
        fprintf(stderr, "tessera-mount: no mount point given (see --help)\n");
        goto out;
    }
    /* default_permissions: the kernel checks mode bits against the
     * attributes it caches, so a cached entry cannot bypass a check that
     * metad would have made; metad checks every request again. */
    if (fuse_opt_add_arg(&args, "-ofsname=tessera,subtype=tessera,"
                                "default_permissions") != 0)
        goto out;
    const char *access = access_opt(&cli);
    if (access && fuse_opt_add_arg(&args, access) != 0)
        goto out;

    ret = run(&args, &opts, &cli);

out:
    free(opts.mountpoint);
    free(cli.meta);
    free(cli.http);
    free(cli.debug_spec);
    free(cli.cache);
    free(cli.consistency);
    free(cli.delegate);
    free(cli.dirty_max);
    fuse_opt_free_args(&args);
    return ret;
}
