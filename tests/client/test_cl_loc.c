/* Tests for client/cl_loc.c: the chunk location cache (insert,
 * lookup, expiry of holes and chunks, invalidation, the size bound) and
 * copying decoded locations into it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>

#include "cl_internal.h"

static struct cl_chunk chunk(uint64_t index, uint64_t id, uint32_t nrep)
{
    struct cl_chunk c;
    memset(&c, 0, sizeof(c));
    c.index = index;
    c.chunk_id = id;
    c.version = id ? 3 : 0;
    c.nreplicas = nrep;
    for (uint32_t i = 0; i < nrep; i++) {
        c.server_id[i] = 10 + i;
        snprintf(c.addr[i], CL_ADDR_MAX, "127.0.0.1:%u", 9000 + i);
    }
    return c;
}

static int setup(void **state)
{
    *state = cl_loc_cache_new(16);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    cl_loc_cache_free(*state);
    return 0;
}

static void test_cl_loc_get_after_put(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk in = chunk(7, 42, 3), out;
    assert_int_equal(cl_loc_put(c, 5, &in, 1000), 0);
    assert_int_equal(cl_loc_get(c, 5, 7, 1001, &out), 0);
    assert_int_equal(out.chunk_id, 42);
    assert_int_equal(out.version, 3);
    assert_int_equal(out.nreplicas, 3);
    assert_string_equal(out.addr[2], "127.0.0.1:9002");
    assert_int_equal(out.server_id[1], 11);
}

static void test_cl_loc_get_missing(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk in = chunk(7, 42, 1), out;
    assert_int_equal(cl_loc_get(c, 5, 7, 0, &out), -ENOENT);
    cl_loc_put(c, 5, &in, 0);
    assert_int_equal(cl_loc_get(c, 6, 7, 0, &out), -ENOENT); /* other ino */
    assert_int_equal(cl_loc_get(c, 5, 8, 0, &out), -ENOENT); /* other idx */
}

static void test_cl_loc_put_replaces_entry(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk a = chunk(1, 42, 1), b = chunk(1, 43, 2), out;
    cl_loc_put(c, 5, &a, 0);
    cl_loc_put(c, 5, &b, 0);
    assert_int_equal(cl_loc_count(c), 1);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), 0);
    assert_int_equal(out.chunk_id, 43);
}

/* A CHUNK_LOCATE reply asked before a write-back gave the slot its
 * chunk must not put its hole over that chunk, nor put a hole after the
 * chunk was dropped meanwhile; a reply with nothing newer is kept. */
static void test_cl_loc_put_reply_older_loses(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk hole = chunk(1, 0, 0), made = chunk(1, 42, 2), out;

    uint64_t asked = cl_loc_seq(c);
    cl_loc_put(c, 5, &made, 0); /* the write-back's WRITE_BEGIN */
    assert_int_equal(cl_loc_put_reply(c, 5, &hole, 0, asked), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), 0);
    assert_int_equal(out.chunk_id, 42);

    asked = cl_loc_seq(c);
    cl_loc_invalidate(c, 5, 1); /* a failed read drops it */
    assert_int_equal(cl_loc_put_reply(c, 5, &hole, 0, asked), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), -ENOENT);

    asked = cl_loc_seq(c);
    assert_int_equal(cl_loc_put_reply(c, 5, &hole, 0, asked), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), 0);
    assert_int_equal(out.chunk_id, 0);
    /* A newer reply replaces an older entry. */
    asked = cl_loc_seq(c);
    assert_int_equal(cl_loc_put_reply(c, 5, &made, 0, asked), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), 0);
    assert_int_equal(out.chunk_id, 42);
}

static void test_cl_loc_get_hole_expires_sooner(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk hole = chunk(0, 0, 0), data = chunk(1, 9, 1), out;
    cl_loc_put(c, 5, &hole, 1000);
    cl_loc_put(c, 5, &data, 1000);
    assert_int_equal(cl_loc_get(c, 5, 0, 1000 + CL_LOC_HOLE_TTL_MS - 1, &out),
                     0);
    assert_int_equal(out.chunk_id, 0);
    assert_int_equal(cl_loc_get(c, 5, 0, 1000 + CL_LOC_HOLE_TTL_MS, &out),
                     -ENOENT);
    assert_int_equal(cl_loc_get(c, 5, 1, 1000 + CL_LOC_HOLE_TTL_MS, &out), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 1000 + CL_LOC_TTL_MS, &out), -ENOENT);
    assert_int_equal(cl_loc_count(c), 0); /* expired entries are dropped */
}

