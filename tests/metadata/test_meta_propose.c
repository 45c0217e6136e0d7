/* test_meta_propose.c: proposals through a log (meta_propose.c), with the
 * local log and with fakes: one that commits later, when the test says
 * so (as a replicated log does once a majority has the entry), and one
 * that loses what it was given (as a deposed leader does).
 */
#include "test_meta_util.h"

#include "meta_propose.h"

/* A log that keeps appended proposals until fake_commit_all() or
 * fake_fail_all(); @refuse makes append itself fail. */
struct fake_log {
    struct meta_propose *head, **tail;
    int appended; /* requests taken */
    int writes;   /* appends that took them (a replicated log's writes) */
    int refuse;   /* 0, or the -errno append returns */
};

static int fake_append(struct meta_log *log, struct meta_propose *req)
{
    struct fake_log *f = log->impl;
    if (f->refuse)
        return f->refuse;
    *f->tail = req;
    for (; req; req = req->next) {
        f->tail = &req->next;
        f->appended++;
    }
    f->writes++;
    return 0;
}

static const struct meta_log_ops fake_ops = {.append = fake_append};

static void fake_init(struct meta_log *log, struct fake_log *f,
                      struct meta_db *db)
{
    memset(f, 0, sizeof(*f));
    f->tail = &f->head;
    meta_log_init(log, &fake_ops, db, f);
}

static void fake_commit_all(struct fake_log *f)
{
    struct meta_propose *req = f->head;
    f->head = NULL;
    f->tail = &f->head;
    while (req) {
        struct meta_propose *next = req->next;
        meta_log_commit(req);
        req = next;
    }
}

static void fake_fail_all(struct fake_log *f, int status)
{
    struct meta_propose *req = f->head;
    f->head = NULL;
    f->tail = &f->head;
    while (req) {
        struct meta_propose *next = req->next;
        meta_log_fail(req, status);
        req = next;
    }
}

/* What the proposer saw. */
struct outcome {
    int calls;
    int status;
    struct proto_attr attr; /* the entry of an entry_rep result */
};

static void on_done(struct meta_propose *req, int status,
                    const struct proto_wbuf *result)
{
    struct outcome *o = req->data;
    struct proto_entry_rep rep;
    o->calls++;
    o->status = status;
    if (status == 0 &&
        proto_entry_rep_decode(result->p, result->len, &rep) == 0)
        o->attr = rep.attr;
}

/* Propose MKDIR @name under the root with @log, at once or @later. */
static int propose_mkdir_when(struct fx *f, struct meta_log *log,
                              struct meta_propose *req, const char *name,
                              bool later)
{
    struct proto_wbuf w;
    struct meta_op op = mkdir_op(f, name, &w);
    int rc = later ? meta_propose_later(log, req, &op, on_done)
                   : meta_propose(log, req, &op, on_done);
    proto_wbuf_free(&w); /* the record holds its own copy */
    return rc;
}

static int propose_mkdir(struct fx *f, struct meta_log *log,
                         struct meta_propose *req, const char *name)
{
    return propose_mkdir_when(f, log, req, name, false);
}

static int propose_mkdir_later(struct fx *f, struct meta_log *log,
                               struct meta_propose *req, const char *name)
{
    return propose_mkdir_when(f, log, req, name, true);
}

static void test_meta_propose_local_commits_at_once(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct outcome o = {0};
    struct meta_propose req = {.data = &o};
    meta_log_local_init(&log, f->db);
    assert_int_equal(propose_mkdir(f, &log, &req, "d"), 0);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    assert_true(S_ISDIR(o.attr.mode));
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "d", NULL), 0);
    /* An engine refusal is the callback's status. */
    assert_int_equal(propose_mkdir(f, &log, &req, "d"), 0);
    assert_int_equal(o.calls, 2);
    assert_int_equal(o.status, -EEXIST);
}

static void test_meta_propose_completes_when_log_commits(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o1 = {0}, o2 = {0};
    struct meta_propose r1 = {.data = &o1}, r2 = {.data = &o2};
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir(f, &log, &r1, "a"), 0);
    assert_int_equal(propose_mkdir(f, &log, &r2, "b"), 0);
    assert_int_equal(fl.appended, 2);
    /* Nothing applied, nobody called back, until the log commits. */
    assert_int_equal(o1.calls + o2.calls, 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), -ENOENT);
    fake_commit_all(&fl);
    assert_int_equal(o1.calls, 1);
    assert_int_equal(o2.calls, 1);
    assert_int_equal(o1.status, 0);
    assert_int_equal(o2.status, 0);
    /* Applied in log order: "a" got the lower inode. */
    assert_true(o1.attr.ino < o2.attr.ino);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "b", NULL), 0);
}

