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
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        switch (ch) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
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

bool adm_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}
