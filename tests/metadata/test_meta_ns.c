/* test_meta_ns.c: namespace mutations: create, link, remove, setattr and
 * extended attributes, with the errno a local file system would give. */
#include "test_meta_util.h"

static struct proto_cred U1 = {.uid = 1000, .gid = 1000};
static struct proto_cred U2 = {.uid = 2000, .gid = 2000};

static void test_meta_db_open_creates_root(void **state)
{
    struct fx *f = *state;
    struct proto_attr a = attr_of(f, ROOT);
    assert_int_equal(a.ino, 1);
    assert_int_equal(a.mode, S_IFDIR | 0755);
    assert_int_equal(a.uid, 0);
    assert_int_equal(a.gid, 0);
    assert_int_equal(a.nlink, 2);
    assert_int_equal(a.goal, 3);
}

static void test_meta_db_open_reopens_file(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    snprintf(f->dir, sizeof(f->dir), "/tmp/meta-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/meta.db", f->dir);
    meta_db_close(f->db);
    assert_int_equal(meta_db_open(path, &f->db), 0);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &a), 0);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "d"), -EISDIR);
    meta_db_close(f->db);
    assert_int_equal(meta_db_open(path, &f->db), 0);
    assert_int_equal(ino_of(f, ROOT, "d"), a.ino);
    assert_int_equal(do_create(f, cred_root(), ROOT, "x", 0644, &b), 0);
    assert_true(b.ino > a.ino);
    struct stat st;
    snprintf(path, sizeof(path), "%s/meta.db-wal", f->dir);
    assert_int_equal(stat(path, &st), 0); /* WAL mode */
}

/* docs/protocol.md §6.8-6.13: each change's reply carries its
 * directories as GETATTR then returns them, so a client may answer the
 * next GETATTR itself. */
static void test_meta_ns_replies_carry_directories(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w, reply;
    struct proto_entry_rep e;
    struct proto_dirs_rep d;
    struct proto_attr sub;

    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "s", 0755, &sub), 0);
    struct proto_mknod_req q = {.cred = cred_root(),
                                .parent = sub.ino,
                                .mode = S_IFREG | 0644,
                                .flags = PROTO_MKNOD_EXCL,
                                .name = str_of("f")};
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    proto_wbuf_init(&reply);
    f->now += 1000;
    assert_int_equal(fx_apply(f, PROTO_MSG_MKNOD_REQ, &w, &reply), 0);
    assert_int_equal(proto_entry_rep_decode(reply.p, reply.len, &e), 0);
    proto_wbuf_free(&reply);
    assert_true(e.has_dir);
    struct proto_attr now = attr_of(f, sub.ino);
    assert_memory_equal(&e.dir, &now, sizeof(now));
    assert_int_equal(e.dir.mtime, f->now);
    assert_true(e.dir.version > sub.version);

    /* MKDIR: the parent's nlink grew. */
    struct proto_mkdir_req m = {
        .cred = cred_root(), .parent = ROOT, .mode = 0755, .name = str_of("t")};
    proto_wbuf_init(&w);
    proto_mkdir_req_encode(&w, &m);
    proto_wbuf_init(&reply);
    assert_int_equal(fx_apply(f, PROTO_MSG_MKDIR_REQ, &w, &reply), 0);
    assert_int_equal(proto_entry_rep_decode(reply.p, reply.len, &e), 0);
    proto_wbuf_free(&reply);
    now = attr_of(f, ROOT);
    assert_memory_equal(&e.dir, &now, sizeof(now));
    assert_int_equal(e.dir.nlink, 4);

    /* RENAME across directories: the old one, then the new one. */
    struct proto_rename_req r = {.cred = cred_root(),
                                 .parent = sub.ino,
                                 .name = str_of("f"),
                                 .newparent = ROOT,
                                 .newname = str_of("g")};
    proto_wbuf_init(&w);
    proto_rename_req_encode(&w, &r);
    proto_wbuf_init(&reply);
    f->now += 1000;
    assert_int_equal(fx_apply(f, PROTO_MSG_RENAME_REQ, &w, &reply), 0);
    assert_int_equal(proto_dirs_rep_decode(reply.p, reply.len, &d), 0);
    proto_wbuf_free(&reply);
    assert_int_equal(d.ndirs, 2);
    now = attr_of(f, sub.ino);
    assert_memory_equal(&d.dir[0], &now, sizeof(now));
    now = attr_of(f, ROOT);
    assert_memory_equal(&d.dir[1], &now, sizeof(now));

    /* UNLINK and RMDIR: the directory after the change. */
    struct proto_lookup_req u = {
        .cred = cred_root(), .parent = ROOT, .name = str_of("g")};
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &u);
    proto_wbuf_init(&reply);
    f->now += 1000;
    assert_int_equal(fx_apply(f, PROTO_MSG_UNLINK_REQ, &w, &reply), 0);
    assert_int_equal(proto_dirs_rep_decode(reply.p, reply.len, &d), 0);
    proto_wbuf_free(&reply);
    assert_int_equal(d.ndirs, 1);
    now = attr_of(f, ROOT);
    assert_memory_equal(&d.dir[0], &now, sizeof(now));
    assert_int_equal(d.dir[0].mtime, f->now);

    u.name = str_of("t");
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &u);
    proto_wbuf_init(&reply);
    assert_int_equal(fx_apply(f, PROTO_MSG_RMDIR_REQ, &w, &reply), 0);
    assert_int_equal(proto_dirs_rep_decode(reply.p, reply.len, &d), 0);
    proto_wbuf_free(&reply);
    assert_int_equal(d.ndirs, 1);
    assert_int_equal(d.dir[0].nlink, 3);
}

