/* fuzz_auth.c: the authentication parsers that read what others wrote:
 * key files, capability texts (from tickets and operators) and tickets
 * (from the network, opened with a service key).
 *
 * Input: one selector byte, then the bytes.  Selector % 3:
 *   0: auth_key_parse(); what parses must format and parse back equal;
 *   1: auth_caps_parse() of the bytes up to the first NUL; what parses
 *      must format to a text that parses to the same rights;
 *   2: auth_ticket_open() with a fixed service key; a random blob must
 *      never open, and a ticket sealed from the bytes must open equal.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "auth_caps.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_require(int cond)
{
    if (!cond)
        abort();
}

static void check_key(const uint8_t *p, size_t n)
{
    struct auth_key k, again;
    char text[512];

    if (auth_key_parse((const char *)p, n, &k) != 0)
        return;
    int len = auth_key_format(&k, text, sizeof(text));
    fuzz_require(len > 0);
    fuzz_require(auth_key_parse(text, (size_t)len, &again) == 0);
    fuzz_require(strcmp(k.name, again.name) == 0);
    fuzz_require(memcmp(k.secret, again.secret, AUTH_KEY_SIZE) == 0);
}

static void check_caps(const uint8_t *p, size_t n)
{
    char text[PROTO_AUTH_CAPS_MAX + 1], out[PROTO_AUTH_CAPS_MAX * 2];
    struct auth_caps c, again;

    if (n > PROTO_AUTH_CAPS_MAX)
        n = PROTO_AUTH_CAPS_MAX;
    memcpy(text, p, n);
    text[n] = '\0';
    if (auth_caps_parse(text, &c, NULL) != 0)
        return;
    fuzz_require(auth_caps_format(&c, out, sizeof(out)) >= 0);
    fuzz_require(auth_caps_parse(out, &again, NULL) == 0);
    fuzz_require(again.flags == c.flags && again.npaths == c.npaths);
    fuzz_require(again.squash_uid == c.squash_uid);
    for (uint32_t i = 0; i < c.npaths; i++)
        fuzz_require(strcmp(again.paths[i], c.paths[i]) == 0);
    (void)auth_caps_reach(&c, "/a/b");
}

static void check_ticket(const uint8_t *p, size_t n)
{
    static const uint8_t svc[AUTH_KEY_SIZE] = {1, 2, 3};
    uint8_t blob[PROTO_AUTH_TICKET_MAX];
    struct auth_ticket t, out;

    fuzz_require(auth_ticket_open(svc, p, n, &out) == -EBADMSG);
    memset(&t, 0, sizeof(t));
    snprintf(t.name, sizeof(t.name), "fuzz");
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        t.caps[i] = (char)(p[i] % 94 + 33);
    int len = auth_ticket_seal(7, svc, &t, blob, sizeof(blob));
    fuzz_require(len > 0);
    fuzz_require(auth_ticket_open(svc, blob, (size_t)len, &out) == 0);
    fuzz_require(strcmp(out.caps, t.caps) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        check_key(data + 1, size - 1);
        break;
    case 1:
        check_caps(data + 1, size - 1);
        break;
    default:
        check_ticket(data + 1, size - 1);
        break;
    }
    return 0;
}
