/* Tests for client/cl_alloc.c against a fake metad and fake chunk
 * servers (fake_cluster.h): runs of data and holes by chunk slot from the
 * chunk map, this client's delayed writes counting as data before they
 * are written back, the callback stopping the walk, metad's errors, and
 * the bound on the slots one call looks at.
 */
#include "fake_cluster.h"

#include "cl_internal.h"

#define SLOT ((uint64_t)PROTO_CHUNK_SIZE)
#define MAX_RUNS 8

struct runs {
    unsigned n;
    uint64_t len[MAX_RUNS];
    bool data[MAX_RUNS];
    int stop_after; /* > 0: stop after this many runs; < 0: fail with it */
};

static int collect(void *arg, uint64_t len, bool data)
{
    struct runs *r = arg;
    assert_true(r->n < MAX_RUNS);
    r->len[r->n] = len;
    r->data[r->n] = data;
    r->n++;
    if (r->stop_after < 0)
        return r->stop_after;
    return r->stop_after > 0 && r->n >= (unsigned)r->stop_after ? 1 : 0;
}

static int setup_writeback(void **state)
{
    return fk_fix_setup(state, CL_CACHE_WRITEBACK);
}

static int setup_writethrough(void **state)
{
    return fk_fix_setup(state, CL_CACHE_WRITETHROUGH);
}

static void write_at(struct fk_fix *f, uint64_t off, uint8_t seed)
{
    uint8_t b[4096];
    fk_fill(b, sizeof(b), seed);
    assert_int_equal(cl_file_write(f->c, f->n, off, b, sizeof(b), false),
                     (int)sizeof(b));
}

/* Slots 0 and 2 written, 1 and 3 holes: four runs of one slot each. */
static void test_cl_file_alloc_runs_by_slot(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {0};

    write_at(f, 100, 1);
    write_at(f, 2 * SLOT + 5000, 2);
    assert_int_equal(cl_file_alloc(f->c, f->n, 0, 4 * SLOT, collect, &r), 0);
    assert_int_equal(r.n, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(r.len[i], SLOT);
        assert_int_equal(r.data[i], i % 2 == 0);
    }
}

/* A range starting and ending inside slots: the first and last runs are
 * cut to it, and adjoining holes merge. */
static void test_cl_file_alloc_partial_range_merges(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {0};

    write_at(f, 0, 3);
    assert_int_equal(cl_file_alloc(f->c, f->n, SLOT / 2, 3 * SLOT, collect, &r),
                     0);
    assert_int_equal(r.n, 2);
    assert_true(r.data[0]);
    assert_int_equal(r.len[0], SLOT / 2);
    assert_false(r.data[1]);
    assert_int_equal(r.len[1], 2 * SLOT + SLOT / 2);
}

/* A delayed write in a hole is data before it reaches any server, and
 * nothing is written back to find that out. */
static void test_cl_file_alloc_delayed_write_is_data(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {0};

    write_at(f, SLOT + 123, 4);
    assert_int_equal(cl_file_alloc(f->c, f->n, 0, 3 * SLOT, collect, &r), 0);
    assert_int_equal(r.n, 3);
    assert_false(r.data[0]);
    assert_true(r.data[1]);
    assert_false(r.data[2]);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->slot[1].chunk_id), 0);

    /* Written back: the chunk map has it now, and it is still data. */
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    assert_int_not_equal(FK_GET(f->fk, f->fk->slot[1].chunk_id), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(cl_file_alloc(f->c, f->n, SLOT, SLOT, collect, &r), 0);
    assert_int_equal(r.n, 1);
    assert_true(r.data[0]);
}

/* The callback stops the walk with > 0 (no error) or fails it. */
static void test_cl_file_alloc_callback_stops(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {.stop_after = 1};

    write_at(f, SLOT, 5);
    assert_int_equal(cl_file_alloc(f->c, f->n, 0, 4 * SLOT, collect, &r), 0);
    assert_int_equal(r.n, 1);
    assert_false(r.data[0]);

    memset(&r, 0, sizeof(r));
    r.stop_after = -EINTR;
    assert_int_equal(cl_file_alloc(f->c, f->n, 0, 4 * SLOT, collect, &r),
                     -EINTR);
    assert_int_equal(r.n, 1);
}

/* A CHUNK_LOCATE that fails fails the call, and no run is made up. */
static void test_cl_file_alloc_locate_error(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {0};

    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ, -EACCES, 1);
    assert_int_equal(cl_file_alloc(f->c, f->n, 0, 2 * SLOT, collect, &r),
                     -EACCES);
    assert_int_equal(r.n, 0);
}

/* One call looks at CL_ALLOC_MAX_SLOTS slots at most; the caller goes on
 * from where the runs ended. */
static void test_cl_file_alloc_bounded_walk(void **state)
{
    struct fk_fix *f = *state;
    struct runs r = {0};
    uint64_t len = (CL_ALLOC_MAX_SLOTS + 10) * SLOT;

    assert_int_equal(cl_file_alloc(f->c, f->n, 0, len, collect, &r), 0);
    assert_int_equal(r.n, 1);
    assert_false(r.data[0]);
    assert_int_equal(r.len[0], CL_ALLOC_MAX_SLOTS * SLOT);
}

int test_cl_alloc(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cl_file_alloc_runs_by_slot,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_alloc_partial_range_merges,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_file_alloc_delayed_write_is_data, setup_writeback,
            fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_alloc_callback_stops,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_alloc_locate_error,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_alloc_bounded_walk,
                                        setup_writethrough, fk_fix_teardown),
    };
    return cmocka_run_group_tests_name("cl_alloc", tests, NULL, NULL);
}
