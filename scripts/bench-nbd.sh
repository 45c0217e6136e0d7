#!/usr/bin/env bash
# bench-nbd.sh: the block path.  The same fio jobs, through fio's nbd
# engine (libnbd), against tessera-nbd serving Tessera images at goal 1 and
# goal 3, and against qemu-nbd and nbdkit (file plugin) serving a raw file
# on the local disk, all in one run on this machine; then a table of the
# figures and of tessera-nbd's ratios to qemu-nbd.
#
#   4 KiB random read and write, queue depth 1 and 16   (IOPS)
#   1 MiB sequential read and write, queue depth 4      (MB/s)
#
# Each export is first filled by the sequential write, so the reads read
# data.  All servers listen on unix sockets.  Beside each figure: fio's
# completion latency (p50, p99) and the CPU time the serving processes
# spent per request (user + sys of qemu-nbd or nbdkit; of tessera-nbd, the
# chunk servers and metad), from /proc around each job.
# tessera1/tessera3 use tessera-nbd with --cache writethrough (a write
# returns once on every replica); tessera1wb/tessera3wb the same images
# through a second tessera-nbd with --cache writeback (a write returns
# once in memory, FLUSH makes it durable), which is what qemu-nbd
# --cache=writeback does with the host's page cache.  The default,
# --cache auto, is the first until an image's first FLUSH and the second
# after it: a guest that flushes gets the wb figures.
# tessera1noauth and tessera1secure are tessera1 on clusters of their own:
# without authentication (--no-auth everywhere), and with every link
# encrypted (--secure, docs/security.md "Secure links"); the last table
# puts the 4 KiB random jobs of the three side by side, as the cost of
# authentication and of --secure.
# Environment: BUILD (default ./build), BENCH_SIZE (MiB per image, default
# 512), BENCH_RUNTIME (seconds per job, default 5), BENCH_SYSTEMS (default
# "qemu-nbd nbdkit tessera1 tessera3 tessera1wb tessera3wb tessera1noauth
# tessera1secure").
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"

