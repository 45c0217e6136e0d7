/* proto_types.c: the field types shared by many messages (docs/protocol.md
 * §4.1): credentials, inode attributes and replica addresses, plus the two
 * small helpers every typed codec uses to latch encode errors and to finish
 * a decode.
 *
 * Message layouts themselves live in one file per family (proto_hello.c,
 * proto_ns.c, proto_readdir.c, proto_chunk.c, proto_place.c,
 * proto_server.c); the byte-level readers and writers in proto_buf.c.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

/* The attribute block is fixed-size on the wire (§4.2): 8 + 6*4 + 2*8 +
 * 3*8 + 8 bytes.  Keep the constant and this sum in step. */
_Static_assert(PROTO_ATTR_SIZE == 8 + 6 * 4 + 2 * 8 + 3 * 8 + 8,
               "PROTO_ATTR_SIZE does not match the attr layout");
_Static_assert(PROTO_INV_ENTRY_SIZE == 3 * 8,
               "PROTO_INV_ENTRY_SIZE does not match the entry layout");

bool proto_wbuf_check(struct proto_wbuf *w, int rc)
{
    if (rc < 0) {
        if (!w->err)
            w->err = -EINVAL;
        return false;
    }
    return w->err == 0;
}

int proto_rbuf_finish(const struct proto_rbuf *r, int rc)
{
    int done = proto_rbuf_done(r);
    return done ? done : rc;
}

void proto_cred_put(struct proto_wbuf *w, const struct proto_cred *c)
{
    if (!proto_wbuf_check(w, c->ngroups > PROTO_MAX_GROUPS ? -EINVAL : 0))
        return;
    proto_put_u32(w, c->uid);
    proto_put_u32(w, c->gid);
    proto_put_u32(w, c->ngroups);
    for (uint32_t i = 0; i < c->ngroups; i++)
        proto_put_u32(w, c->groups[i]);
}

int proto_cred_get(struct proto_rbuf *r, struct proto_cred *c)
{
    memset(c, 0, sizeof(*c));
    c->uid = proto_get_u32(r);
    c->gid = proto_get_u32(r);
    c->ngroups = proto_get_u32(r);
    if (c->ngroups > PROTO_MAX_GROUPS) {
        c->ngroups = 0;
        r->err = -EPROTO;
        return -EPROTO;
    }
    for (uint32_t i = 0; i < c->ngroups; i++)
        c->groups[i] = proto_get_u32(r);
    return r->err;
}

void proto_attr_put(struct proto_wbuf *w, const struct proto_attr *a)
{
    proto_put_u64(w, a->ino);
    proto_put_u32(w, a->mode);
    proto_put_u32(w, a->nlink);
    proto_put_u32(w, a->uid);
    proto_put_u32(w, a->gid);
    proto_put_u32(w, a->rdev);
    proto_put_u32(w, a->goal);
    proto_put_u64(w, a->size);
    proto_put_u64(w, a->blocks);
    proto_put_i64(w, a->atime);
    proto_put_i64(w, a->mtime);
    proto_put_i64(w, a->ctime);
    proto_put_u64(w, a->version);
}

void proto_attr_get(struct proto_rbuf *r, struct proto_attr *a)
{
    a->ino = proto_get_u64(r);
    a->mode = proto_get_u32(r);
    a->nlink = proto_get_u32(r);
    a->uid = proto_get_u32(r);
    a->gid = proto_get_u32(r);
    a->rdev = proto_get_u32(r);
    a->goal = proto_get_u32(r);
    a->size = proto_get_u64(r);
    a->blocks = proto_get_u64(r);
    a->atime = proto_get_i64(r);
    a->mtime = proto_get_i64(r);
    a->ctime = proto_get_i64(r);
    a->version = proto_get_u64(r);
}

void proto_replicas_put(struct proto_wbuf *w, const struct proto_replica *v,
                        uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        proto_put_u32(w, v[i].server_id);
        proto_put_str(w, v[i].addr.p, v[i].addr.len);
    }
}

int proto_replicas_get(struct proto_rbuf *r, struct proto_replica *v,
                       uint32_t n)
{
    for (uint32_t i = 0; i < n && !r->err; i++) {
        v[i].server_id = proto_get_u32(r);
        proto_str_get(r, &v[i].addr);
    }
    return r->err;
}
