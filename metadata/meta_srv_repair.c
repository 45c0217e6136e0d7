/* meta_srv_repair.c: keeping every chunk at its replication goal:
 * re-replication, removal of surplus copies, draining and rebalancing.
 *
 * Happy path: every tick (and shortly after a copy finishes) one scan
 * walks every chunk in the database.  A copy counts toward the goal of
 * its file when it is on a server that is not down and not draining
 * ("good" copies).  A chunk with fewer good copies than its goal gets a
 * copy: CHUNK_REPLICATE_REQ {chunk, version, source} to a target server
 * that is up, not draining, holds no copy and has the most free space;
 * the target pulls the data from the source and answers once it is
 * durable, and META_OP_REPLICA_ADD records the new replica.  The chunks
 * with the fewest good copies go first.  A chunk that reached its goal
 * loses its extra listed copies: those on down servers, on draining
 * servers, then the ones over the goal on the fullest servers
 * (META_OP_REPLICA_DROP; the gc loop deletes them on the servers).
 * That is also how a drain ends: once each chunk has enough copies
 * elsewhere, the draining server's copies are dropped.
 *
 * Rebalance (tessera rebalance): while no chunk needs a copy, chunks move
 * from the server with the highest share of its capacity used to the one
 * with the lowest (copy, add, then drop the old copy) until the shares are
 * within 10% of the mean, or no chunk fits the gap.
 *
 * Throttling: at most --repair-rate copies in flight, and a token bucket
 * of --repair-mbps MiB per second (one second of burst) charged with the
 * chunk's length when a copy starts, so foreground I/O keeps most of the
 * servers' bandwidth.
 *
 * Leased chunks: a copy of a chunk under a live write lease would miss the
 * writes made during it, and a lease lasts as long as its writer keeps
 * writing.  So, one at a time, the file of the leased chunk with the
 * fewest good copies is frozen as for a snapshot (meta_srv_write_freeze():
 * its leases end, its chunks are bumped, new WRITE_BEGINs wait), the chunk
 * is copied at its new version, and the file is thawed once the copy is
 * recorded or failed: the writer's next WRITE_BEGIN gets a chain with the
 * new replica.  Writes in flight at the old version fail with EOLDVER and
 * are retried by the writer at the new one, so nothing acknowledged is
 * lost; the writer waits for one chunk's copy.
 *
 * Failure modes: chunks with a WRITE_BEGIN in flight are left alone (a
 * copy would miss the writes); a copy that fails or times
 * out is counted and tried again by a later scan; a copy that finishes
 * after a version bump is stale at birth and META_OP_REPLICA_ADD lists it
 * for deletion instead; a chunk whose every copy is on a down server is
 * "missing" and waits for one to return.
 *
 * A record that fails (the log lost it, or the engine refused it: a
 * REPLICA_DROP answers -ESTALE once the chunk moved on) changes nothing:
 * the replica set and the gc list stay as they were, a copy made but not
 * recorded is no replica (the same target gets the next copy over it),
 * and the next scan plans again from what the database says.  Deleting a
 * dropped copy on its server is the gc loop's (meta_srv_gc.c): the gc
 * list keeps it until the server confirms, and no copy goes to a server
 * while its old one is listed there (pick_target()).
 *
 * A copy job:
 *
 *   (scan) --start--> SENT --reply OK--> ADDING --applied--> ADDED
 *                       \                  \--failed, stale--> (done)
 *                        \--error/timeout--> (counted, retried later)
 *   ADDED --(move)--> DROPPING --applied or failed--> (done)
 *
 *   FROM     -> TO        [function]
 *   scan     -> SENT      [job_start]
 *   SENT     -> ADDING    [on_replicated: META_OP_REPLICA_ADD proposed]
 *   SENT     -> (failed)  [on_replicated]
 *   ADDING   -> ADDED     [on_added]
 *   ADDED    -> DROPPING  [on_added: META_OP_REPLICA_DROP, moves]
 *   DROPPING -> (done)    [on_moved]
 *
 * Invariants:
 *   1. At most one job per chunk is in flight (meta_srv_repair_busy), from
 *      its start until its last record is applied or failed (job_free()),
 *      and srv->repair.inflight counts the jobs on srv->repair.jobs.  A
 *      replicated log commits a record later, on a later loop turn: a scan
 *      in between still sees the chunk as it was, and must not plan a
 *      second copy of it, nor drop a copy beside a move's drop.
 *   2. A drop never takes a chunk below its goal in good copies.
 *   3. No job starts on a chunk with a write lease or WRITE_BEGIN (a
 *      leased chunk's lease is ended by the freeze first).
 *   4. A chunk with a surplus drop proposed and not yet applied is busy
 *      too (srv->repair.drops): two scans' drops of one chunk, each
 *      planned from the same replica set, could together take it below
 *      its goal (invariant 2).
 */
