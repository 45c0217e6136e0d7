/* vd_handshake.c: the NBD fixed newstyle handshake, server side.
 *
 * Happy path (proto.md "Fixed newstyle negotiation"):
 *
 *   S: "NBDMAGIC" "IHAVEOPT" flags16 (FIXED_NEWSTYLE | NO_ZEROES)
 *   C: flags32 (FIXED_NEWSTYLE, optionally NO_ZEROES)
 *   C: "IHAVEOPT" option32 length32 data...        (repeated)
 *   S: REP_MAGIC option32 reply-type32 length32 data...  (per option)
 *   ... until NBD_OPT_GO succeeds (REP_INFO..., REP_ACK) or
 *   NBD_OPT_EXPORT_NAME (size64 flags16 [124 zero bytes]).
 *
 * With TLS (proto.md "TLS support"), the client's first option is
 * NBD_OPT_STARTTLS; the server answers REP_ACK, the TLS handshake runs on
 * the socket, and option haggling starts over inside the TLS session,
 * forgetting what was negotiated in the clear (structured replies, the
 * meta context), since a man in the middle could have chosen it.  From
 * then on every byte, transmission included, goes through the session.
 *
 *   option phase, per --tls (vd_handshake_gate(), a pure function):
 *
 *            off                 on                  require
 *   CLEAR  --STARTTLS: POLICY   --STARTTLS--> TLS    --STARTTLS--> TLS
 *          other: served        other: served        ABORT: served
 *                                                    EXPORT_NAME: close
 *                                                    other: TLS_REQD
 *   TLS    (never)              STARTTLS: INVALID, other: served
 *
 *   FROM   -> TO    [function]
 *   CLEAR  -> CLEAR [opt_gated: any option but a successful STARTTLS]
 *   CLEAR  -> TLS   [opt_starttls: ACK sent, TLS handshake done]
 *   CLEAR  -> end   [opt_starttls: TLS handshake failed; opt_gated:
 *                    EXPORT_NAME in the clear when TLS is required]
 *   TLS    -> TLS   [opt_gated: every option]
 *   either -> transmission [opt_info_go, opt_export_name]
 *
 * Invariants:
 *   1. Nothing but STARTTLS and ABORT is served in the clear when TLS is
 *      required, so no export is opened for an unauthenticated client.
 *   2. c->tls is set only here, while no other thread uses the
 *      connection, and never replaced (no STARTTLS twice).
 *
 * Options served: EXPORT_NAME, ABORT, LIST, STARTTLS, INFO, GO,
 * STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT
 * (base:allocation, and tessera:changes-since:SNAP when the backend can
 * tell changes).  Every other option gets NBD_REP_ERR_UNSUP and the
 * haggling goes on.  An export name is an image name of the backend;
 * the empty name means the configured default export, if any.  Before an
 * export is opened, the configuration's export_check hook sees the
 * connection's identity (vd_identity: the TLS name) and the name; LIST
 * shows only the exports it lets that identity open.
 *
 * Failure modes:
 * - Malformed option data (lengths that do not add up, NUL in a name, a
 *   name over 4096 bytes) gets NBD_REP_ERR_INVALID; the connection stays.
 * - An unknown or unopenable export gets NBD_REP_ERR_UNKNOWN (or _POLICY
 *   when access is refused or another writer holds the image, with the
 *   backend's sentence naming that writer); the client may try another
 *   name.
 * - Option data over VD_OPT_MAX gets NBD_REP_ERR_TOO_BIG and the
 *   connection is dropped, since skipping it would mean reading whatever
 *   the client claims to send.
 * - Unknown client flags, a client without FIXED_NEWSTYLE, a bad option
 *   magic, or a failed NBD_OPT_EXPORT_NAME (which has no error reply)
 *   drop the connection.
 * - A failed TLS handshake (unknown PSK identity, wrong key, a client
 *   certificate the CA did not sign) drops the connection: after the ACK
 *   there is no going back to the clear.
 * - NBD_OPT_ABORT is acknowledged, then the connection closes.
 */
