#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-failover.sh: the client side of failure handling, under a running
# write-and-verify workload through the FUSE mount.
#
# Starts tessera-metad (suspect 1.5 s, down 5 s), four tessera-chunkd and a
# mount.  A python workload writes 64 KiB blocks of known content to four
# files (goal 3), fsyncs each, and logs every block only after its fsync
# returned.  While it runs:
#   1. kill -9 of a chunkd holding replicas: the workload carries on
#      without an error; the server restarts later holding stale versions;
#   2. kill -9 of metad, restarted 0.5 s later: the workload resumes;
#   3. SIGSTOP of a chunkd in the write chains (a partition): writes go on
#      once metad declares it down; SIGCONT, and it rejoins (state up).
# Then every acknowledged block reads back equal, once after dropping the
# page cache and once through a fresh mount (nothing stale is read).
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, tessera, fusermount3,
# python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera fusermount3 \
    mountpoint python3
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

T="$TS_BIN/tessera"
ts_start_metad --suspect-ms 1500 --down-ms 5000 || it_fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"

state_of() { it_json "[s['state'] for s in j['server_list'] if s['id']==$1][0]" status; }

# A server holding the first chunk of /w0, other than $1.
pick_victim() {
    it_json "[r['server'] for r in j['chunks'][-1]['replicas'] if r['server'] != ${1:-0}][0]" fileinfo /w0
}

acked=$IT_TMP/acked
stop=$IT_TMP/stop
python3 - "$TS_MNT" "$acked" "$stop" <<'PY' &
import os, random, sys, time
mnt, acked, stop = sys.argv[1:4]
BLK = 64 << 10
fds = [os.open(os.path.join(mnt, "w%d" % k), os.O_CREAT | os.O_WRONLY, 0o644)
       for k in range(4)]
with open(acked, "w", buffering=1) as log:
    i = 0
    while not os.path.exists(stop):
        k, off = i % 4, (i // 4) * BLK
        data = random.Random(i).randbytes(BLK)
        t0 = time.monotonic()
        if os.pwrite(fds[k], data, off) != BLK:
            sys.exit("short write at block %d" % i)
        os.fsync(fds[k])
        log.write("%d %d %d %.3f %.3f\n" % (i, k, off, time.time(),
                                            time.monotonic() - t0))
        i += 1
for fd in fds:
    os.close(fd)
PY
wl=$!

acks() { if [ -e "$acked" ]; then wc -l <"$acked"; else echo 0; fi; }
alive() { kill -0 "$wl" 2>/dev/null || it_fail "workload failed"; }
progress() { # progress SECONDS WHAT: acks must grow within SECONDS
    local n0 i
    n0=$(acks)
    for ((i = 0; i < $1 * 10; i++)); do
        alive
        [ "$(acks)" -gt "$n0" ] && { it_ok "$2 (acks $(acks))"; return; }
        sleep 0.1
    done
    it_fail "$2: no write acknowledged within $1 s"
}

sleep 2
progress 5 "workload running"

# ---- 1. kill -9 of a storage server in the chains -------------------------
victim=$(pick_victim)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
ts_kill "chunkd$vi" KILL
it_ok "chunkd $vi (server $victim) killed"
sleep 1
progress 10 "writes continue after the kill"
sleep 2
alive

# ---- 2. kill -9 of metad ---------------------------------------------------
ts_kill metad KILL
sleep 0.5
ts_start_metad --suspect-ms 1500 --down-ms 5000 || it_fail "metad did not restart"
it_ok "metad killed and restarted"
progress 30 "writes resume after the metad restart"

# The killed server comes back holding stale versions.
ts_start_chunkd "$vi" || it_fail "chunkd $vi did not restart"
for ((i = 0; i < 100; i++)); do
    [ "$(state_of "$victim")" = up ] && break
    sleep 0.1
done
it_expect_eq "restarted server $victim is up" "$(state_of "$victim")" up
sleep 2
alive

# ---- 3. SIGSTOP of a storage server (a partition) --------------------------
ts_wait_servers 4 15 || it_fail "servers not all up before the partition"
sleep 1
pv=$(pick_victim "$victim")
pi=$(it_server_index "$pv")
[ -n "$pi" ] || it_fail "no chunkd for server $pv"
kill -STOP "$(ts_pid "chunkd$pi")"
it_ok "chunkd $pi (server $pv) stopped"
for ((i = 0; i < 80; i++)); do
    [ "$(state_of "$pv")" = down ] && break
    sleep 0.1
done
it_expect_eq "stopped server $pv declared down" "$(state_of "$pv")" down
progress 10 "writes continue with server $pv stopped"
sleep 2
kill -CONT "$(ts_pid "chunkd$pi")"
for ((i = 0; i < 100; i++)); do
    [ "$(state_of "$pv")" = up ] && break
    sleep 0.1
done
it_expect_eq "continued server $pv rejoins" "$(state_of "$pv")" up
progress 10 "writes after the rejoin"

touch "$stop"
wait "$wl" || it_fail "workload exited with status $?"
n=$(acks)
slow=$(awk '$5 > m { m = $5 } END { printf "%.1f", m }' "$acked")
it_ok "workload finished: $n blocks acknowledged, slowest write+fsync $slow s"
python3 -c "import sys; sys.exit(0 if $slow < 15 else 1)" ||
    it_fail "a write+fsync took $slow s"

# ---- Verification ----------------------------------------------------------
verify() {
    python3 - "$TS_MNT" "$acked" <<'PY' || it_fail "$1: acknowledged data lost"
import os, random, sys
mnt, acked = sys.argv[1:3]
BLK = 64 << 10
fds = {}
bad = 0
for line in open(acked):
    i, k, off = (int(x) for x in line.split()[:3])
    if k not in fds:
        fds[k] = os.open(os.path.join(mnt, "w%d" % k), os.O_RDONLY)
    got = os.pread(fds[k], BLK, off)
    if got != random.Random(i).randbytes(BLK):
        bad += 1
        if bad < 5:
            print("block %d of w%d at %d differs" % (i, k, off))
sys.exit(1 if bad else 0)
PY
    it_ok "$1: every acknowledged block reads back equal"
}

sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
verify "after dropping caches"

fusermount3 -u "$TS_MNT" || it_fail "unmount"
ts_kill mount TERM
ts_start_mount || it_fail "remount"
verify "through a fresh mount"
echo "PASS"
