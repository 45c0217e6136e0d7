/* Tests for admin/adm_verbs.c: the verb table and the help, list and usage
 * text made from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "adm_internal.h"

/* What @print writes for @v, as a string the caller frees. */
static char *text_of(void (*print)(FILE *f, const struct adm_verb *v),
                     const struct adm_verb *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    print(f, v);
    fclose(f);
    return buf;
}

static void list_print(FILE *f, const struct adm_verb *v)
{
    (void)v;
    adm_verbs_list(f);
}

static void test_adm_verb_find_by_name(void **state)
{
    const struct adm_verb *v = adm_verb_find("image");

    (void)state;
    assert_non_null(v);
    assert_ptr_equal(v->fn, adm_cmd_image);
    assert_ptr_equal(adm_verb_find("server")->fn, adm_cmd_server);
    assert_null(adm_verb_find("imag"));
    assert_null(adm_verb_find(""));
}

static void test_adm_verb_help_synopsis_forms(void **state)
{
    char *s = text_of(adm_verb_help, adm_verb_find("server"));

    (void)state;
    /* help2man reads "Usage:" and "  or:" lines as the SYNOPSIS. */
    assert_true(!strncmp(s,
                         "Usage: tessera server drain ID [--wait]\n"
                         "  or:  tessera server undrain ID\n"
                         "  or:  tessera server remove ID\n\n"
                         "Drain, undrain or forget a storage server.\n\n",
                         strlen("Usage: tessera server drain ID [--wait]\n"
                                "  or:  tessera server undrain ID\n"
                                "  or:  tessera server remove ID\n\n"
                                "Drain, undrain or forget a storage "
                                "server.\n\n")));
    assert_non_null(strstr(s, "\nExit status:\n"));
    free(s);
}

static void test_adm_verbs_list_terms(void **state)
{
    char *s = text_of(list_print, NULL);

    (void)state;
    /* One form: the synopsis, then the summary at column 26. */
    assert_non_null(strstr(s, "\n  setgoal [-r] N PATH     set the replication "
                              "goal of a file or folder\n"));
    assert_true(!strncmp(s, "  status                  show", 30));
    /* Several: the subcommands joined, the summary on the next line. */
    assert_non_null(strstr(s, "\n  server drain|undrain|remove ...\n"
                              "                          drain, undrain"));
    assert_non_null(strstr(s, "\n  auth add|list|caps|rm ...\n"));
    free(s);
}

/* Every verb: a synopsis that starts with its name, a one-line summary
 * without a final period, and help that ends its last line. */
static void test_adm_verbs_entries_well_formed(void **state)
{
    const char *names[] = {"status",    "servers",  "server",    "setgoal",
                           "getgoal",   "fileinfo", "checkfile", "scrub",
                           "rebalance", "fsck",     "snapshot",  "clone",
                           "image",     "ping",     "auth"};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct adm_verb *v = adm_verb_find(names[i]);
        size_t n = strlen(names[i]);
        const char *p;

        assert_non_null(v);
        for (p = v->usage; p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            assert_true(!strncmp(p, names[i], n) &&
                        (p[n] == ' ' || p[n] == '\n' || !p[n]));
        assert_null(strchr(v->summary, '\n'));
        assert_int_not_equal(v->summary[strlen(v->summary) - 1], '.');
        assert_int_equal(v->help[strlen(v->help) - 1], '\n');
    }
}

/* adm_verb_usage() writes to stderr: catch it in a pipe. */
static char *usage_of(const char *verb, const char *sub)
{
    static char buf[4096];
    int fds[2], saved;
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fds[1], 2);
    assert_int_equal(adm_verb_usage(verb, sub), ADM_EXIT_USAGE);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void test_adm_verb_usage_of_subcommand(void **state)
{
    (void)state;
    assert_string_equal(usage_of("image", "create"),
                        "usage: tessera image create [-p] PATH SIZE\n"
                        "(see tessera image --help)\n");
    /* "list" is not "list-..." and an unknown one gets every form. */
    assert_string_equal(usage_of("auth", "list"),
                        "usage: tessera auth list [NAME]\n"
                        "(see tessera auth --help)\n");
    assert_non_null(strstr(usage_of("server", "nope"),
                           "       tessera server remove ID\n"));
}

int test_adm_verbs(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_verb_find_by_name),
        cmocka_unit_test(test_adm_verb_help_synopsis_forms),
        cmocka_unit_test(test_adm_verbs_list_terms),
        cmocka_unit_test(test_adm_verbs_entries_well_formed),
        cmocka_unit_test(test_adm_verb_usage_of_subcommand),
    };
    return cmocka_run_group_tests_name("adm_verbs", tests, NULL, NULL);
}
