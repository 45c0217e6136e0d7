/* chunk_dispatch.c: message id -> handler, and how answers go out.
 *
 * Every connection of the daemon (clients and upstream servers that
 * dialled us, the downstream servers we dialled, and the metad link)
 * delivers its requests here.  PING is answered on the spot; the chunk
 * messages go to their handler files, which decode, queue disk work and
 * answer later.  Requests the chunk server does not serve are answered
 * ENOSYS.
 *
 * Errors: the store says -ESTALE for a version mismatch and -EBADMSG for a
 * checksum failure; on the wire these are Tessera's own PROTO_EOLDVER and
 * PROTO_ECHECKSUM (docs/architecture.md "Writing"), which no host errno
 * maps to, so they are sent with peer_reply_wire().
 */
#include "chunk_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lat.h"
#include "log.h"

static const struct {
    uint16_t opcode;
    chunk_handler_cb fn;
} handlers[] = {
    {PROTO_MSG_CHUNK_READ_REQ, chunk_read_handle},
    {PROTO_MSG_CHUNK_WRITE_REQ, chunk_write_handle},
    {PROTO_MSG_CHUNK_SYNC_REQ, chunk_sync_handle},
    {PROTO_MSG_CHUNK_SETVERSION_REQ, chunk_setversion_handle},
    {PROTO_MSG_CHUNK_TRUNCATE_REQ, chunk_truncate_handle},
    {PROTO_MSG_CHUNK_DELETE_REQ, chunk_delete_handle},
    {PROTO_MSG_CHUNK_CLONE_REQ, chunk_clone_handle},
    {PROTO_MSG_CHUNK_WMAP_REQ, chunk_wmap_handle},
    {PROTO_MSG_CHUNK_DATAMAP_REQ, chunk_datamap_handle},
    {PROTO_MSG_CHUNK_CRCS_REQ, chunk_crcs_handle},
    {PROTO_MSG_CHUNK_REPLICATE_REQ, chunk_replicate_handle},
    {PROTO_MSG_SCRUB_START_REQ, chunk_scrub_handle},
};

struct chunk_server *chunk_server_of(struct peer *p)
{
    struct chunk_server *srv = peer_data(p);

    return srv ? srv : peer_get_listener_data(p);
}

static int32_t to_wire(int status)
{
    if (status == -ESTALE)
        return PROTO_EOLDVER;
    if (status == -EBADMSG)
        return PROTO_ECHECKSUM;
    return proto_err_to_wire(status);
}

void chunk_reply(struct peer *p, uint16_t opcode, uint64_t req_id, int status,
                 const void *payload, size_t len)
{
    int rc = peer_reply_wire(p, req_id, opcode, to_wire(status), payload, len);

    if (rc < 0)
        log_warn("chunk reply: send failed: op=%s err=%d peer=%s",
                 proto_msg_name(opcode), rc, peer_name(p));
}

/* From a request's arrival to its answer, by kind; dumped on SIGUSR1. */
static struct lat_stage st_read = {.name = "chunk.read"};
static struct lat_stage st_write = {.name = "chunk.write"};
static struct lat_stage st_sync = {.name = "chunk.sync"};

static struct lat_stage *stage_of(uint16_t opcode)
{
    switch (opcode) {
    case PROTO_MSG_CHUNK_READ_REQ:
        return &st_read;
    case PROTO_MSG_CHUNK_WRITE_REQ:
        return &st_write;
    case PROTO_MSG_CHUNK_SYNC_REQ:
        return &st_sync;
    default:
        return NULL;
    }
}

void chunk_stats_register(void)
{
    lat_stage_register(&st_read);
    lat_stage_register(&st_write);
    lat_stage_register(&st_sync);
    chunk_job_stats_register();
}

void chunk_req_start(struct chunk_req *r, struct peer *p, uint16_t opcode,
                     uint64_t req_id)
{
    peer_ref(p);
    r->p = p;
    r->req_id = req_id;
    r->rep_opcode = (uint16_t)(opcode + 1);
    r->stage = stage_of(opcode);
    r->t0 = r->stage ? lat_now_ns() : 0;
}

