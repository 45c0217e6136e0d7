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

#include "log.h"

#define LOC_CACHE_MAX 65536

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

int cl_probe(const char *addr, uint8_t role)
{
    struct rpc_opts opts = {
        .role = role,
        .name = "tessera probe",
        .connect_timeout_ms = 5000,
        .call_timeout_ms = 5000,
    };
    struct rpc_client *c;
    int rc = rpc_client_open(addr, &opts, &c);
    if (rc == 0)
        rpc_client_close(c);
    return rc;
}

/* @opts and its strings are borrowed.  Caller owns *out. */
int cl_client_open(const struct cl_opts *opts, struct cl_client **out)
{
    struct cl_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    cl_downset_init(&c->down);
    c->pool = cl_pool_new(opts->name, opts->role);
    c->loc = cl_loc_cache_new(LOC_CACHE_MAX);
    c->handles = cl_handles_new();
    c->mode = opts->cache;
    c->cache = cl_cache_new(c, opts);
    c->cb = cl_cb_new(c, opts);
    if (!c->pool || !c->loc || !c->handles || !c->cache || !c->cb) {
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
    };
    rc = cl_session_open(opts->meta, opts->name, opts->role, &hooks,
                         &c->session);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    c->meta = cl_session_rpc(c->session);
    rc = cl_cache_start(c->cache);
    if (rc < 0) {
        cl_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cl_client_close(struct cl_client *c)
{
    if (!c)
        return;
    /* The flush thread writes back and the break workers answer over the
     * session, so they stop first; then the session, whose reader thread
     * may be running on_request(). */
    cl_cache_free(c->cache);
    c->cache = NULL;
    if (c->handles)
        cl_handles_set_cache(c->handles, NULL);
    cl_cb_stop(c->cb);
    cl_session_close(c->session);
    cl_cb_free(c->cb);
    cl_pool_free(c->pool);
    cl_loc_cache_free(c->loc);
    cl_handles_free(c->handles);
    cl_downset_destroy(&c->down);
    free(c);
}

uint64_t cl_client_session(struct cl_client *c)
{
    return cl_session_id(c->session);
}