#include "vd_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define OPT_HDR_SIZE 16 /* IHAVEOPT, option, length */
#define REP_HDR_SIZE 20 /* magic, option, type, length */

/* Result of one option handler (or -errno to drop the connection): go on
 * haggling, or the export is chosen.  An option reply sent returns 0, so
 * handlers can end with `return opt_reply(...)`. */
#define OPT_NEXT 0
#define OPT_DONE 1

static int opt_reply(struct vd_conn *c, uint32_t opt, uint32_t type,
                     const void *data, size_t len)
{
    uint8_t hdr[REP_HDR_SIZE];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};

    vd_put64(hdr, NBD_REP_MAGIC);
    vd_put32(hdr + 8, opt);
    vd_put32(hdr + 12, type);
    vd_put32(hdr + 16, (uint32_t)len);
    return vd_send(c, iov, len ? 2 : 1);
}

/* An error reply; @msg is a human-readable string for the client. */
static int opt_error(struct vd_conn *c, uint32_t opt, uint32_t type,
                     const char *msg)
{
    log_debug("vd.handshake", "option %u refused: %s: peer=%s", opt, msg,
              c->peer);
    return opt_reply(c, opt, type, msg, strlen(msg));
}

/* A string from the wire: at most NBD_MAX_STRING bytes, no NUL. */
static bool string_ok(const uint8_t *s, uint32_t len)
{
    return len <= NBD_MAX_STRING && !memchr(s, 0, len);
}

/* The export @name (len bytes, checked with string_ok) stands for, or the
 * default export for "".  Caller owns *out (free()).  -ENOENT, -ENOMEM. */
static int name_resolve(struct vd_conn *c, const uint8_t *name, uint32_t len,
                        char **out)
{
    if (len == 0) {
        if (!c->cfg->default_export)
            return -ENOENT;
        *out = strdup(c->cfg->default_export);
    } else {
        *out = strndup((const char *)name, len);
    }
    return *out ? 0 : -ENOMEM;
}

static uint32_t open_err_to_rep(int rc)
{
    switch (-rc) {
    case EACCES:
    case EPERM:
    case EBUSY: /* another writer holds the image's lease */
    case EUSERS: /* too many connections or sessions (vd_limits_check) */
        return NBD_REP_ERR_POLICY;
    case ESHUTDOWN:
        return NBD_REP_ERR_SHUTDOWN;
    case EISDIR: /* a name that exists but cannot be an export */
    case EINVAL:
        return NBD_REP_ERR_INVALID;
    default:
        return NBD_REP_ERR_UNKNOWN;
    }
}

uint16_t vd_handshake_tflags(const struct vd_conn *c, bool readonly)
{
    uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_CACHE;

    if (readonly)
        f |= NBD_FLAG_READ_ONLY;
    else
        f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
             NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
    /* Reads are always answered in one chunk, so DF costs nothing. */
    if (c->structured)
        f |= NBD_FLAG_SEND_DF;
    if (c->cfg->be->caps & VD_BACKEND_MULTI_CONN)
        f |= NBD_FLAG_CAN_MULTI_CONN;
    return f;
}

/* Open export @name for the handshake; fills *img and *size.  On failure
 * @why (NBD_MAX_STRING bytes) holds the sentence for the client. */
static int export_open(struct vd_conn *c, const char *name,
                       struct vd_image **img, uint64_t *size, char *why)
{
    const struct vd_backend *be = c->cfg->be;
    bool readonly = c->cfg->readonly;
    int rc = 0;

