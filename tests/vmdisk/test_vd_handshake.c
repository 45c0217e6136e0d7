/* Tests for vmdisk/vd_handshake.c: option haggling over a socketpair
 * against the mem backend (see test_vd_util.h).
 */
#include "test_vd_util.h"

#include <stdio.h>

#define FIXED (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)

static void test_vd_handshake_run_go_named_export(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_go(h, "other", &size, &tflags);
    assert_int_equal(size, T_OTHER_SIZE);
    assert_true(tflags & NBD_FLAG_HAS_FLAGS);
    assert_true(tflags & NBD_FLAG_SEND_FLUSH);
    assert_true(tflags & NBD_FLAG_SEND_FUA);
    assert_true(tflags & NBD_FLAG_SEND_TRIM);
    assert_true(tflags & NBD_FLAG_SEND_WRITE_ZEROES);
    assert_true(tflags & NBD_FLAG_SEND_FAST_ZERO);
    assert_true(tflags & NBD_FLAG_SEND_CACHE);
    assert_true(tflags & NBD_FLAG_CAN_MULTI_CONN);
    assert_false(tflags & NBD_FLAG_READ_ONLY);
    assert_false(tflags & NBD_FLAG_SEND_DF); /* no structured replies */
    c_req(h, 0, NBD_CMD_DISC, 1, 0, 0, NULL);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    harness_stop(h);
}

static void test_vd_handshake_run_go_block_size_info(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[64];
    struct opt_rep r;
    bool got = false;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_GO, buf, go_data(buf, "disk", NULL, 0));
    for (c_opt_reply(h, &r); r.type == NBD_REP_INFO; c_opt_reply(h, &r)) {
        if (vd_get16(r.data) != NBD_INFO_BLOCK_SIZE)
            continue;
        assert_int_equal(r.len, 14);
        assert_int_equal(vd_get32(r.data + 2), 1);
        assert_int_equal(vd_get32(r.data + 6), 4096);
        assert_int_equal(vd_get32(r.data + 10), 32u << 20);
        got = true;
    }
    assert_int_equal(r.type, NBD_REP_ACK);
    assert_true(got);
    harness_stop(h);
}

static void test_vd_handshake_run_go_default_export(void **state)
{
    struct harness *h = harness_start(false, "other");
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_go(h, "", &size, &tflags);
    assert_int_equal(size, T_OTHER_SIZE);
    harness_stop(h);
}

static void test_vd_handshake_run_go_empty_name_without_default(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[64];
    struct opt_rep r;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_GO, buf, go_data(buf, "", NULL, 0));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_UNKNOWN);
    harness_stop(h);
}

static void test_vd_handshake_run_go_unknown_then_retry(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[64];
    struct opt_rep r;
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_GO, buf, go_data(buf, "nosuch", NULL, 0));
    c_opt_reply(h, &r);
    assert_int_equal(r.opt, NBD_OPT_GO);
    assert_int_equal(r.type, NBD_REP_ERR_UNKNOWN);
    c_go(h, "disk", &size, &tflags);
    assert_int_equal(size, T_DISK_SIZE);
    harness_stop(h);
}

static void test_vd_handshake_run_go_malformed(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[64];
    struct opt_rep r;
    uint32_t len;

    (void)state;
    c_greet(h, FIXED);
    /* Name length past the end of the data. */
    len = go_data(buf, "disk", NULL, 0);
    vd_put32(buf, 100);
    c_opt(h, NBD_OPT_GO, buf, len);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    /* Request count that does not match the length. */
    len = go_data(buf, "disk", NULL, 0);
    vd_put16(buf + 8, 3);
    c_opt(h, NBD_OPT_GO, buf, len);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    /* A NUL inside the name. */
    len = go_data(buf, "disk", NULL, 0);
    buf[6] = 0;
    c_opt(h, NBD_OPT_GO, buf, len);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    /* Too short to hold anything. */
    c_opt(h, NBD_OPT_INFO, buf, 3);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    harness_stop(h);
}