static void test_meta_ns_mknod_creates_file(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w;
    struct proto_attr a;
    struct proto_mknod_req q = {.cred = U1,
                                .parent = ROOT,
                                .mode = S_IFREG | 0666,
                                .umask = 022,
                                .flags = PROTO_MKNOD_EXCL,
                                .name = str_of("f")};
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    assert_int_equal(fx_attr_op(f, PROTO_MSG_MKNOD_REQ, true, &w, &a), 0);
    assert_int_equal(a.mode, S_IFREG | 0644);
    assert_int_equal(a.uid, 1000);
    assert_int_equal(a.gid, 1000);
    assert_int_equal(a.nlink, 1);
    assert_int_equal(a.size, 0);
    assert_int_equal(a.goal, 3);
    assert_int_equal(a.mtime, f->now);
    assert_int_equal(a.ctime, f->now);
    struct proto_attr root = attr_of(f, ROOT);
    assert_int_equal(root.mtime, f->now);
    assert_int_equal(root.ctime, f->now);
    assert_int_equal(root.nlink, 2);
    assert_int_equal(ino_of(f, ROOT, "f"), a.ino);
}

static void test_meta_ns_mknod_exists(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, NULL), -EEXIST);
    /* Without EXCL, as open(O_CREAT): the existing file. */
    assert_int_equal(do_mknod(f, cred_root(), ROOT, "f", S_IFREG | 0600, 0, &b),
                     0);
    assert_int_equal(b.ino, a.ino);
    assert_int_equal(b.mode, S_IFREG | 0644);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, NULL), 0);
    assert_int_equal(
        do_mknod(f, cred_root(), ROOT, "d", S_IFREG | 0600, 0, NULL), -EISDIR);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "f", 0755, NULL), -EEXIST);
}

static void test_meta_ns_mknod_bad_names(void **state)
{
    struct fx *f = *state;
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = 0;
    assert_int_equal(do_create(f, cred_root(), ROOT, "", 0644, NULL), -EINVAL);
    assert_int_equal(do_create(f, cred_root(), ROOT, "a/b", 0644, NULL),
                     -EINVAL);
    assert_int_equal(do_create(f, cred_root(), ROOT, ".", 0644, NULL), -EEXIST);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "..", 0755, NULL), -EEXIST);
    assert_int_equal(do_create(f, cred_root(), ROOT, longname, 0644, NULL),
                     -ENAMETOOLONG);
    longname[255] = 0;
    assert_int_equal(do_create(f, cred_root(), ROOT, longname, 0644, NULL), 0);
}

