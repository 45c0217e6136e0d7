/* meta_srv_pool.c: chunks created ahead of the writes that need them
 * (docs/architecture.md, "Writing").
 *
 * A CHUNK_WRITE_BEGIN for a hole used to create its chunk on every
 * chosen server (CHUNK_SETVERSION {id, 0 -> 1}) before it could record it
 * and answer: one round of chunk creations, each a journal commit on its
 * server, in the path of every new file's first write.  The leader now
 * keeps a few chunks already created, empty at version 1, for each
 * replica count in use, and a hole takes one whose servers are all still
 * fit for a new chunk (up, not draining, not full): the write then costs
 * only its record.  Every take, and every miss, starts the creation of as
 * many chunks as the pool of that count lacks.
 *
 * The pool is memory only, and no record names its chunks: the database
 * learns a chunk when a WRITE_BEGIN records it (META_OP_CHUNK_SET, as for
 * a chunk created in the write's own path).  Until then a pooled chunk is
 * like the chunk of a WRITE_BEGIN in flight: inventories and fsck leave
 * it alone (meta_srv_write_pending()).  When this metad stops leading or
 * stops, its pool is forgotten, and the servers' inventories to the next
 * leader delete those chunks as unknown, as they delete the chunks of an
 * attempt a restart lost.  A pooled chunk is never written before it is
 * recorded, so nothing of a file is lost with it.
 *
 * Order.  A new chunk's record is refused unless its id is above every
 * chunk id recorded before it (meta_chunk.c, invariant 1), so a chunk
 * whose id is at or below srv->proposed_chunk_id can never be recorded.
 * The pool is kept in id order (each creation goes at the tail) and a
 * take hands out the lowest ready id; a chunk left behind by a higher one
 * (it was still being created, or another write's own chunk with a
 * higher id was recorded first) is deleted, not handed out to fail.
 *
 * Life of a pooled chunk (struct meta_srv_pooled):
 *
 *   CREATING --every server created it--> READY --taken--> (the write's)
 *       |                                   |
 *       +--a creation failed, a server------+--a server down or no longer
 *          down, leadership lost, its id       fit, its id passed by a
 *          passed by a record:                 record: CHUNK_DELETE to
 *          CHUNK_DELETE to those that          its servers; leadership
 *          created it (if leading)             lost: forgotten
 *
 * Invariants:
 *   1. Every chunk id in the pool was taken from srv->next_chunk_id and
 *      is in no record.
 *   2. A READY chunk exists at version 1 on each of its servers.
 *   3. srv->pool.chunks is in increasing id order.
 */
#include "meta_srv.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct meta_srv_pooled;

/* One server's creation of a pooled chunk. */
struct pool_target {
    struct meta_srv_pooled *c;
    uint32_t server_id;
    int status;
};

struct meta_srv_pooled {
    struct meta_srv *srv;
    uint64_t chunk_id;
    uint32_t n; /* replicas */
    struct pool_target t[PROTO_MAX_REPLICAS];
    unsigned pending; /* CHUNK_SETVERSIONs out */
    bool ready;
    bool dropped; /* forgotten by meta_srv_pool_drop(), answers pending */
    bool doomed;  /* a server of it went down while it was being made */
    struct meta_srv_pooled *next;
};

bool meta_srv_server_placeable(struct meta_srv *srv,
                               const struct meta_srv_server *s)
{
    return meta_srv_server_up(srv, s) && !s->draining &&
           !meta_srv_server_full(s);
}

void meta_srv_pool_count(struct meta_srv *srv, unsigned *ready,
                         unsigned *creating)
{
    *ready = *creating = 0;
    for (struct meta_srv_pooled *c = srv->pool.chunks; c; c = c->next)
        (*(c->ready ? ready : creating))++;
}

uint32_t meta_srv_pool_on(struct meta_srv *srv, uint32_t server_id)
{
    uint32_t n = 0;

    for (struct meta_srv_pooled *c = srv->pool.chunks; c; c = c->next)
        for (uint32_t i = 0; c->ready && i < c->n; i++)
            n += c->t[i].server_id == server_id;
    return n;
}

