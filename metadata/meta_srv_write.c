/* meta_srv_write.c: CHUNK_WRITE_BEGIN, the one request metad cannot
 * answer from the database alone (docs/architecture.md, "Writing").
 *
 * Happy path for a hole: pick up to the file's goal of distinct up
 * servers, most free space first; take a new chunk id; send each
 * CHUNK_SETVERSION {id, 0 -> 1}; the servers that answered OK become the
 * replica set; record it with META_OP_CHUNK_SET (old version 0); answer
 * with the chunk's location and start a 60 s write lease.  For an existing
 * chunk with a live lease whose replicas are all up, answer at once and
 * extend the lease.  Otherwise bump: CHUNK_SETVERSION {id, v -> v+1} to
 * every replica that is up, the survivors form the new replica set,
 * META_OP_CHUNK_SET (old v, new v+1), answer.  Replicas that missed the
 * bump keep version v and are stale from then on; their next inventory
 * deletes them.
 *
 * Failure modes:
 *  - no server is up and not full for a hole: ENOSPC (the client's write
 *    fails with it: nothing can hold the data), or EIO (which the client
 *    tries again) while the servers may still be registering with a metad
 *    that just started to lead (meta_srv_servers_returning()); servers
 *    were up but none created the chunk, or no replica of an existing
 *    chunk is reachable: EIO.
 *  - META_OP_CHUNK_SET says -ESTALE (the slot changed meanwhile): start
 *    over, at most META_SRV_WRITE_RETRIES times, then EAGAIN.  Chunks
 *    created for a lost attempt are unknown to the database and are
 *    deleted by the servers' next inventory.
 *  - the requester disconnects while we wait: the request goes on (its
 *    result is recorded), the answer is dropped; struct meta_srv_write
 *    holds a peer reference so this is safe.
 *  - metad stops: the storage connections close, every SETVERSION fails
 *    with ECONNRESET and nothing is recorded.
 *
 * One slot, one request at a time: a WRITE_BEGIN for a slot that already
 * has one in flight waits in that one's queue and runs after it (usually
 * finding a live lease then), so a slot never gets two chunks.
 *
 * Life of one request (struct meta_srv_write):
 *
 *   queued --> PLAN --> WAIT (SETVERSIONs out) --> DECIDE --> RECORDED
 *                ^  \-----------(lease live)---------------\   |
 *                \------------ -ESTALE retry <-------------+--/
 *                 \---------- error ----------------------> REPLY
 *
 *   FROM    -> TO       [function]
 *   queued  -> PLAN     [meta_srv_write_begin, wb_complete]
 *   PLAN    -> WAIT     [wb_plan: requests sent]
 *   PLAN    -> WAIT     [wb_plan: parked behind another copy]
 *   WAIT    -> PLAN     [wake_parked: that copy is done]
 *   PLAN    -> REPLY    [wb_plan: live lease, or error]
 *   WAIT    -> DECIDE   [on_setversion: last answer in]
 *   DECIDE  -> WAIT     [wb_decide: copies made, bumps of the shared
 *                        chunk sent]
 *   DECIDE  -> WAIT     [wb_decide: the outcome's record proposed]
 *   DECIDE  -> RECORDED [wb_decide, on_wb_recorded: the record applied]
 *   RECORDED -> PLAN    [wb_recorded: -ESTALE, retries left]
 *   RECORDED -> REPLY   [wb_recorded: recorded, or error]
 *   REPLY   -> (freed)  [wb_complete: answers, starts the next queued]
 *
 * Copy-on-write (docs/vmdisk.md): when the slot's chunk is shared with
 * another file (a snapshot or clone), the attempt takes a new chunk id and
 * sends CHUNK_CLONE_REQ {src, v -> new, 1} to every live replica of the
 * shared chunk: each server copies it locally, nothing crosses the
 * network.  Then it bumps the shared chunk itself: CHUNK_SETVERSION
 * {src, v -> v+1} to the same replicas, as for a lease bump.  The servers
 * that made the copy become the new chunk's replica set, those that took
 * the bump stay the shared chunk's (the others are stale and dropped),
 * both recorded with one META_OP_CHUNK_COW (the slot moves to the copy,
 * the shared chunk loses a reference and is now at v+1), and the writer
 * gets the copy.  The per-slot queue (invariant 1) guarantees one copy
 * per slot.
 *
 * Why the bump: a client that cached the slot's location (src, v) and
 * does not hear of the copy (no callbacks: tessera-nbd, a validate-mode
 * mount, an export) would otherwise go on reading the shared chunk at v,
 * the snapshot's data, until its location cache expires.  After the bump
 * every reachable replica refuses v with EOLDVER and the client locates
 * again, getting the copy (or, for the snapshot, the shared chunk at
 * v+1).  Why copy first and bump second: the writer is answered only
 * after both, so it never writes the copy before every replica that
 * still serves v has refused it, whichever order; but bumping first would
 * make the shared chunk refuse its readers, the snapshot's included, for
 * as long as the copies take while metad still hands out v.  Copying
 * first keeps that window to one SETVERSION round trip and the record,
 * and a failed copy changes nothing.  A reader refused within it locates
 * again and gets v again; it waits and tries again while its replicas
 * say their version moved on (client/cl_chunk.c, CL_STALE_WAIT_MS), so
 * the window costs it a few milliseconds, not the read.  Two slots copying the same shared chunk at once (an origin
 * and its clone) would race on its version, so a second one waits
 * (parked, below) until the first is done and then copies from v+1.
 *
 * Snapshots (meta_srv_image.c) freeze the source file first: new
 * WRITE_BEGINs for it wait on the freeze, and every chunk of it that has
 * a write lease or a request in flight gets an internal request (no
 * requester; @done instead) that ends the lease and bumps the version, so
 * a client still holding the old lease fails with EOLDVER and asks again,
 * getting a copy.  The freeze lifts once the snapshot is recorded.  An
 * internal request never starts a lease, and leaves alone the chunks no
 * writer can hold a lease on: those of a read-only source (the snapshot
 * being cloned or snapshotted again) and shared ones, whose writers get
 * copies (meta_srv_write_plan).
 *
 * Down servers are never handed out: a hole gets up servers that are not
 * draining; a bump asks the replicas that are up or suspect, and those
 * that do not answer leave the chain.  CHUNK_LOCATE replies are filtered
 * the same way (meta_srv_locate, at the end of this file).
 *
 * Invariants:
 *  1. At most one struct meta_srv_write per slot is on srv->writes; the
 *     others for that slot are on its queue.
 *  2. w->pending counts SETVERSION requests whose callback has not run,
 *     plus one while wb_plan is still sending.
 *  3. At most one request on srv->writes copies a given shared chunk
 *     (w->cow with that src_id); another slot's request for the same
 *     chunk is parked (on srv->writes, nothing sent) until it is gone.
 */
