/* proto_manage.c: codecs for replication management (docs/protocol.md §11):
 * GOAL_SET, CHUNK_REPLICATE, SCRUB_START, CHUNK_REPORT, SERVER_CTL,
 * ADMIN_ACTION and the SERVER_STATE notification.
 *
 * Enumerated fields (reason, action, state) are checked against their
 * closed lists: an unknown value is -EPROTO, like an unknown flag.
 */
#include "proto_internal.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

void proto_goal_set_req_encode(struct proto_wbuf *w,
                               const struct proto_goal_set_req *m)
{
    proto_cred_put(w, &m->cred);
    proto_put_u64(w, m->ino);
    proto_put_u32(w, m->goal);
    proto_put_u32(w, m->flags);
}

int proto_goal_set_req_decode(const uint8_t *p, size_t n,
                              struct proto_goal_set_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    rc = proto_cred_get(&r, &m->cred);
    m->ino = proto_get_u64(&r);
    m->goal = proto_get_u32(&r);
    m->flags = proto_get_u32(&r);
    if (rc == 0 && ((m->flags & ~PROTO_GOAL_MASK) || m->goal == 0 ||
                    m->goal > PROTO_GOAL_MAX))
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_goal_set_rep_encode(struct proto_wbuf *w,
                               const struct proto_goal_set_rep *m)
{
    proto_put_u64(w, m->changed);
}

int proto_goal_set_rep_decode(const uint8_t *p, size_t n,
                              struct proto_goal_set_rep *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->changed = proto_get_u64(&r);
    return proto_rbuf_done(&r);
}

void proto_chunk_replicate_req_encode(struct proto_wbuf *w,
                                      const struct proto_chunk_replicate_req *m)
{
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_replicas_put(w, &m->source, 1);
}

int proto_chunk_replicate_req_decode(const uint8_t *p, size_t n,
                                     struct proto_chunk_replicate_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    rc = proto_replicas_get(&r, &m->source, 1);
    return proto_rbuf_finish(&r, rc);
}

void proto_scrub_start_req_encode(struct proto_wbuf *w,
                                  const struct proto_scrub_start_req *m)
{
    proto_put_u32(w, m->rate_mb);
}

int proto_scrub_start_req_decode(const uint8_t *p, size_t n,
                                 struct proto_scrub_start_req *m)
{
    struct proto_rbuf r;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->rate_mb = proto_get_u32(&r);
    return proto_rbuf_done(&r);
}

void proto_scrub_status_req_encode(struct proto_wbuf *w,
                                   const struct proto_scrub_status_req *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u8(w, m->running);
    proto_put_u64(w, m->passes);
    proto_put_u64(w, m->chunks);
    proto_put_u64(w, m->total);
    proto_put_u64(w, m->bytes);
    proto_put_u64(w, m->errors);
    proto_put_u64(w, (uint64_t)m->start_s);
    proto_put_u64(w, (uint64_t)m->end_s);
}

static_assert(PROTO_SCRUB_STATUS_SIZE == 4 + 1 + 7 * 8,
              "SCRUB_STATUS_REQ layout");

int proto_scrub_status_req_decode(const uint8_t *p, size_t n,
                                  struct proto_scrub_status_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    if (n != PROTO_SCRUB_STATUS_SIZE)
        return -EPROTO;
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->running = proto_get_u8(&r);
    m->passes = proto_get_u64(&r);
    m->chunks = proto_get_u64(&r);
    m->total = proto_get_u64(&r);
    m->bytes = proto_get_u64(&r);
    m->errors = proto_get_u64(&r);
    m->start_s = (int64_t)proto_get_u64(&r);
    m->end_s = (int64_t)proto_get_u64(&r);
    rc = proto_rbuf_done(&r);
    if (rc == 0 && m->running > 1)
        rc = -EPROTO;
    return rc;
}

void proto_chunk_report_req_encode(struct proto_wbuf *w,
                                   const struct proto_chunk_report_req *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u64(w, m->chunk_id);
    proto_put_u64(w, m->version);
    proto_put_u32(w, m->reason);
}

int proto_chunk_report_req_decode(const uint8_t *p, size_t n,
                                  struct proto_chunk_report_req *m)
{
    struct proto_rbuf r;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->chunk_id = proto_get_u64(&r);
    m->version = proto_get_u64(&r);
    m->reason = proto_get_u32(&r);
    if (m->reason < PROTO_REPORT_CHECKSUM || m->reason > PROTO_REPORT_WRITE)
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_server_ctl_req_encode(struct proto_wbuf *w,
                                 const struct proto_server_ctl_req *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u32(w, m->action);
}

int proto_server_ctl_req_decode(const uint8_t *p, size_t n,
                                struct proto_server_ctl_req *m)
{
    struct proto_rbuf r;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->action = proto_get_u32(&r);
    if (m->action < PROTO_SERVER_DRAIN || m->action > PROTO_SERVER_REMOVE)
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_admin_action_req_encode(struct proto_wbuf *w,
                                   const struct proto_admin_action_req *m)
{
    proto_put_u32(w, m->action);
    proto_put_u32(w, m->arg);
}

int proto_admin_action_req_decode(const uint8_t *p, size_t n,
                                  struct proto_admin_action_req *m)
{
    struct proto_rbuf r;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->action = proto_get_u32(&r);
    m->arg = proto_get_u32(&r);
    if (m->action < PROTO_ADMIN_SCRUB || m->action > PROTO_ADMIN_PROGRESS)
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_meta_member_req_encode(struct proto_wbuf *w,
                                  const struct proto_meta_member_req *m)
{
    proto_put_u32(w, m->op);
    proto_put_u64(w, m->id);
    proto_put_str(w, m->raft_addr.p, m->raft_addr.len);
    proto_put_str(w, m->client_addr.p, m->client_addr.len);
}

/* docs/protocol.md §10.3: an add names both addresses, a remove neither. */
int proto_meta_member_req_decode(const uint8_t *p, size_t n,
                                 struct proto_meta_member_req *m)
{
    struct proto_rbuf r;
    bool add;
    int rc = 0;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->op = proto_get_u32(&r);
    m->id = proto_get_u64(&r);
    proto_str_get(&r, &m->raft_addr);
    proto_str_get(&r, &m->client_addr);
    add = m->op == PROTO_META_MEMBER_ADD;
    if ((!add && m->op != PROTO_META_MEMBER_REMOVE) || m->id == 0 ||
        (add != (m->raft_addr.len > 0)) || (add != (m->client_addr.len > 0)))
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}

void proto_server_state_req_encode(struct proto_wbuf *w,
                                   const struct proto_server_state_req *m)
{
    proto_put_u32(w, m->server_id);
    proto_put_u32(w, m->state);
    proto_put_str(w, m->addr.p, m->addr.len);
}

int proto_server_state_req_decode(const uint8_t *p, size_t n,
                                  struct proto_server_state_req *m)
{
    struct proto_rbuf r;
    int rc;

    memset(m, 0, sizeof(*m));
    proto_rbuf_init(&r, p, n);
    m->server_id = proto_get_u32(&r);
    m->state = proto_get_u32(&r);
    rc = proto_str_get(&r, &m->addr);
    if (rc == 0 &&
        (m->state < PROTO_SERVER_UP || m->state > PROTO_SERVER_REMOVED))
        rc = -EPROTO;
    return proto_rbuf_finish(&r, rc);
}
