/* cl_range.c: cutting a byte range of a file into per-chunk pieces.
 *
 * Byte @off of a file lives in chunk @off / PROTO_CHUNK_SIZE at offset
 * @off % PROTO_CHUNK_SIZE (docs/architecture.md, "Data flow").  A read or
 * write of a range becomes one request per piece: a piece never crosses a
 * chunk boundary and never exceeds the largest data a message carries.
 * Everything is uint64_t so offsets past 4 GiB work.  Pure arithmetic: the
 * callers in cl_file.c do the I/O.
 */
#include "cl_internal.h"

void cl_range_init(struct cl_range_iter *it, uint64_t off, uint64_t len,
                   uint32_t max)
{
    it->start = off;
    it->off = off;
    /* A range running past 2^64 is cut at the end of the address space. */
    it->end = len > UINT64_MAX - off ? UINT64_MAX : off + len;
    it->max = max == 0 || max > PROTO_CHUNK_SIZE ? PROTO_CHUNK_SIZE : max;
}

bool cl_range_next(struct cl_range_iter *it, struct cl_piece *p)
{
    if (it->off >= it->end)
        return false;
    uint64_t in_chunk = it->off % PROTO_CHUNK_SIZE;
    uint64_t n = PROTO_CHUNK_SIZE - in_chunk;
    if (n > it->max)
        n = it->max;
    if (n > it->end - it->off)
        n = it->end - it->off;
    p->index = it->off / PROTO_CHUNK_SIZE;
    p->off = (uint32_t)in_chunk;
    p->len = (uint32_t)n;
    p->buf_off = it->off - it->start;
    it->off += n;
    return true;
}

uint64_t cl_range_clamp(uint64_t off, uint64_t len, uint64_t size)
{
    if (off >= size)
        return 0;
    return len > size - off ? size - off : len;
}

uint64_t cl_range_nchunks(uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    uint64_t last = len > UINT64_MAX - off ? UINT64_MAX : off + len - 1;
    return last / PROTO_CHUNK_SIZE - off / PROTO_CHUNK_SIZE + 1;
}
