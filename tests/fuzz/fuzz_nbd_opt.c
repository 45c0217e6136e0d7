/* fuzz_nbd_opt.c: tessera-nbd's option phase (vd_handshake_run()) on an
 * arbitrary client byte stream, STARTTLS included.
 *
 * Input: one byte, then the client's stream.  The byte chooses --tls (its
 * value modulo 3: off, on, require), the client flags (bits 2-3) and how
 * the rest is read (bit 7): as the raw stream, or as options, each a
 * number byte, a length byte and that much data, which the target frames
 * ("IHAVEOPT", number, length) after the client flags, so that mutations
 * explore option sequences rather than the magic.  The stream is written
 * into one end of a socketpair and
 * that end shut for writing; vd_handshake_run() serves the other end over
 * the mem backend ("disk", 1 MiB) with PSK credentials, while a thread
 * reads what the server answers.  A STARTTLS the server accepts hands the
 * rest of the stream to GnuTLS's handshake, which the fuzzer cannot pass
 * (it does not know the key), so that path ends there.
 *
 * Checked beyond "no crash, no leak, no sanitizer report":
 *   - with --tls=require no export is ever chosen in the clear
 *     (vd_handshake.c, invariant 1);
 *   - with --tls=off no reply is NBD_REP_ERR_TLS_REQD (proto.md, NOTLS);
 *   - with --tls=require every reply before TLS starts answers STARTTLS
 *     or ABORT, or is NBD_REP_ERR_TLS_REQD or _TOO_BIG.
 */
#include "vd_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 4096   /* bytes of input used */
#define STREAM_MAX 65536 /* fits a socket buffer: written before serving */

#define fuzz_require(cond)                                                     \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_nbd_opt: %s failed\n", #cond);               \
            abort();                                                           \
        }                                                                      \
    } while (0)

static struct vd_backend *be;
static struct vd_tls *tls;
static char psk_path[] = "/tmp/fuzz-nbd-opt-XXXXXX";

static void psk_unlink(void)
{
    unlink(psk_path);
}

static void setup_once(void)
{
    static const char line[] = "alice:00112233445566778899aabbccddeeff\n";
    char why[256];
    int fd;

    log_set_level(LOG_LVL_ERROR);
    fuzz_require(vd_mem_new(&be) == 0 && vd_mem_add(be, "disk", 1 << 20) == 0);
    fd = mkstemp(psk_path);
    fuzz_require(fd >= 0);
    fuzz_require(write(fd, line, sizeof(line) - 1) == sizeof(line) - 1);
    fuzz_require(fchmod(fd, 0600) == 0);
    close(fd);
    atexit(psk_unlink);
    struct vd_tls_opts o = {.psk_file = psk_path};
    fuzz_require(vd_tls_new(&o, &tls, why, sizeof(why)) == 0);
}

/* The client's side: read the server's answers and check the TLS rules
 * on each option reply, until something that is not one (an
 * EXPORT_NAME answer, TLS records after STARTTLS) or the end. */
struct drain {
    int fd;
    enum vd_tls_mode mode;
};

static bool read_full(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static void check_reply(enum vd_tls_mode mode, uint32_t opt, uint32_t type)
{
    if (mode == VD_TLS_OFF)
        fuzz_require(type != NBD_REP_ERR_TLS_REQD);
    if (mode == VD_TLS_REQUIRE)
        fuzz_require(opt == NBD_OPT_STARTTLS || opt == NBD_OPT_ABORT ||
                     type == NBD_REP_ERR_TLS_REQD ||
                     type == NBD_REP_ERR_TOO_BIG);
}

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    uint8_t hdr[20], sink[4096];
    bool parsing = read_full(d->fd, hdr, 18); /* the greeting */

    while (parsing && read_full(d->fd, hdr, 20)) {
        if (vd_get64(hdr) != NBD_REP_MAGIC)
            break;
        uint32_t opt = vd_get32(hdr + 8), type = vd_get32(hdr + 12);
        uint32_t len = vd_get32(hdr + 16);
        check_reply(d->mode, opt, type);
        for (uint32_t left = len; parsing && left > 0;) {
            uint32_t k = left < sizeof(sink) ? left : sizeof(sink);
            parsing = read_full(d->fd, sink, k);
            left -= k;
        }
        if (opt == NBD_OPT_STARTTLS && type == NBD_REP_ACK)
            break; /* TLS from here */
    }
    while (recv(d->fd, sink, sizeof(sink), 0) > 0)
        ;
    return NULL;
}

/* The client's stream for @in (@n bytes after the first) into @out, which
 * holds STREAM_MAX bytes; returns its length. */
static size_t stream_build(uint8_t first, const uint8_t *in, size_t n,
                           uint8_t *out)
{
    size_t len = 0;

    if (first & 0x80) {
        memcpy(out, in, n);
        return n;
    }
    vd_put32(out, (first >> 2) & 3);
    len = 4;
    for (size_t i = 0; i + 2 <= n;) {
        uint32_t opt = in[i], dlen = in[i + 1];
        i += 2;
        if (dlen > n - i)
            dlen = (uint32_t)(n - i);
        vd_put64(out + len, NBD_IHAVEOPT);
        vd_put32(out + len + 8, opt);
        vd_put32(out + len + 12, dlen);
        memcpy(out + len + 16, in + i, dlen);
        len += 16 + dlen;
        i += dlen;
    }
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t stream[STREAM_MAX];
    static const enum vd_tls_mode modes[] = {VD_TLS_OFF, VD_TLS_ON,
                                             VD_TLS_REQUIRE};
    int sv[2];
    pthread_t tid;

    if (size < 1 || size > INPUT_MAX)
        return 0;
    if (!be)
        setup_once();
    enum vd_tls_mode mode = modes[data[0] % 3];
    struct vd_config cfg = {
        .be = be, .tls_mode = mode, .tls = mode == VD_TLS_OFF ? NULL : tls};
    fuzz_require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    size_t n = stream_build(data[0], data + 1, size - 1, stream);
    if (n > 0)
        fuzz_require(send(sv[0], stream, n, MSG_NOSIGNAL) == (ssize_t)n);
    shutdown(sv[0], SHUT_WR);
    struct drain d = {.fd = sv[0], .mode = mode};
    fuzz_require(pthread_create(&tid, NULL, drain_main, &d) == 0);

    struct vd_conn c = {.fd = sv[1], .cfg = &cfg, .peer = "fuzz"};
    c.id.peer = c.peer;
    pthread_mutex_init(&c.send_lock, NULL);
    int rc = vd_handshake_run(&c);
    if (rc == 0) {
        /* vd_handshake.c invariant 1: no export in the clear. */
        fuzz_require(mode != VD_TLS_REQUIRE || c.tls);
        be->ops->close(c.img);
    }
    vd_tls_session_close(c.tls, false);
    shutdown(sv[1], SHUT_RDWR);
    pthread_join(tid, NULL);
    close(sv[0]);
    close(sv[1]);
    free(c.export_name);
    free(c.meta_export);
    pthread_mutex_destroy(&c.send_lock);
    return 0;
}
