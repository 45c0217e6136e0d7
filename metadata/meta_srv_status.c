/* meta_srv_status.c: STATUS_REQ, the key/value report the admin CLI
 * prints (`tessera status`).
 *
 * Keys: meta.version, meta.uptime_s, meta.instance, meta.data_dir,
 * meta.listen, meta.suspect_ms, meta.down_ms; the database counters
 * (sessions, inodes, dirs, files, oplog, db_bytes, chunks.total);
 * servers (registered), servers.up (up or draining), servers.suspect,
 * servers.down, servers.draining; capacity, capacity.free and
 * capacity.disks of the servers not down, each disk once
 * (meta_srv_capacity); chunks (replicas reported by their heartbeats,
 * less the chunk pool's); the repair progress of meta_srv_kv_progress()
 * (chunks.ok, under_goal, over_goal, missing from the last repair scan,
 * repair.*, rebalance.*, scrub.requested, the scrubbers as the servers
 * report them (scrub.servers, running, chunks, total, errors, passes,
 * last_end_s over the servers;
 * "scrub.<id>" = "running|idle chunks=<n> total=<n> bytes=<n> errors=<n>
 * passes=<n> start_s=<s> end_s=<s>" each), drain.<id> = replicas still
 * listed on a draining server); then one "session.<id>" = "<name> <host>
 * <idle_ms>ms" per session and one "server.<id>" = "<addr> <state> free=<bytes>
 * chunks=<n> capacity=<bytes> used=<bytes> replicas=<n> since=<ns>
 * hb_ms=<heartbeat age> [draining=1]" per registered server, where
 * <state> is up, suspect, down, draining.  Values are text; the CLI
 * parses them.  ADMIN_ACTION replies reuse the same builder.
 */
#include "meta_srv.h"

#include <inttypes.h>
#include <stdio.h>

void meta_srv_kv(struct meta_srv_kv *o, const char *key, const char *value)
{
    proto_kv_put(&o->w, key, value);
    o->n++;
}

void meta_srv_kv_u64(struct meta_srv_kv *o, const char *key, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    meta_srv_kv(o, key, buf);
}

int meta_srv_kv_encode(struct meta_srv_kv *o, struct proto_wbuf *body)
{
    struct proto_status_rep rep;
    int rc = o->w.err;

    rep.count = o->n;
    rep.raw.p = (const char *)o->w.p;
    rep.raw.len = (uint32_t)o->w.len;
    if (rc == 0) {
        proto_status_rep_encode(body, &rep);
        rc = body->err;
    }
    proto_wbuf_free(&o->w);
    return rc;
}

void meta_srv_kv_reply(struct peer *p, uint64_t req_id, uint16_t opcode,
                       struct meta_srv_kv *o)
{
    struct proto_wbuf w;
    int rc;

    proto_wbuf_init(&w);
    rc = meta_srv_kv_encode(o, &w);
    meta_srv_reply(p, req_id, opcode, rc, &w);
    proto_wbuf_free(&w);
}

#define kv meta_srv_kv
#define kv_u64 meta_srv_kv_u64

/* The scrubbers as the servers last told (SCRUB_STATUS): totals over the
 * servers that did, then one "scrub.<id>" line each. */
static void kv_scrub(struct meta_srv *srv, struct meta_srv_kv *o)
{
    uint64_t n = 0, running = 0, chunks = 0, total = 0, errors = 0;
    uint64_t passes = 0;
    int64_t last_end = 0;
    char key[32], val[256];

    for (size_t i = 0; i < srv->nservers; i++) {
        const struct proto_scrub_status_req *q = &srv->servers[i].scrub;

        if (!q->server_id)
            continue;
        n++;
        running += q->running;
        chunks += q->chunks;
        total += q->total;
        errors += q->errors;
        passes += q->passes;
        if (q->end_s > last_end)
            last_end = q->end_s;
    }
    if (!n)
        return;
    kv_u64(o, "scrub.servers", n);
    kv_u64(o, "scrub.running", running);
    kv_u64(o, "scrub.chunks", chunks);
    kv_u64(o, "scrub.total", total);
    kv_u64(o, "scrub.errors", errors);
    kv_u64(o, "scrub.passes", passes);
    kv_u64(o, "scrub.last_end_s", (uint64_t)last_end);
    for (size_t i = 0; i < srv->nservers; i++) {
        const struct proto_scrub_status_req *q = &srv->servers[i].scrub;

        if (!q->server_id)
            continue;
        snprintf(key, sizeof(key), "scrub.%u", srv->servers[i].id);
        snprintf(val, sizeof(val),
                 "%s chunks=%" PRIu64 " total=%" PRIu64 " bytes=%" PRIu64
                 " errors=%" PRIu64 " passes=%" PRIu64 " start_s=%" PRId64
                 " end_s=%" PRId64,
                 q->running ? "running" : "idle", q->chunks, q->total, q->bytes,
                 q->errors, q->passes, q->start_s, q->end_s);
        kv(o, key, val);
    }
}