static void test_vd_handshake_run_info_name_description(void **state)
{
    struct harness *h = harness_start(false, "disk");
    static const uint16_t reqs[] = {NBD_INFO_NAME, NBD_INFO_DESCRIPTION, 77};
    uint8_t buf[64];
    struct opt_rep r;
    bool name = false, desc = false;
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_INFO, buf, go_data(buf, "", reqs, 3));
    for (c_opt_reply(h, &r); r.type == NBD_REP_INFO; c_opt_reply(h, &r)) {
        uint16_t t = vd_get16(r.data);
        if (t == NBD_INFO_NAME) {
            assert_int_equal(r.len, 2 + 4);
            assert_memory_equal(r.data + 2, "disk", 4);
            name = true;
        } else if (t == NBD_INFO_DESCRIPTION) {
            assert_true(r.len > 2);
            desc = true;
        }
    }
    assert_int_equal(r.type, NBD_REP_ACK);
    assert_true(name && desc);
    /* INFO does not end the haggling. */
    c_go(h, "disk", &size, &tflags);
    harness_stop(h);
}

static void test_vd_handshake_run_list(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;
    bool disk = false, other = false;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_LIST, NULL, 0);
    for (c_opt_reply(h, &r); r.type == NBD_REP_SERVER; c_opt_reply(h, &r)) {
        uint32_t n = vd_get32(r.data);
        assert_int_equal(r.len, 4 + n);
        if (n == 4 && !memcmp(r.data + 4, "disk", 4))
            disk = true;
        if (n == 5 && !memcmp(r.data + 4, "other", 5))
            other = true;
    }
    assert_int_equal(r.type, NBD_REP_ACK);
    assert_true(disk && other);
    /* With data it is malformed. */
    c_opt(h, NBD_OPT_LIST, "x", 1);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    harness_stop(h);
}

/* An export check that lets every identity open "disk" only. */
static int disk_only(void *ctx, const struct vd_identity *who,
                     const char *name, bool *readonly, char *why,
                     size_t why_len)
{
    (void)ctx;
    (void)who;
    (void)readonly;
    if (strcmp(name, "disk") == 0)
        return 0;
    snprintf(why, why_len, "not yours");
    return -EACCES;
}

/* LIST shows only what the export check lets the client open. */
static void test_vd_handshake_run_list_checked(void **state)
{
    struct harness *h = harness_new(false, NULL);
    struct opt_rep r;
    unsigned n = 0;

    (void)state;
    h->cfg.export_check = disk_only;
    harness_run(h);
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_LIST, NULL, 0);
    for (c_opt_reply(h, &r); r.type == NBD_REP_SERVER; c_opt_reply(h, &r)) {
        assert_int_equal(r.len, 4 + 4);
        assert_memory_equal(r.data + 4, "disk", 4);
        n++;
    }
    assert_int_equal(r.type, NBD_REP_ACK);
    assert_int_equal(n, 1);
    harness_stop(h);
}

static void test_vd_handshake_run_abort(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_ABORT, NULL, 0);
    c_opt_reply(h, &r);
    assert_int_equal(r.opt, NBD_OPT_ABORT);
    assert_int_equal(r.type, NBD_REP_ACK);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    harness_stop(h);
}

static void test_vd_handshake_run_unknown_option(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, 4242, "abc", 3);
    c_opt_reply(h, &r);
    assert_int_equal(r.opt, 4242);
    assert_int_equal(r.type, NBD_REP_ERR_UNSUP);
    /* TLS is off: proto.md's NOTLS mode refuses STARTTLS by policy. */
    c_opt(h, NBD_OPT_STARTTLS, NULL, 0);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_POLICY);
    c_go(h, "disk", &size, &tflags);
    harness_stop(h);
}

static void test_vd_handshake_run_oversized_option(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;
    uint8_t hdr[16];

    (void)state;
    c_greet(h, FIXED);
    vd_put64(hdr, NBD_IHAVEOPT);
    vd_put32(hdr + 8, NBD_OPT_GO);
    vd_put32(hdr + 12, 0x7fffffff);
    c_write(h, hdr, sizeof(hdr));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_TOO_BIG);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EPROTO);
    harness_stop(h);
}

