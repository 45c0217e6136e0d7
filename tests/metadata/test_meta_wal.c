/* test_meta_wal.c: checkpoints of the write-ahead log away from the
 * applying connection (meta_wal.c): with a watcher SQLite no longer
 * checkpoints in the commits, a checkpoint connection copies the log back,
 * and the next commit starts the log afresh. */
#include "test_meta_util.h"

static int fx_setup_file(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/meta-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/meta.db", f->dir);
    assert_int_equal(meta_db_open(path, &f->db), 0);
    f->now = T0;
    *state = f;
    return 0;
}

/* What the watcher was told. */
struct pages_seen {
    int calls;
    int last, max;
};

static void on_pages(void *arg, int pages)
{
    struct pages_seen *p = arg;
    p->calls++;
    p->last = pages;
    if (pages > p->max)
        p->max = pages;
}

/* MKDIR @prefix<first> .. @prefix<first + n - 1> under the root. */
static void mkdirs(struct fx *f, const char *prefix, int first, int n)
{
    char name[32];
    for (int i = first; i < first + n; i++) {
        snprintf(name, sizeof(name), "%s%d", prefix, i);
        assert_int_equal(do_mkdir(f, cred_root(), ROOT, name, 0755, NULL), 0);
    }
}

static void test_meta_wal_checkpoint_off_the_commits(void **state)
{
    struct fx *f = *state;
    struct pages_seen seen = {0};
    struct meta_wal_ckpt *k;
    char path[128];
    int left = -2;

    meta_db_wal_watch(f->db, on_pages, &seen);
    /* Past SQLite's own checkpoint size: the log only grows. */
    for (int i = 0; seen.last < META_WAL_PAGES + 100; i += 50) {
        assert_true(i < 20000);
        mkdirs(f, "a", i, 50);
    }
    assert_int_equal(seen.last, seen.max);
    snprintf(path, sizeof(path), "%s/meta.db", f->dir);
    assert_int_equal(meta_wal_ckpt_open(path, &k), 0);
    assert_int_equal(meta_wal_ckpt_run(k, &left), 0);
    assert_int_equal(left, 0);
    /* Everything copied: the next commit writes the log from its start. */
    mkdirs(f, "b", 0, 1);
    assert_true(seen.last < 50);
    meta_wal_ckpt_close(k);
    /* Unwatched: SQLite's own checkpoints, no more calls. */
    int calls = seen.calls;
    meta_db_wal_watch(f->db, NULL, NULL);
    mkdirs(f, "c", 0, 5);
    assert_int_equal(seen.calls, calls);
    /* What was copied is there after a reopen. */
    meta_db_close(f->db);
    assert_int_equal(meta_db_open(path, &f->db), 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a0", NULL), 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "b0", NULL), 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "c4", NULL), 0);
}

static void test_meta_wal_ckpt_open_missing_fails(void **state)
{
    struct fx *f = *state;
    struct meta_wal_ckpt *k = NULL;
    char path[128];
    snprintf(path, sizeof(path), "%s/none/meta.db", f->dir);
    assert_true(meta_wal_ckpt_open(path, &k) < 0);
    assert_null(k);
    meta_wal_ckpt_close(NULL);
}

int test_meta_wal(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_file, fx_teardown)
        T(test_meta_wal_checkpoint_off_the_commits),
        T(test_meta_wal_ckpt_open_missing_fails),
#undef T
    };
    return cmocka_run_group_tests_name("meta_wal", tests, NULL, NULL);
}