uint32_t meta_srv_server_chunks(struct meta_srv *srv,
                                const struct meta_srv_server *s)
{
    uint32_t pooled = meta_srv_pool_on(srv, s->id);

    /* A chunk created just now may be in no heartbeat yet. */
    return s->chunks > pooled ? s->chunks - pooled : 0;
}

bool meta_srv_pool_has(struct meta_srv *srv, uint64_t chunk_id)
{
    for (struct meta_srv_pooled *c = srv->pool.chunks; c; c = c->next)
        if (c->chunk_id == chunk_id)
            return true;
    return false;
}

static void unlink_chunk(struct meta_srv *srv, struct meta_srv_pooled *c)
{
    struct meta_srv_pooled **pp = &srv->pool.chunks;

    while (*pp && *pp != c)
        pp = &(*pp)->next;
    if (*pp)
        *pp = c->next;
}

static void on_deleted(struct peer *p, int status, const uint8_t *payload,
                       size_t len, void *arg)
{
    (void)payload;
    (void)len;
    (void)arg;
    if (status < 0 && status != -ENOENT && status != -ECONNRESET)
        log_warn("metad: chunk pool: delete failed: %s peer=%s",
                 strerror(-status), peer_name(p));
}

/* CHUNK_DELETE @c on each of its servers that created it.  Best effort:
 * what is left the server's next inventory deletes. */
static void delete_chunk(struct meta_srv *srv, const struct meta_srv_pooled *c)
{
    struct proto_chunk_ref ref = {c->chunk_id, 1};
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    proto_chunk_ref_encode(&w, &ref);
    for (uint32_t i = 0; w.err == 0 && i < c->n; i++) {
        struct meta_srv_server *s =
            meta_srv_server_find(srv, c->t[i].server_id);

        if (c->t[i].status != 0 || !s || !s->peer)
            continue;
        (void)peer_request(s->peer, PROTO_MSG_CHUNK_DELETE_REQ, w.p, w.len,
                           META_SRV_CTL_TIMEOUT_MS, on_deleted, NULL);
    }
    proto_wbuf_free(&w);
}

/* Every creation of @c has answered: READY if all made it, else gone
 * (deleted where it was made). */
static void chunk_settle(struct meta_srv_pooled *c)
{
    struct meta_srv *srv = c->srv;
    bool all = true;

    if (c->dropped) { /* meta_srv_pool_drop() left it to us */
        free(c);
        return;
    }
    for (uint32_t i = 0; i < c->n; i++)
        all &= c->t[i].status == 0;
    if (all && !c->doomed && srv->leading && !srv->stopping &&
        c->chunk_id > srv->proposed_chunk_id) {
        c->ready = true; /* invariant 2 */
        return;
    }
    unlink_chunk(srv, c);
    if (srv->leading && !srv->stopping)
        delete_chunk(srv, c);
    free(c);
}

static void on_created(struct peer *p, int status, const uint8_t *payload,
                       size_t len, void *arg)
{
    struct pool_target *t = arg;
    struct meta_srv_pooled *c = t->c;

    (void)payload;
    (void)len;
    t->status = status;
    if (status < 0 && status != -ECONNRESET && !c->dropped && !c->srv->stopping)
        log_warn("metad: chunk pool: create failed: %s chunk=%016llx "
                 "server=%u peer=%s",
                 strerror(-status), (unsigned long long)c->chunk_id,
                 t->server_id, peer_name(p));
    if (--c->pending == 0)
        chunk_settle(c);
}

