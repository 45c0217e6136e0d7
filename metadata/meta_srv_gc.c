/* meta_srv_gc.c: background deletion of replicas no file refers to any
 * more (truncate, unlink of the last link).
 *
 * The engine keeps the list (meta_gc_foreach); this file works it off.
 * Every tick, when the previous round has finished, it takes up to
 * META_SRV_GC_BATCH entries, shared out evenly between the servers that
 * are up (entries for down servers are not even read), and sends
 * CHUNK_DELETE for each.  A confirmed delete (or ENOENT: the server had already
 * lost or dropped it) is recorded with META_OP_GC_DONE, which takes the
 * entry off the list.  Entries for servers that are down, and deletes that
 * fail, stay listed and are tried again in a later round.
 */
#include "meta_srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

struct gc_entry {
    uint64_t chunk_id, version;
    uint32_t server_id;
};

struct gc_batch {
    struct gc_entry v[META_SRV_GC_BATCH];
    int n;
};

/* One CHUNK_DELETE in flight; freed by its reply callback. */
struct gc_req {
    struct meta_srv *srv;
    struct gc_entry e;
    struct meta_propose req; /* META_OP_GC_DONE, once deleted */
};

static int collect(uint64_t chunk_id, uint64_t version, uint32_t server_id,
                   void *arg)
{
    struct gc_batch *b = arg;

    if (b->n == META_SRV_GC_BATCH)
        return 1;
    b->v[b->n].chunk_id = chunk_id;
    b->v[b->n].version = version;
    b->v[b->n].server_id = server_id;
    b->n++;
    return 0;
}

static void on_gc_done(struct meta_propose *req, int rc,
                       const struct proto_wbuf *result)
{
    struct gc_req *r = req->data;

    (void)result; /* empty */
    if (rc < 0 && rc != -ENOENT)
        log_error("metad: gc: recording delete: %s chunk=%016llx server=%u",
                  strerror(-rc), (unsigned long long)r->e.chunk_id,
                  r->e.server_id);
    free(r);
}

/* Record that @r's replica is deleted; takes @r (freed once recorded). */
static void gc_done(struct meta_srv *srv, struct gc_req *r)
{
    struct proto_wbuf payload;
    int rc;

    proto_wbuf_init(&payload);
    meta_op_gc_done_encode(
        &payload, &(struct meta_op_gc_done){.chunk_id = r->e.chunk_id,
                                            .server_id = r->e.server_id});
    r->req.data = r;
    rc = payload.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, &r->req, META_OP_GC_DONE, 0, payload.p,
                            payload.len, on_gc_done);
    proto_wbuf_free(&payload);
    if (rc < 0)
        on_gc_done(&r->req, rc, NULL);
}

static void on_deleted(struct peer *p, int status, const uint8_t *payload,
                       size_t len, void *arg)
{
    struct gc_req *r = arg;
    struct meta_srv *srv = r->srv;

    (void)payload;
    (void)len;
    srv->gc_inflight--;
    if (status == 0 || status == -ENOENT) {
        log_debug("meta.gc", "deleted: chunk=%016llx server=%u",
                  (unsigned long long)r->e.chunk_id, r->e.server_id);
        gc_done(srv, r);
        return;
    }
    if (!srv->stopping)
        log_warn("metad: gc: delete failed: %s chunk=%016llx server=%u "
                 "peer=%s",
                 strerror(-status), (unsigned long long)r->e.chunk_id,
                 r->e.server_id, peer_name(p));
    free(r);
}

static void send_delete(struct meta_srv *srv, const struct gc_entry *e,
                        struct peer *to)
{
    struct proto_chunk_ref ref = {.chunk_id = e->chunk_id,
                                  .version = e->version};
    struct proto_wbuf w;
    struct gc_req *r;

    r = malloc(sizeof(*r));
    if (!r)
        return;
    r->srv = srv;
    r->e = *e;
    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &ref);
    if (w.err == 0 && peer_request(to, PROTO_MSG_CHUNK_DELETE_REQ, w.p, w.len,
                                   META_SRV_GC_TIMEOUT_MS, on_deleted, r) == 0)
        srv->gc_inflight++;
    else
        free(r);
    proto_wbuf_free(&w);
}

void meta_srv_gc_tick(struct meta_srv *srv)
{
    struct gc_batch *b;
    size_t nup = 0;
    int rc = 0, per;

    if (srv->gc_inflight)
        return;
    for (size_t i = 0; i < srv->nservers; i++)
        nup += meta_srv_server_up(srv, &srv->servers[i]);
    if (nup == 0)
        return;
    b = malloc(sizeof(*b));
    if (!b)
        return;
    /* Each up server gets its share of the batch, so entries for servers
     * that are down never starve the others. */
    per = (int)(META_SRV_GC_BATCH / nup);
    if (per < 1)
        per = 1;
    for (size_t i = 0; rc >= 0 && i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];

        if (!meta_srv_server_up(srv, s))
            continue;
        b->n = 0;
        rc = meta_gc_foreach(srv->db, s->id, per, collect, b);
        if (rc < 0)
            log_error("metad: gc: listing garbage: %s server=%u",
                      strerror(-rc), s->id);
        for (int k = 0; rc >= 0 && k < b->n; k++)
            send_delete(srv, &b->v[k], s->peer);
    }
    free(b);
}
