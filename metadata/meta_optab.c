/* meta_optab.c: the data columns of the operation table (meta_ops.def):
 * opcode, kind, callers, session, commit; and the lookup of a row by opcode.
 *
 * The function columns are not here: each file that owns handlers expands
 * its columns itself, so the engine never names a daemon function and the
 * table still lives in one place.
 */
#include "meta_optab.h"

#include "meta.h"
#include "proto.h"

/* The short names meta_ops.def uses, for this expansion only. */
#define CLIENT META_CALLER_CLIENT
#define CHUNKD META_CALLER_CHUNKD
#define ADMIN META_CALLER_ADMIN
#define NOBODY 0

const struct meta_optab_row meta_optab[] = {
#define X(opcode, kind, callers, session, serve, apply, query, records,        \
          before, after, cb, commit)                                           \
    {opcode, META_OPKIND_##kind, callers, META_SESSION_##session,              \
     META_COMMIT_##commit},
#include "meta_ops.def"
#undef X
};

#undef CLIENT
#undef CHUNKD
#undef ADMIN
#undef NOBODY

const size_t meta_optab_count = sizeof(meta_optab) / sizeof(meta_optab[0]);

int meta_optab_index(uint16_t opcode)
{
    for (size_t i = 0; i < meta_optab_count; i++)
        if (meta_optab[i].opcode == opcode)
            return (int)i;
    return -1;
}

unsigned meta_optab_caller_of_role(uint32_t role)
{
    switch (role) {
    case PROTO_ROLE_CLIENT:
    case PROTO_ROLE_NBD:
        return META_CALLER_CLIENT;
    case PROTO_ROLE_CHUNKD:
        return META_CALLER_CHUNKD;
    case PROTO_ROLE_ADMIN:
        return META_CALLER_ADMIN;
    default:
        return 0;
    }
}
