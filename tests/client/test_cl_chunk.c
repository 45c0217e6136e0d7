/* Tests for client/cl_chunk.c against a fake metad and fake chunk servers
 * (fake_cluster.h): reads that fail over and report a damaged copy, and
 * the recovery of writes, syncs and truncates from a failed replica, a
 * moved version, errors no new chain can fix and a metad that cannot
 * grant the lease.  Every error branch of recover() runs here.
 */
#include "fake_cluster.h"

#include "cl_internal.h"

static int setup(void **state)
{
    return fk_fix_setup(state, CL_CACHE_WRITETHROUGH);
}

/* The bytes server @s keeps of chunk slot 0 equal @want at @off. */
static void assert_replica(struct fake *fk, int s, uint32_t off,
                           const uint8_t *want, size_t len)
{
    uint8_t *got = malloc(len);
    assert_non_null(got);
    fk_copy(fk, s, 0, off, got, len);
    assert_memory_equal(got, want, len);
    free(got);
}

static void write_ok(struct fk_fix *f, uint32_t off, const uint8_t *buf,
                     size_t len)
{
    assert_int_equal(cl_file_write(f->c, f->n, off, buf, len, false), (int)len);
}

/* ---- Writes ---------------------------------------------------------- */

static void test_cl_chunk_write_first_allocates_chain(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[4096];

    fk_fill(b, sizeof(b), 1);
    write_ok(f, 100, b, sizeof(b));
    for (int s = 1; s <= 3; s++)
        assert_replica(f->fk, s, 100, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 1);
    /* The lease is kept: a second write asks metad nothing. */
    write_ok(f, 0, b, 10);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 0);
}

/* A chain member went away: the write fails on the chain, the client
 * finds the server that does not answer, reports it, and writes again on
 * the chain metad gives without it. */
static void test_cl_chunk_write_reports_down_replica(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[1000];

    fk_fill(b, sizeof(b), 2);
    write_ok(f, 0, b, sizeof(b));
    fk_down(f->fk, 2);
    fk_fill(b, sizeof(b), 3);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->last_reported), 2);
    assert_int_equal(FK_GET(f->fk, f->fk->slot[0].n), 2);
    assert_int_equal(FK_GET(f->fk, f->fk->slot[0].version), 2);
    assert_replica(f->fk, 1, 0, b, sizeof(b));
    assert_replica(f->fk, 3, 0, b, sizeof(b));
}

/* EOLDVER from the chain: the lease was out of date (metad bumped the
 * version); ask again without blaming anyone. */
static void test_cl_chunk_write_old_version_asks_again(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 4);
    write_ok(f, 0, b, sizeof(b));
    /* The first failure goes to the fast path (cl_fast.c), which hands
     * the piece to the blocking path: the second one is recover()'s. */
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ, FK_EOLDVER, 2);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 2);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 0);
}

/* An error no new chain fixes goes to the caller at once. */
static void test_cl_chunk_write_final_error_at_once(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 5);
    write_ok(f, 0, b, sizeof(b));
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ, -ENOSPC, 2);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     -ENOSPC);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 0);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 1);
    /* Nothing was lost: the next write goes through. */
    write_ok(f, 0, b, sizeof(b));
}

/* metad could not bump (EIO, EAGAIN): back off and ask again. */
static void test_cl_chunk_write_begin_retried(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 6);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, -EAGAIN, 2);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 3);
    assert_replica(f->fk, 1, 0, b, sizeof(b));
}

static void test_cl_chunk_write_begin_final(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 7);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, -EDQUOT, 1);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     -EDQUOT);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, -ENOENT, 1);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false),
                     -ENOENT);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ), 2);
}

/* A chain that keeps failing: CL_RECOVER_TRIES rounds, each reporting
 * the head (every server answers a handshake), then the error. */
static void test_cl_chunk_write_gives_up(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 8);
    write_ok(f, 0, b, sizeof(b));
    for (int s = 1; s <= 3; s++)
        fk_fail(f->fk, s, PROTO_MSG_CHUNK_WRITE_REQ, -EIO, 100);
    assert_int_equal(cl_file_write(f->c, f->n, 0, b, sizeof(b), false), -EIO);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), CL_RECOVER_TRIES);
}

