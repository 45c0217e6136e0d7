/* stop_guard.h: SIGINT and SIGTERM always stop a daemon: a clean stop on
 * its libuv loop first, and the process ends anyway when that has not
 * finished within a grace time, or at a second signal.
 *
 *   stop_guard_block_signals();      first thing in main(), before any
 *                                    thread exists (all inherit the mask)
 *   ... set up the loop ...
 *   stop_guard_start(&loop, 5000, on_stop, d, &guard);
 *   uv_run(&loop, UV_RUN_DEFAULT);   on_stop() closes what keeps it running
 *   stop_guard_free(guard);
 */
#ifndef TESSERA_STOP_GUARD_H
#define TESSERA_STOP_GUARD_H

#include <uv.h>

struct stop_guard;

/* @signum is SIGINT or SIGTERM; runs on the loop's thread. */
typedef void (*stop_guard_cb)(void *arg, int signum);

/* Block SIGINT and SIGTERM in the calling thread and so in every thread
 * it creates from now on: only the guard's own thread takes them.  0 or
 * -errno. */
int stop_guard_block_signals(void);

/* Wait for SIGINT or SIGTERM on a thread of its own.  The first one runs
 * @cb(@arg, signum) on @loop (through an async handle the guard closes
 * right after); if the process has not ended @grace_ms later, or a second
 * signal comes, it logs that and ends the process with _exit(1): what a
 * daemon keeps durable survives that as it survives kill -9.  Caller owns
 * *out: stop_guard_free().  0 or -errno (nothing runs then; what was
 * made goes as the loop runs). */
int stop_guard_start(uv_loop_t *loop, unsigned grace_ms, stop_guard_cb cb,
                     void *arg, struct stop_guard **out);

/* Stop the guard's thread and free it: at once after uv_run() returned
 * from the stop the first signal began; a guard that saw no signal is
 * freed once its handle closed on the loop's next run.  NULL is fine. */
void stop_guard_free(struct stop_guard *g);

#endif
