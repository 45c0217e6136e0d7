/* test_meta_util.h: fixtures and request builders shared by the metadata
 * unit tests.  Every request is encoded with the protocol encoders and
 * goes through meta_apply() or meta_query(), as the daemon sends it.
 *
 * The helpers are static inline so each test file includes only what it
 * uses without unused-function warnings.
 */
#ifndef TESSERA_TEST_META_UTIL_H
#define TESSERA_TEST_META_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h> /* cmocka.h needs it first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "meta.h"
#include "meta_op.h"
#include "proto.h"

#define ROOT 1u
#define T0 1000000000000ll /* first op time (ns) */

struct fx {
    struct meta_db *db;
    int64_t now;
    uint64_t session;
    uint64_t req_id; /* stamped into each record made, with @session */
    char dir[64]; /* temp dir, "" for :memory: */
};

static inline int fx_setup_mem(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(meta_db_open(":memory:", &f->db), 0);
    f->now = T0;
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    meta_db_close(f->db);
    if (f->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        assert_int_equal(system(cmd), 0);
    }
    free(f);
    return 0;
}

static inline struct proto_cred cred_of(uint32_t uid, uint32_t gid)
{
    struct proto_cred c;
    memset(&c, 0, sizeof(c));
    c.uid = uid;
    c.gid = gid;
    return c;
}

static inline struct proto_cred cred_root(void)
{
    return cred_of(0, 0);
}

static inline struct proto_str str_of(const char *s)
{
    return (struct proto_str){s, (uint32_t)strlen(s)};
}

/* Apply one encoded request at the next tick; the reply body goes to
 * @reply when not NULL. */
static inline int fx_apply(struct fx *f, uint16_t opcode,
                           struct proto_wbuf *req, struct proto_wbuf *reply)
{
    struct proto_wbuf tmp;
    proto_wbuf_init(&tmp);
    assert_int_equal(req->err, 0);
    f->now += 1000;
    struct meta_op op = {
        .format = META_OP_FORMAT,
        .opcode = opcode,
        .now = f->now,
        .session_id = f->session,
        .req_id = f->req_id,
        .payload = req->p,
        .len = req->len,
    };
    int r = meta_apply(f->db, &op, reply ? reply : &tmp);
    proto_wbuf_free(&tmp);
    proto_wbuf_free(req);
    return r;
}

/* The record of MKDIR @name (mode 0755, as root) under the root, stamped
 * at the next time of @f; its payload is in @w, which the caller frees. */
static inline struct meta_op mkdir_op(struct fx *f, const char *name,
                                      struct proto_wbuf *w)
{
    struct proto_mkdir_req q = {.cred = cred_root(),
                                .parent = ROOT,
                                .mode = 0755,
                                .name = str_of(name)};
    proto_wbuf_init(w);
    proto_mkdir_req_encode(w, &q);
    f->now += 1000;
    return (struct meta_op){.format = META_OP_FORMAT,
                            .opcode = PROTO_MSG_MKDIR_REQ,
                            .now = f->now,
                            .payload = w->p,
                            .len = w->len};
}

static inline int fx_query(struct fx *f, uint16_t opcode,
                           struct proto_wbuf *req, struct proto_wbuf *reply)
{
    struct proto_wbuf tmp;
    proto_wbuf_init(&tmp);
    assert_int_equal(req->err, 0);
    int r = meta_query(f->db, opcode, req->p, req->len, reply ? reply : &tmp);
    proto_wbuf_free(&tmp);
    proto_wbuf_free(req);
    return r;
}

/* Decode an attr_rep, or the entry of an entry_rep, from @reply (then
 * freed) into @a when not NULL. */
static inline void take_attr(struct proto_wbuf *reply, struct proto_attr *a)
{
    struct proto_entry_rep rep;
    assert_int_equal(proto_entry_rep_decode(reply->p, reply->len, &rep), 0);
    if (a)
        *a = rep.attr;
    proto_wbuf_free(reply);
}

