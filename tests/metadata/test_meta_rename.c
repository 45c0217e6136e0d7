/* test_meta_rename.c: RENAME in all its cases, and the permission rules
 * (search, write, sticky bit, root) shared by every namespace change. */
#include "test_meta_util.h"

static struct proto_cred U1 = {.uid = 1000, .gid = 1000};
static struct proto_cred U2 = {.uid = 2000, .gid = 2000};

#define R cred_root()

static void test_meta_ns_rename_moves_file(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, d, b;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, &a), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_rename(f, R, ROOT, "a", d.ino, "b", 0), 0);
    assert_int_equal(do_lookup(f, R, ROOT, "a", NULL), -ENOENT);
    assert_int_equal(ino_of(f, d.ino, "b"), a.ino);
    b = attr_of(f, a.ino);
    assert_int_equal(b.ctime, f->now);
    assert_int_equal(attr_of(f, ROOT).mtime, f->now);
    assert_int_equal(attr_of(f, d.ino).mtime, f->now);
    assert_int_equal(attr_of(f, d.ino).ctime, f->now);
    assert_int_equal(do_rename(f, R, ROOT, "a", d.ino, "c", 0), -ENOENT);
    assert_int_equal(do_rename(f, R, ROOT, "x", 77, "c", 0), -ENOENT);
}

static void test_meta_ns_rename_replaces_file(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, &a), 0);
    assert_int_equal(do_create(f, R, ROOT, "b", 0644, &b), 0);
    assert_int_equal(do_rename(f, R, ROOT, "a", ROOT, "b", 0), 0);
    assert_int_equal(ino_of(f, ROOT, "b"), a.ino);
    assert_int_equal(do_getattr(f, b.ino, NULL), -ENOENT);
    /* A replaced file with another link survives, one link fewer. */
    assert_int_equal(do_create(f, R, ROOT, "c", 0644, &b), 0);
    assert_int_equal(do_link(f, R, b.ino, ROOT, "c2", NULL), 0);
    assert_int_equal(do_rename(f, R, ROOT, "b", ROOT, "c", 0), 0);
    assert_int_equal(attr_of(f, b.ino).nlink, 1);
    assert_int_equal(attr_of(f, b.ino).ctime, f->now);
}

static void test_meta_ns_rename_noreplace(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, NULL), 0);
    assert_int_equal(do_create(f, R, ROOT, "b", 0644, NULL), 0);
    assert_int_equal(
        do_rename(f, R, ROOT, "a", ROOT, "b", PROTO_RENAME_NOREPLACE), -EEXIST);
    assert_int_equal(
        do_rename(f, R, ROOT, "a", ROOT, "c", PROTO_RENAME_NOREPLACE), 0);
    assert_int_equal(do_rename(f, R, ROOT, "c", ROOT, "d",
                               PROTO_RENAME_NOREPLACE | PROTO_RENAME_EXCHANGE),
                     -EINVAL);
}

static void test_meta_ns_rename_exchange(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, d, e;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, &a), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_mkdir(f, R, d.ino, "e", 0755, &e), 0);
    assert_int_equal(
        do_rename(f, R, ROOT, "a", ROOT, "zz", PROTO_RENAME_EXCHANGE), -ENOENT);
    /* File a <-> directory d/e across parents. */
    assert_int_equal(
        do_rename(f, R, ROOT, "a", d.ino, "e", PROTO_RENAME_EXCHANGE), 0);
    assert_int_equal(ino_of(f, ROOT, "a"), e.ino);
    assert_int_equal(ino_of(f, d.ino, "e"), a.ino);
    assert_int_equal(ino_of(f, e.ino, ".."), ROOT);
    assert_int_equal(attr_of(f, ROOT).nlink, 4); /* d and a (was e) */
    assert_int_equal(attr_of(f, d.ino).nlink, 2);
    /* A directory cannot be exchanged into its own subtree. */
    assert_int_equal(do_mkdir(f, R, e.ino, "sub", 0755, NULL), 0);
    assert_int_equal(
        do_rename(f, R, ROOT, "d", ino_of(f, e.ino, "sub"), "x", 0), 0);
    assert_int_equal(do_rename(f, R, ROOT, "a", ino_of(f, e.ino, "sub"), "x",
                               PROTO_RENAME_EXCHANGE),
                     -EINVAL);
}

