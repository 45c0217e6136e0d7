/* cl_reported.c: the bad-replica reports a client made lately, so that
 * many readers of one damaged chunk send metad one report, not one each.
 *
 * A read that meets a checksum failure on a replica reports it
 * (CHUNK_REPORT CHECKSUM, cl_chunk.c).  Parallel reads of the same chunk,
 * from the threads of a mount or an NBD export, all meet it at once: the
 * first to claim the (server, chunk, version) here sends the report, the
 * others see the claim and carry on to the next replica.  A claim lasts
 * CL_REPORTED_MS, long enough for metad to drop the replica and the
 * location cache to learn it; a report that could not be sent is
 * unclaimed (cl_reported_drop()) so the next reader tries again.  Write
 * recovery does not use this: it must wait for its own report's answer.
 *
 * A small array under a mutex: when it is full the oldest claim goes,
 * which at worst sends one report more.  Time is the caller's.
 */
#include "cl_internal.h"

#include <string.h>

void cl_reported_init(struct cl_reported *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
}

void cl_reported_destroy(struct cl_reported *r)
{
    pthread_mutex_destroy(&r->lock);
}

static bool same(const struct cl_reported_entry *e, uint32_t server_id,
                 uint64_t chunk_id, uint64_t version)
{
    return e->server_id == server_id && e->chunk_id == chunk_id &&
           e->version == version;
}

bool cl_reported_claim(struct cl_reported *r, uint32_t server_id,
                       uint64_t chunk_id, uint64_t version, uint64_t now_ms)
{
    size_t oldest = 0, slot = CL_REPORTED_MAX;
    bool claim = true;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < CL_REPORTED_MAX; i++) {
        struct cl_reported_entry *e = &r->v[i];
        bool live = e->chunk_id && now_ms < e->at_ms + CL_REPORTED_MS;

        if (live && same(e, server_id, chunk_id, version)) {
            claim = false;
            break;
        }
        if (!live && slot == CL_REPORTED_MAX)
            slot = i;
        if (e->at_ms < r->v[oldest].at_ms)
            oldest = i;
    }
    if (claim) {
        struct cl_reported_entry *e =
            &r->v[slot < CL_REPORTED_MAX ? slot : oldest];
        e->server_id = server_id;
        e->chunk_id = chunk_id;
        e->version = version;
        e->at_ms = now_ms;
    }
    pthread_mutex_unlock(&r->lock);
    return claim;
}

void cl_reported_drop(struct cl_reported *r, uint32_t server_id,
                      uint64_t chunk_id, uint64_t version)
{
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < CL_REPORTED_MAX; i++)
        if (same(&r->v[i], server_id, chunk_id, version))
            memset(&r->v[i], 0, sizeof(r->v[i]));
    pthread_mutex_unlock(&r->lock);
}