#include "meta_srv.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta_op.h"

#define SCAN_BATCH 1024   /* chunks read per database walk */
#define DROP_PER_SCAN 256 /* REPLICA_DROP records per scan at most */
#define KICK_MS 50        /* rescan this soon after a copy finished */
#define MIB (1024u * 1024u)

struct meta_srv_rjob {
    struct meta_srv *srv;
    struct meta_srv_rjob *next;
    uint64_t chunk_id, version, length;
    uint32_t target, source;
    uint32_t drop; /* a move: this server's copy goes after the add */
    struct lease_repair *thaw; /* a leased chunk's copy: thaw its file */
    struct meta_propose req;   /* REPLICA_ADD, then a move's REPLICA_DROP */
};

/* A chunk the scan wants to act on. */
struct cand {
    struct meta_chunk c;
    uint32_t goal, good;
    uint64_t length;
};

struct cand_list {
    struct cand *v;
    size_t n, cap;
};

/* A chunk below its goal under a live write lease, whose file is frozen
 * for its copy (see "Leased chunks" above). */
struct lease_repair {
    struct meta_srv *srv;
    uint64_t chunk_id, length;
};

struct scan {
    struct meta_srv *srv;
    struct cand_list copy, drop, move;
    struct cand_list leased; /* below goal, under a write lease */
    uint64_t last;
    uint64_t chunks, ok, under, over, missing;
    uint64_t unplaced; /* under goal, waiting, and no server could take it */
};

/* ---- Helpers ------------------------------------------------------------ */

/* A surplus copy's META_OP_REPLICA_DROP, until it is applied or failed
 * (invariant 4). */
struct meta_srv_rdrop {
    struct meta_propose req;
    struct meta_srv *srv;
    struct meta_srv_rdrop *next; /* srv->repair.drops */
    uint64_t chunk_id;
    uint32_t server_id;
};

bool meta_srv_repair_busy(struct meta_srv *srv, uint64_t chunk_id)
{
    for (struct meta_srv_rjob *j = srv->repair.jobs; j; j = j->next)
        if (j->chunk_id == chunk_id)
            return true;
    for (struct meta_srv_rdrop *d = srv->repair.drops; d; d = d->next)
        if (d->chunk_id == chunk_id)
            return true;
    return false;
}

static bool good_server(struct meta_srv *srv, const struct meta_srv_server *s)
{
    return s && meta_srv_server_alive(srv, s) && !s->draining;
}

uint32_t meta_srv_repair_good(struct meta_srv *srv, const struct meta_chunk *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->nreplicas; i++)
        n += good_server(srv, meta_srv_server_find(srv, c->servers[i]));
    return n;
}

static bool holds(const struct meta_chunk *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->nreplicas; i++)
        if (c->servers[i] == id)
            return true;
    return false;
}

static int cand_add(struct cand_list *l, const struct meta_chunk_info *ci,
                    uint32_t good)
{
    int rc = meta_srv_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v));

    if (rc < 0)
        return rc;
    l->v[l->n].c = ci->c;
    l->v[l->n].goal = ci->goal;
    l->v[l->n].good = good;
    l->v[l->n].length = ci->length;
    l->n++;
    return 0;
}

/* Propose @opcode (META_OP_REPLICA_ADD or _DROP) for the replica of
 * @chunk_id at @version on @server_id with @req; @cb gets the outcome. */
static int propose_replica(struct meta_srv *srv, struct meta_propose *req,
                           uint16_t opcode, uint64_t chunk_id, uint64_t version,
                           uint32_t server_id, meta_propose_cb cb)
{
    struct proto_wbuf payload;
    int rc;

    proto_wbuf_init(&payload);
    meta_op_replica_encode(&payload,
                           &(struct meta_op_replica){.chunk_id = chunk_id,
                                                     .version = version,
                                                     .server_id = server_id});
    rc = payload.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, req, opcode, 0, payload.p, payload.len, cb);
    proto_wbuf_free(&payload);
    return rc;
}