static void test_meta_ns_rename_into_own_subtree(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, e;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_mkdir(f, R, d.ino, "e", 0755, &e), 0);
    assert_int_equal(do_rename(f, R, ROOT, "d", e.ino, "x", 0), -EINVAL);
    assert_int_equal(do_rename(f, R, ROOT, "d", d.ino, "x", 0), -EINVAL);
    assert_int_equal(ino_of(f, ROOT, "d"), d.ino);
}

static void test_meta_ns_rename_dir_cases(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, e, g;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "e", 0755, &e), 0);
    assert_int_equal(do_create(f, R, e.ino, "in", 0644, NULL), 0);
    assert_int_equal(do_create(f, R, ROOT, "file", 0644, NULL), 0);
    assert_int_equal(do_rename(f, R, ROOT, "d", ROOT, "e", 0), -ENOTEMPTY);
    assert_int_equal(do_rename(f, R, ROOT, "d", ROOT, "file", 0), -ENOTDIR);
    assert_int_equal(do_rename(f, R, ROOT, "file", ROOT, "d", 0), -EISDIR);
    assert_int_equal(do_rename(f, R, ROOT, ".", ROOT, "z", 0), -EBUSY);
    /* Directory over an empty directory, then into another parent. */
    assert_int_equal(do_mkdir(f, R, ROOT, "g", 0755, &g), 0);
    assert_int_equal(attr_of(f, ROOT).nlink, 5);
    assert_int_equal(do_rename(f, R, ROOT, "d", ROOT, "g", 0), 0);
    assert_int_equal(do_getattr(f, g.ino, NULL), -ENOENT);
    assert_int_equal(attr_of(f, ROOT).nlink, 4);
    assert_int_equal(do_rename(f, R, ROOT, "g", e.ino, "d", 0), 0);
    assert_int_equal(attr_of(f, ROOT).nlink, 3);
    assert_int_equal(attr_of(f, e.ino).nlink, 3);
    assert_int_equal(ino_of(f, d.ino, ".."), e.ino);
}

static void test_meta_ns_rename_over_itself(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, &a), 0);
    assert_int_equal(do_link(f, R, a.ino, ROOT, "b", NULL), 0);
    struct proto_attr before = attr_of(f, a.ino);
    assert_int_equal(do_rename(f, R, ROOT, "a", ROOT, "b", 0), 0);
    assert_int_equal(do_rename(f, R, ROOT, "a", ROOT, "a", 0), 0);
    struct proto_attr after = attr_of(f, a.ino);
    assert_int_equal(after.nlink, 2);
    assert_int_equal(after.version, before.version);
    assert_int_equal(ino_of(f, ROOT, "a"), a.ino);
    assert_int_equal(ino_of(f, ROOT, "b"), a.ino);
}

static void test_meta_ns_rename_sticky(void **state)
{
    struct fx *f = *state;
    struct proto_attr t, a;
    assert_int_equal(do_mkdir(f, R, ROOT, "tmp", 01777, &t), 0);
    assert_int_equal(t.mode, S_IFDIR | 01777);
    assert_int_equal(do_create(f, U1, t.ino, "mine", 0644, &a), 0);
    assert_int_equal(do_rename(f, U2, t.ino, "mine", t.ino, "x", 0), -EPERM);
    assert_int_equal(do_unlink(f, U2, t.ino, "mine"), -EPERM);
    assert_int_equal(do_create(f, U2, t.ino, "his", 0644, NULL), 0);
    assert_int_equal(do_rename(f, U1, t.ino, "mine", t.ino, "his", 0), -EPERM);
    assert_int_equal(do_rename(f, U1, t.ino, "mine", t.ino, "x", 0), 0);
    assert_int_equal(do_rename(f, R, t.ino, "x", t.ino, "his", 0), 0);
    assert_int_equal(do_unlink(f, U1, t.ino, "his"), 0);
}

