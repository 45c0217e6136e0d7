/* test_meta_auth.c: identities and service keys as operation records, and
 * where an inode or a name stands for an identity's paths (meta_auth.c,
 * docs/security.md). */
#include "test_meta_util.h"

#define R cred_root()

static int auth_add(struct fx *f, const char *name, const char *caps,
                    uint8_t fill)
{
    struct proto_wbuf w;
    uint8_t secret[32];

    memset(secret, fill, sizeof(secret));
    proto_wbuf_init(&w);
    proto_put_str(&w, name, strlen(name));
    proto_put_str(&w, caps, strlen(caps));
    proto_put_raw(&w, secret, sizeof(secret));
    return fx_apply(f, META_OP_AUTH_ADD, &w, NULL);
}

static int auth_caps(struct fx *f, const char *name, const char *caps)
{
    struct proto_auth_set_req q = {.name = str_of(name), .caps = str_of(caps)};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_auth_set_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_AUTH_CAPS_REQ, &w, NULL);
}

static int auth_rm(struct fx *f, const char *name)
{
    struct proto_auth_name_req q = {.name = str_of(name)};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_auth_name_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_AUTH_RM_REQ, &w, NULL);
}

static int service_key(struct fx *f, uint32_t id, uint8_t fill)
{
    struct proto_wbuf w;
    uint8_t secret[32];

    memset(secret, fill, sizeof(secret));
    proto_wbuf_init(&w);
    proto_put_u32(&w, id);
    proto_put_raw(&w, secret, sizeof(secret));
    return fx_apply(f, META_OP_SERVICE_KEY, &w, NULL);
}

static int count_fn(const char *name, const char *caps, void *arg)
{
    (void)name;
    (void)caps;
    ++*(int *)arg;
    return 0;
}

