/* metrics.h: the Prometheus text exposition format (version 0.0.4).
 *
 * A daemon renders its metrics into a struct metrics_buf on each scrape:
 * one family header (# HELP, # TYPE) followed by its samples, for every
 * family.  This module knows the format only: escaping, number
 * formatting, and turning a latency histogram (lat.h) into a Prometheus
 * histogram in seconds.  What to expose, and the HTTP side (http.h), are
 * the daemons' business.
 *
 *     metrics_family(b, "tessera_requests_total", METRICS_COUNTER,
 *                    "Requests served.");
 *     struct metrics_label l[] = {{"op", "CHUNK_READ"}};
 *     metrics_sample_u64(b, "tessera_requests_total", l, 1, n);
 *
 * Names are the caller's constants and are not checked; label values and
 * help texts are escaped.  Writes never fail on their own: the first
 * allocation failure sticks in @err and later writes do nothing.
 */
#ifndef TESSERA_METRICS_H
#define TESSERA_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "lat.h"

/* The Content-Type of the format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Text being built.  A zeroed struct is an empty buffer. */
struct metrics_buf {
    char *p; /* NUL-terminated once anything was written */
    size_t len, cap;
    int err; /* 0, or -ENOMEM after a failed allocation */
};

enum metrics_type {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_HISTOGRAM,
};

struct metrics_label {
    const char *name;  /* borrowed */
    const char *value; /* borrowed, escaped on output */
};

void metrics_buf_init(struct metrics_buf *b);
void metrics_buf_free(struct metrics_buf *b);
/* Append formatted text as is (no escaping). */
void metrics_buf_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "# HELP @name @help" (help escaped) and "# TYPE @name <type>". */
void metrics_family(struct metrics_buf *b, const char *name,
                    enum metrics_type type, const char *help);
/* One sample line: @name{@labels} @v.  @labels may be NULL when @n is 0. */
void metrics_sample_u64(struct metrics_buf *b, const char *name,
                        const struct metrics_label *labels, size_t n,
                        uint64_t v);
void metrics_sample_f64(struct metrics_buf *b, const char *name,
                        const struct metrics_label *labels, size_t n, double v);
/* A family with one unlabelled sample. */
void metrics_u64(struct metrics_buf *b, const char *name,
                 enum metrics_type type, const char *help, uint64_t v);

/* The samples of histogram @name (its family written already) from @h,
 * durations in seconds: @name_bucket{...,le="..."} cumulative at each
 * power of two from about 1 us to 8.6 s, then le="+Inf", @name_sum and
 * @name_count.  @h is read, never changed; _count is the total of the
 * buckets as read, so it always equals the +Inf bucket. */
void metrics_lat_hist(struct metrics_buf *b, const char *name,
                      const struct metrics_label *labels, size_t n,
                      const struct lat_hist *h);

/* The le bounds metrics_lat_hist() writes, in nanoseconds: bound @i (0 <=
 * @i < METRICS_LAT_BOUNDS) is 2^(LAT_HIST_MIN_SHIFT + @i) - 1. */
#define METRICS_LAT_BOUNDS (LAT_HIST_MAX_SHIFT - LAT_HIST_MIN_SHIFT)

/* tessera_stage_duration_seconds{stage="..."}: one histogram per
 * registered latency stage (lat_stage_register()), family included;
 * nothing when no stage is registered. */
void metrics_lat_stages(struct metrics_buf *b);

/* process_cpu_seconds_total and process_start_time_seconds, as the
 * Prometheus client libraries name them (from getrusage() and /proc; a
 * family /proc cannot tell is left out). */
void metrics_process(struct metrics_buf *b);

#endif
