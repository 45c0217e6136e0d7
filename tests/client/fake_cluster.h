/* fake_cluster.h: a fake metad and fake chunk servers for the client
 * library's unit tests (tests/client, tests/vmdisk).
 *
 * One thread runs a uv loop with a peer listener per node on loopback:
 * node 0 is metad, nodes 1..FK_SERVERS chunk servers.  They speak the real
 * protocol (docs/protocol.md) for the requests the client's data path
 * sends, over one file FK_INO of FK_CHUNKS chunk slots:
 *
 *   metad    SESSION_OPEN/RENEW/CLOSE, CALLBACK_REGISTER, GETATTR,
 *            LOOKUP and OPEN (the root, inode 1, holds the file as "img"
 *            and as "snap", a read-only snapshot: OPEN for writing EROFS),
 *            CHUNK_LOCATE, CHUNK_WRITE_BEGIN (a hole gets a chunk on the
 *            placement servers), CHUNK_WRITE_END (raises the size),
 *            CHUNK_REPORT (WRITE: drops that replica and bumps the
 *            version of the survivors, as §11.8 says; CHECKSUM: counted),
 *            RELEASE, IMAGE_LEASE (answers fk->lease_result), and
 *            IMAGE_LEASE_WAIT (held FK_WAIT_MS, or answered at once with
 *            the event fk_lease_event() sets)
 *   chunkd   CHUNK_READ, CHUNK_WRITE (applied on the receiver and its
 *            chain, EIO when a chain member is down or refuses),
 *            CHUNK_SYNC, CHUNK_TRUNCATE, each checking the version (EOLDVER,
 *            ESTALE on the client side)
 *
 * Faults: fk_fail() makes the next COUNT requests OPCODE at a node fail
 * with an errno (or FK_ECHECKSUM, FK_EOLDVER); fk_down() stops a chunk server
 * (its port refuses).  The test thread reads the counters and replicas under
 * fk->mu (FK_GET, fk_copy).
 */
#ifndef TEST_FAKE_CLUSTER_H
#define TEST_FAKE_CLUSTER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cl.h"
#include "peer.h"
#include "proto.h"

#define FK_SERVERS 4
#define FK_NODES (1 + FK_SERVERS)
#define FK_CHUNKS 4
#define FK_BYTES (256u << 10) /* bytes of a chunk a fake replica keeps */
#define FK_INO 42
#define FK_FAILS 8
#define FK_PEERS 32
#define FK_WAIT_MS 100 /* a long poll of the fake lasts this long */
/* Tessera's own wire errors, which no host errno sends (peer_reply_wire):
 * the client sees -EBADMSG and -ESTALE. */
#define FK_ECHECKSUM (-100001)
#define FK_EOLDVER (-100002)

struct fk_fail {
    uint16_t opcode;
    int err;
    int count;
};

struct fake;

struct fk_node {
    struct fake *fk;
    int id;
    struct peer_listener *l;
    char addr[32];
    bool down;
    struct peer *peers[FK_PEERS];
    int npeers;
    struct fk_fail fails[FK_FAILS];
    unsigned seen[0x1000]; /* requests by opcode & 0xfff */
};

struct fk_replica {
    uint64_t version; /* 0: the server has no copy */
    uint8_t *data;    /* FK_BYTES */
    unsigned syncs;   /* CHUNK_SYNC and CHUNK_WRITE with SYNC */
};

struct fk_slot {
    uint64_t chunk_id; /* 0: a hole */
    uint64_t version;
    uint32_t servers[PROTO_MAX_REPLICAS];
    uint32_t n;
};