static void test_meta_auth_add_get_caps_rm(void **state)
{
    struct fx *f = *state;
    struct meta_identity id;
    int n = 0;

    assert_int_equal(auth_add(f, "client.a", "rw path=/a", 0x5a), 0);
    assert_int_equal(auth_add(f, "client.a", "ro", 0x5b), -EEXIST);
    assert_int_equal(auth_add(f, "client.b", "path=relative", 1), -EINVAL);
    assert_int_equal(meta_auth_get(f->db, "client.a", 8, &id), 0);
    assert_string_equal(id.name, "client.a");
    assert_string_equal(id.caps, "rw path=/a");
    assert_int_equal(id.secret[0], 0x5a);
    assert_int_equal(meta_auth_get(f->db, "client.b", 8, &id), -ENOENT);

    assert_int_equal(auth_caps(f, "client.a", "ro path=/a"), 0);
    assert_int_equal(meta_auth_get(f->db, "client.a", 8, &id), 0);
    assert_string_equal(id.caps, "ro path=/a");
    assert_int_equal(id.secret[31], 0x5a); /* the key stays */
    assert_int_equal(auth_caps(f, "client.a", "root"), -EINVAL);
    assert_int_equal(auth_caps(f, "nobody", "ro"), -ENOENT);

    assert_int_equal(meta_auth_foreach(f->db, count_fn, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(auth_rm(f, "client.a"), 0);
    assert_int_equal(auth_rm(f, "client.a"), -ENOENT);
    assert_int_equal(meta_auth_get(f->db, "client.a", 8, &id), -ENOENT);
}

/* The records alone decide the identities: replaying the op log into a
 * fresh database gives the same keys. */
static void test_meta_auth_replay_same_keys(void **state)
{
    struct fx *f = *state;
    struct meta_identity a, b;
    struct meta_db *copy;

    assert_int_equal(auth_add(f, "client.a", "", 0x77), 0);
    assert_int_equal(service_key(f, 1, 0x31), 0);
    assert_int_equal(meta_db_open(":memory:", &copy), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, fx_replay_op, copy), 0);
    assert_int_equal(meta_auth_get(f->db, "client.a", 8, &a), 0);
    assert_int_equal(meta_auth_get(copy, "client.a", 8, &b), 0);
    assert_memory_equal(a.secret, b.secret, 32);
    meta_db_close(copy);
}

static void test_meta_service_keys_newest_two(void **state)
{
    struct fx *f = *state;
    struct meta_service_key k[4];

    assert_int_equal(meta_service_keys(f->db, k, 4), 0);
    assert_int_equal(service_key(f, 1, 0x31), 0);
    assert_int_equal(service_key(f, 1, 0x32), -EINVAL); /* not newer */
    assert_int_equal(service_key(f, 2, 0x32), 0);
    assert_int_equal(service_key(f, 3, 0x33), 0);
    assert_int_equal(meta_service_keys(f->db, k, 4), META_SERVICE_KEYS);
    assert_int_equal(k[0].id, 3);
    assert_int_equal(k[0].secret[0], 0x33);
    assert_int_equal(k[1].id, 2);
}

/* /tenantA/sub/f, /tenantB/g, and an unlinked file held open. */
static void test_meta_auth_reach_paths(void **state)
{
    struct fx *f = *state;
    struct proto_attr a, sub, b, fa, fb, o;
    struct proto_str name_b = str_of("tenantB"), name_a = str_of("tenantA"),
                     dotdot = str_of("..");
    struct auth_caps caps;
    enum auth_reach r;

    f->session = fx_session_open(f);
    assert_int_equal(do_mkdir(f, R, ROOT, "tenantA", 0755, &a), 0);
    assert_int_equal(do_mkdir(f, R, a.ino, "sub", 0755, &sub), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "tenantB", 0755, &b), 0);
    assert_int_equal(do_create(f, R, sub.ino, "f", 0644, &fa), 0);
    assert_int_equal(do_create(f, R, b.ino, "g", 0644, &fb), 0);
    assert_int_equal(do_mknod(f, R, a.ino, "o", S_IFREG | 0644,
                              PROTO_MKNOD_EXCL | PROTO_MKNOD_HOLD, &o),
                     0);
    assert_int_equal(do_unlink(f, R, a.ino, "o"), 0);
    assert_int_equal(auth_caps_parse("path=/tenantA", &caps, NULL), 0);

#define REACH(ino, name, want)                                                 \
    do {                                                                       \
        assert_int_equal(                                                      \
            meta_auth_reach(f->db, &caps, f->session, ino, name, &r), 0);      \
        assert_int_equal(r, want);                                             \
    } while (0)
    REACH(fa.ino, NULL, AUTH_REACH_INSIDE);
    REACH(a.ino, NULL, AUTH_REACH_INSIDE);
    REACH(ROOT, NULL, AUTH_REACH_ABOVE);
    REACH(ROOT, &name_a, AUTH_REACH_INSIDE);
    REACH(ROOT, &name_b, AUTH_REACH_OUTSIDE);
    REACH(fb.ino, NULL, AUTH_REACH_OUTSIDE);
    REACH(b.ino, NULL, AUTH_REACH_OUTSIDE);
    REACH(sub.ino, &dotdot, AUTH_REACH_OUTSIDE);
    REACH(o.ino, NULL, AUTH_REACH_INSIDE); /* held by this session */
    assert_int_equal(meta_auth_reach(f->db, &caps, 0, o.ino, NULL, &r), 0);
    assert_int_equal(r, AUTH_REACH_OUTSIDE);
    /* Moved out by someone else: outside from then on. */
    assert_int_equal(do_rename(f, R, sub.ino, "f", b.ino, "f2", 0), 0);
    REACH(fa.ino, NULL, AUTH_REACH_OUTSIDE);
#undef REACH
}

int test_meta_auth(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(test_meta_auth_add_get_caps_rm),
        T(test_meta_auth_replay_same_keys),
        T(test_meta_service_keys_newest_two),
        T(test_meta_auth_reach_paths),
    };
#undef T
    return cmocka_run_group_tests_name("meta_auth", tests, NULL, NULL);
}
