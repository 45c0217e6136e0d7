/* Tests for client-fuse/fc_handle.c: the open file table (handles sharing
 * an inode, lookups, release), write leases (reuse, expiry, renewal keeping
 * the dirty flag), dirty chunk collection for sync, and the known size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>

#include "fc_internal.h"

static struct fc_chunk lease(uint64_t index, uint64_t id, uint64_t version)
{
    struct fc_chunk c;
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
    *state = fc_handles_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    fc_handles_free(*state);
    return 0;
}

static void test_fc_handles_open_shares_inode(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *a, *b, *c;
    assert_int_equal(fc_handles_open(t, 10, O_RDONLY, 100, &a), 0);
    assert_int_equal(fc_handles_open(t, 10, O_WRONLY, 50, &b), 0);
    assert_int_equal(fc_handles_open(t, 11, O_RDWR, 7, &c), 0);
    assert_ptr_equal(a->node, b->node);
    assert_ptr_not_equal(a->node, c->node);
    assert_int_equal(b->flags, O_WRONLY);
    assert_int_equal(fc_inode_size(a->node), 100); /* the larger size */
    assert_int_equal(fc_inode_size(c->node), 7);
    fc_handles_release(t, a);
    fc_handles_release(t, b);
    fc_handles_release(t, c);
}

static void test_fc_handles_find_after_release(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *a, *b;
    assert_null(fc_handles_find(t, 10));
    fc_handles_open(t, 10, O_RDONLY, 0, &a);
    fc_handles_open(t, 10, O_RDONLY, 0, &b);
    struct fc_inode *n = fc_handles_find(t, 10);
    assert_ptr_equal(n, a->node);
    fc_handles_put(t, n);
    fc_handles_release(t, a);
    n = fc_handles_find(t, 10); /* b still open */
    assert_non_null(n);
    fc_handles_put(t, n);
    fc_handles_release(t, b);
    assert_null(fc_handles_find(t, 10));
}

static void test_fc_handles_find_keeps_inode_alive(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *a;
    fc_handles_open(t, 12, O_RDWR, 0, &a);
    struct fc_inode *n = fc_handles_find(t, 12);
    fc_handles_release(t, a);
    /* The reference from find keeps the inode until put. */
    fc_inode_set_size(n, 99);
    assert_int_equal(fc_inode_size(n), 99);
    fc_handles_put(t, n);
    assert_null(fc_handles_find(t, 12));
}

static void test_fc_handles_open_many_inodes(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h[600];
    for (int i = 0; i < 600; i++)
        assert_int_equal(fc_handles_open(t, (uint64_t)i + 1, 0, i, &h[i]), 0);
    for (int i = 0; i < 600; i++) {
        struct fc_inode *n = fc_handles_find(t, (uint64_t)i + 1);
        assert_ptr_equal(n, h[i]->node);
        assert_int_equal(fc_inode_size(n), i);
        fc_handles_put(t, n);
    }
    for (int i = 0; i < 600; i++)
        fc_handles_release(t, h[i]);
}

static void test_fc_inode_lease_get_valid_until_renew(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    struct fc_chunk in = lease(3, 77, 2), out;
    fc_handles_open(t, 10, O_RDWR, 0, &h);
    assert_int_equal(fc_inode_lease_get(h->node, 3, 0, &out), -ENOENT);
    assert_int_equal(fc_inode_lease_put(h->node, &in, 1000), 0);
    assert_int_equal(fc_inode_lease_get(h->node, 3, 1000, &out), 0);
    assert_int_equal(out.chunk_id, 77);
    assert_int_equal(out.version, 2);
    assert_int_equal(
        fc_inode_lease_get(h->node, 3, 1000 + FC_LEASE_RENEW_MS - 1, &out), 0);
    assert_int_equal(
        fc_inode_lease_get(h->node, 3, 1000 + FC_LEASE_RENEW_MS, &out),
        -ENOENT);
    assert_int_equal(fc_inode_lease_get(h->node, 4, 1000, &out), -ENOENT);
    fc_handles_release(t, h);
}