#include "meta_srv.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lat.h"
#include "log.h"
#include "meta_op.h"

/* Driver states (positive; negative values are errors to answer with). */
enum { WB_PLAN = 1, WB_WAIT, WB_DECIDE, WB_RECORDED, WB_REPLY };

struct wb_target {
    struct meta_srv_write *w;
    uint32_t server_id;
    int status;
    int clone_status; /* a copy: the CHUNK_CLONE's, once bumping */
};

struct meta_srv_write {
    struct meta_srv *srv;
    struct meta_srv_write *next;  /* srv->writes, or a freeze's deferred */
    struct meta_srv_write *queue; /* waiting for this slot, FIFO */
    struct meta_srv_write *qnext;
    uint64_t t_start, t_phase; /* lat_now_ns(): queued, phase began */

    struct peer *peer; /* the requester: a reference; NULL when internal */
    uint64_t req_id;
    uint64_t ino, index;
    int tries;
    /* Internal requests (a snapshot's freeze): end the lease and bump,
     * never copy, then call @done instead of answering. */
    bool bump;
    void (*done)(void *arg, int rc);
    void *done_arg;

    /* The current attempt. */
    uint64_t chunk_id, old_version, new_version;
    bool cow;      /* copying shared chunk src_id at src_version */
    bool cow_bump; /* copies made: bumping src_id to src_version + 1 */
    bool parked;   /* invariant 3: waiting for another copy of src_id */
    uint64_t src_id, src_version;
    uint32_t ntargets, pending;
    struct wb_target targets[PROTO_MAX_REPLICAS];
    /* The outcome's record (META_OP_CHUNK_SET or _COW), once proposed. */
    struct meta_propose req;
    bool deciding; /* inside wb_decide(): the record may apply at once */
    bool recorded; /* its outcome is in @record_rc */
    int record_rc;
};

/* A file being snapshotted: its new WRITE_BEGINs wait in @deferred. */
struct meta_srv_freeze {
    struct meta_srv_freeze *next; /* srv->freezes */
    uint64_t ino;
    unsigned waiting; /* internal requests not done, +1 while starting */
    int rc;
    void (*cb)(void *arg, int rc);
    void *arg;
    struct meta_srv_write *deferred, **dtail;
};

/* ---- Stages (kill -USR1, /metrics) ------------------------------------- */

/* How long a WRITE_BEGIN takes from its arrival to its answer, and its
 * phases: the copies of a shared chunk (CHUNK_CLONE round), a version
 * bump (SETVERSION round, a lease's or a copy's), the outcome's record
 * (proposed to applied).  A write under a live lease has no phase. */
static struct lat_stage st_begin = {.name = "meta.write_begin"};
static struct lat_stage st_copy = {.name = "meta.write_begin.copy"};
static struct lat_stage st_bump = {.name = "meta.write_begin.bump"};
static struct lat_stage st_record = {.name = "meta.write_begin.record"};

void meta_srv_write_stats_register(void)
{
    lat_stage_register(&st_begin);
    lat_stage_register(&st_copy);
    lat_stage_register(&st_bump);
    lat_stage_register(&st_record);
}

/* ---- Write leases ------------------------------------------------------- */

static struct meta_srv_wlease *wlease_find(struct meta_srv *srv,
                                           uint64_t chunk_id)
{
    for (size_t i = 0; i < srv->nwleases; i++)
        if (srv->wleases[i].chunk_id == chunk_id)
            return &srv->wleases[i];
    return NULL;
}

static bool wlease_live(struct meta_srv *srv, uint64_t chunk_id)
{
    struct meta_srv_wlease *l = wlease_find(srv, chunk_id);

    return l && l->expiry > uv_now(srv->loop);
}

/* Start or extend the lease on @chunk_id.  Out of memory only costs a
 * version bump on the next WRITE_BEGIN, so it is not an error. */
static void wlease_set(struct meta_srv *srv, uint64_t chunk_id)
{
    struct meta_srv_wlease *l = wlease_find(srv, chunk_id);

    if (!l) {
        if (meta_srv_grow((void **)&srv->wleases, &srv->cwleases,
                          srv->nwleases + 1, sizeof(*l)) < 0)
            return;
        l = &srv->wleases[srv->nwleases++];
        l->chunk_id = chunk_id;
    }
    l->expiry = uv_now(srv->loop) + META_SRV_WRITE_LEASE_MS;
}

