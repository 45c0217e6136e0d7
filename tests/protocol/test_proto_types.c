/* Tests for protocol/proto_types.c and the string helpers of
 * proto_buf.c: credentials, the 80-byte attribute block, u16 strings and
 * u32 byte ranges (docs/protocol.md §4).
 */
#include "proto_test.h"

_Static_assert(PROTO_ATTR_SIZE == 80, "attr block is 80 bytes on the wire");

static void test_proto_attr_put_size(void **state)
{
    struct proto_wbuf w;
    struct proto_attr a;

    (void)state;
    sample_attr(&a, 1);
    proto_wbuf_init(&w);
    proto_attr_put(&w, &a);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, PROTO_ATTR_SIZE);
    proto_wbuf_free(&w);
}

/* §4.2: every field at its documented offset, big-endian. */
static void test_proto_attr_put_layout(void **state)
{
    struct proto_wbuf w;
    struct proto_attr a;
    struct proto_rbuf r;

    (void)state;
    sample_attr(&a, 0x1122334455667788ull);
    proto_wbuf_init(&w);
    proto_attr_put(&w, &a);
    assert_int_equal(w.p[0], 0x11);
    assert_int_equal(w.p[7], 0x88);
#define AT(off, width, want)                                                   \
    do {                                                                       \
        proto_rbuf_init(&r, w.p + (off), (width));                             \
        uint64_t v = (width) == 4 ? proto_get_u32(&r) : proto_get_u64(&r);     \
        assert_int_equal(v, (uint64_t)(want));                                 \
    } while (0)
    AT(0, 8, a.ino);
    AT(8, 4, a.mode);
    AT(12, 4, a.nlink);
    AT(16, 4, a.uid);
    AT(20, 4, a.gid);
    AT(24, 4, a.rdev);
    AT(28, 4, a.goal);
    AT(32, 8, a.size);
    AT(40, 8, a.blocks);
    AT(48, 8, a.atime);
    AT(56, 8, a.mtime);
    AT(64, 8, a.ctime);
    AT(72, 8, a.version);
#undef AT
    proto_wbuf_free(&w);
}