size=${BENCH_SIZE:-512}
runtime=${BENCH_RUNTIME:-5}
systems=${BENCH_SYSTEMS:-qemu-nbd nbdkit tessera1 tessera3 tessera1wb tessera3wb tessera1noauth tessera1secure}
work=$(mktemp -d /tmp/tessera-bench-nbd.XXXXXX)
results=$work/results
: >"$results"
pids=()
# Every way out stops what was started (qemu-nbd, nbdkit, the cluster and
# its tessera-nbd) and removes the work folder.
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "${TS_DIR:-}" ] && ts_stop_all 2>/dev/null
    cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for p in fio qemu-nbd nbdkit qemu-img qemu-io python3; do
    command -v "$p" >/dev/null || { echo "bench-nbd: $p is missing" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
    { echo "bench-nbd: this fio has no nbd engine" >&2; exit 1; }


wait_sock() {
    local i
    for ((i = 0; i < 100; i++)); do [ -S "$1" ] && return 0; sleep 0.1; done
    echo "bench-nbd: no socket at $1" >&2
    return 1
}

# The serving processes whose CPU time counts (set per system).
. "$here/scripts/bench-cpu.sh"

# fio_job SYSTEM NAME URI ARGS...: one job; appends "SYSTEM NAME MB/s IOPS
# P50_US P99_US CPU_US_PER_IO".
fio_job() {
    local sys=$1 name=$2 uri=$3 c0 c1
    shift 3
    c0=$(cpu_ticks)
    fio --name="$name" --ioengine=nbd --uri="$uri" --size="${size}M" \
        --group_reporting --output-format=json --output="$work/$sys.$name.json" \
        "$@" >"$work/$sys.$name.err" 2>&1 ||
        { echo "$sys $name - - - - -" >>"$results"; tail -3 "$work/$sys.$name.err" >&2; return; }
    c1=$(cpu_ticks)
    python3 - "$work/$sys.$name.json" "$sys" "$name" $((c1 - c0)) "$(getconf CLK_TCK)" >>"$results" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
r, w = j["read"], j["write"]
ticks, hz = int(sys.argv[4]), int(sys.argv[5])
d = r if r["io_bytes"] >= w["io_bytes"] else w
pct = d["clat_ns"].get("percentile", {})
p50 = pct.get("50.000000", 0) / 1000
p99 = pct.get("99.000000", 0) / 1000
ios = r["total_ios"] + w["total_ios"]
cpu = ticks * 1e6 / hz / ios if ios else 0
print("%s %s %.1f %.0f %.0f %.0f %.1f" % (sys.argv[2], sys.argv[3],
      (r["bw_bytes"] + w["bw_bytes"]) / 1e6, r["iops"] + w["iops"],
      p50, p99, cpu))
PY
}

run_jobs() { # run_jobs SYSTEM URI
    local sys=$1 uri=$2 t="--time_based --runtime=$runtime"
    echo "bench-nbd: $sys" >&2
    fio_job "$sys" seqwrite-1M "$uri" --rw=write --bs=1M --iodepth=4 --fsync_on_close=1
    fio_job "$sys" seqread-1M "$uri" --rw=read --bs=1M --iodepth=4
    fio_job "$sys" randwrite-4k-qd1 "$uri" --rw=randwrite --bs=4k --iodepth=1 $t
    fio_job "$sys" randwrite-4k-qd16 "$uri" --rw=randwrite --bs=4k --iodepth=16 $t
    fio_job "$sys" randread-4k-qd1 "$uri" --rw=randread --bs=4k --iodepth=1 $t
    fio_job "$sys" randread-4k-qd16 "$uri" --rw=randread --bs=4k --iodepth=16 $t
}

bench_qemu_nbd() {
    qemu-img create -q -f raw "$work/q.raw" "${size}M"
    qemu-nbd -f raw -t -k "$work/q.sock" --cache=writeback "$work/q.raw" \
        >"$work/qemu-nbd.log" 2>&1 &
    pids+=($!)
    cpu_pids=($!)
    wait_sock "$work/q.sock" || return
    run_jobs qemu-nbd "nbd+unix:///?socket=$work/q.sock"
}

bench_nbdkit() {
    truncate -s "${size}M" "$work/k.raw"
    nbdkit -f -U "$work/k.sock" file "$work/k.raw" >"$work/nbdkit.log" 2>&1 &
    pids+=($!)
    cpu_pids=($!)
    wait_sock "$work/k.sock" || return
    run_jobs nbdkit "nbd+unix:///?socket=$work/k.sock"
}

# tessera_up [FLAVOUR]: the cluster of FLAVOUR ("": authenticated, as it
# ships; noauth: --no-auth everywhere; secure: --secure everywhere), once;
# another flavour stops the cluster running first.
tessera_flavour=
tessera_up() {
    local flavour=${1:-} i
    if [ -n "${TS_DIR:-}" ]; then
        [ "$flavour" = "$tessera_flavour" ] && return 0
        ts_stop_all 2>/dev/null
    fi
    tessera_flavour=$flavour
    ts_flavour "$flavour"
    ts_cluster_init "$work/cluster${flavour:+-$flavour}" 0
    ts_start_metad || return 1
    for i in 1 2 3; do ts_start_chunkd "$i" || return 1; done
    ts_wait_servers 3 15 || return 1
    setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --unix "$work/t.sock" \
        --workers 16 --cache-size "$size" --cache writethrough \
        >>"$TS_DIR/logs/nbd.log" 2>&1 &
    ts_record nbd $!
    setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --unix "$work/tw.sock" \
        --workers 16 --cache-size "$size" --cache writeback \
        >>"$TS_DIR/logs/nbdwb.log" 2>&1 &
    ts_record nbdwb $!
    wait_sock "$work/t.sock" && wait_sock "$work/tw.sock"
}

bench_tessera() { # bench_tessera GOAL [wb] [FLAVOUR]
    tessera_up "${3:-}" || { echo "bench-nbd: tessera did not start" >&2; return; }
    local wb=${2:-} nbd=nbd sock=t.sock
    local img=/bench-g$1$wb.img
    [ -n "$wb" ] && nbd=nbdwb sock=tw.sock
    cpu_pids=($(awk -v n="$nbd" '$1 == n || $1 ~ /^(chunkd[0-9]+|metad)$/ { print $2 }' "$TS_DIR/pids"))
    "$TS_BIN/tessera" image create "$img" "${size}M" >/dev/null &&
        "$TS_BIN/tessera" setgoal "$1" "$img" >/dev/null || return
    # The image stays open for the whole run, as a running VM's disk does
    # (each fio job opens a connection of its own): tessera-nbd's block
    # cache lives while its image is open, as qemu-nbd's page cache does
    # across connections.
    local uri="nbd+unix://$img?socket=$work/$sock" hold=$work/hold$1$wb${3:-}
    mkfifo "$hold"
    qemu-io -f raw "$uri" <"$hold" >/dev/null 2>&1 &
    exec 5>"$hold"
    run_jobs "tessera$1$wb${3:-}" "$uri"
    exec 5>&-
    wait $! 2>/dev/null
}

for s in $systems; do
    case $s in
    qemu-nbd) bench_qemu_nbd ;;
    nbdkit) bench_nbdkit ;;
    tessera1) bench_tessera 1 ;;
    tessera3) bench_tessera 3 ;;
    tessera1wb) bench_tessera 1 wb ;;
    tessera3wb) bench_tessera 3 wb ;;
    tessera1noauth) bench_tessera 1 "" noauth ;;
    tessera1secure) bench_tessera 1 "" secure ;;
    *) echo "bench-nbd: unknown system $s" >&2 ;;
    esac
