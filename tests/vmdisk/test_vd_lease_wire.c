/* Tests for vmdisk/vd_lease.c over the wire: the lease table on the
 * client library (vd_leases_new, its IMAGE_LEASE calls and IMAGE_LEASE_WAIT
 * long polls) against the fake metad and chunk servers of
 * tests/client/fake_cluster.h, where test_vd_lease.c drives the table
 * through a fake struct vd_lease_io.  Here: metad's errors at open, a TAKE
 * that times out, and a recall or loss heard through a real long poll,
 * the recall's flush reaching (or failing on) the chunk servers.
 */
#include "../client/fake_cluster.h"

#include <time.h>

#include "vd_lease.h"

struct lfix {
    struct fk_fix base;
    struct vd_leases *ls;
    unsigned drops; /* the drop hook's calls */
    uint64_t dropped;
};

static void on_drop(void *arg, uint64_t ino)
{
    struct lfix *f = arg;
    __atomic_add_fetch(&f->drops, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->dropped, ino, __ATOMIC_SEQ_CST);
}

static int setup(void **state)
{
    struct lfix *f = calloc(1, sizeof(*f));
    void *base;
    assert_non_null(f);
    fk_fix_setup(&base, CL_CACHE_WRITETHROUGH);
    f->base = *(struct fk_fix *)base;
    free(base);
    struct vd_lease_hooks h = {.drop = on_drop, .arg = f};
    assert_int_equal(vd_leases_new(f->base.c, &h, &f->ls), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct lfix *f = *state;
    vd_leases_free(f->ls);
    cl_inode_put(f->base.c, f->base.n);
    cl_client_close(f->base.c);
    fk_stop(f->base.fk);
    free(f);
    return 0;
}

static void set_result(struct fake *fk, uint32_t result)
{
    fk_lock(fk);
    fk->lease_result = result;
    fk_unlock(fk);
}

static unsigned ops(struct fake *fk, uint32_t op)
{
    return FK_GET(fk, fk->lease_ops[op]);
}

/* Wait (at most 5 s) until the fake has seen @n lease requests @op: the
 * lease leaves HELD before its RELEASE goes (vd_lease.c, give_up()). */
static void wait_ops(struct fake *fk, uint32_t op, unsigned n)
{
    for (int i = 0; i < 500 && ops(fk, op) < n; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(ops(fk, op), n);
}

/* Wait (at most 5 s) until @l is no longer held. */
static void wait_not_held(struct lfix *f, struct vd_lease *l)
{
    for (int i = 0; i < 500 && vd_lease_held(f->ls, l); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_false(vd_lease_held(f->ls, l));
}

static void test_vd_lease_wire_open_errors(void **state)
{
    struct lfix *f = *state;
    struct vd_lease *l = NULL;

    fk_fail(f->base.fk, 0, PROTO_MSG_IMAGE_LEASE_REQ, -EACCES, 1);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), -EACCES);
    /* An answer that is neither granted, standby nor busy. */
    set_result(f->base.fk, PROTO_LEASE_FREE);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), -EIO);
    assert_null(l);
}

/* TAKE may time out while metad waits for the old holder: it is repeated,
 * a few times, then the write fails and the next one tries again. */
static void test_vd_lease_wire_standby_take_times_out(void **state)
{
    struct lfix *f = *state;
    struct vd_lease *l;

    set_result(f->base.fk, PROTO_LEASE_STANDBY);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), 0);
    fk_fail(f->base.fk, 0, PROTO_MSG_IMAGE_LEASE_REQ, -ETIMEDOUT, 4);
    assert_int_equal(vd_lease_begin(f->ls, l, true), -ETIMEDOUT);
    assert_int_equal(ops(f->base.fk, PROTO_LEASE_TAKE), 0); /* all failed */
    fk_fail(f->base.fk, 0, PROTO_MSG_IMAGE_LEASE_REQ, -EIO, 1);
    assert_int_equal(vd_lease_begin(f->ls, l, true), -EIO);
    set_result(f->base.fk, PROTO_LEASE_GRANTED);
    assert_int_equal(vd_lease_begin(f->ls, l, true), 0);
    vd_lease_end(l);
    vd_lease_close(f->ls, l);
}

