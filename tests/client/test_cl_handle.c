/* Tests for client/cl_handle.c: the open inode table (references sharing
 * an inode, lookups, release), write leases (reuse, expiry, renewal keeping
 * the dirty flag), dirty chunk collection for sync, the known size, and
 * the count of handles metad holds a file for with its linger. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>

#include "cl_internal.h"

static struct cl_chunk lease(uint64_t index, uint64_t id, uint64_t version)
{
    struct cl_chunk c;
    memset(&c, 0, sizeof(c));
    c.index = index;
    c.chunk_id = id;
    c.version = version;
    c.nreplicas = 1;
    strcpy(c.addr[0], "127.0.0.1:9000");
    return c;
}

static int setup(void **state)
{
    *state = cl_handles_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    cl_handles_free(*state);
    return 0;
}

static void test_cl_handles_open_shares_inode(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *a, *b, *c;
    assert_int_equal(cl_handles_open(t, 10, 100, &a), 0);
    assert_int_equal(cl_handles_open(t, 10, 50, &b), 0);
    assert_int_equal(cl_handles_open(t, 11, 7, &c), 0);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_int_equal(cl_inode_size(a), 100); /* the larger size */
    assert_int_equal(cl_inode_size(c), 7);
    cl_handles_put(t, a);
    cl_handles_put(t, b);
    cl_handles_put(t, c);
}

static void test_cl_handles_find_after_release(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *a, *b;
    assert_null(cl_handles_find(t, 10));
    cl_handles_open(t, 10, 0, &a);
    cl_handles_open(t, 10, 0, &b);
    struct cl_inode *n = cl_handles_find(t, 10);
    assert_ptr_equal(n, a);
    cl_handles_put(t, n);
    cl_handles_put(t, a);
    n = cl_handles_find(t, 10); /* b still open */
    assert_non_null(n);
    cl_handles_put(t, n);
    cl_handles_put(t, b);
    assert_null(cl_handles_find(t, 10));
}

static void test_cl_handles_find_keeps_inode_alive(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *a;
    cl_handles_open(t, 12, 0, &a);
    struct cl_inode *n = cl_handles_find(t, 12);
    cl_handles_put(t, a);
    /* The reference from find keeps the inode until put. */
    cl_inode_set_size(n, 99);
    assert_int_equal(cl_inode_size(n), 99);
    cl_handles_put(t, n);
    assert_null(cl_handles_find(t, 12));
}

static void test_cl_handles_open_many_inodes(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h[600];
    for (int i = 0; i < 600; i++)
        assert_int_equal(cl_handles_open(t, (uint64_t)i + 1, i, &h[i]), 0);
    for (int i = 0; i < 600; i++) {
        struct cl_inode *n = cl_handles_find(t, (uint64_t)i + 1);
        assert_ptr_equal(n, h[i]);
        assert_int_equal(cl_inode_size(n), i);
        cl_handles_put(t, n);
    }
    for (int i = 0; i < 600; i++)
        cl_handles_put(t, h[i]);
}

static void test_cl_inode_lease_get_valid_until_renew(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    struct cl_chunk in = lease(3, 77, 2), out;
    cl_handles_open(t, 10, 0, &h);
    assert_int_equal(cl_inode_lease_get(h, 3, 0, &out), -ENOENT);
    assert_int_equal(cl_inode_lease_put(h, &in, 1000), 0);
    assert_int_equal(cl_inode_lease_get(h, 3, 1000, &out), 0);
    assert_int_equal(out.chunk_id, 77);
    assert_int_equal(out.version, 2);
    assert_int_equal(
        cl_inode_lease_get(h, 3, 1000 + CL_LEASE_RENEW_MS - 1, &out), 0);
    assert_int_equal(cl_inode_lease_get(h, 3, 1000 + CL_LEASE_RENEW_MS, &out),
                     -ENOENT);
    assert_int_equal(cl_inode_lease_get(h, 4, 1000, &out), -ENOENT);
    cl_handles_put(t, h);
}

static void test_cl_inode_take_dirty_collects_once(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    uint64_t out[8];
    cl_handles_open(t, 10, 0, &h);
    for (uint64_t i = 0; i < 5; i++) {
        struct cl_chunk c = lease(i, 100 + i, 1);
        cl_inode_lease_put(h, &c, 0);
    }
    cl_inode_lease_dirty(h, 1);
    cl_inode_lease_dirty(h, 3);
    cl_inode_lease_dirty(h, 42); /* no lease: ignored */
    assert_int_equal(cl_inode_ndirty(h), 2);
    size_t k = cl_inode_take_dirty(h, out, 8);
    assert_int_equal(k, 2);
    assert_true((out[0] == 1 && out[1] == 3) || (out[0] == 3 && out[1] == 1));
    assert_int_equal(cl_inode_take_dirty(h, out, 8), 0);
    cl_handles_put(t, h);
}