    why[0] = '\0';
    if (c->cfg->export_check) {
        rc = c->cfg->export_check(c->cfg->export_check_ctx, &c->id, name,
                                  &readonly, why, NBD_MAX_STRING);
        if (rc < 0) {
            if (!why[0])
                snprintf(why, NBD_MAX_STRING, "access to export %s refused",
                         name);
            log_warn("nbd handshake: export %s refused: %s: peer=%s "
                     "tls_user=%s",
                     name, why, c->peer, c->id.tls_user ? c->id.tls_user : "-");
            return rc;
        }
    }
    rc = vd_limits_check(c, why, NBD_MAX_STRING);
    if (rc < 0) {
        log_warn("nbd handshake: export %s refused: %s: peer=%s tls_user=%s",
                 name, why, c->peer, c->id.tls_user ? c->id.tls_user : "-");
        return rc;
    }
    rc = be->ops->open(be->ctx, name, readonly, img, why, NBD_MAX_STRING);
    if (rc < 0) {
        if (!why[0])
            snprintf(why, NBD_MAX_STRING, "cannot open export: %s",
                     strerror(-rc));
        if (rc == -EBUSY)
            log_warn("nbd handshake: export %s refused: %s: peer=%s", name, why,
                     c->peer);
        return rc;
    }
    int64_t sz = be->ops->size(*img);
    if (sz < 0) {
        be->ops->close(*img);
        *img = NULL;
        return (int)sz;
    }
    *size = (uint64_t)sz;
    return 0;
}

static int info_send(struct vd_conn *c, uint32_t opt, uint16_t type,
                     const void *data, size_t len)
{
    uint8_t buf[2 + NBD_MAX_STRING + 64];

    if (len > sizeof(buf) - 2)
        len = sizeof(buf) - 2;
    vd_put16(buf, type);
    memcpy(buf + 2, data, len);
    return opt_reply(c, opt, NBD_REP_INFO, buf, 2 + len);
}

/* The NBD_REP_INFO replies for export @name: EXPORT and BLOCK_SIZE always,
 * NAME and DESCRIPTION when asked for in @reqs (@nreq big-endian 16-bit
 * info types). */
static int info_all(struct vd_conn *c, uint32_t opt, const char *name,
                    uint64_t size, uint16_t tflags, const uint8_t *reqs,
                    uint16_t nreq)
{
    uint8_t buf[12];
    int rc;

    vd_put64(buf, size);
    vd_put16(buf + 8, tflags);
    rc = info_send(c, opt, NBD_INFO_EXPORT, buf, 10);
    for (uint16_t i = 0; rc == 0 && i < nreq; i++) {
        uint16_t type = vd_get16(reqs + 2 * i);
        if (type == NBD_INFO_NAME) {
            rc = info_send(c, opt, NBD_INFO_NAME, name, strlen(name));
        } else if (type == NBD_INFO_DESCRIPTION) {
            char desc[NBD_MAX_STRING];
            int n = snprintf(desc, sizeof(desc), "tessera %s image %s",
                             c->cfg->be->name, name);
            rc =
                info_send(c, opt, NBD_INFO_DESCRIPTION, desc,
                          n < (int)sizeof(desc) ? (size_t)n : sizeof(desc) - 1);
        }
    }
    if (rc == 0) {
        vd_put32(buf, VD_BLOCK_MIN);
        vd_put32(buf + 4, VD_BLOCK_PREFERRED);
        vd_put32(buf + 8, VD_BLOCK_MAX);
        rc = info_send(c, opt, NBD_INFO_BLOCK_SIZE, buf, 12);
    }
    return rc;
}

/* The export is chosen: keep it, and keep the meta context selection only
 * when it was made for this same export (proto.md: contexts are per
 * export). */
static void export_chosen(struct vd_conn *c, struct vd_image *img, char *name,
                          uint64_t size)
{
    c->img = img;
    c->export_name = name;
    c->size = size;
    c->tflags = vd_handshake_tflags(c, img->readonly);
    if (c->meta_export && strcmp(c->meta_export, name) != 0) {
        c->meta_alloc = false;
        free(c->meta_changes);
        c->meta_changes = NULL;
    }
}

/* NBD_OPT_INFO and NBD_OPT_GO:
 *   C: name length32, name, number of info requests16, info types16...
 * proto.md: the server MUST send NBD_INFO_EXPORT, then NBD_REP_ACK. */
