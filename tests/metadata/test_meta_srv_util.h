/* test_meta_srv_util.h: helpers shared by the tests that drive a real
 * metad over loopback (test_meta_srv_daemon.c, test_meta_srv_callback.c):
 * a call left running while the test goes on.
 *
 * The helpers are static inline so each test file includes only what it
 * uses without unused-function warnings.
 */
#ifndef TESSERA_TEST_META_SRV_UTIL_H
#define TESSERA_TEST_META_SRV_UTIL_H

#include <pthread.h>
#include <setjmp.h> /* cmocka.h needs it first */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"
#include "rpc.h"

/* A call left running while the test goes on. */
struct pending {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    struct rpc_reply rep;
};

static inline void pending_done(void *arg, int status, struct rpc_reply *rep)
{
    struct pending *p = arg;
    pthread_mutex_lock(&p->mu);
    p->status = status;
    if (rep)
        p->rep = *rep;
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Send @w (freed) on @c without waiting. */
static inline void pending_start(struct pending *p, struct rpc_client *c,
                                 uint16_t opcode, struct proto_wbuf *w)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    assert_int_equal(w->err, 0);
    assert_int_equal(rpc_call_async(c, opcode, w->p, w->len, pending_done, p),
                     0);
    proto_wbuf_free(w);
}

static inline bool pending_is_done(struct pending *p)
{
    pthread_mutex_lock(&p->mu);
    bool done = p->done;
    pthread_mutex_unlock(&p->mu);
    return done;
}

/* Wait (at most 20 s: a hang fails instead) for @p; its status.  The
 * reply stays in p->rep: rpc_reply_free() it. */
static inline int pending_wait(struct pending *p)
{
    for (int i = 0; i < 2000 && !pending_is_done(p); i++)
        usleep(10 * 1000);
    assert_true(pending_is_done(p));
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    return p->status;
}

#endif
