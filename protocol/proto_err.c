/* proto_err.c: the wire's closed list of error values (docs/protocol.md §5)
 * and its mapping to and from host errno.
 */
#include "proto.h"

#include <errno.h>
#include <stddef.h>

static const struct {
    int32_t wire;
    int host; /* positive errno */
    const char *name;
} errs[] = {
    {PROTO_EPERM, EPERM, "EPERM"},
    {PROTO_ENOENT, ENOENT, "ENOENT"},
    {PROTO_EIO, EIO, "EIO"},
    {PROTO_EBADF, EBADF, "EBADF"},
    {PROTO_EAGAIN, EAGAIN, "EAGAIN"},
    {PROTO_ENOMEM, ENOMEM, "ENOMEM"},
    {PROTO_EACCES, EACCES, "EACCES"},
    {PROTO_EBUSY, EBUSY, "EBUSY"},
    {PROTO_EEXIST, EEXIST, "EEXIST"},
    {PROTO_EXDEV, EXDEV, "EXDEV"},
    {PROTO_ENOTDIR, ENOTDIR, "ENOTDIR"},
    {PROTO_EISDIR, EISDIR, "EISDIR"},
    {PROTO_EINVAL, EINVAL, "EINVAL"},
    {PROTO_EFBIG, EFBIG, "EFBIG"},
    {PROTO_ENOSPC, ENOSPC, "ENOSPC"},
    {PROTO_EROFS, EROFS, "EROFS"},
    {PROTO_EMLINK, EMLINK, "EMLINK"},
    {PROTO_ERANGE, ERANGE, "ERANGE"},
    {PROTO_ENAMETOOLONG, ENAMETOOLONG, "ENAMETOOLONG"},
    {PROTO_ENOSYS, ENOSYS, "ENOSYS"},
    {PROTO_ENOTEMPTY, ENOTEMPTY, "ENOTEMPTY"},
    {PROTO_ELOOP, ELOOP, "ELOOP"},
    {PROTO_ENODATA, ENODATA, "ENODATA"},
    {PROTO_EPROTO, EPROTO, "EPROTO"},
    {PROTO_EOVERFLOW, EOVERFLOW, "EOVERFLOW"},
    {PROTO_EOPNOTSUPP, EOPNOTSUPP, "EOPNOTSUPP"},
    {PROTO_ETIMEDOUT, ETIMEDOUT, "ETIMEDOUT"},
    {PROTO_ESTALE, ESTALE, "ESTALE"},
    {PROTO_EDQUOT, EDQUOT, "EDQUOT"},
    /* Tessera's own: the host sees the nearest errno (§5.2). */
    {PROTO_EVERSION, EPROTONOSUPPORT, "EVERSION"},
    {PROTO_ENOSESSION, ENOTCONN, "ENOSESSION"},
    {PROTO_EOLDVER, ESTALE, "EOLDVER"},
    {PROTO_ECHECKSUM, EBADMSG, "ECHECKSUM"},
    {PROTO_EHANDSHAKE, EPROTO, "EHANDSHAKE"},
    {PROTO_EAUTH, EKEYREJECTED, "EAUTH"},
    {PROTO_ELIMIT, EUSERS, "ELIMIT"},
    {PROTO_ESECURE, ENOPROTOOPT, "ESECURE"},
};

#define NERRS (sizeof(errs) / sizeof(errs[0]))

int32_t proto_err_to_wire(int neg_errno)
{
    int e = -neg_errno;

    if (neg_errno == 0)
        return PROTO_OK;
    if (e == ENOTSUP) /* the same value as EOPNOTSUPP on Linux */
        e = EOPNOTSUPP;
    /* The Tessera values a host errno names alone. */
    if (e == EKEYREJECTED)
        return PROTO_EAUTH;
    if (e == EUSERS)
        return PROTO_ELIMIT;
    if (e == ENOPROTOOPT)
        return PROTO_ESECURE;
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].host == e && errs[i].wire < 1000)
            return errs[i].wire;
    return PROTO_EIO;
}

int proto_err_from_wire(int32_t wire)
{
    if (wire == PROTO_OK)
        return 0;
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].wire == wire)
            return -errs[i].host;
    return -EIO;
}

bool proto_err_valid(int32_t wire)
{
    if (wire == PROTO_OK)
        return true;
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].wire == wire)
            return true;
    return false;
}

const char *proto_err_name(int32_t wire)
{
    if (wire == PROTO_OK)
        return "OK";
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].wire == wire)
            return errs[i].name;
    return "E?";
}
