/* Tests for client/cl_file.c against a fake metad and fake chunk servers
 * (fake_cluster.h): delayed writes and their errors (reported once, by the
 * next flush), the deferred CHUNK_WRITE_END kept when metad refuses it
 * and the time it carries (the last write's; none after a time set),
 * and a read past the size known, which asks metad once a break said the
 * size may have changed (docs/caching.md §3, "Files held open").
 */
#include "fake_cluster.h"
#include "fault_inject.h"

#include "cl_internal.h"

#include <time.h>

static int setup_writeback(void **state)
{
    return fk_fix_setup(state, CL_CACHE_WRITEBACK);
}

static int setup_writethrough(void **state)
{
    return fk_fix_setup(state, CL_CACHE_WRITETHROUGH);
}

/* ---- Delayed writes --------------------------------------------------- */

static void test_cl_file_delayed_write_goes_at_flush(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[5000], got[5000];

    fk_fill(b, sizeof(b), 1);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    assert_int_equal(fk_seen(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ), 0);
    /* Our own delayed bytes read back before they are written. */
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                     (int)sizeof(got));
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    fk_copy(f->fk, 2, 0, 0, got, sizeof(got));
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(FK_GET(f->fk, f->fk->size), sizeof(b));
    assert_int_equal(cl_client_dirty(f->c), 0);
}

/* A write-back that fails is reported by the next flush, once. */
static void test_cl_file_delayed_write_error_reported_once(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 2);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    /* The fast path's try, then recover()'s. */
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ, -ENOSPC, 2);
    assert_int_equal(cl_file_flush(f->c, f->n), -ENOSPC);
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    assert_int_equal(cl_client_dirty(f->c), 0);
    /* Nothing reached metad as written. */
    assert_int_equal(FK_GET(f->fk, f->fk->size), 0);
}

/* Out of memory when writing delayed writes back: the flush fails with
 * ENOMEM, nothing is reported to metad as written, and the error is not
 * reported twice. */
static void test_cl_file_writeback_enomem(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 3);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_CALLOC, .nth = 1, .this_thread = true});
    assert_int_equal(cl_file_flush(f->c, f->n), -ENOMEM);
    assert_int_equal(fault_inject_hits(FAULT_CALLOC), 1);
    fault_inject_clear();
    assert_int_equal(fk_seen(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ), 0);
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    assert_int_equal(cl_client_dirty(f->c), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->size), 0);
    /* The same one allocation later, for the window of pieces. */
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    fault_inject_set(&(struct fault_rule){
        .call = FAULT_CALLOC, .nth = 2, .this_thread = true});
    assert_int_equal(cl_file_flush(f->c, f->n), -ENOMEM);
    assert_int_equal(fault_inject_hits(FAULT_CALLOC), 1);
    fault_inject_clear();
    assert_int_equal(fk_seen(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->size), 0);
}

/* An O_SYNC write first writes back older delayed writes of the file. */
static void test_cl_file_sync_write_after_delayed(void **state)
{
    struct fk_fix *f = *state;
    uint8_t a[200], b[100], got[200];

    fk_fill(a, sizeof(a), 3);
    fk_fill(b, sizeof(b), 4);
    assert_int_equal(cl_file_write(f->c, f->n, 0, a, sizeof(a), false),
                     (int)sizeof(a));
    assert_int_equal(cl_file_write(f->c, f->n, 50, b, sizeof(b), true),
                     (int)sizeof(b));
    memcpy(a + 50, b, sizeof(b));
    fk_copy(f->fk, 3, 0, 0, got, sizeof(got));
    assert_memory_equal(got, a, sizeof(a));
    assert_true(FK_GET(f->fk, f->fk->rep[3][0].syncs) >= 1);
}

/* ---- CHUNK_WRITE_END -------------------------------------------------- */

/* metad refuses the size report: the sync says so and the report stays
 * owed, so the next sync sends it. */
static void test_cl_file_write_end_refused_stays_owed(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[3000];

    fk_fill(b, sizeof(b), 5);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ, -EIO, 1);
    assert_int_equal(cl_file_sync(f->c, f->n), -EIO);
    assert_int_equal(FK_GET(f->fk, f->fk->size), 0);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->size), sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ), 2);
}

/* A delayed write's WRITE_END, sent later, carries the write's time. */
static void test_cl_file_write_end_carries_write_time(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[3000];

    fk_fill(b, sizeof(b), 6);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    int64_t t = cl_inode_wmtime(f->n);
    assert_true(t > 0);
    struct timespec ms = {.tv_nsec = 5000000};
    nanosleep(&ms, NULL);
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->end_mtime), t);
}

