/* chunk_rate.c: a token bucket pacing background I/O to a byte rate.
 *
 * Repair copies (chunk_replicate.c) and scrub passes (chunk_scrub.c) ask
 * the bucket before each piece of work how long to wait, so the disk and
 * the network keep most of their capacity for clients.  Tokens accrue at
 * @bps per second up to @burst; taking more than there are leaves a debt
 * that the caller pays by waiting debt / bps before the piece.  The bucket
 * starts empty, so N bytes never go faster than (N - burst) / bps seconds.
 *
 * The clock is the caller's (uv_hrtime() in the daemon, made-up times in
 * the tests); nothing here sleeps or touches the loop.
 */
#include "chunk_internal.h"

#define NS_PER_S 1000000000.0

void chunk_rate_init(struct chunk_rate *r, uint64_t bps, uint64_t burst,
                     uint64_t now_ns)
{
    r->bps = bps;
    r->burst = burst;
    r->tokens = 0;
    r->last_ns = now_ns;
}

void chunk_rate_set(struct chunk_rate *r, uint64_t bps)
{
    r->bps = bps;
}

uint64_t chunk_rate_take(struct chunk_rate *r, uint64_t n, uint64_t now_ns)
{
    if (now_ns > r->last_ns) {
        if (r->bps)
            r->tokens +=
                (double)(now_ns - r->last_ns) * (double)r->bps / NS_PER_S;
        r->last_ns = now_ns;
    }
    if (r->tokens > (double)r->burst)
        r->tokens = (double)r->burst;
    if (r->bps == 0) {
        r->tokens = 0;
        return 0;
    }
    r->tokens -= (double)n;
    if (r->tokens >= 0)
        return 0;
    return (uint64_t)(-r->tokens * NS_PER_S / (double)r->bps);
}

uint64_t chunk_rate_ms(uint64_t ns)
{
    return (ns + 999999) / 1000000;
}
