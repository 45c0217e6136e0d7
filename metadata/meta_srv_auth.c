/* meta_srv_auth.c: authentication and capabilities on metad's side
 * (docs/security.md, docs/protocol.md §3.2, §3.5, §3.6, §10.2).
 *
 * Happy path: a peer says HELLO, peer.c challenges it, meta_srv_auth_key()
 * hands peer.c the identity's secret from the database and remembers the
 * identity and its capabilities on the connection.  Who may call what is
 * the callers column of meta_ops.def, checked by meta_server.c against
 * meta_srv_auth_callers() (admins, storage servers, anyone); every request
 * also passes meta_srv_auth_gate() before dispatch, which keeps a confined
 * identity inside its paths, refuses writes to a read-only one and
 * squashes uid 0.
 * AUTH_TICKET hands out tickets for the chunk servers, AUTH_SERVICE the
 * service keys to the chunk servers, and the AUTH_ADD/RM/CAPS/LIST family
 * manages identities through operation records, proposed with
 * meta_srv_apply() and answered from the proposal's callback.
 *
 * Bootstrap: on the first start with an empty identity table metad
 * creates "admin" (caps "admin") and "chunkd" (caps "chunkd") and writes
 * their key files, mode 0600, into its data directory.  Each start adds a
 * fresh service key (the previous one keeps opening tickets issued before).
 * Both are records too; a failure to apply one is logged (and leaves the
 * key file unwritten), it does not stop metad.
 *
 * Failure modes: an unknown identity or a wrong proof is refused by
 * peer.c with EAUTH; a request beyond the identity's rights is answered
 * EPERM (who may call), EACCES (outside its paths) or EROFS (read-only),
 * and the connection stays open.  With --no-auth (explicit) nothing is
 * checked and every connection has every right, as before authentication
 * existed.
 */
#include "meta_srv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "meta_op.h"

/* ---- Bootstrap ------------------------------------------------------------
 */

static int count_one(const char *name, const char *caps, void *arg)
{
    (void)name;
    (void)caps;
    ++*(int *)arg;
    return 1;
}

/* A new identity proposed as a META_OP_AUTH_ADD record: for a peer's
 * AUTH_ADD (@peer referenced, answered once the record is applied), or
 * for the bootstrap (@peer NULL: the key goes to a file). */
struct identity_job {
    struct meta_propose req; /* req.data is this job */
    struct meta_srv *srv;
    struct peer *peer;
    uint64_t req_id;
    char name[PROTO_AUTH_NAME_MAX + 1];
    char caps[PROTO_AUTH_CAPS_MAX + 1];
    struct auth_key key;
};

static int key_export(struct meta_srv_conn *c, const uint8_t *secret,
                      struct proto_wbuf *w);

static void bootstrap_key_save(struct identity_job *j, int status)
{
    char path[4200];
    int rc = status;

    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/%s.key", j->srv->data_dir, j->name);
        rc = auth_key_save(path, &j->key);
        if (rc < 0)
            log_error("metad: cannot write key file %s: %s", path,
                      strerror(-rc));
        else
            log_info("metad: created identity %s (caps \"%s\"): key in %s",
                     j->name, j->caps, path);
    } else {
        log_error("metad: cannot create identity %s: %s", j->name,
                  strerror(-rc));
    }
}

static void on_identity_added(struct meta_propose *req, int status,
                              const struct proto_wbuf *result)
{
    struct identity_job *j = req->data;
    struct meta_srv_conn *c;
    struct proto_wbuf w;

    (void)result;
    if (!j->peer) {
        bootstrap_key_save(j, status);
    } else if ((c = peer_data(j->peer)) && !peer_is_closed(j->peer)) {
        proto_wbuf_init(&w);
        if (status == 0) {
            log_info("metad: identity added: %s caps=\"%s\" by=%s", j->name,
                     j->caps, c->identity);
            status = key_export(c, j->key.secret, &w);
        }
        meta_srv_reply(j->peer, j->req_id, PROTO_MSG_AUTH_ADD_REQ, status, &w);
        proto_wbuf_free(&w);
    }
    if (j->peer)
        peer_unref(j->peer);
    memset(&j->key, 0, sizeof(j->key));
    free(j);
}