done

python3 - "$results" $systems <<'PY'
import sys
path, systems = sys.argv[1], sys.argv[2:]
res, jobs = {}, []
lat = {}
for line in open(path):
    s, job, bw, iops, p50, p99, cpu = line.split()
    if job not in jobs:
        jobs.append(job)
    res[(s, job)] = bw if job.startswith("seq") else iops
    lat[(s, job)] = (p50, p99, cpu)

def ratio(a, b):
    try:
        return "%.2f" % (float(a) / float(b))
    except (TypeError, ValueError, ZeroDivisionError):
        return "-"

base = "qemu-nbd" if "qemu-nbd" in systems else None
ratios = [s for s in systems if s.startswith("tessera") and base]
head = ["job", "unit"] + systems + ["%s/%s" % (s, base) for s in ratios]
rows = [head]
for job in jobs:
    unit = "MB/s" if job.startswith("seq") else "IOPS"
    row = [job, unit] + [res.get((s, job), "-") for s in systems]
    row += [ratio(res.get((s, job)), res.get((base, job))) for s in ratios]
    rows.append(row)

def table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w[k]) for k, c in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (x + 2) for x in w) + "|")

table(rows)
print()
rows = [["job"] + ["%s p50/p99 us, CPU us/req" % s for s in systems]]
for job in jobs:
    rows.append([job] + ["%s/%s, %s" % lat.get((s, job), ("-", "-", "-"))
                         for s in systems])
table(rows)

# Authentication and --secure on 4 KiB random I/O, one cluster each.
trio = ["tessera1noauth", "tessera1", "tessera1secure"]
if all(s in systems for s in trio):
    print()
    print("4 KiB random I/O, goal 1: without authentication, with it (as "
          "shipped), with --secure")
    rows = [["job", "no auth IOPS", "auth IOPS", "secure IOPS",
             "auth/no auth", "secure/no auth", "CPU us/req (no auth, auth, "
             "secure)"]]
    for job in jobs:
        if not job.startswith("rand"):
            continue
        n, a, s = (res.get((x, job)) for x in trio)
        rows.append([job, n or "-", a or "-", s or "-", ratio(a, n),
                     ratio(s, n), ", ".join(lat.get((x, job), "---")[2]
                                           for x in trio)])
    table(rows)
PY
