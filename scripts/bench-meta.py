#!/usr/bin/env python3
"""Metadata job for `make bench`: create, stat and unlink N empty files in
DIR, one at a time; prints "job ops_per_second p50_us p99_us" per phase
(the latency of one operation: open+close for a create).  With PHASE
arguments (create, stat, unlink) it runs just those, in that order, so a
caller can measure each phase apart; unlink also removes DIR."""
import os
import sys
import time

d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
names = [os.path.join(d, "f%06d" % i) for i in range(n)]


def phase(job, op):
    lat = []
    clock = time.monotonic
    t = clock()
    for p in names:
        t0 = clock()
        op(p)
        lat.append(clock() - t0)
    total = clock() - t
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e6
    p99 = lat[min(len(lat) - 1, (len(lat) * 99) // 100)] * 1e6
    print("%s %.0f %.0f %.0f" % (job, n / total, p50, p99))


ops = {
    "create": lambda p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)),
    "stat": os.stat,
    "unlink": os.unlink,
}
for job in sys.argv[3:] or ["create", "stat", "unlink"]:
    phase(job, ops[job])
    if job == "unlink":
        os.rmdir(d)