static void test_cl_inode_take_dirty_respects_max(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    uint64_t out[2];
    cl_handles_open(t, 10, 0, &h);
    for (uint64_t i = 0; i < 5; i++) {
        struct cl_chunk c = lease(i, 100 + i, 1);
        cl_inode_lease_put(h, &c, 0);
        cl_inode_lease_dirty(h, i);
    }
    assert_int_equal(cl_inode_take_dirty(h, out, 2), 2);
    assert_int_equal(cl_inode_take_dirty(h, out, 2), 2);
    assert_int_equal(cl_inode_take_dirty(h, out, 2), 1);
    assert_int_equal(cl_inode_take_dirty(h, out, 2), 0);
    cl_handles_put(t, h);
}

static void test_cl_inode_lease_put_renewal_keeps_dirty(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    uint64_t out[2];
    struct cl_chunk v1 = lease(2, 50, 1), v2 = lease(2, 50, 2);
    struct cl_chunk other = lease(2, 51, 1);
    cl_handles_open(t, 10, 0, &h);
    cl_inode_lease_put(h, &v1, 0);
    cl_inode_lease_dirty(h, 2);
    cl_inode_lease_put(h, &v2, 10);
    assert_int_equal(cl_inode_take_dirty(h, out, 2), 1);
    assert_int_equal(out[0], 2);
    struct cl_chunk now;
    assert_int_equal(cl_inode_lease_get(h, 2, 10, &now), 0);
    assert_int_equal(now.version, 2); /* synced at the new version */
    cl_inode_lease_dirty(h, 2);
    cl_inode_lease_put(h, &other, 20); /* a different chunk */
    assert_int_equal(cl_inode_ndirty(h), 0);
    cl_handles_put(t, h);
}

static void test_cl_inode_lease_drop_from_after_truncate(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    struct cl_chunk out;
    cl_handles_open(t, 10, 0, &h);
    for (uint64_t i = 0; i < 6; i++) {
        struct cl_chunk c = lease(i, 100 + i, 1);
        cl_inode_lease_put(h, &c, 0);
        cl_inode_lease_dirty(h, i);
    }
    cl_inode_lease_drop_from(h, 2);
    assert_int_equal(cl_inode_lease_get(h, 1, 0, &out), 0);
    assert_int_equal(cl_inode_lease_get(h, 2, 0, &out), -ENOENT);
    assert_int_equal(cl_inode_lease_get(h, 5, 0, &out), -ENOENT);
    assert_int_equal(cl_inode_ndirty(h), 2);
    cl_inode_lease_drop(h, 0);
    assert_int_equal(cl_inode_lease_get(h, 0, 0, &out), -ENOENT);
    assert_int_equal(cl_inode_lease_get(h, 1, 0, &out), 0);
    cl_handles_put(t, h);
}

static void test_cl_inode_grow_only_raises(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    cl_handles_open(t, 10, 100, &h);
    assert_int_equal(cl_inode_grow(h, 50), 100);
    assert_int_equal(cl_inode_grow(h, 6ull << 30), 6ull << 30);
    cl_inode_set_size(h, 10); /* truncate sets it down */
    assert_int_equal(cl_inode_size(h), 10);
    cl_handles_put(t, h);
}

static void test_cl_inode_hold_drop_last(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *n;
    assert_int_equal(cl_handles_open(t, 10, 0, &n), 0);
    for (int i = 0; i < 2; i++) {
        cl_inode_hold_begin(n);
        cl_inode_hold_end(NULL, n, true);
    }
    cl_inode_hold_begin(n);
    cl_inode_hold_end(NULL, n, false); /* a failed OPEN counts nothing */
    cl_inode_hold_begin(n);
    assert_false(cl_inode_hold_drop(n));
    assert_true(cl_inode_hold_drop(n));  /* the last handle */
    assert_false(cl_inode_hold_drop(n)); /* none left */
    cl_inode_hold_end(NULL, n, false);
    cl_handles_put(t, n);
}

static void test_cl_handles_collect_lingering_when_due(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *n, *v[4];
    assert_int_equal(cl_handles_open(t, 10, 0, &n), 0);
    assert_false(cl_inode_linger_set(n, true, 1000));
    assert_int_equal(cl_handles_collect(t, v, 4, 0), 0); /* drain: never */
    assert_int_equal(cl_handles_collect(t, v, 4, 1000 + CL_LINGER_MS - 1), 0);
    assert_false(cl_inode_linger_due(n, 1000 + CL_LINGER_MS - 1));
    assert_int_equal(cl_handles_collect(t, v, 4, 1000 + CL_LINGER_MS), 1);
    assert_ptr_equal(v[0], n);
    cl_handles_put(t, v[0]);
    assert_true(cl_inode_linger_due(n, UINT64_MAX));
    assert_true(cl_inode_linger_set(n, false, 0));
    assert_int_equal(cl_handles_collect(t, v, 4, UINT64_MAX), 0);
    cl_handles_put(t, n);
}

