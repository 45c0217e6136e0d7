/* metrics.c: writing the Prometheus text exposition format.
 *
 * Format (prometheus.io, "Exposition formats", text format 0.0.4): per
 * family a "# HELP name text" line, whose text escapes backslash and
 * newline, and a "# TYPE name counter|gauge|histogram" line, then one
 * line per sample, "name{label="value",...} number", where label values
 * also escape the double quote.  Integers are written exactly; other
 * numbers with the fewest significant digits (up to 17) that read back as
 * the same double.
 *
 * Latency histograms: lat.h keeps 8 sub-buckets per power of two of
 * nanoseconds; Prometheus users want a dozen or two bounds, and
 * histogram_quantile() interpolates inside a bucket anyway.  So only the
 * bounds at each power of two are written: le = 2^k - 1 ns for k = 10 ..
 * 33, the largest whole-nanosecond duration each cumulative bucket holds,
 * so every bound is exact.  lat.h's last bucket also holds every clamped
 * duration, so the part from 2^33 ns on is only in +Inf.
 *
 * What this file leaves to others: which metrics a daemon has and when to
 * render them; serving them over HTTP (http.c).  It never logs.
 */
#include "metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int reserve(struct metrics_buf *b, size_t more)
{
    size_t need = b->len + more + 1;
    size_t ncap;
    char *np;

    if (b->err)
        return b->err;
    if (need <= b->cap)
        return 0;
    ncap = b->cap ? b->cap : 4096;
    while (ncap < need)
        ncap *= 2;
    np = realloc(b->p, ncap);
    if (!np) {
        b->err = -ENOMEM;
        return b->err;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

void metrics_buf_init(struct metrics_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void metrics_buf_free(struct metrics_buf *b)
{
    free(b->p);
    metrics_buf_init(b);
}

void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void put_char(struct metrics_buf *b, char c)
{
    if (reserve(b, 1) < 0)
        return;
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

/* @s with backslash and newline escaped, and the double quote too when
 * @quote (label values). */
static void put_escaped(struct metrics_buf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\' || (quote && *s == '"')) {
            put_char(b, '\\');
            put_char(b, *s);
        } else if (*s == '\n') {
            put_char(b, '\\');
            put_char(b, 'n');
        } else {
            put_char(b, *s);
        }
    }
}

static const char *type_name(enum metrics_type t)
{
    switch (t) {
    case METRICS_COUNTER:
        return "counter";
    case METRICS_GAUGE:
        return "gauge";
    case METRICS_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

void metrics_family(struct metrics_buf *b, const char *name,
                    enum metrics_type type, const char *help)
{
    metrics_buf_printf(b, "# HELP %s ", name);
    put_escaped(b, help, 0);
    metrics_buf_printf(b, "\n# TYPE %s %s\n", name, type_name(type));
}

/* "name{l1="v1",l2="v2"" without the closing brace when @open_end, so
 * that the histogram's le can follow; "name{...}" or "name" otherwise. */
static void put_series(struct metrics_buf *b, const char *name,
                       const char *suffix, const struct metrics_label *labels,
                       size_t n, int open_end)
{
    metrics_buf_printf(b, "%s%s", name, suffix);
    if (n == 0 && !open_end)
        return;
    put_char(b, '{');
    for (size_t i = 0; i < n; i++) {
        metrics_buf_printf(b, "%s%s=\"", i ? "," : "", labels[i].name);
        put_escaped(b, labels[i].value, 1);
        put_char(b, '"');
    }
    if (!open_end)
        put_char(b, '}');
    else if (n > 0)
        put_char(b, ',');
}

void metrics_sample_u64(struct metrics_buf *b, const char *name,
                        const struct metrics_label *labels, size_t n,
                        uint64_t v)
{
    put_series(b, name, "", labels, n, 0);
    metrics_buf_printf(b, " %llu\n", (unsigned long long)v);
}

/* " @v\n" with the fewest significant digits (15 to 17) that read back
 * as @v. */
static void put_f64(struct metrics_buf *b, double v)
{
    char text[40];

    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    metrics_buf_printf(b, " %s\n", text);
}

void metrics_sample_f64(struct metrics_buf *b, const char *name,
                        const struct metrics_label *labels, size_t n, double v)
{
    put_series(b, name, "", labels, n, 0);
    put_f64(b, v);
}

void metrics_u64(struct metrics_buf *b, const char *name,
                 enum metrics_type type, const char *help, uint64_t v)
{
    metrics_family(b, name, type, help);
    metrics_sample_u64(b, name, NULL, 0, v);
}

void metrics_lat_hist(struct metrics_buf *b, const char *name,
                      const struct metrics_label *labels, size_t n,
                      const struct lat_hist *h)
{
    uint64_t cum = 0;
    unsigned next = 0; /* the lat bucket index of the next bound */

    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i != next || i / 8 >= METRICS_LAT_BOUNDS)
            continue;
        next += 1u << LAT_HIST_SUB_BITS;
        uint64_t le_ns = (UINT64_C(1) << (LAT_HIST_MIN_SHIFT + i / 8)) - 1;
        put_series(b, name, "_bucket", labels, n, 1);
        metrics_buf_printf(b, "le=\"%.10g\"} %llu\n", (double)le_ns / 1e9,
                           (unsigned long long)cum);
    }
    put_series(b, name, "_bucket", labels, n, 1);
    metrics_buf_printf(b, "le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    put_series(b, name, "_sum", labels, n, 0);
    put_f64(b, (double)lat_hist_sum_ns(h) / 1e9);
    put_series(b, name, "_count", labels, n, 0);
    metrics_buf_printf(b, " %llu\n", (unsigned long long)cum);
}

static void stage_hist(const struct lat_stage *st, void *arg)
{
    struct metrics_label l = {"stage", st->name};

    metrics_lat_hist(arg, "tessera_stage_duration_seconds", &l, 1, &st->h);
}

static void count_stage(const struct lat_stage *st, void *arg)
{
    (void)st;
    ++*(size_t *)arg;
}

void metrics_lat_stages(struct metrics_buf *b)
{
    size_t n = 0;

    lat_stage_foreach(count_stage, &n);
    if (n == 0)
        return;
    metrics_family(b, "tessera_stage_duration_seconds", METRICS_HISTOGRAM,
                   "Time spent in each stage of the data path, by stage "
                   "(the stages kill -USR1 prints).");
    lat_stage_foreach(stage_hist, b);
}

/* The Unix time the process started: its start in clock ticks after boot
 * (/proc/self/stat, field 22, after the parenthesised command name, which
 * may hold spaces) plus the boot time (/proc/stat, "btime").  0 or
 * -errno. */
static int process_start_time(double *out)
{
    char buf[1024], *p;
    unsigned long long ticks = 0, btime = 0;
    size_t n;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/self/stat", "re");

    if (!f)
        return -errno;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    /* After ')': state (field 3) ... starttime (field 22). */
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p, " %llu", &ticks) != 1 || hz <= 0)
        return -EPROTO;
    f = fopen("/proc/stat", "re");
    if (!f)
        return -errno;
    while (fgets(buf, sizeof(buf), f))
        if (sscanf(buf, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    if (btime == 0)
        return -EPROTO;
    *out = (double)btime + (double)ticks / (double)hz;
    return 0;
}

void metrics_process(struct metrics_buf *b)
{
    uint64_t user = 0, sys = 0;
    double start;

    if (lat_cpu_get(&user, &sys) == 0) {
        metrics_family(b, "process_cpu_seconds_total", METRICS_COUNTER,
                       "Total user and system CPU time spent in seconds.");
        metrics_sample_f64(b, "process_cpu_seconds_total", NULL, 0,
                           (double)(user + sys) / 1e6);
    }
    if (process_start_time(&start) == 0) {
        metrics_family(b, "process_start_time_seconds", METRICS_GAUGE,
                       "Start time of the process since unix epoch in "
                       "seconds.");
        metrics_sample_f64(b, "process_start_time_seconds", NULL, 0, start);
    }
}
