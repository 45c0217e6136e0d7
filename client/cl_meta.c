/* cl_meta.c: requests to metad for the data path and its users.
 *
 * cl_meta_call() is the one way requests reach metad: it sends an encoded
 * request on the session's connection and decodes the reply in place.  On
 * top of it sit the chunk placement calls the data path needs (LOCATE,
 * WRITE_BEGIN, WRITE_END; docs/architecture.md, "Data flow"), the replica
 * reports (CHUNK_REPORT, docs/protocol.md §11.4), GETATTR and LOOKUP, the
 * reservation of inode numbers for creates answered locally (INO_RESERVE,
 * §6.23), and the mapping of data path errors to what an application may
 * see.
 *
 * Every location metad hands out lists live servers only (§11.8), so the
 * servers it lists lose any "down" mark we hold (cl_client.c).
 */
#include "cl_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

uint64_t cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t cl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int cl_errno(int err)
{
    switch (-err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EROFS:
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOMEM:
        return err;
    default:
        return -EIO;
    }
}

/* @req is borrowed; its latched encode error, if any, is returned. */
int cl_meta_call(struct cl_client *c, uint16_t opcode, struct proto_wbuf *req,
                 struct rpc_reply *rep, void *out)
{
    /* Nothing overtakes a change answered locally (cl_nsq.c). */
    cl_nsq_wait(c->nsq);
    return cl_meta_call_now(c, opcode, req, rep, out);
}

int cl_meta_call_on(struct cl_client *c, uint64_t ino, uint16_t opcode,
                    struct proto_wbuf *req, struct rpc_reply *rep, void *out)
{
    cl_nsq_wait_on(c->nsq, ino);
    return cl_meta_call_now(c, opcode, req, rep, out);
}

int cl_meta_call_now(struct cl_client *c, uint16_t opcode,
                     struct proto_wbuf *req, struct rpc_reply *rep, void *out)
{
    memset(rep, 0, sizeof(*rep));
    if (req->err)
        return req->err;
    return rpc_call_msg(c->meta, opcode, req, rep, out);
}

int cl_meta_getattr(struct cl_client *c, uint64_t ino, struct proto_attr *out)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_attr_rep a;
    int rc = cl_meta_call_on(c, ino, PROTO_MSG_GETATTR_REQ, &w, &rep, &a);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *out = a.attr;
    rpc_reply_free(&rep);
    return 0;
}

int cl_meta_release(struct cl_client *c, uint64_t ino)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_empty e;
    int rc = cl_meta_call(c, PROTO_MSG_RELEASE_REQ, &w, &rep, &e);
    proto_wbuf_free(&w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}

