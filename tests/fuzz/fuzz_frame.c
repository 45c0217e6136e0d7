/* fuzz_frame.c: the frame reader and the decoders behind it, on an
 * arbitrary byte stream.
 *
 * Input: one byte that sets the piece size (1..256) the stream is fed
 * in, then the stream.  Every whole frame the reader hands out has its
 * payload decoded by opcode and checked as in fuzz_check.h; once the
 * reader latches an error it must keep returning it.  Frame headers that
 * decode must also re-encode to the same 24 bytes.
 */
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_frame(const struct proto_hdr *h, const uint8_t *payload)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    struct proto_hdr again;

    fuzz_require(h->version == PROTO_FRAME_VERSION);
    fuzz_require(h->length <= PROTO_MAX_PAYLOAD);
    proto_hdr_encode(h, hdr);
    fuzz_require(proto_hdr_decode(hdr, &again) == 0);
    fuzz_require(memcmp(payload - PROTO_HDR_SIZE, hdr, PROTO_HDR_SIZE) == 0);
    if (proto_msg_name(h->opcode) == NULL) {
        fuzz_require(proto_msg_decode(h->opcode, payload, h->length, NULL) ==
                     -EPROTO);
        return;
    }
    /* Error replies carry no body to decode. */
    if (h->status == 0)
        fuzz_check_payload(h->opcode, payload, h->length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_reader rd;
    struct proto_hdr h;
    const uint8_t *payload;
    size_t piece, off = 1;
    int rc = 0;

    if (size < 1)
        return 0;
    piece = (size_t)data[0] + 1;
    proto_reader_init(&rd);
    while (off < size && rc >= 0) {
        size_t k = size - off < piece ? size - off : piece;
        rc = proto_reader_feed(&rd, data + off, k);
        off += k;
        while (rc >= 0 && (rc = proto_reader_next(&rd, &h, &payload)) == 1)
            check_frame(&h, payload);
    }
    if (rc < 0) {
        fuzz_require(rc == -EPROTO || rc == -EMSGSIZE);
        fuzz_require(proto_reader_next(&rd, &h, &payload) == rc);
        fuzz_require(proto_reader_feed(&rd, data, 1) == rc);
    }
    proto_reader_free(&rd);
    return 0;
}