/* Start creating one chunk on the @n servers @ids. */
static int create_chunk(struct meta_srv *srv, const uint32_t *ids, uint32_t n)
{
    struct meta_srv_pooled *c = calloc(1, sizeof(*c));
    struct proto_chunk_setversion_req req = {.old_version = 0,
                                             .new_version = 1};
    struct meta_srv_pooled **tail = &srv->pool.chunks;
    struct proto_wbuf w;
    int rc;

    if (!c)
        return -ENOMEM;
    c->srv = srv;
    c->chunk_id = ++srv->next_chunk_id; /* invariant 1 */
    c->n = n;
    req.chunk_id = c->chunk_id;
    proto_wbuf_init(&w);
    proto_chunk_setversion_req_encode(&w, &req);
    while (*tail)
        tail = &(*tail)->next;
    *tail = c;      /* invariant 3: the highest id yet */
    c->pending = 1; /* held while sending */
    for (uint32_t i = 0; i < n; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, ids[i]);

        c->t[i].c = c;
        c->t[i].server_id = ids[i];
        c->t[i].status = w.err ? w.err : -EHOSTUNREACH;
        if (w.err || !s || !s->peer)
            continue;
        c->pending++;
        rc = peer_request(s->peer, PROTO_MSG_CHUNK_SETVERSION_REQ, w.p, w.len,
                          META_SRV_CTL_TIMEOUT_MS, on_created, &c->t[i]);
        if (rc < 0) {
            c->pending--;
            c->t[i].status = rc;
        }
    }
    proto_wbuf_free(&w);
    if (--c->pending == 0)
        chunk_settle(c);
    return 0;
}

/* Is every server of @c still fit for a new chunk? */
static bool chunk_fit(struct meta_srv *srv, const struct meta_srv_pooled *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        struct meta_srv_server *s =
            meta_srv_server_find(srv, c->t[i].server_id);

        if (!s || !meta_srv_server_placeable(srv, s))
            return false;
    }
    return true;
}

int meta_srv_pool_take(struct meta_srv *srv, uint32_t n, uint64_t *chunk_id,
                       uint32_t *servers)
{
    struct meta_srv_pooled **pp = &srv->pool.chunks, *c;

    while ((c = *pp) != NULL) {
        if (!c->ready || c->n != n) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        if (c->chunk_id <= srv->proposed_chunk_id || !chunk_fit(srv, c)) {
            delete_chunk(srv, c);
            free(c);
            continue;
        }
        *chunk_id = c->chunk_id;
        for (uint32_t i = 0; i < n; i++)
            servers[i] = c->t[i].server_id;
        free(c);
        srv->pool.taken++;
        return 0;
    }
    srv->pool.missed++;
    return -ENOENT;
}

void meta_srv_pool_fill(struct meta_srv *srv, const uint32_t *ids, uint32_t n)
{
    unsigned have = 0;

    if (srv->pool.size == 0 || !srv->leading || srv->stopping)
        return;
    for (struct meta_srv_pooled *c = srv->pool.chunks; c; c = c->next)
        have += c->n == n;
    while (have++ < srv->pool.size)
        if (create_chunk(srv, ids, n) < 0)
            break;
}

void meta_srv_pool_server_down(struct meta_srv *srv, uint32_t server_id)
{
    struct meta_srv_pooled **pp = &srv->pool.chunks, *c;

    while ((c = *pp) != NULL) {
        bool on = false;

        for (uint32_t i = 0; i < c->n; i++)
            on |= c->t[i].server_id == server_id;
        if (on && !c->ready)
            c->doomed = true; /* chunk_settle() deletes it */
        if (!on || !c->ready) {
            pp = &c->next;
            continue;
        }
        /* Its copy there, if the server comes back, is unknown to the
         * database and goes at its inventory. */
        *pp = c->next;
        delete_chunk(srv, c);
        free(c);
    }
}

void meta_srv_pool_drop(struct meta_srv *srv)
{
    struct meta_srv_pooled *c, *next;

    for (c = srv->pool.chunks; c; c = next) {
        next = c->next;
        if (c->pending > 0)
            c->dropped = true; /* chunk_settle() frees it */
        else
            free(c);
    }
    srv->pool.chunks = NULL;
}
