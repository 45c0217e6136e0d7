/* proto_image.c: codecs for snapshots and clones (docs/protocol.md §12):
 * SNAPSHOT_REQ and CLONE_REQ (one body, snapshot_req) and CHUNK_CLONE_REQ.
 * IMAGE_INFO_REQ and IMAGE_LIST_REQ reuse ino_req and their replies
 * status_rep.
 *
 * What a request means is metad's and chunkd's business; these only check
 * the layout, exactly, as every decoder does.
 */
#include "proto_internal.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

void proto_snapshot_req_encode(struct proto_wbuf *w,
                               const struct proto_snapshot_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->parent);
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_snapshot_req_decode(const uint8_t *p, size_t n,
                              struct proto_snapshot_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    rc = proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->parent = proto_get_u64(&r);
    if (rc == 0)
        rc = proto_str_get(&r, &m->name);
    return proto_rbuf_finish(&r, rc);
}

static_assert(PROTO_CHUNK_CLONE_SIZE == 4 * sizeof(uint64_t),
              "chunk_clone_req: four u64 fields");

void proto_chunk_clone_req_encode(struct proto_wbuf *w,
                                  const struct proto_chunk_clone_req *m)
{
    proto_put_u64(w, m->src_id);
    proto_put_u64(w, m->src_version);
    proto_put_u64(w, m->new_id);
    proto_put_u64(w, m->new_version);
}

int proto_chunk_clone_req_decode(const uint8_t *p, size_t n,
                                 struct proto_chunk_clone_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    if (n != PROTO_CHUNK_CLONE_SIZE)
        return -EPROTO;
    proto_rbuf_init(&r, p, n);
    m->src_id = proto_get_u64(&r);
    m->src_version = proto_get_u64(&r);
    m->new_id = proto_get_u64(&r);
    m->new_version = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}
