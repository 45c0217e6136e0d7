/* Tests for vmdisk/vd_cmd.c and vd_reply.c: the transmission phase over a
 * socketpair against the mem backend (see test_vd_util.h), and the
 * tessera:changes-since: metadata context against a fake of the backend's
 * changes operations.
 */
#include "test_vd_util.h"

static uint8_t *pattern(uint32_t len, uint8_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed + i * 7);
    return p;
}

/* A simple read of @len at @off: returns the data (free()). */
static uint8_t *read_simple(struct harness *h, uint64_t off, uint32_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    c_req(h, 0, NBD_CMD_READ, 77, off, len, NULL);
    assert_int_equal(c_simple(h, 77), 0);
    c_read(h, buf, len);
    return buf;
}

/* One BLOCK_STATUS chunk; fills up to @max (length, flags) pairs. */
static size_t block_status(struct harness *h, uint16_t flags, uint64_t off,
                           uint32_t len, uint32_t *desc, size_t max)
{
    struct chunk ch;
    size_t n;

    c_req(h, flags, NBD_CMD_BLOCK_STATUS, 55, off, len, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_BLOCK_STATUS);
    assert_true(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_true(ch.cookie == 55);
    assert_int_equal((ch.len - 4) % 8, 0);
    assert_int_equal(vd_get32(ch.data), VD_META_ALLOC_ID);
    n = (ch.len - 4) / 8;
    assert_true(n >= 1 && n <= max);
    for (size_t i = 0; i < n; i++) {
        desc[2 * i] = vd_get32(ch.data + 4 + 8 * i);
        desc[2 * i + 1] = vd_get32(ch.data + 8 + 8 * i);
    }
    free(ch.data);
    return n;
}

static void test_vd_cmd_run_write_read_simple(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t *data = pattern(100000, 3), *got;

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_WRITE, 1, 12345, 100000, data);
    assert_int_equal(c_simple(h, 1), 0);
    got = read_simple(h, 12345, 100000);
    assert_memory_equal(got, data, 100000);
    free(got);
    /* Bytes around it were never written. */
    got = read_simple(h, 12340, 5);
    assert_memory_equal(got, "\0\0\0\0\0", 5);
    free(got);
    c_req(h, 0, NBD_CMD_DISC, 2, 0, 0, NULL);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    free(data);
    harness_stop(h);
}

static void test_vd_cmd_run_read_structured(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t *data = pattern(4096, 9);
    struct chunk ch;

    (void)state;
    c_connect(h, true, false);
    c_req(h, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 1, 8192, 4096, data);
    assert_int_equal(c_simple(h, 1), 0);
    c_req(h, NBD_CMD_FLAG_DF, NBD_CMD_READ, 2, 8192, 4096, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_OFFSET_DATA);
    assert_true(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_true(ch.cookie == 2);
    assert_int_equal(ch.len, 8 + 4096);
    assert_int_equal(vd_get64(ch.data), 8192);
    assert_memory_equal(ch.data + 8, data, 4096);
    free(ch.data);
    free(data);
    harness_stop(h);
}

static void test_vd_cmd_run_flush_and_cache(void **state)
{
    struct harness *h = harness_start(false, NULL);

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_FLUSH, 3, 0, 0, NULL);
    assert_int_equal(c_simple(h, 3), 0);
    c_req(h, 0, NBD_CMD_CACHE, 4, 0, 65536, NULL);
    assert_int_equal(c_simple(h, 4), 0);
    c_req(h, 0, NBD_CMD_CACHE, 5, T_DISK_SIZE, 1, NULL);
    assert_int_equal(c_simple(h, 5), NBD_EINVAL);
    harness_stop(h);
}