static void test_meta_propose_log_failure_changes_nothing(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o = {0};
    struct meta_propose req = {.data = &o};
    struct meta_stats st;
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir(f, &log, &req, "lost"), 0);
    fake_fail_all(&fl, -ENOTCONN);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, -ENOTCONN);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "lost", NULL), -ENOENT);
    assert_int_equal(meta_stats_get(f->db, &st), 0);
    assert_int_equal(st.ops, 0);
    /* A refused append is returned, and the callback never runs. */
    fl.refuse = -EAGAIN;
    assert_int_equal(propose_mkdir(f, &log, &req, "x"), -EAGAIN);
    assert_int_equal(o.calls, 1);
    assert_null(req.record.p);
}

/* The callback may free its request (contract 2). */
static void free_in_callback(struct meta_propose *req, int status,
                             const struct proto_wbuf *result)
{
    (void)result;
    *(int *)req->data = status;
    free(req);
}

static void test_meta_propose_callback_may_free_request(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    int status = 1;
    struct meta_propose *req = calloc(1, sizeof(*req));
    struct proto_wbuf w;
    struct meta_op_gc_done m = {.chunk_id = 1, .server_id = 1};
    assert_non_null(req);
    req->data = &status;
    fake_init(&log, &fl, f->db);
    proto_wbuf_init(&w);
    meta_op_gc_done_encode(&w, &m);
    struct meta_op op = {.format = META_OP_FORMAT,
                         .opcode = META_OP_GC_DONE,
                         .now = T0,
                         .payload = w.p,
                         .len = w.len};
    assert_int_equal(meta_propose(&log, req, &op, free_in_callback), 0);
    proto_wbuf_free(&w);
    fake_commit_all(&fl);
    assert_int_equal(status, -ENOENT); /* no such gc entry */
}

/* A record held back goes to the log just before the next one, in the
 * order they came, and is applied in that order. */
static void test_meta_propose_later_goes_before_next(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o1 = {0}, o2 = {0}, o3 = {0};
    struct meta_propose r1 = {.data = &o1}, r2 = {.data = &o2},
                        r3 = {.data = &o3};
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir_later(f, &log, &r1, "a"), 0);
    assert_int_equal(propose_mkdir_later(f, &log, &r2, "b"), 0);
    assert_true(meta_log_waiting(&log));
    assert_int_equal(fl.appended, 0);
    assert_int_equal(propose_mkdir(f, &log, &r3, "c"), 0);
    assert_false(meta_log_waiting(&log));
    assert_int_equal(fl.appended, 3);
    assert_int_equal(fl.writes, 1); /* one append for all three */
    assert_ptr_equal(fl.head, &r1);
    assert_ptr_equal(fl.head->next, &r2);
    assert_ptr_equal(fl.head->next->next, &r3);
    assert_int_equal(o1.calls + o2.calls + o3.calls, 0);
    fake_commit_all(&fl);
    assert_int_equal(o1.status, 0);
    assert_int_equal(o2.status, 0);
    assert_int_equal(o3.status, 0);
    assert_true(o1.attr.ino < o2.attr.ino);
    assert_true(o2.attr.ino < o3.attr.ino);
}

/* With no next record, the owner's flush appends what waits. */
static void test_meta_log_flush_appends_held(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o = {0};
    struct meta_propose req = {.data = &o};
    fake_init(&log, &fl, f->db);
    meta_log_flush(&log); /* nothing waits: nothing happens */
    assert_int_equal(fl.appended, 0);
    assert_int_equal(propose_mkdir_later(f, &log, &req, "a"), 0);
    meta_log_flush(&log);
    assert_false(meta_log_waiting(&log));
    assert_int_equal(fl.appended, 1);
    fake_commit_all(&fl);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), 0);
}

/* Records proposed soon wait for the turn's flush, which appends them
 * (with what waited before them) as one write, in order; a flush of what
 * is due leaves records that can wait alone. */
static void test_meta_propose_soon_waits_for_flush_due(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o1 = {0}, o2 = {0}, o3 = {0};
    struct meta_propose r1 = {.data = &o1}, r2 = {.data = &o2},
                        r3 = {.data = &o3};
    struct proto_wbuf w;
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir_later(f, &log, &r1, "a"), 0);
    meta_log_flush_due(&log); /* only a record that can wait */
    assert_int_equal(fl.appended, 0);
    assert_true(meta_log_waiting(&log));
    struct meta_op op = mkdir_op(f, "b", &w);
    assert_int_equal(meta_propose_soon(&log, &r2, &op, on_done), 0);
    proto_wbuf_free(&w);
    op = mkdir_op(f, "c", &w);
    assert_int_equal(meta_propose_soon(&log, &r3, &op, on_done), 0);
    proto_wbuf_free(&w);
    assert_int_equal(fl.appended, 0);
    meta_log_flush_due(&log);
    assert_false(meta_log_waiting(&log));
    assert_int_equal(fl.appended, 3);
    assert_int_equal(fl.writes, 1);
    assert_ptr_equal(fl.head, &r1);
    assert_ptr_equal(fl.head->next, &r2);
    assert_ptr_equal(fl.head->next->next, &r3);
    meta_log_flush_due(&log); /* nothing due any more */
    assert_int_equal(fl.writes, 1);
    fake_commit_all(&fl);
    assert_int_equal(o1.status, 0);
    assert_int_equal(o2.status, 0);
    assert_int_equal(o3.status, 0);
    assert_true(o2.attr.ino < o3.attr.ino);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "c", NULL), 0);
}