void meta_srv_write_tick(struct meta_srv *srv)
{
    uint64_t now = uv_now(srv->loop);
    size_t i = 0;

    while (i < srv->nwleases) {
        if (srv->wleases[i].expiry <= now)
            srv->wleases[i] = srv->wleases[--srv->nwleases];
        else
            i++;
    }
}

bool meta_srv_write_busy(struct meta_srv *srv, uint64_t chunk_id)
{
    return wlease_find(srv, chunk_id) || meta_srv_write_pending(srv, chunk_id);
}

void meta_srv_write_lease_end(struct meta_srv *srv, uint64_t chunk_id)
{
    struct meta_srv_wlease *l = wlease_find(srv, chunk_id);

    if (l)
        *l = srv->wleases[--srv->nwleases];
}

void meta_srv_write_server_down(struct meta_srv *srv, uint32_t server_id)
{
    size_t i = 0;

    /* A write under such a lease fails at the down server (it is in the
     * chain), so no write at the leased version can succeed any more:
     * ending the lease lets repair copy the chunk now, and the writer's
     * next WRITE_BEGIN bumps the version without that server. */
    while (i < srv->nwleases) {
        struct meta_chunk ch;
        bool on = false;

        if (meta_chunk_get(srv->db, srv->wleases[i].chunk_id, &ch) == 0)
            for (uint32_t k = 0; k < ch.nreplicas; k++)
                on |= ch.servers[k] == server_id;
        if (on)
            srv->wleases[i] = srv->wleases[--srv->nwleases];
        else
            i++;
    }
}

bool meta_srv_write_pending(struct meta_srv *srv, uint64_t chunk_id)
{
    if (meta_srv_pool_has(srv, chunk_id))
        return true; /* created for a write to come */
    /* Talking to the servers, or recording what they made: until its
     * record is applied a new chunk is in no table. */
    for (struct meta_srv_write *w = srv->writes; w; w = w->next)
        if ((w->pending || !w->recorded) &&
            (w->chunk_id == chunk_id || (w->cow && w->src_id == chunk_id)))
            return true;
    return false;
}

/* ---- Planning ----------------------------------------------------------- */

int meta_srv_inode_attr(struct meta_srv *srv, uint64_t ino,
                        struct proto_attr *a)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_attr_rep rep;
    struct proto_wbuf q, r;
    int rc;

    proto_wbuf_init(&q);
    proto_wbuf_init(&r);
    proto_ino_req_encode(&q, &req);
    rc = q.err;
    if (rc == 0)
        rc = meta_query(srv->db, PROTO_MSG_GETATTR_REQ, q.p, q.len, &r);
    if (rc == 0)
        rc = proto_attr_rep_decode(r.p, r.len, &rep);
    if (rc == 0)
        *a = rep.attr;
    proto_wbuf_free(&q);
    proto_wbuf_free(&r);
    return rc;
}

