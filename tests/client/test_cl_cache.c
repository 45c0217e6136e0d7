/* Tests for client/cl_cache.c: delayed writes kept as merged extents
 * (overwrites sent once, sequential writes coalesced), reads seeing them,
 * truncation cutting them, the client's dirty byte count, taking them for
 * write-back and giving them back, and the flusher's wake-up; and for
 * client/cl_callback.c's page versions (close-to-open). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>

#include "cl_internal.h"

struct fx {
    struct cl_client c;
    struct cl_inode *n;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct cl_opts o = {.cache = CL_CACHE_WRITEBACK, .dirty_max = 1 << 20};
    if (!f)
        return -1;
    f->c.mode = CL_CACHE_WRITEBACK;
    f->c.handles = cl_handles_new();
    f->c.loc = cl_loc_cache_new(64);
    f->c.cache = cl_cache_new(&o);
    f->c.cb = cl_cb_new(&f->c, &o);
    if (!f->c.handles || !f->c.cache || !f->c.loc || !f->c.cb)
        return -1;
    cl_handles_set_cache(f->c.handles, f->c.cache);
    if (cl_handles_open(f->c.handles, 7, 0, &f->n) < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    cl_handles_put(f->c.handles, f->n);
    cl_handles_free(f->c.handles);
    cl_cache_free(f->c.cache);
    cl_cb_free(f->c.cb);
    cl_loc_cache_free(f->c.loc);
    free(f);
    return 0;
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
    memset(p, v, n);
}

/* Lay @n's delayed writes over @out with no write-back in between. */
static void overlay_now(struct cl_inode *n, uint64_t off, uint8_t *out,
                        size_t len)
{
    assert_true(cl_cache_overlay(n, off, len, out, cl_cache_gen(n)));
}

static void test_cl_cache_write_sequential_coalesces(void **state)
{
    struct fx *f = *state;
    uint8_t b[4096];

    for (int i = 0; i < 16; i++) {
        fill(b, sizeof(b), (uint8_t)i);
        assert_int_equal(
            cl_cache_write(&f->c, f->n, (uint64_t)i * 4096, b, sizeof(b), true),
            0);
    }
    assert_int_equal(f->n->next, 1);
    assert_int_equal(f->n->dirty_bytes, 16 * 4096);
    assert_int_equal(cl_inode_size(f->n), 16 * 4096);
    /* Small writes side by side take about their bytes, not a 4 MiB
     * buffer each. */
    assert_true(f->n->ext[0].cap <= 2 * 16 * 4096);
}

static void test_cl_cache_write_overwrite_sent_once(void **state)
{
    struct fx *f = *state;
    uint8_t b[100], out[300];

    fill(b, sizeof(b), 'a');
    cl_cache_write(&f->c, f->n, 1000, b, 100, true);
    fill(b, sizeof(b), 'b');
    cl_cache_write(&f->c, f->n, 1050, b, 100, true);
    fill(b, sizeof(b), 'c');
    cl_cache_write(&f->c, f->n, 1000, b, 100, true);
    assert_int_equal(f->n->next, 1);
    assert_int_equal(f->n->dirty_bytes, 150);
    memset(out, 0, sizeof(out));
    overlay_now(f->n, 900, out, sizeof(out));
    assert_int_equal(out[99], 0);
    assert_int_equal(out[100], 'c');
    assert_int_equal(out[199], 'c');
    assert_int_equal(out[200], 'b');
    assert_int_equal(out[249], 'b');
    assert_int_equal(out[250], 0);
}

