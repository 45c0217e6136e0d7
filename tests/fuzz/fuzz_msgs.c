/* fuzz_msgs.c: every body decoder on arbitrary payloads.
 *
 * Input: two bytes (big-endian) that pick one of the message ids in
 * proto_msgs.def, then the payload, which also goes to the decoder of the
 * ENOTLEADER reply body.  See fuzz_check.h for what is
 * asserted about each decode.
 */
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The body of an ENOTLEADER reply (an error reply, not a message id):
 * one that decodes encodes back to the same bytes. */
static void check_not_leader(const uint8_t *p, size_t n)
{
    struct proto_not_leader m;
    struct proto_wbuf w;
    int rc = proto_not_leader_decode(p, n, &m);

    if (rc) {
        fuzz_require(rc == -EPROTO);
        return;
    }
    proto_wbuf_init(&w);
    proto_not_leader_encode(&w, &m);
    fuzz_require(w.err == 0 && w.len == n && memcmp(w.p, p, n) == 0);
    proto_wbuf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint16_t sel;

    if (size < 2)
        return 0;
    sel = (uint16_t)(data[0] << 8 | data[1]);
    fuzz_check_payload(fuzz_msgs[sel % FUZZ_NMSGS].id, data + 2, size - 2);
    check_not_leader(data + 2, size - 2);
    return 0;
}
