/* test_meta_apply.c: meta_apply() itself: atomicity of a failed op, the
 * op log and its replay, sessions. */
#include "test_meta_util.h"

#define R cred_root()

static struct proto_cred U1 = {.uid = 1000, .gid = 1000};

/* ---- Namespace dump: every entry and attribute, depth first ------------ */

static void dump_dir(struct fx *f, uint64_t ino, struct proto_wbuf *out)
{
    struct rd_ent ents[64];
    uint64_t cookie = 0;
    bool eof = false;
    while (!eof) {
        int n =
            do_readdir(f, R, ino, cookie, 64, PROTO_READDIR_PLUS, ents, &eof);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++) {
            struct proto_attr *a = &ents[i].attr;
            char line[512];
            int len = snprintf(
                line, sizeof(line),
                "%llu/%s ino=%llu mode=%o nlink=%u uid=%u gid=%u size=%llu "
                "a=%lld m=%lld c=%lld v=%llu goal=%u\n",
                (unsigned long long)ino, ents[i].name,
                (unsigned long long)a->ino, a->mode, a->nlink, a->uid, a->gid,
                (unsigned long long)a->size, (long long)a->atime,
                (long long)a->mtime, (long long)a->ctime,
                (unsigned long long)a->version, a->goal);
            proto_put_raw(out, line, (size_t)len);
            if (n)
                cookie = ents[n - 1].cookie;
        }
        for (int i = 0; i < n; i++)
            if (S_ISDIR(ents[i].attr.mode) && strcmp(ents[i].name, ".") &&
                strcmp(ents[i].name, ".."))
                dump_dir(f, ents[i].attr.ino, out);
    }
}

static int dump_gc(uint64_t chunk_id, uint64_t version, uint32_t server,
                   void *arg)
{
    char line[96];
    int len = snprintf(line, sizeof(line), "gc %llu v%llu s%u\n",
                       (unsigned long long)chunk_id,
                       (unsigned long long)version, server);
    proto_put_raw(arg, line, (size_t)len);
    return 0;
}

static int dump_session(uint64_t id, const char *name, const char *host,
                        uint32_t lease_ms, void *arg)
{
    (void)lease_ms;
    char line[256];
    int len = snprintf(line, sizeof(line), "session %llu %s %s\n",
                       (unsigned long long)id, name, host);
    proto_put_raw(arg, line, (size_t)len);
    return 0;
}

/* Everything observable about the state of @f's database. */
static void dump_all(struct fx *f, struct proto_wbuf *out)
{
    proto_wbuf_init(out);
    struct proto_attr root = attr_of(f, ROOT);
    char line[128];
    int len = snprintf(line, sizeof(line), "root m=%lld v=%llu\n",
                       (long long)root.mtime, (unsigned long long)root.version);
    proto_put_raw(out, line, (size_t)len);
    dump_dir(f, ROOT, out);
    assert_int_equal(meta_gc_foreach(f->db, 0, 1000, dump_gc, out), 0);
    assert_int_equal(meta_session_foreach(f->db, dump_session, out), 0);
    len = snprintf(line, sizeof(line), "chunk_max %llu\n",
                   (unsigned long long)meta_chunk_max_id(f->db));
    proto_put_raw(out, line, (size_t)len);
    assert_int_equal(out->err, 0);
}

static int do_session_open(struct fx *f, const char *name, uint32_t lease,
                           struct proto_session_open_rep *rep)
{
    struct proto_wbuf w, reply;
    struct proto_session_open_req q = {
        .lease_ms = lease, .client_name = str_of(name), .host = str_of("h1")};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_session_open_req_encode(&w, &q);
    int r = fx_apply(f, PROTO_MSG_SESSION_OPEN_REQ, &w, &reply);
    if (r == 0)
        assert_int_equal(proto_session_open_rep_decode(reply.p, reply.len, rep),
                         0);
    proto_wbuf_free(&reply);
    return r;
}

static int do_session_close(struct fx *f, uint16_t opcode, uint64_t id)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u64(&w, id);
    return fx_apply(f, opcode, &w, NULL);
}

static int count_ops(uint64_t seq, const struct meta_op *op, void *arg)
{
    (void)seq;
    (void)op;
    (*(int *)arg)++;
    return 0;
}

static int oplog_len(struct fx *f)
{
    int n = 0;
    assert_int_equal(meta_oplog_foreach(f->db, 0, count_ops, &n), 0);
    return n;
}

/* ---- Tests ------------------------------------------------------------- */