static void test_cl_cache_write_bridges_extents(void **state)
{
    struct fx *f = *state;
    uint8_t b[10];

    fill(b, sizeof(b), 'x');
    cl_cache_write(&f->c, f->n, 0, b, 10, true);
    cl_cache_write(&f->c, f->n, 30, b, 10, true);
    cl_cache_write(&f->c, f->n, 60, b, 10, true);
    assert_int_equal(f->n->next, 3);
    uint8_t big[50];
    fill(big, sizeof(big), 'y');
    cl_cache_write(&f->c, f->n, 5, big, 50, true); /* [5, 55) joins the first two */
    assert_int_equal(f->n->next, 2);
    assert_int_equal(f->n->ext[0].off, 0);
    assert_int_equal(f->n->ext[0].len, 55);
    assert_int_equal(f->n->ext[0].data[4], 'x');
    assert_int_equal(f->n->ext[0].data[5], 'y');
    assert_int_equal(f->n->dirty_bytes, 65);
    /* Writing just before an extent extends it at its front. */
    cl_cache_write(&f->c, f->n, 56, b, 4, true);
    assert_int_equal(f->n->next, 2);
    assert_int_equal(f->n->ext[1].off, 56);
    assert_int_equal(f->n->ext[1].len, 14);
}

static void test_cl_cache_cut_drops_tail(void **state)
{
    struct fx *f = *state;
    uint8_t b[100];

    fill(b, sizeof(b), 'z');
    cl_cache_write(&f->c, f->n, 0, b, 100, true);
    cl_cache_write(&f->c, f->n, 200, b, 100, true);
    cl_cache_cut(&f->c, f->n, 50);
    assert_int_equal(f->n->next, 1);
    assert_int_equal(f->n->ext[0].len, 50);
    assert_int_equal(f->n->dirty_bytes, 50);
}

static void test_cl_cache_take_and_release(void **state)
{
    struct fx *f = *state;
    uint8_t b[100], out[300];
    bool stop;

    fill(b, sizeof(b), 'a');
    assert_false(cl_cache_take(f->n)); /* nothing to write back */
    cl_cache_write(&f->c, f->n, 0, b, 100, true);
    cl_cache_write(&f->c, f->n, 200, b, 100, true);
    assert_true(cl_cache_take(f->n));
    assert_int_equal(f->n->next, 0);
    assert_int_equal(f->n->nfl, 2);
    /* While written back, reads still see them, and new writes queue
     * behind them. */
    fill(b, sizeof(b), 'b');
    cl_cache_write(&f->c, f->n, 250, b, 100, true);
    memset(out, 0, sizeof(out));
    overlay_now(f->n, 0, out, sizeof(out));
    assert_int_equal(out[0], 'a');
    assert_int_equal(out[150], 0);
    assert_int_equal(out[220], 'a');
    assert_int_equal(out[260], 'b');
    assert_int_equal(cl_cache_dirty(f->c.cache), 300);
    /* A failed write-back: its error waits in werr, its bytes go.  A read
     * that asked the servers before the release must ask again. */
    uint64_t gen = cl_cache_gen(f->n);
    cl_cache_release(f->c.cache, f->n, SIZE_MAX, -EIO);
    assert_false(cl_cache_overlay(f->n, 0, sizeof(out), out, gen));
    overlay_now(f->n, 0, out, sizeof(out));
    assert_int_equal(f->n->nfl, 0);
    assert_int_equal(f->n->werr, -EIO);
    assert_int_equal(f->n->dirty_bytes, 100);
    assert_int_equal(cl_cache_dirty(f->c.cache), 100);
    /* The flusher sleeps a tick when nothing is urgent, and is woken for
     * good by a stop. */
    assert_false(cl_cache_wait(f->c.cache, 10, &stop));
    assert_false(stop);
    cl_cache_stop(f->c.cache);
    cl_cache_wait(f->c.cache, 10000, &stop);
    assert_true(stop);
}

static void test_cl_cb_open_keeps_same_version(void **state)
{
    struct fx *f = *state;

    assert_false(cl_cb_open(&f->c, 9, 3)); /* nothing cached yet */
    assert_true(cl_cb_open(&f->c, 9, 3));
    cl_cb_note(&f->c, 9, 4); /* our own change */
    assert_true(cl_cb_open(&f->c, 9, 4));
    assert_false(cl_cb_open(&f->c, 9, 6)); /* someone else's */
}

