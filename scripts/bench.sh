#!/usr/bin/env bash
# `make bench`: the same fio jobs and metadata job on a local directory, on
# Tessera (goal 1 and goal 3) and on MooseFS from Debian's packages (goal 1
# and 3), all in one run on this machine, then a table of figures and of
# ratios against MooseFS at the same goal.
#
# MooseFS refuses to run its chunk servers against a loopback master, so it
# runs inside a private network namespace of this machine (a veth pair with
# addresses that exist only there); its mount is still visible here.
#
# Environment: BENCH_SIZE (MiB per fio file, default 256), BENCH_RUNTIME
# (seconds per random job, default 8), BENCH_FILES (metadata job, 10000),
# BENCH_DBENCH_S (seconds of dbench, 4 clients, default 30),
# BENCH_SYSTEMS (default "local tessera1 tessera3 moosefs1 moosefs3
# tessera3noauth tessera3secure").  tessera3noauth and tessera3secure are
# tessera3 on clusters run with --no-auth and with --secure (every link
# encrypted, docs/security.md "Secure links"): a last table puts the
# three side by side, as the cost of authentication and of --secure.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"
. "$here/scripts/bench-mfs.sh"

size=${BENCH_SIZE:-256}
runtime=${BENCH_RUNTIME:-8}
nfiles=${BENCH_FILES:-10000}
dbench_s=${BENCH_DBENCH_S:-30}
systems=${BENCH_SYSTEMS:-local tessera1 tessera3 moosefs1 moosefs3 tessera3noauth tessera3secure}
work=$(mktemp -d /tmp/tessera-bench.XXXXXX)
# Every way out (the end, an error, Ctrl-C, TERM, HUP) goes through here:
# the Tessera cluster of the moment, the MooseFS peer if this run started
# one (processes, mount, namespace, veth; mfs_down says what it could not
# stop), then the work folder.
mfs_started=0
cleanup() {
    ts_stop_all 2>/dev/null
    [ "$mfs_started" = 0 ] || mfs_down
    cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
cd "$work" || exit 1 # fio leaves state files in the working directory
results=$work/results
: >"$results"

need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "bench: missing ${missing[*]}: apt-get install ${missing[*]}" >&2
        return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
need_pkgs fio python3 iproute2 dbench || exit 1

# ---- the jobs ---------------------------------------------------------------
# The processes that serve the file system (set per system; a local
# directory has none: the kernel's work is the caller's).
. "$here/scripts/bench-cpu.sh"

# fio_job NAME DIR ARGS...: run one job, print "NAME MB/s IOPS P50_US
# P99_US CPU_US_PER_REQUEST" (completion latency of the job's main
# direction; "-" for CPU where no process serves).
fio_job() {
    local name=$1 dir=$2 c0 c1
    shift 2
    c0=$(cpu_ticks)
    fio --name="$name" --directory="$dir" --filename="bench.$name" \
        --size="${size}M" --group_reporting --output-format=json "$@" \
        >"$work/$name.json" 2>"$work/$name.err" || { echo "$name - - - - -"; return; }
    c1=$(cpu_ticks)
    python3 - "$work/$name.json" "$name" $((c1 - c0)) "$(getconf CLK_TCK)" \
        "${#cpu_pids[@]}" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
r, w = j["read"], j["write"]
ticks, hz, nproc = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
bw = (r["bw_bytes"] + w["bw_bytes"]) / 1e6
iops = r["iops"] + w["iops"]
d = r if r["io_bytes"] >= w["io_bytes"] else w
pct = d["clat_ns"].get("percentile", {})
p50 = pct.get("50.000000", 0) / 1000
p99 = pct.get("99.000000", 0) / 1000
ios = r["total_ios"] + w["total_ios"]  # a write and its fsync are one request
cpu = "%.1f" % (ticks * 1e6 / hz / ios) if nproc and ios else "-"
print("%s %.1f %.0f %.0f %.0f %s" % (sys.argv[2], bw, iops, p50, p99, cpu))
PY
}

run_fio() { # run_fio LABEL DIR
    local label=$1 dir=$2 job c0 c1 rate p50 p99 cpu
    local rt=(--time_based --runtime="$runtime" --ramp_time=1)
    {
        fio_job seqwrite "$dir" --rw=write --bs=1M --ioengine=psync --end_fsync=1
        fio_job seqread "$dir" --rw=read --bs=1M --ioengine=psync \
            --filename=bench.seqwrite --invalidate=1
        fio_job randread-qd1 "$dir" --rw=randread --bs=4k --ioengine=psync \
            --filename=bench.seqwrite "${rt[@]}"
        fio_job randread-qd16 "$dir" --rw=randread --bs=4k --ioengine=psync \
            --numjobs=16 --filename=bench.seqwrite "${rt[@]}"
        fio_job randwrite-qd1 "$dir" --rw=randwrite --bs=4k --ioengine=psync \
            --filename=bench.seqwrite "${rt[@]}"
        fio_job randwrite-qd16 "$dir" --rw=randwrite --bs=4k --ioengine=psync \
            --numjobs=16 --filename=bench.seqwrite "${rt[@]}"
        fio_job write-fsync "$dir" --rw=randwrite --bs=4k --ioengine=psync \
            --fsync=1 --filename=bench.seqwrite "${rt[@]}"
    } | while read -r job bw iops p50 p99 cpu; do
        echo "$label $job $bw $iops $p50 $p99 $cpu" >>"$results"
    done
    # The metadata job: "JOB OPS_PER_S P50_US P99_US" per phase, each
    # phase run apart so that its CPU is its own.
    for job in create stat unlink; do
        c0=$(cpu_ticks)
        python3 "$here/scripts/bench-meta.py" "$dir/meta" "$nfiles" "$job" \
            >"$work/meta.out" || echo "$job - - -" >"$work/meta.out"
        c1=$(cpu_ticks)
        cpu=-
        [ ${#cpu_pids[@]} -gt 0 ] &&
            cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$nfiles" \
                'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
        read -r job rate p50 p99 <"$work/meta.out"
        echo "$label $job - $rate $p50 $p99 $cpu" >>"$results"
    done
    # dbench: 4 clients for BENCH_DBENCH_S seconds, its MB/s (a mix of
    # creates, writes, reads, renames and unlinks of small files).
    mkdir -p "$dir/dbench"
    rate=$(cd "$work" && dbench -D "$dir/dbench" -t "$dbench_s" 4 2>"$work/dbench.err" |
        awk '/^Throughput/ { printf "%.1f", $2 }')
    echo "$label dbench ${rate:--} - - - -" >>"$results"
    rm -rf "$dir/dbench"
}

# ---- the systems --------------------------------------------------------------
bench_local() {
    mkdir -p "$work/local"
    cpu_pids=()
    run_fio local "$work/local"
}

bench_tessera() { # bench_tessera GOAL [FLAVOUR] (ts_flavour: noauth, secure)
    local goal=$1 flavour=${2:-}
    ts_flavour "$flavour"
    ts_cluster_init "$work/tessera$goal$flavour" 0
    if ! ts_start_all 3; then
        echo "bench: Tessera cluster did not start" >&2
        ts_stop_all
        return 1
    fi
    "$TS_BIN/tessera" --meta "$TS_META_ADDR" setgoal "$goal" / >/dev/null ||
        echo "bench: setgoal $goal failed; figures are for the default goal" >&2
    cpu_pids=($(awk '{ print $2 }' "$TS_DIR/pids")) # mount, chunkd, metad
    run_fio "tessera$goal$flavour" "$TS_MNT"
    ts_stop_all
}

bench_moosefs() { # bench_moosefs GOAL
    local goal=$1 d=$work/mfs
    mkdir -p "$d/mnt/g$goal"
    mfssetgoal -r "$goal" "$d/mnt/g$goal" >/dev/null
    # master, chunk servers and mfsmount all run in the namespace
    cpu_pids=($(ip netns pids "$MFS_NS" 2>/dev/null))
    run_fio "moosefs$goal" "$d/mnt/g$goal"
}


for s in $systems; do
    echo "bench: $s..." >&2
    case $s in
    local) bench_local ;;
    tessera1) bench_tessera 1 ;;
    tessera3) bench_tessera 3 ;;
    tessera3noauth) bench_tessera 3 noauth ;;
    tessera3secure) bench_tessera 3 secure ;;
    moosefs1 | moosefs3)
        if [ $mfs_started -eq 0 ]; then
            mfs_started=1
            if ! mfs_up; then
                echo "bench: MooseFS did not start; skipping it" >&2
                mfs_down # what did start stops now, not at the end
                mfs_started=-1
            fi
        fi
        [ $mfs_started -eq 1 ] && bench_moosefs "${s#moosefs}" ;;
    esac
