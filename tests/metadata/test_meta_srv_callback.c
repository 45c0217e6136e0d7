/* Tests for the delegated directories of meta_srv_callback.c
 * (docs/protocol.md §14.3, docs/caching.md "Delegated directories"): a
 * real struct meta_srv on its own uv loop thread, over a database in a
 * temp dir, listening on loopback without authentication, metad running
 * with --promise-ms 60000 (2000 where a holder must lose its delegation
 * by the timeout of its recall, bounded by the promise).  Its peers are fake
 * client sessions that note every callback break they get and answer it at
 * once, or hold the answers until the test lets them go: so a test sees a
 * request held while its recall is unanswered, what the holder sends meanwhile
 * dispatched, and the held request served only after the answer.
 *
 * Sessions: W holds delegations, B is another session registered for
 * callbacks, N another without callbacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "meta_srv.h"
#include "rpc.h"
#include "test_meta_srv_util.h"

#define ROOT 1u
#define MAX_GOT 64
#define WAIT_S 20 /* bound on any wait: a hang fails instead */

/* A fake client session. */
struct fcl {
    struct rpc_client *rpc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold; /* keep break answers until fcl_answer() */
    unsigned n;
    struct {
        uint64_t ino, req_id;
        uint32_t flags;
    } got[MAX_GOT];
    uint64_t held[MAX_GOT];
    unsigned nheld;
};

struct dx {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct meta_db *db;
    struct meta_srv *srv;
    char dir[64];
    char addr[256];
    struct fcl w, b, n;
    uint32_t promise_ms;
    unsigned seq; /* names made unique per case */
};

/* ---- Fakes ---------------------------------------------------------------
 */

static void fcl_on_request(struct rpc_client *c, uint16_t opcode,
                           uint64_t req_id, const uint8_t *payload, size_t len,
                           void *arg)
{
    struct fcl *f = arg;
    struct proto_callback_break_req q;
    int rc = proto_callback_break_req_decode(payload, len, &q);
    bool keep = false;

    if (opcode == PROTO_MSG_CALLBACK_BREAK_REQ && rc == 0) {
        pthread_mutex_lock(&f->mu);
        if (f->n < MAX_GOT) {
            f->got[f->n].ino = q.ino;
            f->got[f->n].flags = q.flags;
            f->got[f->n].req_id = req_id;
            f->n++;
        }
        keep = f->hold && f->nheld < MAX_GOT;
        if (keep)
            f->held[f->nheld++] = req_id;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    if (!keep)
        rpc_reply_send(c, req_id, (uint16_t)(opcode + 1), rc, NULL, 0);
}

static void deadline(struct timespec *ts)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += WAIT_S;
}

/* Wait until @f got @n breaks in all. */
static void fcl_wait(struct fcl *f, unsigned n)
{
    struct timespec ts;
    int rc = 0;

    deadline(&ts);
    pthread_mutex_lock(&f->mu);
    while (f->n < n && rc == 0)
        rc = pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    unsigned got = f->n;
    pthread_mutex_unlock(&f->mu);
    assert_true(got >= n);
}