static int by_free_desc(const void *a, const void *b)
{
    const struct meta_srv_server *x = *(struct meta_srv_server *const *)a;
    const struct meta_srv_server *y = *(struct meta_srv_server *const *)b;

    if (x->free != y->free)
        return x->free > y->free ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Choose up to @goal up servers that are neither draining nor full for a
 * new chunk, most free space first.
 * Returns how many were put in w->targets, or -ENOMEM. */
static int pick_servers(struct meta_srv_write *w, uint32_t goal)
{
    struct meta_srv *srv = w->srv;
    struct meta_srv_server **up;
    size_t nup = 0;

    up = calloc(srv->nservers + 1, sizeof(*up));
    if (!up)
        return -ENOMEM;
    for (size_t i = 0; i < srv->nservers; i++)
        if (meta_srv_server_placeable(srv, &srv->servers[i]))
            up[nup++] = &srv->servers[i];
    qsort(up, nup, sizeof(*up), by_free_desc);
    if (goal == 0)
        goal = 1;
    if (goal > PROTO_MAX_REPLICAS)
        goal = PROTO_MAX_REPLICAS;
    w->ntargets = 0;
    for (size_t i = 0; i < nup && w->ntargets < goal; i++)
        w->targets[w->ntargets++].server_id = up[i]->id;
    free(up);
    return (int)w->ntargets;
}

static void on_setversion(struct peer *p, int status, const uint8_t *payload,
                          size_t len, void *arg);
static void wb_continue(struct meta_srv_write *w, int rc);
static void write_start(struct meta_srv *srv, struct meta_srv_write *w,
                        bool user);

/* Send CHUNK_SETVERSION {chunk_id, old -> new} to every target, or for
 * a copy (w->cow) CHUNK_CLONE {src_id, src_version -> chunk_id, new},
 * then (w->cow_bump) CHUNK_SETVERSION {src_id, src_version -> +1}. */
static int send_setversions(struct meta_srv_write *w)
{
    bool copying = w->cow && !w->cow_bump;
    struct proto_chunk_setversion_req req = {
        .chunk_id = w->cow ? w->src_id : w->chunk_id,
        .old_version = w->cow ? w->src_version : w->old_version,
        .new_version = w->cow ? w->src_version + 1 : w->new_version,
    };
    struct proto_chunk_clone_req clone = {
        .src_id = w->src_id,
        .src_version = w->src_version,
        .new_id = w->chunk_id,
        .new_version = w->new_version,
    };
    uint16_t opcode =
        copying ? PROTO_MSG_CHUNK_CLONE_REQ : PROTO_MSG_CHUNK_SETVERSION_REQ;
    uint64_t timeout = copying ? META_SRV_CLONE_MS : META_SRV_CTL_TIMEOUT_MS;
    struct proto_wbuf buf;
    int rc;

    proto_wbuf_init(&buf);
    if (copying)
        proto_chunk_clone_req_encode(&buf, &clone);
    else
        proto_chunk_setversion_req_encode(&buf, &req);
    w->pending = 1; /* invariant 2: held while sending */
    w->t_phase = lat_now_ns();
    for (uint32_t i = 0; i < w->ntargets; i++) {
        struct wb_target *t = &w->targets[i];
        struct meta_srv_server *s = meta_srv_server_find(w->srv, t->server_id);

        t->w = w;
        t->status = buf.err ? buf.err : -EHOSTUNREACH;
        if (buf.err || !s || !s->peer)
            continue;
        w->pending++;
        rc = peer_request(s->peer, opcode, buf.p, buf.len, timeout,
                          on_setversion, t);
        if (rc < 0) {
            w->pending--;
            t->status = rc;
        }
    }
    proto_wbuf_free(&buf);
    return --w->pending == 0 ? WB_DECIDE : WB_WAIT;
}

/* docs/vmdisk.md, "Snapshots and clones": what an attempt does with its
 * slot, from the facts wb_plan gathered.  A freeze's internal request
 * (f->internal) has no writer behind it: it only makes sure no lease on
 * the chunk is still good, so it never allocates or copies, and it bumps
 * only a chunk that a writer could hold a lease on: one of a writable
 * file, not shared.  A chunk of a snapshot, or one shared with one, can
 * hold no writer's lease (the freeze that shared it bumped it, and every
 * later writer got a copy), so the clone of a snapshot needs nothing of
 * its chunks; asking the servers for a bump there would only add a way to
 * fail.  The caller ends the chunk's lease first for an internal request,
 * and never starts one after it (wb_decide). */
int meta_srv_write_plan(const struct meta_srv_wfacts *f)
{
    if (f->readonly && !f->internal)
        return -EROFS; /* a snapshot is never written */
    if (f->hole)
        return f->internal ? META_SRV_WPLAN_NONE : META_SRV_WPLAN_ALLOCATE;
    if (f->internal && (f->readonly || f->refs > 1))
        return META_SRV_WPLAN_NONE;
    if (!f->internal && f->refs <= 1 && f->all_up && f->nreplicas &&
        f->lease_live)
        return META_SRV_WPLAN_EXTEND;
    if (f->nreachable == 0)
        return -EIO;
    if (f->refs > 1)
        return f->copying ? META_SRV_WPLAN_PARK : META_SRV_WPLAN_COPY;
    return META_SRV_WPLAN_BUMP;
}

/* A hole on the servers pick_servers() chose: a chunk of the pool on as
 * many fit servers if one is ready (created already: on to the record),
 * else a new one created now; either way the pool is topped up. */
static int allocate(struct meta_srv_write *w)
{
    struct meta_srv *srv = w->srv;
    uint32_t ids[PROTO_MAX_REPLICAS], pooled[PROTO_MAX_REPLICAS];
    uint32_t n = w->ntargets;
    uint64_t id;
    int rc;

    for (uint32_t i = 0; i < n; i++)
        ids[i] = w->targets[i].server_id;
    if (meta_srv_pool_take(srv, n, &id, pooled) < 0) {
        /* This write's chunk goes to the servers before the pool's. */
        w->chunk_id = ++srv->next_chunk_id;
        rc = send_setversions(w);
        meta_srv_pool_fill(srv, ids, n);
        return rc;
    }
    w->chunk_id = id;
    for (uint32_t i = 0; i < n; i++) {
        w->targets[i].w = w;
        w->targets[i].server_id = pooled[i];
        w->targets[i].status = 0;
    }
    meta_srv_pool_fill(srv, ids, n);
    return WB_DECIDE;
}

/* The other request on srv->writes copying @src_id (invariant 3). */
static bool cow_other(struct meta_srv_write *w, uint64_t src_id)
{
    for (struct meta_srv_write *o = w->srv->writes; o; o = o->next)
        if (o != w && o->cow && o->src_id == src_id)
            return true;
    return false;
}

/* Decide what the current attempt needs.  Returns WB_WAIT (requests
 * out), WB_DECIDE (no request could be sent), WB_REPLY (answer with the
 * current location) or a negative errno. */
static int wb_plan(struct meta_srv_write *w)
{
    struct meta_srv *srv = w->srv;
    struct meta_srv_wfacts f = {.internal = w->bump};
    struct proto_attr attr;
    struct meta_chunk ch = {0};
    uint32_t goal, flags = 0;
    int rc;

    if (srv->stopping)
        return -ECONNRESET;
    w->cow = false;
    w->cow_bump = false;
    rc = meta_srv_inode_attr(srv, w->ino, &attr);
    if (rc < 0)
        return rc;
    if (!S_ISREG(attr.mode))
        return S_ISDIR(attr.mode) ? -EISDIR : -EINVAL;
    if (w->index > UINT64_MAX / PROTO_CHUNK_SIZE)
        return -EFBIG;
    rc = meta_inode_flags(srv->db, w->ino, &flags);
    if (rc < 0)
        return rc;
    f.readonly = flags & META_INODE_READONLY;
    rc = meta_chunk_at(srv->db, w->ino, w->index, &ch);
    if (rc < 0 && rc != -ENOENT)
        return rc;
    f.hole = rc == -ENOENT;

    w->ntargets = 0;
    f.all_up = true;
    for (uint32_t i = 0; !f.hole && i < ch.nreplicas; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, ch.servers[i]);

        /* A suspect replica is still asked: it may answer. */
        if (s && meta_srv_server_alive(srv, s))
            w->targets[w->ntargets++].server_id = ch.servers[i];
        if (!s || !meta_srv_server_up(srv, s))
            f.all_up = false;
    }
    if (!f.hole) {
        f.refs = ch.refs;
        f.nreplicas = ch.nreplicas;
        f.nreachable = w->ntargets;
        f.lease_live = wlease_live(srv, ch.chunk_id);
        f.copying = cow_other(w, ch.chunk_id);
        w->chunk_id = ch.chunk_id;
        if (w->bump)
            meta_srv_write_lease_end(srv, ch.chunk_id);
    }

    rc = meta_srv_write_plan(&f);
    switch (rc) {
    case META_SRV_WPLAN_NONE:
        return WB_REPLY;
    case META_SRV_WPLAN_EXTEND:
        wlease_set(srv, ch.chunk_id);
        return WB_REPLY;
    case META_SRV_WPLAN_ALLOCATE:
        rc = meta_goal_get(srv->db, w->ino, &goal);
        if (rc < 0)
            return rc;
        rc = pick_servers(w, goal);
        if (rc <= 0)
            return rc < 0                            ? rc
                   : meta_srv_servers_returning(srv) ? -EIO
                                                     : -ENOSPC;
        w->old_version = 0;
        w->new_version = 1;
        return allocate(w);
    case META_SRV_WPLAN_PARK:
        w->parked = true;
        w->src_id = ch.chunk_id;
        return WB_WAIT;
    case META_SRV_WPLAN_COPY:
        /* Shared: every live replica makes a local copy. */
        w->cow = true;
        w->src_id = ch.chunk_id;
        w->src_version = ch.version;
        w->chunk_id = ++srv->next_chunk_id;
        w->old_version = 0;
        w->new_version = 1;
        return send_setversions(w);
    case META_SRV_WPLAN_BUMP:
        w->old_version = ch.version;
        w->new_version = ch.version + 1;
        return send_setversions(w);
    }
    if (rc == -EIO)
        log_warn("metad: write begin: no replica reachable: chunk=%016llx "
                 "ino=%llu index=%llu",
                 (unsigned long long)ch.chunk_id, (unsigned long long)w->ino,
                 (unsigned long long)w->index);
    return rc;
}

