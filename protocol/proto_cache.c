/* proto_cache.c: codecs for client cache coherence (docs/protocol.md §14):
 * CALLBACK_BREAK_REQ (metad -> client), CALLBACK_REGISTER_REQ/_REP and
 * DIR_DELEGATE_REQ (client -> metad).  CALLBACK_BREAK_REP is empty;
 * DIR_DELEGATE_REP is CALLBACK_REGISTER_REP's layout (the promise lease).
 *
 * What a break means and when it is sent is metad's business
 * (metadata/meta_srv_callback.c); these only check the layout, exactly,
 * and reject unknown flags.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_callback_break_req_encode(struct proto_wbuf *w,
                                     const struct proto_callback_break_req *m)
{
    bool ok = m->flags != 0 && !(m->flags & ~PROTO_CB_MASK) &&
              ((m->flags & PROTO_CB_ENTRY) || m->name.len == 0) &&
              (!(m->flags & PROTO_CB_ALL) ||
               (m->flags == PROTO_CB_ALL && m->ino == 0));
    if (!proto_wbuf_check(w, ok ? 0 : -EINVAL))
        return;
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->flags);
    proto_put_str(w, m->name.p, m->name.len);
}

int proto_callback_break_req_decode(const uint8_t *p, size_t n,
                                    struct proto_callback_break_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->flags = proto_get_u32(&r);
    rc = proto_str_get(&r, &m->name);
    if (rc == 0 && (m->flags == 0 || (m->flags & ~PROTO_CB_MASK)))
        rc = -EPROTO;
    /* A name only names a directory entry. */
    if (rc == 0 && m->name.len && !(m->flags & PROTO_CB_ENTRY))
        rc = -EPROTO;
    /* ALL names no inode and comes alone. */
    if (rc == 0 && (m->flags & PROTO_CB_ALL) &&
        (m->flags != PROTO_CB_ALL || m->ino != 0))
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_callback_register_req_encode(
    struct proto_wbuf *w, const struct proto_callback_register_req *m)
{
    if (!proto_wbuf_check(w, (m->flags & ~PROTO_CALLBACK_MASK) ? -EINVAL : 0))
        return;
    proto_put_u32(w, m->flags);
}

int proto_callback_register_req_decode(const uint8_t *p, size_t n,
                                       struct proto_callback_register_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r,
                             (m->flags & ~PROTO_CALLBACK_MASK) ? -EPROTO : 0);
}

void proto_callback_register_rep_encode(
    struct proto_wbuf *w, const struct proto_callback_register_rep *m)
{
    proto_put_u32(w, m->lease_ms);
}

int proto_callback_register_rep_decode(const uint8_t *p, size_t n,
                                       struct proto_callback_register_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->lease_ms = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_dir_delegate_req_encode(struct proto_wbuf *w,
                                   const struct proto_dir_delegate_req *m)
{
    if (!proto_wbuf_check(w,
                          (m->flags & ~PROTO_DIR_DELEGATE_MASK) ? -EINVAL : 0))
        return;
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->flags);
}

int proto_dir_delegate_req_decode(const uint8_t *p, size_t n,
                                  struct proto_dir_delegate_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->ino = proto_get_u64(&r);
    m->flags = proto_get_u32(&r);
    return proto_rbuf_finish(&r, (m->flags & ~PROTO_DIR_DELEGATE_MASK) ? -EPROTO
                                                                       : 0);
}