static void test_meta_ns_mknod_bad_parent(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    assert_int_equal(do_create(f, cred_root(), 99, "x", 0644, NULL), -ENOENT);
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_create(f, cred_root(), a.ino, "x", 0644, NULL),
                     -ENOTDIR);
    assert_int_equal(do_mkdir(f, cred_root(), a.ino, "x", 0755, NULL),
                     -ENOTDIR);
}

static void test_meta_ns_mknod_special_files(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    assert_int_equal(
        do_mknod(f, U1, ROOT, "p", S_IFIFO | 0644, PROTO_MKNOD_EXCL, NULL),
        -EACCES); /* root dir is 0755 */
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(
        do_mknod(f, U1, ROOT, "p", S_IFIFO | 0644, PROTO_MKNOD_EXCL, &a), 0);
    assert_int_equal(a.mode, S_IFIFO | 0644);
    assert_int_equal(
        do_mknod(f, U1, ROOT, "s", S_IFSOCK | 0644, PROTO_MKNOD_EXCL, &a), 0);
    assert_int_equal(a.mode, S_IFSOCK | 0644);
    assert_int_equal(
        do_mknod(f, U1, ROOT, "c", S_IFCHR | 0644, PROTO_MKNOD_EXCL, NULL),
        -EPERM);
    struct proto_wbuf w;
    struct proto_mknod_req q = {.cred = cred_root(),
                                .parent = ROOT,
                                .mode = S_IFBLK | 0600,
                                .rdev = 0x0801,
                                .flags = PROTO_MKNOD_EXCL,
                                .name = str_of("b")};
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    assert_int_equal(fx_attr_op(f, PROTO_MSG_MKNOD_REQ, true, &w, &a), 0);
    assert_int_equal(a.rdev, 0x0801);
    assert_int_equal(do_mknod(f, cred_root(), ROOT, "d", S_IFDIR | 0755,
                              PROTO_MKNOD_EXCL, NULL),
                     -EPERM);
}

static void test_meta_ns_mkdir_counts_links(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, e;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    assert_int_equal(d.nlink, 2);
    assert_int_equal(d.mode, S_IFDIR | 0755);
    assert_int_equal(attr_of(f, ROOT).nlink, 3);
    assert_int_equal(do_mkdir(f, cred_root(), d.ino, "e", 0700, &e), 0);
    assert_int_equal(do_create(f, cred_root(), d.ino, "file", 0644, NULL), 0);
    assert_int_equal(attr_of(f, d.ino).nlink, 3);
    assert_int_equal(do_mkdir(f, cred_root(), d.ino, "e", 0700, NULL), -EEXIST);
    assert_int_equal(do_rmdir(f, cred_root(), d.ino, "e"), 0);
    assert_int_equal(attr_of(f, d.ino).nlink, 2);
}

static void test_meta_ns_symlink_and_readlink(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    assert_int_equal(
        do_symlink(f, cred_root(), ROOT, "l", "../some/target", &a), 0);
    assert_int_equal(a.mode, S_IFLNK | 0777);
    assert_int_equal(a.size, strlen("../some/target"));
    struct proto_wbuf w, reply;
    struct proto_ino_req q = {.ino = a.ino};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_ino_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_READLINK_REQ, &w, &reply), 0);
    struct proto_readlink_rep rep;
    assert_int_equal(proto_readlink_rep_decode(reply.p, reply.len, &rep), 0);
    assert_int_equal(rep.target.len, strlen("../some/target"));
    assert_memory_equal(rep.target.p, "../some/target", rep.target.len);
    proto_wbuf_free(&reply);
    q.ino = ROOT;
    proto_ino_req_encode(&w, &q);
    assert_int_equal(fx_query(f, PROTO_MSG_READLINK_REQ, &w, NULL), -EINVAL);
    assert_int_equal(do_symlink(f, cred_root(), ROOT, "l", "x", NULL), -EEXIST);
    assert_int_equal(do_symlink(f, cred_root(), ROOT, "m", "", NULL), -ENOENT);
}