static void test_cl_handles_server_down_marks_stale(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h, *g;
    struct cl_chunk out;
    struct cl_chunk a = lease(0, 100, 1), b = lease(1, 101, 1);
    a.nreplicas = 2;
    a.server_id[0] = 5;
    a.server_id[1] = 6;
    b.server_id[0] = 7;
    cl_handles_open(t, 10, 0, &h);
    cl_handles_open(t, 11, 0, &g);
    cl_inode_lease_put(h, &a, 0);
    cl_inode_lease_dirty(h, 0);
    cl_inode_lease_put(g, &b, 0);
    assert_int_equal(cl_handles_server_down(t, 6), 1);
    /* A stale lease is not handed out, but its chunk still owes a sync. */
    assert_int_equal(cl_inode_lease_get(h, 0, 0, &out), -ENOENT);
    assert_int_equal(cl_inode_ndirty(h), 1);
    assert_int_equal(cl_inode_lease_get(g, 1, 0, &out), 0);
    /* A new grant clears it and keeps the dirty flag. */
    a.version = 4;
    cl_inode_lease_put(h, &a, 1);
    assert_int_equal(cl_inode_lease_get(h, 0, 1, &out), 0);
    assert_int_equal(out.version, 4);
    assert_int_equal(cl_inode_ndirty(h), 1);
    cl_handles_put(t, h);
    cl_handles_put(t, g);
}

static void test_cl_inode_lease_stale_one(void **state)
{
    struct cl_handles *t = *state;
    struct cl_inode *h;
    struct cl_chunk out, a = lease(0, 100, 1), b = lease(1, 101, 1);
    cl_handles_open(t, 10, 0, &h);
    cl_inode_lease_put(h, &a, 0);
    cl_inode_lease_put(h, &b, 0);
    cl_inode_lease_stale(h, 1);
    cl_inode_lease_stale(h, 9); /* no lease: ignored */
    assert_int_equal(cl_inode_lease_get(h, 0, 0, &out), 0);
    assert_int_equal(cl_inode_lease_get(h, 1, 0, &out), -ENOENT);
    cl_handles_put(t, h);
}

static void test_cl_downset_add_remove(void **state)
{
    (void)state;
    struct cl_downset d;
    cl_downset_init(&d);
    assert_false(cl_downset_has(&d, 3));
    cl_downset_add(&d, 3);
    cl_downset_add(&d, 3); /* once */
    cl_downset_add(&d, 4);
    assert_true(cl_downset_has(&d, 3));
    assert_int_equal(d.n, 2);
    cl_downset_remove(&d, 3);
    assert_false(cl_downset_has(&d, 3));
    assert_true(cl_downset_has(&d, 4));
    cl_downset_destroy(&d);
}

static void test_cl_downset_add_full_forgets_oldest(void **state)
{
    (void)state;
    struct cl_downset d;
    cl_downset_init(&d);
    for (uint32_t i = 1; i <= CL_DOWN_MAX + 1; i++)
        cl_downset_add(&d, i);
    assert_int_equal(d.n, CL_DOWN_MAX);
    assert_false(cl_downset_has(&d, 1));
    assert_true(cl_downset_has(&d, CL_DOWN_MAX + 1));
    cl_downset_destroy(&d);
}

static void test_cl_chunk_error_final_cases(void **state)
{
    (void)state;
    assert_true(cl_chunk_error_final(-ENOSPC));
    assert_true(cl_chunk_error_final(-EFBIG));
    assert_false(cl_chunk_error_final(-EIO));
    assert_false(cl_chunk_error_final(-ESTALE));  /* EOLDVER */
    assert_false(cl_chunk_error_final(-EBADMSG)); /* ECHECKSUM */
    assert_false(cl_chunk_error_final(-ETIMEDOUT));
    assert_false(cl_chunk_error_final(-ENOTCONN));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int test_cl_handle(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cl_handles_open_shares_inode),
        T(test_cl_handles_find_after_release),
        T(test_cl_handles_find_keeps_inode_alive),
        T(test_cl_handles_open_many_inodes),
        T(test_cl_inode_lease_get_valid_until_renew),
        T(test_cl_inode_take_dirty_collects_once),
        T(test_cl_inode_take_dirty_respects_max),
        T(test_cl_inode_lease_put_renewal_keeps_dirty),
        T(test_cl_inode_lease_drop_from_after_truncate),
        T(test_cl_inode_grow_only_raises),
        T(test_cl_handles_server_down_marks_stale),
        T(test_cl_inode_lease_stale_one),
        cmocka_unit_test_setup_teardown(test_cl_inode_hold_drop_last, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_handles_collect_lingering_when_due, setup, teardown),
        cmocka_unit_test(test_cl_downset_add_remove),
        cmocka_unit_test(test_cl_downset_add_full_forgets_oldest),
        cmocka_unit_test(test_cl_chunk_error_final_cases),
    };
    return cmocka_run_group_tests_name("cl_handle", tests, NULL, NULL);
}