/* Before a SETATTR of the mtime the delayed writes and their WRITE_END
 * go; after it the write's time no longer stands, and the close owes
 * nothing that could bring it back. */
static void test_cl_file_mtime_prepare_and_done(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[3000];

    fk_fill(b, sizeof(b), 7);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    cl_file_mtime_prepare(f->c, f->n);
    assert_int_equal(cl_client_dirty(f->c), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->size), sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ), 1);
    cl_file_mtime_done(f->n);
    assert_int_equal(cl_inode_wmtime(f->n), 0);
    assert_int_equal(cl_file_flush(f->c, f->n), 0);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ), 1);
}

/* ESTALE: the slot holds another chunk now; locate it and report again. */
static void test_cl_file_write_end_stale_relocates(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 6);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    unsigned locates = fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ, -ESTALE, 1);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_END_REQ), 2);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ),
                     locates + 1);
    assert_int_equal(FK_GET(f->fk, f->fk->size), sizeof(b));
}

/* ---- Reads past the size known ---------------------------------------- */

/* Another client extends the file while ours has it open: the size our
 * client knows is the one it opened with, until a break says it changed;
 * then a read past it asks metad, once. */
static void test_cl_file_read_past_size_after_break(void **state)
{
    struct fk_fix *f = *state;
    struct cl_client *c2;
    struct cl_inode *n2;
    uint8_t b[5000], got[8192];

    fk_fill(b, sizeof(b), 7);
    fk_client_open(f->fk, CL_CACHE_WRITETHROUGH, true, 0, &c2, &n2);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, 100, false), 100);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    cl_inode_grow(n2, 100);
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), 100);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    /* No break yet: the promise says nothing changed. */
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), 100);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 0);

    struct proto_callback_break_req brk = {
        .ino = FK_INO, .flags = PROTO_CB_ATTR | PROTO_CB_DATA};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_callback_break_req_encode(&w, &brk);
    cl_cb_break(c2, NULL, 0, w.p, w.len);
    proto_wbuf_free(&w);
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), (int)sizeof(b));
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), (int)sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 1);
    cl_inode_put(c2, n2);
    cl_client_close(c2);
}

/* Without callbacks nothing says the size changed: a read past it asks
 * metad, at most once per CL_SIZE_CHECK_MS; a failed GETATTR keeps the
 * size known. */
static void test_cl_file_read_past_size_without_callbacks(void **state)
{
    struct fk_fix *f = *state;
    struct cl_client *c2;
    struct cl_inode *n2;
    uint8_t b[4000], got[8192];

    fk_fill(b, sizeof(b), 8);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     (int)sizeof(b));
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    fk_client_open(f->fk, CL_CACHE_WRITETHROUGH, false, 10, &c2, &n2);
    fk_fail(f->fk, 0, PROTO_MSG_GETATTR_REQ, -EIO, 1);
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), 10);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 1);
    /* Within CL_SIZE_CHECK_MS: not asked again. */
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), 10);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 1);
    usleep((CL_SIZE_CHECK_MS + 50) * 1000);
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), (int)sizeof(b));
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 2);
    /* A read inside the size known asks nothing. */
    assert_int_equal(cl_file_read(c2, n2, 0, 100, got), 100);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 2);
    cl_inode_put(c2, n2);
    cl_client_close(c2);

    /* A size metad just reported (the mount's OPEN) is not asked again
     * at once: a cold read of a small file costs no second GETATTR. */
    fk_client_open(f->fk, CL_CACHE_WRITETHROUGH, false, 0, &c2, &n2);
    assert_int_equal(cl_inode_grow_seen(n2, 100), 100);
    assert_int_equal(cl_file_read(c2, n2, 0, sizeof(got), got), 100);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_GETATTR_REQ), 2);
    cl_inode_put(c2, n2);
    cl_client_close(c2);
}

int test_cl_file(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_cl_file_delayed_write_goes_at_flush, setup_writeback,
            fk_fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_file_delayed_write_error_reported_once, setup_writeback,
            fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_writeback_enomem,
                                        setup_writeback, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_sync_write_after_delayed,
                                        setup_writeback, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_file_write_end_refused_stays_owed, setup_writethrough,
            fk_fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_file_write_end_carries_write_time, setup_writeback,
            fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_mtime_prepare_and_done,
                                        setup_writeback, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_write_end_stale_relocates,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(test_cl_file_read_past_size_after_break,
                                        setup_writethrough, fk_fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_cl_file_read_past_size_without_callbacks, setup_writethrough,
            fk_fix_teardown),
    };
    return cmocka_run_group_tests_name("cl_file", tests, NULL, NULL);
}
