#!/usr/bin/env python3
"""Print the `make bench` tables: one row per job, one column per system,
then Tessera's ratio to MooseFS at the same goal (and to local disk); then
each figure's completion latency (p50/p99, us) and the serving processes'
CPU time per request (user + sys, us)."""
import sys

path, systems = sys.argv[1], sys.argv[2:]
res = {}
lat = {}
jobs = []
for line in open(path):
    sysname, job, bw, iops, p50, p99, cpu = line.split()
    if job not in jobs:
        jobs.append(job)
    res[(sysname, job)] = (bw, iops)
    lat[(sysname, job)] = "%s/%s, %s" % (p50, p99, cpu)


def figure(sysname, job):
    bw, iops = res.get((sysname, job), ("-", "-"))
    if job.startswith("seq") or job == "dbench":
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


def show(rows, left):
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) if i >= left else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))


show(rows, 2)
print()
print("p50/p99 latency (us), CPU per request (us, user + sys of the serving")
print("processes: Tessera's mount, chunkd and metad; MooseFS's mfsmount,")
print("chunk servers and master; none for local)")
show([["job"] + systems] +
     [[job] + [lat.get((s, job), "-") for s in systems] for job in jobs], 1)

# Authentication and --secure at goal 3, one cluster each.
trio = ["tessera3noauth", "tessera3", "tessera3secure"]
if all(t in systems for t in trio):
    print()
    print("Goal 3 without authentication, with it (as shipped), with --secure")
    rows = [["job", "unit", "no auth", "auth", "secure", "auth/no auth",
             "secure/no auth", "secure/auth"]]
    for job in jobs:
        n, a, s = (figure(t, job)[0] for t in trio)
        rows.append([job, figure(trio[0], job)[1], n, a, s, ratio(a, n),
                     ratio(s, n), ratio(s, a)])
    show(rows, 2)