/* Propose identity @name with @caps and a fresh secret; the outcome goes
 * where the job says (on_identity_added()).  -errno: nothing proposed. */
static int identity_propose(struct meta_srv *srv, struct peer *peer,
                            uint64_t req_id, const char *name, const char *caps)
{
    struct identity_job *j = calloc(1, sizeof(*j));
    struct meta_op_auth_add m;
    struct proto_wbuf rec;
    int rc;

    if (!j)
        return -ENOMEM;
    j->req.data = j;
    j->srv = srv;
    j->req_id = req_id;
    snprintf(j->name, sizeof(j->name), "%s", name);
    snprintf(j->caps, sizeof(j->caps), "%s", caps);
    rc = auth_key_generate(name, &j->key);
    proto_wbuf_init(&rec);
    if (rc == 0) {
        m.name = (struct proto_str){j->name, (uint32_t)strlen(j->name)};
        m.caps = (struct proto_str){j->caps, (uint32_t)strlen(j->caps)};
        memcpy(m.secret, j->key.secret, sizeof(m.secret));
        meta_op_auth_add_encode(&rec, &m);
        memset(m.secret, 0, sizeof(m.secret));
        rc = rec.err;
    }
    if (rc == 0) {
        j->peer = peer;
        if (peer)
            peer_ref(peer);
        rc = meta_srv_apply(srv, &j->req, META_OP_AUTH_ADD, 0, rec.p, rec.len,
                            on_identity_added);
        if (rc < 0 && peer)
            peer_unref(peer);
    }
    if (rec.p)
        memset(rec.p, 0, rec.len);
    proto_wbuf_free(&rec);
    if (rc < 0) {
        memset(&j->key, 0, sizeof(j->key));
        free(j);
    }
    return rc;
}

static void on_service_key_added(struct meta_propose *req, int status,
                                 const struct proto_wbuf *result)
{
    (void)result;
    if (status < 0)
        log_error("metad: cannot add a service key: %s", strerror(-status));
    free(req);
}

static int service_key_add(struct meta_srv *srv)
{
    struct meta_service_key newest;
    struct meta_op_service_key m;
    struct meta_propose *req;
    struct proto_wbuf rec;
    int n = meta_service_keys(srv->db, &newest, 1);
    int rc;

    if (n < 0)
        return n;
    m.id = n ? newest.id + 1 : 1;
    memset(&newest, 0, sizeof(newest));
    if (auth_random_key(m.secret) < 0)
        return -EIO;
    req = calloc(1, sizeof(*req));
    proto_wbuf_init(&rec);
    meta_op_service_key_encode(&rec, &m);
    memset(m.secret, 0, sizeof(m.secret));
    rc = !req ? -ENOMEM : rec.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, req, META_OP_SERVICE_KEY, 0, rec.p, rec.len,
                            on_service_key_added);
    if (rec.p)
        memset(rec.p, 0, rec.len);
    proto_wbuf_free(&rec);
    if (rc < 0)
        free(req);
    return rc;
}

int meta_srv_auth_init(struct meta_srv *srv)
{
    int n = 0, rc;

    if (srv->no_auth) {
        log_warn("metad: authentication is off (--no-auth): every peer that "
                 "reaches %s has every right",
                 srv->listen);
        return 0;
    }
    rc = meta_auth_foreach(srv->db, count_one, &n);
    if (rc == 0 && n == 0)
        rc = identity_propose(srv, NULL, 0, "admin", "admin");
    if (rc == 0 && n == 0)
        rc = identity_propose(srv, NULL, 0, "chunkd", "chunkd");
    if (rc == 0)
        rc = service_key_add(srv);
    return rc;
}

/* ---- The handshake --------------------------------------------------------
 */

int meta_srv_auth_key(struct peer *p, const struct proto_auth_req *req,
                      uint8_t key[32])
{
    struct meta_srv_conn *c = peer_data(p);
    struct meta_identity id;
    const char *why = NULL;

    if (!c || req->method != PROTO_AUTH_KEY)
        return -EKEYREJECTED;
    if (meta_auth_get(c->srv->db, req->name.p, req->name.len, &id) < 0)
        return -EKEYREJECTED;
    if (auth_caps_parse(id.caps, &c->caps, &why) < 0) {
        log_error("metad: identity %s has bad capabilities: %s", id.name, why);
        return -EKEYREJECTED;
    }
    memcpy(key, id.secret, AUTH_KEY_SIZE);
    snprintf(c->identity, sizeof(c->identity), "%s", id.name);
    memset(&id, 0, sizeof(id));
    return 0;
}

