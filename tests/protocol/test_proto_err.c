/* Tests for protocol/proto_err.c: the wire error list and its mapping to
 * and from host errno (docs/protocol.md §5).
 */
#include "proto_test.h"

static const int32_t standard[] = {
    PROTO_EPERM,     PROTO_ENOENT,     PROTO_EIO,          PROTO_EBADF,
    PROTO_EAGAIN,    PROTO_ENOMEM,     PROTO_EACCES,       PROTO_EBUSY,
    PROTO_EEXIST,    PROTO_EXDEV,      PROTO_ENOTDIR,      PROTO_EISDIR,
    PROTO_EINVAL,    PROTO_EFBIG,      PROTO_ENOSPC,       PROTO_EROFS,
    PROTO_EMLINK,    PROTO_ERANGE,     PROTO_ENAMETOOLONG, PROTO_ENOSYS,
    PROTO_ENOTEMPTY, PROTO_ELOOP,      PROTO_ENODATA,      PROTO_EPROTO,
    PROTO_EOVERFLOW, PROTO_EOPNOTSUPP, PROTO_ETIMEDOUT,    PROTO_ESTALE,
    PROTO_EDQUOT,
};

static void test_proto_err_roundtrip_standard(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(standard) / sizeof(standard[0]); i++) {
        int32_t w = standard[i];
        assert_true(proto_err_valid(w));
        /* Numbered as Linux numbers them, and round trip both ways. */
        assert_int_equal(proto_err_from_wire(w), -w);
        assert_int_equal(proto_err_to_wire(-w), w);
    }
}

static void test_proto_err_from_wire_own_values(void **state)
{
    (void)state;
    assert_int_equal(proto_err_from_wire(PROTO_EVERSION), -EPROTONOSUPPORT);
    assert_int_equal(proto_err_from_wire(PROTO_ENOSESSION), -ENOTCONN);
    assert_int_equal(proto_err_from_wire(PROTO_EOLDVER), -ESTALE);
    assert_int_equal(proto_err_from_wire(PROTO_ECHECKSUM), -EBADMSG);
    assert_int_equal(proto_err_from_wire(PROTO_EHANDSHAKE), -EPROTO);
    /* The host errno of an own value maps back to the standard one. */
    assert_int_equal(proto_err_to_wire(-ESTALE), PROTO_ESTALE);
    assert_int_equal(proto_err_to_wire(-EPROTO), PROTO_EPROTO);
    /* Values whose host errno is theirs alone go both ways. */
    assert_int_equal(proto_err_from_wire(PROTO_ELIMIT), -EUSERS);
    assert_int_equal(proto_err_to_wire(-EUSERS), PROTO_ELIMIT);
    assert_int_equal(proto_err_from_wire(PROTO_ESECURE), -ENOPROTOOPT);
    assert_int_equal(proto_err_to_wire(-ENOPROTOOPT), PROTO_ESECURE);
    assert_int_equal(proto_err_to_wire(-EKEYREJECTED), PROTO_EAUTH);
}

static void test_proto_err_to_wire_unknown_is_eio(void **state)
{
    (void)state;
    assert_int_equal(proto_err_to_wire(0), PROTO_OK);
    assert_int_equal(proto_err_to_wire(-ESRCH), PROTO_EIO);
    assert_int_equal(proto_err_to_wire(-EPROTONOSUPPORT), PROTO_EIO);
    assert_int_equal(proto_err_to_wire(-ENOTSUP), PROTO_EOPNOTSUPP);
}

static void test_proto_err_from_wire_unknown(void **state)
{
    (void)state;
    assert_int_equal(proto_err_from_wire(0), 0);
    assert_int_equal(proto_err_from_wire(3), -EIO);
    assert_int_equal(proto_err_from_wire(999), -EIO);
    assert_int_equal(proto_err_from_wire(-1), -EIO);
    assert_false(proto_err_valid(3));
    assert_false(proto_err_valid(1999));
    assert_false(proto_err_valid(-5));
    assert_true(proto_err_valid(0));
}

static void test_proto_err_name_values(void **state)
{
    (void)state;
    assert_string_equal(proto_err_name(PROTO_OK), "OK");
    assert_string_equal(proto_err_name(PROTO_EIO), "EIO");
    assert_string_equal(proto_err_name(PROTO_ENAMETOOLONG), "ENAMETOOLONG");
    assert_string_equal(proto_err_name(PROTO_EOLDVER), "EOLDVER");
    assert_string_equal(proto_err_name(PROTO_EHANDSHAKE), "EHANDSHAKE");
    assert_string_equal(proto_err_name(4), "E?");
}

int test_proto_err(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_err_roundtrip_standard),
        cmocka_unit_test(test_proto_err_from_wire_own_values),
        cmocka_unit_test(test_proto_err_to_wire_unknown_is_eio),
        cmocka_unit_test(test_proto_err_from_wire_unknown),
        cmocka_unit_test(test_proto_err_name_values),
    };
    return cmocka_run_group_tests_name("proto_err", tests, NULL, NULL);
}
