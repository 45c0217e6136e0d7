/* blocking.h: a hook a program runs before one of its threads may wait
 * for long (an answer from the network, a slow lock).
 *
 * tessera-mount serves its FUSE requests with one reading thread at a time
 * (client-fuse/fc_loop.c): the thread that read a request answers it
 * itself, and only when it is about to wait does another thread take over
 * the reading.  The client library cannot know which of its callers is
 * that thread, so it notes every wait that may be long here, and the
 * program's hook decides.  Without a hook (every other program) a note
 * costs one load and a branch.
 *
 *   blocking_set_hook(fn);             once, before the threads that note
 *   blocking_cond_wait(&cv, &mu);      instead of pthread_cond_wait()
 *   blocking_mutex_lock(&mu);          a lock that may be held across I/O
 *
 * The hook runs on the thread about to wait, holding whatever that thread
 * holds (the mutex of a condition wait among them): it must not take any
 * lock of the client library, and must be quick.
 */
#ifndef TESSERA_BLOCKING_H
#define TESSERA_BLOCKING_H

#include <pthread.h>
#include <time.h>

typedef void (*blocking_hook_fn)(void);

/* Install @fn (NULL: none); a note running at the time may still call
 * the old one. */
void blocking_set_hook(blocking_hook_fn fn);

/* The calling thread may wait for long now. */
void blocking_note(void);

/* pthread_cond_wait() and pthread_cond_timedwait() after a note; the
 * latter's return value as is. */
void blocking_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu);
int blocking_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                            const struct timespec *until);

/* Lock @mu; when it is taken, note first and then wait for it. */
void blocking_mutex_lock(pthread_mutex_t *mu);

#endif
