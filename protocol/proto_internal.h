/* proto_internal.h: helpers shared by the codec files inside protocol/.
 *
 * Not part of the interface: other folders include only proto.h.
 */
#ifndef TESSERA_PROTO_INTERNAL_H
#define TESSERA_PROTO_INTERNAL_H

#include "proto.h"

/* proto_types.c */

/* Latch -EINVAL in @w when @rc < 0 (a body its own decoder would reject),
 * unless an earlier error is already latched.  Returns true when encoding
 * may go on. */
bool proto_wbuf_check(struct proto_wbuf *w, int rc);
/* Finish a decode: -EPROTO for a short or long payload, else @rc, the
 * result of the body's own consistency check. */
int proto_rbuf_finish(const struct proto_rbuf *r, int rc);
/* Append @n replicas: u32 server_id then str addr each. */
void proto_replicas_put(struct proto_wbuf *w, const struct proto_replica *v,
                        uint32_t n);
/* Read @n replicas into @v (which holds at least @n); -EPROTO when short. */
int proto_replicas_get(struct proto_rbuf *r, struct proto_replica *v,
                       uint32_t n);

/* proto_place.c */

/* Read one chunk location entry (§8.1): 0 or -EPROTO. */
int proto_chunk_loc_get(struct proto_rbuf *r, struct proto_chunk_loc *c);

#endif
