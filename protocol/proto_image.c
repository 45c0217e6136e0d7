/* proto_image.c: codecs for snapshots and clones (docs/protocol.md §12):
 * SNAPSHOT_REQ and CLONE_REQ (one body, snapshot_req) and CHUNK_CLONE_REQ;
 * IMAGE_ROLLBACK_REQ and IMAGE_FLATTEN_REQ (image_pair_req);
 * IMAGE_CHANGES_REQ and its reply, whose entries are checked whole by the
 * decoder so that proto_changes_next() cannot fail afterwards.
 * IMAGE_INFO_REQ and IMAGE_LIST_REQ reuse ino_req and their replies
 * status_rep; CHUNK_WMAP reuses chunk_ref and bytes_rep.
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

/* ---- IMAGE_ROLLBACK, IMAGE_FLATTEN (§12.6) ------------------------------ */

void proto_image_pair_req_encode(struct proto_wbuf *w,
                                 const struct proto_image_pair_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u64(w, m->src);
}

int proto_image_pair_req_decode(const uint8_t *p, size_t n,
                                struct proto_image_pair_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    rc = proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->src = proto_get_u64(&r);
    return proto_rbuf_finish(&r, rc);
}

/* ---- IMAGE_CHANGES (§12.7) ---------------------------------------------- */

static int changes_req_check(const struct proto_image_changes_req *m)
{
    return m->count == 0 || m->count > PROTO_LOCATE_MAX ? -EPROTO : 0;
}

void proto_image_changes_req_encode(struct proto_wbuf *w,
                                    const struct proto_image_changes_req *m)
{
    if (!proto_wbuf_check(w, changes_req_check(m)))
        return;
    proto_put_u64(w, m->from);
    proto_put_u64(w, m->to);
    proto_put_u64(w, m->first);
    proto_put_u32(w, m->count);
}

int proto_image_changes_req_decode(const uint8_t *p, size_t n,
                                   struct proto_image_changes_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->from = proto_get_u64(&r);
    m->to = proto_get_u64(&r);
    m->first = proto_get_u64(&r);
    m->count = proto_get_u32(&r);
    return proto_rbuf_finish(&r, changes_req_check(m));
}

/* §12.7: BLOCKS names 1..PROTO_CHANGES_CHAIN_MAX chunks, the other kinds
 * none; a chain entry is never a hole. */
static int entry_check(const struct proto_changes_entry *e)
{
    if (e->kind == PROTO_CHANGES_BLOCKS)
        return e->nchain == 0 || e->nchain > PROTO_CHANGES_CHAIN_MAX ? -EPROTO
                                                                     : 0;
    if (e->kind == PROTO_CHANGES_WHOLE || e->kind == PROTO_CHANGES_ZERO)
        return e->nchain ? -EPROTO : 0;
    return -EPROTO;
}

void proto_changes_entry_put(struct proto_wbuf *w,
                             const struct proto_changes_entry *e)
{
    if (!proto_wbuf_check(w, entry_check(e)))
        return;
    proto_put_u64(w, e->index);
    proto_put_u8(w, (uint8_t)e->kind);
    proto_put_u8(w, (uint8_t)e->nchain);
    for (uint32_t i = 0; i < e->nchain; i++)
        proto_chunk_loc_put(w, &e->chain[i]);
}

static int entry_get(struct proto_rbuf *r, struct proto_changes_entry *e)
{
    e->index = proto_get_u64(r);
    e->kind = proto_get_u8(r);
    e->nchain = proto_get_u8(r);
    if (r->err || entry_check(e) < 0) {
        e->nchain = 0;
        return -EPROTO;
    }
    for (uint32_t i = 0; i < e->nchain; i++) {
        if (proto_chunk_loc_get(r, &e->chain[i]) < 0 ||
            e->chain[i].chunk_id == 0)
            return -EPROTO;
    }
    return 0;
}

static int changes_rep_check(const struct proto_image_changes_rep *m)
{
    struct proto_rbuf r;
    struct proto_changes_entry e;
    int rc = 0;

    if (m->count > PROTO_LOCATE_MAX)
        return -EPROTO;
    proto_rbuf_init(&r, m->raw.p, m->raw.len);
    for (uint32_t i = 0; i < m->count && rc == 0; i++)
        rc = entry_get(&r, &e);
    return rc ? rc : proto_rbuf_done(&r);
}

void proto_image_changes_rep_encode(struct proto_wbuf *w,
                                    const struct proto_image_changes_rep *m)
{
    if (!proto_wbuf_check(w, changes_rep_check(m)))
        return;
    proto_put_u64(w, m->from_size);
    proto_put_u64(w, m->to_size);
    proto_put_u32(w, m->count);
    proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_image_changes_rep_decode(const uint8_t *p, size_t n,
                                   struct proto_image_changes_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->from_size = proto_get_u64(&r);
    m->to_size = proto_get_u64(&r);
    m->count = proto_get_u32(&r);
    if (r.err || n > PROTO_MAX_PAYLOAD)
        return -EPROTO;
    m->raw.len = (uint32_t)(n - r.off);
    m->raw.p = (const char *)proto_get_raw(&r, m->raw.len);
    return proto_rbuf_finish(&r, changes_rep_check(m));
}

void proto_changes_iter_init(struct proto_changes_iter *it,
                             const struct proto_image_changes_rep *rep)
{
    proto_rbuf_init(&it->r, rep->raw.p, rep->raw.len);
    it->left = rep->count;
}

bool proto_changes_next(struct proto_changes_iter *it,
                        struct proto_changes_entry *e)
{
    if (it->left == 0 || it->r.err)
        return false;
    it->left--;
    return entry_get(&it->r, e) == 0;
}
