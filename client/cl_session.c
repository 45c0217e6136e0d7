/* cl_session.c: the client's connection to metad and its session.
 *
 * Happy path (docs/architecture.md, "Sessions"): connect and handshake
 * (rpc_client_open), SESSION_OPEN binds the connection to a new session,
 * a renew thread sends SESSION_RENEW every lease/3, and SESSION_CLOSE ends
 * it when the client closes.  With a key (cl_auth.c) the handshake
 * authenticates, and the session fetches the ticket for the chunk servers
 * at open and again, from the renew thread, at half its life.
 *
 * Failure modes:
 *   - The connection drops (metad restarted, or only the connection):
 *     the rpc client redials for up to RECONNECT_MS and runs
 *     on_reconnect() before resending calls.  A new connection is not
 *     bound to any session, so on_reconnect first resumes the old one
 *     with SESSION_RENEW (§6.2: it binds the connection), keeping
 *     everything metad holds for it, such as image write leases.  Only
 *     when metad no longer knows it (ENOSESSION) does it open a new one.
 *     Callback promises do not outlive the connection (metad drops them
 *     when it closes, and a break may have been missed meanwhile), so a
 *     resumed session registers again and on_reopen drops the caches.
 *   - metad expired the session (the renew fails with ENOSESSION, seen as
 *     -ENOTCONN): the renew thread opens a new one.
 *   - metad stays away longer than RECONNECT_MS: calls fail with -ENOTCONN
 *     (the application sees EIO) until it is back; the renew thread keeps
 *     trying.
 *
 * Requests metad sends on the connection (SERVER_STATE §11.7,
 * CALLBACK_BREAK §14) go to the owner's hook on the rpc reader thread.
 *
 * With callbacks, every SESSION_OPEN is followed by CALLBACK_REGISTER
 * (§14.2): promises belong to a session, so a new session must register
 * again, and the owner's on_reopen hook learns that the promises of the
 * old one are gone (cl_callback.c drops what it cached under them).
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WANT_LEASE_MS 30000
#define RECONNECT_MS 60000
#define CONNECT_TIMEOUT_MS 5000
#define CALL_TIMEOUT_MS 30000
#define MIN_RENEW_MS 100

struct cl_session {
    struct rpc_client *rpc;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t id;       /* protected by @lock */
    uint32_t lease_ms; /* protected by @lock */
    bool stop;         /* protected by @lock */
    bool renewing;     /* the renew thread was started */
    pthread_t renew;
    uint8_t role;
    struct cl_session_hooks hooks;
    bool opened;         /* a session was opened before: the next replaces it */
    bool cb_ok;          /* protected by @lock: CALLBACK_REGISTER succeeded */
    uint32_t promise_ms; /* protected by @lock: its promises' lease */
    char name[128];
    char host[128];
};

typedef int (*call_fn)(struct rpc_client *c, uint16_t opcode,
                       const void *payload, size_t len, struct rpc_reply *rep);

/* CALLBACK_REGISTER ON for the session just opened.  A failure leaves
 * the session without callbacks: the mount then validates on open. */
static void callback_register(struct cl_session *s, call_fn call)
{
    struct proto_callback_register_req req = {.flags = PROTO_CALLBACK_ON};
    struct proto_callback_register_rep out = {0};
    struct proto_wbuf w;
    struct rpc_reply rep;

    proto_wbuf_init(&w);
    proto_callback_register_req_encode(&w, &req);
    int rc = w.err;
    if (rc == 0)
        rc = call(s->rpc, PROTO_MSG_CALLBACK_REGISTER_REQ, w.p, w.len, &rep);
    proto_wbuf_free(&w);
    if (rc == 0) {
        rc = proto_callback_register_rep_decode(rep.payload, rep.len, &out);
        rpc_reply_free(&rep);
    }
    if (rc < 0)
        log_warn("session: callback register failed, caching without "
                 "callbacks: %s",
                 strerror(-rc));
    pthread_mutex_lock(&s->lock);
    s->cb_ok = rc == 0;
    s->promise_ms = rc == 0 ? out.lease_ms : 0;
    pthread_mutex_unlock(&s->lock);
}

/* SESSION_OPEN through @call (rpc_call, or rpc_call_raw inside the
 * reconnect hook); records the new id and lease. */
