/* fuzz_diff.c: the image diff stream decoder (protocol/proto_diff.c) on
 * arbitrary files.
 *
 * Input: a whole diff file.  The header is decoded, then record heads one
 * after the other through the cursor, skipping the bytes a DATA record
 * carries, as `tessera image apply-diff` reads a file.  Asserted: nothing
 * is read outside the input (ASan), an accepted header's paths lie inside
 * it, every accepted record lies inside the target and after the last,
 * and no record is accepted after END.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_diff_hdr h;
    struct proto_diff_cursor c;
    struct proto_diff_rec r;
    size_t off = 0;

    if (proto_diff_hdr_decode(data, size, &h, &off) < 0)
        return 0;
    assert(off <= size);
    assert(h.base_path.len <= PROTO_MAX_STR &&
           h.target_path.len <= PROTO_MAX_STR);
    assert((const uint8_t *)h.target_path.p + h.target_path.len <= data + size);
    proto_diff_cursor_init(&c, &h);
    while (size - off >= PROTO_DIFF_REC_SIZE) {
        if (proto_diff_rec_decode(data + off, PROTO_DIFF_REC_SIZE, &r) < 0)
            return 0;
        off += PROTO_DIFF_REC_SIZE;
        uint64_t prev = c.next;
        bool ended = c.ended;
        if (proto_diff_cursor_next(&c, &r) < 0)
            return 0;
        assert(!ended);
        if (r.type == PROTO_DIFF_END)
            return 0;
        assert(r.offset >= prev && r.offset + r.length <= h.target_size);
        if (r.type == PROTO_DIFF_DATA) {
            assert(r.length <= PROTO_DIFF_DATA_MAX);
            if (size - off < r.length)
                return 0;
            off += (size_t)r.length;
        }
    }
    return 0;
}