static void test_meta_perm_search_and_write(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, a;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0700, &d), 0);
    assert_int_equal(do_create(f, R, d.ino, "f", 0644, &a), 0);
    assert_int_equal(do_lookup(f, U1, d.ino, "f", NULL), -EACCES);
    assert_int_equal(do_create(f, U1, d.ino, "g", 0644, NULL), -EACCES);
    assert_int_equal(do_chmod(f, R, d.ino, 0711, NULL), 0);
    assert_int_equal(do_lookup(f, U1, d.ino, "f", NULL), 0);
    assert_int_equal(do_create(f, U1, d.ino, "g", 0644, NULL), -EACCES);
    assert_int_equal(do_create(f, U1, d.ino, "f", 0644, NULL), -EEXIST);
    assert_int_equal(do_rename(f, U1, d.ino, "f", d.ino, "h", 0), -EACCES);
    /* Group class applies through a supplementary group. */
    struct proto_setattr_req q = {
        .cred = R, .ino = d.ino, .valid = PROTO_SETATTR_GID, .gid = 500};
    assert_int_equal(do_setattr(f, &q, NULL), 0);
    assert_int_equal(do_chmod(f, R, d.ino, 0771, NULL), 0);
    struct proto_cred member = U1;
    member.ngroups = 2;
    member.groups[0] = 7;
    member.groups[1] = 500;
    assert_int_equal(do_create(f, member, d.ino, "g", 0644, NULL), 0);
    assert_int_equal(do_create(f, U2, d.ino, "h", 0644, NULL), -EACCES);
}

static void test_meta_perm_access_and_open(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, d;
    assert_int_equal(do_chmod(f, R, ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0640, &a), 0);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, U1, a.ino, R_OK | W_OK),
                     0);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, U1, a.ino, X_OK),
                     -EACCES);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, U2, a.ino, R_OK),
                     -EACCES);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, U2, a.ino, F_OK), 0);
    /* Root: read and write always, exec only with some x bit. */
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, R, a.ino, R_OK | W_OK),
                     0);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, R, a.ino, X_OK),
                     -EACCES);
    assert_int_equal(do_chmod(f, U1, a.ino, 0641, NULL), 0);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, R, a.ino, X_OK), 0);
    assert_int_equal(do_access(f, PROTO_MSG_ACCESS_REQ, R, 999, F_OK), -ENOENT);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, U1, a.ino, O_RDWR), 0);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, U2, a.ino, O_RDONLY),
                     -EACCES);
    assert_int_equal(do_chmod(f, U1, a.ino, 0444, NULL), 0);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, U1, a.ino, O_RDONLY), 0);
    assert_int_equal(
        do_access(f, PROTO_MSG_OPEN_REQ, U1, a.ino, O_RDONLY | O_TRUNC),
        -EACCES);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, U1, a.ino, O_WRONLY),
                     -EACCES);
    assert_int_equal(do_mkdir(f, U1, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, U1, d.ino, O_RDONLY), 0);
    assert_int_equal(do_access(f, PROTO_MSG_OPEN_REQ, R, d.ino, O_RDWR),
                     -EISDIR);
}

static void test_meta_perm_setgid_dir_inherits(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, a, s;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 02777, &d), 0);
    struct proto_setattr_req q = {
        .cred = R, .ino = d.ino, .valid = PROTO_SETATTR_GID, .gid = 500};
    assert_int_equal(do_setattr(f, &q, NULL), 0);
    assert_int_equal(do_create(f, U1, d.ino, "f", 0644, &a), 0);
    assert_int_equal(a.gid, 500);
    assert_int_equal(do_mkdir(f, U1, d.ino, "sub", 0755, &s), 0);
    assert_int_equal(s.gid, 500);
    assert_int_equal(s.mode, S_IFDIR | 02755);
}

int test_meta_rename(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_ns_rename_moves_file),
        T(test_meta_ns_rename_replaces_file),
        T(test_meta_ns_rename_noreplace),
        T(test_meta_ns_rename_exchange),
        T(test_meta_ns_rename_into_own_subtree),
        T(test_meta_ns_rename_dir_cases),
        T(test_meta_ns_rename_over_itself),
        T(test_meta_ns_rename_sticky),
        T(test_meta_perm_search_and_write),
        T(test_meta_perm_access_and_open),
        T(test_meta_perm_setgid_dir_inherits),
#undef T
    };
    return cmocka_run_group_tests_name("meta_rename", tests, NULL, NULL);
}
