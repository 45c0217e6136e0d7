/* meta_srv_group.c: the metad group as the admin tool sees it:
 * META_STATUS (docs/protocol.md §10.3), which every replica answers,
 * leader or not, and META_MEMBER, which the leader turns into a raft
 * membership change (meta_raft.c) and a members record (meta_member.c).
 *
 * META_STATUS keys: meta.id (this replica; 1 for a single metad), leader
 * (its id, 0 when none is known), leading (1 on the leader), term,
 * commit, applied, last_index, then per member "member.<id>" =
 * "<client address> <raft address> voter|spare" ("-" for an address not
 * known: a replica's client address is recorded when it first leads or
 * is added with META_MEMBER).  A single metad answers as a group of one
 * whose counters are 0.
 *
 * META_MEMBER ADD: raft adds the replica as a spare, sends it the log or
 * a snapshot, then makes it a voter; the record of its addresses follows
 * and the reply comes once both are committed.  REMOVE: raft removes it,
 * then its record goes.  Failure modes: ENOTLEADER on a follower (as for
 * any request); EBUSY while another change is in progress; EINVAL for an
 * id or address raft refuses; ENOENT for an unknown id.
 */
#include "meta_srv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

/* One "member.<id>" pair.  A replica knows its own client address even
 * before it is recorded. */
static void member_kv(struct meta_srv *srv, struct meta_srv_kv *o,
                      const struct meta_raft_member *m, uint64_t self)
{
    struct meta_member rec;
    char key[48], value[600];
    const char *client = m->id == self ? srv->listen : "-";

    if (meta_member_get(srv->db, m->id, &rec) == 0 && rec.client_addr[0])
        client = rec.client_addr;
    snprintf(key, sizeof(key), "member.%" PRIu64, m->id);
    snprintf(value, sizeof(value), "%s %s %s", client,
             m->raft_addr[0] ? m->raft_addr : "-",
             m->voter ? "voter" : "spare");
    meta_srv_kv(o, key, value);
}

void meta_srv_meta_status(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct meta_raft_info info;
    struct meta_srv_kv o;

    (void)payload; /* META_STATUS_REQ has an empty body */
    (void)len;
    memset(&info, 0, sizeof(info));
    if (srv->raft) {
        meta_raft_info(srv->raft, &info);
    } else {
        info.id = info.leader_id = 1;
        info.nmembers = 1;
        info.members[0] = (struct meta_raft_member){.id = 1, .voter = true};
    }
    proto_wbuf_init(&o.w);
    o.n = 0;
    meta_srv_kv_u64(&o, "meta.id", info.id);
    meta_srv_kv_u64(&o, "leader", info.leader_id);
    meta_srv_kv_u64(&o, "leading", srv->leading);
    meta_srv_kv_u64(&o, "term", info.term);
    meta_srv_kv_u64(&o, "commit", info.commit);
    meta_srv_kv_u64(&o, "applied", info.applied);
    meta_srv_kv_u64(&o, "last_index", info.last_index);
    for (size_t i = 0; i < info.nmembers; i++)
        member_kv(srv, &o, &info.members[i], info.id);
    meta_srv_kv_reply(c->peer, req_id, PROTO_MSG_META_STATUS_REQ, &o);
}

/* A META_MEMBER request on its way: the raft change, then the record. */
struct member_job {
    struct meta_propose req; /* req.data is this job */
    struct meta_srv *srv;
    struct peer *peer; /* referenced */
    uint64_t req_id;
    struct meta_op_member rec;
    char raft_addr[256], client_addr[256];
};

static void job_end(struct member_job *j, int status)
{
    if (!peer_is_closed(j->peer))
        meta_srv_reply(j->peer, j->req_id, PROTO_MSG_META_MEMBER_REQ, status,
                       NULL);
    peer_unref(j->peer);
    free(j);
}

static void on_recorded(struct meta_propose *req, int status,
                        const struct proto_wbuf *result)
{
    struct member_job *j = req->data;

    (void)result;
    log_info("metad: group member %s: id=%" PRIu64 " raft=%s client=%s: %s",
             j->rec.raft_addr.len ? "added" : "removed", j->rec.id,
             j->raft_addr, j->client_addr, status ? strerror(-status) : "ok");
    job_end(j, status);
}

static void on_changed(void *arg, int status)
{
    struct member_job *j = arg;
    struct proto_wbuf w;

    if (status == 0) {
        proto_wbuf_init(&w);
        meta_op_member_encode(&w, &j->rec);
        status = w.err;
        if (status == 0)
            status = meta_srv_apply(j->srv, &j->req, META_OP_MEMBER, 0, w.p,
                                    w.len, on_recorded);
        proto_wbuf_free(&w);
        if (status == 0)
            return;
    }
    job_end(j, status);
}

void meta_srv_meta_member(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct proto_meta_member_req q;
    struct member_job *j;
    int rc = proto_meta_member_req_decode(payload, len, &q);

    if (rc == 0 && !c->srv->raft)
        rc = -EOPNOTSUPP; /* a single metad: start it with --raft */
    j = rc == 0 ? calloc(1, sizeof(*j)) : NULL;
    if (rc == 0 && !j)
        rc = -ENOMEM;
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_META_MEMBER_REQ, rc, NULL);
        return;
    }
    j->req.data = j;
    j->srv = c->srv;
    j->peer = c->peer;
    j->req_id = req_id;
    snprintf(j->raft_addr, sizeof(j->raft_addr), "%.*s", (int)q.raft_addr.len,
             q.raft_addr.p);
    snprintf(j->client_addr, sizeof(j->client_addr), "%.*s",
             (int)q.client_addr.len, q.client_addr.p);
    j->rec.id = q.id;
    j->rec.raft_addr =
        (struct proto_str){j->raft_addr, (uint32_t)strlen(j->raft_addr)};
    j->rec.client_addr =
        (struct proto_str){j->client_addr, (uint32_t)strlen(j->client_addr)};
    peer_ref(j->peer);
    rc = q.op == PROTO_META_MEMBER_ADD
             ? meta_raft_member_add(c->srv->raft, q.id, j->raft_addr,
                                    on_changed, j)
             : meta_raft_member_remove(c->srv->raft, q.id, on_changed, j);
    if (rc < 0)
        job_end(j, rc);
}