/* A held record the log refuses at the flush, or one dropped (leadership
 * lost), gets its callback once with the error and changes nothing. */
static void test_meta_log_drop_and_refusal_fail_held(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o1 = {0}, o2 = {0};
    struct meta_propose r1 = {.data = &o1}, r2 = {.data = &o2};
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir_later(f, &log, &r1, "a"), 0);
    meta_log_drop(&log, -EREMCHG);
    assert_false(meta_log_waiting(&log));
    assert_int_equal(o1.calls, 1);
    assert_int_equal(o1.status, -EREMCHG);
    assert_int_equal(propose_mkdir_later(f, &log, &r2, "b"), 0);
    fl.refuse = -EIO;
    meta_log_flush(&log);
    assert_int_equal(o2.calls, 1);
    assert_int_equal(o2.status, -EIO);
    assert_int_equal(fl.appended, 0);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "a", NULL), -ENOENT);
    assert_int_equal(do_lookup(f, cred_root(), ROOT, "b", NULL), -ENOENT);
    meta_log_drop(&log, -EREMCHG); /* nothing waits: nothing called */
    assert_int_equal(o1.calls + o2.calls, 2);
}

/* A log that refuses the append of a record and those held back before
 * it: the held ones get the error in their callbacks, the record's
 * proposer gets it returned (contract 1: no callback). */
static void test_meta_propose_refused_with_held(void **state)
{
    struct fx *f = *state;
    struct meta_log log;
    struct fake_log fl;
    struct outcome o1 = {0}, o2 = {0};
    struct meta_propose r1 = {.data = &o1}, r2 = {.data = &o2};
    fake_init(&log, &fl, f->db);
    assert_int_equal(propose_mkdir_later(f, &log, &r1, "a"), 0);
    fl.refuse = -ENOSPC;
    assert_int_equal(propose_mkdir(f, &log, &r2, "b"), -ENOSPC);
    assert_int_equal(o1.calls, 1);
    assert_int_equal(o1.status, -ENOSPC);
    assert_int_equal(o2.calls, 0);
    assert_false(meta_log_waiting(&log));
    assert_int_equal(fl.appended, 0);
}

/* What every replica does with a committed entry: the same record bytes
 * give the same state and reply in two databases. */
static void test_meta_log_apply_same_bytes_same_state(void **state)
{
    struct fx *f = *state;
    struct meta_db *other;
    struct proto_wbuf w, rec, r1, r2;
    struct proto_mkdir_req q = {
        .cred = cred_root(), .parent = ROOT, .mode = 0700, .name = str_of("r")};
    assert_int_equal(meta_db_open(":memory:", &other), 0);
    proto_wbuf_init(&w);
    proto_wbuf_init(&rec);
    proto_wbuf_init(&r1);
    proto_wbuf_init(&r2);
    proto_mkdir_req_encode(&w, &q);
    struct meta_op op = {.format = META_OP_FORMAT,
                         .opcode = PROTO_MSG_MKDIR_REQ,
                         .now = T0,
                         .payload = w.p,
                         .len = w.len};
    meta_op_record_encode(&rec, &op);
    assert_int_equal(meta_log_apply(f->db, 0, rec.p, rec.len, &r1), 0);
    assert_int_equal(meta_log_apply(other, 0, rec.p, rec.len, &r2), 0);
    assert_int_equal(r1.len, r2.len);
    assert_memory_equal(r1.p, r2.p, r1.len);
    /* A torn entry is refused, and changes nothing. */
    proto_wbuf_reset(&r2);
    assert_int_equal(meta_log_apply(other, 0, rec.p, 3, &r2), -EPROTO);
    meta_db_close(other);
    proto_wbuf_free(&w);
    proto_wbuf_free(&rec);
    proto_wbuf_free(&r1);
    proto_wbuf_free(&r2);
}

int test_meta_propose(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_mem, fx_teardown)
        T(test_meta_propose_local_commits_at_once),
        T(test_meta_propose_completes_when_log_commits),
        T(test_meta_propose_log_failure_changes_nothing),
        T(test_meta_propose_callback_may_free_request),
        T(test_meta_log_apply_same_bytes_same_state),
        T(test_meta_propose_later_goes_before_next),
        T(test_meta_propose_soon_waits_for_flush_due),
        T(test_meta_log_flush_appends_held),
        T(test_meta_log_drop_and_refusal_fail_held),
        T(test_meta_propose_refused_with_held),
#undef T
    };
    return cmocka_run_group_tests_name("meta_propose", tests, NULL, NULL);
}