static int last_seq(uint64_t seq, const struct meta_op *op, void *arg)
{
    (void)op;
    *(uint64_t *)arg = seq;
    return 0;
}

/* The op log keeps the newest META_OPLOG_KEEP records, not every one. */
static void test_meta_apply_oplog_keeps_the_newest(void **state)
{
    struct fx *f = *state;
    struct proto_session_open_rep rep;
    const int n = META_OPLOG_KEEP + 2 * META_OPLOG_PRUNE_EVERY + 1;
    uint64_t last = 0;
    int len, newest = 0;

    for (int i = 0; i < n; i++)
        assert_int_equal(do_session_open(f, "s", 1000, &rep), 0);
    len = oplog_len(f);
    assert_true(len >= META_OPLOG_KEEP);
    assert_true(len < META_OPLOG_KEEP + META_OPLOG_PRUNE_EVERY);
    assert_int_equal(meta_oplog_foreach(f->db, 0, last_seq, &last), 0);
    assert_int_equal(last, (uint64_t)n); /* the newest is there */
    /* Every row left is one of the newest @len: the oldest went. */
    assert_int_equal(
        meta_oplog_foreach(f->db, last - (uint64_t)len, count_ops, &newest), 0);
    assert_int_equal(newest, len);
}

static void test_meta_apply_failed_op_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct proto_attr d;
    struct proto_wbuf before, after, reply;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_create(f, R, d.ino, "f", 0644, NULL), 0);
    assert_int_equal(do_create(f, R, ROOT, "file", 0644, NULL), 0);
    dump_all(f, &before);
    int ops = oplog_len(f);
    /* Each fails after checks that could have written nothing... */
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, NULL), -EEXIST);
    assert_int_equal(do_rmdir(f, R, ROOT, "d"), -ENOTEMPTY);
    assert_int_equal(do_rename(f, R, ROOT, "d", d.ino, "x", 0), -EINVAL);
    assert_int_equal(do_rename(f, R, ROOT, "file", ROOT, "d", 0), -EISDIR);
    assert_int_equal(do_unlink(f, U1, d.ino, "f"), -EACCES);
    /* ...and a payload that does not decode. */
    uint8_t junk[5] = {0};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_raw(&w, junk, sizeof(junk));
    assert_int_equal(fx_apply(f, PROTO_MSG_MKDIR_REQ, &w, NULL), -EPROTO);
    /* A query opcode is not a mutation. */
    proto_wbuf_init(&reply);
    proto_put_u8(&reply, 0xAA);
    struct meta_op op = {.opcode = PROTO_MSG_GETATTR_REQ, .now = f->now};
    assert_int_equal(meta_apply(f->db, &op, &reply), -ENOSYS);
    assert_int_equal(reply.len, 1); /* reply untouched */
    proto_wbuf_free(&reply);
    /* A failure after the handler wrote (the reply cannot be built) rolls
     * back the writes too. */
    struct proto_mkdir_req mq = {
        .cred = R, .parent = ROOT, .mode = 0755, .name = str_of("late")};
    proto_wbuf_init(&w);
    proto_mkdir_req_encode(&w, &mq);
    proto_wbuf_init(&reply);
    reply.err = -ENOMEM;
    op = (struct meta_op){.format = META_OP_FORMAT,
                          .opcode = PROTO_MSG_MKDIR_REQ,
                          .now = f->now + 1,
                          .payload = w.p,
                          .len = w.len};
    assert_int_equal(meta_apply(f->db, &op, &reply), -ENOMEM);
    assert_int_equal(reply.err, -ENOMEM);
    proto_wbuf_free(&w);
    proto_wbuf_free(&reply);
    assert_int_equal(do_lookup(f, R, ROOT, "late", NULL), -ENOENT);
    assert_int_equal(oplog_len(f), ops);
    dump_all(f, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.p, after.p, before.len);
    proto_wbuf_free(&before);
    proto_wbuf_free(&after);
}

struct op_seen {
    int n;
    uint16_t opcode[4];
    int64_t now[4];
    uint64_t session[4];
    size_t len[4];
};

static int record_ops(uint64_t seq, const struct meta_op *op, void *arg)
{
    struct op_seen *s = arg;
    assert_int_equal(seq, (uint64_t)s->n + 1);
    s->opcode[s->n] = op->opcode;
    s->now[s->n] = op->now;
    s->session[s->n] = op->session_id;
    s->len[s->n] = op->len;
    s->n++;
    return 0;
}

