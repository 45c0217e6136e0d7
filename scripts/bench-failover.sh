#!/usr/bin/env bash
# bench-failover.sh: how long a metad group stops serving when its leader
# dies (docs/architecture.md, "The replicated log").  Three metad
# replicas, one chunkd and a FUSE mount; the mount creates files in a
# loop.  Each round kills the leader with -9 and times, from the kill,
# the first create that succeeds afterwards (through the mount, which
# follows the new leader by itself); then the killed replica starts again
# and catches up before the next round.  Prints each round and the
# median.
#
# Environment: BUILD (default ./build), BENCH_FAILOVER_ROUNDS (default 5).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"

rounds=${BENCH_FAILOVER_ROUNDS:-5}
work=$(mktemp -d /tmp/tessera-bench-failover.XXXXXX)
# Every way out stops the cluster and removes the work folder.
cleanup() {
    [ -n "${TS_DIR:-}" ] && ts_stop_all 2>/dev/null
    cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

command -v python3 >/dev/null || { echo "bench-failover: python3 is missing" >&2; exit 1; }
export META=3
ts_cluster_init "$work/cluster" 0
ts_start_metad || exit 1
ts_start_chunkd 1 || exit 1
ts_wait_servers 1 15 || exit 1
ts_start_mount || exit 1
mkdir -p "$TS_MNT/f" || exit 1

# One round: kill -9 of the leader, then creates until one succeeds;
# prints the seconds from the kill to that success.
round() {
    python3 - "$TS_MNT/f/r$1" "$(ts_pid "$(ts_meta_name "$2")")" <<'PY'
import os, signal, sys, time
base, pid = sys.argv[1], int(sys.argv[2])
for i in range(20):  # warm: the mount's session and the leader are up
    os.close(os.open("%s-w%d" % (base, i), os.O_CREAT | os.O_WRONLY, 0o644))
t0 = time.monotonic()
os.kill(pid, signal.SIGKILL)
n = 0
while True:
    n += 1
    try:
        os.close(os.open("%s-k%d" % (base, n), os.O_CREAT | os.O_WRONLY, 0o644))
        break
    except OSError:
        time.sleep(0.01)
print("%.2f" % (time.monotonic() - t0))
PY
}

: >"$work/times"
for ((r = 1; r <= rounds; r++)); do
    leader=$(ts_meta_leader)
    [ -n "$leader" ] || { echo "bench-failover: no leader" >&2; exit 1; }
    t=$(round "$r" "$leader") || { echo "bench-failover: round $r failed" >&2; exit 1; }
    { wait "$(ts_pid "$(ts_meta_name "$leader")")"; } 2>/dev/null
    echo "$t" >>"$work/times"
    printf '  round %d: leader %s killed, first create after %s s\n' "$r" "$leader" "$t"
    ts_forget "$(ts_meta_name "$leader")"
    ts_start_meta_replica "$leader" || exit 1
    ts_wait_leader 20 || exit 1
done
python3 - "$work/times" <<'PY'
import statistics, sys
t = [float(x) for x in open(sys.argv[1])]
print("%-34s %8s %8s %8s" % ("kill -9 of the leader -> create", "median", "min", "max"))
print("%-34s %7.2fs %7.2fs %7.2fs" % ("three metad replicas (%d rounds)" % len(t),
      statistics.median(t), min(t), max(t)))
PY
