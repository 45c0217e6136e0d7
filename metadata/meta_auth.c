/* meta_auth.c: identities and service keys in the database
 * (docs/security.md), changed only through operation records so that they
 * replicate with everything else.
 *
 * An identity is a name, a 32-byte secret and its capabilities in the text
 * form of common/auth_caps.h, checked here so that the database never
 * holds rights that do not parse.  Secrets come inside the records
 * (META_OP_AUTH_ADD, META_OP_SERVICE_KEY): the daemon draws them, the
 * record states them, so a replay gives the same keys.
 * meta_auth_reach() places an inode, or a name in a directory, against an
 * identity's paths: by the inode's path through first names, and an
 * unlinked file by whether the session holds it open.  Which request may
 * change what, and sealing keys for the wire, is meta_srv_auth.c's
 * business.
 */
#include "meta_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "auth_caps.h"
#include "meta_op.h"

static int caps_check(const struct proto_str *caps)
{
    char text[PROTO_AUTH_CAPS_MAX + 1];
    struct auth_caps parsed;

    if (caps->len > PROTO_AUTH_CAPS_MAX)
        return -EINVAL;
    memcpy(text, caps->p, caps->len);
    text[caps->len] = '\0';
    return auth_caps_parse(text, &parsed, NULL);
}

static int empty_reply(struct proto_wbuf *reply)
{
    struct proto_empty e = {0};
    proto_empty_encode(reply, &e);
    return reply->err;
}

/* Run @s, which changes one identity's row: -ENOENT when there is none. */
static int change_one(struct meta_db *db, sqlite3_stmt *s, const char *what,
                      struct proto_wbuf *reply)
{
    int rc = meta_st_exec(db, s, what);
    if (rc < 0)
        return rc;
    if (sqlite3_changes(db->sql) == 0)
        return -ENOENT;
    return empty_reply(reply);
}

/* META_OP_AUTH_ADD (meta_op.h): a new identity. */
int meta_auth_add_apply(struct meta_db *db, const struct meta_op *op,
                        struct proto_wbuf *reply)
{
    struct meta_op_auth_add m;
    int rc = meta_op_auth_add_decode(op->payload, op->len, &m);

    if (rc < 0)
        return rc;
    if ((rc = caps_check(&m.caps)) < 0)
        return rc;
    sqlite3_stmt *s = meta_st(db, META_ST_IDENT_GET);
    sqlite3_bind_text(s, 1, m.name.p, (int)m.name.len, SQLITE_STATIC);
    if ((rc = meta_st_row(db, s, "find identity")) != 0)
        return rc < 0 ? rc : -EEXIST;
    s = meta_st(db, META_ST_IDENT_INSERT);
    sqlite3_bind_text(s, 1, m.name.p, (int)m.name.len, SQLITE_STATIC);
    meta_bind_blob(s, 2, m.secret, sizeof(m.secret));
    sqlite3_bind_text(s, 3, m.caps.len ? m.caps.p : "", (int)m.caps.len,
                      SQLITE_STATIC);
    rc = meta_st_exec(db, s, "add identity");
    memset(m.secret, 0, sizeof(m.secret));
    if (rc < 0)
        return rc;
    return empty_reply(reply);
}

/* AUTH_CAPS_REQ: new capabilities for an existing identity. */
int meta_auth_caps_apply(struct meta_db *db, const struct meta_op *op,
                         struct proto_wbuf *reply)
{
    struct proto_auth_set_req q;
    int rc = proto_auth_set_req_decode(op->payload, op->len, &q);

    if (rc < 0)
        return rc;
    if (q.flags)
        return -EINVAL;
    if ((rc = caps_check(&q.caps)) < 0)
        return rc;
    sqlite3_stmt *s = meta_st(db, META_ST_IDENT_CAPS);
    sqlite3_bind_text(s, 1, q.name.p, (int)q.name.len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, q.caps.len ? q.caps.p : "", (int)q.caps.len,
                      SQLITE_STATIC);
    return change_one(db, s, "set capabilities", reply);
}

/* AUTH_RM_REQ: the identity is gone; its tickets die with their expiry. */
int meta_auth_rm_apply(struct meta_db *db, const struct meta_op *op,
                       struct proto_wbuf *reply)
{
    struct proto_auth_name_req q;
    int rc = proto_auth_name_req_decode(op->payload, op->len, &q);

    if (rc < 0)
        return rc;
    if (q.name.len == 0)
        return -EINVAL;
    sqlite3_stmt *s = meta_st(db, META_ST_IDENT_DELETE);
    sqlite3_bind_text(s, 1, q.name.p, (int)q.name.len, SQLITE_STATIC);
    return change_one(db, s, "remove identity", reply);
}

/* META_OP_SERVICE_KEY (meta_op.h): a new key sealing tickets; only the
 * META_SERVICE_KEYS newest stay. */