void meta_srv_auth_conn_init(struct meta_srv_conn *c)
{
    /* --no-auth: every connection may do anything (docs/security.md). */
    if (c->srv->no_auth)
        auth_caps_all(&c->caps);
}

/* ---- Who may call what ----------------------------------------------------
 */

/* What a namespace request touches: an inode, or a name in a directory,
 * and how far inside the identity's paths it must be. */
struct target {
    uint64_t ino;
    const struct proto_str *name; /* NULL: the inode itself */
    enum auth_reach need;
};

struct ns_req {
    bool write;  /* changes something (refused to read-only) */
    bool admin;  /* admin only (IMAGE_LEASE ARM) */
    bool squash; /* begins with a cred (§6.4) */
    unsigned ntargets;
    struct target t[2];
};

static void target(struct ns_req *r, uint64_t ino, const struct proto_str *name,
                   enum auth_reach need)
{
    r->t[r->ntargets++] = (struct target){ino, name, need};
}

/* Decode request @opcode (into @m, a buffer as large as its body) and say
 * what it touches.  1 for a namespace request, 0 for another, -EPROTO. */
static int ns_classify(uint16_t opcode, const uint8_t *p, size_t n, void *m,
                       struct ns_req *r)
{
    const enum auth_reach IN = AUTH_REACH_INSIDE, UP = AUTH_REACH_ABOVE;
    memset(r, 0, sizeof(*r));
    switch (opcode) {
    case PROTO_MSG_LOOKUP_REQ:
    case PROTO_MSG_SETATTR_REQ:
    case PROTO_MSG_MKNOD_REQ:
    case PROTO_MSG_MKDIR_REQ:
    case PROTO_MSG_SYMLINK_REQ:
    case PROTO_MSG_LINK_REQ:
    case PROTO_MSG_UNLINK_REQ:
    case PROTO_MSG_RMDIR_REQ:
    case PROTO_MSG_RENAME_REQ:
    case PROTO_MSG_READDIR_REQ:
    case PROTO_MSG_SETXATTR_REQ:
    case PROTO_MSG_GETXATTR_REQ:
    case PROTO_MSG_REMOVEXATTR_REQ:
    case PROTO_MSG_ACCESS_REQ:
    case PROTO_MSG_OPEN_REQ:
    case PROTO_MSG_GOAL_SET_REQ:
    case PROTO_MSG_SNAPSHOT_REQ:
    case PROTO_MSG_CLONE_REQ:
        r->squash = true;
        break;
    case PROTO_MSG_GETATTR_REQ:
    case PROTO_MSG_READLINK_REQ:
    case PROTO_MSG_LISTXATTR_REQ:
    case PROTO_MSG_IMAGE_INFO_REQ:
    case PROTO_MSG_IMAGE_LIST_REQ:
    case PROTO_MSG_CHUNK_LOCATE_REQ:
    case PROTO_MSG_CHUNK_WRITE_BEGIN_REQ:
    case PROTO_MSG_CHUNK_WRITE_END_REQ:
    case PROTO_MSG_IMAGE_LEASE_REQ:
        break;
    default:
        return 0;
    }
    if (proto_msg_decode(opcode, p, n, m) < 0)
        return -EPROTO;
    switch (opcode) {
    case PROTO_MSG_LOOKUP_REQ: {
        const struct proto_lookup_req *q = m;
        target(r, q->parent, &q->name, UP);
        break;
    }
    case PROTO_MSG_UNLINK_REQ:
    case PROTO_MSG_RMDIR_REQ: {
        const struct proto_lookup_req *q = m;
        r->write = true;
        target(r, q->parent, &q->name, IN);
        break;
    }
    case PROTO_MSG_MKNOD_REQ: {
        const struct proto_mknod_req *q = m;
        r->write = true;
        target(r, q->parent, &q->name, IN);
        break;
    }
    case PROTO_MSG_MKDIR_REQ: {
        const struct proto_mkdir_req *q = m;
        r->write = true;
        target(r, q->parent, &q->name, IN);
        break;
    }
    case PROTO_MSG_SYMLINK_REQ: {
        const struct proto_symlink_req *q = m;
        r->write = true;
        target(r, q->parent, &q->name, IN);
        break;
    }
    case PROTO_MSG_LINK_REQ: {
        const struct proto_link_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        target(r, q->newparent, &q->newname, IN);
        break;
    }
    case PROTO_MSG_RENAME_REQ: {
        const struct proto_rename_req *q = m;
        r->write = true;
        target(r, q->parent, &q->name, IN);
        target(r, q->newparent, &q->newname, IN);
        break;
    }
    case PROTO_MSG_SETATTR_REQ: {
        const struct proto_setattr_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_READDIR_REQ: {
        const struct proto_readdir_req *q = m;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_SETXATTR_REQ: {
        const struct proto_setxattr_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_GETXATTR_REQ:
    case PROTO_MSG_REMOVEXATTR_REQ: {
        const struct proto_xattr_name_req *q = m;
        r->write = opcode == PROTO_MSG_REMOVEXATTR_REQ;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_ACCESS_REQ: {
        const struct proto_access_req *q = m;
        r->write = (q->mask & 2) != 0; /* W_OK */
        target(r, q->ino, NULL, UP);
        break;
    }
    case PROTO_MSG_OPEN_REQ: {
        const struct proto_access_req *q = m;
        r->write = (q->mask & (O_ACCMODE | O_TRUNC)) != O_RDONLY;
        target(r, q->ino, NULL, UP);
        break;
    }
    case PROTO_MSG_GOAL_SET_REQ: {
        const struct proto_goal_set_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_SNAPSHOT_REQ:
    case PROTO_MSG_CLONE_REQ: {
        const struct proto_snapshot_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        target(r, q->parent, &q->name, IN);
        break;
    }
    case PROTO_MSG_GETATTR_REQ: {
        const struct proto_ino_req *q = m;
        target(r, q->ino, NULL, UP);
        break;
    }
    case PROTO_MSG_READLINK_REQ:
    case PROTO_MSG_LISTXATTR_REQ:
    case PROTO_MSG_IMAGE_INFO_REQ:
    case PROTO_MSG_IMAGE_LIST_REQ: {
        const struct proto_ino_req *q = m;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_CHUNK_LOCATE_REQ: {
        const struct proto_chunk_locate_req *q = m;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_CHUNK_WRITE_BEGIN_REQ: {
        const struct proto_chunk_write_begin_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_CHUNK_WRITE_END_REQ: {
        const struct proto_chunk_write_end_req *q = m;
        r->write = true;
        target(r, q->ino, NULL, IN);
        break;
    }
    case PROTO_MSG_IMAGE_LEASE_REQ: {
        const struct proto_image_lease_req *q = m;
        r->write = q->op == PROTO_LEASE_ACQUIRE || q->op == PROTO_LEASE_TAKE;
        r->admin = q->op == PROTO_LEASE_ARM;
        target(r, q->ino, NULL, IN);
        break;
    }
    }
    return 1;
}

/* docs/security.md, "Root squash": uid 0 and gid 0 of the leading cred
 * become the squash ids.  Rewrites into @scratch when anything changes. */
static int squash(const struct auth_caps *caps, const uint8_t **p, size_t *n,
                  struct proto_wbuf *scratch)
{
    struct proto_cred cred;
    struct proto_rbuf r;
    bool changed = false;

    proto_rbuf_init(&r, *p, *n);
    if (proto_cred_get(&r, &cred) < 0)
        return -EPROTO;
    if (cred.uid == 0) {
        cred.uid = caps->squash_uid;
        changed = true;
    }
    if (cred.gid == 0) {
        cred.gid = caps->squash_gid;
        changed = true;
    }
    for (uint32_t i = 0; i < cred.ngroups; i++) {
        if (cred.groups[i] == 0) {
            cred.groups[i] = caps->squash_gid;
            changed = true;
        }
    }
    if (!changed)
        return 0;
    proto_cred_put(scratch, &cred);
    proto_put_raw(scratch, *p + r.off, *n - r.off);
    if (scratch->err)
        return scratch->err;
    *p = scratch->p;
    *n = scratch->len;
    return 0;
}

static int ns_gate(struct meta_srv_conn *c, uint16_t opcode, const uint8_t **p,
                   size_t *n, struct proto_wbuf *scratch)
{
    const struct auth_caps *caps = &c->caps;
    size_t size = proto_msg_body_size(opcode);
    struct ns_req r;
    void *m;
    int rc;

    if (caps->flags & AUTH_CAP_ADMIN)
        return 0;
    /* Nothing to check for an unrestricted identity but admin-only lease
     * operations: keep the common request free of a decode. */
    if (!caps->npaths && !(caps->flags & (AUTH_CAP_RO | AUTH_CAP_SQUASH)) &&
        opcode != PROTO_MSG_IMAGE_LEASE_REQ)
        return 0;
    if (!size)
        return 0;
    m = malloc(size);
    if (!m)
        return -ENOMEM;
    rc = ns_classify(opcode, *p, *n, m, &r);
    for (unsigned i = 0; rc > 0 && caps->npaths && i < r.ntargets; i++) {
        enum auth_reach got;
        rc = meta_auth_reach(c->srv->db, caps, c->session_id, r.t[i].ino,
                             r.t[i].name, &got);
        if (rc == 0)
            rc = got >= r.t[i].need ? 1 : -EACCES;
    }
    free(m);
    if (rc <= 0)
        return rc == -EPROTO ? 0 : rc; /* the handler answers a bad payload */
    if (r.admin)
        return -EPERM;
    if (r.write && (caps->flags & AUTH_CAP_RO))
        return -EROFS;
    if (r.squash && (caps->flags & AUTH_CAP_SQUASH))
        return squash(caps, p, n, scratch);
    return 0;
}

unsigned meta_srv_auth_callers(const struct meta_srv_conn *c)
{
    unsigned callers = META_CALLER_CLIENT;

    if (c->caps.flags & AUTH_CAP_ADMIN)
        callers |= META_CALLER_ADMIN;
    if (c->caps.flags & AUTH_CAP_CHUNKD)
        callers |= META_CALLER_CHUNKD;
    return callers;
}

int meta_srv_auth_gate(struct meta_srv_conn *c, uint16_t opcode,
                       const uint8_t **payload, size_t *len,
                       struct proto_wbuf *scratch)
{
    int rc;

    if (c->srv->no_auth)
        return 0;
    rc = ns_gate(c, opcode, payload, len, scratch);
    if (rc < 0)
        log_debug("meta.auth", "refused: %s: %s identity=%s peer=%s",
                  proto_msg_name(opcode) ? proto_msg_name(opcode) : "?",
                  strerror(-rc), c->identity, peer_name(c->peer));
    return rc;
}

/* ---- Tickets and service keys (§3.5, §3.6) ------------------------------- */

static int ticket_issue(struct meta_srv_conn *c, struct proto_wbuf *w)
{
    uint8_t blob[PROTO_AUTH_TICKET_MAX], sealed[PROTO_AUTH_SEALED_MAX];
    struct meta_service_key sk;
    struct meta_identity id;
    struct auth_ticket t;
    int rc, blen, slen;

    if (!c->identity[0])
        return -EOPNOTSUPP; /* --no-auth: there is nothing to vouch for */
    rc = meta_auth_get(c->srv->db, c->identity, strlen(c->identity), &id);
    if (rc < 0)
        return rc == -ENOENT ? -EKEYREJECTED : rc; /* removed meanwhile */
    rc = meta_service_keys(c->srv->db, &sk, 1);
    if (rc <= 0) {
        memset(&id, 0, sizeof(id));
        return rc < 0 ? rc : -EIO;
    }
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "%s", id.name);
    auth_caps_format(&c->caps, t.caps, sizeof(t.caps));
    t.expires_ms = auth_now_ms() + c->srv->ticket_ms;
    rc = auth_random_key(t.session_key);
    blen = rc < 0 ? rc
                  : auth_ticket_seal(sk.id, sk.secret, &t, blob, sizeof(blob));
    slen = blen < 0
               ? blen
               : auth_seal(id.secret, AUTH_LABEL_SESSION_KEY, t.session_key,
                           AUTH_KEY_SIZE, sealed, sizeof(sealed));
    memset(&id, 0, sizeof(id));
    memset(&sk, 0, sizeof(sk));
    memset(&t.session_key, 0, sizeof(t.session_key));
    if (slen < 0)
        return slen;
    struct proto_auth_ticket_rep rep = {
        .expires_ms = t.expires_ms,
        .ticket = {(const char *)blob, (uint32_t)blen},
        .sealed_key = {(const char *)sealed, (uint32_t)slen},
    };
    proto_auth_ticket_rep_encode(w, &rep);
    return w->err;
}

static int service_keys_send(struct meta_srv_conn *c, struct proto_wbuf *w)
{
    uint8_t sealed[META_SERVICE_KEYS][PROTO_AUTH_SEALED_MAX];
    struct meta_service_key keys[META_SERVICE_KEYS];
    struct proto_auth_service_rep rep = {0};
    struct meta_identity id;
    int n, rc;

    rc = meta_auth_get(c->srv->db, c->identity, strlen(c->identity), &id);
    if (rc < 0)
        return rc == -ENOENT ? -EKEYREJECTED : rc;
    n = meta_service_keys(c->srv->db, keys, META_SERVICE_KEYS);
    rc = n > 0 ? 0 : n < 0 ? n : -EIO;
    for (int i = 0; rc == 0 && i < n; i++) {
        int len = auth_seal(id.secret, AUTH_LABEL_SERVICE_KEY, keys[i].secret,
                            AUTH_KEY_SIZE, sealed[i], sizeof(sealed[i]));
        if (len < 0) {
            rc = len;
            break;
        }
        rep.keys[i].id = keys[i].id;
        rep.keys[i].sealed =
            (struct proto_str){(const char *)sealed[i], (uint32_t)len};
        rep.count++;
    }
    memset(&id, 0, sizeof(id));
    memset(keys, 0, sizeof(keys));
    if (rc == 0) {
        proto_auth_service_rep_encode(w, &rep);
        rc = w->err;
    }
    return rc;
}

/* ---- Identity admin (§10.2) --------------------------------------------- */

/* Seal @secret for the admin asking, with the admin's own key. */
static int key_export(struct meta_srv_conn *c, const uint8_t *secret,
                      struct proto_wbuf *w)
{
    uint8_t sealed[PROTO_AUTH_SEALED_MAX];
    struct meta_identity me;
    int rc, len;

    rc = meta_auth_get(c->srv->db, c->identity, strlen(c->identity), &me);
    if (rc < 0)
        return rc == -ENOENT ? -EOPNOTSUPP : rc; /* --no-auth: no key */
    len = auth_seal(me.secret, AUTH_LABEL_KEY_EXPORT, secret, AUTH_KEY_SIZE,
                    sealed, sizeof(sealed));
    memset(&me, 0, sizeof(me));
    if (len < 0)
        return len;
    struct proto_bytes_rep rep = {{(const char *)sealed, (uint32_t)len}};
    proto_bytes_rep_encode(w, &rep);
    return w->err;
}

/* Answer @rc and @w, or close for a payload that does not match its
 * layout (§2.5). */
static void answer(struct meta_srv_conn *c, uint64_t req_id, uint16_t opcode,
                   int rc, struct proto_wbuf *w)
{
    if (rc == -EPROTO)
        peer_close(c->peer);
    else
        meta_srv_reply(c->peer, req_id, opcode, rc, w);
}

/* AUTH_ADD: an existing identity's key with PROTO_AUTH_ADD_GET, else a new
 * identity, answered once its record is applied (on_identity_added()). */
void meta_srv_auth_add(struct meta_srv_conn *c, uint64_t req_id,
                       const uint8_t *p, size_t n)
{
    char name[PROTO_AUTH_NAME_MAX + 1], caps[PROTO_AUTH_CAPS_MAX + 1];
    struct proto_auth_set_req q;
    struct meta_identity old;
    struct auth_caps parsed;
    struct proto_wbuf w;
    int rc = proto_auth_set_req_decode(p, n, &q);

    proto_wbuf_init(&w);
    if (rc == 0 && c->srv->no_auth)
        rc = -EOPNOTSUPP;
    if (rc == 0) {
        snprintf(name, sizeof(name), "%.*s", (int)q.name.len, q.name.p);
        snprintf(caps, sizeof(caps), "%.*s", (int)q.caps.len, q.caps.p);
        if (auth_caps_parse(caps, &parsed, NULL) < 0 ||
            auth_caps_format(&parsed, caps, sizeof(caps)) < 0)
            rc = -EINVAL;
    }
    if (rc == 0) {
        rc = meta_auth_get(c->srv->db, name, strlen(name), &old);
        if (rc == 0)
            rc = (q.flags & PROTO_AUTH_ADD_GET) ? key_export(c, old.secret, &w)
                                                : -EEXIST;
        else if (rc == -ENOENT) {
            rc = identity_propose(c->srv, c->peer, req_id, name, caps);
            rc = rc < 0 ? rc : 1;
        }
        memset(&old, 0, sizeof(old));
    }
    if (rc <= 0) /* 1: answered by on_identity_added() */
        answer(c, req_id, PROTO_MSG_AUTH_ADD_REQ, rc, &w);
    proto_wbuf_free(&w);
}

/* Connections of identity @name get @caps now, or close when NULL. */
static void conns_update(struct meta_srv *srv, const char *name,
                         const struct auth_caps *caps)
{
    for (struct meta_srv_conn *c = srv->conns; c; c = c->next) {
        if (strcmp(c->identity, name) != 0)
            continue;
        if (caps)
            c->caps = *caps;
        else
            peer_close(c->peer);
    }
}

/* The identity an AUTH_RM or AUTH_CAPS names, and the new caps. */
static int change_decode(uint16_t opcode, const uint8_t *p, size_t n,
                         char *name, size_t name_size, char *caps,
                         size_t caps_size)
{
    struct proto_str qname;
    int rc;

    caps[0] = '\0';
    if (opcode == PROTO_MSG_AUTH_CAPS_REQ) {
        struct proto_auth_set_req q;
        if ((rc = proto_auth_set_req_decode(p, n, &q)) < 0)
            return rc;
        qname = q.name;
        snprintf(caps, caps_size, "%.*s", (int)q.caps.len, q.caps.p);
    } else {
        struct proto_auth_name_req q;
        if ((rc = proto_auth_name_req_decode(p, n, &q)) < 0)
            return rc;
        qname = q.name;
    }
    snprintf(name, name_size, "%.*s", (int)qname.len, qname.p);
    return 0;
}

static void on_changed(struct meta_propose *req, int status,
                       const struct proto_wbuf *result)
{
    struct meta_srv_call *call = req->data;
    struct meta_srv_conn *c = peer_data(call->peer);
    char name[PROTO_AUTH_NAME_MAX + 1], caps[PROTO_AUTH_CAPS_MAX + 1];
    bool rm = call->opcode == PROTO_MSG_AUTH_RM_REQ;
    struct auth_caps parsed;

    if (c && !peer_is_closed(call->peer))
        meta_srv_reply(call->peer, call->req_id, call->opcode, status, result);
    if (status == 0 &&
        change_decode(call->opcode, call->payload, call->len, name,
                      sizeof(name), caps, sizeof(caps)) == 0) {
        log_info("metad: identity %s: %s%s%s by=%s", name,
                 rm ? "removed" : "caps=\"", caps, rm ? "" : "\"",
                 c ? c->identity : "?");
        /* Rights change at once on metad; chunk servers see them with the
         * next ticket (docs/security.md, "Revocation"). */
        if (rm)
            conns_update(call->srv, name, NULL);
        else if (auth_caps_parse(caps, &parsed, NULL) == 0)
            conns_update(call->srv, name, &parsed);
    }
    meta_srv_call_free(call);
}

/* AUTH_RM and AUTH_CAPS: records as they came off the wire (meta_auth.c),
 * answered by on_changed(). */
static void change(struct meta_srv_conn *c, uint16_t opcode, uint64_t req_id,
                   const uint8_t *p, size_t n)
{
    char name[PROTO_AUTH_NAME_MAX + 1], caps[PROTO_AUTH_CAPS_MAX + 1];
    int rc =
        change_decode(opcode, p, n, name, sizeof(name), caps, sizeof(caps));

    if (rc == 0 && c->srv->no_auth)
        rc = -EOPNOTSUPP;
    if (rc == 0 && opcode == PROTO_MSG_AUTH_RM_REQ &&
        strcmp(name, c->identity) == 0)
        rc = -EBUSY; /* an admin does not lock itself out */
    if (rc < 0)
        answer(c, req_id, opcode, rc, NULL);
    else
        meta_srv_call_propose(c, opcode, c->session_id, req_id, p, n,
                              on_changed);
}

void meta_srv_auth_rm(struct meta_srv_conn *c, uint64_t req_id,
                      const uint8_t *p, size_t n)
{
    change(c, PROTO_MSG_AUTH_RM_REQ, req_id, p, n);
}

void meta_srv_auth_caps(struct meta_srv_conn *c, uint64_t req_id,
                        const uint8_t *p, size_t n)
{
    change(c, PROTO_MSG_AUTH_CAPS_REQ, req_id, p, n);
}

struct list_ctx {
    struct proto_wbuf kv;
    uint32_t count;
};

static int list_one(const char *name, const char *caps, void *arg)
{
    struct list_ctx *l = arg;
    proto_kv_put(&l->kv, name, caps);
    l->count++;
    return 0;
}

/* An identity may list itself; admins and proxies (an export serving
 * several identities, cl_auth_rights()) any. */
static bool may_list(const struct meta_srv_conn *c,
                     const struct proto_str *name)
{
    if (c->srv->no_auth || (c->caps.flags & (AUTH_CAP_ADMIN | AUTH_CAP_PROXY)))
        return true;
    return name->len == strlen(c->identity) &&
           memcmp(name->p, c->identity, name->len) == 0;
}

static int auth_list(struct meta_srv_conn *c, const uint8_t *p, size_t n,
                     struct proto_wbuf *w)
{
    struct proto_auth_name_req q;
    struct meta_identity id;
    struct list_ctx l = {.count = 0};
    int rc = proto_auth_name_req_decode(p, n, &q);

    if (rc < 0)
        return rc;
    if (!may_list(c, &q.name))
        return -EPERM;
    proto_wbuf_init(&l.kv);
    if (q.name.len == 0) {
        rc = meta_auth_foreach(c->srv->db, list_one, &l);
    } else {
        rc = meta_auth_get(c->srv->db, q.name.p, q.name.len, &id);
        if (rc == 0)
            list_one(id.name, id.caps, &l);
        memset(&id, 0, sizeof(id));
    }
    if (rc == 0)
        rc = l.kv.err;
    if (rc == 0) {
        struct proto_status_rep rep = {
            .count = l.count,
            .raw = {(const char *)l.kv.p, (uint32_t)l.kv.len}};
        proto_status_rep_encode(w, &rep);
        rc = w->err;
    }
    proto_wbuf_free(&l.kv);
    return rc;
}

void meta_srv_auth_list(struct meta_srv_conn *c, uint64_t req_id,
                        const uint8_t *p, size_t n)
{
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    answer(c, req_id, PROTO_MSG_AUTH_LIST_REQ, auth_list(c, p, n, &w), &w);
    proto_wbuf_free(&w);
}

void meta_srv_auth_ticket(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *p, size_t n)
{
    struct proto_wbuf w;
    int rc = n ? -EPROTO : c->srv->no_auth ? -EOPNOTSUPP : 0;

    (void)p;
    proto_wbuf_init(&w);
    answer(c, req_id, PROTO_MSG_AUTH_TICKET_REQ, rc ? rc : ticket_issue(c, &w),
           &w);
    proto_wbuf_free(&w);
}

void meta_srv_auth_service(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *p, size_t n)
{
    struct proto_wbuf w;
    int rc = n ? -EPROTO : c->srv->no_auth ? -EOPNOTSUPP : 0;

    (void)p;
    proto_wbuf_init(&w);
    answer(c, req_id, PROTO_MSG_AUTH_SERVICE_REQ,
           rc ? rc : service_keys_send(c, &w), &w);
    proto_wbuf_free(&w);
}