static inline int fx_attr_op(struct fx *f, uint16_t opcode, bool mutation,
                             struct proto_wbuf *req, struct proto_attr *a)
{
    struct proto_wbuf reply;
    proto_wbuf_init(&reply);
    int r = mutation ? fx_apply(f, opcode, req, &reply)
                     : fx_query(f, opcode, req, &reply);
    if (r == 0)
        take_attr(&reply, a);
    else
        proto_wbuf_free(&reply);
    return r;
}

static inline int do_mknod(struct fx *f, struct proto_cred c, uint64_t parent,
                           const char *name, uint32_t mode, uint32_t flags,
                           struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_mknod_req q = {.cred = c,
                                .parent = parent,
                                .mode = mode,
                                .flags = flags,
                                .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_mknod_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_MKNOD_REQ, true, &w, a);
}

static inline int do_create(struct fx *f, struct proto_cred c, uint64_t parent,
                            const char *name, uint32_t mode,
                            struct proto_attr *a)
{
    return do_mknod(f, c, parent, name, S_IFREG | mode, PROTO_MKNOD_EXCL, a);
}

static inline int do_mkdir(struct fx *f, struct proto_cred c, uint64_t parent,
                           const char *name, uint32_t mode,
                           struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_mkdir_req q = {
        .cred = c, .parent = parent, .mode = mode, .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_mkdir_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_MKDIR_REQ, true, &w, a);
}

static inline int do_symlink(struct fx *f, struct proto_cred c, uint64_t parent,
                             const char *name, const char *target,
                             struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_symlink_req q = {.cred = c,
                                  .parent = parent,
                                  .name = str_of(name),
                                  .target = str_of(target)};
    proto_wbuf_init(&w);
    proto_symlink_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_SYMLINK_REQ, true, &w, a);
}

static inline int do_link(struct fx *f, struct proto_cred c, uint64_t ino,
                          uint64_t newparent, const char *name,
                          struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_link_req q = {
        .cred = c, .ino = ino, .newparent = newparent, .newname = str_of(name)};
    proto_wbuf_init(&w);
    proto_link_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_LINK_REQ, true, &w, a);
}

static inline int do_remove(struct fx *f, uint16_t opcode, struct proto_cred c,
                            uint64_t parent, const char *name)
{
    struct proto_wbuf w;
    struct proto_lookup_req q = {
        .cred = c, .parent = parent, .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &q);
    return fx_apply(f, opcode, &w, NULL);
}

static inline int do_unlink(struct fx *f, struct proto_cred c, uint64_t parent,
                            const char *name)
{
    return do_remove(f, PROTO_MSG_UNLINK_REQ, c, parent, name);
}

static inline int do_rmdir(struct fx *f, struct proto_cred c, uint64_t parent,
                           const char *name)
{
    return do_remove(f, PROTO_MSG_RMDIR_REQ, c, parent, name);
}

static inline int do_rename(struct fx *f, struct proto_cred c, uint64_t parent,
                            const char *name, uint64_t newparent,
                            const char *newname, uint32_t flags)
{
    struct proto_wbuf w;
    struct proto_rename_req q = {.cred = c,
                                 .parent = parent,
                                 .name = str_of(name),
                                 .newparent = newparent,
                                 .newname = str_of(newname),
                                 .flags = flags};
    proto_wbuf_init(&w);
    proto_rename_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_RENAME_REQ, &w, NULL);
}

static inline int do_setattr(struct fx *f, const struct proto_setattr_req *q,
                             struct proto_attr *a)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_setattr_req_encode(&w, q);
    return fx_attr_op(f, PROTO_MSG_SETATTR_REQ, true, &w, a);
}

static inline int do_chmod(struct fx *f, struct proto_cred c, uint64_t ino,
                           uint32_t mode, struct proto_attr *a)
{
    struct proto_setattr_req q = {
        .cred = c, .ino = ino, .valid = PROTO_SETATTR_MODE, .mode = mode};
    return do_setattr(f, &q, a);
}

