/* adm_progress.c: progress of a long image operation (import, export,
 * diff, apply-diff, flatten) on stderr, one line rewritten in place at
 * most twice a second: what, how far (MiB of how many), the share and the
 * rate.  Shown when stderr is a terminal or the operator asked for it
 * (--progress); never on stdout, which carries the result (a table, JSON,
 * or a diff stream).
 */
#include "adm_internal.h"

#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void adm_progress_start(struct adm_progress *p, const char *what, bool forced,
                        uint64_t total)
{
    p->what = what;
    p->on = forced || isatty(STDERR_FILENO);
    p->total = total;
    p->start = p->last = now_s();
}

void adm_progress_show(struct adm_progress *p, uint64_t done, bool final)
{
    double t = now_s();
    if (!p->on || (!final && t - p->last < 0.5))
        return;
    p->last = t;
    double mib = (double)done / (1 << 20);
    fprintf(stderr, "\r%s: %.0f of %.0f MiB (%.0f%%), %.0f MiB/s%s", p->what,
            mib, (double)p->total / (1 << 20),
            p->total ? 100.0 * (double)done / (double)p->total : 100.0,
            t > p->start ? mib / (t - p->start) : 0.0, final ? "\n" : "");
}