void meta_srv_kv_progress(struct meta_srv *srv, struct meta_srv_kv *o)
{
    const struct meta_srv_repair *r = &srv->repair;
    char key[64];

    kv_u64(o, "chunks.ok", r->ok);
    kv_u64(o, "chunks.under_goal", r->under);
    kv_u64(o, "chunks.over_goal", r->over);
    kv_u64(o, "chunks.missing", r->missing);
    kv_u64(o, "repair.inflight", r->inflight);
    kv_u64(o, "repair.queued", r->queued);
    kv_u64(o, "repair.unplaced", r->unplaced);
    kv_u64(o, "repair.copied", r->copied);
    kv_u64(o, "repair.failed", r->copy_failed);
    kv_u64(o, "repair.bytes", r->bytes);
    kv_u64(o, "repair.dropped", r->dropped);
    kv_u64(o, "repair.rate", r->rate);
    kv_u64(o, "repair.mbps", r->bps / (1024 * 1024));
    kv_u64(o, "repair.scans", r->scans);
    kv_u64(o, "repair.last_done_ns", (uint64_t)r->last_done_ns);
    kv_u64(o, "rebalance.active", r->rebalance);
    kv_u64(o, "rebalance.moved", r->moved);
    kv_u64(o, "scrub.requested", r->scrubs);
    kv_scrub(srv, o);
    for (size_t i = 0; i < srv->nservers; i++) {
        if (!srv->servers[i].draining)
            continue;
        snprintf(key, sizeof(key), "drain.%u", srv->servers[i].id);
        kv_u64(o, key, srv->servers[i].replicas);
    }
}

int meta_srv_status_build(struct meta_srv *srv, struct proto_wbuf *body)
{
    struct meta_stats st;
    struct meta_srv_kv o;
    uint64_t now = uv_now(srv->loop), chunks = 0, cap, free_b;
    uint32_t n[6] = {0}, disks;
    char key[64], val[512];
    int rc;

    rc = meta_stats_get(srv->db, &st);
    if (rc < 0)
        return rc;
    meta_srv_server_usage(srv);
    for (size_t i = 0; i < srv->nservers; i++) {
        const struct meta_srv_server *s = &srv->servers[i];

        if (s->state < 6)
            n[s->state]++;
        if (meta_srv_server_alive(srv, s))
            chunks += meta_srv_server_chunks(srv, s);
    }
    meta_srv_capacity(srv, &cap, &free_b, &disks);

    proto_wbuf_init(&o.w);
    o.n = 0;
    kv(&o, "meta.version", META_SRV_VERSION);
    kv_u64(&o, "meta.uptime_s", (now - srv->start_ms) / 1000);
    snprintf(val, sizeof(val), "%016" PRIx64, srv->instance_id);
    kv(&o, "meta.instance", val);
    kv(&o, "meta.data_dir", srv->data_dir);
    kv(&o, "meta.listen", srv->listen);
    kv_u64(&o, "meta.suspect_ms", srv->suspect_ms);
    kv_u64(&o, "meta.down_ms", srv->down_ms);
    kv_u64(&o, "sessions", st.sessions);
    kv_u64(&o, "inodes", st.inodes);
    kv_u64(&o, "dirs", st.dirs);
    kv_u64(&o, "files", st.files);
    kv_u64(&o, "orphans", st.orphans);
    kv_u64(&o, "oplog", st.ops);
    kv_u64(&o, "db_bytes", st.db_bytes);
    kv_u64(&o, "servers", srv->nservers);
    /* Up here means able to serve: up or draining (scripts wait on it). */
    kv_u64(&o, "servers.up", n[PROTO_SERVER_UP] + n[PROTO_SERVER_DRAINING]);
    kv_u64(&o, "servers.suspect", n[PROTO_SERVER_SUSPECT]);
    kv_u64(&o, "servers.down", n[PROTO_SERVER_DOWN]);
    kv_u64(&o, "servers.draining", n[PROTO_SERVER_DRAINING]);
    kv_u64(&o, "capacity", cap);
    kv_u64(&o, "capacity.free", free_b);
    kv_u64(&o, "capacity.disks", disks);
    kv_u64(&o, "chunks", chunks);
    kv_u64(&o, "chunks.total", st.chunks);
    meta_srv_kv_progress(srv, &o);
    meta_srv_cb_status(srv, &o);

    for (size_t i = 0; i < srv->nsessions; i++) {
        const struct meta_srv_session *s = &srv->sessions[i];

        snprintf(key, sizeof(key), "session.%" PRIu64, s->id);
        snprintf(val, sizeof(val), "%s %s %" PRIu64 "ms",
                 s->name[0] ? s->name : "-", s->host[0] ? s->host : "-",
                 now - s->last_seen);
        kv(&o, key, val);
    }
    for (size_t i = 0; i < srv->nservers; i++) {
        const struct meta_srv_server *s = &srv->servers[i];

        snprintf(key, sizeof(key), "server.%u", s->id);
        snprintf(val, sizeof(val),
                 "%s %s free=%" PRIu64 " chunks=%u capacity=%" PRIu64
                 " used=%" PRIu64 " replicas=%" PRIu64 " since=%" PRId64
                 " hb_ms=%" PRIu64 "%s",
                 s->addr[0] ? s->addr : "-", meta_srv_state_name(s->state),
                 s->free, meta_srv_server_chunks(srv, s), s->capacity,
                 s->stored, s->replicas,
                 s->since_ns, s->seen.last_hb ? now - s->seen.last_hb : UINT64_MAX,
                 s->draining ? " draining=1" : "");
        kv(&o, key, val);
    }
    return meta_srv_kv_encode(&o, body);
}

void meta_srv_status(struct meta_srv_conn *c, uint64_t req_id,
                     const uint8_t *payload, size_t len)
{
    struct proto_wbuf w;
    int rc;

    (void)payload; /* STATUS_REQ has an empty body */
    (void)len;
    proto_wbuf_init(&w);
    rc = meta_srv_status_build(c->srv, &w);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_STATUS_REQ, rc, &w);
    proto_wbuf_free(&w);
}
