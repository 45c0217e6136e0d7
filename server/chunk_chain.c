/* chunk_chain.c: connections to the other replicas of replication chains.
 *
 * A write or sync that names further replicas is forwarded to every one
 * of them at once (chunk_write.c), each request with its own copy of the
 * body.  Connections are dialled on first use (role CHUNKD) and kept,
 * one per address string, for later requests; requests sent before the
 * handshake finishes are queued by the peer and go out once it is ready.
 * A connection that fails or closes fails its requests in flight
 * (-ECONNRESET, which the caller turns into an error reply) and is
 * forgotten, so the next request dials again.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define FWD_TIMEOUT_MS 30000u

struct chain_conn {
    struct chain_conn *next;
    struct peer *p;
    char addr[];
};

struct chunk_chain {
    struct chunk_server *srv;
    struct chain_conn *conns;
    bool closing;
};

static struct chunk_chain *the_chain(struct peer *p)
{
    return chunk_server_of(p)->chain;
}

static void chain_on_close(struct peer *p, int status)
{
    struct chunk_chain *c = the_chain(p);
    struct chain_conn **pp;

    for (pp = &c->conns; *pp; pp = &(*pp)->next) {
        if ((*pp)->p == p) {
            struct chain_conn *cc = *pp;
            if (status != 0)
                log_warn("chunk chain: connection lost: addr=%s err=%d",
                         cc->addr, status);
            *pp = cc->next;
            free(cc);
            break;
        }
    }
    peer_unref(p);
    if (c->closing && !c->conns)
        free(c);
}

static const struct peer_ops chain_ops = {
    .on_request = chunk_dispatch,
    .on_close = chain_on_close,
};

int chunk_chain_new(struct chunk_server *srv, struct chunk_chain **out)
{
    struct chunk_chain *c = calloc(1, sizeof(*c));

    if (!c)
        return -ENOMEM;
    c->srv = srv;
    *out = c;
    return 0;
}

void chunk_chain_close(struct chunk_chain *c)
{
    if (!c)
        return;
    c->closing = true;
    if (!c->conns) {
        free(c);
        return;
    }
    /* on_close runs later for each and frees the last of them. */
    for (struct chain_conn *cc = c->conns; cc; cc = cc->next)
        peer_close(cc->p);
}

static int conn_get(struct chunk_chain *c, struct proto_str addr,
                    struct peer **out)
{
    struct chain_conn *cc;
    int rc;

    for (cc = c->conns; cc; cc = cc->next) {
        if (strlen(cc->addr) == addr.len &&
            memcmp(cc->addr, addr.p, addr.len) == 0 && !peer_is_closed(cc->p)) {
            *out = cc->p;
            return 0;
        }
    }
    /* docs/security.md: another storage server is dialled with a ticket
     * this one seals for itself. */
    struct auth_cred *cred = NULL;
    if (!c->srv->auth.no_auth) {
        cred = malloc(sizeof(*cred));
        rc = cred ? chunk_auth_cred(c->srv, cred) : -ENOMEM;
        if (rc < 0) {
            free(cred);
            log_warn("chunk chain: no credential to dial with: addr=%.*s "
                     "err=%d",
                     (int)addr.len, addr.p, rc);
            return rc;
        }
    }
    cc = malloc(sizeof(*cc) + addr.len + 1);
    if (!cc) {
        free(cred);
        return -ENOMEM;
    }
    memcpy(cc->addr, addr.p, addr.len);
    cc->addr[addr.len] = '\0';
    rc = peer_connect(c->srv->loop, cc->addr, PROTO_ROLE_CHUNKD, c->srv->name,
                      &chain_ops, c->srv, &cc->p);
    if (rc == 0 && cred && peer_set_cred(cc->p, cred) < 0)
        peer_close(cc->p); /* fails like a refused dial */
    if (cred)
        memset(cred, 0, sizeof(*cred));
    free(cred);
    if (rc < 0) {
        log_warn("chunk chain: dial failed: addr=%s err=%d", cc->addr, rc);
        free(cc);
        return rc;
    }
    cc->next = c->conns;
    c->conns = cc;
    *out = cc->p;
    return 0;
}

int chunk_chain_request(struct chunk_chain *c, struct proto_str addr,
                        uint16_t opcode, const void *payload, size_t len,
                        peer_reply_cb cb, void *arg)
{
    struct peer *p;
    int rc;

    if (c->closing)
        return -ESHUTDOWN;
    rc = conn_get(c, addr, &p);
    if (rc < 0)
        return rc;
    return peer_request(p, opcode, payload, len, FWD_TIMEOUT_MS, cb, arg);
}