static void test_cl_loc_suspect_shortens_life(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk a = chunk(1, 42, 2), b = chunk(2, 43, 2), out;
    cl_loc_put(c, 5, &a, 1000);
    cl_loc_put(c, 5, &b, 1000);
    cl_loc_suspect(c, 5, 1, 2000);
    assert_int_equal(
        cl_loc_get(c, 5, 1, 2000 + CL_LOC_SUSPECT_TTL_MS - 1, &out), 0);
    assert_int_equal(cl_loc_get(c, 5, 1, 2000 + CL_LOC_SUSPECT_TTL_MS, &out),
                     -ENOENT);
    /* The other chunk keeps its life; a suspicion never lengthens one. */
    assert_int_equal(cl_loc_get(c, 5, 2, 2000 + CL_LOC_SUSPECT_TTL_MS, &out),
                     0);
    cl_loc_put(c, 5, &a, 1000);
    cl_loc_suspect(c, 5, 1, 1000 + CL_LOC_TTL_MS - 10);
    assert_int_equal(cl_loc_get(c, 5, 1, 1000 + CL_LOC_TTL_MS, &out), -ENOENT);
    cl_loc_suspect(c, 5, 99, 0); /* absent: no effect */
}

static void test_cl_loc_invalidate_one(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk a = chunk(1, 42, 1), b = chunk(2, 43, 1), out;
    cl_loc_put(c, 5, &a, 0);
    cl_loc_put(c, 5, &b, 0);
    cl_loc_invalidate(c, 5, 1);
    assert_int_equal(cl_loc_get(c, 5, 1, 0, &out), -ENOENT);
    assert_int_equal(cl_loc_get(c, 5, 2, 0, &out), 0);
    cl_loc_invalidate(c, 5, 99); /* absent: no effect */
    assert_int_equal(cl_loc_count(c), 1);
}

static void test_cl_loc_invalidate_from_keeps_lower(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk out;
    for (uint64_t i = 0; i < 6; i++) {
        struct cl_chunk x = chunk(i, 100 + i, 1);
        cl_loc_put(c, 5, &x, 0);
        cl_loc_put(c, 6, &x, 0);
    }
    cl_loc_invalidate_from(c, 5, 3);
    assert_int_equal(cl_loc_get(c, 5, 2, 0, &out), 0);
    assert_int_equal(cl_loc_get(c, 5, 3, 0, &out), -ENOENT);
    assert_int_equal(cl_loc_get(c, 5, 5, 0, &out), -ENOENT);
    assert_int_equal(cl_loc_get(c, 6, 5, 0, &out), 0); /* other inode */
    assert_int_equal(cl_loc_count(c), 9);
}

static void test_cl_loc_put_bounded(void **state)
{
    struct cl_loc_cache *c = *state; /* max 16 */
    for (uint64_t i = 0; i < 100; i++) {
        struct cl_chunk x = chunk(i, 100 + i, 1);
        assert_int_equal(cl_loc_put(c, 5, &x, 0), 0);
        assert_true(cl_loc_count(c) <= 16);
    }
    struct cl_chunk out;
    assert_int_equal(cl_loc_get(c, 5, 99, 0, &out), 0); /* newest kept */
}

static void test_cl_loc_large_index(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk x = chunk(80, 7, 1), out; /* 5 GiB */
    cl_loc_put(c, 1ull << 40, &x, 0);
    assert_int_equal(cl_loc_get(c, 1ull << 40, 80, 0, &out), 0);
    assert_int_equal(out.chunk_id, 7);
}

