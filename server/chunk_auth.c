/* chunk_auth.c: the storage server's side of authentication
 * (docs/security.md, docs/protocol.md §3.2, §3.6).
 *
 * A chunk server serves only identities metad vouches for: a peer that
 * dials it authenticates with a ticket (method TICKET), which the server
 * opens with a service key it got from metad over its own authenticated
 * link (AUTH_SERVICE, sealed with the server's key), checks for expiry and
 * name, and whose session key the proofs are made with.  The ticket's
 * capabilities become the connection's rights (peer_set_rights()), which
 * chunk_auth_allowed() applies to every request: read-only identities do
 * not write, and only storage servers and admins run the management
 * requests.  Requests on connections this server dialled (the metad link,
 * downstream replicas) are trusted: it authenticated those peers itself.
 *
 * Forwarding to another storage server (chunk_chain.c) authenticates with
 * a ticket this server seals itself for its own identity: it holds the
 * service key, so it is trusted as far as metad is for data.
 *
 * Failure modes: a ticket sealed with an unknown service key (metad
 * rotated twice since, or the server has not fetched the keys yet), an
 * expired one, a name that does not match, or a wrong proof: the peer is
 * refused with EAUTH (peer.c logs it) and the server goes on serving the
 * others.  With --no-auth nothing is asked and everything is allowed.
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth_caps.h"
#include "log.h"

/* Tickets a server seals for its own forwarding live this long. */
#define SELF_TICKET_MS (10 * 60 * 1000)
/* Clock skew between metad and this server that a ticket tolerates. */
#define SKEW_MS (60 * 1000)

int chunk_auth_init(struct chunk_server *srv, const char *key_path,
                    bool no_auth)
{
    struct chunk_auth *a = &srv->auth;
    int rc;

    memset(a, 0, sizeof(*a));
    a->no_auth = no_auth;
    if (no_auth) {
        log_warn("chunkd: authentication is off (--no-auth): every peer that "
                 "reaches %s may read and write every chunk",
                 srv->listen_addr);
        return 0;
    }
    if (!key_path) {
        log_error("chunkd: no key: --key FILE or $TESSERA_KEY (or --no-auth "
                  "for a cluster without authentication)");
        return -ENOKEY;
    }
    rc = auth_key_load(key_path, &a->key);
    if (rc < 0)
        log_error("chunkd: key file %s: %s", key_path, auth_key_why(rc));
    return rc;
}

/* ---- Service keys from metad ------------------------------------------- */

static void on_service_rep(struct peer *p, int status, const uint8_t *payload,
                           size_t len, void *arg)
{
    struct chunk_server *srv = arg;
    struct chunk_auth *a = &srv->auth;
    struct proto_auth_service_rep rep;
    struct chunk_service_key keys[PROTO_AUTH_SERVICE_MAX];
    uint32_t n = 0;

    (void)p;
    if (status < 0) {
        log_warn("chunkd: service keys: metad refused: %s (is the key's "
                 "identity a storage server, caps \"chunkd\"?)",
                 strerror(-status));
        return;
    }
    if (proto_auth_service_rep_decode(payload, len, &rep) < 0) {
        log_warn("chunkd: service keys: bad reply");
        return;
    }
    for (uint32_t i = 0; i < rep.count; i++) {
        int k = auth_open(a->key.secret, AUTH_LABEL_SERVICE_KEY,
                          (const uint8_t *)rep.keys[i].sealed.p,
                          rep.keys[i].sealed.len, keys[n].secret,
                          sizeof(keys[n].secret));
        if (k != AUTH_KEY_SIZE)
            continue;
        keys[n++].id = rep.keys[i].id;
    }
    if (n == 0) {
        log_warn("chunkd: service keys: none could be opened with the key");
        return;
    }
    memcpy(a->service, keys, sizeof(keys));
    a->nservice = n;
    memset(keys, 0, sizeof(keys));
    log_info("chunkd: service keys: %u, newest id %u", n, a->service[0].id);
}

void chunk_auth_service_fetch(struct chunk_server *srv, struct peer *link)
{
    int rc;

    if (srv->auth.no_auth)
        return;
    rc = peer_request(link, PROTO_MSG_AUTH_SERVICE_REQ, NULL, 0, 30000,
                      on_service_rep, srv);
    if (rc < 0)
        log_warn("chunkd: service keys: cannot ask metad: %s", strerror(-rc));
}

