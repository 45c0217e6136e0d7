/* Tests for protocol/proto_readdir.c: READDIR request and reply, and
 * directory entries with and without attributes (docs/protocol.md §6.15).
 */
#include "proto_test.h"

#define CRED_LEN 24

static void test_proto_readdir_req_decode_roundtrip(void **state)
{
    struct proto_readdir_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ROUNDTRIP(readdir_req, PROTO_MSG_READDIR_REQ, &in, &out, &w, &s);
    assert_cred_equal(&out.cred, &in.cred);
    assert_int_equal(out.ino, in.ino);
    assert_int_equal(out.cookie, in.cookie);
    assert_int_equal(out.max_entries, in.max_entries);
    assert_int_equal(out.flags, in.flags);
    FREE_BUFS(&w, &s);
}

static void test_proto_readdir_req_decode_max_entries_range(void **state)
{
    struct proto_readdir_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(readdir_req, &in, &w, &s);
    patch_be(w.p, CRED_LEN + 16, 1, 4);
    assert_int_equal(proto_readdir_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, CRED_LEN + 16, PROTO_READDIR_MAX, 4);
    assert_int_equal(proto_readdir_req_decode(w.p, w.len, &out), 0);
    patch_be(w.p, CRED_LEN + 16, 0, 4);
    assert_int_equal(proto_readdir_req_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, CRED_LEN + 16, PROTO_READDIR_MAX + 1, 4);
    assert_int_equal(proto_readdir_req_decode(w.p, w.len, &out), -EPROTO);
    proto_wbuf_reset(&w);
    in.max_entries = 0;
    proto_readdir_req_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    FREE_BUFS(&w, &s);
}

static void test_proto_readdir_req_decode_unknown_flag(void **state)
{
    struct proto_readdir_req in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(readdir_req, &in, &w, &s);
    patch_be(w.p, CRED_LEN + 20, 0x2, 4);
    assert_int_equal(proto_readdir_req_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

static void test_proto_readdir_rep_decode_roundtrip_plus(void **state)
{
    static const char *names[] = {".", "..", "vm1.qcow2"};
    struct proto_readdir_rep in, out;
    struct proto_wbuf w, s;
    struct proto_dirent_iter it;
    struct proto_dirent d;
    struct proto_attr want;
    int i = 0;

    (void)state;
    ROUNDTRIP(readdir_rep, PROTO_MSG_READDIR_REP, &in, &out, &w, &s);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.eof, in.eof);
    assert_int_equal(out.count, 3);
    assert_pstr_equal(out.raw, in.raw);
    proto_dirent_iter_init(&it, &out);
    while (proto_dirent_next(&it, &d)) {
        assert_true(i < 3);
        assert_int_equal(d.cookie, (uint64_t)i + 1);
        assert_pstr_is(d.name, names[i]);
        sample_attr(&want, 200 + (uint64_t)i);
        assert_attr_equal(&d.attr, &want);
        i++;
    }
    assert_int_equal(i, 3);
    assert_false(proto_dirent_next(&it, &d));
    FREE_BUFS(&w, &s);
}

static void test_proto_readdir_rep_decode_roundtrip_plain(void **state)
{
    struct proto_readdir_rep in = {0}, out;
    struct proto_wbuf w, s;
    struct proto_dirent_iter it;
    struct proto_dirent d;

    (void)state;
    proto_wbuf_init(&w);
    proto_wbuf_init(&s);
    memset(&d, 0, sizeof(d));
    d.cookie = 77;
    d.name = pstr("a");
    sample_attr(&d.attr, 900);
    proto_dirent_put(&s, 0, &d);
    /* Without PLUS an entry is cookie, name, ino and mode only. */
    assert_int_equal(s.len, 8 + 2 + 1 + 8 + 4);
    in.count = 1;
    in.raw = (struct proto_str){(const char *)s.p, (uint32_t)s.len};
    proto_readdir_rep_encode(&w, &in);
    assert_int_equal(w.err, 0);
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), 0);
    assert_short_long(PROTO_MSG_READDIR_REP, w.p, w.len);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.eof, 0);
    proto_dirent_iter_init(&it, &out);
    assert_true(proto_dirent_next(&it, &d));
    assert_int_equal(d.cookie, 77);
    assert_pstr_is(d.name, "a");
    assert_int_equal(d.attr.ino, 900);
    assert_int_equal(d.attr.mode, 0100644);
    assert_int_equal(d.attr.size, 0);
    assert_int_equal(d.attr.version, 0);
    assert_false(proto_dirent_next(&it, &d));
    FREE_BUFS(&w, &s);
}

