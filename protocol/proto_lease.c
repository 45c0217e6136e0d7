/* proto_lease.c: codecs for image writer leases (docs/protocol.md §15):
 * IMAGE_LEASE_REQ/REP and IMAGE_LEASE_WAIT_REQ/REP (one body for both
 * directions, image_lease_wait).
 *
 * What a lease means (one writer per image, hand-over for live migration)
 * is metad's and tessera-nbd's business; these only check the layout,
 * exactly, and the closed lists of operations, results, flags and entry
 * states, as every decoder does.
 */
#include "proto_internal.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static_assert(PROTO_IMAGE_LEASE_REQ_SIZE ==
                  2 * sizeof(uint32_t) + sizeof(uint64_t),
              "image_lease_req: op, arg, ino");
static_assert(PROTO_LEASE_ENTRY_SIZE == sizeof(uint64_t) + sizeof(uint32_t),
              "lease entry: ino, state");

static int lease_req_check(const struct proto_image_lease_req *m)
{
    if (m->op < PROTO_LEASE_ACQUIRE || m->op > PROTO_LEASE_OP_MAX)
        return -EPROTO;
    if (m->op != PROTO_LEASE_ARM && m->arg != 0)
        return -EPROTO;
    return 0;
}

void proto_image_lease_req_encode(struct proto_wbuf *w,
                                  const struct proto_image_lease_req *m)
{
    if (!proto_wbuf_check(w, lease_req_check(m)))
        return;
    proto_put_u32(w, m->op);
    proto_put_u32(w, m->arg);
    proto_put_u64(w, m->ino);
}

int proto_image_lease_req_decode(const uint8_t *p, size_t n,
                                 struct proto_image_lease_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    if (n != PROTO_IMAGE_LEASE_REQ_SIZE)
        return -EPROTO;
    proto_rbuf_init(&r, p, n);
    m->op = proto_get_u32(&r);
    m->arg = proto_get_u32(&r);
    m->ino = proto_get_u64(&r);
    return proto_rbuf_finish(&r, lease_req_check(m));
}

static int lease_rep_check(const struct proto_image_lease_rep *m)
{
    if (m->result < PROTO_LEASE_FREE || m->result > PROTO_LEASE_RESULT_MAX)
        return -EPROTO;
    if (m->flags & ~PROTO_LEASE_F_MASK)
        return -EPROTO;
    return 0;
}

void proto_image_lease_rep_encode(struct proto_wbuf *w,
                                  const struct proto_image_lease_rep *m)
{
    if (!proto_wbuf_check(w, lease_rep_check(m)))
        return;
    proto_put_u32(w, m->result);
    proto_put_u32(w, m->flags);
    proto_put_u64(w, m->holder_session);
    proto_put_str(w, m->holder_name.p, m->holder_name.len);
    proto_put_str(w, m->holder_host.p, m->holder_host.len);
}

int proto_image_lease_rep_decode(const uint8_t *p, size_t n,
                                 struct proto_image_lease_rep *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->result = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    m->holder_session = proto_get_u64(&r);
    rc = proto_str_get(&r, &m->holder_name);
    if (rc == 0)
        rc = proto_str_get(&r, &m->holder_host);
    if (rc == 0)
        rc = lease_rep_check(m);
    return proto_rbuf_finish(&r, rc);
}

/* The entries in @raw: the right size for @count, states known. */
static int lease_wait_check(const struct proto_image_lease_wait *m)
{
    if (m->timeout_ms > PROTO_LEASE_WAIT_TIMEOUT_MAX ||
        m->count > PROTO_LEASE_WAIT_MAX)
        return -EPROTO;
    if ((size_t)m->raw.len != (size_t)m->count * PROTO_LEASE_ENTRY_SIZE)
        return -EPROTO;
    for (uint32_t i = 0; i < m->count; i++) {
        uint64_t ino;
        uint32_t state;
        proto_lease_entry_get(m, i, &ino, &state);
        if (state < PROTO_LEASE_HELD || state > PROTO_LEASE_LOST)
            return -EPROTO;
    }
    return 0;
}

void proto_lease_entry_put(struct proto_wbuf *w, uint64_t ino, uint32_t state)
{
    proto_put_u64(w, ino);
    proto_put_u32(w, state);
}

void proto_lease_entry_get(const struct proto_image_lease_wait *m, uint32_t i,
                           uint64_t *ino, uint32_t *state)
{
    struct proto_rbuf r;

    proto_rbuf_init(&r, m->raw.p + (size_t)i * PROTO_LEASE_ENTRY_SIZE,
                    PROTO_LEASE_ENTRY_SIZE);
    *ino = proto_get_u64(&r);
    *state = proto_get_u32(&r);
}

void proto_image_lease_wait_encode(struct proto_wbuf *w,
                                   const struct proto_image_lease_wait *m)
{
    if (!proto_wbuf_check(w, lease_wait_check(m)))
        return;
    proto_put_u32(w, m->timeout_ms);
    proto_put_u32(w, m->count);
    if (m->raw.len)
        proto_put_raw(w, m->raw.p, m->raw.len);
}

int proto_image_lease_wait_decode(const uint8_t *p, size_t n,
                                  struct proto_image_lease_wait *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->timeout_ms = proto_get_u32(&r);
    m->count = proto_get_u32(&r);
    if (r.err || m->count > PROTO_LEASE_WAIT_MAX)
        return -EPROTO;
    size_t want = (size_t)m->count * PROTO_LEASE_ENTRY_SIZE;
    if (n - r.off != want)
        return -EPROTO;
    m->raw.len = (uint32_t)want;
    m->raw.p = (const char *)proto_get_raw(&r, want);
    return proto_rbuf_finish(&r, lease_wait_check(m));
}