struct fake {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop, kick;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    struct fk_node node[FK_NODES];
    /* metad's view of file FK_INO */
    uint64_t size, attr_version;
    int64_t end_mtime; /* the last CHUNK_WRITE_END's mtime */
    struct fk_slot slot[FK_CHUNKS];
    uint32_t place[PROTO_MAX_REPLICAS], nplace; /* servers for a new chunk */
    bool snap; /* the last LOOKUP named "snap" */
    unsigned reports_write, reports_checksum;
    uint32_t last_reported; /* server id */
    /* the chunk servers' copies, [server][slot] */
    struct fk_replica rep[FK_NODES][FK_CHUNKS];
    /* image writer lease (IMAGE_LEASE_REQ) */
    uint32_t lease_result; /* answer to ACQUIRE/TAKE */
    unsigned lease_ops[8]; /* by PROTO_LEASE_* op */
    /* IMAGE_LEASE_WAIT polls held until an event (fk_lease_event) or
     * FK_WAIT_MS, checked by @wait_timer. */
    struct {
        struct peer *p;
        uint64_t req_id;
        uint64_t since;
    } waits[FK_PEERS];
    int nwaits;
    uint64_t ev_ino;
    uint32_t ev_state; /* 0: no event to send */
    uv_timer_t wait_timer;
    /* With @sync_after_end (set by a test), the chunk servers hold every
     * CHUNK_SYNC until a CHUNK_WRITE_END reaches metad, then answer it;
     * one held FK_WAIT_MS fails with EIO instead. */
    bool sync_after_end;
    struct {
        struct peer *p;
        uint64_t req_id;
        uint64_t since;
        struct fk_replica *r;
    } held[FK_PEERS];
    int nheld;
    unsigned held_released, held_timedout;
};

static inline void fk_lock(struct fake *fk)
{
    pthread_mutex_lock(&fk->mu);
}
static inline void fk_unlock(struct fake *fk)
{
    pthread_mutex_unlock(&fk->mu);
}

/* The value of @expr (over fields of @fk) read under its lock.  Tests
 * assert on the copy: a failed assertion must not leave the lock held. */
#define FK_GET(fk, expr)                                                       \
    __extension__({                                                            \
        fk_lock(fk);                                                           \
        __typeof__(expr) fk_v_ = (expr);                                       \
        fk_unlock(fk);                                                         \
        fk_v_;                                                                 \
    })

static inline int fk_take_fail(struct fk_node *n, uint16_t opcode)
{
    for (int i = 0; i < FK_FAILS; i++) {
        struct fk_fail *f = &n->fails[i];
        if (f->count > 0 && f->opcode == opcode) {
            f->count--;
            return f->err;
        }
    }
    return 0;
}

static inline int fk_slot_of(uint64_t chunk_id)
{
    return chunk_id >= 1 && chunk_id <= FK_CHUNKS ? (int)chunk_id - 1 : -1;
}

static inline void fk_reply_wbuf(struct peer *p, uint64_t req_id,
                                 uint16_t opcode, int rc, struct proto_wbuf *w)
{
    uint16_t rop = (uint16_t)(opcode + 1);

    if (rc == 0 && w && w->err)
        rc = w->err;
    if (rc == FK_ECHECKSUM || rc == FK_EOLDVER)
        peer_reply_wire(p, req_id, rop,
                        rc == FK_ECHECKSUM ? PROTO_ECHECKSUM : PROTO_EOLDVER,
                        NULL, 0);
    else
        peer_reply(p, req_id, rop, rc, rc == 0 && w ? w->p : NULL,
                   rc == 0 && w ? w->len : 0);
}

/* ---- metad --------------------------------------------------------------- */

static inline void fk_attr(struct fake *fk, struct proto_attr *a)
{
    memset(a, 0, sizeof(*a));
    a->ino = FK_INO;
    a->mode = S_IFREG | 0644;
    a->nlink = 1;
    a->goal = 3;
    a->size = fk->size;
    a->version = fk->attr_version;
}

static inline void fk_loc(struct fake *fk, uint64_t index,
                          struct proto_chunk_loc *loc)
{
    const struct fk_slot *s = &fk->slot[index];
    memset(loc, 0, sizeof(*loc));
    loc->index = index;
    loc->chunk_id = s->chunk_id;
    loc->version = s->version;
    loc->nreplicas = s->n;
    for (uint32_t i = 0; i < s->n; i++) {
        const char *a = fk->node[s->servers[i]].addr;
        loc->replicas[i].server_id = s->servers[i];
        loc->replicas[i].addr.p = a;
        loc->replicas[i].addr.len = (uint32_t)strlen(a);
    }
}

