/* lat.c: latency histograms, the stage registry and the CPU-time line.
 *
 * Bucket layout (S = LAT_HIST_SUB_BITS = 3, MIN = 10, MAX = 34): a
 * duration v with 2^e <= v < 2^(e+1), MIN <= e < MAX, goes to bucket
 *     1 + ((e - MIN) << S) + ((v >> (e - S)) & 7)
 * that is, the power of two is split into 8 equal slices of 2^(e-S) ns.
 * v < 2^MIN goes to bucket 0, v >= 2^MAX to the last bucket.  Finding the
 * bucket costs one count-leading-zeros and a few shifts, so recording is
 * dominated by its three relaxed atomic adds (count, sum, bucket).
 *
 * Relaxed ordering is enough because no reader infers anything from one
 * counter about another: a dump racing with recorders may see a duration
 * in count but not yet in its bucket.  Quantiles are therefore ranked
 * against the total of the buckets as read, never against count.
 *
 * What this file leaves to others: when to dump (a signal, a timer, an
 * admin verb) and which stages exist; it never logs and never allocates.
 */
#include "lat.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static struct lat_stage *stages[LAT_MAX_STAGES];
static int nstages;

uint64_t lat_now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t ns)
{
    if (ns < (UINT64_C(1) << LAT_HIST_MIN_SHIFT))
        return 0;
    if (ns >= (UINT64_C(1) << LAT_HIST_MAX_SHIFT))
        return LAT_HIST_NBUCKETS - 1;
    unsigned e = 63 - (unsigned)__builtin_clzll(ns);
    unsigned sub = (unsigned)(ns >> (e - LAT_HIST_SUB_BITS)) &
                   ((1u << LAT_HIST_SUB_BITS) - 1);
    return 1 + ((e - LAT_HIST_MIN_SHIFT) << LAT_HIST_SUB_BITS) + sub;
}

/* The largest duration bucket @i holds (by layout; the last bucket also
 * holds clamped durations beyond it). */
static uint64_t bucket_upper(unsigned i)
{
    if (i == 0)
        return (UINT64_C(1) << LAT_HIST_MIN_SHIFT) - 1;
    unsigned e = LAT_HIST_MIN_SHIFT + ((i - 1) >> LAT_HIST_SUB_BITS);
    uint64_t sub = (i - 1) & ((1u << LAT_HIST_SUB_BITS) - 1);
    uint64_t width = UINT64_C(1) << (e - LAT_HIST_SUB_BITS);
    return ((1u << LAT_HIST_SUB_BITS) + sub + 1) * width - 1;
}

void lat_hist_record(struct lat_hist *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->buckets[bucket_of(ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

uint64_t lat_hist_record_since(struct lat_hist *h, uint64_t start_ns)
{
    uint64_t now = lat_now_ns();

    lat_hist_record(h, now > start_ns ? now - start_ns : 0);
    return now;
}

/* One reading of a histogram's counters. */
struct snap {
    uint64_t count, sum_ns, total; /* total: sum of buckets[] */
    uint64_t buckets[LAT_HIST_NBUCKETS];
};

/* Read @h into @s. */
static void snap_take(const struct lat_hist *h, struct snap *s)
{
    s->count = atomic_load_explicit(&h->count, memory_order_relaxed);
    s->sum_ns = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    s->total = 0;
    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++) {
        s->buckets[i] =
            atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        s->total += s->buckets[i];
    }
}

/* Turn @s into what was recorded since @last, and make @last @s as read.
 * Every counter only grows, so each difference is at least 0. */
static void snap_since(struct snap *s, struct lat_mark *last)
{
    uint64_t count = s->count, sum = s->sum_ns;

    s->count -= last->count;
    s->sum_ns -= last->sum_ns;
    last->count = count;
    last->sum_ns = sum;
    s->total = 0;
    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++) {
        uint64_t b = s->buckets[i];

        s->buckets[i] -= last->buckets[i];
        last->buckets[i] = b;
        s->total += s->buckets[i];
    }
}

/* The 1-based rank of the @q-quantile among @total values: the smallest
 * rank r with r >= q * total, kept within [1, total]. */
static uint64_t quantile_rank(double q, uint64_t total)
{
    if (!(q > 0.0)) /* also catches NaN */
        return 1;
    if (q >= 1.0)
        return total;
    double want = q * (double)total;
    uint64_t r = (uint64_t)want;
    if ((double)r < want)
        r++;
    return r < 1 ? 1 : r > total ? total : r;
}

/* Shared by the live and snapshot paths: @b holds @total counts. */
static uint64_t quantile_of(const uint64_t *b, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t rank = quantile_rank(q, total), seen = 0;
    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++) {
        seen += b[i];
        if (seen >= rank)
            return bucket_upper(i);
    }
    return bucket_upper(LAT_HIST_NBUCKETS - 1); /* not reached */
}

