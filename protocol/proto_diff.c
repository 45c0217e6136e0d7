/* proto_diff.c: the image diff stream codec (proto.h, docs/vmdisk.md
 * "Incremental diffs"): the header, record heads, and the cursor that
 * holds a reader to the order and bounds a writer must keep.
 *
 * A diff is read from a file that may be anything, so every field is
 * checked here before a caller trusts it: the magic and format, a block
 * size of 4096, paths no longer than a wire string, records ascending and
 * non-overlapping, block-aligned (a record may end unaligned only at the
 * end of the target), inside the target, DATA no longer than
 * PROTO_DIFF_DATA_MAX, and an END whose counts match what came before.
 * Computing and checking the SHA-256 digests is left to the caller, which
 * links a cryptographic library; this file stays libc only.
 */
#include "proto_internal.h"

#include <errno.h>
#include <string.h>

void proto_diff_hdr_encode(struct proto_wbuf *w, const struct proto_diff_hdr *h)
{
    proto_put_raw(w, PROTO_DIFF_MAGIC, 8);
    proto_put_u32(w, PROTO_DIFF_FORMAT);
    proto_put_u32(w, PROTO_DIFF_BLOCK);
    proto_put_u64(w, h->base_size);
    proto_put_u64(w, h->target_size);
    proto_put_u64(w, h->base_ino);
    proto_put_u64(w, h->target_ino);
    proto_put_raw(w, h->base_content, sizeof(h->base_content));
    proto_put_str(w, h->base_path.p, h->base_path.len);
    proto_put_str(w, h->target_path.p, h->target_path.len);
}

/* The length of the string starting at @p[@off] with its u16 prefix;
 * -EAGAIN when it is not all in @n bytes, -EPROTO when too long. */
static int str_len_at(const uint8_t *p, size_t n, size_t off, size_t *len)
{
    if (n < off + 2)
        return -EAGAIN;
    *len = 2 + ((size_t)p[off] << 8 | p[off + 1]);
    if (*len > 2 + PROTO_MAX_STR)
        return -EPROTO;
    return n < off + *len ? -EAGAIN : 0;
}

int proto_diff_hdr_decode(const uint8_t *p, size_t n, struct proto_diff_hdr *h,
                          size_t *used)
{
    struct proto_rbuf r;
    size_t l1, l2;
    int rc;

    memset(h, 0, sizeof(*h));
    if (n < 8)
        return -EAGAIN;
    if (memcmp(p, PROTO_DIFF_MAGIC, 8) != 0)
        return -EPROTO;
    if ((rc = str_len_at(p, n, PROTO_DIFF_HDR_FIXED, &l1)) < 0 ||
        (rc = str_len_at(p, n, PROTO_DIFF_HDR_FIXED + l1, &l2)) < 0)
        return rc;
    proto_rbuf_init(&r, p + 8, PROTO_DIFF_HDR_FIXED - 8 + l1 + l2);
    uint32_t format = proto_get_u32(&r);
    uint32_t block = proto_get_u32(&r);
    h->base_size = proto_get_u64(&r);
    h->target_size = proto_get_u64(&r);
    h->base_ino = proto_get_u64(&r);
    h->target_ino = proto_get_u64(&r);
    const uint8_t *content = proto_get_raw(&r, sizeof(h->base_content));
    if (content)
        memcpy(h->base_content, content, sizeof(h->base_content));
    rc = proto_str_get(&r, &h->base_path);
    if (rc == 0)
        rc = proto_str_get(&r, &h->target_path);
    if (rc == 0 && (format != PROTO_DIFF_FORMAT || block != PROTO_DIFF_BLOCK ||
                    h->base_size > INT64_MAX || h->target_size > INT64_MAX))
        rc = -EPROTO;
    rc = proto_rbuf_finish(&r, rc);
    if (rc == 0)
        *used = PROTO_DIFF_HDR_FIXED + l1 + l2;
    return rc;
}

void proto_diff_rec_encode(struct proto_wbuf *w, const struct proto_diff_rec *r)
{
    static const uint8_t zero[7];

    proto_put_u8(w, (uint8_t)r->type);
    proto_put_raw(w, zero, sizeof(zero));
    proto_put_u64(w, r->offset);
    proto_put_u64(w, r->length);
}

int proto_diff_rec_decode(const uint8_t *p, size_t n, struct proto_diff_rec *r)
{
    struct proto_rbuf b;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    if (n != PROTO_DIFF_REC_SIZE)
        return -EPROTO;
    proto_rbuf_init(&b, p, n);
    r->type = proto_get_u8(&b);
    const uint8_t *pad = proto_get_raw(&b, 7);
    r->offset = proto_get_u64(&b);
    r->length = proto_get_u64(&b);
    for (int i = 0; pad && i < 7; i++)
        if (pad[i])
            rc = -EPROTO;
    if (r->type != PROTO_DIFF_DATA && r->type != PROTO_DIFF_ZERO &&
        r->type != PROTO_DIFF_END)
        rc = -EPROTO;
    return proto_rbuf_finish(&b, rc);
}

void proto_diff_cursor_init(struct proto_diff_cursor *c,
                            const struct proto_diff_hdr *h)
{
    memset(c, 0, sizeof(*c));
    c->target_size = h->target_size;
}

int proto_diff_cursor_next(struct proto_diff_cursor *c,
                           const struct proto_diff_rec *r)
{
    if (c->ended)
        return -EPROTO;
    if (r->type == PROTO_DIFF_END) {
        if (r->offset != c->records || r->length != c->data)
            return -EPROTO;
        c->ended = true;
        return 0;
    }
    if (r->length == 0 || r->offset % PROTO_DIFF_BLOCK || r->offset < c->next ||
        r->offset > c->target_size || r->length > c->target_size - r->offset)
        return -EPROTO;
    uint64_t end = r->offset + r->length;
    if (end % PROTO_DIFF_BLOCK && end != c->target_size)
        return -EPROTO;
    if (r->type == PROTO_DIFF_DATA) {
        if (r->length > PROTO_DIFF_DATA_MAX)
            return -EPROTO;
        c->data += r->length;
    }
    c->records++;
    c->next = end;
    return 0;
}
