/* fc_chunkconn.c: one rpc client per chunk server address, shared by every
 * FUSE worker thread.
 *
 * rpc clients are pipelined and thread-safe (common/rpc.h), so one TCP
 * connection per server carries all of this mount's chunk traffic.  A
 * connection is dialled on first use; dialling happens outside the pool
 * lock so a dead server does not stall requests to the others, and when
 * two threads race to dial the same server the loser closes its client.
 * A client that loses its connection redials by itself for a short while
 * (reconnect_ms below) and then fails calls with -ENOTCONN, which the data
 * path treats as "try the next replica".  Clients live until the pool is
 * freed at unmount.
 */
#include "fc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define CONNECT_TIMEOUT_MS 2000
#define RECONNECT_MS 2000
#define CALL_TIMEOUT_MS 30000

struct conn {
    struct conn *next;
    char addr[FC_ADDR_MAX];
    struct rpc_client *client;
};

struct fc_pool {
    pthread_mutex_t lock;
    struct conn *conns;
    char name[128];
};

/* @name is copied.  Caller owns the result: fc_pool_free(). */
struct fc_pool *fc_pool_new(const char *name)
{
    struct fc_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    strncpy(p->name, name, sizeof(p->name) - 1);
    return p;
}

void fc_pool_free(struct fc_pool *p)
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

static struct rpc_client *find_locked(struct fc_pool *p, const char *addr)
{
    for (struct conn *c = p->conns; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c->client;
    return NULL;
}

int fc_pool_get(struct fc_pool *p, const char *addr, struct rpc_client **out)
{
    if (strlen(addr) >= FC_ADDR_MAX)
        return -EINVAL;

    pthread_mutex_lock(&p->lock);
    struct rpc_client *found = find_locked(p, addr);
    pthread_mutex_unlock(&p->lock);
    if (found) {
        *out = found;
        return 0;
    }

    struct rpc_opts opts = {
        .role = PROTO_ROLE_CLIENT,
        .name = p->name,
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .call_timeout_ms = CALL_TIMEOUT_MS,
        .reconnect_ms = RECONNECT_MS,
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
