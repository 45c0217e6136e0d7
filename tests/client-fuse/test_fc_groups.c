/* Tests for client-fuse/fc_groups.c: when a caller's supplementary groups
 * come from the table and when they are read again. */
#define FUSE_USE_VERSION 35

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fc_internal.h"

/* A fake /proc: the groups it holds, how often it was read, and an error
 * to give instead. */
struct fake {
    int n;
    uint32_t groups[PROTO_MAX_GROUPS + 8];
    int err;
    unsigned reads;
};

static int fake_read(void *arg, uint32_t *out)
{
    struct fake *f = arg;

    f->reads++;
    if (f->err)
        return f->err;
    for (int i = 0; i < f->n && i < PROTO_MAX_GROUPS; i++)
        out[i] = f->groups[i];
    return f->n;
}

static int get(struct fc_groups *g, uint32_t pid, uint32_t uid, uint32_t gid,
               uint64_t now, struct fake *f, uint32_t *out)
{
    return fc_groups_get(g, pid, uid, gid, now, fake_read, f, out);
}

/* Within the cache time the same thread, uid and gid are answered from
 * the table; at the end of it they are read again. */
static void test_fc_groups_kept_for_ttl(void **state)
{
    struct fc_groups *g;
    struct fake f = {.n = 2, .groups = {10, 20}};
    uint32_t out[PROTO_MAX_GROUPS];
    uint64_t reads, hits;

    (void)state;
    assert_int_equal(fc_groups_new(1000, &g), 0);
    assert_int_equal(get(g, 77, 1000, 1000, 5000, &f, out), 2);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[1], 20);
    assert_int_equal(f.reads, 1);

    f.groups[1] = 30; /* the thread joined another group */
    memset(out, 0, sizeof(out));
    assert_int_equal(get(g, 77, 1000, 1000, 5999, &f, out), 2);
    assert_int_equal(out[1], 20); /* the kept list */
    assert_int_equal(f.reads, 1);

    assert_int_equal(get(g, 77, 1000, 1000, 6000, &f, out), 2);
    assert_int_equal(out[1], 30);
    assert_int_equal(f.reads, 2);
    fc_groups_stats(g, &reads, &hits);
    assert_int_equal(reads, 2);
    assert_int_equal(hits, 1);
    fc_groups_free(g);
}

/* Another uid or gid for the same thread id, or another thread, is read
 * anew; a clock that went back does not make an entry fresh. */
static void test_fc_groups_key_is_thread_uid_gid(void **state)
{
    struct fc_groups *g;
    struct fake f = {.n = 1, .groups = {5}};
    uint32_t out[PROTO_MAX_GROUPS];

    (void)state;
    assert_int_equal(fc_groups_new(1000, &g), 0);
    assert_int_equal(get(g, 77, 1000, 1000, 5000, &f, out), 1);
    assert_int_equal(get(g, 77, 1001, 1000, 5001, &f, out), 1);
    assert_int_equal(f.reads, 2);
    assert_int_equal(get(g, 77, 1001, 1001, 5002, &f, out), 1);
    assert_int_equal(f.reads, 3);
    assert_int_equal(get(g, 78, 1001, 1001, 5003, &f, out), 1);
    assert_int_equal(f.reads, 4);
    assert_int_equal(get(g, 78, 1001, 1001, 4000, &f, out), 1);
    assert_int_equal(f.reads, 5);
    /* Two thread ids in one slot: each replaces the other. */
    assert_int_equal(get(g, 78 + 256, 1001, 1001, 5004, &f, out), 1);
    assert_int_equal(get(g, 78, 1001, 1001, 5005, &f, out), 1);
    assert_int_equal(f.reads, 7);
    fc_groups_free(g);
}

/* A cache time of 0 reads every time; an error is returned and not
 * kept; more groups than a credential holds are cut to the first ones. */
static void test_fc_groups_off_errors_and_many(void **state)
{
    struct fc_groups *g;
    struct fake f = {.n = 1, .groups = {5}};
    uint32_t out[PROTO_MAX_GROUPS];

    (void)state;
    assert_int_equal(fc_groups_new(0, &g), 0);
    assert_int_equal(get(g, 77, 0, 0, 5000, &f, out), 1);
    assert_int_equal(get(g, 77, 0, 0, 5000, &f, out), 1);
    assert_int_equal(f.reads, 2);
    fc_groups_free(g);

    assert_int_equal(fc_groups_new(1000, &g), 0);
    f.err = -ESRCH; /* the thread is gone */
    assert_int_equal(get(g, 77, 0, 0, 5000, &f, out), -ESRCH);
    f.err = 0;
    assert_int_equal(get(g, 77, 0, 0, 5001, &f, out), 1);
    assert_int_equal(f.reads, 4);

    f.n = PROTO_MAX_GROUPS + 8;
    for (int i = 0; i < f.n; i++)
        f.groups[i] = 100 + (uint32_t)i;
    assert_int_equal(get(g, 90, 0, 0, 5000, &f, out), PROTO_MAX_GROUPS);
    memset(out, 0, sizeof(out));
    assert_int_equal(get(g, 90, 0, 0, 5001, &f, out), PROTO_MAX_GROUPS);
    assert_int_equal(out[PROTO_MAX_GROUPS - 1], 100 + PROTO_MAX_GROUPS - 1);
    assert_int_equal(f.reads, 5);
    fc_groups_free(g);
    fc_groups_free(NULL);
}

int test_fc_groups(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_groups_kept_for_ttl),
        cmocka_unit_test(test_fc_groups_key_is_thread_uid_gid),
        cmocka_unit_test(test_fc_groups_off_errors_and_many),
    };
    return cmocka_run_group_tests_name("fc_groups", tests, NULL, NULL);
}
