/* Tests for common/log.c: the -D module=1 debug switches.  The switch
 * table is process-wide, so each test uses its own module names and the
 * table-full test runs last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void test_log_debug_enable_module(void **state)
{
    (void)state;
    assert_false(log_debug_on("alpha.store"));
    assert_int_equal(log_debug_enable("alpha.store=1"), 0);
    assert_true(log_debug_on("alpha.store"));
    assert_true(log_debug_on("alpha.store.index")); /* submodule */
    assert_false(log_debug_on("alpha"));            /* parent stays off */
    assert_false(log_debug_on("alpha.storex"));     /* not a prefix match */
    assert_false(log_debug_on("beta"));
}

static void test_log_debug_enable_parent_covers_children(void **state)
{
    (void)state;
    assert_int_equal(log_debug_enable("gamma=1"), 0);
    assert_true(log_debug_on("gamma"));
    assert_true(log_debug_on("gamma.conn"));
    assert_false(log_debug_on("gammaray"));
}

static void test_log_debug_enable_zero_disables(void **state)
{
    (void)state;
    assert_int_equal(log_debug_enable("delta=1"), 0);
    assert_true(log_debug_on("delta"));
    assert_int_equal(log_debug_enable("delta=0"), 0);
    assert_false(log_debug_on("delta"));
}

static void test_log_debug_enable_child_overrides_parent(void **state)
{
    (void)state;
    assert_int_equal(log_debug_enable("eps=1"), 0);
    assert_int_equal(log_debug_enable("eps.noisy=0"), 0);
    assert_true(log_debug_on("eps.quiet"));
    assert_false(log_debug_on("eps.noisy"));
}

static void test_log_debug_enable_without_value(void **state)
{
    (void)state;
    assert_int_equal(log_debug_enable("zeta"), 0);
    assert_true(log_debug_on("zeta"));
}

static void test_log_debug_enable_malformed(void **state)
{
    char longname[80];

    (void)state;
    assert_int_equal(log_debug_enable("=1"), -EINVAL);
    assert_int_equal(log_debug_enable(""), -EINVAL);
    memset(longname, 'm', 60);
    strcpy(longname + 60, "=1");
    assert_int_equal(log_debug_enable(longname), -EINVAL);
}

static void test_log_debug_enable_table_full(void **state)
{
    char spec[32];
    int rc = 0, added = 0;

    (void)state;
    for (int i = 0; i < 64 && rc == 0; i++) {
        snprintf(spec, sizeof(spec), "fill%d=1", i);
        rc = log_debug_enable(spec);
        if (rc == 0)
            added++;
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(added > 0 && added <= 32);
    /* An existing module can still be switched. */
    assert_int_equal(log_debug_enable("fill0=0"), 0);
    assert_false(log_debug_on("fill0"));
}

int test_log(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_debug_enable_module),
        cmocka_unit_test(test_log_debug_enable_parent_covers_children),
        cmocka_unit_test(test_log_debug_enable_zero_disables),
        cmocka_unit_test(test_log_debug_enable_child_overrides_parent),
        cmocka_unit_test(test_log_debug_enable_without_value),
        cmocka_unit_test(test_log_debug_enable_malformed),
        cmocka_unit_test(test_log_debug_enable_table_full),
    };
    return cmocka_run_group_tests_name("common/log", tests, NULL, NULL);
}