int meta_service_key_apply(struct meta_db *db, const struct meta_op *op,
                           struct proto_wbuf *reply)
{
    struct meta_service_key newest;
    struct meta_op_service_key m;
    uint32_t id;
    int rc = meta_op_service_key_decode(op->payload, op->len, &m);

    if (rc < 0)
        return rc;
    id = m.id;
    rc = meta_service_keys(db, &newest, 1);
    if (rc < 0)
        return rc;
    if (id == 0 || (rc == 1 && id <= newest.id))
        return -EINVAL;
    sqlite3_stmt *s = meta_st(db, META_ST_SVCKEY_ADD);
    sqlite3_bind_int64(s, 1, id);
    meta_bind_blob(s, 2, m.secret, sizeof(m.secret));
    sqlite3_bind_int64(s, 3, op->now);
    rc = meta_st_exec(db, s, "add service key");
    memset(m.secret, 0, sizeof(m.secret));
    if (rc < 0)
        return rc;
    if (id > META_SERVICE_KEYS) {
        s = meta_st(db, META_ST_SVCKEY_PRUNE);
        sqlite3_bind_int64(s, 1, (int64_t)id - META_SERVICE_KEYS);
        if ((rc = meta_st_exec(db, s, "prune service keys")) < 0)
            return rc;
    }
    return empty_reply(reply);
}

/* ---- Reads ----------------------------------------------------------------
 */

static void copy_text(sqlite3_stmt *s, int col, char *out, size_t size)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);

    if (n >= size)
        n = size - 1;
    if (n && t)
        memcpy(out, t, n);
    out[n] = '\0';
}

int meta_auth_get(struct meta_db *db, const char *name, size_t len,
                  struct meta_identity *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || len > PROTO_AUTH_NAME_MAX)
        return -ENOENT;
    sqlite3_stmt *s = meta_st(db, META_ST_IDENT_GET);
    sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_bytes(s, 0) == 32) {
        memcpy(out->name, name, len);
        memcpy(out->secret, sqlite3_column_blob(s, 0), 32);
        copy_text(s, 1, out->caps, sizeof(out->caps));
        sqlite3_reset(s);
        return 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "find identity");
    return -ENOENT;
}

int meta_auth_foreach(struct meta_db *db,
                      int (*fn)(const char *name, const char *caps, void *arg),
                      void *arg)
{
    char name[PROTO_AUTH_NAME_MAX + 1], caps[PROTO_AUTH_CAPS_MAX + 1];
    sqlite3_stmt *s = meta_st(db, META_ST_IDENT_LIST);
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        copy_text(s, 0, name, sizeof(name));
        copy_text(s, 1, caps, sizeof(caps));
        if (fn(name, caps, arg))
            break;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_sql_err(db, rc, "list identities");
    return 0;
}

int meta_service_keys(struct meta_db *db, struct meta_service_key *out, int max)
{
    sqlite3_stmt *s = meta_st(db, META_ST_SVCKEY_LIST);
    int rc = SQLITE_DONE, n = 0;

    sqlite3_bind_int(s, 1, max);
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(s, 1) != 32)
            continue;
        out[n].id = (uint32_t)sqlite3_column_int64(s, 0);
        memcpy(out[n].secret, sqlite3_column_blob(s, 1), 32);
        n++;
    }
    if (n < max && rc != SQLITE_DONE) {
        sqlite3_reset(s);
        return meta_sql_err(db, rc, "list service keys");
    }
    sqlite3_reset(s);
    return n;
}

/* ---- Paths ----------------------------------------------------------------
 */

int meta_auth_reach(struct meta_db *db, const struct auth_caps *caps,
                    uint64_t session, uint64_t ino,
                    const struct proto_str *name, enum auth_reach *out)
{
    char path[PROTO_MAX_STR + 2 * PROTO_NAME_MAX];
    size_t n;
    int rc;

    if (caps->npaths == 0) {
        *out = AUTH_REACH_INSIDE;
        return 0;
    }
    rc = meta_path_of(db, ino, path, PROTO_MAX_STR + 1);
    if (rc < 0)
        return rc;
    if (strcmp(path, "?") == 0) {
        /* No name: an unlinked file the session may still hold open. */
        rc = session ? meta_hold_has(db, session, ino) : 0;
        *out = rc > 0 ? AUTH_REACH_INSIDE : AUTH_REACH_OUTSIDE;
        return rc < 0 ? rc : 0;
    }
    if (name) {
        /* "." and ".." would climb out of a path by name. */
        if (name->len > PROTO_NAME_MAX || memchr(name->p, '/', name->len) ||
            (name->len == 1 && name->p[0] == '.') ||
            (name->len == 2 && name->p[0] == '.' && name->p[1] == '.')) {
            *out = AUTH_REACH_OUTSIDE;
            return 0;
        }
        n = strlen(path);
        snprintf(path + n, sizeof(path) - n, "%s%.*s", n > 1 ? "/" : "",
                 (int)name->len, name->p);
    }
    *out = auth_caps_reach(caps, path);
    return 0;
}