/* A report metad does not take is retried after a pause; the write still
 * gets through once the chain works. */
static void test_cl_chunk_write_report_refused(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 9);
    write_ok(f, 0, b, sizeof(b));
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ, -EIO, 2);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_REPORT_REQ, -EIO, 1);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_REPORT_REQ), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 0);
}

/* ---- Sync and truncate ------------------------------------------------ */

static void test_cl_chunk_sync_reaches_every_replica(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 10);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    for (int s = 1; s <= 3; s++)
        assert_int_equal(FK_GET(f->fk, f->fk->rep[s][0].syncs), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->size), sizeof(b));
}

/* A replica whose disk fails the sync is the one reported, not a healthy
 * head of the chain: every replica got the CHUNK_SYNC itself. */
static void test_cl_chunk_sync_failure_reports_that_replica(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 11);
    write_ok(f, 0, b, sizeof(b));
    fk_fail(f->fk, 3, PROTO_MSG_CHUNK_SYNC_REQ, -EIO, 1);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->last_reported), 3);
    assert_int_equal(FK_GET(f->fk, f->fk->slot[0].n), 2);
    assert_int_equal(FK_GET(f->fk, f->fk->rep[1][0].syncs), 2);
}

static void test_cl_chunk_sync_final_error(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 12);
    write_ok(f, 0, b, sizeof(b));
    fk_fail(f->fk, 2, PROTO_MSG_CHUNK_SYNC_REQ, -ENOSPC, 1);
    assert_int_equal(cl_file_sync(f->c, f->n), -ENOSPC);
    /* The chunk stays dirty: the next sync reaches it again. */
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->rep[2][0].syncs), 1);
}

/* Write @len bytes of pattern @seed at the start of chunk slots 0..2. */
static void write_three_chunks(struct fk_fix *f, uint8_t seed)
{
    uint8_t b[100];

    for (uint64_t i = 0; i < 3; i++) {
        fk_fill(b, sizeof(b), seed + (uint8_t)i);
        assert_int_equal(cl_file_write(f->c, f->n, i * PROTO_CHUNK_SIZE, b,
                                       sizeof(b), false),
                         (int)sizeof(b));
    }
}

/* One sync of a file with several dirty chunks syncs each of them on
 * each of its replicas, once (cl_chunk_sync_many()). */
static void test_cl_chunk_sync_many_chunks(void **state)
{
    struct fk_fix *f = *state;

    write_three_chunks(f, 20);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    for (int k = 0; k < 3; k++) {
        struct fk_slot slot;

        fk_lock(f->fk);
        slot = f->fk->slot[k];
        fk_unlock(f->fk);
        assert_int_equal(slot.n, 3);
        for (uint32_t r = 0; r < slot.n; r++)
            assert_int_equal(
                FK_GET(f->fk, f->fk->rep[slot.servers[r]][k].syncs), 1);
    }
    /* Nothing is dirty any more: a second sync sends nothing. */
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->rep[1][0].syncs), 1);
}

/* An fsync sends the size (CHUNK_WRITE_END) while its chunk syncs are in
 * flight, not after them: the fake's servers answer no sync before metad
 * has the WRITE_END, and fail one held FK_WAIT_MS. */
static void test_cl_file_sync_write_end_with_syncs(void **state)
{
    struct fk_fix *f = *state;

    write_three_chunks(f, 40);
    fk_lock(f->fk);
    f->fk->sync_after_end = true;
    fk_unlock(f->fk);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->held_timedout), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->held_released), 3 * 3);
    assert_int_equal(FK_GET(f->fk, f->fk->size), 2 * PROTO_CHUNK_SIZE + 100);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 0);
}

/* A replica that fails one of the chunks' syncs, sent together, is
 * reported and dropped from that chunk alone; the sync succeeds. */
