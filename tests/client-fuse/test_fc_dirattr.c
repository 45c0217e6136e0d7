/* Tests for client-fuse/fc_dirattr.c: which directory attributes from our
 * own changes' replies the mount answers GETATTR with, how long, and what
 * makes it forget them. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fault_inject.h"
#include "fc_internal.h"

static struct proto_attr dir_attr(uint64_t ino, uint64_t version)
{
    struct proto_attr a;
    memset(&a, 0, sizeof(a));
    a.ino = ino;
    a.mode = S_IFDIR | 0755;
    a.nlink = 2;
    a.mtime = (int64_t)version * 1000;
    a.version = version;
    return a;
}

static void test_fc_dirattr_get_until_deadline(void **state)
{
    struct fc_inotab *t;
    struct proto_attr a = dir_attr(7, 3), out;
    uint64_t until;

    (void)state;
    assert_int_equal(fc_dirattr_new(&t), 0);
    assert_false(fc_dirattr_get(t, 7, 1000, &out, &until));
    fc_dirattr_note(t, &a, fc_inotab_gen(t), 5000);
    assert_true(fc_dirattr_get(t, 7, 1000, &out, &until));
    assert_memory_equal(&out, &a, sizeof(a));
    assert_int_equal(until, 5000);
    assert_true(fc_dirattr_get(t, 7, 4999, &out, &until));
    assert_false(fc_dirattr_get(t, 7, 5000, &out, &until));
    assert_false(fc_dirattr_get(t, 8, 1000, &out, &until));
    fc_inotab_free(t);
}

/* A break of the directory (another client changed it) or a change of
 * ours whose reply does not describe it. */
static void test_fc_dirattr_forget_drops_directory(void **state)
{
    struct fc_inotab *t;
    struct proto_attr a = dir_attr(7, 3), b = dir_attr(9, 1), out;
    uint64_t until;

    (void)state;
    assert_int_equal(fc_dirattr_new(&t), 0);
    fc_dirattr_note(t, &a, fc_inotab_gen(t), 5000);
    fc_dirattr_note(t, &b, fc_inotab_gen(t), 5000);
    fc_inotab_forget(t, 7);
    assert_false(fc_dirattr_get(t, 7, 1000, &out, &until));
    assert_true(fc_dirattr_get(t, 9, 1000, &out, &until));
    fc_inotab_clear(t);
    assert_false(fc_dirattr_get(t, 9, 1000, &out, &until));
    fc_inotab_free(t);
}

/* A reply to a request that left before a break: it may describe the
 * directory before the other client's change, so it is not kept. */
static void test_fc_dirattr_note_after_forget_ignored(void **state)
{
    struct fc_inotab *t;
    struct proto_attr a = dir_attr(7, 3), out;
    uint64_t until;

    (void)state;
    assert_int_equal(fc_dirattr_new(&t), 0);
    uint64_t gen = fc_inotab_gen(t);
    fc_inotab_forget(t, 7);
    fc_dirattr_note(t, &a, gen, 5000);
    assert_false(fc_dirattr_get(t, 7, 1000, &out, &until));
    gen = fc_inotab_gen(t);
    fc_inotab_clear(t);
    fc_dirattr_note(t, &a, gen, 5000);
    assert_false(fc_dirattr_get(t, 7, 1000, &out, &until));
    fc_dirattr_note(t, &a, fc_inotab_gen(t), 5000);
    assert_true(fc_dirattr_get(t, 7, 1000, &out, &until));
    fc_inotab_free(t);
}

/* Two changes of ours in one directory answered out of order: the later
 * state (higher version) stays. */
static void test_fc_dirattr_note_keeps_newer_version(void **state)
{
    struct fc_inotab *t;
    struct proto_attr newer = dir_attr(7, 5), older = dir_attr(7, 4), out;
    uint64_t until;

    (void)state;
    assert_int_equal(fc_dirattr_new(&t), 0);
    uint64_t gen = fc_inotab_gen(t);
    fc_dirattr_note(t, &newer, gen, 5000);
    fc_dirattr_note(t, &older, gen, 6000);
    assert_true(fc_dirattr_get(t, 7, 1000, &out, &until));
    assert_int_equal(out.version, 5);
    assert_int_equal(until, 5000);
    struct proto_attr newest = dir_attr(7, 6);
    fc_dirattr_note(t, &newest, gen, 7000);
    assert_true(fc_dirattr_get(t, 7, 1000, &out, &until));
    assert_int_equal(out.version, 6);
    fc_inotab_free(t);
}

/* Only directories: a file's size and mtime move with writes the reply
 * of a namespace change knows nothing of. */
static void test_fc_dirattr_note_ignores_non_directory(void **state)
{
    struct fc_inotab *t;
    struct proto_attr a = dir_attr(7, 3), out;
    uint64_t until;

    (void)state;
    assert_int_equal(fc_dirattr_new(&t), 0);
    a.mode = S_IFREG | 0644;
    fc_dirattr_note(t, &a, fc_inotab_gen(t), 5000);
    assert_false(fc_dirattr_get(t, 7, 1000, &out, &until));
    a = dir_attr(0, 1);
    fc_dirattr_note(t, &a, fc_inotab_gen(t), 5000);
    assert_false(fc_dirattr_get(t, 0, 1000, &out, &until));
    fc_inotab_free(t);
}

static void test_fc_dirattr_new_enomem_and_null(void **state)
{
    struct fc_inotab *t = NULL;
    struct proto_attr a = dir_attr(7, 3), out;
    uint64_t until;

    (void)state;
    fault_inject_set(&(struct fault_rule){.call = FAULT_CALLOC, .nth = 1});
    assert_int_equal(fc_dirattr_new(&t), -ENOMEM);
    fault_inject_clear();
    assert_null(t);
    /* Without the table every GETATTR goes to metad. */
    fc_dirattr_note(NULL, &a, fc_inotab_gen(NULL), 5000);
    assert_false(fc_dirattr_get(NULL, 7, 1000, &out, &until));
    fc_inotab_forget(NULL, 7);
    fc_inotab_clear(NULL);
    fc_inotab_free(NULL);
}

int test_fc_dirattr(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_dirattr_get_until_deadline),
        cmocka_unit_test(test_fc_dirattr_forget_drops_directory),
        cmocka_unit_test(test_fc_dirattr_note_after_forget_ignored),
        cmocka_unit_test(test_fc_dirattr_note_keeps_newer_version),
        cmocka_unit_test(test_fc_dirattr_note_ignores_non_directory),
        cmocka_unit_test(test_fc_dirattr_new_enomem_and_null),
    };
    return cmocka_run_group_tests_name("fc_dirattr", tests, NULL, NULL);
}
