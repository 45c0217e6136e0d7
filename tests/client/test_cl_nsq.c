/* Tests for client/cl_nsq.c: changes go to metad in the order queued, a
 * window at a time; a lost connection sends the unanswered ones again, in
 * order, once every call in flight is back; a resent change refused as
 * already applied counts as done, any other refusal is reported once by
 * the next sync; delegations end by break, by lease and are renewed by
 * answers; inode numbers come from the session's range. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "cl_internal.h"

#define MAXSENT 4096

/* A metad that answers when the test says so. */
struct fake {
    pthread_mutex_t lock;
    unsigned nsent;
    struct {
        uint16_t opcode;
        uint32_t tag; /* the payload's first u32 */
        rpc_done_cb cb;
        void *arg;
        bool answered;
    } sent[MAXSENT];
    int refuse_sends; /* this many sends fail -ENOTCONN first */
    uint64_t now;
};

static struct fake fk;

static int fake_send(void *arg, uint16_t opcode, const void *payload,
                     size_t len, rpc_done_cb cb, void *cb_arg)
{
    (void)arg;
    pthread_mutex_lock(&fk.lock);
    if (fk.refuse_sends > 0) {
        fk.refuse_sends--;
        pthread_mutex_unlock(&fk.lock);
        return -ENOTCONN;
    }
    assert_true(fk.nsent < MAXSENT);
    unsigned i = fk.nsent++;
    fk.sent[i].opcode = opcode;
    /* The tag is the payload's first u32, in the wire's byte order. */
    const uint8_t *b = payload;
    assert_true(len >= 4);
    fk.sent[i].tag = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                     (uint32_t)b[2] << 8 | b[3];
    fk.sent[i].cb = cb;
    fk.sent[i].arg = cb_arg;
    fk.sent[i].answered = false;
    pthread_mutex_unlock(&fk.lock);
    return 0;
}

static uint64_t fake_now(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&fk.lock);
    uint64_t t = fk.now;
    pthread_mutex_unlock(&fk.lock);
    return t;
}

static unsigned nsent(void)
{
    pthread_mutex_lock(&fk.lock);
    unsigned n = fk.nsent;
    pthread_mutex_unlock(&fk.lock);
    return n;
}

/* Wait (up to 10 s, for a loaded host) until @n sends were made. */
static void await_sent(unsigned n)
{
    for (int i = 0; i < 10000 && nsent() < n; i++)
        usleep(1000);
    assert_int_equal(nsent(), n);
}

/* Answer send @i with @status. */
static void answer(unsigned i, int status)
{
    pthread_mutex_lock(&fk.lock);
    assert_true(i < fk.nsent);
    assert_false(fk.sent[i].answered);
    fk.sent[i].answered = true;
    rpc_done_cb cb = fk.sent[i].cb;
    void *arg = fk.sent[i].arg;
    pthread_mutex_unlock(&fk.lock);
    struct rpc_reply rep = {0};
    if (status == 0) {
        rep.payload = malloc(1);
        rep.len = 1;
    }
    cb(arg, status, &rep);
}

static struct cl_nsq *start(void)
{
    memset(&fk, 0, sizeof(fk));
    pthread_mutex_init(&fk.lock, NULL);
    fk.now = 1000;
    struct cl_nsq_ops ops = {.send = fake_send, .now_ms = fake_now};
    struct cl_nsq *q = NULL;
    assert_int_equal(cl_nsq_new(&ops, &q), 0);
    return q;
}

static void push(struct cl_nsq *q, uint64_t dir, uint16_t opcode, uint32_t tag)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u32(&w, tag);
    assert_int_equal(cl_nsq_push(q, dir, 0, opcode, &w), 0);
    proto_wbuf_free(&w);
}

static uint32_t tag_of(unsigned i)
{
    pthread_mutex_lock(&fk.lock);
    uint32_t t = fk.sent[i].tag;
    pthread_mutex_unlock(&fk.lock);
    return t;
}

