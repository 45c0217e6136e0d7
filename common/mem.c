/* mem.c: allocator settings (see mem.h).
 *
 * glibc serves allocations above M_MMAP_THRESHOLD with a fresh mmap()
 * and gives the top of the heap back above M_TRIM_THRESHOLD.  A chunk
 * server or an NBD export allocates and frees buffers of 1-2 MiB per
 * request (a 1 MiB write, its forwarded copy, a read's reply), so with
 * the defaults each request maps new pages and faults every one of them
 * in, which costs more than the copy itself (most of all in a virtual
 * machine, where a page fault leaves the guest).  Fixing both thresholds
 * well above the largest buffer keeps those pages in the process; the
 * heap then holds at most what the requests in flight held at their
 * peak, which the daemons bound already.
 */
#include "mem.h"

#include <malloc.h>

#define MEM_MMAP_THRESHOLD (32u << 20) /* glibc's largest allowed */
#define MEM_TRIM_THRESHOLD (256u << 20)

void mem_tune(void)
{
    mallopt(M_MMAP_THRESHOLD, MEM_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, MEM_TRIM_THRESHOLD);
}