static int opt_info_go(struct vd_conn *c, uint32_t opt, const uint8_t *d,
                       uint32_t len)
{
    struct vd_image *img = NULL;
    char *name = NULL;
    uint64_t size;
    uint32_t nlen;
    uint16_t nreq;
    int rc;

    if (len < 6 || (nlen = vd_get32(d)) > len - 6)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed request");
    nreq = vd_get16(d + 4 + nlen);
    if (len != 6 + nlen + 2u * nreq)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed request");
    if (!string_ok(d + 4, nlen))
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed name");
    rc = name_resolve(c, d + 4, nlen, &name);
    if (rc < 0)
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN,
                         "no export name and no default export");
    char why[NBD_MAX_STRING + 1];
    rc = export_open(c, name, &img, &size, why);
    if (rc < 0) {
        free(name);
        return opt_error(c, opt, open_err_to_rep(rc), why);
    }
    uint16_t tflags = vd_handshake_tflags(c, img->readonly);
    rc = info_all(c, opt, name, size, tflags, d + 6 + nlen, nreq);
    if (rc == 0)
        rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
    if (rc < 0 || opt == NBD_OPT_INFO) {
        c->cfg->be->ops->close(img);
        free(name);
        return rc < 0 ? rc : OPT_NEXT;
    }
    export_chosen(c, img, name, size);
    return OPT_DONE;
}

/* NBD_OPT_EXPORT_NAME: C: name (the whole option data).  There is no error
 * reply: a bad name closes the connection. */
static int opt_export_name(struct vd_conn *c, const uint8_t *d, uint32_t len)
{
    static const uint8_t zeroes[124];
    struct vd_image *img = NULL;
    char *name = NULL;
    uint64_t size;
    uint8_t buf[10];
    int rc;

    if (!string_ok(d, len))
        return -EPROTO;
    char why[NBD_MAX_STRING + 1];
    rc = name_resolve(c, d, len, &name);
    if (rc == 0)
        rc = export_open(c, name, &img, &size, why);
    if (rc < 0) {
        log_warn("nbd handshake: export %.*s: %s: peer=%s", (int)len,
                 (const char *)d, strerror(-rc), c->peer);
        free(name);
        return -ENOENT;
    }
    export_chosen(c, img, name, size);
    vd_put64(buf, size);
    vd_put16(buf + 8, c->tflags);
    struct iovec iov[2] = {{buf, sizeof(buf)},
                           {(void *)zeroes, sizeof(zeroes)}};
    rc = vd_send(c, iov, c->no_zeroes ? 1 : 2);
    return rc < 0 ? rc : OPT_DONE;
}

struct list_state {
    struct vd_conn *c;
    int rc;
};

/* One NBD_REP_SERVER for @name, when the connection's identity may open
 * it: a client limited to some images does not learn the others' names. */
static int list_one(void *arg, const char *name)
{
    struct list_state *ls = arg;
    const struct vd_config *cfg = ls->c->cfg;
    uint8_t buf[4 + NBD_MAX_STRING];
    size_t n = strlen(name);
    bool readonly = false;
    char why[NBD_MAX_STRING];

    if (n == 0 || n > NBD_MAX_STRING)
        return 0;
    if (cfg->export_check &&
        cfg->export_check(cfg->export_check_ctx, &ls->c->id, name, &readonly,
                          why, sizeof(why)) < 0)
        return 0;
    vd_put32(buf, (uint32_t)n);
    memcpy(buf + 4, name, n);
    ls->rc = opt_reply(ls->c, NBD_OPT_LIST, NBD_REP_SERVER, buf, 4 + n);
    return ls->rc;
}

/* NBD_OPT_LIST: no data; one NBD_REP_SERVER per export, then ACK. */
static int opt_list(struct vd_conn *c, uint32_t len)
{
    const struct vd_backend *be = c->cfg->be;
    struct list_state ls = {c, 0};
    int rc;

    if (len != 0)
        return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                         "NBD_OPT_LIST takes no data");
    rc = be->ops->list ? be->ops->list(be->ctx, list_one, &ls) : -ENOTSUP;
    if (ls.rc < 0)
        return ls.rc; /* the socket failed */
    if (rc < 0) {
        log_warn("nbd handshake: listing exports: %s: peer=%s", strerror(-rc),
                 c->peer);
        return opt_error(c, NBD_OPT_LIST, NBD_REP_ERR_POLICY,
                         "export listing not available");
    }
    return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* NBD_OPT_STRUCTURED_REPLY: no data. */