static void test_vd_cmd_run_trim_reads_zero(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t *data = pattern(1 << 20, 1), *got, *zero = calloc(1, 1 << 20);
    uint32_t desc[16];

    (void)state;
    c_connect(h, true, true);
    c_req(h, 0, NBD_CMD_WRITE, 1, 0, 1 << 20, data);
    assert_int_equal(c_simple(h, 1), 0);
    assert_int_equal(block_status(h, 0, 0, 1 << 20, desc, 8), 1);
    assert_int_equal(desc[0], 1 << 20);
    assert_int_equal(desc[1], 0);
    c_req(h, NBD_CMD_FLAG_FUA, NBD_CMD_TRIM, 2, 0, 1 << 20, NULL);
    assert_int_equal(c_simple(h, 2), 0);
    assert_int_equal(block_status(h, 0, 0, 1 << 20, desc, 8), 1);
    assert_int_equal(desc[1], NBD_STATE_HOLE | NBD_STATE_ZERO);
    c_req(h, 0, NBD_CMD_READ, 3, 0, 1 << 20, NULL);
    struct chunk ch;
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_OFFSET_DATA);
    got = ch.data + 8;
    assert_memory_equal(got, zero, 1 << 20);
    free(ch.data);
    free(zero);
    free(data);
    harness_stop(h);
}

static void test_vd_cmd_run_write_zeroes(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t *data = pattern(1 << 18, 5), *got;
    uint32_t desc[16];
    size_t n;

    (void)state;
    c_connect(h, true, true);
    /* NO_HOLE keeps the range allocated. */
    c_req(h, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE_ZEROES, 1, 1 << 20, 1 << 18,
          NULL);
    assert_int_equal(c_simple(h, 1), 0);
    n = block_status(h, 0, 1 << 20, 1 << 18, desc, 8);
    assert_int_equal(n, 1);
    assert_int_equal(desc[1], 0);
    /* Without it, whole pages become holes. */
    c_req(h, 0, NBD_CMD_WRITE, 2, 2 << 20, 1 << 18, data);
    assert_int_equal(c_simple(h, 2), 0);
    c_req(h, NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES, 3,
          2 << 20, 1 << 18, NULL);
    assert_int_equal(c_simple(h, 3), 0);
    n = block_status(h, 0, 2 << 20, 1 << 18, desc, 8);
    assert_int_equal(desc[1], NBD_STATE_HOLE | NBD_STATE_ZERO);
    /* A partial page is zeroed in place. */
    c_req(h, 0, NBD_CMD_WRITE, 4, 3 << 20, 1 << 18, data);
    assert_int_equal(c_simple(h, 4), 0);
    c_req(h, 0, NBD_CMD_WRITE_ZEROES, 5, (3 << 20) + 100, 50, NULL);
    assert_int_equal(c_simple(h, 5), 0);
    c_req(h, 0, NBD_CMD_READ, 6, 3 << 20, 200, NULL);
    struct chunk ch;
    c_chunk(h, &ch);
    got = ch.data + 8;
    assert_memory_equal(got, data, 100);
    for (int i = 100; i < 150; i++)
        assert_int_equal(got[i], 0);
    assert_memory_equal(got + 150, data + 150, 50);
    free(ch.data);
    free(data);
    harness_stop(h);
}

static void test_vd_cmd_run_block_status_extents(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t *data = pattern(65536, 2);
    uint32_t desc[16];
    size_t n;

    (void)state;
    c_connect(h, true, true);
    c_req(h, 0, NBD_CMD_WRITE, 1, 65536 * 2, 65536, data);
    assert_int_equal(c_simple(h, 1), 0);
    n = block_status(h, 0, 0, 65536 * 4, desc, 8);
    assert_int_equal(n, 3);
    assert_int_equal(desc[0], 65536 * 2);
    assert_int_equal(desc[1], NBD_STATE_HOLE | NBD_STATE_ZERO);
    assert_int_equal(desc[2], 65536);
    assert_int_equal(desc[3], 0);
    assert_int_equal(desc[4], 65536);
    assert_int_equal(desc[5], NBD_STATE_HOLE | NBD_STATE_ZERO);
    /* REQ_ONE: just the first extent. */
    n = block_status(h, NBD_CMD_FLAG_REQ_ONE, 0, 65536 * 4, desc, 8);
    assert_int_equal(n, 1);
    assert_int_equal(desc[0], 65536 * 2);
    /* Never past the request, even mid-page. */
    n = block_status(h, 0, 65536 * 2 + 10, 20, desc, 8);
    assert_int_equal(n, 1);
    assert_int_equal(desc[0], 20);
    free(data);
    harness_stop(h);
}