/* A CHUNK_LOCATE or CHUNK_WRITE_BEGIN reply for slots [first, first+n). */
static inline void fk_locate_rep(struct fake *fk, uint64_t first, uint32_t n,
                                 struct proto_wbuf *out)
{
    struct proto_chunk_locate_rep rep = {.file_size = fk->size};
    struct proto_wbuf raw;
    proto_wbuf_init(&raw);
    for (uint64_t i = first; i < first + n && i < FK_CHUNKS; i++) {
        if (!fk->slot[i].chunk_id)
            continue;
        struct proto_chunk_loc loc;
        fk_loc(fk, i, &loc);
        proto_chunk_loc_put(&raw, &loc);
        rep.count++;
    }
    rep.raw.p = (const char *)raw.p;
    rep.raw.len = (uint32_t)raw.len;
    proto_chunk_locate_rep_encode(out, &rep);
    proto_wbuf_free(&raw);
}

static inline int fk_write_begin(struct fake *fk, const uint8_t *p, size_t len,
                                 struct proto_wbuf *out)
{
    struct proto_chunk_write_begin_req m;
    int rc = proto_chunk_write_begin_req_decode(p, len, &m);
    if (rc < 0)
        return rc;
    if (m.ino != FK_INO || m.index >= FK_CHUNKS)
        return -ENOENT;
    struct fk_slot *s = &fk->slot[m.index];
    if (!s->chunk_id) {
        s->chunk_id = m.index + 1;
        s->version = 1;
        s->n = fk->nplace;
        for (uint32_t i = 0; i < fk->nplace; i++) {
            struct fk_replica *r = &fk->rep[fk->place[i]][m.index];
            s->servers[i] = fk->place[i];
            r->version = 1;
            if (!r->data)
                r->data = calloc(1, FK_BYTES);
            assert_non_null(r->data);
        }
    }
    if (!s->n)
        return -EIO; /* no replica left to write to */
    fk_locate_rep(fk, m.index, 1, out);
    return 0;
}

/* §11.8: the replica a write failed on goes; the survivors move to a new
 * version, so the next WRITE_BEGIN gives a chain without it. */
static inline int fk_report(struct fake *fk, const uint8_t *p, size_t len)
{
    struct proto_chunk_report_req m;
    int rc = proto_chunk_report_req_decode(p, len, &m);
    int k = rc < 0 ? -1 : fk_slot_of(m.chunk_id);
    if (k < 0)
        return rc < 0 ? rc : -ENOENT;
    struct fk_slot *s = &fk->slot[k];
    fk->last_reported = m.server_id;
    if (m.reason == PROTO_REPORT_CHECKSUM) {
        fk->reports_checksum++;
        return 0;
    }
    fk->reports_write++;
    if (m.version != s->version)
        return 0; /* already handled */
    uint32_t j = 0;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->servers[i] != m.server_id || s->n == 1)
            s->servers[j++] = s->servers[i];
    s->n = j;
    s->version++;
    for (uint32_t i = 0; i < s->n; i++)
        fk->rep[s->servers[i]][k].version = s->version;
    return 0;
}

static inline int fk_image_lease(struct fake *fk, const uint8_t *p, size_t len,
                                 struct proto_wbuf *out)
{
    struct proto_image_lease_req m;
    int rc = proto_image_lease_req_decode(p, len, &m);
    if (rc < 0)
        return rc;
    if (m.op < 8)
        fk->lease_ops[m.op]++;
    struct proto_image_lease_rep rep = {.result = fk->lease_result};
    if (m.op == PROTO_LEASE_RELEASE)
        rep.result = PROTO_LEASE_FREE;
    rep.holder_name.p = "other";
    rep.holder_name.len = 5;
    rep.holder_host.p = "elsewhere";
    rep.holder_host.len = 9;
    proto_image_lease_rep_encode(out, &rep);
    return 0;
}

