/* Tests for NBD over TLS: the option phase's TLS rules
 * (vd_handshake_gate() and their effect on a connection), vd_tls.c's
 * credential checks, and PSK sessions end to end against a GnuTLS client
 * over a socketpair (see test_vd_util.h), including the export_check
 * hook that receives the TLS name.
 */
#include "test_vd_util.h"

#include <stdio.h>
#include <sys/stat.h>

#define FIXED (NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)
#define KEY "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define OTHER_KEY "ff112233445566778899aabbccddeeff00112233445566778899aabbcc"

/* ---- The rules, apart from I/O ---------------------------------------- */

static void test_vd_handshake_gate_rules(void **state)
{
    static const struct {
        enum vd_tls_mode mode;
        bool active;
        uint32_t opt, len;
        enum vd_gate want;
    } cases[] = {
        {VD_TLS_OFF, false, NBD_OPT_STARTTLS, 0, VD_GATE_NO_TLS},
        {VD_TLS_OFF, false, NBD_OPT_STARTTLS, 3, VD_GATE_NO_TLS},
        {VD_TLS_OFF, false, NBD_OPT_GO, 10, VD_GATE_SERVE},
        {VD_TLS_OFF, false, NBD_OPT_EXPORT_NAME, 4, VD_GATE_SERVE},
        {VD_TLS_ON, false, NBD_OPT_STARTTLS, 0, VD_GATE_STARTTLS},
        {VD_TLS_ON, false, NBD_OPT_STARTTLS, 1, VD_GATE_TLS_DATA},
        {VD_TLS_ON, false, NBD_OPT_GO, 10, VD_GATE_SERVE},
        {VD_TLS_ON, false, NBD_OPT_EXPORT_NAME, 4, VD_GATE_SERVE},
        {VD_TLS_ON, true, NBD_OPT_STARTTLS, 0, VD_GATE_TLS_ACTIVE},
        {VD_TLS_ON, true, NBD_OPT_LIST, 0, VD_GATE_SERVE},
        {VD_TLS_REQUIRE, false, NBD_OPT_STARTTLS, 0, VD_GATE_STARTTLS},
        {VD_TLS_REQUIRE, false, NBD_OPT_STARTTLS, 8, VD_GATE_TLS_DATA},
        {VD_TLS_REQUIRE, false, NBD_OPT_ABORT, 0, VD_GATE_SERVE},
        {VD_TLS_REQUIRE, false, NBD_OPT_EXPORT_NAME, 4, VD_GATE_DROP},
        {VD_TLS_REQUIRE, false, NBD_OPT_GO, 10, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, false, NBD_OPT_INFO, 10, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, false, NBD_OPT_LIST, 0, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, false, NBD_OPT_STRUCTURED_REPLY, 0, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, false, NBD_OPT_SET_META_CONTEXT, 20, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, false, 4242, 0, VD_GATE_TLS_REQD},
        {VD_TLS_REQUIRE, true, NBD_OPT_STARTTLS, 0, VD_GATE_TLS_ACTIVE},
        {VD_TLS_REQUIRE, true, NBD_OPT_EXPORT_NAME, 4, VD_GATE_SERVE},
        {VD_TLS_REQUIRE, true, NBD_OPT_GO, 10, VD_GATE_SERVE},
        {VD_TLS_REQUIRE, true, 4242, 0, VD_GATE_SERVE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum vd_gate got = vd_handshake_gate(cases[i].mode, cases[i].active,
                                             cases[i].opt, cases[i].len);
        if (got != cases[i].want)
            fail_msg("case %zu: mode=%d active=%d opt=%u len=%u: got %d, "
                     "want %d",
                     i, cases[i].mode, cases[i].active, cases[i].opt,
                     cases[i].len, got, cases[i].want);
    }
}

/* ---- Credentials -----------------------------------------------------------
 */

/* A PSK file holding @text with @mode; caller unlinks @path. */
static void psk_file(char *path, const char *text, mode_t mode)
{
    strcpy(path, "/tmp/test-vd-tls-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* The PSK file of the test running: GnuTLS reads it at every handshake,
 * so it stays until tls_done(). */
static char psk_path[64];

static int tls_new_psk(const char *text, mode_t mode, struct vd_tls **out)
{
    char why[256];
    psk_file(psk_path, text, mode);
    struct vd_tls_opts o = {.psk_file = psk_path};
    int rc = vd_tls_new(&o, out, why, sizeof(why));
    if (rc < 0) {
        assert_true(strstr(why, psk_path) != NULL); /* names the file */
        unlink(psk_path);
    }
    return rc;
}

static void tls_done(struct vd_tls *t)
{
    vd_tls_free(t);
    unlink(psk_path);
}

static void test_vd_tls_new_psk_file_checked(void **state)
{
    struct vd_tls *t = NULL;
    char why[256];

    (void)state;
    assert_int_equal(tls_new_psk("alice:" KEY "\n\nbob:0a0b\n", 0600, &t), 0);
    tls_done(t);
    assert_int_equal(tls_new_psk("alice:" KEY "\n", 0644, &t), -EACCES);
    assert_int_equal(tls_new_psk("alice:" KEY "\n", 0620, &t), -EACCES);
    assert_int_equal(tls_new_psk("alice " KEY "\n", 0600, &t), -EINVAL);
    assert_int_equal(tls_new_psk(":" KEY "\n", 0600, &t), -EINVAL);
    assert_int_equal(tls_new_psk("alice:abc\n", 0600, &t), -EINVAL);
    assert_int_equal(tls_new_psk("alice:zz\n", 0600, &t), -EINVAL);
    assert_int_equal(tls_new_psk("\n\n", 0600, &t), -EINVAL);

    struct vd_tls_opts none = {0};
    assert_int_equal(vd_tls_new(&none, &t, why, sizeof(why)), -EINVAL);
    struct vd_tls_opts both = {.psk_file = "/x", .cert_dir = "/y"};
    assert_int_equal(vd_tls_new(&both, &t, why, sizeof(why)), -EINVAL);
    struct vd_tls_opts missing = {.psk_file = "/nonexistent/keys.psk"};
    assert_int_equal(vd_tls_new(&missing, &t, why, sizeof(why)), -ENOENT);
    struct vd_tls_opts nodir = {.cert_dir = "/nonexistent"};
    assert_int_equal(vd_tls_new(&nodir, &t, why, sizeof(why)), -ENOENT);
    assert_non_null(strstr(why, "server-key.pem"));
}

/* ---- Connections --------------------------------------------------------- */

/* What the export_check hook saw, and what it answers. */
struct check_fake {
    int calls;
    char user[64]; /* "" when the identity had no TLS name */
    enum vd_tls_auth auth;
    const char *allow; /* only this TLS name may open; NULL: anyone */
    bool readonly;     /* make the export read-only */
};

static int fake_check(void *ctx, const struct vd_identity *who,
                      const char *name, bool *readonly, char *why,
                      size_t whylen)
{
    struct check_fake *f = ctx;

    (void)name;
    f->calls++;
    snprintf(f->user, sizeof(f->user), "%s",
             who->tls_user ? who->tls_user : "");
    f->auth = who->auth;
    assert_string_equal(who->peer, "test");
    if (f->allow && (!who->tls_user || strcmp(who->tls_user, f->allow))) {
        snprintf(why, whylen, "identity has no rights on %s", name);
        return -EACCES;
    }
    if (f->readonly)
        *readonly = true;
    return 0;
}

/* A connection with TLS @mode and a PSK file naming alice. */
static struct harness *start_tls(enum vd_tls_mode mode, struct vd_tls **t,
                                 struct check_fake *f)
{
    struct harness *h = harness_new(false, NULL);
    assert_int_equal(tls_new_psk("alice:" KEY "\n", 0600, t), 0);
    h->cfg.tls_mode = mode;
    h->cfg.tls = *t;
    if (f) {
        h->cfg.export_check = fake_check;
        h->cfg.export_check_ctx = f;
    }
    harness_run(h);
    return h;
}

static void expect_reply(struct harness *h, uint32_t opt, uint32_t type)
{
    struct opt_rep r;
    c_opt_reply(h, &r);
    assert_int_equal(r.opt, opt);
    assert_int_equal(r.type, type);
}

static void test_vd_tls_require_refuses_options_in_clear(void **state)
{
    struct vd_tls *t;
    struct harness *h = start_tls(VD_TLS_REQUIRE, &t, NULL);
    uint8_t buf[64];
    struct opt_rep r;

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_GO, buf, go_data(buf, "disk", NULL, 0));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_TLS_REQD);
    assert_non_null(memmem(r.data, r.len, "requires TLS", 12));
    c_opt(h, NBD_OPT_LIST, NULL, 0);
    expect_reply(h, NBD_OPT_LIST, NBD_REP_ERR_TLS_REQD);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    expect_reply(h, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_TLS_REQD);
    c_opt(h, NBD_OPT_STARTTLS, "x", 1);
    expect_reply(h, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID);
    /* ABORT is still served in the clear. */
    c_opt(h, NBD_OPT_ABORT, NULL, 0);
    expect_reply(h, NBD_OPT_ABORT, NBD_REP_ACK);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), 0);
    harness_stop(h);
    tls_done(t);
}

