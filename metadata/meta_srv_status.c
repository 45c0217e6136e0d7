/* meta_srv_status.c: STATUS_REQ, the key/value report the admin CLI
 * prints (`tessera status`).
 *
 * Keys: meta.version, meta.uptime_s, meta.instance, meta.data_dir,
 * meta.listen; the database counters (sessions, inodes, dirs, files,
 * oplog, db_bytes); servers (registered), servers.up, chunks (replicas
 * reported by the up servers' heartbeats); then one "session.<id>" =
 * "<name> <host> <idle_ms>ms" per session and one "server.<id>" =
 * "<addr> up|down free=<bytes> chunks=<n>" per registered server.  Values
 * are text; the CLI parses them.
 */
#include "meta_srv.h"

#include <inttypes.h>
#include <stdio.h>

/* The reply being built: pairs and their count. */
struct kv_out {
    struct proto_wbuf w;
    uint32_t n;
};

static void kv(struct kv_out *o, const char *key, const char *value)
{
    proto_kv_put(&o->w, key, value);
    o->n++;
}

static void kv_u64(struct kv_out *o, const char *key, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    kv(o, key, buf);
}

void meta_srv_status(struct meta_srv_conn *c, uint64_t req_id)
{
    struct meta_srv *srv = c->srv;
    struct meta_stats st;
    struct proto_status_rep rep;
    struct proto_wbuf w;
    struct kv_out o;
    uint64_t now = uv_now(srv->loop), chunks = 0;
    uint32_t up = 0;
    char key[64], val[512];
    int rc;

    rc = meta_stats_get(srv->db, &st);
    if (rc < 0) {
        meta_srv_reply(c->peer, req_id, PROTO_MSG_STATUS_REQ, rc, NULL);
        return;
    }
    for (size_t i = 0; i < srv->nservers; i++) {
        if (meta_srv_server_up(srv, &srv->servers[i])) {
            up++;
            chunks += srv->servers[i].chunks;
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
    kv_u64(&o, "sessions", st.sessions);
    kv_u64(&o, "inodes", st.inodes);
    kv_u64(&o, "dirs", st.dirs);
    kv_u64(&o, "files", st.files);
    kv_u64(&o, "oplog", st.ops);
    kv_u64(&o, "db_bytes", st.db_bytes);
    kv_u64(&o, "servers", srv->nservers);
    kv_u64(&o, "servers.up", up);
    kv_u64(&o, "chunks", chunks);

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
        snprintf(val, sizeof(val), "%s %s free=%" PRIu64 " chunks=%u",
                 s->addr[0] ? s->addr : "-",
                 meta_srv_server_up(srv, s) ? "up" : "down", s->free,
                 s->chunks);
        kv(&o, key, val);
    }
    proto_wbuf_init(&w);
    rep.count = o.n;
    rep.raw.p = (const char *)o.w.p;
    rep.raw.len = (uint32_t)o.w.len;
    if (o.w.err == 0)
        proto_status_rep_encode(&w, &rep);
    meta_srv_reply(c->peer, req_id, PROTO_MSG_STATUS_REQ, o.w.err, &w);
    proto_wbuf_free(&w);
    proto_wbuf_free(&o.w);
}
