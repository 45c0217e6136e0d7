/* adm_conn.c: the CLI's connection to metad and how its failures are
 * reported.
 *
 * Every command talks to metad with the blocking client (common/rpc.h) as
 * role ADMIN, without a session and without reconnecting: a command is one
 * short exchange, and a metad that cannot be reached is reported at once
 * with exit code 2 so scripts can tell "down" from "unhealthy" (1).
 */
#include "adm_internal.h"

#include <errno.h>
#include <string.h>

static bool is_unreachable(int rc)
{
    switch (rc) {
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -ENOTCONN:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EADDRNOTAVAIL:
    case -EPIPE:
        return true;
    default:
        return false;
    }
}

int adm_connect(struct adm *a)
{
    struct rpc_opts opts = {
        .role = PROTO_ROLE_ADMIN,
        .name = "tessera admin",
        .connect_timeout_ms = 5000,
        .call_timeout_ms = 30000,
        .reconnect_ms = 0,
    };
    int rc = rpc_client_open(a->meta, &opts, &a->rpc);

    if (rc < 0) {
        fprintf(stderr, "tessera: cannot reach metadata server at %s: %s\n",
                a->meta, rc == -EINVAL ? "invalid address" : strerror(-rc));
        return ADM_EXIT_UNREACHABLE;
    }
    return ADM_EXIT_OK;
}

int adm_fail(struct adm *a, const char *what, int rc)
{
    if (is_unreachable(rc)) {
        fprintf(stderr, "tessera: %s: lost the metadata server at %s: %s\n",
                what, a->meta, strerror(-rc));
        return ADM_EXIT_UNREACHABLE;
    }
    fprintf(stderr, "tessera: %s: %s\n", what, strerror(-rc));
    return ADM_EXIT_FAIL;
}
