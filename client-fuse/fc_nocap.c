/* fc_nocap.c: the inodes known to carry no security.capability.
 *
 * Linux asks for security.capability before every write(2) to a file on
 * a FUSE mount and before every chown(2) (the kernel's file_remove_privs()
 * and notify_change(): a capability must be dropped like setuid), and
 * FUSE never marks such an inode as checked the way a local file system
 * does (S_NOSEC).  Each ask would be a metad round trip that nearly always
 * answers ENODATA: on a write that is otherwise local (a delayed write),
 * it was about half the cost.  So the mount remembers, per inode, that
 * metad said the attribute is absent, for as long as the kernel may keep
 * the inode's attributes (fc_ops.c's cache_timeout()), and answers the
 * next asks itself.  What forgets it first: a setxattr or removexattr
 * through this mount, and a callback break of the inode (another client
 * changed it, fc_notify_break()).  So a capability set elsewhere is seen
 * no later than a mode change would be.
 *
 * The table is an fc_inotab (fc_inotab.c) with no value: an entry is the
 * fact itself.
 */
#include "fc_internal.h"

#define NSLOTS_BITS 12

int fc_nocap_new(struct fc_inotab **out)
{
    return fc_inotab_new(NSLOTS_BITS, 0, out);
}

bool fc_nocap_known(struct fc_inotab *t, uint64_t ino, uint64_t now_ms)
{
    return fc_inotab_get(t, ino, now_ms, NULL, NULL);
}

void fc_nocap_note(struct fc_inotab *t, uint64_t ino, uint64_t gen,
                   uint64_t until_ms)
{
    fc_inotab_note(t, ino, gen, until_ms, NULL, NULL);
}