static unsigned fcl_count(struct fcl *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->n;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* How many of the breaks @f got were recalls. */
static unsigned fcl_recalls(struct fcl *f)
{
    unsigned n = 0;
    pthread_mutex_lock(&f->mu);
    for (unsigned i = 0; i < f->n; i++)
        n += (f->got[i].flags & PROTO_CB_RECALL) != 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Break @i that @f got: its inode and flags. */
static void fcl_got(struct fcl *f, unsigned i, uint64_t *ino, uint32_t *flags)
{
    pthread_mutex_lock(&f->mu);
    assert_true(i < f->n);
    *ino = f->got[i].ino;
    *flags = f->got[i].flags;
    pthread_mutex_unlock(&f->mu);
}

/* Hold (or not) the answers to the next breaks. */
static void fcl_hold(struct fcl *f, bool hold)
{
    pthread_mutex_lock(&f->mu);
    f->hold = hold;
    pthread_mutex_unlock(&f->mu);
}

/* Send the answers @f held. */
static void fcl_answer(struct fcl *f)
{
    pthread_mutex_lock(&f->mu);
    unsigned n = f->nheld;
    uint64_t ids[MAX_GOT];
    memcpy(ids, f->held, n * sizeof(ids[0]));
    f->nheld = 0;
    pthread_mutex_unlock(&f->mu);
    for (unsigned i = 0; i < n; i++)
        rpc_reply_send(f->rpc, ids[i], PROTO_MSG_CALLBACK_BREAK_REP, 0, NULL,
                       0);
}

/* Send @w (freed) from @f and wait: the reply's status. */
static int call(struct fcl *f, uint16_t opcode, struct proto_wbuf *w)
{
    struct pending p;

    pending_start(&p, f->rpc, opcode, w);
    int rc = pending_wait(&p);
    rpc_reply_free(&p.rep);
    return rc;
}

/* ---- Requests ------------------------------------------------------------
 */

static struct proto_str pstr(const char *s)
{
    return (struct proto_str){s, (uint32_t)strlen(s)};
}

/* MKNOD (regular file) or MKDIR of @name under @parent by @f: its inode. */
static uint64_t make(struct fcl *f, uint64_t parent, const char *name, bool dir)
{
    struct proto_mknod_req mk = {
        .parent = parent, .mode = S_IFREG | 0644, .name = pstr(name)};
    struct proto_mkdir_req md = {
        .parent = parent, .mode = 0755, .name = pstr(name)};
    struct proto_entry_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;
    uint16_t op = dir ? PROTO_MSG_MKDIR_REQ : PROTO_MSG_MKNOD_REQ;

    proto_wbuf_init(&w);
    if (dir)
        proto_mkdir_req_encode(&w, &md);
    else
        proto_mknod_req_encode(&w, &mk);
    assert_int_equal(rpc_call_msg(f->rpc, op, &w, &rep, &out), 0);
    proto_wbuf_free(&w);
    rpc_reply_free(&rep);
    return out.attr.ino;
}

static void getattr_enc(struct proto_wbuf *w, uint64_t ino)
{
    struct proto_ino_req q = {.ino = ino};
    proto_wbuf_init(w);
    proto_ino_req_encode(w, &q);
}

static int getattr(struct fcl *f, uint64_t ino)
{
    struct proto_wbuf w;
    getattr_enc(&w, ino);
    return call(f, PROTO_MSG_GETATTR_REQ, &w);
}

static int delegate(struct fcl *f, uint64_t ino, uint32_t *lease_ms)
{
    struct proto_dir_delegate_req q = {.ino = ino};
    struct proto_callback_register_rep out;
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_dir_delegate_req_encode(&w, &q);
    int rc = rpc_call_msg(f->rpc, PROTO_MSG_DIR_DELEGATE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc == 0) {
        if (lease_ms)
            *lease_ms = out.lease_ms;
        rpc_reply_free(&rep);
    }
    return rc;
}

/* ---- Fixture -------------------------------------------------------------
 */

static void on_stop(uv_async_t *a)
{
    struct dx *d = a->data;
    meta_srv_stop(d->srv);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    struct dx *d = arg;
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* @f connects (speaking at most @max_version, 0 for the newest), opens a
 * session and, with @callbacks, registers for callbacks. */
static void fcl_open(struct dx *d, struct fcl *f, uint16_t max_version,
                     bool callbacks)
{
    struct rpc_opts o = {.role = PROTO_ROLE_CLIENT,
                         .name = "test",
                         .call_timeout_ms = 10000,
                         .max_version = max_version,
                         .on_request = fcl_on_request,
                         .arg = f};
    struct proto_session_open_req so = {
        .lease_ms = 30000, .client_name = {"t", 1}, .host = {"h", 1}};
    struct proto_callback_register_req reg = {.flags = PROTO_CALLBACK_ON};
    struct proto_wbuf w;

    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    assert_int_equal(rpc_client_open(d->addr, &o, &f->rpc), 0);
    proto_wbuf_init(&w);
    proto_session_open_req_encode(&w, &so);
    assert_int_equal(call(f, PROTO_MSG_SESSION_OPEN_REQ, &w), 0);
    if (callbacks) {
        proto_wbuf_init(&w);
        proto_callback_register_req_encode(&w, &reg);
        assert_int_equal(call(f, PROTO_MSG_CALLBACK_REGISTER_REQ, &w), 0);
    }
}

static void fcl_close(struct fcl *f)
{
    if (!f->rpc)
        return;
    rpc_client_close(f->rpc);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

/* A prestate, when given, is the promise lease (uint32_t). */
static int dx_setup(void **state)
{
    struct dx *d = calloc(1, sizeof(*d));
    char path[128];

    assert_non_null(d);
    d->promise_ms = *state ? *(const uint32_t *)*state : 60000;
    snprintf(d->dir, sizeof(d->dir), "/tmp/test-metad-cb.XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(path, sizeof(path), "%s/meta.db", d->dir);
    assert_int_equal(meta_db_open(path, &d->db), 0);
    assert_int_equal(uv_loop_init(&d->loop), 0);
    struct meta_srv_opts o = {.data_dir = d->dir,
                              .listen = "127.0.0.1:0",
                              .promise_ms = d->promise_ms,
                              .no_auth = true};
    assert_int_equal(meta_srv_start(&d->loop, d->db, &o, &d->srv), 0);
    assert_int_equal(meta_srv_listen(d->srv), 0);
    snprintf(d->addr, sizeof(d->addr), "%s", d->srv->listen);
    uv_async_init(&d->loop, &d->stop, on_stop);
    d->stop.data = d;
    assert_int_equal(pthread_create(&d->thread, NULL, loop_main, d), 0);
    fcl_open(d, &d->w, 0, true);
    fcl_open(d, &d->b, 0, true);
    fcl_open(d, &d->n, 0, false);
    *state = d;
    return 0;
}

static int dx_teardown(void **state)
{
    struct dx *d = *state;
    char cmd[128];

    fcl_close(&d->w);
    fcl_close(&d->b);
    fcl_close(&d->n);
    uv_async_send(&d->stop);
    pthread_join(d->thread, NULL);
    meta_srv_free(d->srv);
    uv_loop_close(&d->loop);
    meta_db_close(d->db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
    free(d);
    return 0;
}

/* A new directory under the root, made by W and delegated to it. */
static uint64_t delegated_dir(struct dx *d, char *name, size_t size)
{
    uint32_t lease = 0;

    snprintf(name, size, "d%u", ++d->seq);
    uint64_t dir = make(&d->w, ROOT, name, true);
    assert_int_equal(delegate(&d->w, dir, &lease), 0);
    assert_int_equal(lease, d->promise_ms);
    return dir;
}

/* ---- DIR_DELEGATE -------------------------------------------------------- */

static void test_meta_srv_cb_delegate_refused(void **state)
{
    struct dx *d = *state;
    uint64_t dir = make(&d->w, ROOT, "dir", true);
    uint64_t file = make(&d->w, ROOT, "file", false);
    struct fcl old = {0};
    /* flags 1: no encoder builds it. */
    uint8_t bad[12] = {0, 0, 0, 0, 0, 0, 0, (uint8_t)dir, 0, 0, 0, 1};
    struct pending p;
    struct proto_wbuf w;

    assert_true(dir < 256);
    assert_int_equal(delegate(&d->n, dir, NULL), -EOPNOTSUPP);
    assert_int_equal(delegate(&d->w, file, NULL), -ENOTDIR);
    assert_int_equal(delegate(&d->w, 999999, NULL), -ENOENT);
    proto_wbuf_init(&w);
    proto_put_raw(&w, bad, sizeof(bad));
    pending_start(&p, d->w.rpc, PROTO_MSG_DIR_DELEGATE_REQ, &w);
    assert_int_equal(pending_wait(&p), -EPROTO);
    rpc_reply_free(&p.rep);
    /* A version 1 peer, though registered for callbacks. */
    fcl_open(d, &old, 1, true);
    assert_int_equal(delegate(&old, dir, NULL), -EOPNOTSUPP);
    fcl_close(&old);
    /* None of these broke anything. */
    assert_int_equal(fcl_count(&d->b), 0);
}

/* Another session's promise on the directory refuses the delegation
 * (EBUSY), with no break: B keeps what it caches, and W's changes there go
 * the ordinary way and break it.  A session without callbacks holds no
 * promise and refuses nothing; once B's promise is gone the delegation is
 * granted. */
static void test_meta_srv_cb_delegate_busy(void **state)
{
    struct dx *d = *state;
    uint64_t dir = make(&d->w, ROOT, "dir", true);
    uint32_t lease = 0;

    assert_int_equal(getattr(&d->n, dir), 0);
    assert_int_equal(getattr(&d->b, dir), 0); /* B's promise */
    assert_int_equal(delegate(&d->w, dir, NULL), -EBUSY);
    assert_int_equal(fcl_count(&d->b), 0);
    /* W's create breaks B's promise (an entry break of the name). */
    assert_true(make(&d->w, dir, "x", false) != 0);
    fcl_wait(&d->b, 1);
    assert_int_equal(delegate(&d->w, dir, &lease), 0);
    assert_int_equal(lease, d->promise_ms);
}

/* A delegation another session holds refuses a second one (EBUSY) and is
 * not recalled by it; B's look at the directory recalls it, and then B's
 * promise refuses W's new DIR_DELEGATE. */
static void test_meta_srv_cb_delegate_held(void **state)
{
    struct dx *d = *state;
    char name[16];
    uint64_t dir = delegated_dir(d, name, sizeof(name));

    assert_int_equal(delegate(&d->b, dir, NULL), -EBUSY);
    assert_int_equal(fcl_count(&d->w), 0);
    assert_int_equal(getattr(&d->b, dir), 0);
    fcl_wait(&d->w, 1);
    assert_int_equal(fcl_recalls(&d->w), 1);
    assert_int_equal(delegate(&d->w, dir, NULL), -EBUSY);
}

/* ---- Recalls of a delegated directory ------------------------------------ */

/* What a case prepares before W's delegation. */
#define PREP_SUBDIR 1u   /* D/sd */
#define PREP_ROOTFILE 2u /* /r<seq> */

/* One request from another session that reads or changes directory D
 * (named @dname under the root); @enc builds it into @w. */
struct rcase {
    const char *what;
    unsigned prep;
    int want; /* the reply's status, given W's write-back of D/late */
    void (*enc)(struct proto_wbuf *w, uint64_t dir, const char *dname,
                uint64_t rootfile);
};

static void enc_lookup(struct proto_wbuf *w, uint64_t dir, const char *dname,
                       uint64_t rootfile)
{
    struct proto_lookup_req q = {.parent = dir, .name = pstr("late")};
    (void)dname, (void)rootfile;
    proto_lookup_req_encode(w, &q);
}

static void enc_lookup_self(struct proto_wbuf *w, uint64_t dir,
                            const char *dname, uint64_t rootfile)
{
    struct proto_lookup_req q = {.parent = ROOT, .name = pstr(dname)};
    (void)dir, (void)rootfile;
    proto_lookup_req_encode(w, &q);
}

static void enc_readdir(struct proto_wbuf *w, uint64_t dir, const char *dname,
                        uint64_t rootfile)
{
    struct proto_readdir_req q = {.ino = dir, .max_entries = 100};
    (void)dname, (void)rootfile;
    proto_readdir_req_encode(w, &q);
}

static void enc_getattr(struct proto_wbuf *w, uint64_t dir, const char *dname,
                        uint64_t rootfile)
{
    struct proto_ino_req q = {.ino = dir};
    (void)dname, (void)rootfile;
    proto_ino_req_encode(w, &q);
}

static void enc_open(struct proto_wbuf *w, uint64_t dir, const char *dname,
                     uint64_t rootfile)
{
    struct proto_access_req q = {.ino = dir, .mask = O_RDONLY};
    (void)dname, (void)rootfile;
    proto_access_req_encode(w, &q);
}

static void enc_access(struct proto_wbuf *w, uint64_t dir, const char *dname,
                       uint64_t rootfile)
{
    struct proto_access_req q = {.ino = dir, .mask = R_OK};
    (void)dname, (void)rootfile;
    proto_access_req_encode(w, &q);
}

static void enc_setattr(struct proto_wbuf *w, uint64_t dir, const char *dname,
                        uint64_t rootfile)
{
    struct proto_setattr_req q = {
        .ino = dir, .valid = PROTO_SETATTR_MODE, .mode = 0700};
    (void)dname, (void)rootfile;
    proto_setattr_req_encode(w, &q);
}

static void enc_setxattr(struct proto_wbuf *w, uint64_t dir, const char *dname,
                         uint64_t rootfile)
{
    struct proto_setxattr_req q = {
        .ino = dir, .name = pstr("user.k"), .value = pstr("v")};
    (void)dname, (void)rootfile;
    proto_setxattr_req_encode(w, &q);
}

static void enc_xattr_name(struct proto_wbuf *w, uint64_t dir,
                           const char *dname, uint64_t rootfile)
{
    struct proto_xattr_name_req q = {.ino = dir, .name = pstr("user.k")};
    (void)dname, (void)rootfile;
    proto_xattr_name_req_encode(w, &q);
}

static void enc_mknod(struct proto_wbuf *w, uint64_t dir, const char *dname,
                      uint64_t rootfile)
{
    struct proto_mknod_req q = {.parent = dir,
                                .mode = S_IFREG | 0644,
                                .flags = PROTO_MKNOD_EXCL,
                                .name = pstr("late")};
    (void)dname, (void)rootfile;
    proto_mknod_req_encode(w, &q);
}

static void enc_mkdir(struct proto_wbuf *w, uint64_t dir, const char *dname,
                      uint64_t rootfile)
{
    struct proto_mkdir_req q = {
        .parent = dir, .mode = 0755, .name = pstr("late")};
    (void)dname, (void)rootfile;
    proto_mkdir_req_encode(w, &q);
}

static void enc_symlink(struct proto_wbuf *w, uint64_t dir, const char *dname,
                        uint64_t rootfile)
{
    struct proto_symlink_req q = {
        .parent = dir, .name = pstr("late"), .target = pstr("t")};
    (void)dname, (void)rootfile;
    proto_symlink_req_encode(w, &q);
}

static void enc_link(struct proto_wbuf *w, uint64_t dir, const char *dname,
                     uint64_t rootfile)
{
    struct proto_link_req q = {
        .ino = rootfile, .newparent = dir, .newname = pstr("late")};
    (void)dname;
    proto_link_req_encode(w, &q);
}

static void enc_unlink(struct proto_wbuf *w, uint64_t dir, const char *dname,
                       uint64_t rootfile)
{
    struct proto_lookup_req q = {.parent = dir, .name = pstr("late")};
    (void)dname, (void)rootfile;
    proto_lookup_req_encode(w, &q);
}

static void enc_rmdir(struct proto_wbuf *w, uint64_t dir, const char *dname,
                      uint64_t rootfile)
{
    struct proto_lookup_req q = {.parent = dir, .name = pstr("sd")};
    (void)dname, (void)rootfile;
    proto_lookup_req_encode(w, &q);
}

static void enc_rmdir_self(struct proto_wbuf *w, uint64_t dir,
                           const char *dname, uint64_t rootfile)
{
    struct proto_lookup_req q = {.parent = ROOT, .name = pstr(dname)};
    (void)dir, (void)rootfile;
    proto_lookup_req_encode(w, &q);
}

static void enc_rename_from(struct proto_wbuf *w, uint64_t dir,
                            const char *dname, uint64_t rootfile)
{
    static char to[32];
    snprintf(to, sizeof(to), "moved-%s", dname);
    struct proto_rename_req q = {.parent = dir,
                                 .name = pstr("late"),
                                 .newparent = ROOT,
                                 .newname = pstr(to)};
    (void)rootfile;
    proto_rename_req_encode(w, &q);
}

static void enc_rename_into(struct proto_wbuf *w, uint64_t dir,
                            const char *dname, uint64_t rootfile)
{
    static char from[32];
    snprintf(from, sizeof(from), "r-%s", dname);
    struct proto_rename_req q = {.parent = ROOT,
                                 .name = pstr(from),
                                 .newparent = dir,
                                 .newname = pstr("late"),
                                 .flags = PROTO_RENAME_NOREPLACE};
    (void)rootfile;
    proto_rename_req_encode(w, &q);
}

static void enc_rename_self(struct proto_wbuf *w, uint64_t dir,
                            const char *dname, uint64_t rootfile)
{
    static char to[32];
    snprintf(to, sizeof(to), "renamed-%s", dname);
    struct proto_rename_req q = {.parent = ROOT,
                                 .name = pstr(dname),
                                 .newparent = ROOT,
                                 .newname = pstr(to)};
    (void)dir, (void)rootfile;
    proto_rename_req_encode(w, &q);
}

/* The statuses that depend on D/late prove the request ran after W wrote
 * it back: without it LOOKUP, UNLINK and RENAME of it find nothing, and
 * the creates of it and RMDIR of D succeed. */
static const struct rcase rcases[] = {
    {"LOOKUP", 0, 0, enc_lookup},
    {"LOOKUP", 0, 0, enc_lookup_self},
    {"READDIR", 0, 0, enc_readdir},
    {"GETATTR", 0, 0, enc_getattr},
    {"OPEN", 0, 0, enc_open},
    {"ACCESS", 0, 0, enc_access},
    {"SETATTR", 0, 0, enc_setattr},
    {"SETXATTR", 0, 0, enc_setxattr},
    {"GETXATTR", 0, -ENODATA, enc_xattr_name},
    {"LISTXATTR", 0, 0, enc_getattr},
    {"REMOVEXATTR", 0, -ENODATA, enc_xattr_name},
    {"MKNOD", 0, -EEXIST, enc_mknod},
    {"MKDIR", 0, -EEXIST, enc_mkdir},
    {"SYMLINK", 0, -EEXIST, enc_symlink},
    {"LINK", PREP_ROOTFILE, -EEXIST, enc_link},
    {"UNLINK", 0, 0, enc_unlink},
    {"RMDIR", PREP_SUBDIR, 0, enc_rmdir},
    {"RMDIR", 0, -ENOTEMPTY, enc_rmdir_self},
    {"RENAME", 0, 0, enc_rename_from},
    {"RENAME", PREP_ROOTFILE, -EEXIST, enc_rename_into},
    {"RENAME", 0, 0, enc_rename_self},
};

static uint16_t opcode_named(const char *what)
{
    static const struct {
        const char *name;
        uint16_t op;
    } ops[] = {
        {"LOOKUP", PROTO_MSG_LOOKUP_REQ},
        {"READDIR", PROTO_MSG_READDIR_REQ},
        {"GETATTR", PROTO_MSG_GETATTR_REQ},
        {"OPEN", PROTO_MSG_OPEN_REQ},
        {"ACCESS", PROTO_MSG_ACCESS_REQ},
        {"SETATTR", PROTO_MSG_SETATTR_REQ},
        {"SETXATTR", PROTO_MSG_SETXATTR_REQ},
        {"GETXATTR", PROTO_MSG_GETXATTR_REQ},
        {"LISTXATTR", PROTO_MSG_LISTXATTR_REQ},
        {"REMOVEXATTR", PROTO_MSG_REMOVEXATTR_REQ},
        {"MKNOD", PROTO_MSG_MKNOD_REQ},
        {"MKDIR", PROTO_MSG_MKDIR_REQ},
        {"SYMLINK", PROTO_MSG_SYMLINK_REQ},
        {"LINK", PROTO_MSG_LINK_REQ},
        {"UNLINK", PROTO_MSG_UNLINK_REQ},
        {"RMDIR", PROTO_MSG_RMDIR_REQ},
        {"RENAME", PROTO_MSG_RENAME_REQ},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].name, what) == 0)
            return ops[i].op;
    fail_msg("no opcode for %s", what);
    return 0;
}

/* Case @rc from @from: W is recalled (and holds its answer), the request
 * waits; W writes D/late back and answers; the request is served then,
 * and W's delegation is over. */
static void run_recall_case(struct dx *d, struct fcl *from,
                            const struct rcase *rc)
{
    char dname[16], rname[32];
    uint64_t rootfile = 0, ino;
    uint32_t flags;
    struct pending p;
    struct proto_wbuf w;

    snprintf(dname, sizeof(dname), "d%u", ++d->seq);
    uint64_t dir = make(&d->w, ROOT, dname, true);
    if (rc->prep & PREP_SUBDIR)
        make(&d->w, dir, "sd", true);
    if (rc->prep & PREP_ROOTFILE) {
        snprintf(rname, sizeof(rname), "r-%s", dname);
        rootfile = make(&d->w, ROOT, rname, false);
    }
    assert_int_equal(delegate(&d->w, dir, NULL), 0);
    unsigned before = fcl_count(&d->w);

    fcl_hold(&d->w, true);
    proto_wbuf_init(&w);
    rc->enc(&w, dir, dname, rootfile);
    pending_start(&p, from->rpc, opcode_named(rc->what), &w);
    fcl_wait(&d->w, before + 1);
    fcl_got(&d->w, before, &ino, &flags);
    if (ino != dir || flags != PROTO_CB_RECALL || pending_is_done(&p))
        fail_msg("%s: recall ino=%llu flags=0x%x, request done=%d", rc->what,
                 (unsigned long long)ino, flags, pending_is_done(&p));
    /* The holder's own create while its recall is out is served. */
    make(&d->w, dir, "late", false);
    fcl_hold(&d->w, false);
    fcl_answer(&d->w);
    int status = pending_wait(&p);
    rpc_reply_free(&p.rep);
    if (status != rc->want)
        fail_msg("%s: status %d, want %d", rc->what, status, rc->want);
    /* The recall ended the delegation: nothing recalls W any more (the
     * change may break what W's own create cached, no more). */
    unsigned recalls = fcl_recalls(&d->w);
    assert_int_equal(getattr(&d->b, dir), 0);
    assert_int_equal(fcl_recalls(&d->w), recalls);
}

static void test_meta_srv_cb_delegated_dir_recalled(void **state)
{
    struct dx *d = *state;

    for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++)
        run_recall_case(d, &d->b, &rcases[i]);
}

/* A session without callbacks (an NBD export, an older mount) recalls
 * the holder just the same. */
static void test_meta_srv_cb_delegated_dir_recalled_by_uncached(void **state)
{
    struct dx *d = *state;

    run_recall_case(d, &d->n, &rcases[0]);  /* LOOKUP */
    run_recall_case(d, &d->n, &rcases[11]); /* MKNOD */
}

/* The holder's own requests about its directory never recall it, and
 * the replies that grant it the directory again leave the delegation in
 * place: another session's look still recalls it. */
static void test_meta_srv_cb_delegated_dir_own_requests(void **state)
{
    struct dx *d = *state;
    char name[16];
    uint64_t dir = delegated_dir(d, name, sizeof(name));
    uint64_t rootfile = make(&d->w, ROOT, "rf", false);
    struct proto_wbuf w;

    for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); i++) {
        const struct rcase *rc = &rcases[i];
        /* Not the ones that remove or move the directory itself. */
        if (rc->enc == enc_rmdir_self || rc->enc == enc_rename_self)
            continue;
        make(&d->w, dir, "late", false); /* there or not, it is now */
        if (rc->enc == enc_rename_into || rc->enc == enc_rmdir) {
            make(&d->w, ROOT, "r-x", false);
            make(&d->w, dir, "sd", true);
        }
        proto_wbuf_init(&w);
        rc->enc(&w, dir, "x", rootfile);
        /* Whether it succeeds does not matter here, only that it is
         * answered without a recall. */
        (void)call(&d->w, opcode_named(rc->what), &w);
    }
    assert_int_equal(fcl_count(&d->w), 0);
    assert_int_equal(fcl_count(&d->b), 0);
    /* Still delegated after all those replies. */
    assert_int_equal(getattr(&d->b, dir), 0);
    assert_int_equal(fcl_count(&d->w), 1);
}

/* A holder that does not answer its recall loses the delegation once the
 * wait times out (never past the promise's 2 s), and every other promise
 * with it, which a break of ALL tells it; the held request is served
 * then, and the next one recalls nobody. */
static void test_meta_srv_cb_delegated_dir_silent_holder(void **state)
{
    struct dx *d = *state;
    char name[16];
    uint64_t dir = delegated_dir(d, name, sizeof(name));
    uint64_t ino;
    uint32_t flags;

    /* A promise that outlives the delegation's by 300 ms: still live when
     * the recall's wait ends with the delegation's promise. */
    usleep(300000);
    assert_int_equal(getattr(&d->w, ROOT), 0);
    fcl_hold(&d->w, true);
    assert_int_equal(getattr(&d->b, dir), 0);
    fcl_got(&d->w, 0, &ino, &flags);
    assert_true(ino == dir);
    assert_int_equal(flags, PROTO_CB_RECALL);
    /* Sent before the held request is served; it may arrive after. */
    fcl_wait(&d->w, 2);
    fcl_got(&d->w, 1, &ino, &flags);
    assert_true(ino == 0);
    assert_int_equal(flags, PROTO_CB_ALL);
    assert_int_equal(getattr(&d->b, dir), 0);
    assert_int_equal(make(&d->b, dir, "b", false) != 0, 1);
    assert_int_equal(fcl_count(&d->w), 2);
}

int test_meta_srv_callback(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, dx_setup, dx_teardown)
#define SHORT(name)                                                            \
    cmocka_unit_test_prestate_setup_teardown(name, dx_setup, dx_teardown,      \
                                             &short_promise)
    static uint32_t short_promise = 2000;
    const struct CMUnitTest tests[] = {
        T(test_meta_srv_cb_delegate_refused),
        T(test_meta_srv_cb_delegate_busy),
        T(test_meta_srv_cb_delegate_held),
        T(test_meta_srv_cb_delegated_dir_recalled),
        T(test_meta_srv_cb_delegated_dir_recalled_by_uncached),
        T(test_meta_srv_cb_delegated_dir_own_requests),
        SHORT(test_meta_srv_cb_delegated_dir_silent_holder),
    };
#undef T
#undef SHORT
    return cmocka_run_group_tests_name("meta_srv_callback", tests, NULL, NULL);
}