static void test_meta_ns_link_counts(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b, d;
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_link(f, cred_root(), a.ino, d.ino, "g", &b), 0);
    assert_int_equal(b.ino, a.ino);
    assert_int_equal(b.nlink, 2);
    assert_int_equal(b.ctime, f->now);
    assert_true(b.version > a.version);
    assert_int_equal(attr_of(f, d.ino).mtime, f->now);
    assert_int_equal(ino_of(f, d.ino, "g"), a.ino);
    assert_int_equal(do_link(f, cred_root(), a.ino, d.ino, "g", NULL), -EEXIST);
    assert_int_equal(do_link(f, cred_root(), d.ino, ROOT, "d2", NULL), -EPERM);
    assert_int_equal(do_link(f, cred_root(), 999, ROOT, "x", NULL), -ENOENT);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "f"), 0);
    assert_int_equal(attr_of(f, a.ino).nlink, 1);
    assert_int_equal(do_unlink(f, cred_root(), d.ino, "g"), 0);
    assert_int_equal(do_getattr(f, a.ino, NULL), -ENOENT);
}

static void test_meta_ns_unlink_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr d;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "d"), -EISDIR);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "nope"), -ENOENT);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "."), -EISDIR);
    assert_int_equal(do_create(f, cred_root(), d.ino, "f", 0644, NULL), 0);
    assert_int_equal(do_unlink(f, U1, d.ino, "f"), -EACCES);
    int64_t before = attr_of(f, d.ino).mtime;
    assert_int_equal(do_unlink(f, cred_root(), d.ino, "f"), 0);
    assert_true(attr_of(f, d.ino).mtime > before);
    assert_int_equal(do_lookup(f, cred_root(), d.ino, "f", NULL), -ENOENT);
}

static void test_meta_ns_rmdir_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr d;
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_create(f, cred_root(), d.ino, "f", 0644, NULL), 0);
    assert_int_equal(do_rmdir(f, cred_root(), ROOT, "d"), -ENOTEMPTY);
    assert_int_equal(do_rmdir(f, cred_root(), d.ino, "f"), -ENOTDIR);
    assert_int_equal(do_rmdir(f, cred_root(), d.ino, "."), -EINVAL);
    assert_int_equal(do_rmdir(f, cred_root(), ROOT, "."), -EINVAL);
    assert_int_equal(do_rmdir(f, cred_root(), d.ino, ".."), -ENOTEMPTY);
    assert_int_equal(do_rmdir(f, cred_root(), ROOT, "nope"), -ENOENT);
    assert_int_equal(do_unlink(f, cred_root(), d.ino, "f"), 0);
    assert_int_equal(attr_of(f, ROOT).nlink, 3);
    assert_int_equal(do_rmdir(f, cred_root(), ROOT, "d"), 0);
    assert_int_equal(attr_of(f, ROOT).nlink, 2);
    assert_int_equal(do_getattr(f, d.ino, NULL), -ENOENT);
}

static void test_meta_ns_inode_numbers_not_reused(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_create(f, cred_root(), ROOT, "a", 0644, &a), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "b", 0644, &b), 0);
    assert_int_equal(do_unlink(f, cred_root(), ROOT, "b"), 0);
    assert_int_equal(do_create(f, cred_root(), ROOT, "c", 0644, &a), 0);
    assert_true(a.ino > b.ino);
}

