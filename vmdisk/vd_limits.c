/* vd_limits.c: connections per address and sessions per TLS name for
 * tessera-nbd (docs/security.md, "Limits against abuse"), over the table of
 * common/conn_limit.c that main() makes from --max-conns-per-addr and
 * --max-sessions-per-identity.
 *
 * A connection counts its address when it is accepted (vd_conn_serve())
 * and its TLS name when it first asks for an export (export_open() in
 * vd_handshake.c); both are given back when it ends.  Past a limit the
 * export is refused with a sentence, so the client learns why, and the
 * server goes on serving the others.
 */
#include "vd_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conn_limit.h"
#include "log.h"

/* Count @c against its address's limit (TCP only).  Over it, the
 * connection still haggles options so that the export it asks for is
 * refused with a sentence (export_open()), not a silent close. */
void vd_limits_take_addr(struct vd_conn *c)
{
    struct conn_limit *t = c->cfg->limits;
    int rc;

    if (!t || !strncmp(c->peer, "unix:", 5))
        return;
    conn_limit_addr_key(c->peer, c->addr_key, sizeof(c->addr_key));
    rc = conn_limit_take(t, CONN_LIMIT_ADDR, c->addr_key);
    if (rc == 0) {
        c->addr_counted = true;
        return;
    }
    c->over_limit = true;
    log_warn("nbd connection: refused: %s: limit=%u peer=%s",
             rc == -EUSERS ? "too many connections from this address"
                           : strerror(-rc),
             conn_limit_max(t, CONN_LIMIT_ADDR), c->peer);
}

void vd_limits_release(struct vd_conn *c)
{
    if (c->addr_counted)
        conn_limit_put(c->cfg->limits, CONN_LIMIT_ADDR, c->addr_key);
    if (c->identity_counted)
        conn_limit_put(c->cfg->limits, CONN_LIMIT_IDENTITY, c->id.tls_user);
}

int vd_limits_check(struct vd_conn *c, char *why, size_t whylen)
{
    struct conn_limit *t = c->cfg->limits;
    int rc;

    if (c->over_limit) {
        snprintf(why, whylen,
                 "too many connections from %s (limit %u): close one first",
                 c->addr_key, conn_limit_max(t, CONN_LIMIT_ADDR));
        return -EUSERS;
    }
    if (!t || !c->id.tls_user || c->identity_counted)
        return 0;
    rc = conn_limit_take(t, CONN_LIMIT_IDENTITY, c->id.tls_user);
    if (rc < 0) {
        snprintf(why, whylen,
                 "too many sessions of identity %s (limit %u): close one "
                 "first",
                 c->id.tls_user, conn_limit_max(t, CONN_LIMIT_IDENTITY));
        return rc;
    }
    c->identity_counted = true;
    return 0;
}
