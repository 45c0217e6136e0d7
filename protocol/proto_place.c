/* proto_place.c: codecs for chunk placement between clients and metad
 * (docs/protocol.md §8): CHUNK_LOCATE, CHUNK_WRITE_BEGIN and
 * CHUNK_WRITE_END, and the chunk location entries their replies carry.
 *
 * A locate reply holds up to PROTO_LOCATE_MAX entries; its decoder checks
 * every entry (replica count, holes without replicas) so that
 * proto_chunk_loc_next() cannot fail afterwards.  To build a reply, append
 * entries with proto_chunk_loc_put() to a separate wbuf and encode the
 * reply with that buffer as @raw.
 *
 * Entry layout: u64 index, u64 chunk_id, u64 version, u32 nreplicas, then
 * nreplicas x (u32 server_id, str addr).
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

static int locate_req_check(const struct proto_chunk_locate_req *m)
{
    return m->count == 0 || m->count > PROTO_LOCATE_MAX ? -EPROTO : 0;
}

void proto_chunk_locate_req_encode(struct proto_wbuf *w,
                                   const struct proto_chunk_locate_req *m)
{
    if (!proto_wbuf_check(w, locate_req_check(m)))
        return;
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->first);
    proto_put_u32(w, m->count);
}

int proto_chunk_locate_req_decode(const uint8_t *p, size_t n,
                                  struct proto_chunk_locate_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->first = proto_get_u64(&r);
    m->count = proto_get_u32(&r);
    return proto_rbuf_finish(&r, locate_req_check(m));
}

void proto_chunk_loc_put(struct proto_wbuf *w, const struct proto_chunk_loc *c)
{
    if (!proto_wbuf_check(w, c->nreplicas > PROTO_MAX_REPLICAS ? -EINVAL : 0))
        return;
    proto_put_u64(w, c->index);
    proto_put_u64(w, c->chunk_id);
    proto_put_u64(w, c->version);
    proto_put_u32(w, c->nreplicas);
    proto_replicas_put(w, c->replicas, c->nreplicas);
}

/* Read one entry: 0 or -EPROTO.  §8.1: a hole (chunk_id 0) has no
 * replicas. */
int proto_chunk_loc_get(struct proto_rbuf *r, struct proto_chunk_loc *c)
{
    memset(c, 0, sizeof(*c));
    c->index = proto_get_u64(r);
    c->chunk_id = proto_get_u64(r);
    c->version = proto_get_u64(r);
    c->nreplicas = proto_get_u32(r);
    if (c->nreplicas > PROTO_MAX_REPLICAS) {
        c->nreplicas = 0;
        r->err = -EPROTO;
        return -EPROTO;
    }
    if (proto_replicas_get(r, c->replicas, c->nreplicas))
        return -EPROTO;
    if (c->chunk_id == 0 && c->nreplicas != 0)
        return -EPROTO;
    return 0;
}

static int locate_rep_check(const struct proto_chunk_locate_rep *m)
{
    struct proto_rbuf r;
    struct proto_chunk_loc c;

    if (m->count > PROTO_LOCATE_MAX)
        return -EPROTO;
    proto_rbuf_init(&r, m->raw.p, m->raw.len);
    for (uint32_t i = 0; i < m->count; i++)
        if (proto_chunk_loc_get(&r, &c))
            return -EPROTO;
    return proto_rbuf_done(&r);
}

void proto_chunk_locate_rep_encode(struct proto_wbuf *w,
                                   const struct proto_chunk_locate_rep *m)
{
    if (!proto_wbuf_check(w, locate_rep_check(m)))
        return;
    proto_put_u64(w, m->file_size);
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_chunk_locate_rep_decode(const uint8_t *p, size_t n,
                                  struct proto_chunk_locate_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->file_size = proto_get_u64(&r);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    m->raw.len = (uint32_t)(n - r.off);
    m->raw.p = (const char *)proto_get_raw(&r, m->raw.len);
    return proto_rbuf_finish(&r, locate_rep_check(m));
}

void proto_chunk_loc_iter_init(struct proto_chunk_loc_iter *it,
                               const struct proto_chunk_locate_rep *rep)
{
    proto_rbuf_init(&it->r, rep->raw.p, rep->raw.len);
    it->left = rep->count;
}

bool proto_chunk_loc_next(struct proto_chunk_loc_iter *it,
                          struct proto_chunk_loc *c)
{
    if (it->left == 0 || it->r.err)
        return false;
    it->left--;
    return proto_chunk_loc_get(&it->r, c) == 0;
}

void proto_chunk_write_begin_req_encode(
    struct proto_wbuf *w, const struct proto_chunk_write_begin_req *m)
{
    if (!proto_wbuf_check(w, m->flags ? -EINVAL : 0))
        return;
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->index);
    proto_put_u32(w, m->flags);
}

int proto_chunk_write_begin_req_decode(const uint8_t *p, size_t n,
                                       struct proto_chunk_write_begin_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->index = proto_get_u64(&r);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r, m->flags ? -EPROTO : 0);
}

void proto_chunk_write_end_req_encode(struct proto_wbuf *w,
                                      const struct proto_chunk_write_end_req *m)
{
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->index);
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->size);
    proto_put_i64(w, m->mtime);
}

int proto_chunk_write_end_req_decode(const uint8_t *p, size_t n,
                                     struct proto_chunk_write_end_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->index = proto_get_u64(&r);
    m->chunk_id = proto_get_u64(&r);
    m->size = proto_get_u64(&r);
    m->mtime = proto_get_i64(&r);
    return proto_rbuf_done(&r);
}
