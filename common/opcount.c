/* opcount.c: the request counters by message of opcount.h, and their
 * rendering as Prometheus counters.
 *
 * The message's slot comes from one switch generated from
 * proto_msgs.def, so a message added there is counted without a change
 * here.  The tables are large (every message by every error kind) but
 * mostly untouched zero pages; a scrape reads them all, which costs a few
 * tens of microseconds.
 */
#include "opcount.h"

#include <stdio.h>
#include <string.h>

#include "proto.h"

struct opcount opcount_served;
struct opcount opcount_called;

static const uint16_t op_ids[OPCOUNT_OPS] = {
#define X(name, id, body) id,
#include "proto_msgs.def"
#undef X
};

static int op_index(uint16_t opcode)
{
    switch (opcode) {
#define X(name, id, body)                                                      \
    case id:                                                                   \
        return OPCOUNT_OP_##name;
#include "proto_msgs.def"
#undef X
    default:
        return -1;
    }
}

static void add(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

void opcount_request(struct opcount *c, uint16_t opcode, size_t len)
{
    int i = op_index(opcode);

    if (i < 0)
        return;
    add(&c->requests[i], 1);
    if (len)
        add(&c->request_bytes[i], len);
}

static void reply(struct opcount *c, uint16_t opcode, unsigned kind,
                  bool failed, size_t len)
{
    int i = op_index(opcode);

    if (i < 0)
        return;
    if (failed)
        add(&c->errors[i][kind], 1);
    if (len)
        add(&c->response_bytes[i], len);
}

void opcount_reply_wire(struct opcount *c, uint16_t opcode, int32_t wire,
                        size_t len)
{
    unsigned kind = 0;

    if (wire > 0 && wire < 128)
        kind = (unsigned)wire;
    else if (wire >= 1000 && wire < 1000 + OPCOUNT_KINDS - 128)
        kind = 128 + (unsigned)(wire - 1000);
    reply(c, opcode, kind, wire != 0, len);
}

void opcount_reply_status(struct opcount *c, uint16_t opcode, int status,
                          size_t len)
{
    unsigned kind = status < 0 && status > -128 ? (unsigned)-status : 0;

    reply(c, opcode, kind, status != 0, len);
}

static const char *kind_name(unsigned kind, char *buf, size_t size)
{
    const char *name = NULL;

    if (kind == 0)
        return "other";
    if (kind < 128)
        name = strerrorname_np((int)kind);
    else
        name = proto_err_name((int32_t)(1000 + kind - 128));
    if (!name || strcmp(name, "E?") == 0) {
        snprintf(buf, size, "E%u", kind);
        name = buf;
    }
    return name;
}

/* The op label: the message name without its "_REQ". */
static const char *op_label(int i, char *buf, size_t size)
{
    const char *name = proto_msg_name(op_ids[i]);
    size_t n = strlen(name);

    if (n > 4 && strcmp(name + n - 4, "_REQ") == 0)
        n -= 4;
    snprintf(buf, size, "%.*s", (int)n, name);
    return buf;
}

/* A family's name and help: @prefix + @suffix, and @head + @what + @tail. */
struct family {
    char name[96], help[200];
};

static void family_init(struct family *f, const char *prefix,
                        const char *suffix, const char *head, const char *what,
                        const char *tail)
{
    snprintf(f->name, sizeof(f->name), "%s%s", prefix, suffix);
    snprintf(f->help, sizeof(f->help), "%s %s%s", head, what, tail);
}

static void render_by_op(const _Atomic uint64_t *v, struct metrics_buf *b,
                         const struct family *f)
{
    char op[64];
    bool any = false;

    for (int i = 0; i < OPCOUNT_OPS; i++) {
        uint64_t n = atomic_load_explicit(&v[i], memory_order_relaxed);
        if (n == 0)
            continue;
        if (!any)
            metrics_family(b, f->name, METRICS_COUNTER, f->help);
        any = true;
        struct metrics_label l = {"op", op_label(i, op, sizeof(op))};
        metrics_sample_u64(b, f->name, &l, 1, n);
    }
}

static void render_errors(const struct opcount *c, struct metrics_buf *b,
                          const struct family *f)
{
    char op[64], kbuf[16];
    bool any = false;

    for (int i = 0; i < OPCOUNT_OPS; i++) {
        for (unsigned k = 0; k < OPCOUNT_KINDS; k++) {
            uint64_t n =
                atomic_load_explicit(&c->errors[i][k], memory_order_relaxed);
            if (n == 0)
                continue;
            if (!any)
                metrics_family(b, f->name, METRICS_COUNTER, f->help);
            any = true;
            struct metrics_label l[2] = {
                {"op", op_label(i, op, sizeof(op))},
                {"error", kind_name(k, kbuf, sizeof(kbuf))},
            };
            metrics_sample_u64(b, f->name, l, 2, n);
        }
    }
}

void opcount_render(const struct opcount *c, struct metrics_buf *b,
                    const char *prefix, const char *what)
{
    struct family f;

    family_init(&f, prefix, "requests_total", "Protocol requests", what,
                ", by message.");
    render_by_op(c->requests, b, &f);
    family_init(&f, prefix, "request_errors_total", "Protocol requests", what,
                " that ended in an error, by message and error.");
    render_errors(c, b, &f);
    family_init(&f, prefix, "request_bytes_total",
                "Payload bytes of the protocol requests", what,
                ", by message.");
    render_by_op(c->request_bytes, b, &f);
    family_init(&f, prefix, "response_bytes_total",
                "Payload bytes of the answers to the protocol requests", what,
                ", by message.");
    render_by_op(c->response_bytes, b, &f);
}
