/* fuzz_seclink.c: what a hostile peer sends on a secure link
 * (common/seclink.c, docs/protocol.md §3.7) before and during its TLS
 * handshake, to either side over the memory transport peer.c uses.
 *
 * Input: one selector byte (bit 0: the session is the TLS client, which
 * first writes its ClientHello; else the server), then pieces, each a
 * length byte and up to that many bytes, handed to the session one
 * seclink_input() at a time, as reads arrive.  Properties: every call
 * that asks for more input has used all it was given; without the key
 * no handshake completes; after a failure the session stays failed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seclink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_require(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[AUTH_KEY_SIZE] = {0x42};
    struct seclink *l;
    int rc;

    if (size < 1)
        return 0;
    bool client = data[0] & 1;
    if (seclink_new(client ? SECLINK_CLIENT : SECLINK_SERVER, "client.f", key,
                    -1, &l) < 0)
        return 0;
    data++;
    size--;
    rc = -EAGAIN;
    if (client) {
        seclink_input(l, NULL, 0);
        rc = seclink_handshake(l);
        fuzz_require(rc == -EAGAIN);
        fuzz_require(seclink_output_len(l) > 0); /* the ClientHello */
    }
    while (size > 0 && rc == -EAGAIN) {
        size_t n = data[0];
        data++;
        size--;
        if (n > size)
            n = size;
        seclink_input(l, data, n);
        rc = seclink_handshake(l);
        if (rc == -EAGAIN)
            fuzz_require(seclink_input_left(l) == 0);
        data += n;
        size -= n;
        /* What the session wrote is taken, as peer.c does. */
        uint8_t *out = malloc(seclink_output_len(l) + 1);
        fuzz_require(out != NULL);
        seclink_output_take(l, out);
        free(out);
    }
    /* No key, no link: nothing that arrives completes the handshake. */
    fuzz_require(rc != 0);
    if (rc != -EAGAIN) {
        uint8_t buf[64];
        seclink_input(l, NULL, 0);
        fuzz_require(seclink_recv(l, buf, sizeof(buf)) < 0);
    }
    seclink_free(l);
    return 0;
}
