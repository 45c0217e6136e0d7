/* fuzz_msgs.c: every body decoder on arbitrary payloads.
 *
 * Input: two bytes (big-endian) that pick one of the message ids in
 * proto_msgs.def, then the payload.  See fuzz_check.h for what is
 * asserted about each decode.
 */
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint16_t sel;

    if (size < 2)
        return 0;
    sel = (uint16_t)(data[0] << 8 | data[1]);
    fuzz_check_payload(fuzz_msgs[sel % FUZZ_NMSGS].id, data + 2, size - 2);
    return 0;
}
