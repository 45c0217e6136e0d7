/* Tests for client-fuse/fc_dirlist.c: which names the mount may say a
 * directory it made or listed whole does not hold, how long, what it
 * lists without metad, and what makes it forget the directory. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fault_inject.h"
#include "fc_internal.h"

static struct fc_dirlist *made(uint64_t dir, uint64_t until)
{
    struct fc_dirlist *t;

    assert_int_equal(fc_dirlist_new(&t), 0);
    fc_dirlist_note_empty(t, dir, 1, fc_dirlist_gen(t), 100, until);
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
        fc_dirlist_add(t, 7, name, 1000 + i, S_IFREG, 1000, 0);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        assert_false(fc_dirlist_absent(t, 7, name, 1000, NULL));
    }
    assert_true(fc_dirlist_absent(t, 7, "f1000", 1000, &until));
    assert_int_equal(until, 5000);
    fc_dirlist_remove(t, 7, "f10", 1000, 9000);
    assert_true(fc_dirlist_absent(t, 7, "f10", 1000, &until));
    assert_int_equal(until, 9000);
    assert_false(fc_dirlist_absent(t, 7, "f11", 1000, NULL));
    /* Added again after its removal (a slot once used). */
    fc_dirlist_add(t, 7, "f10", 1010, S_IFREG, 1000, 0);
    assert_false(fc_dirlist_absent(t, 7, "f10", 1000, NULL));
    /* A change in a directory not known whole teaches nothing. */
    fc_dirlist_add(t, 8, "x", 9, S_IFREG, 1000, 9000);
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
    fc_dirlist_note_empty(t, 9, 1, fc_dirlist_gen(t), 100, 5000);
    fc_dirlist_forget(t, 7);
    assert_false(fc_dirlist_absent(t, 7, "a", 1000, NULL));
    assert_true(fc_dirlist_absent(t, 9, "a", 1000, NULL));
    fc_dirlist_clear(t);
    assert_false(fc_dirlist_absent(t, 9, "a", 1000, NULL));
    gen = fc_dirlist_gen(t);
    fc_dirlist_forget(t, 12); /* a break while a MKDIR was in flight */
    fc_dirlist_note_empty(t, 11, 1, gen, 100, 5000);
    assert_false(fc_dirlist_absent(t, 11, "a", 1000, NULL));
    /* Expired at its note, nothing is kept. */
    fc_dirlist_note_empty(t, 13, 1, fc_dirlist_gen(t), 6000, 5000);
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
        fc_dirlist_note_empty(t, 100 + i, 1, fc_dirlist_gen(t), 10, 5000 + i);
    fc_dirlist_note_empty(t, 99, 1, fc_dirlist_gen(t), 10, 9000);
    assert_true(fc_dirlist_absent(t, 99, "a", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 100, "a", 1000, NULL));
    for (uint64_t i = 1; i < FC_DIRLIST_DIRS; i++)
        assert_true(fc_dirlist_absent(t, 100 + i, "a", 1000, NULL));
    /* At 5001 the next one has expired: it goes, not the latest. */
    fc_dirlist_note_empty(t, 98, 1, fc_dirlist_gen(t), 5002, 9000);
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
    fc_dirlist_add(t, 7, "a", 8, S_IFREG, 1000, 0);
    fault_inject_clear();
    assert_false(fc_dirlist_absent(t, 7, "a", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 7, "b", 1000, NULL));
    fc_dirlist_free(t);
}

/* A table of NULL knows nothing and learns nothing. */
static void test_fc_dirlist_null(void **state)
{
    (void)state;
    fc_dirlist_note_empty(NULL, 7, 1, 0, 100, 5000);
    fc_dirlist_add(NULL, 7, "a", 8, S_IFREG, 1000, 0);
    fc_dirlist_remove(NULL, 7, "a", 1000, 0);
    fc_dirlist_rename(NULL, 7, "a", 7, "b", 1000, 0);
    fc_dirlist_forget(NULL, 7);
    fc_dirlist_clear(NULL);
    assert_false(fc_dirlist_absent(NULL, 7, "a", 1000, NULL));
    assert_int_equal(fc_dirlist_gen(NULL), 0);
    fc_dirlist_free(NULL);
}

/* The listing a known directory gives: ".", "..", then every name with
 * its inode and type, cookies one apart; nothing for one not known or
 * expired. */
struct seen {
    int n, dot, dotdot;
    uint64_t ino_of_b;
    uint32_t mode_of_b;
    uint64_t last_cookie;
};

static int list_of(struct fc_dirlist *t, uint64_t dir, uint64_t now,
                   struct seen *out)
{
    struct proto_wbuf w;
    struct proto_readdir_rep rep = {.eof = 1};
    struct proto_dirent_iter it;
    struct proto_dirent e;
    int rc;