/* LOOKUP under the root ("img", "snap": FK_INO) and OPEN of FK_INO. */
static inline int fk_namespace(struct fake *fk, uint16_t opcode,
                               const uint8_t *p, size_t len,
                               struct proto_wbuf *out)
{
    struct proto_attr_rep a;
    if (opcode == PROTO_MSG_LOOKUP_REQ) {
        struct proto_lookup_req m;
        int rc = proto_lookup_req_decode(p, len, &m);
        if (rc < 0)
            return rc;
        fk->snap = m.name.len == 4 && !memcmp(m.name.p, "snap", 4);
        if (m.parent != 1 ||
            (!fk->snap && (m.name.len != 3 || memcmp(m.name.p, "img", 3))))
            return -ENOENT;
    } else {
        struct proto_access_req m;
        int rc = proto_access_req_decode(p, len, &m);
        if (rc < 0)
            return rc;
        if (m.ino != FK_INO)
            return -ENOENT;
        if (fk->snap && (m.mask & O_ACCMODE) != O_RDONLY)
            return -EROFS;
    }
    fk_attr(fk, &a.attr);
    proto_attr_rep_encode(out, &a);
    return 0;
}

/* Answer held poll @i with the pending event, if any, and drop it. */
static inline void fk_wait_answer(struct fake *fk, int i)
{
    struct proto_image_lease_wait m = {0};
    struct proto_wbuf raw, w;

    proto_wbuf_init(&raw);
    proto_wbuf_init(&w);
    if (fk->ev_state) {
        proto_lease_entry_put(&raw, fk->ev_ino, fk->ev_state);
        m.count = 1;
    }
    m.raw = (struct proto_str){(const char *)raw.p, (uint32_t)raw.len};
    proto_image_lease_wait_encode(&w, &m);
    fk_reply_wbuf(fk->waits[i].p, fk->waits[i].req_id,
                  PROTO_MSG_IMAGE_LEASE_WAIT_REQ, 0, &w);
    peer_unref(fk->waits[i].p);
    fk->waits[i] = fk->waits[--fk->nwaits];
    proto_wbuf_free(&raw);
    proto_wbuf_free(&w);
}

/* Answer held CHUNK_SYNC @i: done (@rc 0) or failed, and drop it. */
static inline void fk_held_answer(struct fake *fk, int i, int rc)
{
    if (rc == 0)
        fk->held[i].r->syncs++;
    fk_reply_wbuf(fk->held[i].p, fk->held[i].req_id, PROTO_MSG_CHUNK_SYNC_REQ,
                  rc, NULL);
    peer_unref(fk->held[i].p);
    fk->held[i] = fk->held[--fk->nheld];
}

/* Every 10 ms: polls with an event to tell, or held FK_WAIT_MS, answer;
 * so do syncs held that long (with EIO). */
static inline void fk_on_wait_timer(uv_timer_t *t)
{
    struct fake *fk = t->data;
    uint64_t now = uv_now(&fk->loop);

    fk_lock(fk);
    for (int i = fk->nwaits - 1; i >= 0; i--)
        if (fk->ev_state || now - fk->waits[i].since >= FK_WAIT_MS)
            fk_wait_answer(fk, i);
    for (int i = fk->nheld - 1; i >= 0; i--)
        if (now - fk->held[i].since >= FK_WAIT_MS) {
            fk->held_timedout++;
            fk_held_answer(fk, i, -EIO);
        }
    fk_unlock(fk);
}

static inline int fk_wait_hold(struct fake *fk, struct peer *p, uint64_t req_id,
                               const uint8_t *payload, size_t len)
{
    struct proto_image_lease_wait m;
    int rc = proto_image_lease_wait_decode(payload, len, &m);
    if (rc < 0)
        return rc;
    if (fk->nwaits == FK_PEERS)
        return -EAGAIN;
    peer_ref(p);
    fk->waits[fk->nwaits].p = p;
    fk->waits[fk->nwaits].req_id = req_id;
    fk->waits[fk->nwaits++].since = uv_now(&fk->loop);
    return 0;
}