static void test_meta_ns_setattr_chmod(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_chmod(f, U1, a.ino, 0600, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 0600);
    assert_int_equal(b.ctime, f->now);
    assert_int_equal(b.version, a.version + 1);
    assert_int_equal(do_chmod(f, U2, a.ino, 0666, NULL), -EPERM);
    assert_int_equal(do_chmod(f, cred_root(), a.ino, 04755, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 04755);
    /* The owner outside the file's group loses S_ISGID. */
    struct proto_setattr_req q = {.cred = cred_root(),
                                  .ino = a.ino,
                                  .valid = PROTO_SETATTR_GID,
                                  .gid = 3000};
    assert_int_equal(do_setattr(f, &q, NULL), 0);
    assert_int_equal(do_chmod(f, U1, a.ino, 02755, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 0755);
}

static void test_meta_ns_setattr_chown(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    struct proto_cred member = U1;
    member.ngroups = 1;
    member.groups[0] = 3000;
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0755, &a), 0);
    struct proto_setattr_req q = {
        .cred = U1, .ino = a.ino, .valid = PROTO_SETATTR_UID, .uid = 2000};
    assert_int_equal(do_setattr(f, &q, NULL), -EPERM);
    q.cred = U2;
    q.valid = PROTO_SETATTR_GID;
    q.gid = 2000;
    assert_int_equal(do_setattr(f, &q, NULL), -EPERM);
    q.cred = U1;
    q.gid = 3000; /* U1 is not in 3000 */
    assert_int_equal(do_setattr(f, &q, NULL), -EPERM);
    /* setuid and setgid go when an unprivileged owner changes the group. */
    assert_int_equal(do_chmod(f, U1, a.ino, 06755, NULL), 0);
    q.cred = member;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.gid, 3000);
    assert_int_equal(b.mode, S_IFREG | 0755);
    assert_int_equal(b.ctime, f->now);
    /* Root may give the file away; they go then too, as on Linux. */
    assert_int_equal(do_chmod(f, cred_root(), a.ino, 06755, NULL), 0);
    q.cred = cred_root();
    q.valid = PROTO_SETATTR_UID | PROTO_SETATTR_GID;
    q.uid = 2000;
    q.gid = 2000;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.uid, 2000);
    assert_int_equal(b.gid, 2000);
    assert_int_equal(b.mode, S_IFREG | 0755);
    /* Without group execute, S_ISGID marks locking and stays. */
    assert_int_equal(do_chmod(f, cred_root(), a.ino, 06745, NULL), 0);
    q.uid = 1000;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 02745);
}

static void test_meta_ns_setattr_kill_priv(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0777, &a), 0);
    assert_int_equal(do_chmod(f, U1, a.ino, 06777, NULL), 0);
    /* Root's write keeps them (CAP_FSETID). */
    struct proto_setattr_req q = {
        .cred = cred_root(), .ino = a.ino, .valid = PROTO_SETATTR_KILL_PRIV};
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 06777);
    assert_int_equal(b.version, attr_of(f, a.ino).version); /* no change */
    /* Anyone else's write drops them, owner or not, without a check. */
    q.cred = U2;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 0777);
    assert_int_equal(b.ctime, f->now);
    /* So does a truncate. */
    assert_int_equal(do_chmod(f, U1, a.ino, 04777, NULL), 0);
    q.valid = PROTO_SETATTR_SIZE;
    q.size = 10;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.mode, S_IFREG | 0777);
    assert_int_equal(b.size, 10);
}

/* ftruncate(2) on a descriptor open for writing checks no mode bits: a
 * file created with mode 0 and O_RDWR can be truncated through it. */
static void test_meta_ns_setattr_file_open_for_write(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    uint64_t session = fx_session_open(f);

    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    struct proto_setattr_req q = {.cred = U1,
                                  .valid =
                                      PROTO_SETATTR_SIZE | PROTO_SETATTR_FILE,
                                  .size = 5};
    /* Without holding it open, FILE is not believed. */
    assert_int_equal(do_create(f, U1, ROOT, "nohold", 0, &a), 0);
    q.ino = a.ino;
    assert_int_equal(do_setattr(f, &q, NULL), -EACCES);
    f->session = session;
    assert_int_equal(do_setattr(f, &q, NULL), -EACCES);
    assert_int_equal(do_mknod(f, U1, ROOT, "f", S_IFREG,
                              PROTO_MKNOD_EXCL | PROTO_MKNOD_HOLD, &a),
                     0);
    q.ino = a.ino;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.size, 5);
    /* truncate(2) by name still checks. */
    q.valid = PROTO_SETATTR_SIZE;
    assert_int_equal(do_setattr(f, &q, NULL), -EACCES);
}

