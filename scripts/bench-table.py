#!/usr/bin/env python3
"""Print the `make bench` table: one row per job, one column per system,
then Tessera's ratio to MooseFS at the same goal (and to local disk)."""
import sys

path, systems = sys.argv[1], sys.argv[2:]
res = {}
jobs = []
for line in open(path):
    sysname, job, bw, iops = line.split()
    if job not in jobs:
        jobs.append(job)
    res[(sysname, job)] = (bw, iops)


def figure(sysname, job):
    bw, iops = res.get((sysname, job), ("-", "-"))
    if job.startswith("seq"):
        return bw, "MB/s"
    return iops, "ops/s"


def ratio(a, b):
    try:
        return "%.2f" % (float(a) / float(b))
    except (ValueError, ZeroDivisionError):
        return "-"


head = ["job", "unit"] + systems
pairs = [(t, "moosefs" + t[-1]) for t in systems
         if t.startswith("tessera") and "moosefs" + t[-1] in systems]
head += ["%s/%s" % (a, b) for a, b in pairs]
if "local" in systems:
    head += ["%s/local" % t for t in systems if t.startswith("tessera")]
rows = [head]
for job in jobs:
    unit = figure(systems[0], job)[1]
    row = [job, unit] + [figure(s, job)[0] for s in systems]
    row += [ratio(figure(a, job)[0], figure(b, job)[0]) for a, b in pairs]
    if "local" in systems:
        row += [ratio(figure(t, job)[0], figure("local", job)[0])
                for t in systems if t.startswith("tessera")]
    rows.append(row)
widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
for r in rows:
    print("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(r, widths))))