static void test_meta_apply_logs_op_records(void **state)
{
    struct fx *f = *state;
    struct op_seen seen = {0};
    f->session = 77;
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, NULL), 0);
    int64_t t = f->now;
    f->session = 0;
    assert_int_equal(do_unlink(f, R, ROOT, "nope"), -ENOENT);
    assert_int_equal(do_create(f, R, ROOT, "f", 0644, NULL), 0);
    assert_int_equal(meta_oplog_foreach(f->db, 0, record_ops, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.opcode[0], PROTO_MSG_MKDIR_REQ);
    assert_int_equal(seen.now[0], t);
    assert_int_equal(seen.session[0], 77);
    assert_true(seen.len[0] > 0);
    assert_int_equal(seen.opcode[1], PROTO_MSG_MKNOD_REQ);
    assert_int_equal(seen.now[1], f->now);
    assert_int_equal(seen.session[1], 0);
    assert_false(meta_op_is_mutation(PROTO_MSG_LOOKUP_REQ));
    assert_true(meta_op_is_mutation(PROTO_MSG_RENAME_REQ));
    assert_true(meta_op_is_mutation(META_OP_CHUNK_SET));
}

struct replay {
    struct fx *to;
    int applied;
};

static int replay_op(uint64_t seq, const struct meta_op *op, void *arg)
{
    struct replay *rp = arg;
    struct proto_wbuf reply;
    proto_wbuf_init(&reply);
    int r = meta_apply(rp->to->db, op, &reply);
    proto_wbuf_free(&reply);
    assert_int_equal(r, 0);
    assert_int_equal(seq, (uint64_t)rp->applied + 1);
    rp->applied++;
    return 0;
}

static void build_history(struct fx *f)
{
    struct proto_attr d, e, a, b;
    struct proto_session_open_rep srep;
    uint32_t sid;
    assert_int_equal(do_session_open(f, "client", 5000, &srep), 0);
    f->session = srep.session_id;
    assert_int_equal(do_chmod(f, R, ROOT, 0777, NULL), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, &d), 0);
    assert_int_equal(do_mkdir(f, U1, ROOT, "e", 0700, &e), 0);
    assert_int_equal(do_create(f, R, d.ino, "a", 0644, &a), 0);
    assert_int_equal(do_create(f, U1, e.ino, "b", 0600, &b), 0);
    assert_int_equal(do_link(f, R, a.ino, e.ino, "a2", NULL), 0);
    assert_int_equal(do_symlink(f, R, ROOT, "ln", "d/a", NULL), 0);
    assert_int_equal(do_mkdir(f, R, d.ino, "sub", 0755, NULL), 0);
    assert_int_equal(do_rename(f, R, d.ino, "sub", e.ino, "moved", 0), 0);
    assert_int_equal(
        do_rename(f, R, e.ino, "b", d.ino, "a", PROTO_RENAME_EXCHANGE), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "d", 0755, NULL), -EEXIST);
    assert_int_equal(do_setxattr(f, R, a.ino, "user.x", "1", 0), 0);
    struct proto_wbuf w, reply;
    struct proto_server_register_req sq = {.addr = str_of("h:1")};
    memset(sq.uuid, 9, sizeof(sq.uuid));
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_server_register_req_encode(&w, &sq);
    assert_int_equal(fx_apply(f, PROTO_MSG_SERVER_REGISTER_REQ, &w, &reply), 0);
    struct proto_server_register_rep rrep;
    assert_int_equal(
        proto_server_register_rep_decode(reply.p, reply.len, &rrep), 0);
    sid = rrep.server_id;
    proto_wbuf_free(&reply);
    proto_put_u64(&w, b.ino);
    proto_put_u64(&w, 0);
    proto_put_u64(&w, 1);
    proto_put_u64(&w, 0);
    proto_put_u64(&w, 1);
    proto_put_u32(&w, 1);
    proto_put_u32(&w, sid);
    assert_int_equal(fx_apply(f, META_OP_CHUNK_SET, &w, NULL), 0);
    struct proto_chunk_write_end_req wq = {
        .ino = b.ino, .index = 0, .chunk_id = 1, .size = 12345, .mtime = 99};
    proto_chunk_write_end_req_encode(&w, &wq);
    assert_int_equal(fx_apply(f, PROTO_MSG_CHUNK_WRITE_END_REQ, &w, NULL), 0);
    struct proto_setattr_req tq = {.cred = R,
                                   .ino = b.ino,
                                   .valid =
                                       PROTO_SETATTR_SIZE | PROTO_SETATTR_MODE,
                                   .size = 100,
                                   .mode = 0640};
    assert_int_equal(do_setattr(f, &tq, NULL), 0);
    assert_int_equal(do_unlink(f, R, e.ino, "a2"), 0);
    assert_int_equal(do_rmdir(f, R, e.ino, "moved"), 0);
}