static void test_proto_attr_get_roundtrip(void **state)
{
    struct proto_wbuf w;
    struct proto_attr a, b;
    struct proto_rbuf r;

    (void)state;
    sample_attr(&a, 3);
    proto_wbuf_init(&w);
    proto_attr_put(&w, &a);
    proto_rbuf_init(&r, w.p, w.len);
    proto_attr_get(&r, &b);
    assert_int_equal(proto_rbuf_done(&r), 0);
    assert_attr_equal(&a, &b);
    /* One byte short latches the error. */
    proto_rbuf_init(&r, w.p, w.len - 1);
    proto_attr_get(&r, &b);
    assert_int_equal(proto_rbuf_done(&r), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_proto_cred_get_roundtrip(void **state)
{
    struct proto_wbuf w;
    struct proto_cred a, b;
    struct proto_rbuf r;

    (void)state;
    sample_cred(&a);
    proto_wbuf_init(&w);
    proto_cred_put(&w, &a);
    assert_int_equal(w.len, 12 + 4 * a.ngroups);
    proto_rbuf_init(&r, w.p, w.len);
    assert_int_equal(proto_cred_get(&r, &b), 0);
    assert_int_equal(proto_rbuf_done(&r), 0);
    assert_cred_equal(&a, &b);
    proto_wbuf_free(&w);
}

static void test_proto_cred_get_max_groups(void **state)
{
    struct proto_wbuf w;
    struct proto_cred a, b;
    struct proto_rbuf r;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.ngroups = PROTO_MAX_GROUPS;
    for (uint32_t i = 0; i < PROTO_MAX_GROUPS; i++)
        a.groups[i] = 1000 + i;
    proto_wbuf_init(&w);
    proto_cred_put(&w, &a);
    proto_rbuf_init(&r, w.p, w.len);
    assert_int_equal(proto_cred_get(&r, &b), 0);
    assert_int_equal(proto_rbuf_done(&r), 0);
    assert_cred_equal(&a, &b);
    proto_wbuf_free(&w);
}

static void test_proto_cred_get_too_many_groups(void **state)
{
    struct proto_wbuf w;
    struct proto_cred c;
    struct proto_rbuf r;

    (void)state;
    proto_wbuf_init(&w);
    proto_put_u32(&w, 1);
    proto_put_u32(&w, 2);
    proto_put_u32(&w, PROTO_MAX_GROUPS + 1);
    for (int i = 0; i < PROTO_MAX_GROUPS + 1; i++)
        proto_put_u32(&w, (uint32_t)i);
    proto_rbuf_init(&r, w.p, w.len);
    assert_int_equal(proto_cred_get(&r, &c), -EPROTO);
    assert_int_equal(proto_rbuf_done(&r), -EPROTO);
    proto_wbuf_free(&w);
}

static void test_proto_cred_get_truncated(void **state)
{
    struct proto_wbuf w;
    struct proto_cred a, b;
    struct proto_rbuf r;

    (void)state;
    sample_cred(&a);
    proto_wbuf_init(&w);
    proto_cred_put(&w, &a);
    for (size_t k = 0; k < w.len; k++) {
        proto_rbuf_init(&r, w.p, k);
        assert_int_equal(proto_cred_get(&r, &b), -EPROTO);
    }
    proto_wbuf_free(&w);
}

static void test_proto_cred_put_too_many_groups(void **state)
{
    struct proto_wbuf w;
    struct proto_cred c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.ngroups = PROTO_MAX_GROUPS + 1;
    proto_wbuf_init(&w);
    proto_cred_put(&w, &c);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    proto_wbuf_free(&w);
}

static void test_proto_str_get_roundtrip(void **state)
{
    struct proto_wbuf w;
    struct proto_rbuf r;
    struct proto_str s, e;

    (void)state;
    proto_wbuf_init(&w);
    proto_put_str(&w, "abc", 3);
    proto_put_str(&w, "", 0);
    assert_int_equal(w.len, 2 + 3 + 2);
    assert_int_equal(w.p[0], 0);
    assert_int_equal(w.p[1], 3);
    proto_rbuf_init(&r, w.p, w.len);
    assert_int_equal(proto_str_get(&r, &s), 0);
    assert_int_equal(proto_str_get(&r, &e), 0);
    assert_int_equal(proto_rbuf_done(&r), 0);
    assert_pstr_is(s, "abc");
    assert_int_equal(e.len, 0);
    proto_wbuf_free(&w);
}

static void test_proto_str_get_too_long(void **state)
{
    uint8_t buf[2 + PROTO_MAX_STR + 1] = {0};
    struct proto_rbuf r;
    struct proto_str s;

    (void)state;
    patch_be(buf, 0, PROTO_MAX_STR + 1, 2);
    proto_rbuf_init(&r, buf, sizeof(buf));
    assert_int_equal(proto_str_get(&r, &s), -EPROTO);
    patch_be(buf, 0, PROTO_MAX_STR, 2);
    proto_rbuf_init(&r, buf, sizeof(buf) - 1);
    assert_int_equal(proto_str_get(&r, &s), 0);
    assert_int_equal(s.len, PROTO_MAX_STR);
    assert_int_equal(proto_rbuf_done(&r), 0);
}

static void test_proto_bytes_get_too_long(void **state)
{
    uint8_t buf[8] = {0};
    struct proto_rbuf r;
    struct proto_str s;

    (void)state;
    patch_be(buf, 0, PROTO_MAX_DATA + 1, 4);
    proto_rbuf_init(&r, buf, sizeof(buf));
    assert_int_equal(proto_bytes_get(&r, &s), -EPROTO);
    /* A length that runs past the end is truncation. */
    patch_be(buf, 0, 5, 4);
    proto_rbuf_init(&r, buf, sizeof(buf));
    assert_int_equal(proto_bytes_get(&r, &s), -EPROTO);
    patch_be(buf, 0, 4, 4);
    proto_rbuf_init(&r, buf, sizeof(buf));
    assert_int_equal(proto_bytes_get(&r, &s), 0);
    assert_int_equal(s.len, 4);
}

int test_proto_types(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_attr_put_size),
        cmocka_unit_test(test_proto_attr_put_layout),
        cmocka_unit_test(test_proto_attr_get_roundtrip),
        cmocka_unit_test(test_proto_cred_get_roundtrip),
        cmocka_unit_test(test_proto_cred_get_max_groups),
        cmocka_unit_test(test_proto_cred_get_too_many_groups),
        cmocka_unit_test(test_proto_cred_get_truncated),
        cmocka_unit_test(test_proto_cred_put_too_many_groups),
        cmocka_unit_test(test_proto_str_get_roundtrip),
        cmocka_unit_test(test_proto_str_get_too_long),
        cmocka_unit_test(test_proto_bytes_get_too_long),
    };
    return cmocka_run_group_tests_name("proto_types", tests, NULL, NULL);
}
