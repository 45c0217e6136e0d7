/* adm_main.c: the `tessera` admin CLI: global options and the command
 * table.  Commands live in adm_<command>.c, the connection in adm_conn.c.
 *
 *   tessera [--meta ADDR:PORT] [--json] COMMAND [ARGS...]
 *
 * Options may come before or after the command (`tessera status --json`).
 */
#include "adm_internal.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tessera [--meta ADDR:PORT] [--json] COMMAND [ARGS...]\n"
            "\n"
            "Administer a Tessera cluster.\n"
            "\n"
            "Commands:\n"
            "  status          metadata server, sessions and storage servers\n"
            "  fileinfo PATH   a file's chunks: id, version, replicas\n"
            "  ping            check that the metadata server answers\n"
            "\n"
            "Options:\n"
            "  --meta ADDR     metadata server (default $TESSERA_META, "
            "else %s)\n"
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
    {"status", adm_cmd_status},
    {"fileinfo", adm_cmd_fileinfo},
    {"ping", adm_cmd_ping},
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"meta", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct adm a = {0};
    int c, rc;

    log_init(argv[0]);
    a.meta = getenv("TESSERA_META");
    if (!a.meta || !*a.meta)
        a.meta = ADM_DEFAULT_META;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a.meta = optarg;
            break;
        case 'j':
            a.json = true;
            break;
        case 'h':
            usage(stdout);
            return ADM_EXIT_OK;
        default:
            usage(stderr);
            return ADM_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return ADM_EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].name) != 0)
            continue;
        rc = commands[i].fn(&a, argc - optind, argv + optind);
        if (a.rpc)
            rpc_client_close(a.rpc);
        return rc;
    }
    fprintf(stderr, "tessera: unknown command: %s (see --help)\n",
            argv[optind]);
    return ADM_EXIT_USAGE;
}