static void test_vd_cmd_run_block_status_needs_context(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct chunk ch;

    (void)state;
    c_connect(h, true, false);
    c_req(h, 0, NBD_CMD_BLOCK_STATUS, 8, 0, 4096, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_ERROR);
    assert_true(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_true(ch.cookie == 8);
    assert_true(ch.len >= 6);
    assert_int_equal(vd_get32(ch.data), NBD_EINVAL);
    assert_int_equal(vd_get16(ch.data + 4), ch.len - 6);
    free(ch.data);
    harness_stop(h);
}

static void test_vd_cmd_run_out_of_range(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t data[16] = {0};
    struct chunk ch;

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_READ, 1, T_DISK_SIZE - 8, 16, NULL);
    assert_int_equal(c_simple(h, 1), NBD_EINVAL);
    c_req(h, 0, NBD_CMD_READ, 2, UINT64_MAX - 4, 16, NULL);
    assert_int_equal(c_simple(h, 2), NBD_EINVAL);
    c_req(h, 0, NBD_CMD_WRITE, 3, T_DISK_SIZE, 16, data);
    assert_int_equal(c_simple(h, 3), NBD_ENOSPC);
    c_req(h, 0, NBD_CMD_TRIM, 4, T_DISK_SIZE - 1, 2, NULL);
    assert_int_equal(c_simple(h, 4), NBD_EINVAL);
    c_req(h, 0, NBD_CMD_WRITE_ZEROES, 5, T_DISK_SIZE, 1, NULL);
    assert_int_equal(c_simple(h, 5), NBD_ENOSPC);
    /* The connection is still fine: the last byte reads. */
    free(read_simple(h, T_DISK_SIZE - 1, 1));
    harness_stop(h);

    h = harness_start(false, NULL);
    c_connect(h, true, false);
    c_req(h, 0, NBD_CMD_READ, 6, T_DISK_SIZE, 1, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_ERROR);
    assert_int_equal(vd_get32(ch.data), NBD_EINVAL);
    free(ch.data);
    harness_stop(h);
}

static void test_vd_cmd_run_too_long(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint32_t big = (32u << 20) + 1;
    uint8_t *junk = calloc(1, big);

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_READ, 1, 0, big, NULL);
    assert_int_equal(c_simple(h, 1), NBD_EOVERFLOW);
    /* A too-long write's payload is skipped, so framing survives. */
    c_req(h, 0, NBD_CMD_WRITE, 2, 0, big, NULL);
    c_write(h, junk, big);
    assert_int_equal(c_simple(h, 2), NBD_EOVERFLOW);
    c_req(h, 0, NBD_CMD_FLUSH, 3, 0, 0, NULL);
    assert_int_equal(c_simple(h, 3), 0);
    free(junk);
    harness_stop(h);
}

static void test_vd_cmd_run_bad_flags_and_type(void **state)
{
    struct harness *h = harness_start(false, NULL);

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0x8000, NBD_CMD_FLUSH, 1, 0, 0, NULL);
    assert_int_equal(c_simple(h, 1), NBD_EINVAL);
    c_req(h, NBD_CMD_FLAG_NO_HOLE, NBD_CMD_TRIM, 2, 0, 10, NULL);
    assert_int_equal(c_simple(h, 2), NBD_EINVAL);
    c_req(h, NBD_CMD_FLAG_DF, NBD_CMD_READ, 3, 0, 10, NULL); /* no SR */
    assert_int_equal(c_simple(h, 3), NBD_EINVAL);
    c_req(h, 0, 99, 4, 0, 0, NULL);
    assert_int_equal(c_simple(h, 4), NBD_EINVAL);
    /* FUA is ignored where it means nothing. */
    c_req(h, NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, 5, 0, 0, NULL);
    assert_int_equal(c_simple(h, 5), 0);
    harness_stop(h);
}