static int session_open(struct cl_session *s, call_fn call)
{
    struct proto_session_open_req req = {
        .lease_ms = WANT_LEASE_MS,
        .client_name = {s->name, (uint32_t)strlen(s->name)},
        .host = {s->host, (uint32_t)strlen(s->host)},
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_session_open_req_encode(&w, &req);
    if (w.err) {
        int err = w.err;
        proto_wbuf_free(&w);
        return err;
    }

    struct rpc_reply rep;
    int rc = call(s->rpc, PROTO_MSG_SESSION_OPEN_REQ, w.p, w.len, &rep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;

    struct proto_session_open_rep out;
    rc = proto_session_open_rep_decode(rep.payload, rep.len, &out);
    rpc_reply_free(&rep);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&s->lock);
    s->id = out.session_id;
    s->lease_ms = out.lease_ms ? out.lease_ms : WANT_LEASE_MS;
    bool again = s->opened;
    s->opened = true;
    s->cb_ok = false;
    pthread_mutex_unlock(&s->lock);
    log_info("session: opened: session=%llu lease_ms=%u",
             (unsigned long long)out.session_id, out.lease_ms);
    if (s->hooks.callbacks)
        callback_register(s, call);
    if (again && s->hooks.on_reopen)
        s->hooks.on_reopen(s->hooks.arg);
    return 0;
}

static int session_id_call(struct cl_session *s, call_fn call, uint16_t opcode,
                           struct rpc_reply *rep)
{
    struct proto_session_id req = {.session_id = cl_session_id(s)};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_session_id_encode(&w, &req);
    int rc = w.err;
    if (rc == 0)
        rc = call(s->rpc, opcode, w.p, w.len, rep);
    proto_wbuf_free(&w);
    return rc;
}

/* SESSION_RENEW of the current session on the new connection, which
 * binds it (§6.2).  -ENOTCONN (ENOSESSION) or -ENOENT: metad does not
 * know it any more. */
static int session_resume(struct cl_session *s)
{
    struct rpc_reply rep;
    int rc =
        session_id_call(s, rpc_call_raw, PROTO_MSG_SESSION_RENEW_REQ, &rep);
    if (rc < 0)
        return rc;
    struct proto_session_renew_rep out;
    if (proto_session_renew_rep_decode(rep.payload, rep.len, &out) == 0 &&
        out.lease_ms) {
        pthread_mutex_lock(&s->lock);
        s->lease_ms = out.lease_ms;
        pthread_mutex_unlock(&s->lock);
    }
    rpc_reply_free(&rep);
    log_info("session: resumed after reconnect: session=%llu",
             (unsigned long long)cl_session_id(s));
    if (s->hooks.callbacks)
        callback_register(s, rpc_call_raw);
    if (s->hooks.on_reopen)
        s->hooks.on_reopen(s->hooks.arg);
    return 0;
}

static void on_reconnect(struct rpc_client *c, void *arg)
{
    struct cl_session *s = arg;
    (void)c;
    int rc = session_resume(s);
    if (rc == 0)
        return;
    if (rc != -ENOTCONN && rc != -ENOENT) {
        /* metad did not say the session is gone: keep it.  The renew
         * thread tries again, and binds the connection when it works. */
        log_warn("session: resume after reconnect failed: %s session=%llu",
                 strerror(-rc), (unsigned long long)cl_session_id(s));
        return;
    }
    log_warn("session: metad no longer knows session %llu, opening a new "
             "one: %s",
             (unsigned long long)cl_session_id(s), strerror(-rc));
    rc = session_open(s, rpc_call_raw);
    if (rc < 0)
        log_warn("session: reopen after reconnect failed: %s", strerror(-rc));
}

static void on_request(struct rpc_client *c, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len, void *arg)
{
    struct cl_session *s = arg;
    if (s->hooks.on_request)
        s->hooks.on_request(c, opcode, req_id, payload, len, s->hooks.arg);
    else
        rpc_reply_send(c, req_id, (uint16_t)(opcode + 1), -ENOSYS, NULL, 0);
}

static int renew_once(struct cl_session *s)
{
    struct rpc_reply rep;
    int rc = session_id_call(s, rpc_call, PROTO_MSG_SESSION_RENEW_REQ, &rep);
    if (rc == 0) {
        struct proto_session_renew_rep out;
        if (proto_session_renew_rep_decode(rep.payload, rep.len, &out) == 0 &&
            out.lease_ms) {
            pthread_mutex_lock(&s->lock);
            s->lease_ms = out.lease_ms;
            pthread_mutex_unlock(&s->lock);
        }
        rpc_reply_free(&rep);
        return 0;
    }
    if (rc == -ENOTCONN || rc == -ENOENT) {
        /* ENOSESSION: metad dropped us.  Start over with a new session. */
        log_warn("session: renew refused, opening a new session: %s",
                 strerror(-rc));
        rc = session_open(s, rpc_call);
    }
    /* docs/security.md, "Tickets": renewed at half their life. */
    if (rc == 0 && s->hooks.auth && cl_auth_ticket_due(s->hooks.auth)) {
        rc = cl_auth_ticket_fetch(s->hooks.auth, s->rpc, false);
        if (rc < 0)
            log_warn("session: ticket renewal failed: %s", strerror(-rc));
        rc = 0;
    }
    return rc;
}

static void *renew_main(void *arg)
{
    struct cl_session *s = arg;

    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        uint32_t every = s->lease_ms / 3;
        if (every < MIN_RENEW_MS)
            every = MIN_RENEW_MS;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += every / 1000;
        until.tv_nsec += (long)(every % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!s->stop &&
               blocking_cond_timedwait(&s->cond, &s->lock, &until) == 0)
            ;
        if (s->stop)
            break;
        pthread_mutex_unlock(&s->lock);
        int rc = renew_once(s);
        if (rc < 0)
            log_warn("session: renew failed: %s", strerror(-rc));
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* @addr and @name are borrowed.  Caller owns *out: cl_session_close(). */
int cl_session_open(const char *addr, const char *name, uint8_t role,
                    const struct cl_session_hooks *hooks,
                    struct cl_session **out)
{
    struct cl_session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    strncpy(s->name, name, sizeof(s->name) - 1);
    s->role = role;
    s->hooks = *hooks;
    if (gethostname(s->host, sizeof(s->host) - 1) < 0)
        strcpy(s->host, "unknown");

    struct rpc_opts opts = {
        .role = role,
        .name = s->name,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .call_timeout_ms = CALL_TIMEOUT_MS,
        .reconnect_ms = RECONNECT_MS,
        .on_reconnect = on_reconnect,
        .on_request = on_request,
        .arg = s,
        .get_cred = hooks->auth ? cl_auth_key_cred : NULL,
        .cred_arg = hooks->auth,
    };
    int rc = rpc_client_open(addr, &opts, &s->rpc);
    if (rc < 0)
        goto fail;
    rc = session_open(s, rpc_call);
    if (rc < 0)
        goto fail;
    if (hooks->auth) {
        rc = cl_auth_ticket_fetch(hooks->auth, s->rpc, false);
        if (rc < 0) {
            log_error("session: no ticket for the storage servers: %s",
                      strerror(-rc));
            goto fail;
        }
    }
    rc = -pthread_create(&s->renew, NULL, renew_main, s);
    if (rc < 0)
        goto fail;
    s->renewing = true;
    *out = s;
    return 0;

fail:
    cl_session_close(s);
    return rc;
}

void cl_session_close(struct cl_session *s)
{
    if (!s)
        return;
    if (s->renewing) {
        pthread_mutex_lock(&s->lock);
        s->stop = true;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->renew, NULL);
    }
    if (s->rpc && s->id) {
        struct rpc_reply rep;
        /* Without waiting for a reconnect: closing must not hang on a
         * metad that is away; the session then expires by itself. */
        int rc =
            session_id_call(s, rpc_call_raw, PROTO_MSG_SESSION_CLOSE_REQ, &rep);
        if (rc == 0)
            rpc_reply_free(&rep);
        else
            log_warn("session: close failed: %s", strerror(-rc));
    }
    rpc_client_close(s->rpc);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

struct rpc_client *cl_session_rpc(struct cl_session *s)
{
    return s->rpc;
}

bool cl_session_callbacks(struct cl_session *s)
{
    pthread_mutex_lock(&s->lock);
    bool ok = s->cb_ok;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

uint32_t cl_session_promise_ms(struct cl_session *s)
{
    pthread_mutex_lock(&s->lock);
    uint32_t ms = s->promise_ms;
    pthread_mutex_unlock(&s->lock);
    return ms;
}

uint64_t cl_session_id(struct cl_session *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t id = s->id;
    pthread_mutex_unlock(&s->lock);
    return id;
}
