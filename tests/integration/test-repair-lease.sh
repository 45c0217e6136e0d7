#!/usr/bin/env bash
# test-repair-lease.sh: repair of a chunk whose writer never stops.
#
# tessera-metad, four tessera-chunkd, a FUSE mount (goal 3).  A writer
# keeps rewriting a 4 MiB file (a 4 KiB block and fsync every 50 ms), so
# its chunk is always under a write lease.  kill -9 of a server holding the
# chunk: the goal comes back while the writer still writes (metad freezes
# the file for the copy), and once it stops the file reads back as the
# writer last wrote it.
# Needs: tessera-{metad,chunkd,mount}, tessera, fusermount3, python3.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera fusermount3 \
    mountpoint python3 sha256sum
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

T="$TS_BIN/tessera"
ts_start_metad --suspect-ms 1500 --down-ms 3000 || it_fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"

head -c $((4 << 20)) /dev/zero >"$TS_MNT/f" || it_fail "write /f"
sync "$TS_MNT" 2>/dev/null || sync

# The writer: block k of the file gets the bytes of its round number
# (mod 256) until $IT_TMP/stop exists; it prints the last round.
python3 - "$TS_MNT/f" "$IT_TMP/stop" >"$IT_TMP/rounds" <<'EOF' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
n = 0
while not os.path.exists(sys.argv[2]):
    os.pwrite(fd, bytes([n % 256]) * 4096, (n % 1024) * 4096)
    os.fsync(fd)
    n += 1
    time.sleep(0.05)
os.close(fd)
print(n)
EOF
writer=$!
sleep 1

victim=$(it_json "j['chunks'][0]['replicas'][0]['server']" fileinfo /f)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
ts_kill "chunkd$vi" KILL
it_wait_moved /f "$victim" "$writer" ||
    { "$T" fileinfo /f; it_fail "goal not restored while the writer writes"; }
it_ok "goal restored on the other servers while the writer kept writing"
touch "$IT_TMP/stop"
wait "$writer" || it_fail "the writer failed"
rounds=$(cat "$IT_TMP/rounds")
python3 - "$TS_MNT/f" "$rounds" <<'EOF' || it_fail "/f does not hold what was written"
import sys
data = open(sys.argv[1], "rb").read()
n = int(sys.argv[2])
want = bytearray(4 << 20)
for r in range(n):
    k = r % 1024
    want[k * 4096:(k + 1) * 4096] = bytes([r % 256]) * 4096
sys.exit(0 if data == bytes(want) else 1)
EOF
it_ok "after $rounds rounds /f reads back as written"
echo "PASS"
