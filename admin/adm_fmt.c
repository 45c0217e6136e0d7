/* adm_fmt.c: output helpers for the CLI: JSON string literals, sizes and
 * durations for people, strict number parsing.  No I/O besides the FILE
 * handed in; nothing here knows about the protocol.
 */
#include "adm_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

void adm_json_str(FILE *f, const char *s, size_t n)
{
    struct metrics_buf b;

    metrics_buf_init(&b);
    status_json_str(&b, s, n);
    if (b.err == 0)
        fwrite(b.p, 1, b.len, f);
    metrics_buf_free(&b);
}

int adm_print_buf(struct metrics_buf *b)
{
    int rc = b->err;

    if (rc == 0)
        fwrite(b->p, 1, b->len, stdout);
    metrics_buf_free(b);
    return rc;
}

void adm_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
    static const char *units[] = {"B",   "KiB", "MiB", "GiB",
                                  "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;

    if (bytes < 1024) {
        snprintf(buf, size, "%" PRIu64 " B", bytes);
        return;
    }
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
}

void adm_fmt_secs(uint64_t secs, char *buf, size_t size)
{
    uint64_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60,
             s = secs % 60;

    if (d)
        snprintf(buf, size, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", d, h,
                 m);
    else if (h)
        snprintf(buf, size, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", h, m,
                 s);
    else if (m)
        snprintf(buf, size, "%" PRIu64 "m%02" PRIu64 "s", m, s);
    else
        snprintf(buf, size, "%" PRIu64 "s", s);
}

void adm_fmt_ms(uint64_t ms, char *buf, size_t size)
{
    if (ms < 1000)
        snprintf(buf, size, "%" PRIu64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, size, "%.1fs", (double)ms / 1000);
    else
        adm_fmt_secs(ms / 1000, buf, size);
}