/* ---- Deciding ----------------------------------------------------------- */

static void on_setversion(struct peer *p, int status, const uint8_t *payload,
                          size_t len, void *arg)
{
    struct wb_target *t = arg;
    struct meta_srv_write *w = t->w;

    (void)payload;
    (void)len;
    t->status = status;
    if (status < 0 && !w->srv->stopping && w->cow_bump)
        log_warn("metad: copy-on-write: bumping the shared chunk failed: "
                 "%s chunk=%016llx version=%llu->%llu server=%u peer=%s",
                 strerror(-status), (unsigned long long)w->src_id,
                 (unsigned long long)w->src_version,
                 (unsigned long long)w->src_version + 1, t->server_id,
                 peer_name(p));
    else if (status < 0 && !w->srv->stopping && w->cow)
        log_warn("metad: chunk clone failed: %s chunk=%016llx "
                 "version=%llu new=%016llx server=%u peer=%s",
                 strerror(-status), (unsigned long long)w->src_id,
                 (unsigned long long)w->src_version,
                 (unsigned long long)w->chunk_id, t->server_id, peer_name(p));
    else if (status < 0 && !w->srv->stopping)
        log_warn("metad: chunk setversion failed: %s chunk=%016llx "
                 "version=%llu->%llu server=%u peer=%s",
                 strerror(-status), (unsigned long long)w->chunk_id,
                 (unsigned long long)w->old_version,
                 (unsigned long long)w->new_version, t->server_id,
                 peer_name(p));
    assert(w->pending > 0); /* invariant 2 */
    if (--w->pending > 0)
        return;
    lat_hist_record_since(w->cow && !w->cow_bump ? &st_copy.h : &st_bump.h,
                          w->t_phase);
    wb_continue(w, WB_DECIDE);
}

/* The record of a copy (META_OP_CHUNK_COW with the bump trailer): the
 * copy's replicas are the targets whose clone succeeded, the shared chunk
 * keeps those whose bump succeeded. */
static void cow_payload(struct meta_srv_write *w, struct proto_wbuf *payload)
{
    struct meta_op_chunk_cow m = {
        .ino = w->ino,
        .index = w->index,
        .src_id = w->src_id,
        .src_version = w->src_version,
        .new_id = w->chunk_id,
        .new_version = w->new_version,
        .bump = true,
        .src_new_version = w->src_version + 1,
    };

    for (uint32_t i = 0; i < w->ntargets; i++) {
        if (w->targets[i].clone_status == 0)
            m.set.servers[m.set.n++] = w->targets[i].server_id;
        if (w->targets[i].status == 0)
            m.src.servers[m.src.n++] = w->targets[i].server_id;
    }
    meta_op_chunk_cow_encode(payload, &m);
}

/* The record of a new chunk or a version bump (META_OP_CHUNK_SET): the
 * replicas are the targets that succeeded. */
static void set_payload(struct meta_srv_write *w, struct proto_wbuf *payload)
{
    struct meta_op_chunk_set m = {
        .ino = w->ino,
        .index = w->index,
        .chunk_id = w->chunk_id,
        .old_version = w->old_version,
        .new_version = w->new_version,
    };

    for (uint32_t i = 0; i < w->ntargets; i++)
        if (w->targets[i].status == 0)
            m.set.servers[m.set.n++] = w->targets[i].server_id;
    meta_op_chunk_set_encode(payload, &m);
}