/* ---- Scanning ----------------------------------------------------------- */

static struct meta_srv_server *pick_target(struct meta_srv *srv,
                                           const struct meta_chunk *c);

static int scan_one(const struct meta_chunk_info *ci, void *arg)
{
    struct scan *sc = arg;
    struct meta_srv *srv = sc->srv;
    uint32_t good = 0, sources = 0, extra = 0;

    sc->last = ci->c.chunk_id;
    sc->chunks++;
    for (uint32_t i = 0; i < ci->c.nreplicas; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, ci->c.servers[i]);

        if (good_server(srv, s))
            good++;
        else
            extra++;
        if (s && meta_srv_server_up(srv, s))
            sources++;
    }
    if (good == 0 && sources == 0)
        sc->missing++;
    else if (good < ci->goal)
        sc->under++;
    else if (good > ci->goal)
        sc->over++;
    else
        sc->ok++;
    /* Invariants 1 and 3.  A chunk waiting for its write lease that no
     * server could take a copy of anyway is counted as such, so that a
     * drain that cannot finish says so without waiting for the lease. */
    if (meta_srv_write_busy(srv, ci->c.chunk_id) ||
        meta_srv_repair_busy(srv, ci->c.chunk_id)) {
        if (good < ci->goal && sources > 0 && !pick_target(srv, &ci->c))
            sc->unplaced++;
        else if (good < ci->goal && sources > 0 &&
                 !meta_srv_write_pending(srv, ci->c.chunk_id) &&
                 !meta_srv_repair_busy(srv, ci->c.chunk_id))
            return cand_add(&sc->leased, ci, good);
        return 0;
    }
    if (good < ci->goal && sources > 0)
        return cand_add(&sc->copy, ci, good);
    if (good >= ci->goal && (extra > 0 || good > ci->goal))
        return cand_add(&sc->drop, ci, good);
    if (srv->repair.rebalance && good == ci->goal && ci->length > 0)
        return cand_add(&sc->move, ci, good);
    return 0;
}

static int by_good(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->good != y->good)
        return x->good < y->good ? -1 : 1;
    return x->c.chunk_id < y->c.chunk_id ? -1 : x->c.chunk_id > y->c.chunk_id;
}

/* ---- Copy jobs ---------------------------------------------------------- */

static void kick(struct meta_srv *srv);

static void job_unlink(struct meta_srv *srv, struct meta_srv_rjob *j)
{
    struct meta_srv_rjob **pp;
    struct meta_srv_server *t;

    for (pp = &srv->repair.jobs; *pp != j; pp = &(*pp)->next)
        ;
    *pp = j->next;
    assert(srv->repair.inflight > 0); /* invariant 1 */
    srv->repair.inflight--;
    t = meta_srv_server_find(srv, j->target);
    if (t)
        t->inbound = t->inbound > j->length ? t->inbound - j->length : 0;
}

static void lease_repair_end(struct lease_repair *lr);

/* The job is over, its records applied or failed: take it off the list
 * (invariant 1), free it, and thaw the file a leased chunk's copy froze. */
static void job_free(struct meta_srv_rjob *j)
{
    job_unlink(j->srv, j);
    if (j->thaw)
        lease_repair_end(j->thaw);
    free(j);
}

static void on_moved(struct meta_propose *req, int rc,
                     const struct proto_wbuf *result)
{
    struct meta_srv_rjob *j = req->data;
    struct meta_srv *srv = j->srv;

    (void)result; /* empty */
    if (rc == 0)
        srv->repair.moved++;
    job_free(j);
    kick(srv);
}

/* The copy is recorded (or refused as stale); a move then drops the
 * source's copy. */
static void on_added(struct meta_propose *req, int rc,
                     const struct proto_wbuf *result)
{
    struct meta_srv_rjob *j = req->data;
    struct meta_srv *srv = j->srv;
    bool added = rc == 0 && result->len == 1 && result->p[0] == 1;

    if (rc < 0) {
        srv->repair.copy_failed++;
        log_error("metad: repair: recording copy: %s chunk=%016llx target=%u",
                  strerror(-rc), (unsigned long long)j->chunk_id, j->target);
    } else if (!added) {
        log_info("metad: repair: copy stale on arrival (chunk changed): "
                 "chunk=%016llx version=%llu target=%u",
                 (unsigned long long)j->chunk_id,
                 (unsigned long long)j->version, j->target);
    } else {
        srv->repair.copied++;
        srv->repair.bytes += j->length;
        log_debug("meta.repair", "copied: chunk=%016llx version=%llu %u -> %u",
                  (unsigned long long)j->chunk_id,
                  (unsigned long long)j->version, j->source, j->target);
        if (j->drop &&
            propose_replica(srv, &j->req, META_OP_REPLICA_DROP, j->chunk_id,
                            j->version, j->drop, on_moved) == 0)
            return;
    }
    job_free(j);
    kick(srv);
}

