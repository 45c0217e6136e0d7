/* proto_msg.c: the message table generated from proto_msgs.def: names,
 * request/reply classification, and decode by opcode.
 */
#include "proto.h"

#include <errno.h>

typedef int (*decode_fn)(const uint8_t *p, size_t n, void *msg);

/* One typed wrapper per message, so the table holds exact-typed calls. */
#define X(name, id, body)                                                      \
    static int dec_##name(const uint8_t *p, size_t n, void *msg)              \
    {                                                                          \
        return proto_##body##_decode(p, n, msg);                               \
    }
#include "proto_msgs.def"
#undef X

static const struct {
    uint16_t id;
    const char *name;
    decode_fn decode;
    size_t size;
} msgs[] = {
#define X(name, id, body)                                                      \
    {id, #name, dec_##name, sizeof(struct proto_##body)},
#include "proto_msgs.def"
#undef X
};

#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static int find(uint16_t opcode)
{
    for (size_t i = 0; i < NMSGS; i++)
        if (msgs[i].id == opcode)
            return (int)i;
    return -1;
}

const char *proto_msg_name(uint16_t opcode)
{
    int i = find(opcode);
    return i < 0 ? NULL : msgs[i].name;
}

bool proto_msg_is_request(uint16_t opcode)
{
    return find(opcode) >= 0 && (opcode & 1);
}

int proto_msg_decode(uint16_t opcode, const uint8_t *p, size_t n, void *msg)
{
    int i = find(opcode);
    if (i < 0)
        return -EPROTO;
    return msgs[i].decode(p, n, msg);
}

size_t proto_msg_body_size(uint16_t opcode)
{
    int i = find(opcode);
    return i < 0 ? 0 : msgs[i].size;
}
