/* test_meta_raft.c: the parts of meta_raft.c that need no network: the
 * --bootstrap member list and the log entry framing libraft stores
 * (meta_op_entry_wrap()).
 */
#include "test_meta_util.h"

#include "meta_raft.h"

static void test_meta_raft_members_parse_good(void **state)
{
    struct meta_raft_member m[4];
    (void)state;
    assert_int_equal(
        meta_raft_members_parse("1=127.0.0.1:9101,2=h2:9102,30=h3:9", m, 4), 3);
    assert_int_equal(m[0].id, 1);
    assert_string_equal(m[0].raft_addr, "127.0.0.1:9101");
    assert_int_equal(m[2].id, 30);
    assert_string_equal(m[2].raft_addr, "h3:9");
    assert_true(m[1].voter);
}

static void test_meta_raft_members_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "1",
        "1=",
        "=h:1",
        "0=h:1",
        "x=h:1",
        "1=hostonly",
        "-1=h:1",
        "1=h:1,",
        "1=h:1,,2=h:2",
        "1=h:1,1=h:2",
        "1=h:1,2=h:1",
        "1=h:1,2=h:2,3=h:3,4=h:4,5=h:5",
    };
    struct meta_raft_member m[4];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (meta_raft_members_parse(bad[i], m, 4) != -EINVAL)
            fail_msg("accepted: \"%s\"", bad[i]);
}

/* The records between snapshots follow the database's size, within
 * bounds. */
static void test_meta_raft_snapshot_threshold(void **state)
{
    (void)state;
    assert_int_equal(meta_raft_snapshot_threshold(0), META_RAFT_SNAPSHOT_MIN);
    assert_int_equal(meta_raft_snapshot_threshold(4096),
                     META_RAFT_SNAPSHOT_MIN);
    assert_int_equal(
        meta_raft_snapshot_threshold((size_t)META_RAFT_SNAPSHOT_BYTES * 10000),
        10000);
    assert_int_equal(meta_raft_snapshot_threshold(
                         (size_t)META_RAFT_SNAPSHOT_BYTES * 10000 + 255),
                     10000);
    assert_int_equal(meta_raft_snapshot_threshold((size_t)1 << 40),
                     META_RAFT_SNAPSHOT_MAX);
}

static void test_meta_op_entry_round_trip(void **state)
{
    (void)state;
    for (size_t n = 0; n < 20; n++) {
        uint8_t rec[20];
        const uint8_t *got;
        size_t len;
        struct proto_wbuf w;
        memset(rec, (int)n + 1, sizeof(rec));
        proto_wbuf_init(&w);
        meta_op_entry_wrap(&w, rec, n);
        assert_int_equal(w.err, 0);
        assert_int_equal(w.len % META_OP_ENTRY_ALIGN, 0);
        assert_true(w.len >= 4 + n && w.len < 4 + n + META_OP_ENTRY_ALIGN);
        assert_int_equal(meta_op_entry_unwrap(w.p, w.len, &got, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(got, rec, n);
        proto_wbuf_free(&w);
    }
}

static void test_meta_op_entry_unwrap_bad(void **state)
{
    uint8_t e[16] = {0, 0, 0, 3, 'a', 'b', 'c', 0};
    const uint8_t *got;
    size_t len;
    (void)state;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), 0);
    /* Short, not whole units, too long for its length, bad padding. */
    assert_int_equal(meta_op_entry_unwrap(e, 3, &got, &len), -EPROTO);
    assert_int_equal(meta_op_entry_unwrap(e, 7, &got, &len), -EPROTO);
    assert_int_equal(meta_op_entry_unwrap(e, 16, &got, &len), -EPROTO);
    e[7] = 1;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), -EPROTO);
    e[7] = 0;
    e[3] = 5;
    assert_int_equal(meta_op_entry_unwrap(e, 8, &got, &len), -EPROTO);
}

int test_meta_raft(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_raft_members_parse_good),
        cmocka_unit_test(test_meta_raft_members_parse_bad),
        cmocka_unit_test(test_meta_raft_snapshot_threshold),
        cmocka_unit_test(test_meta_op_entry_round_trip),
        cmocka_unit_test(test_meta_op_entry_unwrap_bad),
    };
    return cmocka_run_group_tests_name("meta_raft", tests, NULL, NULL);
}