static int opt_structured(struct vd_conn *c, uint32_t len)
{
    if (len != 0)
        return opt_error(c, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_INVALID,
                         "NBD_OPT_STRUCTURED_REPLY takes no data");
    c->structured = true;
    return opt_reply(c, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, NULL, 0);
}

/* Check the layout of a meta context request:
 *   C: name length32, name, number of queries32, (query length32, query)...
 * Fills the name and the offset of the first query.  0 or -EINVAL. */
static int meta_parse(const uint8_t *d, uint32_t len, uint32_t *nlen,
                      uint32_t *nq, uint32_t *first)
{
    uint32_t pos, i;

    if (len < 8 || (*nlen = vd_get32(d)) > len - 8)
        return -EINVAL;
    if (!string_ok(d + 4, *nlen))
        return -EINVAL;
    *nq = vd_get32(d + 4 + *nlen);
    pos = *first = 8 + *nlen;
    for (i = 0; i < *nq; i++) {
        if (len - pos < 4)
            return -EINVAL;
        uint32_t qlen = vd_get32(d + pos);
        if (qlen > len - pos - 4 || !string_ok(d + pos + 4, qlen))
            return -EINVAL;
        pos += 4 + qlen;
    }
    return pos == len ? 0 : -EINVAL;
}

static bool query_is(const uint8_t *q, uint32_t qlen, const char *s)
{
    return qlen == strlen(s) && !memcmp(q, s, qlen);
}

static int meta_reply(struct vd_conn *c, uint32_t opt, uint32_t id,
                      const uint8_t *ctx, uint32_t len)
{
    uint8_t buf[4 + NBD_MAX_STRING];

    if (len > NBD_MAX_STRING)
        return -EINVAL; /* meta_parse() let no longer query through */
    vd_put32(buf, id);
    memcpy(buf + 4, ctx, len);
    return opt_reply(c, opt, NBD_REP_META_CONTEXT, buf, 4 + len);
}

/* A query "tessera:changes-since:SNAP" for a SNAP the backend can tell
 * changes against: SNAP, NUL-terminated, in @since. */
static bool query_changes(const struct vd_conn *c, const uint8_t *q,
                          uint32_t qlen, char *since, size_t size)
{
    const struct vd_backend *be = c->cfg->be;
    size_t plen = strlen(VD_META_CHANGES_PREFIX);

    if (!be->ops->changes_check || qlen <= plen || qlen - plen >= size ||
        memcmp(q, VD_META_CHANGES_PREFIX, plen) != 0)
        return false;
    memcpy(since, q + plen, qlen - plen);
    since[qlen - plen] = '\0';
    return strlen(since) == qlen - plen &&
           be->ops->changes_check(be->ctx, since) == 0;
}

/* NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT.  proto.md: SET
 * needs structured replies first; LIST with no queries lists every
 * context; a query "base:" matches every base context; SET selects only
 * contexts named exactly, and replaces any earlier selection. */