static void test_meta_apply_replay_gives_same_namespace(void **state)
{
    struct fx *f = *state;
    struct fx to = {.now = T0};
    struct proto_wbuf da, db;
    build_history(f);
    assert_int_equal(meta_db_open(":memory:", &to.db), 0);
    struct replay rp = {.to = &to};
    assert_int_equal(meta_oplog_foreach(f->db, 0, replay_op, &rp), 0);
    assert_int_equal(rp.applied, oplog_len(f));
    assert_int_equal(oplog_len(&to), oplog_len(f));
    dump_all(f, &da);
    dump_all(&to, &db);
    assert_true(da.len > 200);
    assert_int_equal(da.len, db.len);
    assert_memory_equal(da.p, db.p, da.len);
    struct meta_chunk ca, cb;
    uint64_t b_ino = ino_of(f, ino_of(f, ROOT, "d"), "a");
    assert_int_equal(meta_chunk_at(f->db, b_ino, 0, &ca), 0);
    assert_int_equal(meta_chunk_at(to.db, b_ino, 0, &cb), 0);
    assert_memory_equal(&ca, &cb, sizeof(ca));
    proto_wbuf_free(&da);
    proto_wbuf_free(&db);
    meta_db_close(to.db);
}

static void test_meta_apply_replay_from_position(void **state)
{
    struct fx *f = *state;
    assert_int_equal(do_mkdir(f, R, ROOT, "a", 0755, NULL), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "b", 0755, NULL), 0);
    assert_int_equal(do_mkdir(f, R, ROOT, "c", 0755, NULL), 0);
    int n = 0;
    assert_int_equal(meta_oplog_foreach(f->db, 2, count_ops, &n), 0);
    assert_int_equal(n, 1);
}

static int session_names(uint64_t id, const char *name, const char *host,
                         uint32_t lease_ms, void *arg)
{
    char *buf = arg;
    size_t len = strlen(buf);
    snprintf(buf + len, 256 - len, "%llu:%s@%s/%u;", (unsigned long long)id,
             name, host, lease_ms);
    return 0;
}

static void test_meta_apply_sessions(void **state)
{
    struct fx *f = *state;
    struct proto_session_open_rep a, b, c;
    assert_int_equal(do_session_open(f, "one", 0, &a), 0);
    assert_int_equal(a.session_id, 1);
    assert_int_equal(a.lease_ms, 10000);
    assert_int_equal(do_session_open(f, "two", 5, &b), 0);
    assert_int_equal(b.session_id, 2);
    assert_int_equal(b.lease_ms, 1000);
    assert_int_equal(do_session_open(f, "three", 999999, &c), 0);
    assert_int_equal(c.lease_ms, 60000);
    char buf[256] = "";
    assert_int_equal(meta_session_foreach(f->db, session_names, buf), 0);
    assert_string_equal(buf, "1:one@h1/10000;2:two@h1/1000;3:three@h1/60000;");
    struct meta_stats st;
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.sessions, 3);
    assert_int_equal(do_session_close(f, PROTO_MSG_SESSION_CLOSE_REQ, 2), 0);
    assert_int_equal(do_session_close(f, PROTO_MSG_SESSION_CLOSE_REQ, 2),
                     -ENOENT);
    assert_int_equal(do_session_close(f, META_OP_SESSION_EXPIRE, 3), 0);
    assert_int_equal(do_session_close(f, META_OP_SESSION_EXPIRE, 3), -ENOENT);
    buf[0] = 0;
    assert_int_equal(meta_session_foreach(f->db, session_names, buf), 0);
    assert_string_equal(buf, "1:one@h1/10000;");
    /* Ids keep growing past closed sessions. */
    assert_int_equal(do_session_open(f, "four", 0, &c), 0);
    assert_int_equal(c.session_id, 4);
}

int test_meta_apply(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_apply_failed_op_changes_nothing),
        T(test_meta_apply_logs_op_records),
        T(test_meta_apply_replay_gives_same_namespace),
        T(test_meta_apply_replay_from_position),
        T(test_meta_apply_sessions),
        T(test_meta_apply_oplog_keeps_the_newest),
#undef T
    };
    return cmocka_run_group_tests_name("meta_apply", tests, NULL, NULL);
}