static void test_meta_ns_setattr_truncate(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b, d;
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, &a), 0);
    struct proto_setattr_req q = {.cred = cred_root(),
                                  .ino = a.ino,
                                  .valid = PROTO_SETATTR_SIZE,
                                  .size = 10000};
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.size, 10000);
    assert_int_equal(b.blocks, 0); /* all hole: nothing allocated */
    assert_int_equal(b.mtime, f->now);
    assert_int_equal(b.ctime, f->now);
    assert_true(b.version > a.version);
    q.cred = U1; /* 0644, owned by root */
    assert_int_equal(do_setattr(f, &q, NULL), -EACCES);
    assert_int_equal(do_mkdir(f, cred_root(), ROOT, "d", 0755, &d), 0);
    q.cred = cred_root();
    q.ino = d.ino;
    assert_int_equal(do_setattr(f, &q, NULL), -EISDIR);
    assert_int_equal(do_mknod(f, cred_root(), ROOT, "p", S_IFIFO | 0644,
                              PROTO_MKNOD_EXCL, &a),
                     0);
    q.ino = a.ino;
    assert_int_equal(do_setattr(f, &q, NULL), -EINVAL);
}

static void test_meta_ns_setattr_times(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, b;
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0666, &a), 0);
    struct proto_setattr_req q = {
        .cred = U1,
        .ino = a.ino,
        .valid = PROTO_SETATTR_ATIME | PROTO_SETATTR_MTIME,
        .atime = 5,
        .mtime = 7,
    };
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.atime, 5);
    assert_int_equal(b.mtime, 7);
    assert_int_equal(b.ctime, f->now);
    q.cred = U2; /* not the owner: explicit times refused */
    assert_int_equal(do_setattr(f, &q, NULL), -EPERM);
    /* ... but "now" only needs write permission (the file is 0666). */
    q.valid = PROTO_SETATTR_ATIME | PROTO_SETATTR_ATIME_NOW |
              PROTO_SETATTR_MTIME | PROTO_SETATTR_MTIME_NOW;
    assert_int_equal(do_setattr(f, &q, &b), 0);
    assert_int_equal(b.atime, f->now);
    assert_int_equal(b.mtime, f->now);
    assert_int_equal(do_chmod(f, U1, a.ino, 0644, NULL), 0);
    assert_int_equal(do_setattr(f, &q, NULL), -EACCES);
}

static void test_meta_ns_xattr_flags(void **state)
{
    struct fx *f = *state;
    struct proto_attr a;
    struct proto_wbuf reply;
    assert_int_equal(do_create(f, cred_root(), ROOT, "f", 0644, &a), 0);
    assert_int_equal(
        do_setxattr(f, cred_root(), a.ino, "user.k", "v1", PROTO_XATTR_REPLACE),
        -ENODATA);
    assert_int_equal(
        do_setxattr(f, cred_root(), a.ino, "user.k", "v1", PROTO_XATTR_CREATE),
        0);
    assert_true(attr_of(f, a.ino).version > a.version);
    assert_int_equal(
        do_setxattr(f, cred_root(), a.ino, "user.k", "v2", PROTO_XATTR_CREATE),
        -EEXIST);
    assert_int_equal(do_setxattr(f, cred_root(), a.ino, "user.k", "value2",
                                 PROTO_XATTR_REPLACE),
                     0);
    assert_int_equal(do_setxattr(f, cred_root(), a.ino, "user.e", "", 0), 0);
    proto_wbuf_init(&reply);
    assert_int_equal(do_xattr_name(f, PROTO_MSG_GETXATTR_REQ, cred_root(),
                                   a.ino, "user.k", &reply),
                     0);
    struct proto_bytes_rep rep;
    assert_int_equal(proto_bytes_rep_decode(reply.p, reply.len, &rep), 0);
    assert_int_equal(rep.data.len, 6);
    assert_memory_equal(rep.data.p, "value2", 6);
    proto_wbuf_reset(&reply);
    struct proto_wbuf w;
    struct proto_ino_req iq = {.ino = a.ino};
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &iq);
    assert_int_equal(fx_query(f, PROTO_MSG_LISTXATTR_REQ, &w, &reply), 0);
    assert_int_equal(proto_bytes_rep_decode(reply.p, reply.len, &rep), 0);
    assert_int_equal(rep.data.len, sizeof("user.e\0user.k"));
    assert_memory_equal(rep.data.p, "user.e\0user.k", rep.data.len);
    proto_wbuf_free(&reply);
    assert_int_equal(do_xattr_name(f, PROTO_MSG_REMOVEXATTR_REQ, cred_root(),
                                   a.ino, "user.k", NULL),
                     0);
    assert_int_equal(do_xattr_name(f, PROTO_MSG_REMOVEXATTR_REQ, cred_root(),
                                   a.ino, "user.k", NULL),
                     -ENODATA);
    assert_int_equal(do_xattr_name(f, PROTO_MSG_GETXATTR_REQ, cred_root(),
                                   a.ino, "user.k", NULL),
                     -ENODATA);
}