static void on_replicated(struct peer *p, int status, const uint8_t *payload,
                          size_t len, void *arg)
{
    struct meta_srv_rjob *j = arg;
    struct meta_srv *srv = j->srv;
    int rc;

    (void)payload;
    (void)len;
    if (srv->stopping) {
        job_free(j);
        return;
    }
    if (status < 0) {
        srv->repair.copy_failed++;
        log_warn("metad: repair: copy failed: %s chunk=%016llx version=%llu "
                 "source=%u target=%u peer=%s",
                 strerror(-status), (unsigned long long)j->chunk_id,
                 (unsigned long long)j->version, j->source, j->target,
                 peer_name(p));
        job_free(j);
        kick(srv);
        return;
    }
    j->req.data = j;
    rc = propose_replica(srv, &j->req, META_OP_REPLICA_ADD, j->chunk_id,
                         j->version, j->target, on_added);
    if (rc < 0)
        on_added(&j->req, rc, NULL);
}

/* Start a copy of @cd from @src to @dst (a move when @drop is set).
 * False when it could not be sent. */
static bool job_start(struct meta_srv *srv, const struct cand *cd,
                      struct meta_srv_server *src, struct meta_srv_server *dst,
                      uint32_t drop)
{
    struct proto_chunk_replicate_req req = {
        .chunk_id = cd->c.chunk_id,
        .version = cd->c.version,
        .source = {src->id, {src->addr, (uint32_t)strlen(src->addr)}},
    };
    struct meta_srv_rjob *j = calloc(1, sizeof(*j));
    struct proto_wbuf w;
    int rc;

    if (!j)
        return false;
    j->srv = srv;
    j->chunk_id = cd->c.chunk_id;
    j->version = cd->c.version;
    j->length = cd->length;
    j->target = dst->id;
    j->source = src->id;
    j->drop = drop;
    proto_wbuf_init(&w);
    proto_chunk_replicate_req_encode(&w, &req);
    rc = w.err;
    if (rc == 0)
        rc = peer_request(dst->peer, PROTO_MSG_CHUNK_REPLICATE_REQ, w.p, w.len,
                          META_SRV_REPLICATE_MS, on_replicated, j);
    proto_wbuf_free(&w);
    if (rc < 0) {
        free(j);
        return false;
    }
    j->next = srv->repair.jobs;
    srv->repair.jobs = j;
    srv->repair.inflight++;
    dst->inbound += j->length;
    /* Charge at least 1 MiB so many tiny chunks still pace. */
    srv->repair.tokens -= (int64_t)(j->length > MIB ? j->length : MIB);
    log_debug("meta.repair", "copy: chunk=%016llx version=%llu %u -> %u%s",
              (unsigned long long)j->chunk_id, (unsigned long long)j->version,
              j->source, j->target, drop ? " (move)" : "");
    return true;
}

/* An up source holding @c, preferring one that is not draining. */
static struct meta_srv_server *pick_source(struct meta_srv *srv,
                                           const struct meta_chunk *c)
{
    struct meta_srv_server *any = NULL;

    for (uint32_t i = 0; i < c->nreplicas; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, c->servers[i]);

        if (!s || !meta_srv_server_up(srv, s))
            continue;
        if (!s->draining)
            return s;
        if (!any)
            any = s;
    }
    return any;
}

/* The target for a copy of @c: up, not draining, not full (counting the
 * copies on their way), no copy and no copy waiting for deletion there;
 * most free space, then least used. */