static void on_wb_recorded(struct meta_propose *req, int rc,
                           const struct proto_wbuf *result)
{
    struct meta_srv_write *w = req->data;

    /* A copy whose slot changed meanwhile: only the bump was recorded. */
    if (rc == 0 && w->cow && (result->len != 1 || result->p[0] != 1))
        rc = -ESTALE;
    w->record_rc = rc;
    w->recorded = true;
    lat_hist_record_since(&st_record.h, w->t_phase);
    if (!w->deciding)
        wb_continue(w, WB_RECORDED);
}

/* Every SETVERSION (or CHUNK_CLONE) of the attempt has answered: propose
 * the outcome's record, or after the copies start the bump of the shared
 * chunk.  Returns WB_RECORDED (the record applied at once), WB_WAIT (it is
 * proposed, or bumping), WB_DECIDE (bumping) or a negative errno. */
static int wb_decide(struct meta_srv_write *w)
{
    struct meta_srv *srv = w->srv;
    struct proto_wbuf payload;
    uint32_t n = 0;
    int rc;

    if (srv->stopping)
        return -ECONNRESET;
    for (uint32_t i = 0; i < w->ntargets; i++)
        if (w->targets[i].status == 0)
            n++;
    if (n == 0 && w->cow_bump)
        log_warn("metad: copy-on-write: no replica took the bump: "
                 "chunk=%016llx version=%llu ino=%llu index=%llu",
                 (unsigned long long)w->src_id,
                 (unsigned long long)w->src_version, (unsigned long long)w->ino,
                 (unsigned long long)w->index);
    if (n == 0)
        return -EIO; /* the copies, unknown to the database, go at gc */
    if (w->cow && !w->cow_bump) {
        for (uint32_t i = 0; i < w->ntargets; i++)
            w->targets[i].clone_status = w->targets[i].status;
        w->cow_bump = true;
        return send_setversions(w);
    }

    if (!w->cow && w->old_version == 0) {
        /* A higher new id went first: this one would be refused
         * (invariant 1 of meta_chunk.c).  Plan again; the chunk made for
         * this attempt, unknown to the database, goes at gc. */
        if (w->chunk_id <= srv->proposed_chunk_id) {
            w->record_rc = -ESTALE;
            w->recorded = true;
            return WB_RECORDED;
        }
        srv->proposed_chunk_id = w->chunk_id;
    } else if (w->cow && w->chunk_id > srv->proposed_chunk_id) {
        srv->proposed_chunk_id = w->chunk_id;
    }

    proto_wbuf_init(&payload);
    if (w->cow)
        cow_payload(w, &payload);
    else
        set_payload(w, &payload);
    w->req.data = w;
    w->recorded = false;
    w->deciding = true;
    w->t_phase = lat_now_ns();
    rc = payload.err;
    if (rc == 0)
        rc = meta_srv_apply(srv, &w->req,
                            w->cow ? META_OP_CHUNK_COW : META_OP_CHUNK_SET, 0,
                            payload.p, payload.len, on_wb_recorded);
    w->deciding = false;
    proto_wbuf_free(&payload);
    if (rc < 0) {
        w->record_rc = rc;
        w->recorded = true;
    }
    return w->recorded ? WB_RECORDED : WB_WAIT;
}

/* The outcome's record is applied (or refused): retry on -ESTALE, else
 * answer.  Returns WB_REPLY, WB_PLAN or a negative errno. */
static int wb_recorded(struct meta_srv_write *w)
{
    struct meta_srv *srv = w->srv;
    int rc = w->record_rc;
    uint32_t n = 0;

    for (uint32_t i = 0; i < w->ntargets; i++)
        if (w->targets[i].status == 0)
            n++;
    if (rc < 0 && rc != -ESTALE && w->cow)
        log_error("metad: copy-on-write: recording the bump failed: %s "
                  "chunk=%016llx version=%llu->%llu",
                  strerror(-rc), (unsigned long long)w->src_id,
                  (unsigned long long)w->src_version,
                  (unsigned long long)w->src_version + 1);

    if (rc == -ESTALE) {
        if (++w->tries < META_SRV_WRITE_RETRIES)
            return WB_PLAN;
        return -EAGAIN;
    }
    if (rc < 0) {
        log_error("metad: write begin: recording chunk: %s chunk=%016llx "
                  "ino=%llu index=%llu",
                  strerror(-rc), (unsigned long long)w->chunk_id,
                  (unsigned long long)w->ino, (unsigned long long)w->index);
        return rc;
    }
    if (w->cow)
        log_info("metad: copy-on-write: chunk=%016llx -> %016llx "
                 "shared version=%llu ino=%llu index=%llu",
                 (unsigned long long)w->src_id, (unsigned long long)w->chunk_id,
                 (unsigned long long)w->src_version + 1,
                 (unsigned long long)w->ino, (unsigned long long)w->index);
    log_debug("meta.write",
              "chunk set: chunk=%016llx version=%llu "
              "replicas=%u ino=%llu index=%llu",
              (unsigned long long)w->chunk_id,
              (unsigned long long)w->new_version, n, (unsigned long long)w->ino,
              (unsigned long long)w->index);
    /* A freeze's bump ends the lease: granting one here would leave a
     * lease nobody holds on a chunk the snapshot is about to share, and
     * the next freeze of a sharer would take it for a writer's. */
    if (!w->bump)
        wlease_set(srv, w->chunk_id);
    return WB_REPLY;
}

/* ---- Replying ----------------------------------------------------------- */

/* CHUNK_WRITE_BEGIN_REP: a chunk_locate_rep with the file's size and the
 * one slot, as the database now has it. */