static void test_cl_chunk_sync_many_one_fails(void **state)
{
    struct fk_fix *f = *state;
    uint32_t n = 0;

    write_three_chunks(f, 30);
    fk_fail(f->fk, 3, PROTO_MSG_CHUNK_SYNC_REQ, -EIO, 1);
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_write), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->last_reported), 3);
    for (int k = 0; k < 3; k++)
        n += FK_GET(f->fk, f->fk->slot[k].n);
    assert_int_equal(n, 3 + 3 + 2);
}

static void test_cl_chunk_truncate_zeroes_tail(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[4096], z[96] = {0};

    fk_fill(b, sizeof(b), 13);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(cl_file_sync(f->c, f->n), 0);
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_TRUNCATE_REQ, FK_EOLDVER, 1);
    assert_int_equal(
        cl_file_truncate_prepare(f->c, FK_INO, f->n, sizeof(b), 4000), 0);
    for (int s = 1; s <= 3; s++) {
        assert_replica(f->fk, s, 0, b, 4000);
        assert_replica(f->fk, s, 4000, z, sizeof(z));
    }
    fk_fail(f->fk, 2, PROTO_MSG_CHUNK_TRUNCATE_REQ, -EROFS, 1);
    assert_int_equal(cl_file_truncate_prepare(f->c, FK_INO, NULL, 4000, 1000),
                     -EROFS);
}

/* ---- Reads ------------------------------------------------------------ */

static void test_cl_chunk_read_hole_is_zeros(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[512];

    cl_inode_set_size(f->n, 3 * (uint64_t)PROTO_CHUNK_SIZE);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(cl_file_read(f->c, f->n, PROTO_CHUNK_SIZE, sizeof(b), b),
                     (int)sizeof(b));
    for (size_t i = 0; i < sizeof(b); i++)
        assert_int_equal(b[i], 0);
    for (int s = 1; s <= 3; s++)
        assert_int_equal(fk_seen(f->fk, s, PROTO_MSG_CHUNK_READ_REQ), 0);
}

/* A damaged copy (ECHECKSUM) is reported and the next replica read. */
static void test_cl_chunk_read_fails_over_and_reports(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[3000], got[3000];

    fk_fill(b, sizeof(b), 14);
    write_ok(f, 0, b, sizeof(b));
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_READ_REQ, FK_ECHECKSUM, 1);
    fk_fail(f->fk, 2, PROTO_MSG_CHUNK_READ_REQ, -EIO, 1);
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                     (int)sizeof(got));
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(fk_seen(f->fk, 3, PROTO_MSG_CHUNK_READ_REQ), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->reports_checksum), 1);
    assert_int_equal(FK_GET(f->fk, f->fk->last_reported), 1);
}

/* Every replica failed: locate again once, go round again, then the
 * error. */
static void test_cl_chunk_read_every_replica_fails(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 15);
    write_ok(f, 0, b, sizeof(b));
    unsigned locates = fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ);
    for (int s = 1; s <= 3; s++)
        fk_fail(f->fk, s, PROTO_MSG_CHUNK_READ_REQ, -EIO, 2);
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(b), b), -EIO);
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ),
                     locates + 1);
    for (int s = 1; s <= 3; s++)
        assert_int_equal(fk_seen(f->fk, s, PROTO_MSG_CHUNK_READ_REQ), 2);
    /* The faults are spent: the same read works. */
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(b), b), (int)sizeof(b));
}

/* Every replica past the version metad gives, after a new locate too:
 * metad is about to record the new version (a copy-on-write's bump), so
 * the read locates and tries again rather than failing. */
static void test_cl_chunk_read_waits_for_new_version(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100], got[100];

    fk_fill(b, sizeof(b), 16);
    write_ok(f, 0, b, sizeof(b));
    unsigned locates = fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ);
    for (int s = 1; s <= 3; s++)
        fk_fail(f->fk, s, PROTO_MSG_CHUNK_READ_REQ, FK_EOLDVER, 3);
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                     (int)sizeof(got));
    assert_memory_equal(got, b, sizeof(b));
    assert_true(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ) >= locates + 3);
}

/* ... for a bounded time: a version metad never catches up with fails the
 * read, after about CL_STALE_WAIT_MS. */
