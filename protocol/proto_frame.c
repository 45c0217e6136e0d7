/* proto_frame.c: the frame header and the incremental frame reader.
 *
 * docs/protocol.md §2: every message is a 24-byte header followed by
 * `length` payload bytes.  The reader accepts a byte stream in arbitrary
 * pieces and hands out whole frames; it checks each header as soon as its
 * 24 bytes are in, so a hostile length never makes it allocate more than
 * one maximum frame.  What a payload means is left to the decoders.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

void proto_hdr_encode(const struct proto_hdr *h, uint8_t *out)
{
    put_be(out, PROTO_MAGIC, 4);
    out[4] = h->version;
    out[5] = h->flags;
    put_be(out + 6, h->opcode, 2);
    put_be(out + 8, h->req_id, 8);
    put_be(out + 16, (uint32_t)h->status, 4);
    put_be(out + 20, h->length, 4);
}

int proto_hdr_decode(const uint8_t *in, struct proto_hdr *h)
{
    if (get_be(in, 4) != PROTO_MAGIC)
        return -EPROTO;
    h->version = in[4];
    h->flags = in[5];
    h->opcode = (uint16_t)get_be(in + 6, 2);
    h->req_id = get_be(in + 8, 8);
    h->status = (int32_t)(uint32_t)get_be(in + 16, 4);
    h->length = (uint32_t)get_be(in + 20, 4);
    /* §2.1: unknown frame versions and flags are errors, not ignored. */
    if (h->version != PROTO_FRAME_VERSION || (h->flags & ~PROTO_FLAG_MASK))
        return -EPROTO;
    /* §2.2: a request carries status 0; a reply a known error value. */
    if (!(h->flags & PROTO_FLAG_REPLY) && h->status != 0)
        return -EPROTO;
    if ((h->flags & PROTO_FLAG_REPLY) && !proto_err_valid(h->status))
        return -EPROTO;
    if (h->length > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    return 0;
}

int proto_frame_build(struct proto_wbuf *w, const struct proto_hdr *h,
                      const void *payload, size_t len)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    struct proto_hdr copy = *h;

    if (len > PROTO_MAX_PAYLOAD)
        return -EMSGSIZE;
    copy.length = (uint32_t)len;
    proto_hdr_encode(&copy, hdr);
    proto_wbuf_reset(w);
    proto_put_raw(w, hdr, sizeof(hdr));
    proto_put_raw(w, payload, len);
    return w->err;
}

void proto_reader_init(struct proto_reader *rd)
{
    memset(rd, 0, sizeof(*rd));
}

void proto_reader_free(struct proto_reader *rd)
{
    free(rd->buf);
    memset(rd, 0, sizeof(*rd));
}

/* Drop the frame handed out by the last proto_reader_next(). */
static void drop_taken(struct proto_reader *rd)
{
    if (!rd->taken)
        return;
    memmove(rd->buf, rd->buf + rd->taken, rd->len - rd->taken);
    rd->len -= rd->taken;
    rd->taken = 0;
}

uint8_t *proto_reader_space(struct proto_reader *rd, size_t want,
                            size_t *avail)
{
    drop_taken(rd);
    if (rd->cap - rd->len < want) {
        size_t cap = rd->cap ? rd->cap : 4096;
        while (cap - rd->len < want)
            cap *= 2;
        uint8_t *p = realloc(rd->buf, cap);
        if (!p) {
            *avail = 0;
            return NULL;
        }
        rd->buf = p;
        rd->cap = cap;
    }
    *avail = rd->cap - rd->len;
    return rd->buf + rd->len;
}

int proto_reader_commit(struct proto_reader *rd, size_t n)
{
    rd->len += n;
    /* Check the header early so a bad peer is cut off before it sends a
     * payload we would otherwise buffer. */
    if (!rd->err && rd->len >= PROTO_HDR_SIZE) {
        struct proto_hdr h;
        rd->err = proto_hdr_decode(rd->buf, &h);
    }
    return rd->err;
}

int proto_reader_feed(struct proto_reader *rd, const void *p, size_t n)
{
    size_t avail;
    uint8_t *at;

    if (rd->err)
        return rd->err;
    at = proto_reader_space(rd, n, &avail);
    if (!at)
        return -ENOMEM;
    if (n)
        memcpy(at, p, n);
    return proto_reader_commit(rd, n);
}

int proto_reader_next(struct proto_reader *rd, struct proto_hdr *h,
                      const uint8_t **payload)
{
    drop_taken(rd);
    if (rd->err)
        return rd->err;
    if (rd->len < PROTO_HDR_SIZE)
        return 0;
    rd->err = proto_hdr_decode(rd->buf, h);
    if (rd->err)
        return rd->err;
    if (rd->len - PROTO_HDR_SIZE < h->length)
        return 0;
    *payload = rd->buf + PROTO_HDR_SIZE;
    rd->taken = PROTO_HDR_SIZE + h->length;
    return 1;
}
