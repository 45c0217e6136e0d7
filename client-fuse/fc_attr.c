/* fc_attr.c: attributes between the wire's form and libfuse's.
 *
 * metad keeps times as nanoseconds since the epoch and names SETATTR's
 * fields with PROTO_SETATTR_* bits (docs/protocol.md §4.2, §6.7); the
 * kernel speaks struct stat, struct timespec and FUSE_SET_ATTR_* bits.
 * Pure conversions, no I/O: fc_ops.c calls them.
 */
#define FUSE_USE_VERSION 35

#include "fc_internal.h"

#include <fuse_lowlevel.h>
#include <string.h>

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
    if (ts->tv_nsec < 0) {
        ts->tv_sec--;
        ts->tv_nsec += 1000000000;
    }
}

int64_t fc_ns_from_ts(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

void fc_attr_to_stat(const struct proto_attr *a, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_blocks = (blkcnt_t)a->blocks;
    st->st_blksize = 1 << 20; /* what one FUSE write carries */
    ts_from_ns(&st->st_atim, a->atime);
    ts_from_ns(&st->st_mtim, a->mtime);
    ts_from_ns(&st->st_ctim, a->ctime);
}

uint32_t fc_setattr_valid(int to_set)
{
    uint32_t v = 0;
    if (to_set & FUSE_SET_ATTR_MODE)
        v |= PROTO_SETATTR_MODE;
    if (to_set & FUSE_SET_ATTR_UID)
        v |= PROTO_SETATTR_UID;
    if (to_set & FUSE_SET_ATTR_GID)
        v |= PROTO_SETATTR_GID;
    if (to_set & FUSE_SET_ATTR_SIZE)
        v |= PROTO_SETATTR_SIZE;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        v |= PROTO_SETATTR_ATIME_NOW;
    else if (to_set & FUSE_SET_ATTR_ATIME)
        v |= PROTO_SETATTR_ATIME;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        v |= PROTO_SETATTR_MTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_MTIME)
        v |= PROTO_SETATTR_MTIME;
    if (to_set & FUSE_SET_ATTR_CTIME)
        v |= PROTO_SETATTR_CTIME;
    return v;
}
