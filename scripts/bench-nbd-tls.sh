#!/usr/bin/env bash
# bench-nbd-tls.sh: what NBD over TLS costs.  4 KiB random write and read
# at queue depth 1 and 16, with and without TLS (PSK), against one
# tessera-nbd started with --tls=on (TLS optional, so both kinds of client
# reach the same server), over the mem backend, which leaves the NBD
# transport as nearly all the work, or over a Tessera image.
#
# fio's nbd engine (libnbd) has no TLS settings and qemu-img bench no
# --object, so the TLS client is QEMU's own NBD client inside qemu-nbd:
#
#   fio --ioengine=nbd -> unix socket -> qemu-nbd --image-opts driver=nbd
#       [,tls-creds=tls0] -> unix socket -> tessera-nbd
#
# The plain run goes through the same qemu-nbd hop, so the difference
# between the two is the TLS cost on both ends (QEMU as client, as a VM
# would pay it, and tessera-nbd as server).  Beside IOPS: fio's p50
# completion latency and the CPU time tessera-nbd spent per request.
# Environment: BUILD (default ./build), BENCH_RUNTIME (seconds per job,
# default 5), BENCH_BACKEND (mem, the default, or tessera: a goal-1 image
# on metad and one chunkd started on this host, tessera-nbd's defaults).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
runtime=${BENCH_RUNTIME:-5}
backend=${BENCH_BACKEND:-mem}
work=$(mktemp -d /tmp/tessera-bench-tls.XXXXXX)
pids=()

for p in fio qemu-nbd psktool python3; do
    command -v "$p" >/dev/null || { echo "bench-nbd-tls: $p is missing" >&2; exit 1; }
done
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [ -n "${TS_DIR:-}" ] && ts_stop_all 2>/dev/null
    [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_sock() {
    local i
    for ((i = 0; i < 100; i++)); do [ -S "$1" ] && return 0; sleep 0.1; done
    echo "bench-nbd-tls: no socket at $1" >&2
    exit 1
}
# CPU ticks (user + sys) of process $1.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

psktool -u alice -p "$work/keys.psk" >/dev/null
chmod 600 "$work/keys.psk"
if [ "$backend" = tessera ]; then
    # metad and one chunkd on this host; a goal-1 image.
    . "$here/scripts/cluster.sh"
    ts_cluster_init "$work/cluster" 0
    ts_start_metad && ts_start_chunkd 1 && ts_wait_servers 1 15 ||
        { echo "bench-nbd-tls: tessera did not start" >&2; exit 1; }
    export_name=bench-tls.img
    "$TS_BIN/tessera" image create "/$export_name" 512M >/dev/null &&
        "$TS_BIN/tessera" setgoal 1 "/$export_name" >/dev/null ||
        { echo "bench-nbd-tls: image create failed" >&2; exit 1; }
    be_args=(--meta "$TS_META_ADDR")
else
    export_name=disk
    be_args=(--backend mem)
fi
"$BUILD/bin/tessera-nbd" "${be_args[@]}" --unix "$work/t.sock" --tls=on \
    --tls-psk "$work/keys.psk" >"$work/nbd.log" 2>&1 &
nbd=$!
pids+=("$nbd")
wait_sock "$work/t.sock"

# One qemu-nbd hop per kind of client.
for tls in off psk; do
    obj=() creds=
    if [ "$tls" = psk ]; then
        obj=(--object "tls-creds-psk,id=tls0,endpoint=client,dir=$work,username=alice")
        creds=,tls-creds=tls0
    fi
    qemu-nbd "${obj[@]}" --image-opts \
        "driver=nbd,path=$work/t.sock,export=$export_name$creds" -k "$work/hop-$tls.sock" \
        -t >"$work/qemu-nbd-$tls.log" 2>&1 &
    pids+=("$!")
    wait_sock "$work/hop-$tls.sock"
done

# fio_job TLS RW QD: one job; prints a row.
hz=$(getconf CLK_TCK)
fio_job() {
    local t0 t1
    t0=$(ticks "$nbd")
    fio --name=j --ioengine=nbd --uri="nbd+unix:///?socket=$work/hop-$1.sock" \
        --rw="$2" --bs=4k --iodepth="$3" --size=512M --time_based \
        --runtime="$runtime" --output-format=json >"$work/fio.json" 2>"$work/fio.err" ||
        { cat "$work/fio.err" >&2; exit 1; }
    t1=$(ticks "$nbd")
    python3 - "$work/fio.json" "$1" "$2-4k-qd$3" "$((t1 - t0))" "$hz" "$round" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()  # the nbd engine prints a line first
j = json.loads(text[text.index("{"):])["jobs"][0]
side = j["write"] if j["write"]["total_ios"] else j["read"]
ios = side["total_ios"]
p50 = side["clat_ns"]["percentile"]["50.000000"] / 1000
cpu = int(sys.argv[4]) / int(sys.argv[5]) * 1e6 / max(ios, 1)
print("%-5s %-6s %-18s %9.0f %9.0f %12.1f" % (sys.argv[6], sys.argv[2], sys.argv[3],
                                             side["iops"], p50, cpu))
EOF
}

# Fill the image first, so no run pays for first writes (mem pages,
# Tessera chunks).
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$work/hop-off.sock" \
    --rw=write --bs=1M --iodepth=4 --size=512M >/dev/null 2>&1 ||
    { echo "bench-nbd-tls: fill failed" >&2; exit 1; }
# Two rounds, alternating plain and TLS, to show the noise of this host.
printf '%-5s %-6s %-18s %9s %9s %12s\n' round tls job IOPS "p50 us" "nbd CPU us/req"
for round in 1 2; do
    for tls in off psk; do
        for job in randwrite:1 randwrite:16 randread:1 randread:16; do
            fio_job "$tls" "${job%:*}" "${job#*:}"
        done
    done
done
grep -q "tls_user=alice" "$work/nbd.log" ||
    { echo "bench-nbd-tls: the TLS run did not use TLS" >&2; exit 1; }