static void test_cl_nsq_order_and_window(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    for (uint32_t i = 0; i < 100; i++)
        push(q, 0, PROTO_MSG_RELEASE_REQ, i);
    /* A window's worth goes out, no more until answers come. */
    await_sent(64);
    usleep(20000);
    assert_int_equal(nsent(), 64);
    for (unsigned i = 0; i < 64; i++)
        answer(i, 0);
    await_sent(100);
    for (unsigned i = 64; i < 100; i++)
        answer(i, 0);
    assert_int_equal(cl_nsq_sync(q), 0);
    for (unsigned i = 0; i < 100; i++)
        assert_int_equal(tag_of(i), i);
    struct cl_nsq_stats st;
    cl_nsq_stats(q, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.sent, 100);
    assert_int_equal(st.failed, 0);
    cl_nsq_free(q);
}

static void test_cl_nsq_lost_connection_resends_in_order(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    for (uint32_t i = 0; i < 5; i++)
        push(q, 0, PROTO_MSG_MKNOD_REQ, i);
    await_sent(5);
    answer(0, 0);
    answer(1, -ENOTCONN);
    /* Nothing goes again while calls of the old connection are out. */
    usleep(20000);
    assert_int_equal(nsent(), 5);
    answer(3, -ENOTCONN);
    answer(2, -ENOTCONN);
    usleep(20000);
    assert_int_equal(nsent(), 5);
    answer(4, -ENOTCONN);
    /* Then 1..4 again, in order. */
    await_sent(9);
    for (unsigned i = 5; i < 9; i++)
        assert_int_equal(tag_of(i), i - 4);
    /* The first send of 1 was applied after all: EEXIST is done. */
    answer(5, -EEXIST);
    for (unsigned i = 6; i < 9; i++)
        answer(i, 0);
    assert_int_equal(cl_nsq_sync(q), 0);
    struct cl_nsq_stats st;
    cl_nsq_stats(q, &st);
    assert_int_equal(st.resent, 4);
    assert_int_equal(st.failed, 0);
    cl_nsq_free(q);
}

static void test_cl_nsq_refusal_reported_once(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    push(q, 0, PROTO_MSG_MKNOD_REQ, 1);
    push(q, 0, PROTO_MSG_UNLINK_REQ, 2);
    await_sent(2);
    /* EEXIST on a first send is a real refusal. */
    answer(0, -EEXIST);
    answer(1, 0);
    assert_int_equal(cl_nsq_sync(q), -EIO);
    assert_int_equal(cl_nsq_sync(q), 0);
    struct cl_nsq_stats st;
    cl_nsq_stats(q, &st);
    assert_int_equal(st.failed, 1);
    cl_nsq_free(q);
}

static void test_cl_nsq_not_connected_retried(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    pthread_mutex_lock(&fk.lock);
    fk.refuse_sends = 3;
    pthread_mutex_unlock(&fk.lock);
    push(q, 0, PROTO_MSG_MKNOD_REQ, 7);
    push(q, 0, PROTO_MSG_MKNOD_REQ, 8);
    await_sent(2);
    assert_int_equal(tag_of(0), 7);
    assert_int_equal(tag_of(1), 8);
    /* Sent again after a refused send: EEXIST means applied. */
    answer(0, -EEXIST);
    answer(1, 0);
    assert_int_equal(cl_nsq_sync(q), 0);
    cl_nsq_free(q);
}

/* A send refused while calls are still out on the connection that went:
 * nothing goes again before they came back, then all in order. */
static void test_cl_nsq_refused_send_waits_for_calls_out(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    push(q, 0, PROTO_MSG_MKNOD_REQ, 1);
    push(q, 0, PROTO_MSG_MKNOD_REQ, 2);
    await_sent(2);
    pthread_mutex_lock(&fk.lock);
    fk.refuse_sends = 1;
    pthread_mutex_unlock(&fk.lock);
    push(q, 0, PROTO_MSG_MKNOD_REQ, 3);
    usleep(50000);
    assert_int_equal(nsent(), 2); /* 3 was refused, and waits */
    answer(0, -ENOTCONN);
    usleep(20000);
    assert_int_equal(nsent(), 2);
    answer(1, -ENOTCONN);
    await_sent(5);
    for (unsigned i = 2; i < 5; i++) {
        assert_int_equal(tag_of(i), i - 1);
        answer(i, 0);
    }
    assert_int_equal(cl_nsq_sync(q), 0);
    cl_nsq_free(q);
}