static void test_vd_cmd_run_readonly(void **state)
{
    struct harness *h = harness_start(true, NULL);
    uint8_t data[8] = {1};

    (void)state;
    c_connect(h, false, false);
    c_req(h, 0, NBD_CMD_WRITE, 1, 0, 8, data);
    assert_int_equal(c_simple(h, 1), NBD_EPERM);
    c_req(h, 0, NBD_CMD_TRIM, 2, 0, 8, NULL);
    assert_int_equal(c_simple(h, 2), NBD_EPERM);
    c_req(h, 0, NBD_CMD_WRITE_ZEROES, 3, 0, 8, NULL);
    assert_int_equal(c_simple(h, 3), NBD_EPERM);
    c_req(h, 0, NBD_CMD_FLUSH, 4, 0, 0, NULL);
    assert_int_equal(c_simple(h, 4), 0);
    free(read_simple(h, 0, 8));
    harness_stop(h);
}

static void test_vd_cmd_run_bad_magic_disconnects(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t junk[NBD_REQUEST_SIZE];

    (void)state;
    c_connect(h, false, false);
    memset(junk, 0xee, sizeof(junk));
    c_write(h, junk, sizeof(junk));
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EPROTO);
    harness_stop(h);
}

static void test_vd_cmd_run_backend_errors(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t data[512] = {0};
    struct chunk ch;

    (void)state;
    c_connect(h, true, false);
    vd_mem_fail_next(h->be, "disk", -EIO);
    c_req(h, 0, NBD_CMD_READ, 1, 0, 512, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_ERROR);
    assert_int_equal(vd_get32(ch.data), NBD_EIO);
    free(ch.data);
    vd_mem_fail_next(h->be, "disk", -EDQUOT);
    c_req(h, 0, NBD_CMD_WRITE, 2, 0, 512, data);
    assert_int_equal(c_simple(h, 2), NBD_ENOSPC);
    vd_mem_fail_next(h->be, "disk", -ENOTSUP);
    c_req(h, NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 3, 0, 512, NULL);
    assert_int_equal(c_simple(h, 3), NBD_ENOTSUP);
    vd_mem_fail_next(h->be, "disk", -EBADMSG); /* unknown: EIO */
    c_req(h, 0, NBD_CMD_FLUSH, 4, 0, 0, NULL);
    assert_int_equal(c_simple(h, 4), NBD_EIO);
    harness_stop(h);
}

/* Many requests in flight: every one is answered exactly once. */
static void test_vd_cmd_run_pipelined(void **state)
{
    struct harness *h = harness_start(false, NULL);
    enum { N = 64, LEN = 32768 };
    uint8_t *data = pattern(LEN, 4);
    bool seen[N] = {false};

    (void)state;
    c_connect(h, false, false);
    for (uint64_t i = 0; i < N; i++)
        c_req(h, 0, NBD_CMD_WRITE, i, i * LEN, LEN, data);
    for (int i = 0; i < N; i++) {
        uint8_t r[NBD_SIMPLE_REPLY_SIZE];
        c_read(h, r, sizeof(r));
        assert_int_equal(vd_get32(r + 4), 0);
        uint64_t cookie = vd_get64(r + 8);
        assert_true(cookie < N && !seen[cookie]);
        seen[cookie] = true;
    }
    /* DISC after a burst: the burst is answered before the close. */
    for (uint64_t i = 0; i < N; i++)
        c_req(h, 0, NBD_CMD_READ, 100 + i, i * LEN, LEN, NULL);
    c_req(h, 0, NBD_CMD_DISC, 999, 0, 0, NULL);
    uint8_t *buf = malloc(LEN);
    for (int i = 0; i < N; i++) {
        uint8_t r[NBD_SIMPLE_REPLY_SIZE];
        c_read(h, r, sizeof(r));
        assert_int_equal(vd_get32(r + 4), 0);
        c_read(h, buf, LEN);
        assert_memory_equal(buf, data, LEN);
    }
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    free(buf);
    free(data);
    harness_stop(h);
}

