/* Tests for client-fuse/fc_dirlist.c: which names the mount may say a
 * directory it made does not hold, how long, and what makes it forget the
 * directory. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fault_inject.h"
#include "fc_internal.h"

static struct fc_dirlist *made(uint64_t dir, uint64_t until)
{
    struct fc_dirlist *t;

    assert_int_equal(fc_dirlist_new(&t), 0);
    fc_dirlist_note_empty(t, dir, fc_dirlist_gen(t), 100, until);
    return t;
}

/* A directory made here holds nothing but what we added, until its
 * deadline; a directory not made here is never answered for. */
static void test_fc_dirlist_absent_until_deadline(void **state)
{
    struct fc_dirlist *t = made(7, 5000);
    uint64_t until = 0;

    (void)state;
    assert_true(fc_dirlist_absent(t, 7, "a", 1000, &until));
    assert_int_equal(until, 5000);
    assert_true(fc_dirlist_absent(t, 7, "a", 4999, NULL));
    assert_false(fc_dirlist_absent(t, 7, "a", 5000, NULL));
    assert_false(fc_dirlist_absent(t, 8, "a", 1000, NULL));
    fc_dirlist_free(t);
}

/* Names we add are there, names we remove are not; a change whose reply
 * renewed the promise moves the deadline on, one that did not leaves it. */
static void test_fc_dirlist_add_remove(void **state)
{
    struct fc_dirlist *t = made(7, 5000);
    uint64_t until = 0;
    char name[16];

    (void)state;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        fc_dirlist_add(t, 7, name, 0);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        assert_false(fc_dirlist_absent(t, 7, name, 1000, NULL));
    }
    assert_true(fc_dirlist_absent(t, 7, "f1000", 1000, &until));
    assert_int_equal(until, 5000);
    fc_dirlist_remove(t, 7, "f10", 9000);
    assert_true(fc_dirlist_absent(t, 7, "f10", 1000, &until));
    assert_int_equal(until, 9000);
    assert_false(fc_dirlist_absent(t, 7, "f11", 1000, NULL));
    /* Added again after its removal (a slot once used). */
    fc_dirlist_add(t, 7, "f10", 0);
    assert_false(fc_dirlist_absent(t, 7, "f10", 1000, NULL));
    /* A change in a directory not known whole teaches nothing. */
    fc_dirlist_add(t, 8, "x", 9000);
    assert_false(fc_dirlist_absent(t, 8, "y", 1000, NULL));
    fc_dirlist_free(t);
}

/* A break of the directory, or of all of them, forgets it; a MKDIR's
 * reply that raced a forget is not noted. */
static void test_fc_dirlist_forget(void **state)
{
    struct fc_dirlist *t = made(7, 5000);
    uint64_t gen;

    (void)state;
    fc_dirlist_note_empty(t, 9, fc_dirlist_gen(t), 100, 5000);
    fc_dirlist_forget(t, 7);
    assert_false(fc_dirlist_absent(t, 7, "a", 1000, NULL));
    assert_true(fc_dirlist_absent(t, 9, "a", 1000, NULL));
    fc_dirlist_clear(t);
    assert_false(fc_dirlist_absent(t, 9, "a", 1000, NULL));
    gen = fc_dirlist_gen(t);
    fc_dirlist_forget(t, 12); /* a break while a MKDIR was in flight */
    fc_dirlist_note_empty(t, 11, gen, 100, 5000);
    assert_false(fc_dirlist_absent(t, 11, "a", 1000, NULL));
    /* Expired at its note, nothing is kept. */
    fc_dirlist_note_empty(t, 13, fc_dirlist_gen(t), 6000, 5000);
    assert_false(fc_dirlist_absent(t, 13, "a", 1000, NULL));
    fc_dirlist_free(t);
}

/* More directories than the table holds: a new one takes the place of
 * one expired, else of the one expiring first; the rest stay. */
static void test_fc_dirlist_full_table(void **state)
{
    struct fc_dirlist *t;

    (void)state;
    assert_int_equal(fc_dirlist_new(&t), 0);
    for (uint64_t i = 0; i < FC_DIRLIST_DIRS; i++)
        fc_dirlist_note_empty(t, 100 + i, fc_dirlist_gen(t), 10, 5000 + i);
    fc_dirlist_note_empty(t, 99, fc_dirlist_gen(t), 10, 9000);
    assert_true(fc_dirlist_absent(t, 99, "a", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 100, "a", 1000, NULL));
    for (uint64_t i = 1; i < FC_DIRLIST_DIRS; i++)
        assert_true(fc_dirlist_absent(t, 100 + i, "a", 1000, NULL));
    /* At 5001 the next one has expired: it goes, not the latest. */
    fc_dirlist_note_empty(t, 98, fc_dirlist_gen(t), 5002, 9000);
    assert_false(fc_dirlist_absent(t, 101, "a", 1000, NULL));
    assert_true(fc_dirlist_absent(t, 99, "a", 1000, NULL));
    assert_true(fc_dirlist_absent(t, 98, "a", 1000, NULL));
    fc_dirlist_free(t);
}

/* Out of memory while adding a name: the directory is no longer known
 * whole (it must not answer for a name it failed to keep). */
static void test_fc_dirlist_enomem_forgets(void **state)
{
    struct fc_dirlist *t = made(7, 5000);

    (void)state;
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_MALLOC, .nth = 1, .count = 100, .err = ENOMEM});
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_CALLOC, .nth = 1, .count = 100, .err = ENOMEM});
    fc_dirlist_add(t, 7, "a", 0);
    fault_inject_clear();
    assert_false(fc_dirlist_absent(t, 7, "a", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 7, "b", 1000, NULL));
    fc_dirlist_free(t);
}

/* A table of NULL knows nothing and learns nothing. */
static void test_fc_dirlist_null(void **state)
{
    (void)state;
    fc_dirlist_note_empty(NULL, 7, 0, 100, 5000);
    fc_dirlist_add(NULL, 7, "a", 0);
    fc_dirlist_remove(NULL, 7, "a", 0);
    fc_dirlist_forget(NULL, 7);
    fc_dirlist_clear(NULL);
    assert_false(fc_dirlist_absent(NULL, 7, "a", 1000, NULL));
    assert_int_equal(fc_dirlist_gen(NULL), 0);
    fc_dirlist_free(NULL);
}

int test_fc_dirlist(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_dirlist_absent_until_deadline),
        cmocka_unit_test(test_fc_dirlist_add_remove),
        cmocka_unit_test(test_fc_dirlist_forget),
        cmocka_unit_test(test_fc_dirlist_full_table),
        cmocka_unit_test(test_fc_dirlist_enomem_forgets),
        cmocka_unit_test(test_fc_dirlist_null),
    };
    return cmocka_run_group_tests_name("fc_dirlist", tests, NULL, NULL);
}
