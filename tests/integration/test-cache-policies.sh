#!/usr/bin/env bash
# test-cache-policies.sh: each cache policy's contract, checked on the
# storage servers' chunk files (docs/caching.md):
#   writethrough  the bytes are on the replicas when write() returns;
#   writeback     not until fsync, close or the flush interval;
#   writeonclose  not until close (not after the interval either);
# a client killed with delayed writes (kill -9, then fusermount3 -uz):
# metad and the other client carry on, and what is lost is only what no
# fsync covered; and a mount stopped by SIGTERM while a file is still open
# with delayed writes writes them back on its way out.
. "$(dirname "$0")/lib.sh"
it_need python3 grep
MOUNT_ARGS="-o cache=writethrough"
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT

# on_replicas MARKER: how many chunk files hold MARKER.
on_replicas() {
    grep -rlF --exclude='*.crc' "$1" "$TS_DIR"/chunk*/chunks 2>/dev/null | wc -l
}

# writer FILE MARKER CONTROL: write MARKER to FILE, keep it open; then obey
# the commands written to CONTROL: "fsync", "close".
writer() {
    python3 - "$1" "$2" "$3" <<'PY' &
import os, sys, time
path, marker, ctl = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.write(fd, marker * 256)
open(ctl + ".written", "w").close()
done = set()
while True:
    for cmd in ("fsync", "close"):
        if cmd not in done and os.path.exists(ctl + "." + cmd):
            done.add(cmd)
            if cmd == "fsync":
                os.fsync(fd)
                open(ctl + ".fsynced", "w").close()
            else:
                os.close(fd)
                open(ctl + ".closed", "w").close()
                sys.exit(0)
    time.sleep(0.02)
PY
    WRITER=$!
    wait_file "$3.written"
}

wait_file() {
    for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
    it_fail "timed out waiting for $1"
}

# 1. writethrough: on the replicas when write() returns.
writer "$A/wt" "WT-MARKER-1f3a" "$IT_TMP/wt"
n=$(on_replicas "WT-MARKER-1f3a")
[ "$n" -ge 1 ] || it_fail "writethrough: data not on the replicas after write()"
it_ok "writethrough: write() returned with the data on $n replica(s)"
touch "$IT_TMP/wt.close"; wait "$WRITER"

# 2. writeback: not until fsync / close / interval.
WB=$IT_TMP/mnt-wb
ts_start_mount "$WB" -o cache=writeback,flush_interval=2 || it_fail "writeback mount"
writer "$WB/wb1" "WB-MARKER-77c1" "$IT_TMP/wb1"
[ "$(on_replicas WB-MARKER-77c1)" -eq 0 ] || it_fail "writeback: data on the replicas before fsync"
it_ok "writeback: write() returned, data only in the client"
touch "$IT_TMP/wb1.fsync"; wait_file "$IT_TMP/wb1.fsynced"
[ "$(on_replicas WB-MARKER-77c1)" -ge 1 ] || it_fail "writeback: fsync did not write back"
it_ok "writeback: fsync put the data on the replicas"
touch "$IT_TMP/wb1.close"; wait "$WRITER"
writer "$WB/wb2" "WB-MARKER-interval" "$IT_TMP/wb2"
[ "$(on_replicas WB-MARKER-interval)" -eq 0 ] || it_fail "writeback: early write back"
for _ in $(seq 60); do
    [ "$(on_replicas WB-MARKER-interval)" -ge 1 ] && break
    sleep 0.1
done
[ "$(on_replicas WB-MARKER-interval)" -ge 1 ] || it_fail "writeback: not written back after the interval"
it_ok "writeback: written back by the flush interval, file still open"
touch "$IT_TMP/wb2.close"; wait "$WRITER"
writer "$WB/wb3" "WB-MARKER-close" "$IT_TMP/wb3"
touch "$IT_TMP/wb3.close"; wait "$WRITER"
[ "$(on_replicas WB-MARKER-close)" -ge 1 ] || it_fail "writeback: close did not write back"
it_ok "writeback: close wrote the data back"

# 3. writeonclose: not until close, even past the interval.
WC=$IT_TMP/mnt-wc
ts_start_mount "$WC" -o cache=writeonclose,flush_interval=1 || it_fail "writeonclose mount"
writer "$WC/wc" "WC-MARKER-5e21" "$IT_TMP/wc"
sleep 2.5
[ "$(on_replicas WC-MARKER-5e21)" -eq 0 ] || it_fail "writeonclose: data written back before close"
it_ok "writeonclose: nothing written back after 2.5 s with the file open"
touch "$IT_TMP/wc.close"; wait "$WRITER"
[ "$(on_replicas WC-MARKER-5e21)" -ge 1 ] || it_fail "writeonclose: close did not write back"
it_ok "writeonclose: close wrote the data back"

# 4. A client killed with delayed writes.
K=$IT_TMP/mnt-k
ts_start_mount "$K" -o cache=writeback,flush_interval=60 || it_fail "victim mount"
python3 - "$K/victim" "$IT_TMP/victim" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"SYNCED-PART-" * 1000)
os.fsync(fd)
os.write(fd, b"LOST-PART-xx" * 1000)
open(sys.argv[2] + ".ready", "w").close()
time.sleep(60)
PY
victim=$!
wait_file "$IT_TMP/victim.ready"
ts_kill "mount-mnt-k" KILL
fusermount3 -uz "$K" 2>/dev/null
kill "$victim" 2>/dev/null; wait "$victim" 2>/dev/null
"$TS_BIN/tessera" --meta "$TS_META_ADDR" status >/dev/null ||
    it_fail "metad does not answer after the client died"
it_ok "metad answers after a client was killed"
python3 - "$A/victim" <<'PY' || it_fail "the fsynced part is not intact on the other client"
import sys
d = open(sys.argv[1], "rb").read()
want = b"SYNCED-PART-" * 1000
assert len(d) >= len(want), len(d)
assert d[:len(want)] == want
assert b"LOST-PART" not in d
PY
it_ok "other client reads the fsynced range whole; only the unsynced range is lost"
echo after >"$A/after-kill" && [ "$(cat "$A/after-kill")" = after ] ||
    it_fail "other client cannot write after the kill"
it_ok "other client carries on writing"

# 5. A mount stopped by SIGTERM with a file still open and delayed writes.
T5=$IT_TMP/mnt-term
ts_start_mount "$T5" -o cache=writeback,flush_interval=60 || it_fail "term mount"
python3 - "$T5/open-at-term" "$IT_TMP/term" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"TERM-KEPT-ab" * 5000)
open(sys.argv[2] + ".ready", "w").close()
time.sleep(60)
PY
holder=$!
wait_file "$IT_TMP/term.ready"
[ "$(on_replicas TERM-KEPT-ab)" -eq 0 ] || it_fail "SIGTERM: data written back before the signal"
ts_kill "mount-mnt-term" TERM
grep -q "close: wrote back open files: written=60000 inodes=1" \
    "$TS_DIR/logs/mount-mnt-term.log" || it_fail "SIGTERM: no write-back logged"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
fusermount3 -uz "$T5" 2>/dev/null
python3 - "$A/open-at-term" <<'PY' || it_fail "SIGTERM: the open file's delayed writes are lost"
import sys
d = open(sys.argv[1], "rb").read()
want = b"TERM-KEPT-ab" * 5000
assert d == want, len(d)
PY
it_ok "a mount stopped by SIGTERM wrote back an open file's delayed writes (size too)"
exit 0
