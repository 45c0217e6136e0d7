/* opcount.h: requests, errors and payload bytes by protocol message, for
 * the metrics endpoint.
 *
 * Two process-wide tables: @opcount_served counts the requests this
 * process answered (peer.c, in tessera-metad and tessera-chunkd), and
 * @opcount_called the requests it sent and how they ended (rpc.c, in the
 * clients: tessera-nbd, tessera-mount).  Counting is a few relaxed atomic
 * adds, no locks, from any thread; readers see each counter on its own.
 *
 * Errors are counted by kind: the wire error for answered requests
 * (EOLDVER, ECHECKSUM keep their Tessera names), the host errno for sent
 * ones (ETIMEDOUT, ENOTCONN as well as the errno a wire error became).
 */
#ifndef TESSERA_OPCOUNT_H
#define TESSERA_OPCOUNT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* Every message of protocol/proto_msgs.def has a slot. */
enum {
#define X(name, id, body) OPCOUNT_OP_##name,
#include "proto_msgs.def"
#undef X
    OPCOUNT_OPS
};

/* Error kinds: 0 = other, 1..127 the errno (and wire error) of that
 * number, 128 + n Tessera's own wire error 1000 + n. */
#define OPCOUNT_KINDS 136

struct opcount {
    _Atomic uint64_t requests[OPCOUNT_OPS];
    _Atomic uint64_t request_bytes[OPCOUNT_OPS];  /* request payloads */
    _Atomic uint64_t response_bytes[OPCOUNT_OPS]; /* reply payloads */
    _Atomic uint64_t errors[OPCOUNT_OPS][OPCOUNT_KINDS];
};

extern struct opcount opcount_served;
extern struct opcount opcount_called;

/* A request @opcode with @len payload bytes, sent or received.  Unknown
 * opcodes are not counted. */
void opcount_request(struct opcount *c, uint16_t opcode, size_t len);
/* The answer to request @opcode: wire status @wire (0 or PROTO_E*) and
 * @len payload bytes. */
void opcount_reply_wire(struct opcount *c, uint16_t opcode, int32_t wire,
                        size_t len);
/* The end of a sent request @opcode: @status 0 or -errno, @len payload
 * bytes of its answer. */
void opcount_reply_status(struct opcount *c, uint16_t opcode, int status,
                          size_t len);

/* Four families, named @prefix + "requests_total", "request_errors_total",
 * "request_bytes_total" and "response_bytes_total", labelled op (the
 * message name without _REQ) and error; @what completes their help
 * ("answered", "sent").  Only non-zero series are written. */
void opcount_render(const struct opcount *c, struct metrics_buf *b,
                    const char *prefix, const char *what);

#endif
