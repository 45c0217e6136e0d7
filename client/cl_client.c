/* cl_client.c: the client as a whole, and what metad tells it about
 * storage servers.
 *
 * cl_client_open() builds the data path's state (location cache, open
 * inode table, chunk server pool) before the session, because metad may
 * send a notice as soon as the session exists.  The session's connection
 * then carries our requests to metad and metad's requests to us
 * (docs/protocol.md §2.3).
 *
 * SERVER_STATE (§11.7) arrives on the rpc reader thread.  For a server
 * that is not UP we, at once and without blocking on the network: remove
 * it from every cached location (reads stop trying it), mark stale every
 * write lease whose chain holds it (the next write asks metad for a new
 * chain, which metad gives without the server and at a new version), and
 * remember it as down (a failed chained write then knows whom to report,
 * cl_chunk.c).  UP forgets the mark; so does any location metad hands out
 * that lists the server, since metad never lists a down one, so a lost UP
 * notice costs nothing.  Every notice is answered with an empty reply.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define LOC_CACHE_MAX 65536
/* Open inodes written back per pass when the client closes. */
#define CLOSE_COLLECT_MAX 4096
#define CLOSE_PASSES 3

/* ---- The down set ------------------------------------------------------ */

void cl_downset_init(struct cl_downset *d)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->lock, NULL);
}

void cl_downset_destroy(struct cl_downset *d)
{
    pthread_mutex_destroy(&d->lock);
}

/* A full set forgets its oldest entry: the mark is only a hint. */
void cl_downset_add(struct cl_downset *d, uint32_t id)
{
    pthread_mutex_lock(&d->lock);
    size_t i;
    for (i = 0; i < d->n; i++)
        if (d->ids[i] == id)
            break;
    if (i == d->n) {
        if (d->n == CL_DOWN_MAX) {
            memmove(d->ids, d->ids + 1, (CL_DOWN_MAX - 1) * sizeof(d->ids[0]));
            d->n--;
        }
        d->ids[d->n++] = id;
    }
    pthread_mutex_unlock(&d->lock);
}