int cl_meta_ino_reserve(struct cl_client *c, uint32_t count, uint64_t *first,
                        uint32_t *got)
{
    struct proto_ino_reserve_req req = {.count = count};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_reserve_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_ino_reserve_rep out;
    int rc = cl_meta_call_now(c, PROTO_MSG_INO_RESERVE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *first = out.first;
    *got = out.count;
    rpc_reply_free(&rep);
    return 0;
}

int cl_meta_dir_delegate(struct cl_client *c, uint64_t ino, uint32_t *lease_ms)
{
    struct proto_dir_delegate_req req = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_dir_delegate_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_callback_register_rep out;
    int rc = cl_meta_call_now(c, PROTO_MSG_DIR_DELEGATE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *lease_ms = out.lease_ms;
    rpc_reply_free(&rep);
    return 0;
}

static void forget_down(struct cl_client *c, const struct cl_chunk *chunk)
{
    for (uint32_t r = 0; r < chunk->nreplicas; r++)
        cl_downset_remove(&c->down, chunk->server_id[r]);
}

/* @name is borrowed. */
int cl_meta_lookup(struct cl_client *c, const struct proto_cred *cred,
                   uint64_t parent, const char *name, struct proto_attr *out)
{
    struct proto_lookup_req req = {
        .cred = *cred,
        .parent = parent,
        .name = {name, (uint32_t)strlen(name)},
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_lookup_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_attr_rep a;
    int rc = cl_meta_call(c, PROTO_MSG_LOOKUP_REQ, &w, &rep, &a);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *out = a.attr;
    rpc_reply_free(&rep);
    return 0;
}

int cl_meta_locate(struct cl_client *c, uint64_t ino, uint64_t first,
                   uint32_t count)
{
    if (count == 0)
        return 0;
    if (count > PROTO_LOCATE_MAX)
        count = PROTO_LOCATE_MAX;

    struct proto_chunk_locate_req req = {
        .ino = ino, .first = first, .count = count};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_locate_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_chunk_locate_rep out;
    uint64_t since = cl_loc_seq(c->loc);
    int rc =
        cl_meta_call_on(c, ino, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;

    /* Slots metad leaves out (past the end of the file) are holes. */
    bool seen[PROTO_LOCATE_MAX] = {false};
    uint64_t now = cl_now_ms();
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    struct cl_chunk chunk;
    proto_chunk_loc_iter_init(&it, &out);
    while (proto_chunk_loc_next(&it, &loc)) {
        if (loc.index < first || loc.index - first >= count)
            continue;
        rc = cl_chunk_from_loc(&loc, &chunk);
        if (rc < 0)
            break;
        seen[loc.index - first] = true;
        forget_down(c, &chunk);
        cl_loc_put_reply(c->loc, ino, &chunk, now, since);
    }
    rpc_reply_free(&rep);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++) {
        if (seen[i])
            continue;
        memset(&chunk, 0, sizeof(chunk));
        chunk.index = first + i;
        cl_loc_put_reply(c->loc, ino, &chunk, now, since);
    }
    return 0;
}

int cl_meta_write_begin(struct cl_client *c, uint64_t ino, uint64_t index,
                        struct cl_chunk *out)
{
    struct proto_chunk_write_begin_req req = {.ino = ino, .index = index};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_begin_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_chunk_locate_rep lrep;
    int rc = cl_meta_call_on(c, ino, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, &w, &rep,
                             &lrep);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;

    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    proto_chunk_loc_iter_init(&it, &lrep);
    rc = -EPROTO;
    while (proto_chunk_loc_next(&it, &loc)) {
        if (loc.index != index || loc.chunk_id == 0 || loc.nreplicas == 0)
            continue;
        rc = cl_chunk_from_loc(&loc, out);
        break;
    }
    rpc_reply_free(&rep);
    if (rc == 0) {
        forget_down(c, out);
        cl_loc_put(c->loc, ino, out, cl_now_ms());
    }
    return rc;
}

int cl_meta_write_end(struct cl_client *c, uint64_t ino, uint64_t index,
                      uint64_t chunk_id, uint64_t size, int64_t mtime_ns)
{
    struct proto_chunk_write_end_req req = {
        .ino = ino,
        .index = index,
        .chunk_id = chunk_id,
        .size = size,
        .mtime = mtime_ns,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_end_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_attr_rep a;
    uint64_t epoch = cl_cb_epoch(c), gen = cl_attr_gen(c);
    struct cl_inode *n = cl_inode_find(c, ino);
    uint64_t forgets = n ? cl_inode_attr_forgets(n) : 0;
    int rc =
        cl_meta_call_on(c, ino, PROTO_MSG_CHUNK_WRITE_END_REQ, &w, &rep, &a);
    proto_wbuf_free(&w);
    if (rc == 0) {
        /* Our own change: the pages we cache still describe the file, and
         * the reply's attributes are the file's now (renewing the
         * promise). */
        cl_cb_note(c, ino, a.attr.version);
        if (n && cl_cb_enabled(c))
            cl_inode_attr_note(c, n, &a.attr, true, epoch, gen, forgets,
                               cl_now_ms() + cl_cb_keep_ms(c));
        rpc_reply_free(&rep);
    }
    cl_inode_put(c, n);
    return rc;
}

#define REPORT_EAGAIN_TRIES 20
#define REPORT_EAGAIN_MS 50

int cl_meta_report(struct cl_client *c, uint32_t server_id, uint64_t chunk_id,
                   uint64_t version, uint32_t reason)
{
    struct proto_chunk_report_req req = {
        .server_id = server_id,
        .chunk_id = chunk_id,
        .version = version,
        .reason = reason,
    };
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_report_req_encode(&w, &req);

    int rc = 0;
    for (int i = 0; i < REPORT_EAGAIN_TRIES; i++) {
        struct rpc_reply rep;
        struct proto_empty e;
        rc = cl_meta_call(c, PROTO_MSG_CHUNK_REPORT_REQ, &w, &rep, &e);
        if (rc == 0)
            rpc_reply_free(&rep);
        /* §11.8: EAGAIN while a WRITE_BEGIN or a repair copy of the chunk
         * is in flight. */
        if (rc != -EAGAIN)
            break;
        usleep(REPORT_EAGAIN_MS * 1000);
    }
    proto_wbuf_free(&w);
    if (rc == -ENOENT)
        rc = 0; /* the chunk or server is gone already */
    log_info("chunk report: sent: server=%u chunk=%016llx version=%llu "
             "reason=%u status=%d",
             server_id, (unsigned long long)chunk_id,
             (unsigned long long)version, reason, rc);
    return rc;
}
