/* proto_readdir.c: READDIR (docs/protocol.md §6.15): the request, the
 * reply and its directory entries.
 *
 * A reply carries up to PROTO_READDIR_MAX entries.  Its decoder walks and
 * checks every entry once, so proto_dirent_next() cannot fail afterwards
 * and callers never see half an entry.  Building a reply is the caller's
 * job: append entries with proto_dirent_put() to a separate wbuf, then
 * encode the reply with that buffer as @raw.
 *
 * Entry layout: u64 cookie, str name, then either the full attribute
 * block (PROTO_READDIR_PLUS) or u64 ino + u32 mode.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

static int readdir_req_check(const struct proto_readdir_req *m)
{
    if (m->max_entries == 0 || m->max_entries > PROTO_READDIR_MAX)
        return -EPROTO;
    if (m->flags & ~PROTO_READDIR_MASK)
        return -EPROTO;
    return 0;
}

void proto_readdir_req_encode(struct proto_wbuf *w,
                              const struct proto_readdir_req *m)
{
    if (!proto_wbuf_check(w, readdir_req_check(m)))
        return;
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->cookie);
    proto_put_u32(w, m->max_entries);
    proto_put_u32(w, m->flags);
}

int proto_readdir_req_decode(const uint8_t *p, size_t n,
                             struct proto_readdir_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->cookie = proto_get_u64(&r);
    m->max_entries = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r, readdir_req_check(m));
}

void proto_dirent_put(struct proto_wbuf *w, uint32_t flags,
                      const struct proto_dirent *d)
{
    proto_put_u64(w, d->cookie);
    proto_put_str(w, d->name.p, d->name.len);
    if (flags & PROTO_READDIR_PLUS) {
        proto_attr_put(w, &d->attr);
    } else {
        proto_put_u64(w, d->attr.ino);
        proto_put_u32(w, d->attr.mode);
    }
}

/* Read one entry; the caller checks r->err. */
static void dirent_get(struct proto_rbuf *r, uint32_t flags,
                       struct proto_dirent *d)
{
    memset(d, 0, sizeof(*d));
    d->cookie = proto_get_u64(r);
    proto_str_get(r, &d->name);
    if (flags & PROTO_READDIR_PLUS) {
        proto_attr_get(r, &d->attr);
    } else {
        d->attr.ino = proto_get_u64(r);
        d->attr.mode = proto_get_u32(r);
    }
}

/* §6.15: cookie 0 means "from the start", so no entry may carry it (a
 * client resuming there would loop); a name is one path component. */
static int dirent_check(const struct proto_dirent *d)
{
    if (d->cookie == 0)
        return -EPROTO;
    if (d->name.len == 0 || d->name.len > PROTO_NAME_MAX)
        return -EPROTO;
    if (memchr(d->name.p, '/', d->name.len) ||
        memchr(d->name.p, '\0', d->name.len))
        return -EPROTO;
    return 0;
}

static int readdir_rep_check(const struct proto_readdir_rep *m)
{
    struct proto_rbuf r;
    struct proto_dirent d;

    if (m->flags & ~PROTO_READDIR_MASK || m->eof > 1)
        return -EPROTO;
    if (m->count > PROTO_READDIR_MAX)
        return -EPROTO;
    proto_rbuf_init(&r, m->raw.p, m->raw.len);
    for (uint32_t i = 0; i < m->count; i++) {
        dirent_get(&r, m->flags, &d);
        if (r.err || dirent_check(&d))
            return -EPROTO;
    }
    return proto_rbuf_done(&r);
}

void proto_readdir_rep_encode(struct proto_wbuf *w,
                              const struct proto_readdir_rep *m)
{
    if (!proto_wbuf_check(w, readdir_rep_check(m)))
        return;
    proto_put_u32(w, m->flags);
    proto_put_u8(w, m->eof);
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_readdir_rep_decode(const uint8_t *p, size_t n,
                             struct proto_readdir_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->flags = proto_get_u32(&r);
    m->eof = proto_get_u8(&r);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    m->raw.len = (uint32_t)(n - r.off);
    m->raw.p = (const char *)proto_get_raw(&r, m->raw.len);
    return proto_rbuf_finish(&r, readdir_rep_check(m));
}

void proto_dirent_iter_init(struct proto_dirent_iter *it,
                            const struct proto_readdir_rep *rep)
{
    proto_rbuf_init(&it->r, rep->raw.p, rep->raw.len);
    it->flags = rep->flags;
    it->left = rep->count;
}

bool proto_dirent_next(struct proto_dirent_iter *it, struct proto_dirent *d)
{
    if (it->left == 0 || it->r.err)
        return false;
    dirent_get(&it->r, it->flags, d);
    it->left--;
    return it->r.err == 0;
}