static int encode_location(struct meta_srv_write *w, struct proto_wbuf *out)
{
    struct meta_srv *srv = w->srv;
    struct proto_chunk_locate_rep rep;
    struct proto_chunk_loc loc;
    struct proto_wbuf raw;
    struct proto_attr attr;
    struct meta_chunk ch;
    int rc;

    rc = meta_srv_inode_attr(srv, w->ino, &attr);
    if (rc == 0)
        rc = meta_chunk_at(srv->db, w->ino, w->index, &ch);
    if (rc < 0)
        return rc;
    memset(&loc, 0, sizeof(loc));
    loc.index = w->index;
    loc.chunk_id = ch.chunk_id;
    loc.version = ch.version;
    loc.nreplicas = ch.nreplicas;
    for (uint32_t i = 0; i < ch.nreplicas; i++) {
        struct meta_srv_server *s = meta_srv_server_find(srv, ch.servers[i]);
        const char *addr = s ? s->addr : "";

        loc.replicas[i].server_id = ch.servers[i];
        loc.replicas[i].addr.p = addr;
        loc.replicas[i].addr.len = (uint32_t)strlen(addr);
    }
    proto_wbuf_init(&raw);
    proto_chunk_loc_put(&raw, &loc);
    rc = raw.err;
    if (rc == 0) {
        rep.file_size = attr.size;
        rep.count = 1;
        rep.raw.p = (const char *)raw.p;
        rep.raw.len = (uint32_t)raw.len;
        proto_chunk_locate_rep_encode(out, &rep);
        rc = out->err;
    }
    proto_wbuf_free(&raw);
    return rc;
}

/* Answer @w with @rc, free it and hand its slot to the first queued
 * request, which is returned (NULL when none). */
static struct meta_srv_write *wb_complete(struct meta_srv_write *w, int rc)
{
    struct meta_srv *srv = w->srv;
    struct meta_srv_write **pp, *q;
    struct proto_wbuf body;

    proto_wbuf_init(&body);
    if (w->peer) {
        if (rc >= 0)
            rc = encode_location(w, &body);
        meta_srv_reply(w->peer, w->req_id, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, rc,
                       &body);
        lat_hist_record_since(&st_begin.h, w->t_start);
    } else if (w->done) {
        w->done(w->done_arg, rc < 0 ? rc : 0);
    }
    proto_wbuf_free(&body);

    for (pp = &srv->writes; *pp != w; pp = &(*pp)->next)
        ;
    *pp = w->next;
    q = w->queue;
    if (q) { /* invariant 1: the head of the queue owns the slot now */
        q->queue = q->qnext;
        q->qnext = NULL;
        q->next = srv->writes;
        srv->writes = q;
    }
    if (w->peer)
        peer_unref(w->peer);
    free(w);
    return q;
}

/* True when a request on srv->writes is copying @src_id (invariant 3). */
static bool cow_owner(struct meta_srv *srv, uint64_t src_id)
{
    for (struct meta_srv_write *o = srv->writes; o; o = o->next)
        if (o->cow && o->src_id == src_id)
            return true;
    return false;
}

/* Plan again every parked request whose copy has no owner any more.  The
 * list changes under each one, so the walk starts over after it; a
 * request parks again only behind an owner, so this ends. */
static void wake_parked(struct meta_srv *srv)
{
    struct meta_srv_write *w;

again:
    for (w = srv->writes; w; w = w->next)
        if (w->parked && !cow_owner(srv, w->src_id)) {
            w->parked = false;
            wb_continue(w, WB_PLAN);
            goto again;
        }
}

/* Drive @w from state @rc until it waits on the network; answered
 * requests hand over to the next one queued for the slot. */
static void wb_continue(struct meta_srv_write *w, int rc)
{
    struct meta_srv *srv = w->srv;

    while (w) {
        if (rc == WB_PLAN)
            rc = wb_plan(w);
        if (rc == WB_DECIDE)
            rc = wb_decide(w);
        if (rc == WB_RECORDED)
            rc = wb_recorded(w);
        if (rc == WB_PLAN || rc == WB_DECIDE)
            continue;
        if (rc == WB_WAIT)
            return;
        w = wb_complete(w, rc < 0 ? rc : 0);
        wake_parked(srv);
        rc = WB_PLAN;
    }
}

void meta_srv_write_begin(struct meta_srv_conn *c, uint64_t req_id,
                          const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct proto_chunk_write_begin_req req;
    struct meta_srv_write *w;
    int rc;

    if (!meta_srv_lease_write_ok(c, req_id, payload, len))
        return; /* another session holds the image's writer lease */
    rc = proto_chunk_write_begin_req_decode(payload, len, &req);
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, rc,
                       NULL);
        return;
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ,
                       -ENOMEM, NULL);
        return;
    }
    w->srv = srv;
    w->peer = c->peer;
    peer_ref(w->peer);
    w->req_id = req_id;
    w->t_start = lat_now_ns();
    w->ino = req.ino;
    w->index = req.index;
    write_start(srv, w, true);
}

/* ---- Freezing a file for a snapshot ------------------------------------- */

static void freeze_one_done(void *arg, int rc)
{
    struct meta_srv_freeze *f = arg;

    if (rc < 0 && f->rc == 0)
        f->rc = rc;
    assert(f->waiting > 0);
    if (--f->waiting == 0)
        f->cb(f->arg, f->rc);
}

/* Queue an internal bump of slot (@f->ino, @index). */
static int freeze_slot(struct meta_srv *srv, struct meta_srv_freeze *f,
                       uint64_t index)
{
    struct meta_srv_write *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    w->srv = srv;
    w->ino = f->ino;
    w->index = index;
    w->bump = true;
    w->done = freeze_one_done;
    w->done_arg = f;
    f->waiting++;
    write_start(srv, w, false);
    return 0;
}

struct freeze_scan {
    struct meta_srv *srv;
    uint64_t *idx;
    size_t n, cap;
};