static void test_cl_cache_write_nowait_over_dirty_max(void **state)
{
    struct fx *f = *state;
    uint8_t *b = calloc(1, 1 << 20);

    assert_non_null(b);
    /* The first write is kept whatever its size; the next would pass
     * dirty_max (1 MiB here): without waiting it is refused, untouched. */
    assert_int_equal(cl_cache_write(&f->c, f->n, 0, b, 1 << 20, false), 0);
    assert_int_equal(cl_cache_write(&f->c, f->n, 2 << 20, b, 4096, false),
                     -EAGAIN);
    assert_int_equal(f->n->next, 1);
    assert_int_equal(cl_cache_dirty(f->c.cache), 1 << 20);
    free(b);
}

static void test_cl_cache_overlaps_kept_and_flushing(void **state)
{
    struct fx *f = *state;
    uint8_t b[100];

    fill(b, sizeof(b), 'a');
    cl_cache_write(&f->c, f->n, 1000, b, 100, true); /* [1000, 1100) */
    assert_true(cl_cache_take(f->n));                 /* being written back */
    cl_cache_write(&f->c, f->n, 5000, b, 100, true); /* [5000, 5100) */
    assert_false(cl_cache_overlaps(f->n, 0, 1000));   /* touches only */
    assert_true(cl_cache_overlaps(f->n, 0, 1001));
    assert_true(cl_cache_overlaps(f->n, 1099, 1));
    assert_false(cl_cache_overlaps(f->n, 1100, 3900)); /* between */
    assert_true(cl_cache_overlaps(f->n, 1100, 3901));
    assert_true(cl_cache_overlaps(f->n, 0, 1 << 20)); /* covers both */
    assert_false(cl_cache_overlaps(f->n, 5100, 10));
    cl_cache_release(f->c.cache, f->n, SIZE_MAX, 0);
    assert_false(cl_cache_overlaps(f->n, 1000, 100)); /* written back */
}

/* Many extents made in a scattered order stay sorted and disjoint, and
 * reads see the latest bytes of each (the binary search in the store). */
static void test_cl_cache_many_extents_scattered(void **state)
{
    struct fx *f = *state;
    enum { N = 512 };
    uint8_t b[512], out[512];

    for (unsigned k = 0; k < N; k++) {
        unsigned i = (k * 197u) % N; /* 197 is prime to N: each i once */
        fill(b, sizeof(b), (uint8_t)i);
        cl_cache_write(&f->c, f->n, (uint64_t)i * 1024, b, sizeof(b), true);
    }
    fill(b, sizeof(b), 0xee); /* overwrite the middle of one */
    cl_cache_write(&f->c, f->n, 300 * 1024 + 100, b, 50, true);
    assert_int_equal(f->n->next, N);
    for (size_t i = 1; i < f->n->next; i++)
        assert_true(f->n->ext[i - 1].off + f->n->ext[i - 1].len <
                    f->n->ext[i].off);
    for (unsigned i = 0; i < N; i += 37) {
        memset(out, 0, sizeof(out));
        overlay_now(f->n, (uint64_t)i * 1024, out, sizeof(out));
        assert_int_equal(out[0], (uint8_t)i);
        assert_int_equal(out[511], (uint8_t)i);
        assert_true(cl_cache_overlaps(f->n, (uint64_t)i * 1024 + 511, 1));
        assert_false(cl_cache_overlaps(f->n, (uint64_t)i * 1024 + 512, 512));
    }
    memset(out, 0, sizeof(out));
    overlay_now(f->n, 300 * 1024, out, sizeof(out));
    assert_int_equal(out[99], 300 % 256);
    assert_int_equal(out[100], 0xee);
    assert_int_equal(out[150], 300 % 256);
}