static void test_cl_chunk_read_stale_bounded(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    fk_fill(b, sizeof(b), 17);
    write_ok(f, 0, b, sizeof(b));
    for (int s = 1; s <= 3; s++)
        fk_fail(f->fk, s, PROTO_MSG_CHUNK_READ_REQ, FK_EOLDVER, 100000);
    uint64_t t0 = cl_now_ms();
    assert_true(cl_file_read(f->c, f->n, 0, sizeof(b), b) < 0);
    assert_true(cl_now_ms() - t0 >= CL_STALE_WAIT_MS);
}

/* A down server is tried last. */
static void test_cl_chunk_read_skips_down_server(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100], got[100];

    fk_fill(b, sizeof(b), 16);
    write_ok(f, 0, b, sizeof(b));
    fk_down(f->fk, 1);
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                     (int)sizeof(got));
    assert_memory_equal(got, b, sizeof(b));
}

/* A replica metad dropped from the chunk (after a failure, by a drain)
 * while the client held its location: once a read failed on it, the
 * location is asked for again within CL_LOC_SUSPECT_TTL_MS (not the 60 s
 * of CL_LOC_TTL_MS), once, and the replica is not tried any more. */
static void test_cl_chunk_read_failure_refreshes_location(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100], got[100];
    uint32_t dropped;

    fk_fill(b, sizeof(b), 17);
    write_ok(f, 0, b, sizeof(b));
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                     (int)sizeof(got));
    fk_lock(f->fk);
    struct fk_slot *s = &f->fk->slot[0];
    dropped = s->servers[0];
    memmove(s->servers, s->servers + 1, (s->n - 1) * sizeof(s->servers[0]));
    s->n--;
    fk_unlock(f->fk);
    fk_fail(f->fk, (int)dropped, PROTO_MSG_CHUNK_READ_REQ, -ENOENT, 100);
    unsigned locates = fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(got), got),
                         (int)sizeof(got));
        assert_memory_equal(got, b, sizeof(b));
        if (i == 0)
            usleep((CL_LOC_SUSPECT_TTL_MS + 100) * 1000);
    }
    assert_int_equal(fk_seen(f->fk, (int)dropped, PROTO_MSG_CHUNK_READ_REQ),
                     2); /* the warm-up read and the one that failed */
    assert_int_equal(fk_seen(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ),
                     locates + 1);
}

static void test_cl_chunk_locate_error(void **state)
{
    struct fk_fix *f = *state;
    uint8_t b[100];

    cl_inode_set_size(f->n, 1000);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ, -EACCES, 1);
    assert_int_equal(cl_file_read(f->c, f->n, 0, sizeof(b), b), -EACCES);
}

int test_cl_chunk(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, fk_fix_teardown)
    const struct CMUnitTest tests[] = {
        T(test_cl_chunk_write_first_allocates_chain),
        T(test_cl_chunk_write_reports_down_replica),
        T(test_cl_chunk_write_old_version_asks_again),
        T(test_cl_chunk_write_final_error_at_once),
        T(test_cl_chunk_write_begin_retried),
        T(test_cl_chunk_write_begin_final),
        T(test_cl_chunk_write_gives_up),
        T(test_cl_chunk_write_report_refused),
        T(test_cl_chunk_sync_reaches_every_replica),
        T(test_cl_chunk_sync_failure_reports_that_replica),
        T(test_cl_chunk_sync_final_error),
    T(test_cl_chunk_sync_many_chunks),
    T(test_cl_chunk_sync_many_one_fails),
    T(test_cl_file_sync_write_end_with_syncs),
        T(test_cl_chunk_truncate_zeroes_tail),
        T(test_cl_chunk_read_hole_is_zeros),
        T(test_cl_chunk_read_fails_over_and_reports),
        T(test_cl_chunk_read_every_replica_fails),
        T(test_cl_chunk_read_waits_for_new_version),
        T(test_cl_chunk_read_stale_bounded),
        T(test_cl_chunk_read_skips_down_server),
        T(test_cl_chunk_read_failure_refreshes_location),
        T(test_cl_chunk_locate_error),
    };
#undef T
    return cmocka_run_group_tests_name("cl_chunk", tests, NULL, NULL);
}