static void test_vd_err_to_nbd_mapping(void **state)
{
    (void)state;
    assert_int_equal(vd_err_to_nbd(0), 0);
    assert_int_equal(vd_err_to_nbd(-EPERM), NBD_EPERM);
    assert_int_equal(vd_err_to_nbd(-EROFS), NBD_EPERM);
    assert_int_equal(vd_err_to_nbd(-EIO), NBD_EIO);
    assert_int_equal(vd_err_to_nbd(-ENOMEM), NBD_ENOMEM);
    assert_int_equal(vd_err_to_nbd(-EINVAL), NBD_EINVAL);
    assert_int_equal(vd_err_to_nbd(-ENOSPC), NBD_ENOSPC);
    assert_int_equal(vd_err_to_nbd(-EOVERFLOW), NBD_EOVERFLOW);
    assert_int_equal(vd_err_to_nbd(-ENOTSUP), NBD_ENOTSUP);
    assert_int_equal(vd_err_to_nbd(-ESHUTDOWN), NBD_ESHUTDOWN);
    assert_int_equal(vd_err_to_nbd(-ENOENT), NBD_EIO);
    assert_int_equal(vd_err_to_nbd(-ETIMEDOUT), NBD_EIO);
}

/* ---- tessera:changes-since: ------------------------------------------- */

/* A backend that can tell changes: the mem backend's operations plus a
 * fake that knows file "snap" and says the first 4 KiB of any range
 * changed, the rest not. */
static struct vd_backend_ops changes_ops;

static int fake_changes_check(void *ctx, const char *since)
{
    (void)ctx;
    return strcmp(since, "snap") == 0 ? 0 : -ENOENT;
}

static int fake_changes(struct vd_image *img, const char *since, uint64_t len,
                        uint64_t off, vd_extent_cb cb, void *arg)
{
    (void)img;
    (void)off;
    assert_string_equal(since, "snap");
    uint64_t head = len < 4096 ? len : 4096;
    int rc = cb(arg, head, VD_EXTENT_CHANGED);
    if (rc == 0 && len > head)
        rc = cb(arg, len - head, 0);
    return rc < 0 ? rc : 0;
}

/* SET_META_CONTEXT "disk" with @n queries; returns the contexts granted
 * (their ids in @ids). */
static size_t set_meta(struct harness *h, const char *const *q, size_t n,
                       uint32_t *ids)
{
    uint8_t buf[512];
    uint32_t pos = 4 + 4 + 4;
    struct opt_rep r;
    size_t got = 0;

    vd_put32(buf, 4);
    memcpy(buf + 4, "disk", 4);
    vd_put32(buf + 8, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)strlen(q[i]);
        vd_put32(buf + pos, l);
        memcpy(buf + pos + 4, q[i], l);
        pos += 4 + l;
    }
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf, pos);
    for (;;) {
        c_opt_reply(h, &r);
        if (r.type == NBD_REP_ACK)
            return got;
        assert_int_equal(r.type, NBD_REP_META_CONTEXT);
        ids[got++] = vd_get32(r.data);
    }
}

/* A connection to a backend that tells changes, past structured replies. */
static struct harness *changes_harness(void)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;

    changes_ops = *h->be->ops;
    changes_ops.changes_check = fake_changes_check;
    changes_ops.changes = fake_changes;
    h->be->ops = &changes_ops;
    c_greet(h, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ACK);
    return h;
}

