/* meta_srv_report.c: CHUNK_REPORT_REQ, a storage server or a client saying
 * that one replica of a chunk is bad (docs/protocol.md §11.4).
 *
 * Happy path without a write lease: the replica leaves the chunk's replica
 * set and is listed for deletion (META_OP_REPLICA_DROP); repair then
 * restores the goal from the survivors.  With a live write lease (a client
 * was writing and one server of its chain failed) the survivors are bumped
 * first, as WRITE_BEGIN does: CHUNK_SETVERSION {v -> v+1} to every other
 * replica that is not down; the ones that answered form the new replica
 * set (META_OP_CHUNK_SET), so the bad replica is stale from then on even
 * if it comes back.  Either way the lease ends: the client's next
 * WRITE_BEGIN bumps again and gets a chain without the bad server.
 *
 *   received --> (no lease) --> DROP --> reply
 *       \--> (lease) --> BUMP (SETVERSIONs out) --> SET --> reply
 *
 *   FROM      -> TO     [function]
 *   received  -> DROP   [meta_srv_chunk_report: report_drop]
 *   received  -> BUMP   [meta_srv_chunk_report: bump_start]
 *   BUMP      -> SET    [on_bumped: last answer in, bump_decide]
 *   SET/DROP  -> reply  [on_recorded, once the record is applied]
 *
 * Failure modes: a report for a chunk or version the database no longer
 * has, or for a server that holds no replica, is already satisfied (0).
 * The last replica is never dropped: it is all there is (0, logged).
 * A WRITE_BEGIN, a repair copy or another report in flight on the chunk:
 * EAGAIN, the reporter tries again (and then finds the first report's
 * outcome: a duplicate costs no record and no log line).  No survivor answers
 * the bump: the replica is dropped without one.
 *
 * Invariant 1: r->pending counts SETVERSION callbacks not yet run, plus
 * one while bump_start is still sending.
 */
#include "meta_srv.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

struct meta_srv_report;

struct report_target {
    struct meta_srv_report *r;
    uint32_t server_id;
    int status;
};

struct meta_srv_report {
    struct meta_srv *srv;
    struct peer *peer; /* the reporter: a reference */
    uint64_t req_id;
    struct meta_chunk ch;
    uint32_t bad;
    uint32_t pending;
    uint32_t ntargets;
    struct report_target t[PROTO_MAX_REPLICAS];
    bool bumped;                  /* the record follows a version bump */
    uint32_t survivors;           /* replicas that took the bump */
    struct meta_propose req;      /* the record of the outcome */
    struct meta_srv_report *next; /* srv->reports */
};

/* Is a report about @chunk_id being acted on? */
static bool report_busy(struct meta_srv *srv, uint64_t chunk_id)
{
    for (struct meta_srv_report *r = srv->reports; r; r = r->next)
        if (r->ch.chunk_id == chunk_id)
            return true;
    return false;
}

