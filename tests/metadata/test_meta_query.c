/* test_meta_query.c: read-only requests: LOOKUP, READDIR (cursors and
 * PLUS), STATFS. */
#include "test_meta_util.h"

static struct proto_cred U1 = {.uid = 1000, .gid = 1000};

#define R cred_root()

static void test_meta_query_lookup_dots(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, a;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_lookup(f, R, d.ino, ".", &a), 0);
    assert_int_equal(a.ino, d.ino);
    assert_int_equal(do_lookup(f, R, d.ino, "..", &a), 0);
    assert_int_equal(a.ino, ROOT);
    assert_int_equal(do_lookup(f, R, ROOT, "..", &a), 0);
    assert_int_equal(a.ino, ROOT);
    assert_int_equal(do_lookup(f, R, ROOT, "", NULL), -EINVAL);
    assert_int_equal(do_lookup(f, R, ROOT, "nope", NULL), -ENOENT);
    assert_int_equal(do_lookup(f, R, 4242, "x", NULL), -ENOENT);
    assert_int_equal(do_create(f, R, d.ino, "f", 0644, &a), 0);
    assert_int_equal(do_lookup(f, R, a.ino, "x", NULL), -ENOTDIR);
    assert_int_equal(do_getattr(f, 4242, NULL), -ENOENT);
}

static void test_meta_query_readdir_lists_all(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, a;
    struct rd_ent ents[16];
    bool eof;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_create(f, R, d.ino, "a", 0644, &a), 0);
    assert_int_equal(do_mkdir(f, R, d.ino, "b", 0700, NULL), 0);
    int n = do_readdir(f, R, d.ino, 0, 16, PROTO_READDIR_PLUS, ents, &eof);
    assert_int_equal(n, 4);
    assert_true(eof);
    assert_string_equal(ents[0].name, ".");
    assert_int_equal(ents[0].attr.ino, d.ino);
    assert_string_equal(ents[1].name, "..");
    assert_int_equal(ents[1].attr.ino, ROOT);
    assert_string_equal(ents[2].name, "a");
    assert_int_equal(ents[2].attr.ino, a.ino);
    assert_int_equal(ents[2].attr.mode, S_IFREG | 0644);
    assert_int_equal(ents[2].attr.uid, 0);
    assert_string_equal(ents[3].name, "b");
    assert_int_equal(ents[3].attr.mode, S_IFDIR | 0700);
    assert_int_equal(ents[3].attr.nlink, 2);
    /* Paging in ones: the same entries, eof only at the end. */
    uint64_t cookie = 0;
    const char *want[] = {".", "..", "a", "b"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(do_readdir(f, R, d.ino, cookie, 1, 0, ents, &eof), 1);
        assert_string_equal(ents[0].name, want[i]);
        assert_true(ents[0].cookie > cookie);
        cookie = ents[0].cookie;
        assert_int_equal(eof, i == 3);
    }
    assert_int_equal(do_readdir(f, R, d.ino, cookie, 1, 0, ents, &eof), 0);
    assert_true(eof);
}

static void test_meta_query_readdir_errors(void **state)
{
    struct fx *f = *state;
    struct proto_attr d, a;
    struct rd_ent ents[4];
    bool eof;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0711, &d), 0);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, &a), 0);
    assert_int_equal(do_readdir(f, U1, d.ino, 0, 4, 0, ents, &eof), -EACCES);
    assert_int_equal(do_readdir(f, R, a.ino, 0, 4, 0, ents, &eof), -ENOTDIR);
    assert_int_equal(do_readdir(f, R, 999, 0, 4, 0, ents, &eof), -ENOENT);
    assert_int_equal(do_readdir(f, R, d.ino, 0, 4, 0, ents, &eof), 2);
    assert_true(eof);
}

static int count_name(struct rd_ent *seen, int n, const char *name)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += strcmp(seen[i].name, name) == 0;
    return c;
}

static void test_meta_query_readdir_cursor_stable(void **state)
{
    struct fx *f = *state;
    struct proto_attr d;
    struct rd_ent page[8], seen[128];
    char name[16];
    int nseen = 0, n;
    bool eof = false;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "f%02d", i);
        assert_int_equal(do_create(f, R, d.ino, name, 0644, NULL), 0);
    }
    uint64_t cookie = 0;
    int round = 0;
    while (!eof) {
        n = do_readdir(f, R, d.ino, cookie, 5, 0, page, &eof);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++)
            seen[nseen++] = page[i];
        if (n)
            cookie = page[n - 1].cookie;
        /* Between pages: remove one seen and one unseen entry, add one. */
        snprintf(name, sizeof(name), "f%02d", round * 2 + 1);
        if (round < 3) {
            assert_int_equal(do_unlink(f, R, d.ino, name), 0);
            snprintf(name, sizeof(name), "f%02d", 19 - round);
            assert_int_equal(do_unlink(f, R, d.ino, name), 0);
            snprintf(name, sizeof(name), "new%d", round);
            assert_int_equal(do_create(f, R, d.ino, name, 0644, NULL), 0);
        }
        round++;
        assert_true(round < 20);
    }
    assert_int_equal(count_name(seen, nseen, "."), 1);
    assert_int_equal(count_name(seen, nseen, ".."), 1);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "f%02d", i);
        int removed_unseen = i >= 17;
        assert_int_equal(count_name(seen, nseen, name), removed_unseen ? 0 : 1);
    }
    /* Entries added during the listing come after every old one. */
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "new%d", i);
        assert_int_equal(count_name(seen, nseen, name), 1);
    }
    for (int i = 1; i < nseen; i++)
        assert_true(seen[i].cookie > seen[i - 1].cookie);
}

static void test_meta_query_statfs(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf w, reply;
    struct proto_empty e = {0};
    struct proto_statfs_rep rep;
    assert_int_equal(do_create(f, R, ROOT, "a", 0644, NULL), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "b", 0755, NULL), 0);
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_empty_encode(&w, &e);
    assert_int_equal(fx_query(f, PROTO_MSG_STATFS_REQ, &w, &reply), 0);
    assert_int_equal(proto_statfs_rep_decode(reply.p, reply.len, &rep), 0);
    assert_int_equal(rep.files, 3);
    assert_true(rep.ffree > 1000000);
    assert_int_equal(rep.bsize, 4096);
    assert_int_equal(rep.namemax, 255);
    assert_true(rep.blocks > 0 && rep.bfree <= rep.blocks);
    proto_wbuf_free(&reply);
    struct meta_stats st;
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.inodes, 3);
    assert_int_equal(st.dirs, 2);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.ops, 2);
    assert_true(st.db_bytes > 0);
}

static void test_meta_query_unknown_opcode(void **state)
{
    struct fx *f = *state;
    struct proto_wbuf reply;
    proto_wbuf_init(&reply);
    assert_int_equal(meta_query(f->db, PROTO_MSG_MKDIR_REQ, NULL, 0, &reply),
                     -ENOSYS);
    uint8_t junk[3] = {1, 2, 3};
    assert_int_equal(
        meta_query(f->db, PROTO_MSG_GETATTR_REQ, junk, sizeof(junk), &reply),
        -EPROTO);
    assert_int_equal(reply.len, 0);
    proto_wbuf_free(&reply);
}

int test_meta_query(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_query_lookup_dots),
        T(test_meta_query_readdir_lists_all),
        T(test_meta_query_readdir_errors),
        T(test_meta_query_readdir_cursor_stable),
        T(test_meta_query_statfs),
        T(test_meta_query_unknown_opcode),
#undef T
    };
    return cmocka_run_group_tests_name("meta_query", tests, NULL, NULL);
}
