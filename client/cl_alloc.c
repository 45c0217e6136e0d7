/* cl_alloc.c: which bytes of a file may hold data and which read as
 * zeros (holes), by chunk slot.  tessera-nbd answers NBD_CMD_BLOCK_STATUS
 * (base:allocation) with it, the mount lseek(2)'s SEEK_DATA and SEEK_HOLE.
 *
 * A slot is a hole when the chunk map names no chunk for it (chunk id 0,
 * CHUNK_LOCATE, docs/protocol.md §8.1) and none of this client's delayed
 * writes (cl_cache.c) lies in it; any other slot may hold data.  So the
 * granularity is PROTO_CHUNK_SIZE: a hole reported always reads as zeros,
 * while an allocated chunk is data even where its blocks were never
 * written or were zeroed whole (cl_file_zero() leaves the chunk).
 *
 * Delayed writes are asked first, then the chunk map: a delayed write
 * that leaves the cache meanwhile was written back, and its CHUNK_WRITE_BEGIN
 * put the chunk in the location cache (cl_meta.c) before it left.  So a
 * write that returned before the call is never missed.  Locations come
 * from the location cache, with the rest of the range prefetched from
 * metad on a miss (PROTO_LOCATE_MAX slots a request).  Blocking; any
 * thread.
 */
#include "cl_internal.h"

#include <errno.h>

/* Is slot @index of @n a hole?  0 and *@hole set, or -errno. */
static int slot_hole(struct cl_client *c, struct cl_inode *n, uint64_t index,
                     uint64_t prefetch, bool *hole)
{
    struct cl_chunk ch;
    uint64_t start = index * (uint64_t)PROTO_CHUNK_SIZE;

    if (cl_cache_overlaps(n, start, PROTO_CHUNK_SIZE)) {
        *hole = false;
        return 0;
    }
    int rc = cl_file_locate(c, n->ino, index, prefetch, &ch);
    if (rc < 0)
        return rc;
    *hole = ch.chunk_id == 0;
    return 0;
}

int cl_file_alloc(struct cl_client *c, struct cl_inode *n, uint64_t off,
                  uint64_t len, cl_alloc_cb cb, void *arg)
{
    uint64_t end = off + len < off ? UINT64_MAX : off + len;
    uint64_t last = (end - 1) / PROTO_CHUNK_SIZE, run_len = 0;
    uint64_t size = cl_inode_size(n);
    bool run_hole = false;
    unsigned walked = 0;

    /* Prefetch to the end of the range or of the file, whichever is
     * further: a caller walking a file in pieces asks metad once. */
    if (size && (size - 1) / PROTO_CHUNK_SIZE > last)
        last = (size - 1) / PROTO_CHUNK_SIZE;
    while (off < end && walked++ < CL_ALLOC_MAX_SLOTS) {
        uint64_t index = off / PROTO_CHUNK_SIZE;
        uint64_t cend = (index + 1) * (uint64_t)PROTO_CHUNK_SIZE;
        bool hole;
        int rc = slot_hole(c, n, index, last - index + 1, &hole);
        if (rc < 0)
            return rc;
        if (run_len && hole != run_hole) {
            rc = cb(arg, run_len, !run_hole);
            if (rc != 0)
                return rc < 0 ? rc : 0;
            run_len = 0;
        }
        uint64_t step = (cend < end ? cend : end) - off;
        run_hole = hole;
        run_len += step;
        off += step;
    }
    if (run_len) {
        int rc = cb(arg, run_len, !run_hole);
        if (rc < 0)
            return rc;
    }
    return 0;
}
