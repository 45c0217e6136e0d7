/* Tests for common/stop_guard.c: SIGTERM stops a daemon cleanly when its
 * loop runs down, and ends the process anyway when the loop does not
 * (a stop that never finishes, a loop stuck in a callback) or at a second
 * signal.  Each case runs in a child process that the test signals; the
 * child's exit status says which way it ended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "stop_guard.h"

#define GRACE_MS 300
#define GRACE_LONG_MS 60000 /* past the parent's patience: never reached */
#define CLEAN_EXIT 7        /* the child's status when its loop ran down */

enum child_kind {
    STOP_FINISHES, /* the stop callback closes what keeps the loop up */
    STOP_HANGS,    /* the stop callback leaves a timer running */
    LOOP_STUCK,    /* the loop is blocked in a callback: never sees it */
};

struct child {
    uv_loop_t loop;
    uv_timer_t keep; /* keeps the loop running */
    enum child_kind kind;
    int seen;   /* the signal the callback got */
    int report; /* pipe to the parent: 'r' watching, 's' stopping */
};

static void on_stop(void *arg, int signum)
{
    struct child *c = arg;
    ssize_t n;

    c->seen = signum;
    /* The parent may have stopped listening (it sent one signal only). */
    n = write(c->report, "s", 1);
    (void)n;
    if (c->kind == STOP_FINISHES)
        uv_close((uv_handle_t *)&c->keep, NULL);
}

static void on_keep(uv_timer_t *t)
{
    struct child *c = t->data;

    if (c->kind == LOOP_STUCK)
        for (;;)
            pause(); /* SIGINT and SIGTERM are blocked here */
}

/* In the child: run @kind with @grace_ms, telling the parent through
 * @report once the guard watches and once the stop began. */
static void child_run(enum child_kind kind, unsigned grace_ms, int report)
{
    static struct child c;
    struct stop_guard *g;

    c.kind = kind;
    c.report = report;
    signal(SIGPIPE, SIG_IGN);
    if (stop_guard_block_signals() < 0 || uv_loop_init(&c.loop) < 0)
        _exit(2);
    uv_timer_init(&c.loop, &c.keep);
    c.keep.data = &c;
    uv_timer_start(&c.keep, on_keep, kind == LOOP_STUCK ? 10 : 100000, 100000);
    if (stop_guard_start(&c.loop, grace_ms, on_stop, &c, &g) < 0)
        _exit(3);
    if (write(report, "r", 1) != 1)
        _exit(4);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    stop_guard_free(g);
    _exit(c.seen == SIGTERM ? CLEAN_EXIT : 5);
}

/* Start a child of @kind and send it a SIGTERM once it watches, and with
 * @second another once its stop began; its wait status.  A child still
 * there after 30 s is killed (status SIGKILL): the guard did not end it. */
static int child_status(enum child_kind kind, unsigned grace_ms, bool second)
{
    int fds[2], status = 0;
    char b;
    pid_t pid;

    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_run(kind, grace_ms, fds[1]);
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], &b, 1), 1);
    assert_int_equal(kill(pid, SIGTERM), 0);
    if (second) {
        assert_int_equal(read(fds[0], &b, 1), 1);
        assert_int_equal(b, 's');
        assert_int_equal(kill(pid, SIGTERM), 0);
    }
    close(fds[0]);
    for (int i = 0; i < 3000; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);

        if (w == pid)
            return status;
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static void test_stop_guard_clean_stop(void **state)
{
    int st = child_status(STOP_FINISHES, GRACE_MS, false);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), CLEAN_EXIT);
}

static void test_stop_guard_stop_that_hangs_ends_after_grace(void **state)
{
    int st = child_status(STOP_HANGS, GRACE_MS, false);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
}

static void test_stop_guard_stuck_loop_ends_after_grace(void **state)
{
    int st = child_status(LOOP_STUCK, GRACE_MS, false);

    (void)state;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
}

static void test_stop_guard_second_signal_ends_at_once(void **state)
{
    int st;

    (void)state;
    /* The grace is past the wait: only the second signal ends it. */
    st = child_status(STOP_HANGS, GRACE_LONG_MS, true);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
}

int test_stop_guard(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_guard_clean_stop),
        cmocka_unit_test(test_stop_guard_stop_that_hangs_ends_after_grace),
        cmocka_unit_test(test_stop_guard_stuck_loop_ends_after_grace),
        cmocka_unit_test(test_stop_guard_second_signal_ends_at_once),
    };
    return cmocka_run_group_tests_name("stop_guard", tests, NULL, NULL);
}
