#!/usr/bin/env bash
# test-scrub.sh: a block corrupted on disk is found by the scrubber,
# reported, and the replica replaced; the file keeps reading back right.
#
# Starts tessera-metad, three tessera-chunkd and a FUSE mount on loopback,
# writes a 3 MiB file, flips one byte in one replica's data file under
# chunkN/chunks/, then starts a scrub: `tessera scrub` when the admin CLI
# has the verb, else by restarting that chunkd with --scrub-interval-s 1.
# Checks that the chunkd logs and reports the bad replica, that `tessera
# status` shows each server's pass and the finding (SCRUB_STATUS), that the
# corrupted copy goes away (deleted, or replaced by a good copy) while the
# chunk gets back to as many copies as before, and that the file reads
# back equal after a remount (from the chunk servers, not the page cache).
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, tessera, fusermount3,
# python3, sha256sum; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera fusermount3 \
    mountpoint python3 sha256sum
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

TESSERA="$TS_BIN/tessera"
ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do
    ts_start_chunkd "$i" --scrub-mbps 64 || it_fail "chunkd $i did not start"
done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"

# ---- A file with data in every block -------------------------------------
python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(3 << 20))' \
    >"$IT_TMP/src"
cp "$IT_TMP/src" "$TS_MNT/f" || it_fail "write through the mount"
sync "$TS_MNT/f"
want=$(it_sha256 <"$IT_TMP/src")
it_ok "file written"

# ---- Corrupt one replica ---------------------------------------------------
# holders ID: the servers (1..3) with chunk ID on disk.
holders() {
    local i
    for i in 1 2 3; do
        [ -f "$TS_DIR/chunk$i/chunks/${1: -2}/$1.crc" ] && echo "$i"
    done
}
victim= id=
for i in 1 2 3; do
    f=$(find "$TS_DIR/chunk$i/chunks" -type f -name '????????????????' \
        -size +0 2>/dev/null | head -n 1)
    if [ -n "$f" ]; then victim=$i id=$(basename "$f"); break; fi
done
[ -n "$victim" ] || it_fail "no chunk data file found under chunk*/chunks"
ncopies=$(holders "$id" | wc -l)
data="$TS_DIR/chunk$victim/chunks/${id: -2}/$id"
OFF=$((4096 * 3 + 17))
# flip FILE OFFSET: xor one byte with 1; prints the original value.
flip() {
    python3 - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)[0]
    f.seek(off)
    f.write(bytes([b ^ 1]))
print(b)
EOF
}
byte_at() {
    python3 -c 'import sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2])); print(f.read(1)[0])' "$1" "$2" 2>/dev/null
}
orig=$(flip "$data" "$OFF") || it_fail "cannot corrupt $data"
it_ok "corrupted chunk $id on chunkd$victim ($ncopies copies)"

# ---- Scrub -------------------------------------------------------------------
if "$TESSERA" --meta "$TS_META_ADDR" scrub >/dev/null 2>&1; then
    it_ok "tessera scrub started a pass"
else
    ts_kill "chunkd$victim"
    ts_start_chunkd "$victim" --scrub-mbps 64 --scrub-interval-s 1 ||
        it_fail "chunkd$victim did not restart"
    it_ok "chunkd$victim restarted with --scrub-interval-s 1"
fi
log="$TS_DIR/logs/chunkd$victim.log"
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
    grep -q "chunk bad replica: .*chunk=$id" "$log" && break
    sleep 0.1
done
grep -q "chunk bad replica: checksum mismatch: chunk=$id" "$log" ||
    it_fail "chunkd$victim did not find the corrupted block of $id"
it_ok "scrub found the bad replica"

# ---- tessera status shows the scrub's progress and findings ------------------
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do
    [ "$(it_json "(j.get('scrub.servers'), j.get('scrub.running'), j.get('scrub.errors', 0) >= 1, j.get('scrub.passes', 0) >= 3)" status)" = "(3, 0, True, True)" ] && break
    sleep 0.2
done
it_expect_eq "status: three servers scrubbed, none running, a finding" \
    "$(it_json "(j.get('scrub.servers'), j.get('scrub.running'), j.get('scrub.errors', 0) >= 1)" status)" "(3, 0, True)"
"$TESSERA" --meta "$TS_META_ADDR" status >"$IT_TMP/status.txt" 2>/dev/null
grep -Eq "^Scrub: 0 of 3 servers scrubbing; [0-9]+ of [0-9]+ chunks verified, [1-9][0-9]* damaged or unreadable copies found" \
    "$IT_TMP/status.txt" || it_fail "status shows no scrub findings: $(grep -A4 '^Scrub' "$IT_TMP/status.txt")"
grep -Eq "^  server [0-9]+ +idle +[0-9]+ of [0-9]+ chunks \(.*\), 1 found" "$IT_TMP/status.txt" ||
    it_fail "status shows no server with the finding: $(grep -A4 '^Scrub' "$IT_TMP/status.txt")"
it_ok "status shows the scrub's progress and findings"

# ---- Replaced ----------------------------------------------------------------
replaced=0
end=$((SECONDS + 60))
while [ $SECONDS -lt $end ]; do
    grep -q "chunk meta: report refused: chunk=$id" "$log" &&
        it_fail "metad refused the report of $id: $(grep -m1 'report refused' "$log")"
    b=$(byte_at "$data" "$OFF")
    if { [ -z "$b" ] || [ "$b" = "$orig" ]; } &&
        [ "$(holders "$id" | wc -l)" -ge "$ncopies" ]; then
        replaced=1
        break
    fi
    sleep 0.1
done
"$TESSERA" --meta "$TS_META_ADDR" fileinfo "$TS_MNT/f" 2>/dev/null || true
[ $replaced -eq 1 ] ||
    it_fail "bad replica of $id not replaced (holders: $(holders "$id" | tr '\n' ' '))"
it_ok "bad replica replaced, $ncopies copies again"

# ---- Reads back ------------------------------------------------------------------
fusermount3 -u "$TS_MNT" || fusermount3 -uz "$TS_MNT"
ts_kill mount
ts_start_mount || it_fail "remount did not start"
got=$(it_sha256 <"$TS_MNT/f")
it_expect_eq "file reads back after repair" "$got" "$want"
exit 0
