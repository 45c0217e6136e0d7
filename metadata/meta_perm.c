/* meta_perm.c: permission checks, as a local POSIX file system makes them.
 *
 * The credential is the caller's (uid, gid, supplementary groups) as the
 * client sent it; metad trusts it, as an NFS server with AUTH_SYS does.
 * Classic mode bits only: no ACLs.  The rules follow Linux's
 * generic_permission(): the owner class applies when uid matches, else the
 * group class when the caller is in the file's group, else other.  uid 0
 * passes read and write always, and exec on directories; exec on anything
 * else needs at least one x bit.
 *
 * Which operation needs which check (write+search on a directory to change
 * it, ownership for chmod, ...) is decided by the callers in meta_ns.c and
 * meta_query.c; errors are -EACCES for a failed rwx check and -EPERM for a
 * failed ownership rule, as POSIX says.
 */
#include "meta_internal.h"

#include <errno.h>
#include <sys/stat.h>

bool meta_perm_in_group(const struct proto_cred *c, uint32_t gid)
{
    if (c->gid == gid)
        return true;
    for (uint32_t i = 0; i < c->ngroups && i < PROTO_MAX_GROUPS; i++)
        if (c->groups[i] == gid)
            return true;
    return false;
}

bool meta_perm_owner(const struct proto_cred *c, const struct proto_attr *a)
{
    return c->uid == 0 || c->uid == a->uid;
}

int meta_perm_check(const struct proto_cred *c, const struct proto_attr *a,
                    int mask)
{
    mask &= META_MAY_READ | META_MAY_WRITE | META_MAY_EXEC;
    if (c->uid == 0) {
        if ((mask & META_MAY_EXEC) && !S_ISDIR(a->mode) &&
            !(a->mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
            return -EACCES;
        return 0;
    }
    uint32_t bits;
    if (c->uid == a->uid)
        bits = (a->mode >> 6) & 7;
    else if (meta_perm_in_group(c, a->gid))
        bits = (a->mode >> 3) & 7;
    else
        bits = a->mode & 7;
    /* META_MAY_* line up with the r, w, x bits of one class. */
    return ((uint32_t)mask & ~bits) ? -EACCES : 0;
}

int meta_perm_sticky(const struct proto_cred *c, const struct proto_attr *dir,
                     const struct proto_attr *victim)
{
    if (!(dir->mode & S_ISVTX) || c->uid == 0)
        return 0;
    if (c->uid == dir->uid || c->uid == victim->uid)
        return 0;
    return -EPERM;
}

int meta_perm_dir(struct meta_db *db, const struct proto_cred *c, uint64_t ino,
                  struct proto_attr *dir)
{
    int r = meta_inode_get(db, ino, dir);
    if (r < 0)
        return r;
    if (!S_ISDIR(dir->mode))
        return -ENOTDIR;
    return meta_perm_check(c, dir, META_MAY_EXEC);
}