static int opt_meta(struct vd_conn *c, uint32_t opt, const uint8_t *d,
                    uint32_t len)
{
    const struct vd_backend *be = c->cfg->be;
    struct vd_image *img = NULL;
    uint32_t nlen, nq, pos;
    uint64_t size;
    char *name = NULL;
    bool found = false;
    int rc;

    if (opt == NBD_OPT_SET_META_CONTEXT && !c->structured)
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "structured replies not negotiated");
    if (meta_parse(d, len, &nlen, &nq, &pos) < 0)
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "malformed request");
    if (name_resolve(c, d + 4, nlen, &name) < 0)
        return opt_error(c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
    char why[NBD_MAX_STRING + 1];
    rc = export_open(c, name, &img, &size, why);
    if (rc < 0) {
        free(name);
        return opt_error(c, opt, open_err_to_rep(rc),
                         rc == -ENOENT ? "no such export" : why);
    }
    be->ops->close(img);
    if (opt == NBD_OPT_SET_META_CONTEXT) {
        free(c->meta_export);
        c->meta_export = name;
        c->meta_alloc = false;
        free(c->meta_changes);
        c->meta_changes = NULL;
        name = NULL;
    }
    free(name);
    const uint8_t *alloc = (const uint8_t *)NBD_META_BASE_ALLOCATION;
    const uint32_t alen = (uint32_t)strlen(NBD_META_BASE_ALLOCATION);
    bool set = opt == NBD_OPT_SET_META_CONTEXT;
    if (opt == NBD_OPT_LIST_META_CONTEXT && nq == 0) {
        /* tessera:changes-since: needs a name: only a query lists it. */
        rc = meta_reply(c, opt, 0, alloc, alen);
        found = true;
    }
    for (uint32_t i = 0; rc == 0 && i < nq && !found; i++) {
        char since[NBD_MAX_STRING + 1];
        uint32_t qlen = vd_get32(d + pos);
        const uint8_t *q = d + pos + 4;
        pos += 4 + qlen;
        if ((query_is(q, qlen, NBD_META_BASE_ALLOCATION) ||
             (!set && query_is(q, qlen, "base:"))) &&
            !(set && c->meta_alloc)) {
            if (set)
                c->meta_alloc = true;
            rc = meta_reply(c, opt, set ? VD_META_ALLOC_ID : 0, alloc, alen);
        } else if (query_changes(c, q, qlen, since, sizeof(since)) &&
                   !(set && c->meta_changes)) {
            if (set && !(c->meta_changes = strdup(since)))
                rc = -ENOMEM;
            if (rc == 0)
                rc = meta_reply(c, opt, set ? VD_META_CHANGES_ID : 0, q, qlen);
        }
    }
    if (rc == 0)
        rc = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
    return rc < 0 ? rc : OPT_NEXT;
}

static int opt_dispatch(struct vd_conn *c, uint32_t opt, const uint8_t *d,
                        uint32_t len)
{
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(c, d, len);
    case NBD_OPT_ABORT:
        opt_reply(c, opt, NBD_REP_ACK, NULL, 0); /* best effort */
        return -ESHUTDOWN;
    case NBD_OPT_LIST:
        return opt_list(c, len);
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info_go(c, opt, d, len);
    case NBD_OPT_STRUCTURED_REPLY:
        return opt_structured(c, len);
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        return opt_meta(c, opt, d, len);
    default:
        return opt_error(c, opt, NBD_REP_ERR_UNSUP, "option not supported");
    }
}

enum vd_gate vd_handshake_gate(enum vd_tls_mode mode, bool tls_active,
                               uint32_t opt, uint32_t len)
{
    if (opt == NBD_OPT_STARTTLS) {
        if (mode == VD_TLS_OFF)
            return VD_GATE_NO_TLS;
        if (tls_active)
            return VD_GATE_TLS_ACTIVE;
        return len ? VD_GATE_TLS_DATA : VD_GATE_STARTTLS;
    }
    if (mode != VD_TLS_REQUIRE || tls_active || opt == NBD_OPT_ABORT)
        return VD_GATE_SERVE;
    /* EXPORT_NAME has no error reply: proto.md says to close. */
    return opt == NBD_OPT_EXPORT_NAME ? VD_GATE_DROP : VD_GATE_TLS_REQD;
}

/* NBD_OPT_STARTTLS, accepted: ACK in the clear, then the TLS handshake;
 * the options negotiated so far are forgotten (see the top of the file). */
static int opt_starttls(struct vd_conn *c)
{
    char why[256], desc[128];
    int rc = opt_reply(c, NBD_OPT_STARTTLS, NBD_REP_ACK, NULL, 0);

    if (rc < 0)
        return rc;
    assert(!c->tls); /* invariant 2 */
    rc = vd_tls_session_start(c->cfg->tls, c->fd, &c->tls, why, sizeof(why));
    if (rc < 0) {
        log_warn("nbd handshake: TLS handshake failed: %s: peer=%s", why,
                 c->peer);
        return rc == -ENOMEM ? rc : -EKEYREJECTED;
    }
    c->structured = false;
    c->meta_alloc = false;
    free(c->meta_changes);
    c->meta_changes = NULL;
    free(c->meta_export);
    c->meta_export = NULL;
    c->id.tls_user = vd_tls_session_user(c->tls);
    c->id.auth = vd_tls_session_auth(c->tls);
    vd_tls_session_desc(c->tls, desc, sizeof(desc));
    log_info("nbd handshake: TLS started: peer=%s tls_user=%s auth=%s (%s)",
             c->peer, c->id.tls_user ? c->id.tls_user : "-",
             vd_tls_auth_name(c->id.auth), desc);
    return OPT_NEXT;
}

