/* fuzz_meta_op.c: the operation record decoders (metadata/meta_op.h) on
 * arbitrary log entries.
 *
 * Input: one encoded record (and the same bytes as a Raft log entry,
 * meta_op_entry_unwrap()).  A decode failure must be -EPROTO.  A record
 * that decodes must encode back to the same bytes; then its payload goes
 * to the decoder of its opcode: the typed codec of an internal operation
 * (whose re-encoding must give the payload back, byte for byte) or, for a
 * client request stored raw, the protocol decoders (fuzz_check.h).
 */
#include "fuzz_check.h"
#include "meta_op.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode @p/@n as a struct meta_op_NAME and require the re-encoding to be
 * identical. */
#define CHECK_TYPED(name, p, n)                                                \
    do {                                                                       \
        struct meta_op_##name m;                                               \
        struct proto_wbuf w;                                                   \
        int rc = meta_op_##name##_decode(p, n, &m);                            \
        if (rc) {                                                              \
            fuzz_require(rc == -EPROTO);                                       \
            break;                                                             \
        }                                                                      \
        proto_wbuf_init(&w);                                                   \
        meta_op_##name##_encode(&w, &m);                                       \
        fuzz_require(w.err == 0 && w.len == n);                                \
        fuzz_require(n == 0 || memcmp(w.p, p, n) == 0);                        \
        proto_wbuf_free(&w);                                                   \
    } while (0)

static bool is_wire_request(uint16_t opcode)
{
    for (size_t i = 0; i < FUZZ_NMSGS; i++)
        if (fuzz_msgs[i].id == opcode)
            return true;
    return false;
}

static void check_payload(const struct meta_op *op)
{
    const uint8_t *p = op->payload;
    size_t n = op->len;

    switch (op->opcode) {
    case META_OP_SESSION_EXPIRE:
        CHECK_TYPED(session_expire, p, n);
        break;
    case META_OP_CHUNK_SET:
        CHECK_TYPED(chunk_set, p, n);
        break;
    case META_OP_GC_DONE:
        CHECK_TYPED(gc_done, p, n);
        break;
    case META_OP_REPLICA_ADD:
    case META_OP_REPLICA_DROP:
        CHECK_TYPED(replica, p, n);
        break;
    case META_OP_SERVER_STATE:
        CHECK_TYPED(server_state, p, n);
        break;
    case META_OP_CHUNK_COW:
        CHECK_TYPED(chunk_cow, p, n);
        break;
    case META_OP_AUTH_ADD:
        CHECK_TYPED(auth_add, p, n);
        break;
    case META_OP_SERVICE_KEY:
        CHECK_TYPED(service_key, p, n);
        break;
    case META_OP_MEMBER:
        CHECK_TYPED(member, p, n);
        break;
    case META_OP_CHUNK_USAGE:
        CHECK_TYPED(chunk_usage, p, n);
        break;
    default:
        if (is_wire_request(op->opcode))
            fuzz_check_payload(op->opcode, p, n);
        break;
    }
}

/* The input as a log entry: one that unwraps wraps back to itself. */
static void check_entry(const uint8_t *data, size_t size)
{
    const uint8_t *rec;
    size_t len;
    struct proto_wbuf w;
    int rc = meta_op_entry_unwrap(data, size, &rec, &len);

    if (rc) {
        fuzz_require(rc == -EPROTO);
        return;
    }
    fuzz_require(rec == data + 4 && len <= size - 4);
    proto_wbuf_init(&w);
    meta_op_entry_wrap(&w, rec, len);
    fuzz_require(w.err == 0 && w.len == size);
    fuzz_require(memcmp(w.p, data, size) == 0);
    proto_wbuf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct meta_op op;
    struct proto_wbuf w;
    int rc;

    check_entry(data, size);
    rc = meta_op_record_decode(data, size, &op);

    if (rc) {
        fuzz_require(rc == -EPROTO);
        return 0;
    }
    fuzz_require(op.len == size - META_OP_RECORD_HEADER +
                               (op.format < 2 ? sizeof(uint64_t) : 0));
    fuzz_require(op.format >= 2 || op.req_id == 0);
    proto_wbuf_init(&w);
    meta_op_record_encode(&w, &op);
    fuzz_require(w.err == 0 && w.len == size);
    fuzz_require(memcmp(w.p, data, size) == 0);
    proto_wbuf_free(&w);
    check_payload(&op);
    return 0;
}
