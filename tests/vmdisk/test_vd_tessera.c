/* Tests for vmdisk/vd_tessera.c, the NBD backend over Tessera, against the
 * fake metad and chunk servers of tests/client/fake_cluster.h: an export
 * name resolved (or not) to an image, a read-only snapshot exported
 * read-only, reads, writes, flushes, zeroing and block status through the
 * client library, and the errors of each reaching the NBD side.
 */
#include "../client/fake_cluster.h"

#include <time.h>

#include "vd_backend.h"

#define T_SIZE (2 * (uint64_t)PROTO_CHUNK_SIZE) /* two chunk slots */

struct tfix {
    struct fake *fk;
    struct vd_backend *be;
};

static int setup(void **state)
{
    struct tfix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->fk = fk_start();
    fk_lock(f->fk);
    f->fk->size = T_SIZE;
    f->fk->lease_result = PROTO_LEASE_GRANTED;
    fk_unlock(f->fk);
    struct vd_tessera_opts o = {.meta = f->fk->node[0].addr};
    assert_int_equal(vd_tessera_new(&o, &f->be), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct tfix *f = *state;
    vd_backend_free(f->be);
    fk_stop(f->fk);
    free(f);
    return 0;
}

static int img_open(struct tfix *f, const char *name, bool readonly,
                    struct vd_image **img, char *why, size_t why_len)
{
    return f->be->ops->open(f->be->ctx, name, readonly, img, why, why_len);
}

static struct vd_image *open_ok(struct tfix *f, const char *name)
{
    struct vd_image *img = NULL;
    char why[256] = "";
    assert_int_equal(img_open(f, name, false, &img, why, sizeof(why)), 0);
    assert_non_null(img);
    return img;
}

static void test_vd_tessera_write_read_flush(void **state)
{
    struct tfix *f = *state;
    const struct vd_backend_ops *ops = f->be->ops;
    uint8_t b[8192], got[8192];

    struct vd_image *img = open_ok(f, "/img");
    assert_false(img->readonly);
    assert_int_equal(ops->size(img), (int64_t)T_SIZE);
    fk_fill(b, sizeof(b), 1);
    assert_int_equal(ops->pwrite(img, b, sizeof(b), 4096, false), 0);
    assert_int_equal(ops->pread(img, got, sizeof(got), 4096), 0);
    assert_memory_equal(got, b, sizeof(b));
    assert_int_equal(ops->flush(img), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->rep[2][0].syncs), 1);
    /* A FUA write is durable on every replica when it returns. */
    assert_int_equal(ops->pwrite(img, b, 512, 0, true), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->rep[3][0].syncs), 2);
    ops->close(img);
    assert_int_equal(FK_GET(f->fk, f->fk->lease_ops[PROTO_LEASE_RELEASE]), 1);
}

static void test_vd_tessera_open_errors(void **state)
{
    struct tfix *f = *state;
    struct vd_image *img = NULL;
    char why[256] = "";

    assert_int_equal(img_open(f, "missing", false, &img, why, sizeof(why)),
                     -ENOENT);
    /* A path through a regular file. */
    assert_int_equal(img_open(f, "img/x", false, &img, why, sizeof(why)),
                     -ENOENT);
    assert_int_equal(img_open(f, "./img", false, &img, why, sizeof(why)),
                     -EINVAL);
    assert_int_equal(img_open(f, "/", false, &img, why, sizeof(why)), -EISDIR);
    assert_non_null(strstr(why, "is a directory"));
    fk_fail(f->fk, 0, PROTO_MSG_GETATTR_REQ, -EIO, 1);
    assert_int_equal(img_open(f, "img", false, &img, why, sizeof(why)), -EIO);
    fk_fail(f->fk, 0, PROTO_MSG_OPEN_REQ, -EACCES, 1);
    assert_int_equal(img_open(f, "img", false, &img, why, sizeof(why)),
                     -EACCES);
    fk_lock(f->fk);
    f->fk->lease_result = PROTO_LEASE_BUSY;
    fk_unlock(f->fk);
    assert_int_equal(img_open(f, "img", false, &img, why, sizeof(why)), -EBUSY);
    assert_non_null(strstr(why, "open for writing by other"));
    assert_null(img);
    /* Read-only needs no lease. */
    assert_int_equal(img_open(f, "img", true, &img, why, sizeof(why)), 0);
    assert_true(img->readonly);
    assert_int_equal(f->be->ops->pwrite(img, why, 10, 0, false), -EROFS);
    assert_int_equal(f->be->ops->flush(img), 0);
    f->be->ops->close(img);
}

/* OPEN for writing says EROFS: a snapshot, exported read-only. */
static void test_vd_tessera_snapshot_read_only(void **state)
{
    struct tfix *f = *state;
    uint8_t b[100];

    struct vd_image *img = open_ok(f, "snap");
    assert_true(img->readonly);
    assert_int_equal(f->be->ops->pwrite(img, b, sizeof(b), 0, false), -EROFS);
    assert_int_equal(f->be->ops->pread(img, b, sizeof(b), 0), 0);
    f->be->ops->close(img);
    assert_int_equal(FK_GET(f->fk, f->fk->lease_ops[PROTO_LEASE_ACQUIRE]), 0);
}

