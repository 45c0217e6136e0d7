/* meta_srv_status.c: STATUS_REQ, the key/value report the admin CLI
 * prints (`tessera status`).
 *
 * Keys: meta.version, meta.uptime_s, meta.instance, meta.data_dir,
 * meta.listen, meta.suspect_ms, meta.down_ms; the database counters
 * (sessions, inodes, dirs, files, oplog, db_bytes, chunks.total);
 * servers (registered), servers.up (up or draining), servers.suspect,
 * servers.down, servers.draining; capacity and capacity.free of the
 * servers not down; chunks (replicas reported by their heartbeats); the
 * repair progress of meta_srv_kv_progress() (chunks.ok, under_goal,
 * over_goal, missing from the last repair scan, repair.*, rebalance.*,
 * scrub.requested, drain.<id> = replicas still listed on a draining
 * server); then one "session.<id>" = "<name> <host> <idle_ms>ms" per
 * session and one "server.<id>" = "<addr> <state> free=<bytes>
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

void meta_srv_kv_reply(struct peer *p, uint64_t req_id, uint16_t opcode,
                       struct meta_srv_kv *o)
{
    struct proto_status_rep rep;
    struct proto_wbuf w;

    proto_wbuf_init(&w);
    rep.count = o->n;
    rep.raw.p = (const char *)o->w.p;
    rep.raw.len = (uint32_t)o->w.len;
    if (o->w.err == 0)
        proto_status_rep_encode(&w, &rep);
    meta_srv_reply(p, req_id, opcode, o->w.err, &w);
    proto_wbuf_free(&w);
    proto_wbuf_free(&o->w);
}

#define kv meta_srv_kv
#define kv_u64 meta_srv_kv_u64

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
    for (size_t i = 0; i < srv->nservers; i++) {
        if (!srv->servers[i].draining)
            continue;
        snprintf(key, sizeof(key), "drain.%u", srv->servers[i].id);
        kv_u64(o, key, srv->servers[i].replicas);
    }
}

void meta_srv_status(struct meta_srv_conn *c, uint64_t req_id,
                     const uint8_t *payload, size_t len)
{
    struct meta_srv *srv = c->srv;
    struct meta_stats st;
    struct meta_srv_kv o;
    uint64_t now = uv_now(srv->loop), chunks = 0, cap = 0, free_b = 0;
    uint32_t n[6] = {0};
    char key[64], val[512];
    int rc;

    (void)payload; /* STATUS_REQ has an empty body */
    (void)len;

    rc = meta_stats_get(srv->db, &st);
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_STATUS_REQ, rc, NULL);
        return;
    }
    meta_srv_server_usage(srv);
    for (size_t i = 0; i < srv->nservers; i++) {
        const struct meta_srv_server *s = &srv->servers[i];

        if (s->state < 6)
            n[s->state]++;
        if (meta_srv_server_alive(srv, s)) {
            chunks += s->chunks;
            cap += s->capacity;
            free_b += s->free;
        }
    }

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
                 s->free, s->chunks, s->capacity, s->used, s->replicas,
                 s->since_ns, s->last_hb ? now - s->last_hb : UINT64_MAX,
                 s->draining ? " draining=1" : "");
        kv(&o, key, val);
    }
    meta_srv_kv_reply(c->peer, req_id, PROTO_MSG_STATUS_REQ, &o);
}
