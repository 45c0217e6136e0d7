#!/usr/bin/env bash
# test-clone-kill.sh: kill -9 of a storage server while a fresh clone's
# first writes copy-on-write its shared chunks (docs/vmdisk.md,
# "Copy-on-write").  Nothing acknowledged may be lost, the clone's
# unwritten blocks keep the template's bytes, and the snapshot it was
# cloned from does not change.
#
# Starts tessera-metad (suspect 1.5 s, down 5 s), four tessera-chunkd and
# tessera-nbd (no block cache, so every write reaches the servers), then:
#   1. a 512 MiB goal-3 template (eight chunks) filled with one byte
#      pattern, snapshotted, the snapshot cloned;
#   2. fio (nbd engine) writes 4 KiB blocks at random over the whole clone,
#      eight in flight, each block holding its own checksum and offset; the
#      first write into each of the eight shared chunks copies it on
#      write.  A chunkd holding replicas of the clone's chunks is killed
#      with SIGKILL while those writes run: fio sees no error;
#   3. fio reads back every block it wrote (--verify_only); every other
#      block of the clone still holds the template's pattern; the snapshot
#      reads as the template; after the server is back, the same hold and
#      fsck finds no chunk missing.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, fio with the nbd
# engine, qemu-io, nbdcopy, python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera fio qemu-io nbdcopy python3
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "skip: fio has no nbd engine"; exit 77; }

T="$TS_BIN/tessera"
SOCK=$IT_TMP/nbd.sock
SIZE=512M
ts_start_metad --suspect-ms 1500 --down-ms 5000 || it_fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || it_fail "storage servers did not register"
ts_start_nbd --unix "$SOCK" --cache none || it_fail "tessera-nbd did not start"
url() { echo "nbd+unix:///$1?socket=$SOCK"; }
cd "$IT_TMP" || it_fail "cd" # fio keeps its verify state in the working folder

# ---- 1. template, snapshot, clone ----------------------------------------------
"$T" image create /tmpl.img "$SIZE" >/dev/null || it_fail "image create"
"$T" setgoal 3 /tmpl.img >/dev/null || it_fail "setgoal"
qemu-io -f raw -c "write -P 0x5a 0 $SIZE" "$(url tmpl.img)" >"$IT_TMP/fill.out" 2>&1 ||
    it_fail "fill the template: $(cat "$IT_TMP/fill.out")"
"$T" snapshot /tmpl.img /tmpl.snap >/dev/null || it_fail "snapshot"
"$T" clone /tmpl.snap /c.img >/dev/null || it_fail "clone"
it_expect_eq "the clone shares all eight chunks" \
    "$(it_json "j['shared_chunks']" image info /c.img)" 8

# check_blocks NAME: every 4 KiB block of image NAME is the template's
# pattern or one of fio's verify blocks (fio checks those itself).
check_blocks() {
    nbdcopy "$(url "$1")" "$IT_TMP/$1.raw" || it_fail "read $1"
    python3 - "$IT_TMP/$1.raw" <<'PY' || it_fail "$1 holds blocks that are neither the template's nor fio's"
import struct, sys
tmpl = b"\x5a" * 4096
bad = fio = 0
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(4096)
        if not b:
            break
        if b == tmpl:
            continue
        if struct.unpack_from("<H", b)[0] == 0xacca:  # fio's verify header
            fio += 1
        else:
            bad += 1
print(f"{fio} blocks from fio, {bad} others")
sys.exit(1 if bad or not fio else 0)
PY
    rm -f "$IT_TMP/$1.raw"
    it_ok "$1: every block is the template's or fio's"
}

# ---- 2. kill -9 under the copy-on-write writes ---------------------------------
job=(--name=clonekill --ioengine=nbd --uri="$(url c.img)" --size="$SIZE" --bs=4k
     --rw=randwrite --io_size=24M --iodepth=8 --verify=crc32c --verify_fatal=1
     --randrepeat=1 --output="$IT_TMP/fio.out")
victim=$(it_json "j['chunks'][0]['replicas'][0]['server']" fileinfo /tmpl.snap)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
fio "${job[@]}" --do_verify=0 &
fiopid=$!
# Kill as soon as the first copies are asked for: metad logs each one.
for ((i = 0; i < 100; i++)); do
    grep -q "copy-on-write: chunk=" "$TS_DIR/logs/metad.log" 2>/dev/null && break
    sleep 0.02
done
ts_kill "chunkd$vi" KILL
kill -0 "$fiopid" 2>/dev/null || it_fail "fio ended before the kill: $(cat "$IT_TMP/fio.out")"
it_ok "chunkd $vi (server $victim) killed while the clone's chunks were copied on write"
wait "$fiopid" || it_fail "fio saw an error: $(tail -20 "$IT_TMP/fio.out")"
grep -q "err= 0" "$IT_TMP/fio.out" || it_fail "fio reported errors: $(cat "$IT_TMP/fio.out")"
it_ok "every write acknowledged despite the kill"
it_expect_eq "the clone shares no chunk with the template now" \
    "$(it_json "j['shared_chunks']" image info /c.img)" 0

# ---- 3. nothing lost ------------------------------------------------------------
fio "${job[@]}" --verify_only || it_fail "verify: $(tail -20 "$IT_TMP/fio.out")"
it_ok "every acknowledged block reads back"
check_blocks c.img
want=$(head -c 512M /dev/zero | tr '\0' '\132' | it_sha256)
it_expect_eq "the snapshot reads as the template" \
    "$(nbdcopy "$(url tmpl.snap)" - | it_sha256)" "$want"

ts_start_chunkd "$vi" || it_fail "chunkd $vi did not restart"
ts_wait_servers 4 15 || it_fail "chunkd $vi did not come back"
fio "${job[@]}" --verify_only || it_fail "verify after the restart: $(tail -20 "$IT_TMP/fio.out")"
it_ok "every acknowledged block reads back with the server back"
# Repair may still be copying to the server that came back: under goal is
# fine, missing is not.
"$T" fsck >"$IT_TMP/fsck.out" 2>&1
grep -q " 0 missing" "$IT_TMP/fsck.out" || it_fail "fsck: $(cat "$IT_TMP/fsck.out")"
it_ok "fsck: no chunk missing"
echo "PASS"