static inline int do_lookup(struct fx *f, struct proto_cred c, uint64_t parent,
                            const char *name, struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_lookup_req q = {
        .cred = c, .parent = parent, .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_LOOKUP_REQ, false, &w, a);
}

static inline int do_getattr(struct fx *f, uint64_t ino, struct proto_attr *a)
{
    struct proto_wbuf w;
    struct proto_ino_req q = {.ino = ino};
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &q);
    return fx_attr_op(f, PROTO_MSG_GETATTR_REQ, false, &w, a);
}

static inline int do_access(struct fx *f, uint16_t opcode, struct proto_cred c,
                            uint64_t ino, uint32_t mask)
{
    struct proto_wbuf w;
    struct proto_access_req q = {.cred = c, .ino = ino, .mask = mask};
    proto_wbuf_init(&w);
    proto_access_req_encode(&w, &q);
    return fx_query(f, opcode, &w, NULL);
}

static inline int do_setxattr(struct fx *f, struct proto_cred c, uint64_t ino,
                              const char *name, const char *value,
                              uint32_t flags)
{
    struct proto_wbuf w;
    struct proto_setxattr_req q = {.cred = c,
                                   .ino = ino,
                                   .flags = flags,
                                   .name = str_of(name),
                                   .value = str_of(value)};
    proto_wbuf_init(&w);
    proto_setxattr_req_encode(&w, &q);
    return fx_apply(f, PROTO_MSG_SETXATTR_REQ, &w, NULL);
}

static inline int do_xattr_name(struct fx *f, uint16_t opcode,
                                struct proto_cred c, uint64_t ino,
                                const char *name, struct proto_wbuf *reply)
{
    struct proto_wbuf w;
    struct proto_xattr_name_req q = {
        .cred = c, .ino = ino, .name = str_of(name)};
    proto_wbuf_init(&w);
    proto_xattr_name_req_encode(&w, &q);
    if (opcode == PROTO_MSG_REMOVEXATTR_REQ)
        return fx_apply(f, opcode, &w, reply);
    return fx_query(f, opcode, &w, reply);
}

/* READDIR into a list of names (and cookies); returns the count or
 * -errno.  *eof and the last cookie are filled. */
struct rd_ent {
    char name[256];
    uint64_t cookie;
    struct proto_attr attr;
};

static inline int do_readdir(struct fx *f, struct proto_cred c, uint64_t ino,
                             uint64_t cookie, uint32_t max, uint32_t flags,
                             struct rd_ent *out, bool *eof)
{
    struct proto_wbuf w, reply;
    struct proto_readdir_req q = {.cred = c,
                                  .ino = ino,
                                  .cookie = cookie,
                                  .max_entries = max,
                                  .flags = flags};
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_readdir_req_encode(&w, &q);
    int r = fx_query(f, PROTO_MSG_READDIR_REQ, &w, &reply);
    if (r < 0) {
        proto_wbuf_free(&reply);
        return r;
    }
    struct proto_readdir_rep rep;
    assert_int_equal(proto_readdir_rep_decode(reply.p, reply.len, &rep), 0);
    struct proto_dirent_iter it;
    struct proto_dirent d;
    int n = 0;
    proto_dirent_iter_init(&it, &rep);
    while (proto_dirent_next(&it, &d)) {
        assert_true(d.name.len < sizeof(out[n].name));
        memcpy(out[n].name, d.name.p, d.name.len);
        out[n].name[d.name.len] = 0;
        out[n].cookie = d.cookie;
        out[n].attr = d.attr;
        n++;
    }
    assert_int_equal((uint32_t)n, rep.count);
    *eof = rep.eof;
    proto_wbuf_free(&reply);
    return n;
}

/* Inode number of @name in @parent (as root), asserting it exists. */
static inline uint64_t ino_of(struct fx *f, uint64_t parent, const char *name)
{
    struct proto_attr a;
    assert_int_equal(do_lookup(f, cred_root(), parent, name, &a), 0);
    return a.ino;
}

