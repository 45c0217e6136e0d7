/* adm_main.c: the `tessera` admin CLI: global options, --help and the
 * dispatch to a verb.  The verbs with their help are in adm_verbs.c, each
 * one's work in adm_<command>.c, the connection in adm_conn.c.
 *
 *   tessera [--meta ADDR:PORT] [--key FILE] [--json] COMMAND [ARGS...]
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
    fprintf(f,
            "Usage: tessera [--meta ADDR:PORT] [--key FILE] [--secure] [--json] COMMAND "
            "[ARGS...]\n"
            "\n"
            "Administer a Tessera cluster.\n"
            "\n"
            "Commands:\n");
    adm_verbs_list(f);
    fprintf(f,
            "\n"
            "`tessera COMMAND --help` (or man tessera-COMMAND) tells more of "
            "each.\n"
            "\n"
            "Options:\n"
            "  --meta ADDR     metadata server (default $TESSERA_META, "
            "else %s)\n"
            "  --key FILE      the identity's key file (default "
            "$TESSERA_KEY)\n"
            "  --secure        encrypted links (docs/security.md; default\n"
            "                  $TESSERA_SECURE)\n"
            "  --json          print JSON instead of tables\n"
            "  -h, --help      show this help\n"
            "\n"
            "Exit status: 0 ok; 1 error or something unhealthy; 2 the\n"
            "metadata server cannot be reached; 64 bad command line.\n",
            ADM_DEFAULT_META);
}

/* Take the global options out of argv, wherever they are; the rest keeps
 * its order.  Returns the new argc, or -1 after printing usage (-2 for
 * --help; *help_verb is then the word before it, if any, else NULL). */
static int global_opts(struct adm *a, int argc, char **argv,
                       const char **help_verb)
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
            *help_verb = n > 1 ? argv[1] : NULL;
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
    const struct adm_verb *v;
    const char *help_verb = NULL;
    int rc;

    log_init(argv[0]);
    /* The client library's INFO lines (session opened, server states) are
     * for daemons' logs: a command prints its own result and errors, and
     * with --json nothing but the document. */
    log_set_level(LOG_LVL_WARN);
    a.meta = getenv("TESSERA_META");
    if (!a.meta || !*a.meta)
        a.meta = ADM_DEFAULT_META;
    argc = global_opts(&a, argc, argv, &help_verb);
    a.secure = auth_secure_wanted(a.secure);
    if (argc == -2) {
        /* `tessera VERB --help`: that verb's; else (or for a word that is
         * no verb) the whole list. */
        v = help_verb ? adm_verb_find(help_verb) : NULL;
        if (v)
            adm_verb_help(stdout, v);
        else
            usage(stdout);
        return ADM_EXIT_OK;
    }
    if (argc < 2 || argv[1][0] == '-') {
        usage(stderr);
        return ADM_EXIT_USAGE;
    }
    v = adm_verb_find(argv[1]);
    if (!v) {
        fprintf(stderr, "tessera: unknown command: %s (see --help)\n", argv[1]);
        return ADM_EXIT_USAGE;
    }
    rc = v->fn(&a, argc - 1, argv + 1);
    if (a.rpc)
        rpc_client_close(a.rpc);
    cl_auth_free(a.auth);
    return rc;
}