static void test_vd_tls_require_export_name_in_clear_closes(void **state)
{
    struct vd_tls *t;
    struct check_fake f = {0};
    struct harness *h = start_tls(VD_TLS_REQUIRE, &t, &f);

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_EXPORT_NAME, "disk", 4);
    assert_true(c_eof(h));
    assert_int_equal(harness_join(h), -EACCES);
    assert_int_equal(f.calls, 0); /* invariant 1: no export opened */
    harness_stop(h);
    tls_done(t);
}

/* STARTTLS accepted and the TLS handshake run as @user with @key. */
static int starttls(struct harness *h, const char *user, const char *key)
{
    c_opt(h, NBD_OPT_STARTTLS, NULL, 0);
    expect_reply(h, NBD_OPT_STARTTLS, NBD_REP_ACK);
    return c_starttls_psk(h, user, key);
}

static void test_vd_tls_psk_session_serves_io(void **state)
{
    struct vd_tls *t;
    struct check_fake f = {.allow = "alice"};
    struct harness *h = start_tls(VD_TLS_REQUIRE, &t, &f);
    static uint8_t out[64 << 10], in[64 << 10];
    uint64_t size;
    uint16_t tflags;

    (void)state;
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 3);
    c_greet(h, FIXED);
    assert_int_equal(starttls(h, "alice", KEY), 0);
    c_opt(h, NBD_OPT_STARTTLS, NULL, 0);
    expect_reply(h, NBD_OPT_STARTTLS, NBD_REP_ERR_INVALID);
    c_go(h, "disk", &size, &tflags);
    assert_int_equal(size, T_DISK_SIZE);
    assert_string_equal(f.user, "alice");
    assert_int_equal(f.auth, VD_TLS_AUTH_PSK);
    assert_false(tflags & NBD_FLAG_READ_ONLY);

    /* A 4 KiB write and read (one record each way), then 64 KiB
     * (a reply of several records). */
    c_req(h, 0, NBD_CMD_WRITE, 1, 8192, 4096, out);
    assert_int_equal(c_simple(h, 1), 0);
    c_req(h, 0, NBD_CMD_READ, 2, 8192, 4096, NULL);
    assert_int_equal(c_simple(h, 2), 0);
    c_read(h, in, 4096);
    assert_memory_equal(in, out, 4096);
    c_req(h, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 3, 1 << 20, sizeof(out), out);
    assert_int_equal(c_simple(h, 3), 0);
    c_req(h, 0, NBD_CMD_READ, 4, 1 << 20, sizeof(in), NULL);
    assert_int_equal(c_simple(h, 4), 0);
    c_read(h, in, sizeof(in));
    assert_memory_equal(in, out, sizeof(in));

    c_req(h, 0, NBD_CMD_DISC, 5, 0, 0, NULL);
    assert_true(c_eof(h)); /* close_notify, then the socket's end */
    assert_int_equal(harness_join(h), 0);
    harness_stop(h);
    tls_done(t);
}