static void test_cl_nsq_delegation(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u32(&w, 1);
    /* Not delegated: the caller goes the ordinary way. */
    assert_int_equal(cl_nsq_push(q, 42, 0, PROTO_MSG_MKNOD_REQ, &w), -ESTALE);
    assert_int_equal(cl_nsq_dir_until(q, 42), 0);
    cl_nsq_dir_granted(q, 42, 1000, 60000);
    assert_int_equal(cl_nsq_dir_until(q, 42), 31000);
    assert_int_equal(cl_nsq_push(q, 42, 0, PROTO_MSG_MKNOD_REQ, &w), 0);
    /* The answer to a change sent at 20000 renews it to 50000. */
    pthread_mutex_lock(&fk.lock);
    fk.now = 20000;
    pthread_mutex_unlock(&fk.lock);
    assert_int_equal(cl_nsq_push(q, 42, 0, PROTO_MSG_MKNOD_REQ, &w), 0);
    await_sent(2);
    answer(0, 0);
    answer(1, 0);
    assert_int_equal(cl_nsq_sync(q), 0);
    assert_true(cl_nsq_dir_until(q, 42) >= 50000);
    /* The lease runs out. */
    pthread_mutex_lock(&fk.lock);
    fk.now = 50001;
    pthread_mutex_unlock(&fk.lock);
    assert_int_equal(cl_nsq_dir_until(q, 42), 0);
    assert_int_equal(cl_nsq_push(q, 42, 0, PROTO_MSG_MKNOD_REQ, &w), -ESTALE);
    /* A break ends it at once; so does a new session. */
    cl_nsq_dir_granted(q, 42, 50001, 60000);
    cl_nsq_dir_granted(q, 43, 50001, 60000);
    cl_nsq_dir_broken(q, 42);
    assert_int_equal(cl_nsq_push(q, 42, 0, PROTO_MSG_MKNOD_REQ, &w), -ESTALE);
    assert_true(cl_nsq_dir_until(q, 43) > 0);
    cl_nsq_dirs_clear(q);
    assert_int_equal(cl_nsq_dir_until(q, 43), 0);
    proto_wbuf_free(&w);
    cl_nsq_free(q);
}

/* A refused delegation is not asked for again for a while. */
static void test_cl_nsq_delegation_refused(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    assert_true(cl_nsq_dir_may_ask(q, 42));
    cl_nsq_dir_refused(q, 42);
    assert_false(cl_nsq_dir_may_ask(q, 42));
    assert_true(cl_nsq_dir_may_ask(q, 43));
    assert_int_equal(cl_nsq_dir_until(q, 42), 0);
    pthread_mutex_lock(&fk.lock);
    fk.now += 5000;
    pthread_mutex_unlock(&fk.lock);
    assert_true(cl_nsq_dir_may_ask(q, 42));
    cl_nsq_dir_granted(q, 42, fk.now, 60000);
    assert_true(cl_nsq_dir_until(q, 42) > 0);
    assert_true(cl_nsq_dir_may_ask(q, 42));
    cl_nsq_free(q);
}

static void test_cl_nsq_delegations_bounded(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    for (uint64_t d = 1; d <= CL_NSQ_DIRS + 10; d++)
        cl_nsq_dir_granted(q, d, 1000 + d, 60000);
    /* The latest are held; the earliest made room for them. */
    assert_true(cl_nsq_dir_until(q, CL_NSQ_DIRS + 10) > 0);
    unsigned held = 0;
    for (uint64_t d = 1; d <= CL_NSQ_DIRS + 10; d++)
        held += cl_nsq_dir_until(q, d) > 0;
    assert_int_equal(held, CL_NSQ_DIRS);
    assert_int_equal(cl_nsq_dir_until(q, 1), 0);
    cl_nsq_free(q);
}

static void test_cl_nsq_inode_range(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    uint64_t ino = 0;
    assert_false(cl_nsq_ino_take(q, 7, &ino));
    cl_nsq_ino_add(q, 7, 100, 3);
    for (uint64_t want = 100; want < 103; want++) {
        assert_true(cl_nsq_ino_take(q, 7, &ino));
        assert_int_equal(ino, want);
    }
    assert_false(cl_nsq_ino_take(q, 7, &ino));
    cl_nsq_ino_add(q, 7, 500, 2);
    /* Another session's range is not ours. */
    assert_false(cl_nsq_ino_take(q, 8, &ino));
    assert_true(cl_nsq_ino_take(q, 7, &ino));
    assert_int_equal(ino, 500);
    /* A range for a new session replaces the old one's. */
    cl_nsq_ino_add(q, 8, 900, 1);
    assert_true(cl_nsq_ino_take(q, 8, &ino));
    assert_int_equal(ino, 900);
    assert_false(cl_nsq_ino_take(q, 7, &ino));
    cl_nsq_free(q);
}