static struct meta_srv_server *pick_target(struct meta_srv *srv,
                                           const struct meta_chunk *c)
{
    struct meta_srv_server *best = NULL;
    uint64_t best_free = 0;

    for (size_t i = 0; i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];
        uint64_t avail;

        if (!meta_srv_server_up(srv, s) || s->draining || holds(c, s->id) ||
            meta_gc_has(srv->db, c->chunk_id, s->id) != 0)
            continue;
        avail = s->free > s->inbound ? s->free - s->inbound : 0;
        if (avail < META_SRV_FULL_FREE)
            continue; /* full, or will be with the copies on their way */
        if (!best || avail > best_free ||
            (avail == best_free &&
             s->used + s->inbound < best->used + best->inbound)) {
            best = s;
            best_free = avail;
        }
    }
    return best;
}

static bool may_start(struct meta_srv *srv)
{
    return srv->repair.inflight < srv->repair.rate && srv->repair.tokens > 0;
}

static void start_copies(struct meta_srv *srv, struct cand_list *l)
{
    if (l->n > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(l->v, l->n, sizeof(*l->v), by_good);
    for (size_t i = 0; i < l->n && may_start(srv); i++) {
        struct meta_srv_server *src = pick_source(srv, &l->v[i].c);
        struct meta_srv_server *dst = pick_target(srv, &l->v[i].c);

        if (src && dst)
            job_start(srv, &l->v[i], src, dst, 0);
        else if (!dst)
            srv->repair.unplaced++; /* every server able to hold it has it */
    }
}

/* ---- Leased chunks ------------------------------------------------------ */

static void lease_repair_end(struct lease_repair *lr)
{
    struct meta_srv *srv = lr->srv;

    meta_srv_write_thaw(srv, lr);
    srv->repair.lease_frozen = false;
    free(lr);
    kick(srv);
}

/* The file is frozen: its leases ended and its chunks bumped.  Copy the
 * chunk at its new version; the thaw follows the copy (job_free()). */
static void on_lease_frozen(void *arg, int rc)
{
    struct lease_repair *lr = arg;
    struct meta_srv *srv = lr->srv;
    struct meta_srv_server *src, *dst;
    struct cand cd = {.length = lr->length};
    struct meta_srv_rjob *j;

    if (rc < 0 || srv->stopping ||
        meta_chunk_get(srv->db, lr->chunk_id, &cd.c) < 0 ||
        meta_srv_repair_busy(srv, lr->chunk_id)) {
        lease_repair_end(lr);
        return;
    }
    src = pick_source(srv, &cd.c);
    dst = pick_target(srv, &cd.c);
    if (!src || !dst || !job_start(srv, &cd, src, dst, 0)) {
        lease_repair_end(lr);
        return;
    }
    log_info("metad: repair: copying a chunk under a write lease, its file "
             "held meanwhile: chunk=%016llx version=%llu ino=%llu",
             (unsigned long long)cd.c.chunk_id,
             (unsigned long long)cd.c.version, (unsigned long long)cd.c.ino);
    for (j = srv->repair.jobs; j->chunk_id != lr->chunk_id; j = j->next)
        ;
    j->thaw = lr;
}

/* Freeze the file of @cd, the leased chunk with the fewest good copies. */
static void lease_repair_start(struct meta_srv *srv, const struct cand *cd)
{
    struct lease_repair *lr = calloc(1, sizeof(*lr));

    if (!lr)
        return;
    lr->srv = srv;
    lr->chunk_id = cd->c.chunk_id;
    lr->length = cd->length;
    srv->repair.lease_frozen = true;
    if (meta_srv_write_freeze(srv, cd->c.ino, on_lease_frozen, lr) < 0) {
        srv->repair.lease_frozen = false;
        free(lr);
    }
}

/* ---- Surplus ------------------------------------------------------------ */

/* Rank of a copy for dropping: down first, then draining, then the
 * fullest good server. */
static int drop_rank(struct meta_srv *srv, uint32_t id, uint64_t *used)
{
    struct meta_srv_server *s = meta_srv_server_find(srv, id);

    *used = s ? s->used : 0;
    if (!s || !meta_srv_server_alive(srv, s))
        return 0;
    return s->draining ? 1 : 2;
}

/* Take @d off srv->repair.drops and free it. */
static void drop_free(struct meta_srv_rdrop *d)
{
    struct meta_srv_rdrop **pp;

    for (pp = &d->srv->repair.drops; *pp != d; pp = &(*pp)->next)
        ;
    *pp = d->next;
    free(d);
}

static void on_dropped(struct meta_propose *req, int rc,
                       const struct proto_wbuf *result)
{
    struct meta_srv_rdrop *d = req->data;

    (void)result; /* empty */
    if (rc == 0) {
        log_debug("meta.repair", "dropped: chunk=%016llx server=%u",
                  (unsigned long long)d->chunk_id, d->server_id);
        d->srv->repair.dropped++;
    }
    drop_free(d);
}

/* Propose dropping @c's copy on @server_id.  The scan plans on as if it
 * went: a drop the engine refuses (the chunk changed meanwhile) leaves
 * more copies than planned, never fewer, and the next scan sees them.
 * Listed before it is proposed (the local log applies it at once). */
static int drop_propose(struct meta_srv *srv, const struct meta_chunk *c,
                        uint32_t server_id)
{
    struct meta_srv_rdrop *d = malloc(sizeof(*d));
    int rc;

    if (!d)
        return -ENOMEM;
    d->req.data = d;
    d->srv = srv;
    d->chunk_id = c->chunk_id;
    d->server_id = server_id;
    d->next = srv->repair.drops;
    srv->repair.drops = d;
    rc = propose_replica(srv, &d->req, META_OP_REPLICA_DROP, c->chunk_id,
                         c->version, server_id, on_dropped);
    if (rc < 0)
        drop_free(d);
    return rc;
}

static void drop_surplus(struct meta_srv *srv, const struct cand *cd,
                         unsigned *budget)
{
    struct meta_chunk c = cd->c;
    uint32_t good = cd->good;

    while (*budget > 0 && c.nreplicas > 0) {
        uint32_t pick = c.nreplicas;
        int best = 3;
        uint64_t best_used = 0, used;

        for (uint32_t i = 0; i < c.nreplicas; i++) {
            int r = drop_rank(srv, c.servers[i], &used);

            if (r < best || (r == best && used > best_used)) {
                best = r;
                best_used = used;
                pick = i;
            }
        }
        /* Invariant 2: a good copy goes only while over the goal. */
        if (pick == c.nreplicas || (best == 2 && good <= cd->goal))
            return;
        if (drop_propose(srv, &c, c.servers[pick]) < 0)
            return;
        (*budget)--;
        if (best == 2)
            good--;
        c.servers[pick] = c.servers[--c.nreplicas];
    }
}

/* ---- Rebalance ---------------------------------------------------------- */

struct bal {
    struct meta_srv_server *s;
    double est; /* bytes, with this scan's planned moves */
};

static double share(const struct bal *b)
{
    return b->est / (double)b->s->capacity;
}

static void rebalance(struct meta_srv *srv, struct cand_list *moves)
{
    struct bal *b = calloc(srv->nservers + 1, sizeof(*b));
    double total = 0, cap = 0;
    size_t n = 0, lo, hi;
    bool planned = false;

    if (!b)
        return;
    for (size_t i = 0; i < srv->nservers; i++) {
        struct meta_srv_server *s = &srv->servers[i];

        if (!meta_srv_server_up(srv, s) || s->draining || !s->capacity)
            continue;
        b[n].s = s;
        b[n].est = (double)(s->used + s->inbound);
        total += b[n].est;
        cap += (double)s->capacity;
        n++;
    }
    while (n >= 2 && may_start(srv)) {
        struct cand *pick = NULL;

        lo = hi = 0;
        for (size_t i = 1; i < n; i++) {
            if (share(&b[i]) < share(&b[lo]))
                lo = i;
            if (share(&b[i]) > share(&b[hi]))
                hi = i;
        }
        if (share(&b[hi]) - share(&b[lo]) <= 0.1 * (total / cap))
            break;
        for (size_t i = 0; i < moves->n; i++) {
            struct cand *cd = &moves->v[i];

            if (cd->length == 0 || !holds(&cd->c, b[hi].s->id) ||
                holds(&cd->c, b[lo].s->id) ||
                (double)cd->length * 2 > b[hi].est - b[lo].est ||
                meta_gc_has(srv->db, cd->c.chunk_id, b[lo].s->id) != 0)
                continue;
            pick = cd;
            break;
        }
        if (!pick)
            break;
        job_start(srv, pick, b[hi].s, b[lo].s, b[hi].s->id);
        b[hi].est -= (double)pick->length;
        b[lo].est += (double)pick->length;
        pick->length = 0; /* used */
        planned = true;
    }
    if (!planned && srv->repair.inflight == 0 && may_start(srv)) {
        srv->repair.rebalance = false;
        log_info("metad: rebalance: done: moved=%llu",
                 (unsigned long long)srv->repair.moved);
    }
    free(b);
}

/* ---- Tick --------------------------------------------------------------- */

static void refill(struct meta_srv *srv)
{
    uint64_t now = uv_now(srv->loop);
    uint64_t dt = now - srv->repair.refilled;

    srv->repair.refilled = now;
    srv->repair.tokens += (int64_t)(srv->repair.bps * dt / 1000);
    if (srv->repair.tokens > (int64_t)srv->repair.bps)
        srv->repair.tokens = (int64_t)srv->repair.bps;
}

void meta_srv_repair_tick(struct meta_srv *srv)
{
    struct scan sc;
    unsigned budget = DROP_PER_SCAN;
    bool was_degraded = srv->repair.under || srv->repair.missing;
    int rc, got;

    if (srv->stopping)
        return;
    refill(srv);
    meta_srv_server_usage(srv);
    memset(&sc, 0, sizeof(sc));
    sc.srv = srv;
    do {
        uint64_t before = sc.chunks;

        rc = meta_chunk_foreach(srv->db, sc.last, SCAN_BATCH, scan_one, &sc);
        got = (int)(sc.chunks - before);
    } while (rc == 0 && got == SCAN_BATCH);
    if (rc < 0) {
        log_error("metad: repair: scanning chunks: %s", strerror(-rc));
    } else {
        srv->repair.scans++;
        srv->repair.chunks = sc.chunks;
        srv->repair.ok = sc.ok;
        srv->repair.under = sc.under;
        srv->repair.over = sc.over;
        srv->repair.missing = sc.missing;
        srv->repair.queued = sc.copy.n;
        srv->repair.unplaced = sc.unplaced;
        start_copies(srv, &sc.copy);
        if (sc.leased.n > 0 && !srv->repair.lease_frozen && may_start(srv)) {
            qsort(sc.leased.v, sc.leased.n, sizeof(*sc.leased.v), by_good);
            lease_repair_start(srv, &sc.leased.v[0]);
        }
        for (size_t i = 0; i < sc.drop.n; i++)
            drop_surplus(srv, &sc.drop.v[i], &budget);
        if (srv->repair.rebalance && sc.copy.n == 0)
            rebalance(srv, &sc.move);
        if (was_degraded && !sc.under && !sc.missing) {
            srv->repair.last_done_ns = meta_srv_now_ns();
            log_info("metad: repair: every chunk at its goal again: "
                     "chunks=%llu copied=%llu",
                     (unsigned long long)sc.chunks,
                     (unsigned long long)srv->repair.copied);
        } else if (!was_degraded && (sc.under || sc.missing)) {
            log_warn("metad: repair: chunks below their goal: under=%llu "
                     "missing=%llu",
                     (unsigned long long)sc.under,
                     (unsigned long long)sc.missing);
        }
    }
    free(sc.copy.v);
    free(sc.drop.v);
    free(sc.move.v);
    free(sc.leased.v);
}

static void on_kick(uv_timer_t *t)
{
    struct meta_srv *srv = t->data;

    srv->repair.kick_pending = false;
    if (!srv->stopping)
        meta_srv_repair_tick(srv);
}

/* Rescan soon: a copy slot just freed up. */
static void kick(struct meta_srv *srv)
{
    if (srv->repair.kick_pending || srv->stopping || !srv->repair.kick_init)
        return;
    srv->repair.kick_pending = true;
    uv_timer_start(&srv->repair.kick, on_kick, KICK_MS, 0);
}

void meta_srv_repair_init(struct meta_srv *srv, uint32_t rate, uint32_t mbps)
{
    srv->repair.rate = rate ? rate : META_SRV_REPAIR_RATE;
    srv->repair.bps = (uint64_t)(mbps ? mbps : META_SRV_REPAIR_MBPS) * MIB;
    srv->repair.tokens = (int64_t)srv->repair.bps;
    srv->repair.refilled = uv_now(srv->loop);
    uv_timer_init(srv->loop, &srv->repair.kick);
    srv->repair.kick.data = srv;
    srv->repair.kick_init = true;
}

void meta_srv_repair_stop(struct meta_srv *srv)
{
    if (srv->repair.kick_init) {
        uv_timer_stop(&srv->repair.kick);
        uv_close((uv_handle_t *)&srv->repair.kick, NULL);
        srv->repair.kick_init = false;
        srv->repair.kick_pending = false;
    }
}