int chunk_auth_link_cred(struct chunk_server *srv, struct peer *link)
{
    struct auth_cred cred = {.method = PROTO_AUTH_KEY};
    int rc;

    if (srv->auth.no_auth)
        return 0;
    memcpy(cred.name, srv->auth.key.name, sizeof(cred.name));
    memcpy(cred.key, srv->auth.key.secret, AUTH_KEY_SIZE);
    cred.secure = srv->auth.secure;
    rc = peer_set_cred(link, &cred);
    memset(&cred, 0, sizeof(cred));
    return rc;
}

/* ---- Tickets ---------------------------------------------------------- */

static const struct chunk_service_key *service_key(const struct chunk_auth *a,
                                                   uint32_t id)
{
    for (uint32_t i = 0; i < a->nservice; i++)
        if (a->service[i].id == id)
            return &a->service[i];
    return NULL;
}

int chunk_auth_key(struct peer *p, const struct proto_auth_req *req,
                   uint8_t key[32])
{
    struct chunk_server *srv = chunk_server_of(p);
    const struct chunk_service_key *sk;
    struct auth_caps caps;
    struct auth_ticket t;
    uint32_t id;
    int rc = -EKEYREJECTED;

    if (req->method != PROTO_AUTH_TICKET ||
        auth_ticket_key_id((const uint8_t *)req->ticket.p, req->ticket.len,
                           &id) < 0 ||
        !(sk = service_key(&srv->auth, id)))
        return -EKEYREJECTED;
    if (auth_ticket_open(sk->secret, (const uint8_t *)req->ticket.p,
                         req->ticket.len, &t) < 0)
        return -EKEYREJECTED;
    /* The name proven must be the one metad vouched for, the ticket still
     * good, and its rights readable. */
    if (strlen(t.name) == req->name.len &&
        memcmp(t.name, req->name.p, req->name.len) == 0 &&
        t.expires_ms + SKEW_MS > auth_now_ms() &&
        auth_caps_parse(t.caps, &caps, NULL) == 0) {
        memcpy(key, t.session_key, AUTH_KEY_SIZE);
        peer_set_rights(p, caps.flags);
        rc = 0;
    }
    memset(&t, 0, sizeof(t));
    return rc;
}

int chunk_auth_cred(struct chunk_server *srv, struct auth_cred *out)
{
    const struct chunk_auth *a = &srv->auth;
    struct auth_ticket t = {.caps = "chunkd"};
    int rc, n;

    memset(out, 0, sizeof(*out));
    if (a->nservice == 0)
        return -EKEYREJECTED; /* no service key from metad yet */
    snprintf(t.name, sizeof(t.name), "%s", a->key.name);
    t.expires_ms = auth_now_ms() + SELF_TICKET_MS;
    rc = auth_random_key(t.session_key);
    n = rc < 0 ? rc
               : auth_ticket_seal(a->service[0].id, a->service[0].secret, &t,
                                  out->ticket, sizeof(out->ticket));
    if (n >= 0) {
        out->method = PROTO_AUTH_TICKET;
        out->ticket_len = (uint32_t)n;
        memcpy(out->name, t.name, sizeof(out->name));
        memcpy(out->key, t.session_key, AUTH_KEY_SIZE);
        out->secure = a->secure;
    }
    memset(&t, 0, sizeof(t));
    return n < 0 ? n : 0;
}

/* ---- Rights ------------------------------------------------------------- */

int chunk_auth_allowed(const struct chunk_server *srv, struct peer *p,
                       uint16_t opcode)
{
    uint32_t r = peer_rights(p);

    if (srv->auth.no_auth || r == PEER_RIGHTS_ALL)
        return 0;
    switch (opcode) {
    case PROTO_MSG_PING_REQ:
    case PROTO_MSG_CHUNK_READ_REQ:
    case PROTO_MSG_CHUNK_SYNC_REQ:
        return 0;
    case PROTO_MSG_CHUNK_WRITE_REQ:
    case PROTO_MSG_CHUNK_TRUNCATE_REQ:
        return (r & AUTH_CAP_RO) && !(r & (AUTH_CAP_ADMIN | AUTH_CAP_CHUNKD))
                   ? -EROFS
                   : 0;
    default:
        return (r & (AUTH_CAP_ADMIN | AUTH_CAP_CHUNKD)) ? 0 : -EPERM;
    }
}