static inline void fk_metad(struct fake *fk, struct peer *p, uint16_t opcode,
                            uint64_t req_id, const uint8_t *payload, size_t len)
{
    struct proto_wbuf w;
    int rc = 0;

    proto_wbuf_init(&w);
    switch (opcode) {
    case PROTO_MSG_SESSION_OPEN_REQ: {
        struct proto_session_open_rep m = {.session_id = 7, .lease_ms = 30000};
        proto_session_open_rep_encode(&w, &m);
        break;
    }
    case PROTO_MSG_SESSION_RENEW_REQ: {
        struct proto_session_renew_rep m = {.lease_ms = 30000};
        proto_session_renew_rep_encode(&w, &m);
        break;
    }
    case PROTO_MSG_CALLBACK_REGISTER_REQ: {
        struct proto_callback_register_rep m = {.lease_ms = 60000};
        proto_callback_register_rep_encode(&w, &m);
        break;
    }
    case PROTO_MSG_SESSION_CLOSE_REQ:
    case PROTO_MSG_RELEASE_REQ:
        break;
    case PROTO_MSG_LOOKUP_REQ:
    case PROTO_MSG_OPEN_REQ:
        rc = fk_namespace(fk, opcode, payload, len, &w);
        break;
    case PROTO_MSG_GETATTR_REQ:
    case PROTO_MSG_CHUNK_WRITE_END_REQ: {
        struct proto_attr_rep a;
        struct proto_ino_req q;
        if (opcode == PROTO_MSG_GETATTR_REQ &&
            proto_ino_req_decode(payload, len, &q) == 0 && q.ino == 1) {
            fk_attr(fk, &a.attr);
            a.attr.ino = 1;
            a.attr.mode = S_IFDIR | 0755;
            proto_attr_rep_encode(&w, &a);
            break;
        }
        if (opcode == PROTO_MSG_CHUNK_WRITE_END_REQ) {
            struct proto_chunk_write_end_req m;
            rc = proto_chunk_write_end_req_decode(payload, len, &m);
            if (rc == 0 && m.size > fk->size)
                fk->size = m.size;
            if (rc == 0)
                fk->end_mtime = m.mtime;
            fk->attr_version++;
            while (fk->nheld > 0) {
                fk->held_released++;
                fk_held_answer(fk, fk->nheld - 1, 0);
            }
        }
        fk_attr(fk, &a.attr);
        proto_attr_rep_encode(&w, &a);
        break;
    }
    case PROTO_MSG_CHUNK_LOCATE_REQ: {
        struct proto_chunk_locate_req m;
        rc = proto_chunk_locate_req_decode(payload, len, &m);
        if (rc == 0)
            fk_locate_rep(fk, m.first, m.count, &w);
        break;
    }
    case PROTO_MSG_CHUNK_WRITE_BEGIN_REQ:
        rc = fk_write_begin(fk, payload, len, &w);
        break;
    case PROTO_MSG_CHUNK_REPORT_REQ:
        rc = fk_report(fk, payload, len);
        break;
    case PROTO_MSG_IMAGE_LEASE_REQ:
        rc = fk_image_lease(fk, payload, len, &w);
        break;
    case PROTO_MSG_IMAGE_LEASE_WAIT_REQ:
        rc = fk_wait_hold(fk, p, req_id, payload, len);
        if (rc == 0) {
            proto_wbuf_free(&w);
            return; /* answered by fk_on_wait_timer */
        }
        break;
    default:
        rc = -ENOSYS;
    }
    fk_reply_wbuf(p, req_id, opcode, rc, &w);
    proto_wbuf_free(&w);
}

/* ---- chunk servers ------------------------------------------------------- */

/* The copy of chunk @chunk_id at @version on server @id: NULL with *rc
 * -ENOENT or FK_EOLDVER. */
static inline struct fk_replica *fk_replica(struct fake *fk, uint32_t id,
                                            uint64_t chunk_id, uint64_t version,
                                            int *rc)
{
    int k = fk_slot_of(chunk_id);
    struct fk_replica *r =
        k < 0 || id == 0 || id >= FK_NODES ? NULL : &fk->rep[id][k];
    *rc = 0;
    if (!r || !r->version) {
        *rc = -ENOENT;
        return NULL;
    }
    if (r->version != version) {
        *rc = FK_EOLDVER;
        return NULL;
    }
    return r;
}

