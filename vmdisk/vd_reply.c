/* vd_reply.c: replies of the transmission phase, and NBD error values.
 *
 * Worker threads answer requests out of order, so each reply goes out
 * whole through one vd_send() (vd_io.c): header and payload under the
 * connection's send lock, never interleaved with another reply.
 *
 * Simple replies are a 16-byte header and, for a successful read, the
 * data.  Structured replies (only once NBD_OPT_STRUCTURED_REPLY was
 * negotiated) are built here as exactly one chunk each, carrying the
 * DONE flag: OFFSET_DATA for reads, BLOCK_STATUS for block status, ERROR
 * for failures.  Choosing which kind to send is vd_cmd.c's business.
 *
 * Failure: a reply that cannot be sent (the peer went away, or the socket
 * was shut down by the server stopping) fails the connection in vd_send();
 * later replies are dropped at once.  Host errno values never reach the wire:
 * vd_err_to_nbd() maps them to the closed list of NBD error values.
 */
#include "vd_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t vd_err_to_nbd(int neg_errno)
{
    switch (-neg_errno) {
    case 0:
        return 0;
    case EPERM:
    case EACCES:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
    case ERANGE:
        return NBD_EINVAL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
    case ENOSYS:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

int vd_reply_simple(struct vd_conn *c, uint64_t cookie, uint32_t err,
                    const void *data, size_t len)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};

    vd_put32(hdr, NBD_SIMPLE_REPLY_MAGIC);
    vd_put32(hdr + 4, err);
    vd_put64(hdr + 8, cookie);
    return vd_send(c, iov, err == 0 && len ? 2 : 1);
}

static void chunk_hdr_flags(uint8_t *p, uint16_t flags, uint16_t type,
                            uint64_t cookie, uint32_t len)
{
    vd_put32(p, NBD_STRUCTURED_REPLY_MAGIC);
    vd_put16(p + 4, flags);
    vd_put16(p + 6, type);
    vd_put64(p + 8, cookie);
    vd_put32(p + 16, len);
}

static void chunk_hdr(uint8_t *p, uint16_t type, uint64_t cookie, uint32_t len)
{
    chunk_hdr_flags(p, NBD_REPLY_FLAG_DONE, type, cookie, len);
}

int vd_reply_data(struct vd_conn *c, uint64_t cookie, uint64_t offset,
                  const void *data, size_t len)
{
    uint8_t hdr[NBD_CHUNK_HDR_SIZE + 8];
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};

    chunk_hdr(hdr, NBD_REPLY_TYPE_OFFSET_DATA, cookie, (uint32_t)(8 + len));
    vd_put64(hdr + NBD_CHUNK_HDR_SIZE, offset);
    return vd_send(c, iov, 2);
}

int vd_reply_error(struct vd_conn *c, uint64_t cookie, uint32_t err,
                   const char *msg)
{
    uint8_t hdr[NBD_CHUNK_HDR_SIZE + 6];
    size_t mlen = msg ? strlen(msg) : 0;
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)msg, mlen}};

    if (mlen > NBD_MAX_STRING)
        mlen = iov[1].iov_len = NBD_MAX_STRING;
    chunk_hdr(hdr, NBD_REPLY_TYPE_ERROR, cookie, (uint32_t)(6 + mlen));
    vd_put32(hdr + NBD_CHUNK_HDR_SIZE, err);
    vd_put16(hdr + NBD_CHUNK_HDR_SIZE + 4, (uint16_t)mlen);
    return vd_send(c, iov, mlen ? 2 : 1);
}

int vd_reply_block_status(struct vd_conn *c, uint64_t cookie, bool done,
                          uint32_t ctx_id, const uint32_t *desc, size_t n)
{
    uint8_t hdr[NBD_CHUNK_HDR_SIZE + 4];
    uint8_t body[64 * 8];
    int rc = 0;

    /* Short lists are encoded on the stack, long ones in one allocation:
     * either way the chunk goes out in one vd_send(). */
    size_t bytes = n * 8;
    uint8_t *wire = bytes <= sizeof(body) ? body : malloc(bytes);
    if (!wire)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        vd_put32(wire + i * 8, desc[2 * i]);
        vd_put32(wire + i * 8 + 4, desc[2 * i + 1]);
    }
    chunk_hdr_flags(hdr, done ? NBD_REPLY_FLAG_DONE : 0,
                    NBD_REPLY_TYPE_BLOCK_STATUS, cookie, (uint32_t)(4 + bytes));
    vd_put32(hdr + NBD_CHUNK_HDR_SIZE, ctx_id);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {wire, bytes}};
    rc = vd_send(c, iov, 2);
    if (wire != body)
        free(wire);
    return rc;
}
