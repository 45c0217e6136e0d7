/* adm_main.c: the `tessera` admin CLI: global options and the command
 * table.  Commands live in adm_<command>.c, the connection in adm_conn.c.
 *
 *   tessera [--meta ADDR:PORT] [--json] COMMAND [ARGS...]
 *
 * The global options may come before or after the command (`tessera status
 * --json`); they are taken out of argv first, and what is left (the
 * command and its own options, such as `setgoal -r`) goes to the command.
 */
#include "adm_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tessera [--meta ADDR:PORT] [--json] COMMAND [ARGS...]\n"
        "\n"
        "Administer a Tessera cluster.\n"
        "\n"
        "Commands:\n"
        "  status                  servers by state, capacity, chunks\n"
        "                          ok/under/over goal/missing, repair,\n"
        "                          scrub progress and findings\n"
        "  servers                 storage servers: state, since, address,\n"
        "                          chunks, space, last heartbeat\n"
        "  server drain|undrain|remove ID [--wait]\n"
        "                          move every chunk off a server, cancel\n"
        "                          that, or forget a down or empty server\n"
        "                          (--wait stops when the goal cannot be\n"
        "                          met without it)\n"
        "  setgoal [-r] N PATH     set the replication goal (1..9)\n"
        "  getgoal [-r] PATH       show the goal (-r: summary below PATH)\n"
        "  fileinfo PATH           a file's chunks: id, version, replicas\n"
        "  checkfile PATH          copies per chunk and a summary\n"
        "  scrub [--server ID]     verify checksums on the servers (status\n"
        "                          shows the pass)\n"
        "  rebalance [--wait]      even out usage across servers\n"
        "  fsck [--repair] [--wait]\n"
        "                          compare metadata with the servers\n"
        "  snapshot SRC DST        instant read-only copy-on-write copy\n"
        "  clone SRC DST           instant writable copy-on-write copy\n"
        "  image create [-p] PATH SIZE\n"
        "                          a sparse image (SIZE: 10G, 512M, ...;\n"
        "                          -p makes missing folders)\n"
        "  image info PATH         size, allocated, chunks, sharing\n"
        "  image list [--tree] [PATH]\n"
        "                          images, snapshots and clones: parent,\n"
        "                          size, allocated, shared, exclusive\n"
        "  image resize [--shrink] PATH SIZE\n"
        "                          grow, or shrink with --shrink\n"
        "  image rm PATH           remove an image\n"
        "  image import [--progress] [-f raw|qcow2] SRC DST\n"
        "                          copy a local raw or qcow2 file (or\n"
        "                          device) into Tessera, sparsely\n"
        "  image export [--progress] [-O raw|qcow2] SRC DST\n"
        "                          copy an image out to a local file\n"
        "  image rollback IMAGE SNAPSHOT\n"
        "                          IMAGE takes SNAPSHOT's content and size\n"
        "  image flatten [--progress] CLONE\n"
        "                          copy what CLONE shares; drop its parent\n"
        "  image diff [--progress] --from SNAP1 SNAP2 > FILE\n"
        "                          the blocks changed since SNAP1\n"
        "  image apply-diff [--progress] IMAGE FILE\n"
        "                          apply a diff to a copy of its base\n"
        "  image handover [--for SECONDS] PATH\n"
        "                          allow one live-migration hand-over\n"
        "  ping                    check that the metadata server answers\n"
        "  auth add [--get] [-o FILE] NAME [CAPS...]\n"
        "                          create an identity and print or write\n"
        "                          its key file\n"
        "  auth list [NAME]        identities and their capabilities\n"
        "  auth caps NAME CAPS...  set an identity's capabilities\n"
        "  auth rm NAME            remove an identity\n"
        "\n"
        "Options:\n"
        "  --meta ADDR     metadata server (default $TESSERA_META, "
        "else %s)\n"
        "  --key FILE      the identity's key file (default $TESSERA_KEY)\n"
        "  --secure        encrypted links (docs/security.md; default\n"
        "                  $TESSERA_SECURE)\n"
        "  --json          print JSON instead of tables\n"
        "  -h, --help      show this help\n"
        "\n"
        "Exit status: 0 ok; 1 error or something unhealthy; 2 the\n"
        "metadata server cannot be reached; 64 bad command line.\n",
        ADM_DEFAULT_META);
}

static const struct {
    const char *name;
    int (*fn)(struct adm *a, int argc, char **argv);
} commands[] = {
    {"status", adm_cmd_status},   {"fileinfo", adm_cmd_fileinfo},
    {"ping", adm_cmd_ping},       {"servers", adm_cmd_servers},
    {"server", adm_cmd_server},   {"setgoal", adm_cmd_setgoal},
    {"getgoal", adm_cmd_getgoal}, {"checkfile", adm_cmd_checkfile},
    {"scrub", adm_cmd_scrub},     {"rebalance", adm_cmd_rebalance},
    {"fsck", adm_cmd_fsck},       {"snapshot", adm_cmd_snapshot},
    {"clone", adm_cmd_clone},     {"image", adm_cmd_image},
    {"auth", adm_cmd_auth},
};

/* Take the global options out of argv, wherever they are; the rest keeps
 * its order.  Returns the new argc, or -1 after printing usage (-2 for
 * --help). */
static int global_opts(struct adm *a, int argc, char **argv)
{
    int n = 1;

    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];

        if (!strcmp(s, "--json")) {
            a->json = true;
        } else if (!strcmp(s, "--meta")) {
            if (i + 1 >= argc)
                return -1;
            a->meta = argv[++i];
        } else if (!strncmp(s, "--meta=", 7)) {
            a->meta = s + 7;
        } else if (!strcmp(s, "--key")) {
            if (i + 1 >= argc)
                return -1;
            a->key = argv[++i];
        } else if (!strncmp(s, "--key=", 6)) {
            a->key = s + 6;
        } else if (!strcmp(s, "--secure")) {
            a->secure = true;
        } else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            return -2;
        } else {
            argv[n++] = argv[i];
        }
    }
    argv[n] = NULL;
    return n;
}

int main(int argc, char **argv)
{
    struct adm a = {0};
    int rc;

    log_init(argv[0]);
    /* The client library's INFO lines (session opened, server states) are
     * for daemons' logs: a command prints its own result and errors, and
     * with --json nothing but the document. */
    log_set_level(LOG_LVL_WARN);
    a.meta = getenv("TESSERA_META");
    if (!a.meta || !*a.meta)
        a.meta = ADM_DEFAULT_META;
    argc = global_opts(&a, argc, argv);
    a.secure = auth_secure_wanted(a.secure);
    if (argc == -2) {
        usage(stdout);
        return ADM_EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-') {
        usage(stderr);
        return ADM_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        rc = commands[i].fn(&a, argc - 1, argv + 1);
        if (a.rpc)
            rpc_client_close(a.rpc);
        cl_auth_free(a.auth);
        return rc;
    }
    fprintf(stderr, "tessera: unknown command: %s (see --help)\n", argv[1]);
    return ADM_EXIT_USAGE;
}