done

echo
echo "== File system: fio and metadata jobs (each system's default client caching)"
echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)," \
    "fio files ${size} MiB, random jobs ${runtime} s, dbench 4 clients ${dbench_s} s"
python3 "$here/scripts/bench-table.py" "$results" $systems

# The cache policies and the block path have scripts of their own; they
# start their own clusters, so none of this one's settings are passed on.
# BENCH_PARTS picks which run.
for part in ${BENCH_PARTS:-cache nbd budget clone failover}; do
    echo
    case $part in
    cache) echo "== Mount cache policies (docs/caching.md)"
           env -u BENCH_SYSTEMS -u TS_DIR -u TS_META_ADDR -u TS_MNT \
               -u TS_NBD_ADDR -u TESSERA_META BUILD="${BUILD:-$here/build}" \
               bash "$here/scripts/bench-cache.sh" ;;
    nbd) echo "== Block path: NBD (docs/vmdisk.md)"
         env -u BENCH_SYSTEMS -u TS_DIR -u TS_META_ADDR -u TS_MNT \
             -u TS_NBD_ADDR -u TESSERA_META BUILD="${BUILD:-$here/build}" \
             bash "$here/scripts/bench-nbd.sh" ;;
    budget) echo "== Latency budget of one 4 KiB NBD request (docs/performance.md)"
            env -u BENCH_SYSTEMS -u TS_DIR -u TS_META_ADDR -u TS_MNT \
                -u TS_NBD_ADDR -u TESSERA_META BUILD="${BUILD:-$here/build}" \
                bash "$here/scripts/bench-budget.sh" ;;
    clone) echo "== Copy-on-write: random writes into a fresh clone (docs/vmdisk.md)"
           env -u BENCH_SYSTEMS -u TS_DIR -u TS_META_ADDR -u TS_MNT \
               -u TS_NBD_ADDR -u TESSERA_META BUILD="${BUILD:-$here/build}" \
               bash "$here/scripts/bench-clone.sh" ;;
    failover) echo "== Failover: kill -9 of the metad leader to the first create (docs/architecture.md)"
              env -u BENCH_SYSTEMS -u TS_DIR -u TS_META_ADDR -u TS_MNT \
                  -u TS_NBD_ADDR -u TESSERA_META BUILD="${BUILD:-$here/build}" \
                  bash "$here/scripts/bench-failover.sh" ;;
    esac
done
