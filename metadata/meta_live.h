/* meta_live.h: is a storage server alive?  The decision alone, from
 * timestamps, without a loop or sockets, so that tests can drive it. */
#ifndef META_LIVE_H
#define META_LIVE_H

#include <stdbool.h>
#include <stdint.h>

/* What metad has seen of one server (all times in ms of one clock). */
struct meta_live {
    uint64_t last_seen; /* last heartbeat, registration, or any frame */
    uint64_t last_hb;   /* last heartbeat or registration; 0: none */
    uint32_t gap_avg;   /* smoothed gap between heartbeats; 0: no sample */
    uint32_t gap_dev;   /* smoothed deviation of those gaps */
};

/* The fixed limits: a server is suspect past @suspect_ms without a sign
 * of life (or past the observed heartbeat gap plus 4 deviations, when that
 * is more), down past @down_ms. */
struct meta_live_limits {
    uint32_t suspect_ms, down_ms;
};

/* Liveness verdicts. */
enum meta_live_verdict {
    META_LIVE_UP,
    META_LIVE_SUSPECT,
    META_LIVE_DOWN,
};

/* A heartbeat (or registration) at @now: a sign of life, and a sample of
 * the gap between heartbeats. */
void meta_live_heartbeat(struct meta_live *l, uint64_t now);
/* Any other frame from the server at @now: a sign of life only. */
void meta_live_seen(struct meta_live *l, uint64_t now);
/* How long without a sign of life makes the server suspect. */
uint32_t meta_live_suspect_after(const struct meta_live *l,
                                 const struct meta_live_limits *lim);
/* The verdict at @now for a server whose connection is open (a closed
 * one is down whatever the times say). */
enum meta_live_verdict meta_live_judge(const struct meta_live *l,
                                       const struct meta_live_limits *lim,
                                       uint64_t now);

/* A periodic check that ran at @now, the previous one at *@last (0: none)
 * and meant to run every @period_ms.  True when this run is more than a
 * period late: metad's own loop was busy, so frames of the servers may
 * still wait unread, and no verdict may be taken in this run.  Updates
 * *@last. */
bool meta_live_check_late(uint64_t *last, uint64_t now, uint32_t period_ms);

#endif