/* Sequential writes make extents of at most 4 MiB, so writing back can go
 * a batch at a time: the flusher is woken at half of dirty_max, a batch
 * given back frees its bytes while the rest stay visible to reads. */
static void test_cl_cache_streams_in_batches(void **state)
{
    struct fx *f = *state;
    struct cl_opts o = {.cache = CL_CACHE_WRITEBACK, .dirty_max = 12 << 20};
    struct cl_cache *k = cl_cache_new(&o), *was = f->c.cache;
    uint8_t *b = malloc(1 << 20), out[16];
    bool stop;

    assert_non_null(k);
    assert_non_null(b);
    f->c.cache = k;
    for (int i = 0; i < 6; i++) {
        memset(b, 'a' + i, 1 << 20);
        assert_int_equal(cl_cache_write(&f->c, f->n, (uint64_t)i << 20, b,
                                        1 << 20, true),
                         0);
        if (i == 4)
            assert_false(cl_cache_wait(k, 1, &stop)); /* 5 MiB: not yet */
    }
    assert_true(cl_cache_wait(k, 1, &stop)); /* 6 MiB: half of 12 */
    assert_false(stop);
    assert_int_equal(f->n->next, 2);
    assert_int_equal(f->n->ext[0].len, 4 << 20);
    assert_int_equal(f->n->ext[1].off, 4 << 20);
    assert_int_equal(f->n->ext[1].len, 2 << 20);
    assert_int_equal(cl_cache_batch(k), 4 << 20);

    assert_true(cl_cache_take(f->n));
    cl_cache_release(k, f->n, 1, 0); /* the first batch is written */
    assert_int_equal(f->n->nfl, 1);
    assert_int_equal(f->n->fl[0].off, 4 << 20);
    assert_int_equal(cl_cache_dirty(k), 2 << 20);
    assert_int_equal(f->n->dirty_bytes, 2 << 20);
    memset(out, 0, sizeof(out));
    overlay_now(f->n, (5 << 20) - 8, out, sizeof(out));
    assert_int_equal(out[0], 'e');
    assert_int_equal(out[8], 'f');
    assert_false(cl_cache_overlaps(f->n, 0, 4 << 20));

    /* A write overlapping two extents still merges them, whatever the
     * length. */
    memset(b, 'z', 1 << 20);
    cl_cache_write(&f->c, f->n, 0, b, 1 << 20, true);
    cl_cache_write(&f->c, f->n, 1 << 20, b, 1 << 20, true);
    cl_cache_write(&f->c, f->n, 2 << 20, b, 1 << 20, true);
    cl_cache_write(&f->c, f->n, 3 << 20, b, 1 << 20, true);
    cl_cache_write(&f->c, f->n, 4 << 20, b, 1 << 20, true);
    assert_int_equal(f->n->next, 2);
    cl_cache_write(&f->c, f->n, (4 << 20) - 10, b, 20, true);
    assert_int_equal(f->n->next, 1);
    assert_int_equal(f->n->ext[0].len, 5 << 20);

    cl_cache_release(k, f->n, SIZE_MAX, 0);
    cl_cache_inode_free(k, f->n);
    assert_int_equal(cl_cache_dirty(k), 0);
    f->c.cache = was;
    cl_cache_free(k);
    free(b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int test_cl_cache(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cl_cache_write_sequential_coalesces),
        T(test_cl_cache_write_overwrite_sent_once),
        T(test_cl_cache_write_bridges_extents),
        T(test_cl_cache_cut_drops_tail),
        T(test_cl_cache_take_and_release),
        T(test_cl_cache_streams_in_batches),
        T(test_cl_cache_write_nowait_over_dirty_max),
        T(test_cl_cache_overlaps_kept_and_flushing),
        T(test_cl_cache_many_extents_scattered),
        T(test_cl_cb_open_keeps_same_version),
    };
    return cmocka_run_group_tests_name("cl_cache", tests, NULL, NULL);
}
