/* fc_meta.c: requests to metad shared by the namespace and data paths.
 *
 * fc_meta_call() is the one way requests reach metad: it sends an encoded
 * request on the session's connection and decodes the reply in place.  On
 * top of it sit the chunk placement calls the data path needs (LOCATE,
 * WRITE_BEGIN, WRITE_END; docs/architecture.md, "Data flow") and the
 * mapping of data path errors to what an application may see.  Building
 * credentials needs the FUSE request, so that stays in fc_ops.c.
 */
#include "fc_internal.h"

#include <errno.h>
#include <string.h>
#include <time.h>

uint64_t fc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t fc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int fc_data_errno(int err)
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
int fc_meta_call(struct fc_fs *fs, uint16_t opcode, struct proto_wbuf *req,
                 struct rpc_reply *rep, void *out)
{
    memset(rep, 0, sizeof(*rep));
    if (req->err)
        return req->err;
    return rpc_call_msg(fs->meta, opcode, req, rep, out);
}

int fc_meta_getattr(struct fc_fs *fs, uint64_t ino, struct proto_attr *out)
{
    struct proto_ino_req req = {.ino = ino};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_ino_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_attr_rep a;
    int rc = fc_meta_call(fs, PROTO_MSG_GETATTR_REQ, &w, &rep, &a);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;
    *out = a.attr;
    rpc_reply_free(&rep);
    return 0;
}

int fc_meta_locate(struct fc_fs *fs, uint64_t ino, uint64_t first,
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
    int rc = fc_meta_call(fs, PROTO_MSG_CHUNK_LOCATE_REQ, &w, &rep, &out);
    proto_wbuf_free(&w);
    if (rc < 0)
        return rc;

    /* Slots metad leaves out (past the end of the file) are holes. */
    bool seen[PROTO_LOCATE_MAX] = {false};
    uint64_t now = fc_now_ms();
    struct proto_chunk_loc_iter it;
    struct proto_chunk_loc loc;
    struct fc_chunk chunk;
    proto_chunk_loc_iter_init(&it, &out);
    while (proto_chunk_loc_next(&it, &loc)) {
        if (loc.index < first || loc.index - first >= count)
            continue;
        rc = fc_chunk_from_loc(&loc, &chunk);
        if (rc < 0)
            break;
        seen[loc.index - first] = true;
        fc_loc_put(fs->loc, ino, &chunk, now);
    }
    rpc_reply_free(&rep);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++) {
        if (seen[i])
            continue;
        memset(&chunk, 0, sizeof(chunk));
        chunk.index = first + i;
        fc_loc_put(fs->loc, ino, &chunk, now);
    }
    return 0;
}

int fc_meta_write_begin(struct fc_fs *fs, uint64_t ino, uint64_t index,
                        struct fc_chunk *out)
{
    struct proto_chunk_write_begin_req req = {.ino = ino, .index = index};
    struct proto_wbuf w;
    proto_wbuf_init(&w);
    proto_chunk_write_begin_req_encode(&w, &req);

    struct rpc_reply rep;
    struct proto_chunk_locate_rep lrep;
    int rc = fc_meta_call(fs, PROTO_MSG_CHUNK_WRITE_BEGIN_REQ, &w, &rep, &lrep);
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
        rc = fc_chunk_from_loc(&loc, out);
        break;
    }
    rpc_reply_free(&rep);
    if (rc == 0)
        fc_loc_put(fs->loc, ino, out, fc_now_ms());
    return rc;
}

int fc_meta_write_end(struct fc_fs *fs, uint64_t ino, uint64_t index,
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
    int rc = fc_meta_call(fs, PROTO_MSG_CHUNK_WRITE_END_REQ, &w, &rep, &a);
    proto_wbuf_free(&w);
    if (rc == 0)
        rpc_reply_free(&rep);
    return rc;
}