void cl_downset_remove(struct cl_downset *d, uint32_t id)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n; i++) {
        if (d->ids[i] == id) {
            memmove(d->ids + i, d->ids + i + 1,
                    (d->n - i - 1) * sizeof(d->ids[0]));
            d->n--;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

bool cl_downset_has(struct cl_downset *d, uint32_t id)
{
    bool hit = false;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n && !hit; i++)
        hit = d->ids[i] == id;
    pthread_mutex_unlock(&d->lock);
    return hit;
}

/* ---- Notices from metad ------------------------------------------------ */

void cl_client_server_state(struct cl_client *c, uint32_t server_id,
                            uint32_t state)
{
    if (state == PROTO_SERVER_UP) {
        cl_downset_remove(&c->down, server_id);
        return;
    }
    cl_downset_add(&c->down, server_id);
    size_t locs = cl_loc_drop_server(c->loc, server_id);
    size_t leases = cl_handles_server_down(c->handles, server_id);
    log_debug("cl.state",
              "server not up: server=%u state=%u locations=%zu "
              "leases=%zu",
              server_id, state, locs, leases);
}

static void on_request(struct rpc_client *rpc, uint16_t opcode, uint64_t req_id,
                       const uint8_t *payload, size_t len, void *arg)
{
    struct cl_client *c = arg;
    uint16_t rep = (uint16_t)(opcode + 1);

    if (opcode == PROTO_MSG_CALLBACK_BREAK_REQ) {
        cl_cb_break(c, rpc, req_id, payload, len);
        return;
    }
    if (opcode != PROTO_MSG_SERVER_STATE_REQ) {
        rpc_reply_send(rpc, req_id, rep, -ENOSYS, NULL, 0);
        return;
    }
    struct proto_server_state_req m;
    if (proto_server_state_req_decode(payload, len, &m) < 0) {
        log_warn("server state: malformed notice from metad: len=%zu", len);
        rpc_reply_send(rpc, req_id, rep, -EINVAL, NULL, 0);
        return;
    }
    if (m.state != PROTO_SERVER_UP)
        log_info("server state: server %u is %s: addr=%.*s", m.server_id,
                 m.state == PROTO_SERVER_SUSPECT    ? "suspect"
                 : m.state == PROTO_SERVER_DOWN     ? "down"
                 : m.state == PROTO_SERVER_DRAINING ? "draining"
                                                    : "removed",
                 (int)m.addr.len, m.addr.p);
    cl_client_server_state(c, m.server_id, m.state);
    rpc_reply_send(rpc, req_id, rep, 0, NULL, 0);
}

/* ---- Open and close ---------------------------------------------------- */

int cl_probe(const char *addr, uint8_t role, struct cl_auth *auth)
{
    struct rpc_opts opts = {
        .role = role,
        .name = "tessera probe",
        .connect_timeout_ms = 5000,
        .call_timeout_ms = 5000,
        .get_cred = auth ? cl_auth_key_cred : NULL,
        .cred_arg = auth,
    };
    struct rpc_client *c;
    int rc = rpc_client_open(addr, &opts, &c);
    if (rc == 0)
        rpc_client_close(c);
    return rc;
}

/* @opts and its strings are borrowed.  Caller owns *out. */
/* The namespace queue's way to metad (cl_nsq.c). */
static int nsq_send(void *arg, uint16_t opcode, const void *payload,
                    size_t len, rpc_done_cb cb, void *cb_arg)
{
    struct cl_client *c = arg;

    return rpc_call_async(c->meta, opcode, payload, len, cb, cb_arg);
}

int cl_client_open(const struct cl_opts *opts, struct cl_client **out)
{
    struct cl_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    cl_downset_init(&c->down);
    cl_reported_init(&c->reported);
    c->pool = cl_pool_new(opts->name, opts->role);
    if (c->pool)
        cl_pool_set_auth(c->pool, opts->auth);
    c->loc = cl_loc_cache_new(LOC_CACHE_MAX);
    c->handles = cl_handles_new();
    c->mode = opts->cache;
    c->delay_after_sync = opts->delay_after_sync;
    c->direct_write_max = opts->direct_write_max;
    c->cache = cl_cache_new(opts);
    c->flush = c->cache ? cl_flush_new(c, opts) : NULL;
    c->cb = cl_cb_new(c, opts);
    if (!c->pool || !c->loc || !c->handles || !c->cache || !c->flush ||
        !c->cb) {
        cl_client_close(c);
        return -ENOMEM;
    }
    cl_handles_set_cache(c->handles, c->cache);
    int rc = cl_cb_start(c->cb);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    struct cl_session_hooks hooks = {
        .on_request = on_request,
        .on_reopen = cl_cb_reset,
        .arg = c,
        .callbacks = opts->callbacks,
        .auth = opts->auth,
    };
    rc = cl_session_open(opts->meta, opts->name, opts->role, &hooks,
                         &c->session);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    c->meta = cl_session_rpc(c->session);
    struct cl_nsq_ops nsq_ops = {.send = nsq_send, .arg = c};
    rc = cl_nsq_new(&nsq_ops, &c->nsq);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    rc = cl_flush_start(c->flush);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- Writing back on the way out -------------------------------------- */

/* One write-back of everything still open, run on a thread of its own so
 * that cl_client_close() can stop waiting for it.  Owned by the thread and
 * by the closer together: whoever sets @done or @abandoned second frees
 * it. */
struct drain {
    struct cl_client *c;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;      /* the thread finished */
    bool abandoned; /* the closer stopped waiting */
    size_t inodes, failed;
    uint64_t written, lost; /* bytes of delayed writes */
    int err;                /* the first failure */
};

static void drain_free(struct drain *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* Flush every open inode with delayed writes or an owed WRITE_END.  An
 * inode whose WRITE_END keeps failing is collected again by the next
 * pass, hence the bound on passes. */
static void drain_run(struct drain *d)
{
    struct cl_client *c = d->c;
    struct cl_inode **v = malloc(CLOSE_COLLECT_MAX * sizeof(*v));

    if (!v) {
        d->err = -ENOMEM;
        return;
    }
    for (int pass = 0; pass < CLOSE_PASSES; pass++) {
        size_t k = cl_handles_collect(c->handles, v, CLOSE_COLLECT_MAX, 0);
        if (k == 0)
            break;
        for (size_t i = 0; i < k; i++) {
            pthread_mutex_lock(&v[i]->lock);
            uint64_t bytes = v[i]->dirty_bytes;
            pthread_mutex_unlock(&v[i]->lock);
            int rc = cl_file_flush(c, v[i]);
            pthread_mutex_lock(&d->lock);
            if (pass == 0)
                d->inodes++;
            if (rc < 0) {
                d->failed++;
                d->lost += bytes;
                if (!d->err)
                    d->err = rc;
            } else {
                d->written += bytes;
            }
            pthread_mutex_unlock(&d->lock);
            if (rc < 0)
                log_error("close: write-back failed: %s ino=%llu bytes=%llu",
                          strerror(-rc), (unsigned long long)cl_inode_ino(v[i]),
                          (unsigned long long)bytes);
            cl_inode_put(c, v[i]);
        }
    }
    free(v);
}

static void *drain_main(void *arg)
{
    struct drain *d = arg;

    drain_run(d);
    pthread_mutex_lock(&d->lock);
    d->done = true;
    bool abandoned = d->abandoned;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    if (abandoned)
        drain_free(d);
    return NULL;
}

/* Write back what open inodes still hold, for at most @budget_ms.  0 when
 * the thread finished (failures are logged), -ETIMEDOUT when it did not:
 * it still uses @c then, which must not be freed. */
static int drain(struct cl_client *c, uint32_t budget_ms)
{
    struct drain *d = calloc(1, sizeof(*d));
    pthread_t th;

    if (!d)
        return -ENOMEM;
    d->c = c;
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -pthread_create(&th, NULL, drain_main, d);
    if (rc < 0) {
        drain_free(d);
        return rc;
    }

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += budget_ms / 1000;
    until.tv_nsec += (long)(budget_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->lock);
    while (!d->done &&
           blocking_cond_timedwait(&d->cond, &d->lock, &until) != ETIMEDOUT)
        ;
    if (!d->done) {
        uint64_t left = cl_cache_dirty(c->cache);
        log_error("close: write-back still running after %u ms, giving up: "
                  "written=%llu lost=%llu inodes=%zu",
                  budget_ms, (unsigned long long)d->written,
                  (unsigned long long)(d->lost + left), d->inodes);
        d->abandoned = true;
        pthread_mutex_unlock(&d->lock);
        pthread_detach(th);
        return -ETIMEDOUT;
    }
    pthread_mutex_unlock(&d->lock);
    pthread_join(th, NULL);
    if (d->failed)
        log_error("close: write-back of open files failed: %s written=%llu "
                  "lost=%llu inodes=%zu failed=%zu",
                  strerror(-d->err), (unsigned long long)d->written,
                  (unsigned long long)d->lost, d->inodes, d->failed);
    else if (d->inodes)
        log_info("close: wrote back open files: written=%llu inodes=%zu",
                 (unsigned long long)d->written, d->inodes);
    drain_free(d);
    return 0;
}

void cl_client_close(struct cl_client *c)
{
    if (!c)
        return;
    /* Nothing below waits out a metad that is gone (stopped before its
     * clients, or unreachable): what it does not take is logged. */
    if (c->meta)
        rpc_client_wind_down(c->meta, CL_CLOSE_META_MS);
    /* Files may still be open (the mount was stopped by a signal, or the
     * export while a client was connected): their delayed writes and
     * owed WRITE_END go now, over the session, before anything stops.
     * If that takes too long the client is left as it is: the write-back
     * thread still uses it, and the process is on its way out. */
    if (c->session && drain(c, CL_CLOSE_FLUSH_MS) == -ETIMEDOUT)
        return;
    /* The flush thread writes back and the break workers answer over the
     * session, so they stop first; then the session, whose reader thread
     * may be running on_request(). */
    cl_flush_free(c->flush);
    c->flush = NULL;
    if (c->cache)
        cl_cache_stop(c->cache);
    if (c->handles)
        cl_handles_set_cache(c->handles, NULL);
    cl_cache_free(c->cache);
    c->cache = NULL;
    cl_cb_stop(c->cb);
    /* Changes answered locally go before the session ends (bounded when
     * metad is away, cl_nsq.c). */
    cl_nsq_free(c->nsq);
    c->nsq = NULL;
    cl_session_close(c->session);
    cl_cb_free(c->cb);
    cl_pool_free(c->pool);
    cl_loc_cache_free(c->loc);
    cl_handles_free(c->handles);
    cl_downset_destroy(&c->down);
    cl_reported_destroy(&c->reported);
    free(c);
}

uint64_t cl_client_dirty(struct cl_client *c)
{
    return cl_cache_dirty(c->cache);
}

uint64_t cl_client_session(struct cl_client *c)
{
    return cl_session_id(c->session);
}

int cl_client_rights(struct cl_client *c, const char *name,
                     struct auth_caps *out)
{
    return cl_auth_rights(c->meta, name, out);
}
