/* Tests for client-fuse/fc_attr.c: attributes from the wire into struct
 * stat (times before and after the epoch), times back to nanoseconds, and
 * the SETATTR bits for libfuse's. */
#define FUSE_USE_VERSION 35

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "fc_internal.h"

static void test_fc_attr_to_stat_copies_fields(void **state)
{
    (void)state;
    struct proto_attr a = {
        .ino = 42,
        .mode = S_IFREG | 0640,
        .nlink = 2,
        .uid = 7,
        .gid = 8,
        .size = 6ull << 30,
        .blocks = 16,
        .atime = 1500000000123456789,
        .mtime = 1,
        .ctime = 2000000000,
    };
    struct stat st;
    fc_attr_to_stat(&a, &st);
    assert_int_equal(st.st_ino, 42);
    assert_int_equal(st.st_mode, S_IFREG | 0640);
    assert_int_equal(st.st_nlink, 2);
    assert_int_equal(st.st_uid, 7);
    assert_int_equal(st.st_size, 6ll << 30);
    assert_int_equal(st.st_blocks, 16);
    assert_int_equal(st.st_atim.tv_sec, 1500000000);
    assert_int_equal(st.st_atim.tv_nsec, 123456789);
    assert_int_equal(st.st_mtim.tv_nsec, 1);
    assert_int_equal(st.st_ctim.tv_sec, 2);
}

static void test_fc_attr_to_stat_before_epoch(void **state)
{
    (void)state;
    struct proto_attr a = {.mtime = -1};
    struct stat st;
    fc_attr_to_stat(&a, &st);
    assert_int_equal(st.st_mtim.tv_sec, -1);
    assert_int_equal(st.st_mtim.tv_nsec, 999999999);
    assert_int_equal(fc_ns_from_ts(&st.st_mtim), -1);
}

static void test_fc_setattr_valid_maps_bits(void **state)
{
    (void)state;
    assert_int_equal(fc_setattr_valid(0), 0);
    assert_int_equal(fc_setattr_valid(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_SIZE),
                     PROTO_SETATTR_MODE | PROTO_SETATTR_SIZE);
    assert_int_equal(fc_setattr_valid(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
                                      FUSE_SET_ATTR_CTIME),
                     PROTO_SETATTR_UID | PROTO_SETATTR_GID |
                         PROTO_SETATTR_CTIME);
}

static void test_fc_setattr_valid_now_wins(void **state)
{
    (void)state;
    assert_int_equal(
        fc_setattr_valid(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW),
        PROTO_SETATTR_ATIME_NOW);
    assert_int_equal(fc_setattr_valid(FUSE_SET_ATTR_MTIME),
                     PROTO_SETATTR_MTIME);
    assert_int_equal(
        fc_setattr_valid(FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW),
        PROTO_SETATTR_MTIME_NOW);
}

int test_fc_attr(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fc_attr_to_stat_copies_fields),
        cmocka_unit_test(test_fc_attr_to_stat_before_epoch),
        cmocka_unit_test(test_fc_setattr_valid_maps_bits),
        cmocka_unit_test(test_fc_setattr_valid_now_wins),
    };
    return cmocka_run_group_tests_name("fc_attr", tests, NULL, NULL);
}