static inline int fk_chunk_write(struct fake *fk, struct fk_node *n,
                                 const uint8_t *p, size_t len)
{
    struct proto_chunk_write_req m;
    struct fk_replica *r[PROTO_MAX_REPLICAS + 1];
    int rc = proto_chunk_write_req_decode(p, len, &m);
    if (rc < 0)
        return rc;
    if ((uint64_t)m.offset + m.data.len > FK_BYTES)
        return -EINVAL;
    r[0] = fk_replica(fk, (uint32_t)n->id, m.chunk_id, m.version, &rc);
    if (!r[0])
        return rc;
    for (uint32_t i = 0; i < m.nchain; i++) {
        struct fk_node *d = &fk->node[m.chain[i].server_id % FK_NODES];
        /* A chain member down or refusing: the forward fails. */
        if (d->down || fk_take_fail(d, PROTO_MSG_CHUNK_WRITE_REQ))
            return -EIO;
        r[i + 1] =
            fk_replica(fk, m.chain[i].server_id, m.chunk_id, m.version, &rc);
        if (!r[i + 1])
            return rc;
    }
    for (uint32_t i = 0; i <= m.nchain; i++) {
        memcpy(r[i]->data + m.offset, m.data.p, m.data.len);
        r[i]->syncs += (m.flags & PROTO_CHUNK_WRITE_SYNC) != 0;
    }
    return 0;
}

static inline void fk_chunkd(struct fake *fk, struct fk_node *n, struct peer *p,
                             uint16_t opcode, uint64_t req_id,
                             const uint8_t *payload, size_t len)
{
    struct proto_wbuf w;
    struct fk_replica *r;
    int rc = 0;

    proto_wbuf_init(&w);
    switch (opcode) {
    case PROTO_MSG_CHUNK_READ_REQ: {
        struct proto_chunk_read_req m;
        rc = proto_chunk_read_req_decode(payload, len, &m);
        if (rc == 0 && (uint64_t)m.offset + m.length > FK_BYTES)
            rc = -EINVAL;
        if (rc == 0 &&
            (r = fk_replica(fk, (uint32_t)n->id, m.chunk_id, m.version, &rc))) {
            struct proto_bytes_rep b = {
                .data = {(const char *)r->data + m.offset, m.length}};
            proto_bytes_rep_encode(&w, &b);
        }
        break;
    }
    case PROTO_MSG_CHUNK_WRITE_REQ:
        rc = fk_chunk_write(fk, n, payload, len);
        break;
    case PROTO_MSG_CHUNK_SYNC_REQ: {
        struct proto_chunk_sync_req m;
        rc = proto_chunk_sync_req_decode(payload, len, &m);
        r = rc == 0
                ? fk_replica(fk, (uint32_t)n->id, m.chunk_id, m.version, &rc)
                : NULL;
        if (r && fk->sync_after_end && fk->nheld < FK_PEERS) {
            peer_ref(p);
            fk->held[fk->nheld].p = p;
            fk->held[fk->nheld].req_id = req_id;
            fk->held[fk->nheld].since = uv_now(&fk->loop);
            fk->held[fk->nheld++].r = r;
            proto_wbuf_free(&w);
            return; /* answered by the next WRITE_END, or the timer */
        }
        if (r)
            r->syncs++;
        break;
    }
    case PROTO_MSG_CHUNK_TRUNCATE_REQ: {
        struct proto_chunk_truncate_req m;
        rc = proto_chunk_truncate_req_decode(payload, len, &m);
        if (rc == 0 &&
            (r = fk_replica(fk, (uint32_t)n->id, m.chunk_id, m.version, &rc)) &&
            m.length < FK_BYTES)
            memset(r->data + m.length, 0, FK_BYTES - m.length);
        break;
    }
    default:
        rc = -ENOSYS;
    }
    fk_reply_wbuf(p, req_id, opcode, rc, &w);
    proto_wbuf_free(&w);
}

/* ---- The loop ------------------------------------------------------------ */

static inline void fk_on_ready(struct peer *p)
{
    struct fk_node *n = peer_get_listener_data(p);
    if (n->npeers < FK_PEERS) {
        n->peers[n->npeers++] = p;
        peer_ref(p);
    }
}

static inline void fk_on_close(struct peer *p, int status)
{
    struct fk_node *n = peer_get_listener_data(p);
    (void)status;
    for (int i = 0; i < n->npeers; i++)
        if (n->peers[i] == p) {
            n->peers[i] = n->peers[--n->npeers];
            peer_unref(p);
            break;
        }
}