static void report_finish(struct meta_srv_report *r, int rc)
{
    struct meta_srv_report **pp;

    for (pp = &r->srv->reports; *pp && *pp != r; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = r->next;
    if (rc == -ESTALE)
        rc = -EAGAIN;
    meta_srv_reply(r->peer, r->req_id, PROTO_MSG_CHUNK_REPORT_REQ, rc, NULL);
    peer_unref(r->peer);
    free(r);
}

static void on_recorded(struct meta_propose *req, int rc,
                        const struct proto_wbuf *result)
{
    struct meta_srv_report *r = req->data;
    uint32_t n = r->survivors;

    (void)result; /* empty */
    if (rc == 0 && r->bumped) {
        meta_srv_write_lease_end(r->srv, r->ch.chunk_id);
        log_info("metad: chunk report: replica dropped, survivors bumped: "
                 "chunk=%016llx version=%llu->%llu server=%u survivors=%u",
                 (unsigned long long)r->ch.chunk_id,
                 (unsigned long long)r->ch.version,
                 (unsigned long long)(n ? r->ch.version + 1 : r->ch.version),
                 r->bad, n);
    } else if (rc == 0) {
        log_info("metad: chunk report: replica dropped: chunk=%016llx "
                 "version=%llu server=%u",
                 (unsigned long long)r->ch.chunk_id,
                 (unsigned long long)r->ch.version, r->bad);
    }
    report_finish(r, rc);
}

/* Propose the record in @payload (an internal @opcode); on_recorded()
 * answers the reporter. */
static void report_record(struct meta_srv_report *r, uint16_t opcode,
                          const struct proto_wbuf *payload)
{
    int rc = payload->err;

    r->req.data = r;
    if (rc == 0)
        rc = meta_srv_apply(r->srv, &r->req, opcode, 0, payload->p,
                            payload->len, on_recorded);
    if (rc < 0)
        report_finish(r, rc);
}

/* Drop the reported replica: r->bad's copy of r->ch. */
static void report_drop(struct meta_srv_report *r)
{
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    meta_op_replica_encode(&w,
                           &(struct meta_op_replica){.chunk_id = r->ch.chunk_id,
                                                     .version = r->ch.version,
                                                     .server_id = r->bad});
    report_record(r, META_OP_REPLICA_DROP, &w);
    proto_wbuf_free(&w);
}

/* Every SETVERSION answered: the survivors that did are the new set. */
static void bump_decide(struct meta_srv_report *r)
{
    struct meta_srv *srv = r->srv;
    struct proto_wbuf w;
    uint32_t n = 0;

    if (srv->stopping) {
        report_finish(r, -ECONNRESET);
        return;
    }
    for (uint32_t i = 0; i < r->ntargets; i++)
        n += r->t[i].status == 0;
    r->bumped = true;
    r->survivors = n;
    if (n == 0) {
        report_drop(r);
        return;
    }
    struct meta_op_chunk_set m = {
        .ino = r->ch.ino,
        .index = r->ch.index,
        .chunk_id = r->ch.chunk_id,
        .old_version = r->ch.version,
        .new_version = r->ch.version + 1,
    };
    for (uint32_t i = 0; i < r->ntargets; i++)
        if (r->t[i].status == 0)
            m.set.servers[m.set.n++] = r->t[i].server_id;
    proto_wbuf_init(&w);
    meta_op_chunk_set_encode(&w, &m);
    report_record(r, META_OP_CHUNK_SET, &w);
    proto_wbuf_free(&w);
}

static void on_bumped(struct peer *p, int status, const uint8_t *payload,
                      size_t len, void *arg)
{
    struct report_target *t = arg;
    struct meta_srv_report *r = t->r;

    (void)p;
    (void)payload;
    (void)len;
    t->status = status;
    assert(r->pending > 0); /* invariant 1 */
    if (--r->pending == 0)
        bump_decide(r);
}

static void bump_start(struct meta_srv_report *r)
{
    struct meta_srv *srv = r->srv;
    struct proto_chunk_setversion_req req = {
        .chunk_id = r->ch.chunk_id,
        .old_version = r->ch.version,
        .new_version = r->ch.version + 1,
    };
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_setversion_req_encode(&w, &req);
    r->pending = 1; /* invariant 1: held while sending */
    for (uint32_t i = 0; i < r->ch.nreplicas; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, r->ch.servers[i]);
        uint32_t k;

        if (r->ch.servers[i] == r->bad || !s || !meta_srv_server_alive(srv, s))
            continue;
        k = r->ntargets++;
        r->t[k].r = r;
        r->t[k].server_id = s->id;
        r->t[k].status = -EHOSTUNREACH;
        if (w.err)
            continue;
        r->pending++;
        if (peer_request(s->peer, PROTO_MSG_CHUNK_SETVERSION_REQ, w.p, w.len,
                         META_SRV_CTL_TIMEOUT_MS, on_bumped, &r->t[k]) < 0)
            r->pending--;
    }
    proto_wbuf_free(&w);
    if (--r->pending == 0)
        bump_decide(r);
}

void meta_srv_chunk_report(struct meta_srv_conn *c, uint64_t req_id,
                           const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_chunk_report_req req;
    struct meta_chunk ch;
    struct meta_srv_report *r;
    bool listed = false;
    int rc;

    rc = proto_chunk_report_req_decode(payload, len, &req);
    if (rc == 0)
        rc = meta_chunk_get(srv->db, req.chunk_id, &ch);
    if (rc == 0)
        for (uint32_t i = 0; i < ch.nreplicas; i++)
            listed |= ch.servers[i] == req.server_id;
    if (rc == -ENOENT || (rc == 0 && (!listed || req.version < ch.version))) {
        /* Already gone or already stale. */
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_REPORT_REQ, 0, NULL);
        return;
    }
    if (rc == 0 && ch.nreplicas == 1) {
        log_warn("metad: chunk report: keeping the last replica: "
                 "chunk=%016llx server=%u",
                 (unsigned long long)ch.chunk_id, req.server_id);
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_REPORT_REQ, 0, NULL);
        return;
    }
    /* The same replica reported again (many readers met it) while the
     * first report is acted on: EAGAIN, and the retry finds it done. */
    if (rc == 0 && (meta_srv_write_pending(srv, ch.chunk_id) ||
                    meta_srv_repair_busy(srv, ch.chunk_id) ||
                    report_busy(srv, ch.chunk_id)))
        rc = -EAGAIN;
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_REPORT_REQ, rc, NULL);
        return;
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_REPORT_REQ, -ENOMEM,
                       NULL);
        return;
    }
    r->srv = srv;
    r->peer = c->peer;
    peer_ref(r->peer);
    r->req_id = req_id;
    r->ch = ch;
    r->bad = req.server_id;
    r->next = srv->reports;
    srv->reports = r;
    log_warn("metad: chunk report: bad replica: chunk=%016llx version=%llu "
             "server=%u reason=%u peer=%s",
             (unsigned long long)req.chunk_id, (unsigned long long)req.version,
             req.server_id, req.reason, peer_name(c->peer));
    if (meta_srv_write_busy(srv, ch.chunk_id))
        bump_start(r);
    else
        report_drop(r);
}