    memset(out, 0, sizeof(*out));
    proto_wbuf_init(&w);
    rc = fc_dirlist_list(t, dir, now, &w, &rep.count);
    if (rc == 0) {
        rep.raw = (struct proto_str){(const char *)w.p, (uint32_t)w.len};
        proto_dirent_iter_init(&it, &rep);
        while (proto_dirent_next(&it, &e)) {
            assert_int_equal(e.cookie, FC_DIRLIST_COOKIE0 + out->n);
            out->last_cookie = e.cookie;
            out->n++;
            if (e.name.len == 1 && e.name.p[0] == '.')
                out->dot = (int)e.attr.ino;
            else if (e.name.len == 2 && memcmp(e.name.p, "..", 2) == 0)
                out->dotdot = (int)e.attr.ino;
            else if (e.name.len == 1 && e.name.p[0] == 'b') {
                out->ino_of_b = e.attr.ino;
                out->mode_of_b = e.attr.mode;
            }
        }
        assert_int_equal(out->n, rep.count);
    }
    proto_wbuf_free(&w);
    return rc;
}

static void test_fc_dirlist_list(void **state)
{
    struct fc_dirlist *t = made(7, 5000);
    struct seen v;

    (void)state;
    assert_int_equal(list_of(t, 7, 1000, &v), 0);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.dot, 7);
    assert_int_equal(v.dotdot, 1);
    fc_dirlist_add(t, 7, "a", 20, S_IFREG | 0644, 1000, 0);
    fc_dirlist_add(t, 7, "b", 21, S_IFDIR | 0755, 1000, 0);
    fc_dirlist_add(t, 7, "c", 22, S_IFLNK | 0777, 1000, 0);
    fc_dirlist_remove(t, 7, "a", 1000, 0);
    assert_int_equal(list_of(t, 7, 1000, &v), 0);
    assert_int_equal(v.n, 4);
    assert_int_equal(v.ino_of_b, 21);
    assert_int_equal(v.mode_of_b, S_IFDIR); /* the type alone */
    assert_int_equal(list_of(t, 8, 1000, &v), -ENOENT);
    assert_int_equal(list_of(t, 7, 5000, &v), -ENOENT);
    assert_int_equal(list_of(NULL, 7, 1000, &v), -ENOENT);
    fc_dirlist_free(t);
}

/* A READDIR reply that went from the start to the end teaches the whole
 * directory; one short of the end, without "..", or raced by a forget
 * teaches nothing. */
static void reply_of(struct proto_wbuf *w, struct proto_readdir_rep *rep,
                     bool eof, bool dotdot)
{
    const char *names[] = {".", "..", "x", "b"};
    uint64_t inos[] = {7, 3, 30, 31};
    uint32_t modes[] = {S_IFDIR, S_IFDIR, S_IFREG | 0600, S_IFREG | 0600};

    proto_wbuf_init(w);
    memset(rep, 0, sizeof(*rep));
    for (int i = 0; i < 4; i++) {
        if (i == 1 && !dotdot)
            continue;
        struct proto_dirent e = {
            .cookie = (uint64_t)i + 1,
            .name = {names[i], (uint32_t)strlen(names[i])},
        };
        e.attr.ino = inos[i];
        e.attr.mode = modes[i];
        proto_dirent_put(w, 0, &e);
        rep->count++;
    }
    rep->eof = eof;
    rep->raw = (struct proto_str){(const char *)w->p, (uint32_t)w->len};
}

static void test_fc_dirlist_note_list(void **state)
{
    struct fc_dirlist *t;
    struct proto_wbuf w;
    struct proto_readdir_rep rep;
    struct seen v;
    uint64_t gen;

    (void)state;
    assert_int_equal(fc_dirlist_new(&t), 0);
    reply_of(&w, &rep, true, true);
    fc_dirlist_note_list(t, 7, &rep, fc_dirlist_stamp(t), 100, 5000);
    assert_true(fc_dirlist_present(t, 7, "x", 1000));
    assert_true(fc_dirlist_absent(t, 7, "y", 1000, NULL));
    assert_int_equal(list_of(t, 7, 1000, &v), 0);
    assert_int_equal(v.n, 4);
    assert_int_equal(v.dotdot, 3);
    assert_int_equal(v.ino_of_b, 31);
    assert_int_equal(v.mode_of_b, S_IFREG);
    /* A listing again does not replace what is known: it may lack a
     * change of ours. */
    fc_dirlist_add(t, 7, "z", 40, S_IFREG, 1000, 0);
    fc_dirlist_note_list(t, 7, &rep, fc_dirlist_stamp(t), 100, 5000);
    assert_true(fc_dirlist_present(t, 7, "z", 1000));
    /* A change of ours while the READDIR was out, even in a directory not
     * known: metad may have listed before it applied. */
    uint64_t stamp = fc_dirlist_stamp(t);
    fc_dirlist_add(t, 20, "late", 41, S_IFREG, 1000, 0);
    fc_dirlist_note_list(t, 20, &rep, stamp, 100, 5000);
    assert_false(fc_dirlist_absent(t, 20, "y", 1000, NULL));
    stamp = fc_dirlist_stamp(t);
    fc_dirlist_remove(t, 21, "x", 1000, 0);
    fc_dirlist_note_list(t, 21, &rep, stamp, 100, 5000);
    assert_false(fc_dirlist_absent(t, 21, "y", 1000, NULL));
    stamp = fc_dirlist_stamp(t);
    fc_dirlist_rename(t, 22, "x", 23, "y", 1000, 0);
    fc_dirlist_note_list(t, 22, &rep, stamp, 100, 5000);
    assert_false(fc_dirlist_absent(t, 22, "y", 1000, NULL));
    proto_wbuf_free(&w);

    reply_of(&w, &rep, false, true); /* not to the end */
    fc_dirlist_note_list(t, 8, &rep, fc_dirlist_stamp(t), 100, 5000);
    assert_false(fc_dirlist_absent(t, 8, "y", 1000, NULL));
    proto_wbuf_free(&w);
    reply_of(&w, &rep, true, false); /* no ".." */
    fc_dirlist_note_list(t, 9, &rep, fc_dirlist_stamp(t), 100, 5000);
    assert_false(fc_dirlist_absent(t, 9, "y", 1000, NULL));
    gen = fc_dirlist_stamp(t);
    fc_dirlist_forget(t, 12); /* a break while the READDIR was out */
    proto_wbuf_free(&w);
    reply_of(&w, &rep, true, true);
    fc_dirlist_note_list(t, 10, &rep, gen, 100, 5000);
    assert_false(fc_dirlist_absent(t, 10, "y", 1000, NULL));
    proto_wbuf_free(&w);
    fc_dirlist_free(t);
}