static int scan_add(struct freeze_scan *sc, uint64_t index)
{
    for (size_t i = 0; i < sc->n; i++)
        if (sc->idx[i] == index)
            return 0;
    if (meta_srv_grow((void **)&sc->idx, &sc->cap, sc->n + 1,
                      sizeof(*sc->idx)) < 0)
        return -ENOMEM;
    sc->idx[sc->n++] = index;
    return 0;
}

static int scan_leased(const struct meta_chunk *c, void *arg)
{
    struct freeze_scan *sc = arg;

    if (wlease_find(sc->srv, c->chunk_id))
        return scan_add(sc, c->index);
    return 0;
}

int meta_srv_write_freeze(struct meta_srv *srv, uint64_t ino,
                          void (*cb)(void *arg, int rc), void *arg)
{
    struct freeze_scan sc = {.srv = srv};
    struct meta_srv_freeze *f;
    int rc;

    rc = meta_file_chunk_foreach(srv->db, ino, scan_leased, &sc);
    for (struct meta_srv_write *w = srv->writes; rc == 0 && w; w = w->next)
        if (w->ino == ino)
            rc = scan_add(&sc, w->index);
    f = rc == 0 ? calloc(1, sizeof(*f)) : NULL;
    if (!f) {
        free(sc.idx);
        return rc < 0 ? rc : -ENOMEM;
    }
    f->ino = ino;
    f->cb = cb;
    f->arg = arg;
    f->dtail = &f->deferred;
    f->waiting = 1; /* held while starting */
    f->next = srv->freezes;
    srv->freezes = f;
    for (size_t i = 0; i < sc.n; i++)
        if ((rc = freeze_slot(srv, f, sc.idx[i])) < 0 && f->rc == 0)
            f->rc = rc;
    free(sc.idx);
    freeze_one_done(f, 0);
    return 0;
}

void meta_srv_write_thaw(struct meta_srv *srv, void *arg)
{
    struct meta_srv_freeze **pp, *f;
    struct meta_srv_write *w, *next;

    for (pp = &srv->freezes; *pp && (*pp)->arg != arg; pp = &(*pp)->next)
        ;
    f = *pp;
    if (!f)
        return;
    *pp = f->next;
    for (w = f->deferred; w; w = next) {
        next = w->next;
        w->next = NULL;
        write_start(srv, w, true);
    }
    free(f);
}

/* Start @w: behind a freeze of its file (@user requests only), behind the
 * request in flight for its slot, or now. */
static void write_start(struct meta_srv *srv, struct meta_srv_write *w,
                        bool user)
{
    struct meta_srv_write *owner, **tail;

    if (user)
        for (struct meta_srv_freeze *f = srv->freezes; f; f = f->next)
            if (f->ino == w->ino) {
                w->next = NULL;
                *f->dtail = w;
                f->dtail = &w->next;
                return;
            }
    for (owner = srv->writes; owner; owner = owner->next)
        if (owner->ino == w->ino && owner->index == w->index)
            break;
    if (owner) {
        for (tail = &owner->queue; *tail; tail = &(*tail)->qnext)
            ;
        *tail = w;
        return;
    }
    w->next = srv->writes;
    srv->writes = w;
    wb_continue(w, WB_PLAN);
}

/* ---- CHUNK_LOCATE ------------------------------------------------------- */

/* Rewrite one location: replicas on down (or unknown) servers are left
 * out, suspect ones go last, so a client never waits on a server metad
 * knows is gone (docs/protocol.md §11.7). */
static void loc_filter(struct meta_srv *srv, struct proto_chunk_loc *loc)
{
    struct proto_replica up[PROTO_MAX_REPLICAS], late[PROTO_MAX_REPLICAS];
    uint32_t nup = 0, nlate = 0;

    for (uint32_t i = 0; i < loc->nreplicas; i++) {
        struct meta_srv_server *s =
            meta_srv_server_find(srv, loc->replicas[i].server_id);

        if (s && meta_srv_server_up(srv, s))
            up[nup++] = loc->replicas[i];
        else if (s && meta_srv_server_alive(srv, s))
            late[nlate++] = loc->replicas[i];
    }
    for (uint32_t i = 0; i < nlate; i++)
        up[nup++] = late[i];
    memcpy(loc->replicas, up, nup * sizeof(up[0]));
    loc->nreplicas = nup;
}

void meta_srv_locate(struct meta_srv_conn *c, uint64_t req_id,
                     const uint8_t *payload, size_t len)
{
    struct proto_chunk_locate_rep rep;
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    struct proto_wbuf r, raw, out;
    int rc;

    proto_wbuf_init(&r);
    proto_wbuf_init(&raw);
    proto_wbuf_init(&out);
    rc = meta_query(c->srv->db, PROTO_MSG_CHUNK_LOCATE_REQ, payload, len, &r);
    if (rc == 0)
        rc = proto_chunk_locate_rep_decode(r.p, r.len, &rep);
    if (rc == 0) {
        proto_chunk_loc_iter_init(&it, &rep);
        while (proto_chunk_loc_next(&it, &loc)) {
            loc_filter(c->srv, &loc);
            proto_chunk_loc_put(&raw, &loc);
        }
        rc = raw.err;
    }
    if (rc == 0) {
        rep.raw.p = (const char *)raw.p;
        rep.raw.len = (uint32_t)raw.len;
        proto_chunk_locate_rep_encode(&out, &rep);
        rc = out.err;
    }
    meta_srv_reply(c->peer, req_id, PROTO_MSG_CHUNK_LOCATE_REQ, rc, &out);
    proto_wbuf_free(&r);
    proto_wbuf_free(&raw);
    proto_wbuf_free(&out);
}
