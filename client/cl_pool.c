/* cl_pool.c: one rpc client per chunk server address, shared by every
 * thread of the client.
 *
 * rpc clients are pipelined and thread-safe (common/rpc.h), so one TCP
 * connection per server carries all of this process's chunk traffic.  A
 * connection is dialled on first use; dialling happens outside the pool
 * lock so a dead server does not stall requests to the others, and when
 * two threads race to dial the same server the loser closes its client.
 * A client that loses its connection redials by itself for a short while
 * (RECONNECT_MS) and then fails calls with -ENOTCONN, which the data path
 * treats as "try the next replica".  A call gets no answer for at most
 * CALL_TIMEOUT_MS: a stopped server (a partition) must not hold a write
 * for longer than metad takes to declare it down.  Clients live until the
 * pool is freed.
 *
 * cl_pool_probe() dials a separate, short-lived connection with a short
 * handshake timeout: after a failed chained write it tells a server that
 * answers from one that does not.
 */
#include "cl_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CONNECT_TIMEOUT_MS 2000
#define RECONNECT_MS 1000
#define CALL_TIMEOUT_MS 5000
#define PROBE_TIMEOUT_MS 1000

struct conn {
    struct conn *next;
    char addr[CL_ADDR_MAX];
    struct rpc_client *client;
};

struct cl_pool {
    pthread_mutex_t lock;
    struct conn *conns;
    uint8_t role;
    char name[128];
    struct cl_auth *auth; /* borrowed; NULL: no authentication */
};

void cl_pool_set_auth(struct cl_pool *p, struct cl_auth *auth)
{
    p->auth = auth;
}

/* @name is copied.  Caller owns the result: cl_pool_free(). */
struct cl_pool *cl_pool_new(const char *name, uint8_t role)
{
    struct cl_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    strncpy(p->name, name, sizeof(p->name) - 1);
    p->role = role;
    return p;
}

void cl_pool_free(struct cl_pool *p)
{
    if (!p)
        return;
    struct conn *c = p->conns;
    while (c) {
        struct conn *next = c->next;
        rpc_client_close(c->client);
        free(c);
        c = next;
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static struct rpc_client *find_locked(struct cl_pool *p, const char *addr)
{
    for (struct conn *c = p->conns; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c->client;
    return NULL;
}

struct rpc_client *cl_pool_find(struct cl_pool *p, const char *addr)
{
    pthread_mutex_lock(&p->lock);
    struct rpc_client *found = find_locked(p, addr);
    pthread_mutex_unlock(&p->lock);
    return found;
}

int cl_pool_get(struct cl_pool *p, const char *addr, struct rpc_client **out)
{
    if (strlen(addr) >= CL_ADDR_MAX)
        return -EINVAL;

    pthread_mutex_lock(&p->lock);
    struct rpc_client *found = find_locked(p, addr);
    pthread_mutex_unlock(&p->lock);
    if (found) {
        *out = found;
        return 0;
    }

    struct rpc_opts opts = {
        .role = p->role,
        .name = p->name,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .call_timeout_ms = CALL_TIMEOUT_MS,
        .reconnect_ms = RECONNECT_MS,
        .get_cred = p->auth ? cl_auth_ticket_cred : NULL,
        .cred_arg = p->auth,
    };
    struct rpc_client *client;
    int rc = rpc_client_open(addr, &opts, &client);
    if (rc < 0) {
        log_warn("chunk connect: cannot reach chunk server: %s addr=%s",
                 strerror(-rc), addr);
        return rc;
    }

    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        rpc_client_close(client);
        return -ENOMEM;
    }
    strcpy(c->addr, addr);
    c->client = client;

    pthread_mutex_lock(&p->lock);
    found = find_locked(p, addr);
    if (!found) {
        c->next = p->conns;
        p->conns = c;
        found = client;
        c = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (c) {
        rpc_client_close(c->client);
        free(c);
    }
    *out = found;
    return 0;
}

int cl_pool_probe(struct cl_pool *p, const char *addr)
{
    struct rpc_opts opts = {
        .role = p->role,
        .name = p->name,
        .connect_timeout_ms = PROBE_TIMEOUT_MS,
        .call_timeout_ms = PROBE_TIMEOUT_MS,
        .get_cred = p->auth ? cl_auth_ticket_cred : NULL,
        .cred_arg = p->auth,
    };
    struct rpc_client *client;
    int rc = rpc_client_open(addr, &opts, &client);
    if (rc == 0)
        rpc_client_close(client);
    return rc;
}