/* A rename moves the entry between known directories, replacing the
 * target's; a moved directory's ".." follows; a rename from a directory
 * not known (or of a name it does not hold) forgets the target's. */
static void test_fc_dirlist_rename(void **state)
{
    struct fc_dirlist *t = made(7, 5000);
    struct seen v;
    uint64_t until = 0;

    (void)state;
    fc_dirlist_note_empty(t, 8, 1, fc_dirlist_gen(t), 100, 5000);
    fc_dirlist_add(t, 7, "a", 20, S_IFREG, 1000, 0);
    fc_dirlist_add(t, 8, "b", 21, S_IFREG, 1000, 0);
    fc_dirlist_rename(t, 7, "a", 8, "b", 1000, 6000);
    assert_true(fc_dirlist_absent(t, 7, "a", 1000, &until));
    assert_int_equal(until, 6000);
    assert_int_equal(list_of(t, 8, 1000, &v), 0);
    assert_int_equal(v.n, 3);
    assert_int_equal(v.ino_of_b, 20);
    /* Within one directory. */
    fc_dirlist_rename(t, 8, "b", 8, "c", 1000, 0);
    assert_true(fc_dirlist_present(t, 8, "c", 1000));
    assert_true(fc_dirlist_absent(t, 8, "b", 1000, NULL));
    /* A directory known itself moves: its ".." is the new parent. */
    fc_dirlist_add(t, 7, "d", 8, S_IFDIR, 1000, 0);
    fc_dirlist_note_empty(t, 9, 1, fc_dirlist_gen(t), 100, 5000);
    fc_dirlist_rename(t, 7, "d", 9, "d2", 1000, 0);
    assert_int_equal(list_of(t, 8, 1000, &v), 0);
    assert_int_equal(v.dotdot, 9);
    /* From a directory not known: the target is no longer known whole,
     * nor a directory known to hang from the source (it may be what
     * moved). */
    fc_dirlist_note_empty(t, 30, 50, fc_dirlist_gen(t), 100, 5000);
    fc_dirlist_rename(t, 50, "q", 9, "q", 1000, 0);
    assert_false(fc_dirlist_absent(t, 9, "zz", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 30, "zz", 1000, NULL));
    assert_true(fc_dirlist_absent(t, 7, "zz", 1000, NULL));
    /* A name the known directory does not hold: both are given up. */
    fc_dirlist_rename(t, 7, "nothere", 8, "x", 1000, 0);
    assert_false(fc_dirlist_absent(t, 7, "zz", 1000, NULL));
    assert_false(fc_dirlist_absent(t, 8, "zz", 1000, NULL));
    fc_dirlist_free(t);
}

/* A change reaching a directory whose time ran out drops it: a reply
 * renewing the promise now cannot vouch for what others did meanwhile. */
static void test_fc_dirlist_expired_not_revived(void **state)
{
    struct fc_dirlist *t = made(7, 5000);

    (void)state;
    fc_dirlist_add(t, 7, "a", 20, S_IFREG, 6000, 9000);
    assert_false(fc_dirlist_absent(t, 7, "b", 7000, NULL));
    assert_false(fc_dirlist_present(t, 7, "a", 7000));
    fc_dirlist_free(t);
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
        cmocka_unit_test(test_fc_dirlist_list),
        cmocka_unit_test(test_fc_dirlist_note_list),
        cmocka_unit_test(test_fc_dirlist_rename),
        cmocka_unit_test(test_fc_dirlist_expired_not_revived),
    };
    return cmocka_run_group_tests_name("fc_dirlist", tests, NULL, NULL);
}
