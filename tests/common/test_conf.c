/* Tests for common/conf.c: config files read as KEY = VALUE lines and
 * turned into the long options of a getopt table, placed before the
 * command line's; bad lines refused with their line numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static const struct option opts[] = {
    {"data", required_argument, NULL, 'd'},
    {"repair-mbps", required_argument, NULL, 'R'},
    {"readonly", no_argument, NULL, 'r'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Write @text to a new temp file; its path goes to @path. */
static void conf_file(char *path, size_t size, const char *text)
{
    snprintf(path, size, "/tmp/tessera-conf-test.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void test_conf_args_file_before_command_line(void **state)
{
    char path[64], cfg[80];
    int n;
    char **v;

    (void)state;
    conf_file(path, sizeof(path),
              "# a comment\n"
              "\n"
              "  DATA = \"/srv/my chunks\"  \n"
              "repair_mbps=50\n"
              "readonly = yes\n");
    snprintf(cfg, sizeof(cfg), "--config=%s", path);
    char *argv[] = {"prog", cfg, "--repair-mbps", "70", NULL};
    assert_int_equal(conf_args("prog", opts, 4, argv, &n, &v), 0);
    assert_int_equal(n, 6);
    assert_string_equal(v[0], "prog");
    assert_string_equal(v[1], "--data=/srv/my chunks");
    assert_string_equal(v[2], "--repair-mbps=50");
    assert_string_equal(v[3], "--readonly");
    /* The command line's own come last, so they win. */
    assert_string_equal(v[4], "--repair-mbps");
    assert_string_equal(v[5], "70");
    assert_null(v[6]);
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
    unlink(path);
}

static void test_conf_args_without_config_is_the_command_line(void **state)
{
    char *argv[] = {"prog", "--data", "/d", NULL};
    int n;
    char **v;

    (void)state;
    assert_int_equal(conf_args("prog", opts, 3, argv, &n, &v), 0);
    assert_int_equal(n, 3);
    assert_ptr_equal(v, argv);
}

static void test_conf_args_flag_no_is_left_out(void **state)
{
    char path[64];
    int n;
    char **v;

    (void)state;
    conf_file(path, sizeof(path), "readonly = off\n");
    char *argv[] = {"prog", "--config", path, NULL};
    assert_int_equal(conf_args("prog", opts, 3, argv, &n, &v), 0);
    assert_int_equal(n, 1);
    free(v[0]);
    free(v);
    unlink(path);
}

/* Each of these is refused, and the message names the line. */
static void test_conf_args_refuses_bad_lines(void **state)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"data = /d\nnosuch = 1\n", ":2: unknown key 'nosuch'"},
        {"data = /d\n\njust words\n", ":3: expected KEY = VALUE"},
        {"readonly = maybe\n", ":1: readonly takes yes or no"},
        {"data =\n", ":1: data needs a value"},
        {"help = yes\n", ":1: unknown key 'help'"},
        {" = 3\n", ":1: a line with no key"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[64], out[64];
        int n;
        char **v;
        conf_file(path, sizeof(path), bad[i].text);
        snprintf(out, sizeof(out), "/tmp/tessera-conf-err.XXXXXX");
        int fd = mkstemp(out);
        assert_true(fd >= 0);
        /* conf_args prints its reason on stderr: catch it. */
        int saved = dup(2);
        dup2(fd, 2);
        char *argv[] = {"prog", "--config", path, NULL};
        int rc = conf_args("prog", opts, 3, argv, &n, &v);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        assert_int_equal(rc, -1);
        char msg[512] = "";
        FILE *f = fopen(out, "r");
        assert_non_null(f);
        assert_non_null(fgets(msg, sizeof(msg), f));
        fclose(f);
        close(fd);
        if (!strstr(msg, bad[i].want) || !strstr(msg, path))
            fail_msg("case %zu: got '%s', want '%s'", i, msg, bad[i].want);
        unlink(path);
        unlink(out);
    }
}

static void test_conf_args_missing_file(void **state)
{
    char *argv[] = {"prog", "--config", "/nonexistent/tessera.cfg", NULL};
    char *argv2[] = {"prog", "--config", NULL};
    int n;
    char **v;

    (void)state;
    assert_int_equal(conf_args("prog", opts, 3, argv, &n, &v), -1);
    assert_int_equal(conf_args("prog", opts, 2, argv2, &n, &v), -1);
}

static void test_conf_key_is_folds_case_and_dashes(void **state)
{
    (void)state;
    assert_true(conf_key_is("REPAIR_MBPS", "repair-mbps"));
    assert_true(conf_key_is("dirty-max", "dirty_max"));
    assert_false(conf_key_is("repair", "repair-mbps"));
    assert_false(conf_key_is("repair-mbpsx", "repair-mbps"));
    assert_int_equal(conf_flag("TRUE"), 1);
    assert_int_equal(conf_flag("0"), 0);
    assert_true(conf_flag("2") < 0);
}

int test_conf(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_args_file_before_command_line),
        cmocka_unit_test(test_conf_args_without_config_is_the_command_line),
        cmocka_unit_test(test_conf_args_flag_no_is_left_out),
        cmocka_unit_test(test_conf_args_refuses_bad_lines),
        cmocka_unit_test(test_conf_args_missing_file),
        cmocka_unit_test(test_conf_key_is_folds_case_and_dashes),
    };
    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