static inline void fk_on_request(struct peer *p, uint16_t opcode,
                                 uint64_t req_id, const uint8_t *payload,
                                 size_t len)
{
    struct fk_node *n = peer_get_listener_data(p);
    struct fake *fk = n->fk;

    fk_lock(fk);
    if (getenv("FK_TRACE"))
        fprintf(stderr, "fk: node=%d %s\n", n->id, proto_msg_name(opcode));
    n->seen[opcode & 0xfff]++;
    int err = fk_take_fail(n, opcode);
    if (err)
        fk_reply_wbuf(p, req_id, opcode, err, NULL);
    else if (n->id == 0)
        fk_metad(fk, p, opcode, req_id, payload, len);
    else
        fk_chunkd(fk, n, p, opcode, req_id, payload, len);
    pthread_cond_broadcast(&fk->cv);
    fk_unlock(fk);
}

static const struct peer_ops fk_ops = {
    .on_ready = fk_on_ready,
    .on_request = fk_on_request,
    .on_close = fk_on_close,
};

static inline void fk_node_stop(struct fk_node *n)
{
    while (n->npeers > 0) {
        struct peer *p = n->peers[0];
        peer_ref(p);
        peer_close(p); /* on_close drops it from the list */
        if (n->npeers > 0 && n->peers[0] == p) {
            n->peers[0] = n->peers[--n->npeers];
            peer_unref(p);
        }
        peer_unref(p);
    }
    if (n->l)
        peer_listener_close(n->l);
    n->l = NULL;
}

/* On the loop: stop the nodes marked down (fk_down). */
static inline void fk_on_kick(uv_async_t *a)
{
    struct fake *fk = a->data;
    fk_lock(fk);
    for (int i = 1; i < FK_NODES; i++)
        if (fk->node[i].down && fk->node[i].l)
            fk_node_stop(&fk->node[i]);
    fk->started = true; /* reused as "kick handled" */
    pthread_cond_broadcast(&fk->cv);
    fk_unlock(fk);
}

static inline void fk_on_stop(uv_async_t *a)
{
    struct fake *fk = a->data;
    fk_lock(fk);
    while (fk->nwaits > 0)
        fk_wait_answer(fk, 0);
    fk_unlock(fk);
    uv_close((uv_handle_t *)&fk->wait_timer, NULL);
    for (int i = 0; i < FK_NODES; i++)
        fk_node_stop(&fk->node[i]);
    uv_close((uv_handle_t *)&fk->stop, NULL);
    uv_close((uv_handle_t *)&fk->kick, NULL);
}

static inline void *fk_main(void *arg)
{
    struct fake *fk = arg;
    uv_run(&fk->loop, UV_RUN_DEFAULT);
    uv_loop_close(&fk->loop);
    return NULL;
}

/* Start a fake cluster: chunks are placed on servers 1, 2 and 3. */
static inline struct fake *fk_start(void)
{
    struct fake *fk = calloc(1, sizeof(*fk));

    assert_non_null(fk);
    pthread_mutex_init(&fk->mu, NULL);
    pthread_cond_init(&fk->cv, NULL);
    assert_int_equal(uv_loop_init(&fk->loop), 0);
    uv_async_init(&fk->loop, &fk->stop, fk_on_stop);
    uv_async_init(&fk->loop, &fk->kick, fk_on_kick);
    fk->stop.data = fk->kick.data = fk;
    uv_timer_init(&fk->loop, &fk->wait_timer);
    fk->wait_timer.data = fk;
    uv_timer_start(&fk->wait_timer, fk_on_wait_timer, 10, 10);
    for (int i = 0; i < FK_NODES; i++) {
        struct fk_node *n = &fk->node[i];
        n->fk = fk;
        n->id = i;
        assert_int_equal(
            peer_listen(&fk->loop, "127.0.0.1:0", &fk_ops, n, &n->l), 0);
        snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d",
                 peer_listener_port(n->l));
    }
    fk->nplace = 3;
    for (uint32_t i = 0; i < 3; i++)
        fk->place[i] = i + 1;
    fk->attr_version = 1;
    assert_int_equal(pthread_create(&fk->thread, NULL, fk_main, fk), 0);
    return fk;
}