static void test_vd_handshake_run_bad_option_magic(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t hdr[16] = "NOTMAGIC";

    (void)state;
    c_greet(h, FIXED);
    c_write(h, hdr, sizeof(hdr));
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EPROTO);
    harness_stop(h);
}

static void test_vd_handshake_run_bad_client_flags(void **state)
{
    struct harness *h = harness_start(false, NULL);

    (void)state;
    c_greet(h, NBD_FLAG_C_FIXED_NEWSTYLE | 0x100);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EPROTO);
    harness_stop(h);
}

static void test_vd_handshake_run_not_fixed_newstyle(void **state)
{
    struct harness *h = harness_start(false, NULL);

    (void)state;
    c_greet(h, 0);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EPROTO);
    harness_stop(h);
}

static void test_vd_handshake_run_truncated(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t hdr[16];

    (void)state;
    c_greet(h, FIXED);
    vd_put64(hdr, NBD_IHAVEOPT);
    vd_put32(hdr + 8, NBD_OPT_GO);
    vd_put32(hdr + 12, 100);
    c_write(h, hdr, sizeof(hdr));
    c_write(h, "abc", 3);
    shutdown(h->cfd, SHUT_WR);
    /* The client left mid-option: a quiet end, not an error. */
    assert_int_equal(harness_join(h), 0);
    harness_stop(h);
}

static void test_vd_handshake_run_structured_reply(void **state)
{
    struct harness *h = harness_start(false, NULL);
    struct opt_rep r;
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, "x", 1);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    c_opt_reply(h, &r);
    assert_int_equal(r.opt, NBD_OPT_STRUCTURED_REPLY);
    assert_int_equal(r.type, NBD_REP_ACK);
    c_go(h, "disk", &size, &tflags);
    assert_true(tflags & NBD_FLAG_SEND_DF);
    harness_stop(h);
}

static void test_vd_handshake_run_set_meta_needs_structured(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[128];
    struct opt_rep r;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", NBD_META_BASE_ALLOCATION));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    harness_stop(h);
}

static void test_vd_handshake_run_set_meta_base_allocation(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[128];
    struct opt_rep r;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    c_opt_reply(h, &r);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", NBD_META_BASE_ALLOCATION));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_META_CONTEXT);
    assert_int_equal(r.len, 4 + strlen(NBD_META_BASE_ALLOCATION));
    assert_int_equal(vd_get32(r.data), VD_META_ALLOC_ID);
    assert_memory_equal(r.data + 4, NBD_META_BASE_ALLOCATION,
                        strlen(NBD_META_BASE_ALLOCATION));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ACK);
    /* An unknown context selects nothing. */
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", "qemu:dirty-bitmap:x"));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ACK);
    /* Unknown export. */
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "nosuch", NBD_META_BASE_ALLOCATION));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_UNKNOWN);
    /* Malformed: query length past the end. */
    uint32_t len = meta_data(buf, "disk", NBD_META_BASE_ALLOCATION);
    vd_put32(buf + 12, 1000);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf, len);
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_INVALID);
    harness_stop(h);
}

static void test_vd_handshake_run_list_meta(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[128];
    struct opt_rep r;
    const char *queries[] = {NULL, "base:", NBD_META_BASE_ALLOCATION};

    (void)state;
    c_greet(h, FIXED);
    for (size_t i = 0; i < 3; i++) {
        c_opt(h, NBD_OPT_LIST_META_CONTEXT, buf,
              meta_data(buf, "disk", queries[i]));
        c_opt_reply(h, &r);
        assert_int_equal(r.type, NBD_REP_META_CONTEXT);
        assert_memory_equal(r.data + 4, NBD_META_BASE_ALLOCATION,
                            strlen(NBD_META_BASE_ALLOCATION));
        c_opt_reply(h, &r);
        assert_int_equal(r.type, NBD_REP_ACK);
    }
    c_opt(h, NBD_OPT_LIST_META_CONTEXT, buf, meta_data(buf, "disk", "other:"));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ACK);
    harness_stop(h);
}