static void test_vd_cmd_block_status_changes_context(void **state)
{
    struct harness *h = changes_harness();
    const char *q[] = {NBD_META_BASE_ALLOCATION, "tessera:changes-since:snap",
                       "tessera:changes-since:nosuch",
                       "tessera:changes-since:"};
    uint32_t ids[4];
    uint64_t size;
    uint16_t tflags;
    struct chunk ch;

    (void)state;
    /* A missing or empty SNAP is not granted. */
    assert_int_equal(set_meta(h, q, 4, ids), 2);
    assert_int_equal(ids[0], VD_META_ALLOC_ID);
    assert_int_equal(ids[1], VD_META_CHANGES_ID);
    c_go(h, "disk", &size, &tflags);

    /* One chunk per context, DONE on the last only. */
    c_req(h, 0, NBD_CMD_BLOCK_STATUS, 9, 0, 3 * 4096, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_BLOCK_STATUS);
    assert_false(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_int_equal(vd_get32(ch.data), VD_META_ALLOC_ID);
    free(ch.data);
    c_chunk(h, &ch);
    assert_true(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_int_equal(vd_get32(ch.data), VD_META_CHANGES_ID);
    assert_int_equal(ch.len, 4 + 2 * 8);
    assert_int_equal(vd_get32(ch.data + 4), 4096);
    assert_int_equal(vd_get32(ch.data + 8), VD_STATE_CHANGED);
    assert_int_equal(vd_get32(ch.data + 12), 2 * 4096);
    assert_int_equal(vd_get32(ch.data + 16), 0);
    free(ch.data);
    harness_stop(h);
}

static void test_vd_cmd_changes_context_alone(void **state)
{
    struct harness *h = changes_harness();
    const char *q[] = {"tessera:changes-since:snap"};
    uint32_t ids[1];
    uint64_t size;
    uint16_t tflags;
    struct chunk ch;

    (void)state;
    assert_int_equal(set_meta(h, q, 1, ids), 1);
    c_go(h, "disk", &size, &tflags);
    /* REQ_ONE: one extent. */
    c_req(h, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 10, 0, 8192, NULL);
    c_chunk(h, &ch);
    assert_true(ch.flags & NBD_REPLY_FLAG_DONE);
    assert_int_equal(vd_get32(ch.data), VD_META_CHANGES_ID);
    assert_int_equal(ch.len, 4 + 8);
    assert_int_equal(vd_get32(ch.data + 4), 4096);
    free(ch.data);
    harness_stop(h);
}

static void test_vd_cmd_changes_context_needs_backend(void **state)
{
    struct harness *h = harness_start(false, NULL);
    const char *q[] = {"tessera:changes-since:snap"};
    struct opt_rep r;
    uint32_t ids[1];

    (void)state;
    /* The mem backend tells no changes: nothing granted. */
    c_greet(h, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    c_opt_reply(h, &r);
    assert_int_equal(set_meta(h, q, 1, ids), 0);
    harness_stop(h);
}

int test_vd_cmd(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_cmd_run_write_read_simple),
        cmocka_unit_test(test_vd_cmd_run_read_structured),
        cmocka_unit_test(test_vd_cmd_run_flush_and_cache),
        cmocka_unit_test(test_vd_cmd_run_trim_reads_zero),
        cmocka_unit_test(test_vd_cmd_run_write_zeroes),
        cmocka_unit_test(test_vd_cmd_run_block_status_extents),
        cmocka_unit_test(test_vd_cmd_run_block_status_needs_context),
        cmocka_unit_test(test_vd_cmd_run_out_of_range),
        cmocka_unit_test(test_vd_cmd_run_too_long),
        cmocka_unit_test(test_vd_cmd_run_bad_flags_and_type),
        cmocka_unit_test(test_vd_cmd_run_readonly),
        cmocka_unit_test(test_vd_cmd_run_bad_magic_disconnects),
        cmocka_unit_test(test_vd_cmd_run_backend_errors),
        cmocka_unit_test(test_vd_cmd_run_pipelined),
        cmocka_unit_test(test_vd_err_to_nbd_mapping),
        cmocka_unit_test(test_vd_cmd_block_status_changes_context),
        cmocka_unit_test(test_vd_cmd_changes_context_alone),
        cmocka_unit_test(test_vd_cmd_changes_context_needs_backend),
    };
    return cmocka_run_group_tests_name("vd_cmd", tests, NULL, NULL);
}