static inline void fk_stop(struct fake *fk)
{
    if (!fk)
        return;
    uv_async_send(&fk->stop);
    pthread_join(fk->thread, NULL);
    for (int s = 0; s < FK_NODES; s++)
        for (int k = 0; k < FK_CHUNKS; k++)
            free(fk->rep[s][k].data);
    pthread_cond_destroy(&fk->cv);
    pthread_mutex_destroy(&fk->mu);
    free(fk);
}

/* The next @count requests @opcode at node @node fail with @err. */
static inline void fk_fail(struct fake *fk, int node, uint16_t opcode, int err,
                           int count)
{
    fk_lock(fk);
    struct fk_node *n = &fk->node[node];
    int i = 0;
    while (i < FK_FAILS - 1 && n->fails[i].count > 0 &&
           n->fails[i].opcode != opcode)
        i++;
    n->fails[i] =
        (struct fk_fail){.opcode = opcode, .err = err, .count = count};
    fk_unlock(fk);
}

/* Tell every IMAGE_LEASE_WAIT poll, held now or coming, that the lease of
 * @ino is in @state (PROTO_LEASE_RECALL, PROTO_LEASE_LOST), until
 * fk_lease_event(fk, 0, 0). */
static inline void fk_lease_event(struct fake *fk, uint64_t ino, uint32_t state)
{
    fk_lock(fk);
    fk->ev_ino = ino;
    fk->ev_state = state;
    fk_unlock(fk);
}

/* Chunk server @node goes away: its connections close and its port
 * refuses.  Returns once done. */
static inline void fk_down(struct fake *fk, int node)
{
    fk_lock(fk);
    fk->node[node].down = true;
    fk->started = false;
    fk_unlock(fk);
    uv_async_send(&fk->kick);
    fk_lock(fk);
    while (!fk->started)
        pthread_cond_wait(&fk->cv, &fk->mu);
    fk_unlock(fk);
}

/* Copy @len bytes at @off of server @s's copy of chunk slot @k. */
static inline void fk_copy(struct fake *fk, int s, int k, uint32_t off,
                           uint8_t *out, size_t len)
{
    fk_lock(fk);
    const uint8_t *d = fk->rep[s][k].data;
    if (d)
        memcpy(out, d + off, len);
    fk_unlock(fk);
    assert_non_null(d);
}

/* A client of the fake cluster with @mode and @callbacks, and file FK_INO
 * open in it with @size known. */
static inline void fk_client_open(struct fake *fk, enum cl_cache_mode mode,
                                  bool callbacks, uint64_t size,
                                  struct cl_client **c, struct cl_inode **n)
{
    struct cl_opts o = {.meta = fk->node[0].addr,
                        .name = "test-cl",
                        .role = PROTO_ROLE_CLIENT,
                        .cache = mode,
                        .callbacks = callbacks};
    assert_int_equal(cl_client_open(&o, c), 0);
    assert_int_equal(cl_inode_open(*c, FK_INO, size, n), 0);
}

/* The usual fixture: a fake cluster, a client of it in @mode without
 * callbacks, and FK_INO open.  Freed by fk_fix_teardown(). */
struct fk_fix {
    struct fake *fk;
    struct cl_client *c;
    struct cl_inode *n;
};

static inline int fk_fix_setup(void **state, enum cl_cache_mode mode)
{
    struct fk_fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->fk = fk_start();
    fk_client_open(f->fk, mode, false, 0, &f->c, &f->n);
    *state = f;
    return 0;
}

static inline int fk_fix_teardown(void **state)
{
    struct fk_fix *f = *state;
    cl_inode_put(f->c, f->n);
    cl_client_close(f->c);
    fk_stop(f->fk);
    free(f);
    return 0;
}

/* Test bytes that differ with @seed. */
static inline void fk_fill(uint8_t *b, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7);
}

static inline unsigned fk_seen(struct fake *fk, int node, uint16_t opcode)
{
    fk_lock(fk);
    unsigned k = fk->node[node].seen[opcode & 0xfff];
    fk_unlock(fk);
    return k;
}

#endif