uint64_t lat_hist_quantile(const struct lat_hist *h, double q)
{
    uint64_t b[LAT_HIST_NBUCKETS], total = 0;

    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++) {
        b[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        total += b[i];
    }
    return quantile_of(b, total, q);
}

uint64_t lat_hist_count(const struct lat_hist *h)
{
    return atomic_load_explicit(&h->count, memory_order_relaxed);
}

uint64_t lat_hist_sum_ns(const struct lat_hist *h)
{
    return atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
}

void lat_hist_reset(struct lat_hist *h)
{
    atomic_store_explicit(&h->count, 0, memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns, 0, memory_order_relaxed);
    for (unsigned i = 0; i < LAT_HIST_NBUCKETS; i++)
        atomic_store_explicit(&h->buckets[i], 0, memory_order_relaxed);
}

int lat_stage_register(struct lat_stage *st)
{
    if (st == NULL || st->name == NULL)
        return -EINVAL;
    for (int i = 0; i < nstages; i++)
        if (stages[i] == st || strcmp(stages[i]->name, st->name) == 0)
            return -EEXIST;
    if (nstages == LAT_MAX_STAGES)
        return -ENOSPC;
    memset(&st->last, 0, sizeof(st->last));
    stages[nstages++] = st;
    return 0;
}

void lat_stage_foreach(void (*fn)(const struct lat_stage *st, void *arg),
                       void *arg)
{
    for (int i = 0; i < nstages; i++)
        fn(stages[i], arg);
}

void lat_stage_clear(void)
{
    memset(stages, 0, sizeof(stages));
    nstages = 0;
}

/* fprintf() sets errno on a failed write; a stream already in error
 * (ferror) may not, hence the fallback. */
static int write_error(void)
{
    return errno > 0 ? -errno : -EIO;
}

static int dump(FILE *f, bool interval)
{
    struct snap s; /* ~1.6 KiB on the stack, so dumps may run anywhere */
    int lines = 0, err = 0;

    for (int i = 0; i < nstages; i++) {
        snap_take(&stages[i]->h, &s);
        if (interval)
            snap_since(&s, &stages[i]->last);
        if (s.count == 0 || s.total == 0 || err < 0)
            continue;
        uint64_t max_bucket = 0;
        for (unsigned b = 0; b < LAT_HIST_NBUCKETS; b++)
            if (s.buckets[b] != 0)
                max_bucket = bucket_upper(b);
        errno = 0;
        if (fprintf(f,
                    "stage=%s count=%llu mean_us=%.1f p50_us=%.1f "
                    "p90_us=%.1f p99_us=%.1f max_bucket_us=%.1f\n",
                    stages[i]->name, (unsigned long long)s.count,
                    (double)s.sum_ns / (double)s.count / 1e3,
                    quantile_of(s.buckets, s.total, 0.50) / 1e3,
                    quantile_of(s.buckets, s.total, 0.90) / 1e3,
                    quantile_of(s.buckets, s.total, 0.99) / 1e3,
                    max_bucket / 1e3) < 0)
            err = write_error(); /* keep going only to move the rest */
        else
            lines++;
    }
    return err < 0 ? err : lines;
}

int lat_dump(FILE *f)
{
    return dump(f, false);
}

int lat_dump_interval(FILE *f)
{
    return dump(f, true);
}

static uint64_t tv_us(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

int lat_cpu_get(uint64_t *user_us, uint64_t *sys_us)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return -errno;
    *user_us = tv_us(ru.ru_utime);
    *sys_us = tv_us(ru.ru_stime);
    return 0;
}

int lat_cpu_line(FILE *f)
{
    uint64_t user, sys;
    int rc = lat_cpu_get(&user, &sys);

    if (rc < 0)
        return rc;
    errno = 0;
    if (fprintf(f, "cpu_user_us=%llu cpu_sys_us=%llu cpu_us=%llu\n",
                (unsigned long long)user, (unsigned long long)sys,
                (unsigned long long)(user + sys)) < 0)
        return write_error();
    return 0;
}
