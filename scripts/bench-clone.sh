#!/usr/bin/env bash
# bench-clone.sh: the cost of copy-on-write (docs/vmdisk.md, "Copy-on-write,
# per block").  A template image is written whole, snapshotted and cloned;
# then 1,000 random 4 KiB writes (fio's nbd engine, queue depth 1, the same
# seed, so the same offsets) go into the fresh clone, whose every chunk is
# still shared, and into an unshared image written whole the same way.
# For each: fio's time and p50/p99 latency, the bytes written to the
# servers' disk and how much their data folders grew (du), then the
# clone's ratios to the unshared image.
#
# The bytes written: as root, the chunk servers' data folders live on an
# ext4 file system of their own (a loop device over a sparse file in the
# work folder, no reflinks; metad's database stays outside), and the
# figure is the sectors written to that device (/sys/block/loopN/stat),
# journal included, with everything synced before and after.  Otherwise, the chunk servers' write_bytes
# (/proc/PID/io), which the kernel counts per page-cache folio dirtied:
# a 4 KiB write into a large folio of a fully written file counts the
# whole folio, so this overstates what reaches the disk.
#
# Environment: BUILD (default ./build), BENCH_CLONE_SIZE (MiB per image, default
# 2048), BENCH_CLONE_GOAL (copies of each chunk, default 3; three servers run),
# BENCH_CLONE_IOS (writes per image, default 1000).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"

size=${BENCH_CLONE_SIZE:-2048}
goal=${BENCH_CLONE_GOAL:-3}
nios=${BENCH_CLONE_IOS:-1000}
work=$(mktemp -d /tmp/tessera-bench-clone.XXXXXX)
results=$work/results
: >"$results"
loop=
# Every way out stops the cluster (with its tessera-nbd), unmounts and
# detaches the loop device if this run made one, and removes the work
# folder.
cleanup() {
    [ -n "${TS_DIR:-}" ] && ts_stop_all 2>/dev/null
    if [ -n "$loop" ]; then
        umount "$work/disk" 2>/dev/null || umount -l "$work/disk"
        losetup -d "$loop"
    fi
    cd / && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for p in fio python3 du; do
    command -v "$p" >/dev/null || { echo "bench-clone: $p is missing" >&2; exit 1; }
done
fio --enghelp 2>/dev/null | grep -qw nbd ||
    { echo "bench-clone: this fio has no nbd engine" >&2; exit 1; }

# The data folders on a file system of their own, when this run may make
# one (see the top).
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null; then
    truncate -s $((size * goal * 2 + 4096))M "$work/disk.img" &&
        mkfs.ext4 -q -F "$work/disk.img" &&
        loop=$(losetup -f --show "$work/disk.img") && mkdir -p "$work/disk" &&
        mount "$loop" "$work/disk" ||
        { echo "bench-clone: no loop file system" >&2; exit 1; }
fi
ts_cluster_init "$work/cluster" 0
if [ -n "$loop" ]; then
    for i in 1 2 3; do
        mkdir "$work/disk/chunk$i" && ln -s "$work/disk/chunk$i" "$TS_DIR/chunk$i" || exit 1
    done
fi
ts_start_metad || exit 1
for i in 1 2 3; do ts_start_chunkd "$i" || exit 1; done
ts_wait_servers 3 15 || exit 1
ts_start_nbd || exit 1
chunkds=$(awk '$1 ~ /^chunkd[0-9]+$/ { print $2 }' "$TS_DIR/pids")
tess() { "$TS_BIN/tessera" "$@" >/dev/null; }
uri() { echo "nbd://$TS_NBD_ADDR$1"; }

# written_bytes: bytes written to the servers' disk so far (see the top).
written_bytes() {
    local p t=0 v
    if [ -n "$loop" ]; then
        awk '{ printf "%.0f\n", $7 * 512 }' "/sys/block/${loop#/dev/}/stat"
        return
    fi
    for p in $chunkds; do
        v=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$p/io" 2>/dev/null)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# data_kib: KiB the servers' data folders hold (one du: a base shared by
# hard links counts once).
data_kib() { du -skcH "$TS_DIR"/chunk[0-9]* | awk 'END { print $1 }'; }

# make_full PATH: an image of BENCH_CLONE_SIZE MiB at BENCH_CLONE_GOAL, written whole.
make_full() {
    tess image create "$1" "${size}M" && tess setgoal "$goal" "$1" &&
        fio --name=fill --ioengine=nbd --uri="$(uri "$1")" --rw=write --bs=1M \
            --iodepth=4 --size="${size}M" --fsync_on_close=1 \
            >"$work/fill.log" 2>&1 ||
        { echo "bench-clone: filling $1 failed" >&2; tail -3 "$work/fill.log" >&2; return 1; }
}

# run_writes NAME PATH: the random writes; appends "NAME TIME_MS P50_US
# P99_US WRITTEN_BYTES DU_KIB".
run_writes() {
    local name=$1 w0 w1 d0 d1
    sync
    w0=$(written_bytes) d0=$(data_kib)
    fio --name="$name" --ioengine=nbd --uri="$(uri "$2")" --rw=randwrite \
        --bs=4k --iodepth=1 --size="${size}M" --number_ios="$nios" \
        --randseed=1234 --fsync_on_close=1 --lat_percentiles=1 \
        --output-format=json \
        --output="$work/$name.json" >"$work/$name.err" 2>&1 ||
        { echo "bench-clone: fio on $2 failed" >&2; tail -3 "$work/$name.err" >&2; return 1; }
    sync
    w1=$(written_bytes) d1=$(data_kib)
    python3 - "$work/$name.json" "$name" $((w1 - w0)) $((d1 - d0)) >>"$results" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))["jobs"][0]["write"]
pct = w["lat_ns"].get("percentile", {})
print("%s %d %.0f %.0f %s %s" % (sys.argv[2], w["runtime"],
      pct.get("50.000000", 0) / 1000, pct.get("99.000000", 0) / 1000,
      sys.argv[3], sys.argv[4]))
PY
}

echo "bench-clone: writing a ${size} MiB template and an unshared image, goal $goal," \
    "bytes written: $([ -n "$loop" ] && echo "loop device" || echo "write_bytes")" >&2
make_full /template.img || exit 1
tess snapshot /template.img /template.snap || exit 1
tess clone /template.snap /clone.img || exit 1
make_full /unshared.img || exit 1
run_writes unshared /unshared.img || exit 1
run_writes clone /clone.img || exit 1

python3 - "$results" "$nios" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, ms, p50, p99, wb, du = line.split()
    rows[name] = (int(ms), float(p50), float(p99), int(wb), int(du) * 1024)
head = ["image", "time ms", "p50 us", "p99 us", "written MiB", "du growth MiB"]
out = [head]
for name in ("unshared", "clone"):
    ms, p50, p99, wb, du = rows[name]
    out.append([name, str(ms), "%.0f" % p50, "%.0f" % p99,
                "%.1f" % (wb / 2**20), "%.1f" % (du / 2**20)])
def ratio(i):
    a, b = rows["clone"][i], rows["unshared"][i]
    return "%.2f" % (a / b) if b else "-"
out.append(["clone/unshared", ratio(0), ratio(1), ratio(2), ratio(3), ratio(4)])
w = [max(len(r[i]) for r in out) for i in range(len(head))]
print("%s random 4 KiB writes, queue depth 1" % sys.argv[2])
for i, r in enumerate(out):
    print("| " + " | ".join(c.ljust(w[k]) for k, c in enumerate(r)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (x + 2) for x in w) + "|")
PY