/* Apply the TLS rules to option @opt, then serve it or refuse it. */
static int opt_gated(struct vd_conn *c, uint32_t opt, const uint8_t *d,
                     uint32_t len)
{
    switch (vd_handshake_gate(c->cfg->tls_mode, c->tls != NULL, opt, len)) {
    case VD_GATE_SERVE:
        return opt_dispatch(c, opt, d, len);
    case VD_GATE_STARTTLS:
        return opt_starttls(c);
    case VD_GATE_TLS_REQD:
        log_debug("vd.handshake", "option %u before STARTTLS: peer=%s", opt,
                  c->peer);
        return opt_error(c, opt, NBD_REP_ERR_TLS_REQD,
                         "this server requires TLS: start it with "
                         "NBD_OPT_STARTTLS (a tls-creds object in QEMU, an "
                         "nbds:// URI in libnbd tools)");
    case VD_GATE_NO_TLS:
        return opt_error(c, opt, NBD_REP_ERR_POLICY,
                         "TLS is not enabled on this server");
    case VD_GATE_TLS_ACTIVE:
        return opt_error(c, opt, NBD_REP_ERR_INVALID, "TLS is already active");
    case VD_GATE_TLS_DATA:
        return opt_error(c, opt, NBD_REP_ERR_INVALID,
                         "NBD_OPT_STARTTLS takes no data");
    case VD_GATE_DROP:
        break;
    }
    log_warn("nbd handshake: refused: NBD_OPT_EXPORT_NAME without TLS, which "
             "this server requires: peer=%s",
             c->peer);
    return -EACCES;
}

/* A read during option haggling: EOF means the client left. */
static int read_opt(struct vd_conn *c, void *buf, size_t n)
{
    int rc = vd_recv(c, buf, n);
    return rc == -ECONNRESET ? -ESHUTDOWN : rc;
}

int vd_handshake_run(struct vd_conn *c)
{
    uint8_t buf[OPT_HDR_SIZE], greet[18];
    int rc;

    vd_put64(greet, NBD_MAGIC);
    vd_put64(greet + 8, NBD_IHAVEOPT);
    vd_put16(greet + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    struct iovec iov = {greet, sizeof(greet)};
    rc = vd_send(c, &iov, 1);
    if (rc < 0)
        return rc;

    rc = read_opt(c, buf, 4);
    if (rc < 0)
        return rc;
    uint32_t cflags = vd_get32(buf);
    if ((cflags & ~NBD_FLAG_C_KNOWN) || !(cflags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
        log_warn("nbd handshake: unsupported client flags 0x%x: peer=%s",
                 cflags, c->peer);
        return -EPROTO;
    }
    c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        rc = read_opt(c, buf, OPT_HDR_SIZE);
        if (rc < 0)
            return rc;
        uint32_t opt = vd_get32(buf + 8), len = vd_get32(buf + 12);
        if (vd_get64(buf) != NBD_IHAVEOPT) {
            log_warn("nbd handshake: bad option magic: peer=%s", c->peer);
            return -EPROTO;
        }
        if (len > VD_OPT_MAX) {
            log_warn("nbd handshake: option %u data too long (%u bytes): "
                     "peer=%s",
                     opt, len, c->peer);
            opt_error(c, opt, NBD_REP_ERR_TOO_BIG, "option data too long");
            return -EPROTO;
        }
        uint8_t *data = malloc(len ? len : 1);
        if (!data)
            return -ENOMEM;
        rc = read_opt(c, data, len);
        if (rc == 0)
            rc = opt_gated(c, opt, data, len);
        free(data);
        if (rc != OPT_NEXT)
            return rc == OPT_DONE ? 0 : rc;
    }
}
