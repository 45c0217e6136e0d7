/* cl_ns.c: the client's face of namespace changes answered locally
 * (docs/caching.md, "Delegated directories"): delegations of directories
 * and inode numbers asked of metad, changes queued (cl_nsq.c) and waited
 * for.  The mount decides what it may answer itself (fc_ops.c); this file
 * only connects it to the session and the queue.
 */
#include "cl_internal.h"

#include <errno.h>
#include <string.h>

#include "log.h"

/* Inode numbers asked of metad at a time. */
#define INO_BATCH 1024

uint64_t cl_ns_dir_until(struct cl_client *c, uint64_t dir)
{
    return c->nsq ? cl_nsq_dir_until(c->nsq, dir) : 0;
}

int cl_ns_dir_delegate(struct cl_client *c, uint64_t dir)
{
    if (!c->nsq || !cl_cb_enabled(c))
        return -EOPNOTSUPP;
    if (!cl_nsq_dir_may_ask(c->nsq, dir))
        return -EBUSY;
    uint64_t asked = cl_now_ms();
    uint32_t lease_ms = 0;
    int rc = cl_meta_dir_delegate(c, dir, &lease_ms);
    if (rc < 0) {
        log_debug("cl.ns", "delegate: %s dir=%llu", strerror(-rc),
                  (unsigned long long)dir);
        /* Another client looks at it: the ordinary way for a while. */
        if (rc == -EBUSY)
            cl_nsq_dir_refused(c->nsq, dir);
        return rc;
    }
    if (lease_ms == 0)
        return -EOPNOTSUPP;
    cl_nsq_dir_granted(c->nsq, dir, asked, lease_ms);
    return 0;
}

int cl_ns_ino_new(struct cl_client *c, uint64_t *ino)
{
    if (!c->nsq)
        return -EOPNOTSUPP;
    uint64_t session = cl_session_id(c->session);
    if (cl_nsq_ino_take(c->nsq, session, ino))
        return 0;
    uint64_t first = 0;
    uint32_t got = 0;
    int rc = cl_meta_ino_reserve(c, INO_BATCH, &first, &got);
    if (rc < 0)
        return rc;
    cl_nsq_ino_add(c->nsq, session, first, got);
    return cl_nsq_ino_take(c->nsq, session, ino) ? 0 : -ENOSPC;
}

int cl_ns_push(struct cl_client *c, uint64_t dir, uint64_t ino, uint16_t opcode,
               const struct proto_wbuf *w)
{
    return cl_nsq_push(c->nsq, dir, ino, opcode, w);
}

void cl_ns_hold_here(struct cl_client *c, uint64_t ino, uint32_t uid,
                     uint32_t gid)
{
    cl_nsq_hold_here(c->nsq, ino, uid, gid);
}

int cl_ns_sync(struct cl_client *c)
{
    return cl_nsq_sync(c->nsq);
}

void cl_ns_stats(struct cl_client *c, struct cl_ns_stats *out)
{
    struct cl_nsq_stats st;
    cl_nsq_stats(c->nsq, &st);
    out->queued = st.queued;
    out->answered = st.pushed;
    out->sent = st.sent;
    out->resent = st.resent;
    out->failed = st.failed;
}