static void test_vd_handshake_run_export_name_no_zeroes(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[10];

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_EXPORT_NAME, "other", 5);
    c_read(h, buf, 10);
    assert_int_equal(vd_get64(buf), T_OTHER_SIZE);
    assert_true(vd_get16(buf + 8) & NBD_FLAG_HAS_FLAGS);
    /* No padding: the next bytes are the reply to our flush. */
    c_req(h, 0, NBD_CMD_FLUSH, 9, 0, 0, NULL);
    assert_int_equal(c_simple(h, 9), 0);
    harness_stop(h);
}

static void test_vd_handshake_run_export_name_zeroes(void **state)
{
    struct harness *h = harness_start(false, NULL);
    uint8_t buf[134], zero[124] = {0};

    (void)state;
    c_greet(h, NBD_FLAG_C_FIXED_NEWSTYLE);
    c_opt(h, NBD_OPT_EXPORT_NAME, "disk", 4);
    c_read(h, buf, sizeof(buf));
    assert_int_equal(vd_get64(buf), T_DISK_SIZE);
    assert_memory_equal(buf + 10, zero, sizeof(zero));
    harness_stop(h);
}

static void test_vd_handshake_run_export_name_unknown(void **state)
{
    struct harness *h = harness_start(false, NULL);

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_EXPORT_NAME, "nosuch", 6);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -ENOENT);
    harness_stop(h);
}

static void test_vd_handshake_run_readonly_flags(void **state)
{
    struct harness *h = harness_start(true, NULL);
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_go(h, "disk", &size, &tflags);
    assert_true(tflags & NBD_FLAG_READ_ONLY);
    assert_false(tflags & NBD_FLAG_SEND_TRIM);
    assert_false(tflags & NBD_FLAG_SEND_WRITE_ZEROES);
    assert_true(tflags & NBD_FLAG_SEND_FLUSH);
    harness_stop(h);
}

int test_vd_handshake(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_handshake_run_go_named_export),
        cmocka_unit_test(test_vd_handshake_run_go_block_size_info),
        cmocka_unit_test(test_vd_handshake_run_go_default_export),
        cmocka_unit_test(test_vd_handshake_run_go_empty_name_without_default),
        cmocka_unit_test(test_vd_handshake_run_go_unknown_then_retry),
        cmocka_unit_test(test_vd_handshake_run_go_malformed),
        cmocka_unit_test(test_vd_handshake_run_info_name_description),
        cmocka_unit_test(test_vd_handshake_run_list),
        cmocka_unit_test(test_vd_handshake_run_list_checked),
        cmocka_unit_test(test_vd_handshake_run_abort),
        cmocka_unit_test(test_vd_handshake_run_unknown_option),
        cmocka_unit_test(test_vd_handshake_run_oversized_option),
        cmocka_unit_test(test_vd_handshake_run_bad_option_magic),
        cmocka_unit_test(test_vd_handshake_run_bad_client_flags),
        cmocka_unit_test(test_vd_handshake_run_not_fixed_newstyle),
        cmocka_unit_test(test_vd_handshake_run_truncated),
        cmocka_unit_test(test_vd_handshake_run_structured_reply),
        cmocka_unit_test(test_vd_handshake_run_set_meta_needs_structured),
        cmocka_unit_test(test_vd_handshake_run_set_meta_base_allocation),
        cmocka_unit_test(test_vd_handshake_run_list_meta),
        cmocka_unit_test(test_vd_handshake_run_export_name_no_zeroes),
        cmocka_unit_test(test_vd_handshake_run_export_name_zeroes),
        cmocka_unit_test(test_vd_handshake_run_export_name_unknown),
        cmocka_unit_test(test_vd_handshake_run_readonly_flags),
    };
    return cmocka_run_group_tests_name("vd_handshake", tests, NULL, NULL);
}