static void test_vd_tessera_io_errors(void **state)
{
    struct tfix *f = *state;
    const struct vd_backend_ops *ops = f->be->ops;
    uint8_t b[4096];

    struct vd_image *img = open_ok(f, "img");
    fk_fill(b, sizeof(b), 2);
    assert_int_equal(ops->pwrite(img, b, sizeof(b), 0, false), 0);
    fk_fail(f->fk, 1, PROTO_MSG_CHUNK_WRITE_REQ, -ENOSPC, 2);
    assert_int_equal(ops->pwrite(img, b, sizeof(b), 0, false), -ENOSPC);
    for (int s = 1; s <= 3; s++)
        fk_fail(f->fk, s, PROTO_MSG_CHUNK_READ_REQ, -EIO, 2);
    assert_int_equal(ops->pread(img, b, sizeof(b), 0), -EIO);
    fk_fail(f->fk, 2, PROTO_MSG_CHUNK_SYNC_REQ, -EDQUOT, 1);
    assert_int_equal(ops->flush(img), -EDQUOT);
    assert_int_equal(ops->flush(img), 0);
    ops->close(img);
}

static int collect(void *arg, uint64_t length, uint32_t flags)
{
    uint64_t *v = arg;
    size_t n = v[0]++;
    v[1 + 2 * n] = length;
    v[2 + 2 * n] = flags;
    return 0;
}

static void test_vd_tessera_zero_trim_status(void **state)
{
    struct tfix *f = *state;
    const struct vd_backend_ops *ops = f->be->ops;
    uint8_t b[4096], got[4096], zeros[4096] = {0};
    uint64_t ext[9] = {0};

    struct vd_image *img = open_ok(f, "img");
    assert_int_equal(ops->block_status(img, T_SIZE, 0, collect, ext), 0);
    assert_int_equal(ext[0], 1); /* one hole */
    assert_int_equal(ext[1], T_SIZE);
    assert_int_equal(ext[2], VD_EXTENT_HOLE | VD_EXTENT_ZERO);

    fk_fill(b, sizeof(b), 3);
    assert_int_equal(ops->pwrite(img, b, sizeof(b), 0, false), 0);
    memset(ext, 0, sizeof(ext));
    assert_int_equal(ops->block_status(img, T_SIZE, 0, collect, ext), 0);
    assert_int_equal(ext[0], 2); /* data, then the hole */
    assert_int_equal(ext[1], PROTO_CHUNK_SIZE);
    assert_int_equal(ext[2], 0);

    /* Zeroing inside the chunk writes zeros; the fast-only form refuses. */
    assert_int_equal(ops->zero(img, 1000, 1000, false, true), -ENOTSUP);
    assert_int_equal(ops->zero(img, 1000, 1000, false, false), 0);
    assert_int_equal(ops->pread(img, got, sizeof(got), 0), 0);
    memset(b + 1000, 0, 1000);
    assert_memory_equal(got, b, sizeof(b));
    /* Trimming to the chunk's end cuts it off on every replica. */
    assert_int_equal(ops->trim(img, PROTO_CHUNK_SIZE - 2048, 2048, true), 0);
    for (int s = 1; s <= 3; s++)
        assert_int_equal(fk_seen(f->fk, s, PROTO_MSG_CHUNK_TRUNCATE_REQ), 1);
    assert_int_equal(ops->pread(img, got, sizeof(got), 0), 0);
    assert_memory_equal(got, b, 2048);
    assert_memory_equal(got + 2048, zeros, sizeof(got) - 2048);
    fk_fail(f->fk, 0, PROTO_MSG_CHUNK_LOCATE_REQ, -EIO, 1);
    assert_int_equal(
        ops->block_status(img, T_SIZE, PROTO_CHUNK_SIZE, collect, ext), -EIO);
    ops->close(img);
}

/* After a recall the image refuses writes, and a flush reports how the
 * hand-over's flush went. */
static void test_vd_tessera_after_recall(void **state)
{
    struct tfix *f = *state;
    const struct vd_backend_ops *ops = f->be->ops;
    uint8_t b[512];

    struct vd_image *img = open_ok(f, "img");
    fk_fill(b, sizeof(b), 4);
    assert_int_equal(ops->pwrite(img, b, sizeof(b), 0, false), 0);
    fk_lease_event(f->fk, FK_INO, PROTO_LEASE_RECALL);
    int rc = 0;
    for (int i = 0; i < 500 && (rc = ops->pwrite(img, b, 1, 0, false)) == 0;
         i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fk_lease_event(f->fk, 0, 0);
    assert_int_equal(rc, -EROFS);
    assert_int_equal(ops->flush(img), 0);
    assert_int_equal(FK_GET(f->fk, f->fk->size), T_SIZE);
    ops->close(img);
    /* The recall gives the lease back itself, just after refusing writes;
     * the close sends no second RELEASE. */
    unsigned released = 0;
    for (int i = 0; i < 500 && !released; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        released = FK_GET(f->fk, f->fk->lease_ops[PROTO_LEASE_RELEASE]);
    }
    assert_int_equal(released, 1);
}

int test_vd_tessera(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_vd_tessera_write_read_flush),   T(test_vd_tessera_open_errors),
        T(test_vd_tessera_snapshot_read_only), T(test_vd_tessera_io_errors),
        T(test_vd_tessera_zero_trim_status),   T(test_vd_tessera_after_recall),
    };
#undef T
    return cmocka_run_group_tests_name("vd_tessera", tests, NULL, NULL);
}