static inline struct proto_attr attr_of(struct fx *f, uint64_t ino)
{
    struct proto_attr a;
    assert_int_equal(do_getattr(f, ino, &a), 0);
    return a;
}

/* Register storage server number @tag (its uuid is 16 x @tag) at @addr
 * with @free bytes free of 1 TiB. */
static inline uint32_t fx_server_register(struct fx *f, uint8_t tag,
                                          const char *addr, uint64_t free)
{
    struct proto_wbuf w, reply;
    struct proto_server_register_req q = {
        .addr = str_of(addr), .capacity = 1ull << 40, .free = free};
    struct proto_server_register_rep rep;
    memset(q.uuid, tag, sizeof(q.uuid));
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_server_register_req_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_SERVER_REGISTER_REQ, &w, &reply), 0);
    assert_int_equal(proto_server_register_rep_decode(reply.p, reply.len, &rep),
                     0);
    proto_wbuf_free(&reply);
    return rep.server_id;
}

static inline uint32_t fx_server_add(struct fx *f, uint8_t tag)
{
    return fx_server_register(f, tag, "127.0.0.1:9422", 1ull << 39);
}

/* META_OP_CHUNK_SET of slot (@ino, @index) with replicas @servers. */
static inline int fx_chunk_set(struct fx *f, uint64_t ino, uint64_t index,
                               uint64_t chunk_id, uint64_t old_v,
                               uint64_t new_v, uint32_t n,
                               const uint32_t *servers)
{
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_put_u64(&w, ino);
    proto_put_u64(&w, index);
    proto_put_u64(&w, chunk_id);
    proto_put_u64(&w, old_v);
    proto_put_u64(&w, new_v);
    proto_put_u32(&w, n);
    for (uint32_t i = 0; i < n; i++)
        proto_put_u32(&w, servers[i]);
    return fx_apply(f, META_OP_CHUNK_SET, &w, NULL);
}

/* The same with one replica, on @server. */
static inline int fx_chunk_set1(struct fx *f, uint64_t ino, uint64_t index,
                                uint64_t chunk_id, uint64_t old_v,
                                uint64_t new_v, uint32_t server)
{
    return fx_chunk_set(f, ino, index, chunk_id, old_v, new_v, 1, &server);
}

static inline int fx_gc_count_fn(uint64_t chunk_id, uint64_t version,
                                 uint32_t server, void *arg)
{
    (void)chunk_id;
    (void)version;
    (void)server;
    (*(int *)arg)++;
    return 0;
}

/* Replicas on the gc list, on every server. */
static inline int fx_gc_count(struct fx *f)
{
    int n = 0;
    assert_int_equal(meta_gc_foreach(f->db, 0, 1000, fx_gc_count_fn, &n), 0);
    return n;
}

/* meta_oplog_foreach() callback: apply @op to the database @arg (a
 * struct meta_db *); every record must apply again. */
static inline int fx_replay_op(uint64_t seq, const struct meta_op *op,
                               void *arg)
{
    struct proto_wbuf reply;
    (void)seq;
    proto_wbuf_init(&reply);
    int r = meta_apply(arg, op, &reply);
    proto_wbuf_free(&reply);
    assert_int_equal(r, 0);
    return 0;
}

/* SESSION_OPEN: the new session's id. */
static inline uint64_t fx_session_open(struct fx *f)
{
    struct proto_wbuf w, reply;
    struct proto_session_open_req q = {
        .lease_ms = 10000, .client_name = str_of("test"), .host = str_of("h")};
    struct proto_session_open_rep rep;
    proto_wbuf_init(&w);
    proto_wbuf_init(&reply);
    proto_session_open_req_encode(&w, &q);
    assert_int_equal(fx_apply(f, PROTO_MSG_SESSION_OPEN_REQ, &w, &reply), 0);
    assert_int_equal(proto_session_open_rep_decode(reply.p, reply.len, &rep),
                     0);
    proto_wbuf_free(&reply);
    return rep.session_id;
}

#endif