/* A recall: what was written is made durable, the lease given back, and
 * writes refused from then on; a later NBD flush learns the flush went
 * well. */
static void test_vd_lease_wire_recall_flushes(void **state)
{
    struct lfix *f = *state;
    struct fake *fk = f->base.fk;
    struct vd_lease *l;
    uint8_t b[4096];

    set_result(fk, PROTO_LEASE_GRANTED);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), 0);
    fk_fill(b, sizeof(b), 1);
    assert_int_equal(vd_lease_begin(f->ls, l, true), 0);
    assert_int_equal(
        cl_file_write(f->base.c, f->base.n, 0, b, sizeof(b), false),
        (int)sizeof(b));
    vd_lease_end(l);
    fk_lease_event(fk, FK_INO, PROTO_LEASE_RECALL);
    wait_not_held(f, l);
    fk_lease_event(fk, 0, 0);
    assert_int_equal(vd_lease_lost_status(l), 0);
    assert_int_equal(FK_GET(fk, fk->rep[1][0].syncs), 1);
    assert_int_equal(FK_GET(fk, fk->size), sizeof(b));
    wait_ops(fk, PROTO_LEASE_RELEASE, 1);
    assert_int_equal(vd_lease_begin(f->ls, l, true), -EROFS);
    assert_true(__atomic_load_n(&f->drops, __ATOMIC_SEQ_CST) >= 1);
    /* Reopening makes a new lease (invariant 2). */
    struct vd_lease *l2;
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l2), 0);
    assert_ptr_not_equal(l2, l);
    assert_true(vd_lease_held(f->ls, l2));
    vd_lease_close(f->ls, l2);
    vd_lease_close(f->ls, l);
    assert_int_equal(ops(fk, PROTO_LEASE_RELEASE), 2);
}

/* The recall's flush fails: the error is kept for the next NBD flush. */
static void test_vd_lease_wire_recall_flush_fails(void **state)
{
    struct lfix *f = *state;
    struct fake *fk = f->base.fk;
    struct vd_lease *l;
    uint8_t b[100];

    set_result(fk, PROTO_LEASE_GRANTED);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), 0);
    fk_fill(b, sizeof(b), 2);
    assert_int_equal(
        cl_file_write(f->base.c, f->base.n, 0, b, sizeof(b), false),
        (int)sizeof(b));
    fk_fail(fk, 2, PROTO_MSG_CHUNK_SYNC_REQ, -ENOSPC, 1);
    fk_lease_event(fk, FK_INO, PROTO_LEASE_RECALL);
    wait_not_held(f, l);
    fk_lease_event(fk, 0, 0);
    assert_int_equal(vd_lease_lost_status(l), -ENOSPC);
    wait_ops(fk, PROTO_LEASE_RELEASE, 1);
    vd_lease_close(f->ls, l);
}

/* LOST: metad moved the lease without asking (our session expired):
 * nothing is flushed or released, and what was not flushed may be lost. */
static void test_vd_lease_wire_lost(void **state)
{
    struct lfix *f = *state;
    struct fake *fk = f->base.fk;
    struct vd_lease *l;

    set_result(fk, PROTO_LEASE_GRANTED);
    assert_int_equal(vd_lease_open(f->ls, FK_INO, "img", NULL, 0, &l), 0);
    fk_lease_event(fk, FK_INO, PROTO_LEASE_LOST);
    wait_not_held(f, l);
    fk_lease_event(fk, 0, 0);
    assert_int_equal(vd_lease_lost_status(l), -EIO);
    assert_int_equal(vd_lease_begin(f->ls, l, true), -EROFS);
    vd_lease_close(f->ls, l);
    assert_int_equal(ops(fk, PROTO_LEASE_RELEASE), 0);
    assert_int_equal(fk_seen(fk, 1, PROTO_MSG_CHUNK_SYNC_REQ), 0);
}

int test_vd_lease_wire(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_vd_lease_wire_open_errors),
        T(test_vd_lease_wire_standby_take_times_out),
        T(test_vd_lease_wire_recall_flushes),
        T(test_vd_lease_wire_recall_flush_fails),
        T(test_vd_lease_wire_lost),
    };
#undef T
    return cmocka_run_group_tests_name("vd_lease_wire", tests, NULL, NULL);
}
