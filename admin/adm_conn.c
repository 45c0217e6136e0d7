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
#include <unistd.h>

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

int adm_auth_open(struct adm *a)
{
    const char *key = auth_key_path(a->key);
    int rc = a->auth ? 0 : cl_auth_open(key, &a->auth);

    if (rc < 0) {
        fprintf(stderr, "tessera: key file %s: %s\n", key, auth_key_why(rc));
        return rc;
    }
    if (a->secure && !a->auth) {
        fprintf(stderr, "tessera: --secure needs a key: --key FILE or "
                        "$TESSERA_KEY\n");
        return -ENOKEY;
    }
    if (a->auth)
        cl_auth_set_secure(a->auth, a->secure);
    return 0;
}

int adm_rpc_open(struct adm *a, const char *addr, struct rpc_client **out)
{
    struct rpc_opts opts = {
        .role = PROTO_ROLE_ADMIN,
        .name = "tessera admin",
        .connect_timeout_ms = 5000,
        .call_timeout_ms = 30000,
        .reconnect_ms = 0,
        .get_cred = a->auth ? cl_auth_key_cred : NULL,
        .cred_arg = a->auth,
    };

    return rpc_client_open(addr, &opts, out);
}

int adm_connect(struct adm *a)
{
    int rc = adm_auth_open(a);

    if (rc < 0)
        return ADM_EXIT_FAIL;
    rc = adm_rpc_open(a, a->meta, &a->rpc);
    if (rc == -EKEYREJECTED) {
        fprintf(stderr, "tessera: the metadata server at %s %s\n", a->meta,
                a->auth ? "refused the key (wrong key or unknown identity), "
                          "or did not prove itself"
                        : "requires a key: --key FILE or $TESSERA_KEY");
        return ADM_EXIT_FAIL;
    }
    if (rc == -ENOPROTOOPT) {
        fprintf(stderr, "tessera: the metadata server at %s %s\n", a->meta,
                a->secure ? "does not offer a secure link (--secure)"
                          : "requires a secure link: --secure or "
                            "TESSERA_SECURE=1");
        return ADM_EXIT_FAIL;
    }
    if (rc < 0) {
        fprintf(stderr, "tessera: cannot reach metadata server at %s: %s\n",
                a->meta, rc == -EINVAL ? "invalid address" : strerror(-rc));
        return ADM_EXIT_UNREACHABLE;
    }
    return ADM_EXIT_OK;
}

int adm_ticket(struct adm *a)
{
    return a->auth ? cl_auth_ticket_fetch(a->auth, a->rpc, false) : 0;
}

int adm_fail(struct adm *a, const char *what, int rc)
{
    if (rc == -EREMCHG) {
        fprintf(stderr,
                "tessera: %s: no metad replica leads at %s: a majority of the "
                "group is down or still electing a leader\n",
                what, a->meta);
        return ADM_EXIT_UNREACHABLE;
    }
    if (is_unreachable(rc)) {
        fprintf(stderr, "tessera: %s: lost the metadata server at %s: %s\n",
                what, a->meta, strerror(-rc));
        return ADM_EXIT_UNREACHABLE;
    }
    if (rc == -EPERM && a->auth)
        fprintf(stderr, "tessera: %s: not permitted for identity %s\n", what,
                cl_auth_name(a->auth));
    else
        fprintf(stderr, "tessera: %s: %s\n", what, strerror(-rc));
    return ADM_EXIT_FAIL;
}

int adm_fail_path(struct adm *a, const char *what, const char *path, int rc)
{
    const char *why;

    if (is_unreachable(rc) || rc == -EREMCHG)
        return adm_fail(a, what, rc);
    switch (rc) {
    case -ENOENT:
        why = "no such file or folder";
        break;
    case -ENOTDIR:
        why = "a folder named in the path is a file";
        break;
    case -EEXIST:
        why = "already exists";
        break;
    case -EISDIR:
        why = "is a folder, not an image";
        break;
    default:
        why = strerror(-rc);
    }
    fprintf(stderr, "tessera: %s: %s: %s\n", what, path, why);
    return ADM_EXIT_FAIL;
}

int adm_path_arg(const char *what, const char *path, char *out, size_t size)
{
    char cwd[4096], ns[4096];
    uint64_t ino;
    int n;

    if (!path[0]) {
        fprintf(stderr, "tessera: %s: the path is empty\n", what);
        return -EINVAL;
    }
    if (path[0] == '/') {
        n = snprintf(out, size, "%s", path);
    } else if (getcwd(cwd, sizeof(cwd)) &&
               adm_path_local(cwd, ns, sizeof(ns), &ino) == 1) {
        /* Relative to a folder of a Tessera mount: the namespace path. */
        n = snprintf(out, size, "%s%s%s", ns, strcmp(ns, "/") ? "/" : "", path);
    } else {
        fprintf(stderr,
                "tessera: %s: '%s' is a relative path outside a Tessera "
                "mount:\n  give the path in the Tessera namespace, which "
                "starts with / (/%s),\n  or a path in a Tessera mount\n",
                what, path, path);
        return -EINVAL;
    }
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "tessera: %s: the path is too long\n", what);
        return -ENAMETOOLONG;
    }
    return 0;
}
