/* meta_live.c: the liveness decision for storage servers (docs/protocol.md
 * §9.2), apart from the timers and connections of meta_srv_state.c.
 *
 * A busy server is not a dead one.  Three rules keep load from being taken
 * for failure:
 *   1. Every frame the server sends on its control connection is a sign
 *      of life, not only the heartbeat: a server that answers late but
 *      keeps talking is not suspect.
 *   2. The suspect threshold follows the heartbeat gaps actually seen, as
 *      TCP's retransmission timeout follows the round trip (RFC 6298):
 *      smoothed gap plus 4 deviations, never under --suspect-ms and never
 *      past --down-ms.  A server whose heartbeats arrive every 1.3-1.8 s
 *      under load is suspect only when one is clearly later than that.
 *   3. A check that runs late (metad's loop itself was busy) takes no
 *      verdict: libuv runs timers before it reads the sockets, so the
 *      heartbeats that came in meanwhile are not read yet.
 * The down limit stays fixed: after --down-ms of silence on an open
 * connection the server is down however slow it used to be.
 */
#include "meta_live.h"

/* RFC 6298 gains: 1/8 for the average, 1/4 for the deviation. */
static uint32_t smooth(uint32_t avg, uint32_t sample, unsigned shift)
{
    int64_t d = (int64_t)sample - (int64_t)avg;

    return (uint32_t)((int64_t)avg + d / (1 << shift));
}

void meta_live_heartbeat(struct meta_live *l, uint64_t now)
{
    if (l->last_hb && now > l->last_hb) {
        uint64_t g = now - l->last_hb;
        uint32_t gap = g > UINT32_MAX ? UINT32_MAX : (uint32_t)g;

        if (l->gap_avg == 0) {
            l->gap_avg = gap;
            l->gap_dev = gap / 2;
        } else {
            uint32_t err =
                gap > l->gap_avg ? gap - l->gap_avg : l->gap_avg - gap;
            l->gap_dev = smooth(l->gap_dev, err, 2);
            l->gap_avg = smooth(l->gap_avg, gap, 3);
        }
    }
    l->last_hb = now;
    meta_live_seen(l, now);
}

void meta_live_seen(struct meta_live *l, uint64_t now)
{
    if (now > l->last_seen)
        l->last_seen = now;
}

uint32_t meta_live_suspect_after(const struct meta_live *l,
                                 const struct meta_live_limits *lim)
{
    uint64_t t = (uint64_t)l->gap_avg + 4 * (uint64_t)l->gap_dev;

    if (l->gap_avg == 0 || t < lim->suspect_ms)
        t = lim->suspect_ms;
    if (t > lim->down_ms)
        t = lim->down_ms;
    return (uint32_t)t;
}

enum meta_live_verdict meta_live_judge(const struct meta_live *l,
                                       const struct meta_live_limits *lim,
                                       uint64_t now)
{
    uint64_t age = now > l->last_seen ? now - l->last_seen : 0;

    if (age > lim->down_ms)
        return META_LIVE_DOWN;
    if (age > meta_live_suspect_after(l, lim))
        return META_LIVE_SUSPECT;
    return META_LIVE_UP;
}

bool meta_live_check_late(uint64_t *last, uint64_t now, uint32_t period_ms)
{
    bool late = *last && now > *last && now - *last > 2 * (uint64_t)period_ms;

    *last = now;
    return late;
}
