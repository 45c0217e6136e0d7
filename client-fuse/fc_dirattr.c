/* fc_dirattr.c: directory attributes learnt from this mount's own
 * namespace changes.
 *
 * A create, unlink, mkdir, rmdir or rename through the mount changes the
 * directory's mtime and ctime (and nlink for a subdirectory); the kernel
 * then drops the directory's attributes, and default_permissions asks for
 * them (GETATTR) before the next change in it.  From protocol version 2
 * metad's reply to the change carries the directory's attributes after
 * it (docs/protocol.md §6.8-6.13) and grants the session a promise on the
 * directory, so the mount keeps them here and answers that GETATTR
 * itself, for as long as the kernel itself could have kept attributes
 * it was given (fc_ops.c's cache_timeout(): under a promise, or 1 s in
 * validate mode).  What forgets an entry first: a callback break of the
 * directory (another client changed it, fc_notify_break()), and any change
 * of the directory through this mount whose reply does not carry its new
 * attributes (SETATTR, the extended attributes, an RMDIR or RENAME, which
 * may remove a directory held here, clears the table).
 *
 * The forget count closes the race between a reply and a break: an answer
 * is noted only when nothing was forgotten since the request left, as in
 * fc_nocap.c; the table is an fc_inotab (fc_inotab.c) whose value is the
 * attributes.
 */
#include "fc_internal.h"

#define NSLOTS_BITS 10

int fc_dirattr_new(struct fc_inotab **out)
{
    return fc_inotab_new(NSLOTS_BITS, sizeof(struct proto_attr), out);
}

bool fc_dirattr_get(struct fc_inotab *t, uint64_t ino, uint64_t now_ms,
                    struct proto_attr *out, uint64_t *until_ms)
{
    return fc_inotab_get(t, ino, now_ms, out, until_ms);
}

/* Two changes of ours in flight at once: the later state wins. */
static bool held_newer(const void *held, const void *offered)
{
    return ((const struct proto_attr *)held)->version >
           ((const struct proto_attr *)offered)->version;
}

void fc_dirattr_note(struct fc_inotab *t, const struct proto_attr *a,
                     uint64_t gen, uint64_t until_ms)
{
    if ((a->mode & 0170000) != 0040000)
        return;
    fc_inotab_note(t, a->ino, gen, until_ms, a, held_newer);
}
