/* meta_srv_image.c: SNAPSHOT_REQ, CLONE_REQ and IMAGE_ROLLBACK_REQ in the
 * daemon (docs/vmdisk.md, "Snapshots and clones", "Rollback").
 *
 * A rollback goes the same way with the image frozen instead of the
 * source: leased chunks of the image are bumped, so that a client still
 * holding a write lease on one is refused (EOLDVER) and asks again, and
 * finds the slot naming the snapshot's chunk, which it copies.  A rollback
 * of an image whose writer lease a session holds is refused (EBUSY).
 *
 * Happy path: freeze the source file (meta_srv_write_freeze: its new
 * WRITE_BEGINs wait, and every chunk of it a writer holds a lease on is
 * bumped so that the old lease is useless), apply the request as an
 * operation record (meta_image.c shares the chunks, metadata only), answer
 * with the new file's attributes, lift the freeze.  The requests that
 * waited then find their chunks shared and get copies.  With no write
 * going on the freeze finishes at once and the request is answered in the
 * same loop turn.
 *
 * Failure modes:
 *  - a bump fails (no replica of a leased chunk reachable): the snapshot
 *    is refused with that error (EIO) rather than taken while a writer
 *    may still change a chunk it would share.
 *  - the record fails (ENOENT, EEXIST, EACCES, EISDIR, ...): answered as
 *    is; bumped versions cost the writers one more WRITE_BEGIN, no more.
 *  - the requester disconnects meanwhile: the snapshot is still taken, the
 *    answer dropped (the job holds a reference on the peer).
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct snap_job {
    struct meta_srv *srv;
    struct peer *peer; /* a reference */
    uint64_t req_id, session_id;
    uint16_t opcode;
    uint64_t ino;
    struct meta_propose req; /* the SNAPSHOT or CLONE record */
    size_t len;
    uint8_t payload[];
};

/* Answer, lift the freeze, done. */
static void snap_finish(struct snap_job *j, int rc,
                        const struct proto_wbuf *reply)
{
    meta_srv_reply(j->peer, j->req_id, j->opcode, rc, reply);
    meta_srv_write_thaw(j->srv, j);
    peer_unref(j->peer);
    free(j);
}

static void on_snap_applied(struct meta_propose *req, int rc,
                            const struct proto_wbuf *result)
{
    snap_finish(req->data, rc, result);
}

static void snap_frozen(void *arg, int rc)
{
    struct snap_job *j = arg;
    struct meta_srv *srv = j->srv;

    if (rc == 0 && srv->stopping)
        rc = -ECONNRESET;
    if (rc == 0) {
        j->req.data = j;
        /* docs/protocol.md §5.4: the record carries the request id, so
         * that the request sent again is answered as the first time. */
        rc = meta_srv_apply_request(srv, &j->req, j->opcode, j->session_id,
                                    j->req_id, j->payload, j->len,
                                    on_snap_applied);
        if (rc == 0)
            return;
    } else {
        log_warn("metad: %s: freezing the source failed: %s ino=%llu",
                 proto_msg_name(j->opcode), strerror(-rc),
                 (unsigned long long)j->ino);
    }
    snap_finish(j, rc, NULL);
}

/* Freeze file @ino, then apply the request as a record (snap_frozen). */
static void freeze_and_apply(struct meta_srv_conn *c, uint16_t opcode,
                             uint64_t req_id, const uint8_t *payload,
                             size_t len, uint64_t ino)
{
    struct snap_job *j;
    int rc;

    j = malloc(sizeof(*j) + len);
    if (!j) {
        meta_srv_reply(c->peer, req_id, opcode, -ENOMEM, NULL);
        return;
    }
    j->srv = c->srv;
    j->peer = c->peer;
    peer_ref(j->peer);
    j->req_id = req_id;
    j->session_id = c->session_id;
    j->opcode = opcode;
    j->ino = ino;
    j->len = len;
    if (len)
        memcpy(j->payload, payload, len);
    rc = meta_srv_write_freeze(c->srv, ino, snap_frozen, j);
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, opcode, rc, NULL);
        peer_unref(j->peer);
        free(j);
    }
}

static void snapshot_or_clone(struct meta_srv_conn *c, uint16_t opcode,
                              uint64_t req_id, const uint8_t *payload,
                              size_t len)
{
    struct proto_snapshot_req q;
    int rc = proto_snapshot_req_decode(payload, len, &q);

    if (rc < 0)
        meta_srv_reply(c->peer, req_id, opcode, rc, NULL);
    else
        freeze_and_apply(c, opcode, req_id, payload, len, q.ino);
}

void meta_srv_image_snapshot(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len)
{
    snapshot_or_clone(c, PROTO_MSG_SNAPSHOT_REQ, req_id, payload, len);
}

void meta_srv_image_clone(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    snapshot_or_clone(c, PROTO_MSG_CLONE_REQ, req_id, payload, len);
}

/* docs/vmdisk.md "Rollback": refused (EBUSY) while a session holds the
 * image's writer lease, since that writer (a running VM) would go on
 * writing into a disk whose content changed under it. */
void meta_srv_image_rollback(struct meta_srv_conn *c, uint64_t req_id,
                             const uint8_t *payload, size_t len)
{
    const uint16_t opcode = PROTO_MSG_IMAGE_ROLLBACK_REQ;
    struct proto_image_pair_req q;
    int rc = proto_image_pair_req_decode(payload, len, &q);

    if (rc == 0 && meta_srv_lease_holder(c->srv, q.ino) != 0)
        rc = -EBUSY;
    if (rc < 0)
        meta_srv_reply(c->peer, req_id, opcode, rc, NULL);
    else
        freeze_and_apply(c, opcode, req_id, payload, len, q.ino);
}