static void test_meta_ns_xattr_namespaces(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, p;
    assert_int_equal(do_chmod(f, cred_root(), ROOT, 0777, NULL), 0);
    assert_int_equal(do_create(f, U1, ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_setxattr(f, U1, a.ino, "bogus.k", "v", 0), -EOPNOTSUPP);
    assert_int_equal(do_setxattr(f, U1, a.ino, "k", "v", 0), -EOPNOTSUPP);
    assert_int_equal(do_setxattr(f, U1, a.ino, "", "v", 0), -ERANGE);
    assert_int_equal(do_setxattr(f, U1, a.ino, "trusted.k", "v", 0), -EPERM);
    assert_int_equal(do_setxattr(f, cred_root(), a.ino, "trusted.k", "v", 0),
                     0);
    assert_int_equal(
        do_xattr_name(f, PROTO_MSG_GETXATTR_REQ, U1, a.ino, "trusted.k", NULL),
        -ENODATA);
    assert_int_equal(do_setxattr(f, U1, a.ino, "user.k", "v", 0), 0);
    assert_int_equal(do_setxattr(f, U2, a.ino, "user.k", "w", 0), -EACCES);
    assert_int_equal(
        do_xattr_name(f, PROTO_MSG_GETXATTR_REQ, U2, a.ino, "user.k", NULL), 0);
    assert_int_equal(do_chmod(f, U1, a.ino, 0600, NULL), 0);
    assert_int_equal(
        do_xattr_name(f, PROTO_MSG_GETXATTR_REQ, U2, a.ino, "user.k", NULL),
        -EACCES);
    assert_int_equal(
        do_mknod(f, U1, ROOT, "p", S_IFIFO | 0666, PROTO_MKNOD_EXCL, &p), 0);
    assert_int_equal(do_setxattr(f, U1, p.ino, "user.k", "v", 0), -EPERM);
}

int test_meta_ns(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_db_open_creates_root),
        T(test_meta_db_open_reopens_file),
        T(test_meta_ns_replies_carry_directories),
        T(test_meta_ns_mknod_creates_file),
        T(test_meta_ns_mknod_exists),
        T(test_meta_ns_mknod_bad_names),
        T(test_meta_ns_mknod_bad_parent),
        T(test_meta_ns_mknod_special_files),
        T(test_meta_ns_mkdir_counts_links),
        T(test_meta_ns_symlink_and_readlink),
        T(test_meta_ns_link_counts),
        T(test_meta_ns_unlink_errors),
        T(test_meta_ns_rmdir_errors),
        T(test_meta_ns_inode_numbers_not_reused),
        T(test_meta_ns_setattr_chmod),
        T(test_meta_ns_setattr_chown),
        T(test_meta_ns_setattr_kill_priv),
        T(test_meta_ns_setattr_file_open_for_write),
        T(test_meta_ns_setattr_truncate),
        T(test_meta_ns_setattr_times),
        T(test_meta_ns_xattr_flags),
        T(test_meta_ns_xattr_namespaces),
#undef T
    };
    return cmocka_run_group_tests_name("meta_ns", tests, NULL, NULL);
}
