/* blocking.c: the hook run before a wait that may be long (blocking.h). */
#include "blocking.h"

#include <stddef.h>

static blocking_hook_fn hook;

void blocking_set_hook(blocking_hook_fn fn)
{
    __atomic_store_n(&hook, fn, __ATOMIC_RELEASE);
}

void blocking_note(void)
{
    blocking_hook_fn fn = __atomic_load_n(&hook, __ATOMIC_ACQUIRE);
    if (fn)
        fn();
}

void blocking_cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu)
{
    blocking_note();
    pthread_cond_wait(cv, mu);
}

int blocking_cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *mu,
                            const struct timespec *until)
{
    blocking_note();
    return pthread_cond_timedwait(cv, mu, until);
}

void blocking_mutex_lock(pthread_mutex_t *mu)
{
    if (pthread_mutex_trylock(mu) == 0)
        return;
    blocking_note();
    pthread_mutex_lock(mu);
}