static void test_vd_tls_wrong_key_closes(void **state)
{
    struct vd_tls *t;
    struct check_fake f = {0};
    struct harness *h = start_tls(VD_TLS_REQUIRE, &t, &f);

    (void)state;
    c_greet(h, FIXED);
    assert_true(starttls(h, "alice", OTHER_KEY) < 0);
    assert_int_equal(harness_join(h), -EKEYREJECTED);
    assert_int_equal(f.calls, 0);
    harness_stop(h);
    tls_done(t);
}

static void test_vd_tls_unknown_identity_closes(void **state)
{
    struct vd_tls *t;
    struct harness *h = start_tls(VD_TLS_REQUIRE, &t, NULL);

    (void)state;
    c_greet(h, FIXED);
    assert_true(starttls(h, "mallory", KEY) < 0);
    assert_int_equal(harness_join(h), -EKEYREJECTED);
    harness_stop(h);
    tls_done(t);
}

/* Options negotiated in the clear do not survive STARTTLS. */
static void test_vd_tls_starttls_forgets_clear_options(void **state)
{
    struct vd_tls *t;
    struct harness *h = start_tls(VD_TLS_ON, &t, NULL);
    uint8_t buf[256];

    (void)state;
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    expect_reply(h, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
    assert_int_equal(starttls(h, "alice", KEY), 0);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", NBD_META_BASE_ALLOCATION));
    expect_reply(h, NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    expect_reply(h, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", NBD_META_BASE_ALLOCATION));
    expect_reply(h, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT);
    expect_reply(h, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK);
    harness_stop(h);
    tls_done(t);
}

/* A backend that knows file "snap" to tell changes against. */
static int fake_changes_check(void *ctx, const char *since)
{
    (void)ctx;
    return strcmp(since, "snap") == 0 ? 0 : -ENOENT;
}

/* A tessera:changes-since context chosen in the clear is forgotten too:
 * BLOCK_STATUS inside TLS, with no context selected there, is refused. */
static void test_vd_tls_starttls_forgets_changes_context(void **state)
{
    static struct vd_backend_ops ops;
    struct harness *h = harness_new(false, NULL);
    struct vd_tls *t;
    uint8_t buf[256];
    uint64_t size;
    uint16_t tflags;
    struct chunk ch;

    (void)state;
    assert_int_equal(tls_new_psk("alice:" KEY "\n", 0600, &t), 0);
    h->cfg.tls_mode = VD_TLS_ON;
    h->cfg.tls = t;
    ops = *h->be->ops;
    ops.changes_check = fake_changes_check;
    h->be->ops = &ops;
    harness_run(h);
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    expect_reply(h, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
    c_opt(h, NBD_OPT_SET_META_CONTEXT, buf,
          meta_data(buf, "disk", "tessera:changes-since:snap"));
    expect_reply(h, NBD_OPT_SET_META_CONTEXT, NBD_REP_META_CONTEXT);
    expect_reply(h, NBD_OPT_SET_META_CONTEXT, NBD_REP_ACK);
    assert_int_equal(starttls(h, "alice", KEY), 0);
    c_opt(h, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    expect_reply(h, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK);
    c_go(h, "disk", &size, &tflags);
    c_req(h, 0, NBD_CMD_BLOCK_STATUS, 8, 0, 4096, NULL);
    c_chunk(h, &ch);
    assert_int_equal(ch.type, NBD_REPLY_TYPE_ERROR);
    assert_true(ch.len >= 4);
    assert_int_equal(vd_get32(ch.data), NBD_EINVAL);
    free(ch.data);
    harness_stop(h);
    tls_done(t);
}

/* --tls=on: TLS optional; a client in the clear is served. */
static void test_vd_tls_on_serves_clear_client(void **state)
{
    struct vd_tls *t;
    struct check_fake f = {0};
    struct harness *h = start_tls(VD_TLS_ON, &t, &f);
    uint64_t size;
    uint16_t tflags;

    (void)state;
    c_greet(h, FIXED);
    c_go(h, "other", &size, &tflags);
    assert_int_equal(size, T_OTHER_SIZE);
    assert_int_equal(f.calls, 1);
    assert_string_equal(f.user, ""); /* no TLS, no name */
    assert_int_equal(f.auth, VD_TLS_AUTH_NONE);
    harness_stop(h);
    tls_done(t);
}

/* The hook's refusal reaches the client as POLICY with its sentence; a
 * read-only answer shows in the transmission flags. */
static void test_vd_export_check_refuses_and_limits(void **state)
{
    struct harness *h = harness_new(false, NULL);
    struct check_fake f = {.allow = "alice"};
    uint8_t buf[64];
    struct opt_rep r;

    (void)state;
    h->cfg.export_check = fake_check;
    h->cfg.export_check_ctx = &f;
    harness_run(h);
    c_greet(h, FIXED);
    c_opt(h, NBD_OPT_GO, buf, go_data(buf, "disk", NULL, 0));
    c_opt_reply(h, &r);
    assert_int_equal(r.type, NBD_REP_ERR_POLICY);
    assert_non_null(memmem(r.data, r.len, "no rights on disk", 17));
    c_opt(h, NBD_OPT_EXPORT_NAME, "disk", 4);
    assert_true(c_eof(h));
    harness_stop(h);

    struct vd_tls *t;
    struct check_fake ro = {.allow = "alice", .readonly = true};
    uint64_t size;
    uint16_t tflags;
    h = start_tls(VD_TLS_REQUIRE, &t, &ro);
    c_greet(h, FIXED);
    assert_int_equal(starttls(h, "alice", KEY), 0);
    c_go(h, "disk", &size, &tflags);
    assert_true(tflags & NBD_FLAG_READ_ONLY);
    c_req(h, 0, NBD_CMD_WRITE, 9, 0, 4, "abcd");
    assert_int_equal(c_simple(h, 9), NBD_EPERM);
    harness_stop(h);
    tls_done(t);
}

/* A certificate's DN names its identity in CN; an export name becomes
 * the normalised path the identity's capabilities are checked against. */
static void test_vd_tls_names_and_paths(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(vd_tls_dn_cn("CN=hv3,O=Tessera test", out, sizeof(out)),
                     0);
    assert_string_equal(out, "hv3");
    assert_int_equal(vd_tls_dn_cn("O=A\\,CN=fake,CN=nbd.hv3", out,
                                  sizeof(out)),
                     0);
    assert_string_equal(out, "nbd.hv3");
    assert_int_equal(vd_tls_dn_cn("O=Tessera test", out, sizeof(out)),
                     -ENOENT);
    assert_int_equal(vd_tls_dn_cn("CN=,O=x", out, sizeof(out)), -ENOENT);
    assert_int_equal(vd_tls_dn_cn("CN=abcdef", out, 4), -ENAMETOOLONG);

    assert_int_equal(vd_export_path("tenantA//disk.img/", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/tenantA/disk.img");
    assert_int_equal(vd_export_path("/a", out, sizeof(out)), 0);
    assert_string_equal(out, "/a");
    assert_int_equal(vd_export_path("", out, sizeof(out)), 0);
    assert_string_equal(out, "/");
    assert_int_equal(vd_export_path("a/../b", out, sizeof(out)), -EINVAL);
    assert_int_equal(vd_export_path("./b", out, sizeof(out)), -EINVAL);
    assert_int_equal(vd_export_path("abcdefgh", out, 6), -EINVAL);
}

int test_vd_tls(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vd_handshake_gate_rules),
        cmocka_unit_test(test_vd_tls_new_psk_file_checked),
        cmocka_unit_test(test_vd_tls_require_refuses_options_in_clear),
        cmocka_unit_test(test_vd_tls_require_export_name_in_clear_closes),
        cmocka_unit_test(test_vd_tls_psk_session_serves_io),
        cmocka_unit_test(test_vd_tls_wrong_key_closes),
        cmocka_unit_test(test_vd_tls_unknown_identity_closes),
        cmocka_unit_test(test_vd_tls_starttls_forgets_clear_options),
        cmocka_unit_test(test_vd_tls_starttls_forgets_changes_context),
        cmocka_unit_test(test_vd_tls_on_serves_clear_client),
        cmocka_unit_test(test_vd_export_check_refuses_and_limits),
        cmocka_unit_test(test_vd_tls_names_and_paths),
    };
    return cmocka_run_group_tests_name("vd_tls", tests, NULL, NULL);
}
