/* stop_guard.c: SIGINT and SIGTERM always stop a daemon.
 *
 * A daemon that stops on a signal through a uv_signal_t handle depends on
 * its loop twice: the loop must run to see the signal at all, and it must
 * run down (every handle closed, every queued work done) for the process
 * to end.  A loop stuck in either way ignores SIGTERM for as long as it
 * stays stuck, and a service manager or a test harness that sends one
 * SIGTERM waits forever.  metad's replicas were seen so.  libraft 0.15's
 * close (raft_close()) completes only once its disk layer has released
 * its barrier and finished its thread-pool work, and in 0.15 a barrier
 * asked for while another is pending (a snapshot installed while the log
 * is truncated or another snapshot is written) may never be called back
 * (canonical/raft fixed it in 0.18.0: one barrier, several requests);
 * whatever waits on it waits forever.
 *
 * So the signals do not go through the loop: every thread has them
 * blocked (stop_guard_block_signals(), before any thread exists) and one
 * thread of the guard's own reads them from a signalfd.
 *
 *   WAITING --first signal--> STOPPING: the loop is told (uv_async_send),
 *      |                         |     and runs the daemon's clean stop
 *      |                         +--second signal, or grace_ms--> _exit(1)
 *      +--stop_guard_free()--> the thread ends (the daemon ended anyway)
 *
 * _exit(1) skips whatever the clean stop had left: the daemons keep what
 * must survive durable at every step (metad's Raft log and database,
 * chunkd's synced chunks), as they must for kill -9 anyway.
 */
#include "stop_guard.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

struct stop_guard {
    uv_async_t async; /* the first signal, to the loop */
    stop_guard_cb cb;
    void *arg;
    atomic_int signum; /* the first signal */
    unsigned grace_ms;
    int sigfd;  /* SIGINT and SIGTERM */
    int quitfd; /* eventfd: stop_guard_free() ends the thread */
    pthread_t thread;
};

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

int stop_guard_block_signals(void)
{
    sigset_t set;

    signal_set(&set);
    return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static const char *signal_name(int signum)
{
    return signum == SIGINT ? "SIGINT" : "SIGTERM";
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fds_close(struct stop_guard *g)
{
    if (g->sigfd >= 0)
        close(g->sigfd);
    if (g->quitfd >= 0)
        close(g->quitfd);
}

/* On the loop: the first signal. */
static void on_async(uv_async_t *a)
{
    struct stop_guard *g = a->data;

    if (uv_is_closing((uv_handle_t *)a))
        return;
    uv_close((uv_handle_t *)a, NULL);
    g->cb(g->arg, atomic_load(&g->signum));
}

static void *guard_main(void *arg)
{
    struct stop_guard *g = arg;
    struct pollfd pfd[2] = {{.fd = g->sigfd, .events = POLLIN},
                            {.fd = g->quitfd, .events = POLLIN}};
    uint64_t deadline = 0;

    for (;;) {
        int timeout = -1, n;

        if (deadline) {
            uint64_t now = now_ms();
            timeout = now >= deadline ? 0 : (int)(deadline - now);
        }
        n = poll(pfd, 2, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("stop: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL; /* stop_guard_free(): the daemon ended */
        if (n == 0) {
            log_error("stop: still running %u ms after %s; exiting now",
                      g->grace_ms, signal_name(atomic_load(&g->signum)));
            _exit(1);
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;

            if (read(g->sigfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
                continue;
            if (deadline) {
                log_error("stop: %s while stopping; exiting now",
                          signal_name((int)si.ssi_signo));
                _exit(1);
            }
            atomic_store(&g->signum, (int)si.ssi_signo);
            deadline = now_ms() + g->grace_ms;
            uv_async_send(&g->async);
        }
    }
}

static void on_closed_free(uv_handle_t *h)
{
    free(h->data);
}

int stop_guard_start(uv_loop_t *loop, unsigned grace_ms, stop_guard_cb cb,
                     void *arg, struct stop_guard **out)
{
    struct stop_guard *g = calloc(1, sizeof(*g));
    sigset_t set;
    int rc;

    if (!g)
        return -ENOMEM;
    signal_set(&set);
    g->cb = cb;
    g->arg = arg;
    g->grace_ms = grace_ms;
    g->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
    g->quitfd = eventfd(0, EFD_CLOEXEC);
    rc = g->sigfd < 0 || g->quitfd < 0
             ? -errno
             : uv_async_init(loop, &g->async, on_async);
    if (rc < 0) {
        fds_close(g);
        free(g);
        return rc;
    }
    g->async.data = g;
    rc = -pthread_create(&g->thread, NULL, guard_main, g);
    if (rc < 0) {
        /* Freed once the caller's loop has closed the handle. */
        fds_close(g);
        uv_close((uv_handle_t *)&g->async, on_closed_free);
        return rc;
    }
    *out = g;
    return 0;
}

void stop_guard_free(struct stop_guard *g)
{
    uint64_t one = 1;

    if (!g)
        return;
    /* An eventfd always takes one write. */
    if (write(g->quitfd, &one, sizeof(one)) == (ssize_t)sizeof(one))
        pthread_join(g->thread, NULL);
    fds_close(g);
    if (uv_is_closing((uv_handle_t *)&g->async))
        free(g); /* closed by the first signal, and the loop has ended */
    else
        uv_close((uv_handle_t *)&g->async, on_closed_free);
}
