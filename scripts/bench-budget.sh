#!/usr/bin/env bash
# bench-budget.sh: where the time of one 4 KiB request goes (the latency
# budget, docs/performance.md).  Starts metad, three chunkd and tessera-nbd
# (block cache off, so every read reaches a chunk server), fills a goal-1
# and a goal-3 image, then for each runs fio (nbd engine, queue depth 1)
# random reads and writes, and prints, per job, fio's figures and the
# stages tessera-nbd and the chunk servers dumped on SIGUSR1 (reset just
# before the job): p50/p90/p99 per stage and the count.
# Environment: BUILD (default ./build), BENCH_RUNTIME (seconds per job,
# default 4), BUDGET_CACHE (tessera-nbd --cache, default none).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"

runtime=${BENCH_RUNTIME:-4}
work=$(mktemp -d /tmp/tessera-budget.XXXXXX)
cleanup() {
    [ -n "${TS_DIR:-}" ] && ts_stop_all 2>/dev/null
    cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
for p in fio python3; do
    command -v "$p" >/dev/null || { echo "bench-budget: $p is missing" >&2; exit 1; }
done

ts_cluster_init "$work/cluster" 0
ts_start_metad || exit 1
for i in 1 2 3; do ts_start_chunkd "$i" || exit 1; done
ts_wait_servers 3 15 || exit 1
sock=$work/t.sock
setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --unix "$sock" \
    --cache "${BUDGET_CACHE:-none}" >>"$TS_DIR/logs/nbd.log" 2>&1 &
ts_record nbd $!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

# dump: every serving process prints (and resets) its stages.
dump() {
    local p
    for p in $(awk '$1 ~ /^(nbd|chunkd[0-9]+)$/ { print $2 }' "$TS_DIR/pids"); do
        kill -USR1 "$p"
    done
    sleep 0.5
}

for goal in 1 3; do
    img=/budget-g$goal.img
    "$TS_BIN/tessera" image create "$img" 256M >/dev/null &&
        "$TS_BIN/tessera" setgoal "$goal" "$img" >/dev/null || exit 1
    uri="nbd+unix://$img?socket=$sock"
    fio --name=fill --ioengine=nbd --uri="$uri" --size=256M --rw=write \
        --bs=1M --iodepth=4 --output=/dev/null || exit 1
    for rw in randread randwrite; do
        dump
        for f in "$TS_DIR"/logs/nbd.log "$TS_DIR"/logs/chunkd*.log; do : >"$f"; done
        echo "== goal $goal, $rw 4 KiB, queue depth 1"
        fio --name="$rw" --ioengine=nbd --uri="$uri" --size=256M --rw="$rw" \
            --bs=4k --iodepth=1 --time_based --runtime="$runtime" \
            --output-format=json --output="$work/$rw.json" || exit 1
        python3 - "$work/$rw.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] else j["write"]
p = d["clat_ns"]["percentile"]
print("fio: %.0f IOPS, completion latency p50 %.0f us, p99 %.0f us"
      % (d["iops"], p["50.000000"] / 1000, p["99.000000"] / 1000))
PY
        dump
        for f in "$TS_DIR"/logs/nbd.log "$TS_DIR"/logs/chunkd*.log; do
            grep "^stage=" "$f" | awk -v who="$(basename "$f" .log)" '
                { sub(/ max_bucket_us=.*/, ""); print who ": " $0 }'
        done
    done
done
