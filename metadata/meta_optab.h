/* meta_optab.h: the operation table (meta_ops.def) as data: what kind of
 * operation an opcode is, who may send it, whether it needs a session,
 * when its record is proposed.
 *
 * The rows' function columns are expanded by the files that own them
 * (meta_apply.c, meta_query.c, meta_server.c, meta_srv_callback.c), each
 * into an array in meta_ops.def order; meta_optab_index() gives the
 * position of an opcode's row in all of them.
 */
#ifndef TESSERA_META_OPTAB_H
#define TESSERA_META_OPTAB_H

#include <stddef.h>
#include <stdint.h>

enum meta_opkind {
    META_OPKIND_QUERY = 1, /* meta_query(): reads only */
    META_OPKIND_MUTATION,  /* an operation record: meta_apply() */
    META_OPKIND_DAEMON,    /* the daemon's own, never the engine's */
};

/* Who may send a request (bits). */
enum meta_caller {
    META_CALLER_CLIENT = 1 << 0, /* PROTO_ROLE_CLIENT, PROTO_ROLE_NBD */
    META_CALLER_CHUNKD = 1 << 1, /* PROTO_ROLE_CHUNKD */
    META_CALLER_ADMIN = 1 << 2,  /* PROTO_ROLE_ADMIN */
};

enum meta_session_need {
    META_SESSION_ANY = 1, /* with or without a session */
    META_SESSION_NEEDED,  /* ENOSESSION without one */
};

/* When a record is proposed (meta_ops.def, the commit column). */
enum meta_commit {
    META_COMMIT_NOW = 1, /* at once: meta_propose() */
    META_COMMIT_LATER,   /* with the next record: meta_propose_later() */
};

struct meta_optab_row {
    uint16_t opcode;
    uint8_t kind;    /* enum meta_opkind */
    uint8_t callers; /* enum meta_caller bits; 0: internal record */
    uint8_t session; /* enum meta_session_need */
    uint8_t commit;  /* enum meta_commit */
};

/* Rows in meta_ops.def order. */
extern const struct meta_optab_row meta_optab[];
extern const size_t meta_optab_count;

/* The position of @opcode's row, or -1 when metad knows no such
 * operation. */
int meta_optab_index(uint16_t opcode);
/* The caller bit of a HELLO role (enum proto_role), 0 for none. */
unsigned meta_optab_caller_of_role(uint32_t role);

#endif