static void test_proto_readdir_rep_decode_empty(void **state)
{
    struct proto_readdir_rep in = {0}, out;
    struct proto_wbuf w;
    struct proto_dirent_iter it;
    struct proto_dirent d;

    (void)state;
    proto_wbuf_init(&w);
    in.eof = 1;
    proto_readdir_rep_encode(&w, &in);
    assert_int_equal(w.len, 9);
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), 0);
    assert_int_equal(out.eof, 1);
    assert_int_equal(out.count, 0);
    proto_dirent_iter_init(&it, &out);
    assert_false(proto_dirent_next(&it, &d));
    proto_wbuf_free(&w);
}

static void test_proto_readdir_rep_decode_bad_header(void **state)
{
    struct proto_readdir_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(readdir_rep, &in, &w, &s);
    patch_be(w.p, 0, 0x2, 4); /* unknown flag */
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 0, PROTO_READDIR_PLUS, 4);
    patch_be(w.p, 4, 2, 1); /* eof not 0/1 */
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 4, 1, 1);
    patch_be(w.p, 5, 2, 4); /* fewer entries announced than present */
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 5, 4, 4); /* more announced than present */
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    patch_be(w.p, 5, PROTO_READDIR_MAX + 1, 4);
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    /* Entries read without PLUS no longer line up. */
    patch_be(w.p, 5, 3, 4);
    patch_be(w.p, 0, 0, 4);
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), -EPROTO);
    FREE_BUFS(&w, &s);
}

/* Build a one-entry reply whose entry has @cookie and @name, and decode. */
static int one_entry(uint64_t cookie, struct proto_str name)
{
    struct proto_wbuf w;
    struct proto_readdir_rep out;
    int rc;

    proto_wbuf_init(&w);
    proto_put_u32(&w, 0);
    proto_put_u8(&w, 1);
    proto_put_u32(&w, 1);
    proto_put_u64(&w, cookie);
    proto_put_str(&w, name.p, name.len);
    proto_put_u64(&w, 5);
    proto_put_u32(&w, 0040755);
    assert_int_equal(w.err, 0);
    rc = proto_readdir_rep_decode(w.p, w.len, &out);
    proto_wbuf_free(&w);
    return rc;
}

static void test_proto_readdir_rep_decode_bad_entry(void **state)
{
    char name[PROTO_NAME_MAX + 1];

    (void)state;
    memset(name, 'n', sizeof(name));
    assert_int_equal(one_entry(3, pstr("ok")), 0);
    assert_int_equal(one_entry(0, pstr("ok")), -EPROTO);
    assert_int_equal(one_entry(3, pstr("")), -EPROTO);
    assert_int_equal(one_entry(3, pstr("a/b")), -EPROTO);
    assert_int_equal(one_entry(3, (struct proto_str){"a\0b", 3}), -EPROTO);
    assert_int_equal(one_entry(3, (struct proto_str){name, PROTO_NAME_MAX}), 0);
    assert_int_equal(one_entry(3, (struct proto_str){name, PROTO_NAME_MAX + 1}),
                     -EPROTO);
}

static void test_proto_readdir_rep_encode_checks_entries(void **state)
{
    struct proto_readdir_rep in, out;
    struct proto_wbuf w, s;

    (void)state;
    ENCODE_SAMPLE(readdir_rep, &in, &w, &s);
    assert_int_equal(proto_readdir_rep_decode(w.p, w.len, &out), 0);
    proto_wbuf_reset(&w);
    in.count = 4;
    proto_readdir_rep_encode(&w, &in);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, 0);
    FREE_BUFS(&w, &s);
}

int test_proto_readdir(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_readdir_req_decode_roundtrip),
        cmocka_unit_test(test_proto_readdir_req_decode_max_entries_range),
        cmocka_unit_test(test_proto_readdir_req_decode_unknown_flag),
        cmocka_unit_test(test_proto_readdir_rep_decode_roundtrip_plus),
        cmocka_unit_test(test_proto_readdir_rep_decode_roundtrip_plain),
        cmocka_unit_test(test_proto_readdir_rep_decode_empty),
        cmocka_unit_test(test_proto_readdir_rep_decode_bad_header),
        cmocka_unit_test(test_proto_readdir_rep_decode_bad_entry),
        cmocka_unit_test(test_proto_readdir_rep_encode_checks_entries),
    };
    return cmocka_run_group_tests_name("proto_readdir", tests, NULL, NULL);
}
