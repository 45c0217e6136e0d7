/* meta_op.h: operation records as bytes, one codec per record.
 *
 * A record is what meta_apply() consumes and what a replicated log will
 * carry: the opcode, the time and session fixed when it was made, the
 * client's request id within that session, and the payload.  The payload of a client request (PROTO_MSG_*_REQ) is the
 * request body exactly as it came off the wire; the payload of an internal
 * operation (META_OP_*, meta.h) is one of the structs below.  Every record
 * carries a format version, so records written today still decode after a
 * layout or a protocol change.
 *
 * Format versions (META_OP_FORMAT is the one written now):
 *   1  client request bodies as protocol version 1 (docs/protocol.md)
 *      lays them out; internal payloads as the encoders below write them.
 *   2  the same, and the request id of a client's request made in a
 *      session, so that a request sent again is answered as the first
 *      time (meta_once.c); 0 in any other record.
 * A change to either layout adds a version here, and the decoders keep
 * reading every older one.  A request field that is present only under a
 * new flag (MKNOD's ino and time, PROTO_MKNOD_INO) is no such change: no
 * older body sets the flag, so every older body decodes as before.
 *
 * The record as a log entry (meta_op_record_encode), big-endian:
 *   u8 format, u16 opcode, i64 now, u64 session_id, u64 req_id (format 2
 *   on), payload to the end.
 *
 * Decoders treat their input as hostile: exact lengths, counts bounded by
 * PROTO_MAX_REPLICAS (META_OP_USAGE_MAX for usage figures), -EPROTO for
 * anything else.  Nothing here touches
 * the database, so the fuzz targets build it with protocol/ alone.
 */
#ifndef TESSERA_META_OP_H
#define TESSERA_META_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta.h"
#include "proto.h"

#define META_OP_FORMAT 2
/* Bytes before the payload in an encoded record (format 1: 8 fewer). */
#define META_OP_RECORD_HEADER (1 + 2 + 8 + 8 + 8)

/* Bytes of a secret in a record (AUTH_KEY_SIZE, common/auth.h). */
#define META_OP_SECRET_SIZE 32

/* A replica set in a record: n server ids, in chain order. */
struct meta_op_replicas {
    uint32_t n;
    uint32_t servers[PROTO_MAX_REPLICAS];
};

/* META_OP_SESSION_EXPIRE. */
struct meta_op_session_expire {
    uint64_t session_id;
};

/* META_OP_CHUNK_SET. */
struct meta_op_chunk_set {
    uint64_t ino, index, chunk_id;
    uint64_t old_version; /* 0: the slot must be a hole, the chunk new */
    uint64_t new_version;
    struct meta_op_replicas set;
};

/* META_OP_GC_DONE. */
struct meta_op_gc_done {
    uint64_t chunk_id;
    uint32_t server_id;
};

/* META_OP_REPLICA_ADD and META_OP_REPLICA_DROP. */
struct meta_op_replica {
    uint64_t chunk_id, version;
    uint32_t server_id;
};

/* META_OP_SERVER_STATE. */
struct meta_op_server_state {
    uint32_t server_id;
    uint32_t state; /* enum proto_server_state */
};

/* META_OP_CHUNK_COW: set.n >= 1 replicas of the copy; with @bump the
 * trailer (src_new_version, src) that records the source's own bump. */
struct meta_op_chunk_cow {
    uint64_t ino, index, src_id, src_version, new_id, new_version;
    struct meta_op_replicas set;
    bool bump;
    uint64_t src_new_version;
    struct meta_op_replicas src;
};

/* META_OP_AUTH_ADD: an identity with its capabilities (the text form of
 * common/auth_caps.h, checked by the apply) and its secret.  @name and
 * @caps point into the decoded bytes (borrowed). */
struct meta_op_auth_add {
    struct proto_str name; /* 1..PROTO_AUTH_NAME_MAX bytes */
    struct proto_str caps; /* 0..PROTO_AUTH_CAPS_MAX bytes */
    uint8_t secret[META_OP_SECRET_SIZE];
};

/* META_OP_SERVICE_KEY: service key @id (above every key before it). */
struct meta_op_service_key {
    uint32_t id;
    uint8_t secret[META_OP_SECRET_SIZE];
};

/* META_OP_MEMBER: replica @id of the metad group and its addresses
 * (each 0..255 bytes; both empty: forget it).  Borrowed from the decoded
 * bytes. */
struct meta_op_member {
    uint64_t id; /* > 0 */
    struct proto_str client_addr, raft_addr;
};

/* META_OP_CHUNK_USAGE: n figures, each a chunk and the bytes it takes. */
#define META_OP_USAGE_MAX PROTO_USAGE_MAX
struct meta_op_chunk_usage {
    uint32_t n; /* 1..META_OP_USAGE_MAX */
    struct proto_usage_entry v[META_OP_USAGE_MAX];
};

/* Encoders append to @w; a replica count above PROTO_MAX_REPLICAS latches
 * -EINVAL in w->err.  Decoders read exactly @n bytes of @p: 0 or -EPROTO. */
#define META_OP_CODEC(name)                                                    \
    void meta_op_##name##_encode(struct proto_wbuf *w,                         \
                                 const struct meta_op_##name *m);              \
    int meta_op_##name##_decode(const uint8_t *p, size_t n,                    \
                                struct meta_op_##name *m);
META_OP_CODEC(session_expire)
META_OP_CODEC(chunk_set)
META_OP_CODEC(gc_done)
META_OP_CODEC(replica)
META_OP_CODEC(server_state)
META_OP_CODEC(chunk_cow)
META_OP_CODEC(auth_add)
META_OP_CODEC(service_key)
META_OP_CODEC(member)
META_OP_CODEC(chunk_usage)
#undef META_OP_CODEC

/* Encode the whole of @op (its payload is copied) into @w. */
void meta_op_record_encode(struct proto_wbuf *w, const struct meta_op *op);
/* Decode a record from @p/@n into @op: 0, or -EPROTO for a short record or
 * a format this build does not read.  op->payload points into @p
 * (borrowed: valid as long as @p is). */
int meta_op_record_decode(const uint8_t *p, size_t n, struct meta_op *op);

/* A record as an entry of the Raft log (meta_raft.c), which stores entries
 * in units of 8 bytes: u32 record length, the record, then zero bytes up
 * to a multiple of 8. */
#define META_OP_ENTRY_ALIGN 8
/* Wrap record @rec/@n (borrowed) into @w. */
void meta_op_entry_wrap(struct proto_wbuf *w, const uint8_t *rec, size_t n);
/* The record inside entry @p/@n: 0 and *rec (pointing into @p) and *len,
 * or -EPROTO for an entry that is short, not a whole number of units,
 * names more bytes than it has, or has padding that is not zero. */
int meta_op_entry_unwrap(const uint8_t *p, size_t n, const uint8_t **rec,
                         size_t *len);

#endif
