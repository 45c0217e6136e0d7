/* proto_chunk.c: codecs for chunk I/O between clients, metad and chunk
 * servers (docs/protocol.md §7): READ, WRITE, SYNC, SETVERSION, DELETE
 * and TRUNCATE.
 *
 * The decoders enforce the limits that make a request safe to act on
 * without further range checks: a read or write never reaches past
 * PROTO_CHUNK_SIZE, a read asks for at most PROTO_MAX_DATA bytes, and a
 * forwarding chain holds at most PROTO_MAX_REPLICAS replicas.  Version
 * matching, forwarding and durability belong to the chunk server.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_chunk_ref_encode(struct proto_wbuf *w,
                            const struct proto_chunk_ref *m)
{
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
}

int proto_chunk_ref_decode(const uint8_t *p, size_t n,
                           struct proto_chunk_ref *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

static int chunk_read_check(const struct proto_chunk_read_req *m)
{
    if (m->flags & ~PROTO_CHUNK_READ_MASK)
        return -EPROTO;
    if (m->length > PROTO_MAX_DATA)
        return -EPROTO;
    if ((uint64_t)m->offset + m->length > PROTO_CHUNK_SIZE)
        return -EPROTO;
    return 0;
}

void proto_chunk_read_req_encode(struct proto_wbuf *w,
                                 const struct proto_chunk_read_req *m)
{
    if (!proto_wbuf_check(w, chunk_read_check(m)))
        return;
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->offset);
    proto_put_u32(w, m->length);
    proto_put_u32(w, m->flags);
}

int proto_chunk_read_req_decode(const uint8_t *p, size_t n,
                                struct proto_chunk_read_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->offset = proto_get_u32(&r);
    m->length = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r, chunk_read_check(m));
}

static int chunk_write_check(const struct proto_chunk_write_req *m)
{
    if (m->flags & ~PROTO_CHUNK_WRITE_MASK)
        return -EPROTO;
    if (m->nchain > PROTO_MAX_REPLICAS)
        return -EPROTO;
    if (m->data.len > PROTO_MAX_DATA)
        return -EPROTO;
    if ((uint64_t)m->offset + m->data.len > PROTO_CHUNK_SIZE)
        return -EPROTO;
    return 0;
}

void proto_chunk_write_req_encode(struct proto_wbuf *w,
                                  const struct proto_chunk_write_req *m)
{
    if (!proto_wbuf_check(w, chunk_write_check(m)))
        return;
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->offset);
    proto_put_u32(w, m->flags);
    proto_put_u32(w, m->nchain);
    proto_replicas_put(w, m->chain, m->nchain);
    proto_put_bytes(w, m->data.p, m->data.len);
}

int proto_chunk_write_req_decode(const uint8_t *p, size_t n,
                                 struct proto_chunk_write_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->offset = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    m->nchain = proto_get_u32(&r);
    if (m->nchain > PROTO_MAX_REPLICAS)
        return -EPROTO;
    proto_replicas_get(&r, m->chain, m->nchain);
    proto_bytes_get(&r, &m->data);
    return proto_rbuf_finish(&r, chunk_write_check(m));
}

void proto_chunk_sync_req_encode(struct proto_wbuf *w,
                                 const struct proto_chunk_sync_req *m)
{
    if (!proto_wbuf_check(w, m->nchain > PROTO_MAX_REPLICAS ? -EINVAL : 0))
        return;
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->nchain);
    proto_replicas_put(w, m->chain, m->nchain);
}

int proto_chunk_sync_req_decode(const uint8_t *p, size_t n,
                                struct proto_chunk_sync_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->nchain = proto_get_u32(&r);
    if (m->nchain > PROTO_MAX_REPLICAS)
        return -EPROTO;
    proto_replicas_get(&r, m->chain, m->nchain);
    return proto_rbuf_done(&r);
}

void proto_chunk_setversion_req_encode(
    struct proto_wbuf *w, const struct proto_chunk_setversion_req *m)
{
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->old_version);
    proto_put_u64(w, m->new_version);
}

int proto_chunk_setversion_req_decode(const uint8_t *p, size_t n,
                                      struct proto_chunk_setversion_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->old_version = proto_get_u64(&r);
    m->new_version = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_chunk_truncate_req_encode(struct proto_wbuf *w,
                                     const struct proto_chunk_truncate_req *m)
{
    if (!proto_wbuf_check(w, m->length > PROTO_CHUNK_SIZE ? -EINVAL : 0))
        return;
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->length);
}

int proto_chunk_truncate_req_decode(const uint8_t *p, size_t n,
                                    struct proto_chunk_truncate_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->length = proto_get_u32(&r);
    return proto_rbuf_finish(&r, m->length > PROTO_CHUNK_SIZE ? -EPROTO : 0);
}