void chunk_req_finish(struct chunk_req *r, int status, const void *payload,
                      size_t len)
{
    chunk_reply(r->p, r->rep_opcode, r->req_id, status, payload, len);
    if (r->stage)
        lat_hist_record_since(&r->stage->h, r->t0);
    peer_unref(r->p);
    r->p = NULL;
}

static void ping_handle(struct peer *p, uint64_t req_id, const uint8_t *payload,
                        size_t len)
{
    struct proto_ping ping;
    struct proto_wbuf w;
    int rc = proto_ping_decode(payload, len, &ping);

    if (rc < 0) {
        chunk_reply(p, PROTO_MSG_PING_REP, req_id, rc, NULL, 0);
        return;
    }
    proto_wbuf_init(&w);
    proto_ping_encode(&w, &ping);
    chunk_reply(p, PROTO_MSG_PING_REP, req_id, w.err, w.p, w.len);
    proto_wbuf_free(&w);
}

void chunk_dispatch(struct peer *p, uint16_t opcode, uint64_t req_id,
                    const uint8_t *payload, size_t len)
{
    struct chunk_server *srv = chunk_server_of(p);

    log_debug("chunk.dispatch",
              "chunk request: op=%s req=%llu len=%zu "
              "peer=%s",
              proto_msg_name(opcode) ? proto_msg_name(opcode) : "?",
              (unsigned long long)req_id, len, peer_name(p));
    int rc = chunk_auth_allowed(srv, p, opcode);
    if (rc < 0) {
        /* docs/security.md: beyond the ticket's rights. */
        log_debug("chunk.dispatch", "refused: op=%s err=%d identity=%s peer=%s",
                  proto_msg_name(opcode) ? proto_msg_name(opcode) : "?", rc,
                  peer_identity(p), peer_name(p));
        chunk_reply(p, (uint16_t)(opcode + 1), req_id, rc, NULL, 0);
        return;
    }
    if (opcode == PROTO_MSG_PING_REQ) {
        ping_handle(p, req_id, payload, len);
        return;
    }
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
        if (handlers[i].opcode == opcode) {
            handlers[i].fn(srv, p, req_id, payload, len);
            return;
        }
    }
    chunk_reply(p, (uint16_t)(opcode + 1), req_id, -ENOSYS, NULL, 0);
}

/* Accepted peers, so that a stopping server can close them: the loop only
 * ends once every connection is gone.  Touched only on the loop thread. */
static struct peer **accepted;
static size_t naccepted, accepted_cap;

static void accepted_on_ready(struct peer *p)
{
    if (naccepted == accepted_cap) {
        size_t cap = accepted_cap ? accepted_cap * 2 : 16;
        struct peer **v = realloc(accepted, cap * sizeof(*v));
        if (!v)
            return; /* not tracked: it still closes when the client goes */
        accepted = v;
        accepted_cap = cap;
    }
    peer_ref(p);
    accepted[naccepted++] = p;
}

static void accepted_on_close(struct peer *p, int status)
{
    (void)status;
    for (size_t i = 0; i < naccepted; i++) {
        if (accepted[i] == p) {
            accepted[i] = accepted[--naccepted];
            peer_unref(p);
            break;
        }
    }
    if (naccepted == 0) {
        free(accepted);
        accepted = NULL;
        accepted_cap = 0;
    }
}

void chunk_dispatch_close_all(void)
{
    /* peer_close() may call accepted_on_close() at once: walk a copy. */
    size_t n = naccepted;
    struct peer **v = n ? malloc(n * sizeof(*v)) : NULL;

    if (!v)
        return;
    memcpy(v, accepted, n * sizeof(*v));
    for (size_t i = 0; i < n; i++)
        peer_ref(v[i]);
    for (size_t i = 0; i < n; i++) {
        peer_close(v[i]);
        peer_unref(v[i]);
    }
    free(v);
}

const struct peer_ops chunk_peer_ops = {
    .on_auth = chunk_auth_key,
    .on_ready = accepted_on_ready,
    .on_request = chunk_dispatch,
    .on_close = accepted_on_close,
};
