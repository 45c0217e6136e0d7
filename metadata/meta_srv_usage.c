/* meta_srv_usage.c: CHUNK_USAGE_REQ, a storage server saying how many bytes
 * some of its replicas take on its disk (docs/protocol.md §9.5).
 *
 * Happy path: the figures of the chunks whose chain this server leads,
 * and that differ from the recorded ones, become one META_OP_CHUNK_USAGE
 * record (held back to share the next record's log write: nothing waits
 * for it); once it is applied the files holding those chunks (each
 * chunk's first slot) get their attribute promises broken, so a client
 * caching st_blocks asks again.  The reply goes out at once.
 *
 * What is left out, and why: figures of the other replicas (one figure per
 * chunk, the chain's first, so that a record is made once per change and
 * not once per copy); chunks the database does not know (deleted, or not
 * recorded yet: the server reports again after its next change or
 * registration); unchanged figures (every registration reports them all).
 *
 * Failure modes: a record that cannot be proposed or applied is logged
 * and dropped; the server's next change or registration reports again.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

/* One record of figures being proposed; freed once applied. */
struct usage_job {
    struct meta_propose req; /* req.data is this job */
    struct meta_srv *srv;
    uint64_t inos[META_OP_USAGE_MAX]; /* the file of each figure */
    struct meta_op_chunk_usage rec;
};

static void on_usage_applied(struct meta_propose *req, int status,
                             const struct proto_wbuf *result)
{
    struct usage_job *j = req->data;

    (void)result; /* empty */
    if (status < 0) {
        log_warn("metad: chunk usage: record failed: %s figures=%u",
                 strerror(-status), j->rec.n);
    } else {
        for (uint32_t i = 0; i < j->rec.n; i++)
            if (i == 0 || j->inos[i] != j->inos[i - 1])
                meta_srv_cb_break_attr(j->srv, j->inos[i]);
    }
    free(j);
}

/* Add entry @e of server @server_id to @j when it is the chain's first
 * replica and its figure is new. */
static void usage_take(struct usage_job *j, uint32_t server_id,
                       const struct proto_usage_entry *e)
{
    struct meta_chunk ch;
    int64_t cur;

    if (meta_chunk_get(j->srv->db, e->chunk_id, &ch) < 0 || ch.nreplicas == 0 ||
        ch.servers[0] != server_id)
        return;
    if (meta_chunk_usage(j->srv->db, e->chunk_id, &cur) < 0 ||
        (cur >= 0 && (uint64_t)cur == e->bytes))
        return;
    j->inos[j->rec.n] = ch.ino;
    j->rec.v[j->rec.n++] = *e;
}

static int usage_propose(struct usage_job *j)
{
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    meta_op_chunk_usage_encode(&w, &j->rec);
    j->req.data = j;
    rc = w.err;
    if (rc == 0)
        rc = meta_srv_apply(j->srv, &j->req, META_OP_CHUNK_USAGE, 0, w.p, w.len,
                            on_usage_applied);
    proto_wbuf_free(&w);
    return rc;
}

void meta_srv_chunk_usage(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct proto_chunk_usage_req q;
    struct proto_usage_entry e;
    struct usage_job *j = NULL;
    int rc;

    rc = proto_chunk_usage_req_decode(payload, len, &q);
    if (rc == 0 && !meta_srv_server_bound(c, q.server_id))
        rc = -ENOENT;
    if (rc == 0 && q.count > 0 && !(j = calloc(1, sizeof(*j))))
        rc = -ENOMEM;
    meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_USAGE_REQ, rc, NULL);
    if (!j)
        return;
    j->srv = c->srv;
    for (uint32_t i = 0; i < q.count; i++) {
        proto_usage_entry_get(&q, i, &e);
        usage_take(j, q.server_id, &e);
    }
    if (j->rec.n == 0) {
        free(j);
        return;
    }
    log_debug("meta.usage", "record: server=%u figures=%u", q.server_id,
              j->rec.n);
    rc = usage_propose(j);
    if (rc < 0)
        on_usage_applied(&j->req, rc, NULL);
}
