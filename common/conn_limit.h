/* conn_limit.h: how many connections one source address, and how many
 * sessions one identity, may hold at a daemon at once (docs/security.md,
 * "Limits against abuse").
 *
 * A table of counts keyed by text (an address without its port, or an
 * identity name).  A connection takes a count when it arrives (its
 * address) and when it authenticates (its identity), and puts each back
 * when it goes.  A take beyond the limit fails and counts nothing.  The
 * table knows nothing of sockets: peer.c (metad, chunkd) and vd_server.c
 * (tessera-nbd) drive it.  Thread-safe.
 */
#ifndef TESSERA_CONN_LIMIT_H
#define TESSERA_CONN_LIMIT_H

#include <stddef.h>

/* Defaults of the daemons' --max-conns-per-addr and
 * --max-sessions-per-identity (0 = unlimited). */
#define CONN_LIMIT_PER_ADDR 256u
#define CONN_LIMIT_PER_IDENTITY 1024u

enum conn_limit_kind { CONN_LIMIT_ADDR, CONN_LIMIT_IDENTITY };

struct conn_limit;

/* A table allowing @per_addr connections per address and @per_identity
 * sessions per identity (0: no limit).  Caller owns *out: free it with
 * conn_limit_free().  0 or -ENOMEM. */
int conn_limit_new(unsigned per_addr, unsigned per_identity,
                   struct conn_limit **out);
void conn_limit_free(struct conn_limit *t);

/* Count one more of @kind for @key (borrowed): 0, or -EUSERS when @key
 * already holds the limit (nothing counted), -ENOMEM. */
int conn_limit_take(struct conn_limit *t, enum conn_limit_kind kind,
                    const char *key);
/* Give back one count taken with conn_limit_take(). */
void conn_limit_put(struct conn_limit *t, enum conn_limit_kind kind,
                    const char *key);
/* The limit of @kind (0: none) and what @key holds now. */
unsigned conn_limit_max(const struct conn_limit *t, enum conn_limit_kind kind);
unsigned conn_limit_count(struct conn_limit *t, enum conn_limit_kind kind,
                          const char *key);

/* Parse a limit option's value: a decimal number, 0 for no limit.
 * 0 or -EINVAL. */
int conn_limit_parse(const char *s, unsigned *out);

/* The address part of "host:port" or "[v6]:port" into @buf: the key of
 * CONN_LIMIT_ADDR, so that every port of one host counts together. */
void conn_limit_addr_key(const char *name, char *buf, size_t size);

#endif
