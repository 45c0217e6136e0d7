/* Tests for admin/adm_status.c: the tables of `tessera status`. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "adm_internal.h"

/* Long and short names line up: every row has its IDLE value (with its
 * unit) ending at the column of the header's IDLE, and the cache column
 * starting after it. */
static void test_adm_print_sessions_aligned(void **state)
{
    struct status_session s[] = {
        {7, "tessera-mount /very/long/mount/point/of/a/cluster", "h1", 120},
        {1234567, "tessera-nbd", "a-rather-long-host-name", 61000},
    };
    struct status_report st = {.sessions = s, .nsessions = 2};
    char *text = NULL, *line, *save = NULL;
    size_t len = 0;
    long idle_end = -1;
    int rows = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    adm_print_sessions(f, &st);
    fclose(f);
    for (line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        const char *end = strstr(line, "IDLE");
        long at;

        if (end) {
            idle_end = (long)(end - line) + 4;
            continue;
        }
        end = strstr(line, rows == 0 ? "120ms" : "1m01s");
        assert_non_null(end);
        at = (long)(end - line) + 5;
        assert_int_equal(at, idle_end);
        assert_true(strstr(line, "no callbacks") == line + at + 2);
        rows++;
    }
    assert_int_equal(rows, 2);
    free(text);
}

int test_adm_status(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adm_print_sessions_aligned),
    };
    return cmocka_run_group_tests_name("adm_status", tests, NULL, NULL);
}
