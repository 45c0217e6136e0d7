/* proto_buf.c: bounded big-endian writers and readers.
 *
 * Every encoder and decoder in protocol/ is built on these.  Writers latch
 * their first error so an encoder can append a whole message and check
 * once; readers latch -EPROTO on the first short read and then return
 * zeros, so a decoder reads every field and checks once at the end with
 * proto_rbuf_done(), which also rejects trailing bytes.
 */
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void proto_wbuf_init(struct proto_wbuf *w)
{
    memset(w, 0, sizeof(*w));
}

void proto_wbuf_free(struct proto_wbuf *w)
{
    free(w->p);
    memset(w, 0, sizeof(*w));
}

void proto_wbuf_reset(struct proto_wbuf *w)
{
    w->len = 0;
    w->err = 0;
}

/* Make room for @n more bytes; returns the write position or NULL. */
static uint8_t *reserve(struct proto_wbuf *w, size_t n)
{
    if (w->err)
        return NULL;
    if (n > PROTO_HDR_SIZE + PROTO_MAX_PAYLOAD - w->len) {
        w->err = -EMSGSIZE;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->err = -ENOMEM;
            return NULL;
        }
        w->p = p;
        w->cap = cap;
    }
    uint8_t *at = w->p + w->len;
    w->len += n;
    return at;
}

void proto_put_u8(struct proto_wbuf *w, uint8_t v)
{
    uint8_t *p = reserve(w, 1);
    if (p)
        p[0] = v;
}

void proto_put_u16(struct proto_wbuf *w, uint16_t v)
{
    uint8_t *p = reserve(w, 2);
    if (p) {
        p[0] = v >> 8;
        p[1] = v;
    }
}

void proto_put_u32(struct proto_wbuf *w, uint32_t v)
{
    uint8_t *p = reserve(w, 4);
    if (p)
        for (int i = 0; i < 4; i++)
            p[i] = v >> (24 - 8 * i);
}

void proto_put_u64(struct proto_wbuf *w, uint64_t v)
{
    uint8_t *p = reserve(w, 8);
    if (p)
        for (int i = 0; i < 8; i++)
            p[i] = v >> (56 - 8 * i);
}

void proto_put_i64(struct proto_wbuf *w, int64_t v)
{
    proto_put_u64(w, (uint64_t)v);
}

void proto_put_raw(struct proto_wbuf *w, const void *src, size_t n)
{
    uint8_t *p = reserve(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void proto_put_str(struct proto_wbuf *w, const char *p, size_t n)
{
    if (n > PROTO_MAX_STR) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_u16(w, (uint16_t)n);
    proto_put_raw(w, p, n);
}

void proto_put_bytes(struct proto_wbuf *w, const void *p, size_t n)
{
    if (n > PROTO_MAX_DATA) {
        if (!w->err)
            w->err = -EINVAL;
        return;
    }
    proto_put_u32(w, (uint32_t)n);
    proto_put_raw(w, p, n);
}

void proto_rbuf_init(struct proto_rbuf *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->err = 0;
}

const uint8_t *proto_get_raw(struct proto_rbuf *r, size_t n)
{
    if (r->err || n > r->len - r->off) {
        r->err = -EPROTO;
        return NULL;
    }
    if (n == 0) /* never offset a NULL input, even by zero */
        return r->p ? r->p + r->off : (const uint8_t *)"";
    const uint8_t *at = r->p + r->off;
    r->off += n;
    return at;
}

static uint64_t get_be(struct proto_rbuf *r, size_t n)
{
    const uint8_t *p = proto_get_raw(r, n);
    uint64_t v = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

uint8_t proto_get_u8(struct proto_rbuf *r)
{
    return (uint8_t)get_be(r, 1);
}

uint16_t proto_get_u16(struct proto_rbuf *r)
{
    return (uint16_t)get_be(r, 2);
}

uint32_t proto_get_u32(struct proto_rbuf *r)
{
    return (uint32_t)get_be(r, 4);
}

uint64_t proto_get_u64(struct proto_rbuf *r)
{
    return get_be(r, 8);
}

int64_t proto_get_i64(struct proto_rbuf *r)
{
    return (int64_t)get_be(r, 8);
}

int proto_rbuf_done(const struct proto_rbuf *r)
{
    if (r->err || r->off != r->len)
        return -EPROTO;
    return 0;
}

int proto_str_get(struct proto_rbuf *r, struct proto_str *s)
{
    uint16_t n = proto_get_u16(r);
    if (n > PROTO_MAX_STR) {
        r->err = -EPROTO;
        return -EPROTO;
    }
    s->p = (const char *)proto_get_raw(r, n);
    s->len = s->p ? n : 0;
    return r->err;
}

int proto_bytes_get(struct proto_rbuf *r, struct proto_str *s)
{
    uint32_t n = proto_get_u32(r);
    if (n > PROTO_MAX_DATA) {
        r->err = -EPROTO;
        return -EPROTO;
    }
    s->p = (const char *)proto_get_raw(r, n);
    s->len = s->p ? n : 0;
    return r->err;
}