static void test_cl_chunk_from_loc_copies(void **state)
{
    struct proto_chunk_loc loc;
    struct cl_chunk out;
    (void)state;
    memset(&loc, 0, sizeof(loc));
    loc.index = 3;
    loc.chunk_id = 77;
    loc.version = 2;
    loc.nreplicas = 2;
    loc.replicas[0] = (struct proto_replica){4, {"10.0.0.1:9422xx", 13}};
    loc.replicas[1] = (struct proto_replica){5, {"10.0.0.2:9422", 13}};
    assert_int_equal(cl_chunk_from_loc(&loc, &out), 0);
    assert_string_equal(out.addr[0], "10.0.0.1:9422");
    assert_string_equal(out.addr[1], "10.0.0.2:9422");
    assert_int_equal(out.server_id[1], 5);
    assert_int_equal(out.index, 3);
}

static void test_cl_chunk_from_loc_rejects_bad(void **state)
{
    struct proto_chunk_loc loc;
    struct cl_chunk out;
    char longaddr[CL_ADDR_MAX + 10];
    (void)state;
    memset(longaddr, 'a', sizeof(longaddr));
    memset(&loc, 0, sizeof(loc));
    loc.chunk_id = 1;
    loc.nreplicas = 1;
    loc.replicas[0].addr = (struct proto_str){longaddr, sizeof(longaddr)};
    assert_int_equal(cl_chunk_from_loc(&loc, &out), -EPROTO);
    loc.replicas[0].addr = (struct proto_str){"", 0};
    assert_int_equal(cl_chunk_from_loc(&loc, &out), -EPROTO);
    loc.nreplicas = PROTO_MAX_REPLICAS + 1;
    assert_int_equal(cl_chunk_from_loc(&loc, &out), -EPROTO);
    loc.chunk_id = 0; /* a hole with replicas */
    loc.nreplicas = 1;
    loc.replicas[0].addr = (struct proto_str){"a:1", 3};
    assert_int_equal(cl_chunk_from_loc(&loc, &out), -EPROTO);
}

static void test_cl_loc_drop_server_keeps_others(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk a = chunk(0, 7, 3), b = chunk(1, 8, 2), out;
    assert_int_equal(cl_loc_put(c, 1, &a, 0), 0);
    assert_int_equal(cl_loc_put(c, 1, &b, 0), 0);
    assert_int_equal(cl_loc_drop_server(c, 11), 2); /* the middle one */
    assert_int_equal(cl_loc_get(c, 1, 0, 0, &out), 0);
    assert_int_equal(out.nreplicas, 2);
    assert_int_equal(out.server_id[0], 10);
    assert_int_equal(out.server_id[1], 12);
    assert_string_equal(out.addr[1], "127.0.0.1:9002");
    assert_false(cl_chunk_has_server(&out, 11));
    assert_true(cl_chunk_has_server(&out, 12));
    assert_int_equal(cl_loc_drop_server(c, 99), 0);
}

static void test_cl_loc_drop_server_forgets_emptied(void **state)
{
    struct cl_loc_cache *c = *state;
    struct cl_chunk a = chunk(0, 7, 1), hole = chunk(1, 0, 0), out;
    cl_loc_put(c, 1, &a, 0);
    cl_loc_put(c, 1, &hole, 0);
    assert_int_equal(cl_loc_drop_server(c, 10), 1);
    assert_int_equal(cl_loc_get(c, 1, 0, 0, &out), -ENOENT);
    assert_int_equal(cl_loc_get(c, 1, 1, 0, &out), 0); /* holes stay */
    assert_int_equal(cl_loc_count(c), 1);
}

int test_cl_loc(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cl_loc_get_after_put, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_get_missing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_put_replaces_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_put_reply_older_loses,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_get_hole_expires_sooner,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_suspect_shortens_life,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_invalidate_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_invalidate_from_keeps_lower,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_put_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_large_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_drop_server_keeps_others,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cl_loc_drop_server_forgets_emptied,
                                        setup, teardown),
        cmocka_unit_test(test_cl_chunk_from_loc_copies),
        cmocka_unit_test(test_cl_chunk_from_loc_rejects_bad),
    };
    return cmocka_run_group_tests_name("cl_loc", tests, NULL, NULL);
}
