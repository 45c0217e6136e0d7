/* Tests for client-fuse/fc_nocap.c: what the mount knows of inodes
 * without security.capability, how long, and what makes it forget. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fault_inject.h"
#include "fc_internal.h"

static void test_fc_nocap_known_until_deadline(void **state)
{
    struct fc_inotab *t;

    (void)state;
    assert_int_equal(fc_nocap_new(&t), 0);
    assert_false(fc_nocap_known(t, 42, 1000));
    fc_nocap_note(t, 42, fc_inotab_gen(t), 2000);
    assert_true(fc_nocap_known(t, 42, 1000));
    assert_true(fc_nocap_known(t, 42, 1999));
    assert_false(fc_nocap_known(t, 42, 2000)); /* as long as attributes */
    assert_false(fc_nocap_known(t, 43, 1000));
    fc_inotab_free(t);
}

static void test_fc_nocap_forget_drops_inode(void **state)
{
    struct fc_inotab *t;

    (void)state;
    assert_int_equal(fc_nocap_new(&t), 0);
    fc_nocap_note(t, 42, fc_inotab_gen(t), 5000);
    fc_nocap_note(t, 7, fc_inotab_gen(t), 5000);
    fc_inotab_forget(t, 42); /* a setxattr, or a break */
    assert_false(fc_nocap_known(t, 42, 1000));
    assert_true(fc_nocap_known(t, 7, 1000));
    fc_inotab_free(t);
}

/* An answer that was asked for before a forget may describe the inode
 * before the change: it is not kept. */
static void test_fc_nocap_note_after_forget_ignored(void **state)
{
    struct fc_inotab *t;

    (void)state;
    assert_int_equal(fc_nocap_new(&t), 0);
    uint64_t gen = fc_inotab_gen(t);
    fc_inotab_forget(t, 42);
    fc_nocap_note(t, 42, gen, 5000);
    assert_false(fc_nocap_known(t, 42, 1000));
    fc_nocap_note(t, 42, fc_inotab_gen(t), 5000);
    assert_true(fc_nocap_known(t, 42, 1000));
    fc_inotab_free(t);
}

/* Two inodes on one slot: the later one wins, the other is asked about
 * again, never answered for the wrong inode. */
static void test_fc_nocap_slot_collision(void **state)
{
    struct fc_inotab *t;
    uint64_t a = 1, b = 0;

    (void)state;
    assert_int_equal(fc_nocap_new(&t), 0);
    fc_nocap_note(t, a, fc_inotab_gen(t), 5000);
    for (uint64_t i = 2; i < 100000 && !b; i++) {
        fc_nocap_note(t, i, fc_inotab_gen(t), 5000);
        if (!fc_nocap_known(t, a, 1000))
            b = i;
    }
    assert_true(b != 0);
    assert_true(fc_nocap_known(t, b, 1000));
    fc_inotab_free(t);
}

static void test_fc_nocap_new_enomem_and_null(void **state)
{
    struct fc_inotab *t = NULL;

    (void)state;
    fault_inject_set(&(struct fault_rule){.call = FAULT_CALLOC, .nth = 1});
    assert_int_equal(fc_nocap_new(&t), -ENOMEM);
    fault_inject_clear();
    assert_null(t);
    /* The mount goes on without the table: every ask goes to metad. */
    fc_nocap_note(NULL, 42, fc_inotab_gen(NULL), 5000);
    assert_false(fc_nocap_known(NULL, 42, 1000));
    fc_inotab_forget(NULL, 42);
    fc_inotab_free(NULL);
}

int test_fc_nocap(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_nocap_known_until_deadline),
        cmocka_unit_test(test_fc_nocap_forget_drops_inode),
        cmocka_unit_test(test_fc_nocap_note_after_forget_ignored),
        cmocka_unit_test(test_fc_nocap_slot_collision),
        cmocka_unit_test(test_fc_nocap_new_enomem_and_null),
    };
    return cmocka_run_group_tests_name("fc_nocap", tests, NULL, NULL);
}
