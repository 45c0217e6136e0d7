#!/usr/bin/env bash
# bench-cache.sh: the cache policies side by side (docs/caching.md).  For
# each of writethrough, writeback and writeonclose, on a fresh cluster
# (metad, three chunkd, goal 3) with one mount using that policy and a
# second mount (callbacks) watching the same tree:
#   seq4k    fio bs=4k rw=write, BENCH_CACHE_SEQ MiB (default 64), one file
#   compile  BENCH_CACHE_FILES files of 4-16 KiB in 20 directories
#            (default 2000): create+write, read back, delete; seconds each
#   vm4k     fio randwrite bs=4k with fsync every 16 writes,
#            BENCH_CACHE_RUNTIME seconds (default 8) on a 256 MiB file
# then prints a table with the callback breaks metad sent during the run
# (tessera status --json, cache.breaks_sent) and the recalls.
#
# Environment: BUILD (default ./build), BENCH_CACHE_MODES, BENCH_CACHE_SEQ,
# BENCH_CACHE_FILES, BENCH_CACHE_RUNTIME.  Needs fio and python3.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$here/build}
. "$here/scripts/cluster.sh"

modes=${BENCH_CACHE_MODES:-writethrough writeback writeonclose}
seq_mb=${BENCH_CACHE_SEQ:-64}
nfiles=${BENCH_CACHE_FILES:-2000}
runtime=${BENCH_CACHE_RUNTIME:-8}
for t in fio python3; do
    command -v "$t" >/dev/null || { echo "bench-cache: $t not installed" >&2; exit 77; }
done
work=$(mktemp -d /tmp/tessera-bench-cache.XXXXXX)
results=$work/results
: >"$results"
trap 'ts_stop_all 2>/dev/null; cd / && rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP

now() { date +%s.%N; }
status_key() {
    "$TS_BIN/tessera" --meta "$TS_META_ADDR" --json status |
        python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 0))"
}

compile_like() { # DIR PHASE
    python3 - "$1" "$2" "$nfiles" <<'PY'
import os, random, sys
root, phase, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
random.seed(7)
sizes = [random.randint(4096, 16384) for _ in range(n)]
path = lambda i: os.path.join(root, "d%02d" % (i % 20), "f%05d.o" % i)
if phase == "create":
    for d in range(20):
        os.makedirs(os.path.join(root, "d%02d" % d), exist_ok=True)
    blob = os.urandom(16384)
    for i in range(n):
        with open(path(i), "wb") as f:
            f.write(blob[: sizes[i]])
elif phase == "read":
    for i in range(n):
        with open(path(i), "rb") as f:
            assert len(f.read()) == sizes[i]
else:
    for i in range(n):
        os.unlink(path(i))
    for d in range(20):
        os.rmdir(os.path.join(root, "d%02d" % d))
PY
}

for mode in $modes; do
    ts_cluster_init "$work/$mode" 0
    ts_start_metad >/dev/null || exit 1
    for i in 1 2 3; do ts_start_chunkd "$i" >/dev/null || exit 1; done
    ts_wait_servers 3 15 || exit 1
    ts_start_mount "$TS_MNT" -o "cache=$mode" || exit 1
    ts_start_mount "$work/$mode-watch" || exit 1
    ls -la "$work/$mode-watch" >/dev/null
    b0=$(status_key cache.breaks_sent)

    fio --name=seq4k --directory="$TS_MNT" --rw=write --bs=4k --size="${seq_mb}M" \
        --ioengine=psync --end_fsync=1 --output-format=json >"$work/seq.json" 2>/dev/null
    seq=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["write"]; print("%.1f" % (j["bw"]/1024))' "$work/seq.json")
    cat "$work/$mode-watch/seq4k.0.0" >/dev/null 2>&1
    rm -f "$TS_MNT/seq4k.0.0"

    mkdir -p "$TS_MNT/src"
    t0=$(now); compile_like "$TS_MNT/src" create; t1=$(now)
    ls -R "$work/$mode-watch/src" >/dev/null
    compile_like "$TS_MNT/src" read; t2=$(now)
    compile_like "$TS_MNT/src" delete; t3=$(now)
    ccreate=$(python3 -c "print('%.2f' % ($t1 - $t0))")
    cread=$(python3 -c "print('%.2f' % ($t2 - $t1))")
    cdel=$(python3 -c "print('%.2f' % ($t3 - $t2))")

    fio --name=vm4k --directory="$TS_MNT" --rw=randwrite --bs=4k --size=256M \
        --ioengine=psync --fsync=16 --time_based --runtime="$runtime" \
        --output-format=json >"$work/vm.json" 2>/dev/null
    vm=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]["write"]; print("%.0f" % j["iops"])' "$work/vm.json")

    b1=$(status_key cache.breaks_sent)
    rc=$(status_key cache.recalls)
    to=$(status_key cache.breaks_timedout)
    echo "$mode $seq $ccreate $cread $cdel $vm $((b1 - b0)) $rc $to" >>"$results"
    ts_stop_all
done

printf '\n%-13s %10s %9s %9s %9s %10s %8s %8s %8s\n' policy "seq4k" \
    "cc-create" "cc-read" "cc-del" "vm4k" breaks recalls timeout
printf '%-13s %10s %9s %9s %9s %10s %8s %8s %8s\n' "" "MiB/s" s s s IOPS \
    "" "" ""
while read -r m s c r d v b rcl t; do
    printf '%-13s %10s %9s %9s %9s %10s %8s %8s %8s\n' "$m" "$s" "$c" "$r" "$d" "$v" "$b" "$rcl" "$t"
done <"$results"