static void test_fc_inode_take_dirty_collects_once(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    struct fc_chunk out[8];
    fc_handles_open(t, 10, O_RDWR, 0, &h);
    for (uint64_t i = 0; i < 5; i++) {
        struct fc_chunk c = lease(i, 100 + i, 1);
        fc_inode_lease_put(h->node, &c, 0);
    }
    fc_inode_lease_dirty(h->node, 1);
    fc_inode_lease_dirty(h->node, 3);
    fc_inode_lease_dirty(h->node, 42); /* no lease: ignored */
    assert_int_equal(fc_inode_ndirty(h->node), 2);
    size_t k = fc_inode_take_dirty(h->node, out, 8);
    assert_int_equal(k, 2);
    assert_true((out[0].index == 1 && out[1].index == 3) ||
                (out[0].index == 3 && out[1].index == 1));
    assert_int_equal(fc_inode_take_dirty(h->node, out, 8), 0);
    fc_handles_release(t, h);
}

static void test_fc_inode_take_dirty_respects_max(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    struct fc_chunk out[2];
    fc_handles_open(t, 10, O_RDWR, 0, &h);
    for (uint64_t i = 0; i < 5; i++) {
        struct fc_chunk c = lease(i, 100 + i, 1);
        fc_inode_lease_put(h->node, &c, 0);
        fc_inode_lease_dirty(h->node, i);
    }
    assert_int_equal(fc_inode_take_dirty(h->node, out, 2), 2);
    assert_int_equal(fc_inode_take_dirty(h->node, out, 2), 2);
    assert_int_equal(fc_inode_take_dirty(h->node, out, 2), 1);
    assert_int_equal(fc_inode_take_dirty(h->node, out, 2), 0);
    fc_handles_release(t, h);
}

static void test_fc_inode_lease_put_renewal_keeps_dirty(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    struct fc_chunk out[2];
    struct fc_chunk v1 = lease(2, 50, 1), v2 = lease(2, 50, 2);
    struct fc_chunk other = lease(2, 51, 1);
    fc_handles_open(t, 10, O_RDWR, 0, &h);
    fc_inode_lease_put(h->node, &v1, 0);
    fc_inode_lease_dirty(h->node, 2);
    fc_inode_lease_put(h->node, &v2, 10);
    assert_int_equal(fc_inode_take_dirty(h->node, out, 2), 1);
    assert_int_equal(out[0].version, 2); /* synced at the new version */
    fc_inode_lease_dirty(h->node, 2);
    fc_inode_lease_put(h->node, &other, 20); /* a different chunk */
    assert_int_equal(fc_inode_ndirty(h->node), 0);
    fc_handles_release(t, h);
}

static void test_fc_inode_lease_drop_from_after_truncate(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    struct fc_chunk out;
    fc_handles_open(t, 10, O_RDWR, 0, &h);
    for (uint64_t i = 0; i < 6; i++) {
        struct fc_chunk c = lease(i, 100 + i, 1);
        fc_inode_lease_put(h->node, &c, 0);
        fc_inode_lease_dirty(h->node, i);
    }
    fc_inode_lease_drop_from(h->node, 2);
    assert_int_equal(fc_inode_lease_get(h->node, 1, 0, &out), 0);
    assert_int_equal(fc_inode_lease_get(h->node, 2, 0, &out), -ENOENT);
    assert_int_equal(fc_inode_lease_get(h->node, 5, 0, &out), -ENOENT);
    assert_int_equal(fc_inode_ndirty(h->node), 2);
    fc_inode_lease_drop(h->node, 0);
    assert_int_equal(fc_inode_lease_get(h->node, 0, 0, &out), -ENOENT);
    assert_int_equal(fc_inode_lease_get(h->node, 1, 0, &out), 0);
    fc_handles_release(t, h);
}

static void test_fc_inode_grow_only_raises(void **state)
{
    struct fc_handles *t = *state;
    struct fc_handle *h;
    fc_handles_open(t, 10, O_RDWR, 100, &h);
    assert_int_equal(fc_inode_grow(h->node, 50), 100);
    assert_int_equal(fc_inode_grow(h->node, 6ull << 30), 6ull << 30);
    fc_inode_set_size(h->node, 10); /* truncate sets it down */
    assert_int_equal(fc_inode_size(h->node), 10);
    fc_handles_release(t, h);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int test_fc_handle(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fc_handles_open_shares_inode),
        T(test_fc_handles_find_after_release),
        T(test_fc_handles_find_keeps_inode_alive),
        T(test_fc_handles_open_many_inodes),
        T(test_fc_inode_lease_get_valid_until_renew),
        T(test_fc_inode_take_dirty_collects_once),
        T(test_fc_inode_take_dirty_respects_max),
        T(test_fc_inode_lease_put_renewal_keeps_dirty),
        T(test_fc_inode_lease_drop_from_after_truncate),
        T(test_fc_inode_grow_only_raises),
    };
    return cmocka_run_group_tests_name("fc_handle", tests, NULL, NULL);
}
