/* lat.h: latency histograms for per-stage timing on hot data paths.
 *
 * A struct lat_hist counts nanosecond durations in log-linear buckets:
 * 8 sub-buckets per power of two from 2^10 ns (~1 us) to 2^34 ns (~17 s),
 * so a bucket is at most 1/8 (12.5%) wider than the values it holds.
 * Shorter durations share bucket 0; longer ones are clamped into the last
 * bucket.  Recording is three relaxed atomic adds and no locks, so any
 * number of threads may record into the same histogram at once.
 *
 * A zeroed struct lat_hist is an empty histogram, so static ones need no
 * initialisation.  Readers (quantile, count, dump) load each counter on
 * its own: while other threads record, a reading is a close estimate, not
 * a snapshot taken at one instant.
 *
 * Stages: a daemon declares its stages statically, registers them at
 * startup and dumps them all with lat_dump():
 *
 *     static struct lat_stage st_read = {.name = "read"};
 *     lat_stage_register(&st_read);                 // once, in main()
 *     uint64_t t0 = lat_now_ns();
 *     ...
 *     lat_hist_record_since(&st_read.h, t0);        // any thread
 *     lat_dump_interval(stderr);   // from the loop, e.g. after SIGUSR1
 *
 * lat_dump() uses stdio, so it is not async-signal-safe: call it from the
 * event loop (a timer, or a flag a signal handler set), not from a handler.
 */
#ifndef TESSERA_LAT_H
#define TESSERA_LAT_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

/* log2 of the number of sub-buckets per power of two. */
#define LAT_HIST_SUB_BITS 3
/* Durations below 2^LAT_HIST_MIN_SHIFT ns go to bucket 0. */
#define LAT_HIST_MIN_SHIFT 10
/* Durations of 2^LAT_HIST_MAX_SHIFT ns and more go to the last bucket. */
#define LAT_HIST_MAX_SHIFT 34
#define LAT_HIST_NBUCKETS                                                      \
    (1 + ((LAT_HIST_MAX_SHIFT - LAT_HIST_MIN_SHIFT) << LAT_HIST_SUB_BITS))
/* The upper bound reported for the last bucket (~17.2 s), which also holds
 * every clamped duration. */
#define LAT_HIST_MAX_NS ((UINT64_C(1) << LAT_HIST_MAX_SHIFT) - 1)

/* Most stages lat_stage_register() accepts. */
#define LAT_MAX_STAGES 64

struct lat_hist {
    _Atomic uint64_t count;  /* durations recorded */
    _Atomic uint64_t sum_ns; /* their sum, for the mean */
    _Atomic uint64_t buckets[LAT_HIST_NBUCKETS];
};

/* A histogram's counters as read at one time (plain, not shared). */
struct lat_mark {
    uint64_t count, sum_ns;
    uint64_t buckets[LAT_HIST_NBUCKETS];
};

struct lat_stage {
    const char *name;     /* borrowed; must outlive the registration */
    struct lat_hist h;    /* since start: never reset while registered */
    struct lat_mark last; /* @h at the last lat_dump_interval(), private */
};

/* CLOCK_MONOTONIC in nanoseconds (a vDSO call, no syscall). */
uint64_t lat_now_ns(void);

/* Count one duration of @ns nanoseconds.  Thread-safe, lock-free. */
void lat_hist_record(struct lat_hist *h, uint64_t ns);
/* Record lat_now_ns() - @start_ns and return that lat_now_ns(), so that
 * consecutive stages can be timed with one clock read each. */
uint64_t lat_hist_record_since(struct lat_hist *h, uint64_t start_ns);

/* The inclusive upper bound in ns of the bucket that holds the
 * @q-quantile (@q in [0, 1], clamped): the true quantile is at most this
 * and, from 1024 ns up, more than 8/9 of it.  1023 for bucket 0 and
 * LAT_HIST_MAX_NS for the last bucket; 0 when @h is empty. */
uint64_t lat_hist_quantile(const struct lat_hist *h, double q);
uint64_t lat_hist_count(const struct lat_hist *h);
uint64_t lat_hist_sum_ns(const struct lat_hist *h);
/* Empty @h.  Durations recorded during the reset may be partly kept.  Not
 * for the histogram of a registered stage, whose readers expect counters
 * that only grow. */
void lat_hist_reset(struct lat_hist *h);

/* Add @st to the stages lat_dump() prints.  Startup only: not
 * thread-safe against itself or lat_dump().  @st is borrowed and must stay
 * valid (usually static) until lat_stage_clear().  -EINVAL when @st or its
 * name is NULL, -EEXIST when @st or another stage with its name is already
 * registered, -ENOSPC past LAT_MAX_STAGES. */
int lat_stage_register(struct lat_stage *st);
/* Forget every registered stage (their histograms are left as they are). */
void lat_stage_clear(void);

/* Print one line per registered stage whose count is non-zero, in
 * registration order:
 *   stage=<name> count=<n> mean_us=<x> p50_us=<x> p90_us=<x> p99_us=<x>
 *   max_bucket_us=<x>
 * (one line; each <x> with one decimal; the quantiles and max_bucket_us are
 * bucket upper bounds as from lat_hist_quantile()).  Returns the number of
 * lines printed, or -errno when writing to @f fails. */
int lat_dump(FILE *f);
/* As lat_dump(), but of what each stage recorded since the previous
 * lat_dump_interval() (since start for the first).  The histograms
 * themselves keep counting from start, for readers that need monotonic
 * counters (the Prometheus endpoint, metrics.h); a duration recorded
 * meanwhile is counted by this interval or the next, never lost.  The
 * interval moves on even if writing fails.  One thread at a time. */
int lat_dump_interval(FILE *f);

/* Call @fn for every registered stage, in registration order.  The
 * stages are borrowed: valid during the call. */
void lat_stage_foreach(void (*fn)(const struct lat_stage *st, void *arg),
                       void *arg);

/* CPU time used so far by the whole process (getrusage(RUSAGE_SELF)), in
 * microseconds.  0 or -errno. */
int lat_cpu_get(uint64_t *user_us, uint64_t *sys_us);
/* Print "cpu_user_us=<n> cpu_sys_us=<n> cpu_us=<n>" and a newline to @f;
 * the difference of two readings divided by the requests served between
 * them is the CPU cost per request.  0 or -errno. */
int lat_cpu_line(FILE *f);

#endif
