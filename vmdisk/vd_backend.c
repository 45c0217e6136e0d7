/* vd_backend.c: what every image backend shares: releasing one.
 *
 * The operations themselves live in each backend (vd_mem.c, vd_file.c,
 * vd_tessera.c); vd_backend.h states the rules they all follow.
 */
#include "vd_backend.h"

#include <stdlib.h>

void vd_backend_free(struct vd_backend *be)
{
    if (!be)
        return;
    if (be->ops && be->ops->free)
        be->ops->free(be->ctx);
    free(be);
}
