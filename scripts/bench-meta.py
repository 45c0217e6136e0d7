#!/usr/bin/env python3
"""Metadata job for `make bench`: create, stat and unlink N empty files in
DIR; prints one "job ops_per_second" line per phase."""
import os
import sys
import time

d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
names = [os.path.join(d, "f%06d" % i) for i in range(n)]

t = time.monotonic()
for p in names:
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
print("create %.0f" % (n / (time.monotonic() - t)))
t = time.monotonic()
for p in names:
    os.stat(p)
print("stat %.0f" % (n / (time.monotonic() - t)))
t = time.monotonic()
for p in names:
    os.unlink(p)
print("unlink %.0f" % (n / (time.monotonic() - t)))
os.rmdir(d)