/* A thread in cl_nsq_wait_on(), and whether it came back. */
struct waiter {
    struct cl_nsq *q;
    uint64_t ino;
    pthread_t t;
    _Atomic bool back;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    cl_nsq_wait_on(w->q, w->ino);
    w->back = true;
    return NULL;
}

static void wait_on_start(struct waiter *w, struct cl_nsq *q, uint64_t ino)
{
    w->q = q;
    w->ino = ino;
    w->back = false;
    assert_int_equal(pthread_create(&w->t, NULL, waiter_main, w), 0);
}

/* Whether @w came back within @ms (then it is joined). */
static bool wait_on_back(struct waiter *w, int ms)
{
    for (int i = 0; i < ms && !w->back; i++)
        usleep(1000);
    if (w->back)
        pthread_join(w->t, NULL);
    return w->back;
}

static void push_on(struct cl_nsq *q, uint64_t dir, uint64_t ino,
                    uint16_t opcode, uint32_t tag)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u32(&w, tag);
    assert_int_equal(cl_nsq_push(q, dir, ino, opcode, &w), 0);
    proto_wbuf_free(&w);
}

/* A request on one inode waits for the changes to it (and those queued
 * before them), to an inode not known, or in it as a directory; not for
 * the others. */
static void test_cl_nsq_wait_on_inode(void **state)
{
    (void)state;
    struct cl_nsq *q = start();
    struct waiter w;
    cl_nsq_dir_granted(q, 42, 1000, 60000);
    push_on(q, 0, 7, PROTO_MSG_RELEASE_REQ, 1);
    push_on(q, 42, 8, PROTO_MSG_MKNOD_REQ, 2);
    await_sent(2);
    /* Nothing queued for 9: at once. */
    wait_on_start(&w, q, 9);
    assert_true(wait_on_back(&w, 10000));
    /* 8 was queued after 7: answering 7 is not enough. */
    wait_on_start(&w, q, 8);
    assert_false(wait_on_back(&w, 50));
    answer(0, 0);
    assert_false(wait_on_back(&w, 50));
    answer(1, 0);
    assert_true(wait_on_back(&w, 10000));
    /* A change in directory 42 holds up a request on 42. */
    push_on(q, 42, 10, PROTO_MSG_MKNOD_REQ, 3);
    await_sent(3);
    wait_on_start(&w, q, 42);
    assert_false(wait_on_back(&w, 50));
    answer(2, 0);
    assert_true(wait_on_back(&w, 10000));
    /* A change to an inode not known holds up every request. */
    push_on(q, 42, 0, PROTO_MSG_UNLINK_REQ, 4);
    push_on(q, 0, 7, PROTO_MSG_RELEASE_REQ, 5);
    await_sent(5);
    wait_on_start(&w, q, 9);
    assert_false(wait_on_back(&w, 50));
    answer(3, 0);
    assert_true(wait_on_back(&w, 10000));
    answer(4, 0);
    assert_int_equal(cl_nsq_sync(q), 0);
    cl_nsq_free(q);
}

int test_cl_nsq(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_nsq_order_and_window),
        cmocka_unit_test(test_cl_nsq_lost_connection_resends_in_order),
        cmocka_unit_test(test_cl_nsq_refusal_reported_once),
        cmocka_unit_test(test_cl_nsq_not_connected_retried),
        cmocka_unit_test(test_cl_nsq_refused_send_waits_for_calls_out),
        cmocka_unit_test(test_cl_nsq_delegation),
        cmocka_unit_test(test_cl_nsq_delegation_refused),
        cmocka_unit_test(test_cl_nsq_delegations_bounded),
        cmocka_unit_test(test_cl_nsq_inode_range),
        cmocka_unit_test(test_cl_nsq_wait_on_inode),
    };
    return cmocka_run_group_tests_name("cl_nsq", tests, NULL, NULL);
}
