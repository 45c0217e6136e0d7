#!/usr/bin/env bash
# test-read-errors.sh: a replica that fails reads, with real daemons.
#
# tessera-metad, three then four tessera-chunkd and FUSE mounts (goal 3):
#   1. the first replica of a file's chunk fails every read with EIO
#      (chunkd --fault-read-eio): a cold mount still reads the file back
#      equal from another replica; the server marks the chunk bad and
#      reports it, metad drops that replica and repair makes a new copy on
#      the fourth server.
#   2. a block of another chunk's first replica is damaged on disk, and 32
#      reads of the chunk go through tessera-nbd at once: they all get
#      their data, tessera-nbd sends at most one report and metad acts on
#      (and logs) one.
# Needs: tessera-{metad,chunkd,mount,nbd}, tessera, qemu-io, fusermount3,
# python3, sha256sum; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera \
    qemu-io fusermount3 mountpoint python3 sha256sum
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

T="$TS_BIN/tessera"
# Three servers first, so that every chunk is on each of them and a
# restart leaves repair nowhere to copy to: the copies stay.
. "$(dirname "$0")/lib-data.sh"

for f in f1 f2; do
    head -c $((8 << 20)) /dev/urandom >"$IT_TMP/$f"
    cp "$IT_TMP/$f" "$TS_MNT/$f" || it_fail "write /$f"
done
sync "$TS_MNT" 2>/dev/null || sync
for ((i = 0; i < 100; i++)); do
    "$T" checkfile /f1 >/dev/null 2>&1 && "$T" checkfile /f2 >/dev/null 2>&1 && break
    sleep 0.1
done
it_ok "wrote /f1 and /f2, 8 MiB each"

sum() { it_sha256 <"$1"; }
first_replica() { it_json "j['chunks'][0]['replicas'][0]['server']" fileinfo "$1"; }
chunk_of() { it_json "j['chunks'][0]['id']" fileinfo "$1"; }

# ---- 1. Reads of one replica fail with EIO --------------------------------
id=$(chunk_of /f1)
victim=$(first_replica /f1)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
ts_kill "chunkd$vi" TERM
ts_start_chunkd "$vi" --fault-read-eio "$id" || it_fail "chunkd $vi did not restart"
ts_wait_servers 3 15 || it_fail "chunkd $vi did not register again"
ts_start_chunkd 4 || it_fail "chunkd 4 did not start"
ts_wait_servers 4 15 || it_fail "chunkd 4 did not register"
ts_start_mount "$IT_TMP/m2" || it_fail "second mount did not start"
it_expect_eq "/f1 through a cold mount" "$(sum "$IT_TMP/m2/f1")" "$(sum "$IT_TMP/f1")"
grep -q "chunk bad replica: I/O error: chunk=$id" "$TS_DIR/logs/chunkd$vi.log" ||
    it_fail "chunkd $vi did not mark chunk $id bad (read order changed?)"
it_ok "the failing replica marked itself bad and reported it"
it_wait_moved /f1 "$victim" ||
    { "$T" fileinfo /f1; it_fail "/f1 not repaired away from server $victim"; }
it_ok "repair replaced the failing replica"
it_expect_eq "/f1 after repair" "$(sum "$IT_TMP/m2/f1")" "$(sum "$IT_TMP/f1")"

# ---- 2. Parallel readers of a damaged replica -----------------------------
id=$(chunk_of /f2)
victim=$(first_replica /f2)
vi=$(it_server_index "$victim")
data="$TS_DIR/chunk$vi/chunks/${id:14:2}/$id"
[ -f "$data" ] || it_fail "no chunk file $data"
printf 'damaged!%.0s' {1..512} | dd of="$data" bs=4096 seek=1 conv=notrunc status=none ||
    it_fail "damage $data"
ts_start_nbd || it_fail "tessera-nbd did not start"
cmds=()
# Every read covers the damaged block 1.
for ((k = 0; k < 32; k++)); do cmds+=(-c "aio_read -P 0 $((k * 128)) 128k"); done
# The pattern check fails (the data is random); what counts is that every
# read is answered with data, not an error.
out=$(qemu-io -f raw -r "${cmds[@]}" -c aio_flush "nbd://$TS_NBD_ADDR/f2" 2>&1)
grep -qi "error\|failed" <<<"$(grep -v "Pattern verification failed" <<<"$out")" &&
    it_fail "parallel NBD reads: $out"
it_expect_eq "/f2 through the mount" "$(it_sha256 <"$TS_MNT/f2")" \
    "$(it_sha256 <"$IT_TMP/f2")"
it_ok "32 parallel NBD reads of the damaged chunk answered with data"
sent=$(grep -c "chunk report: sent: server=$victim chunk=$id" "$TS_DIR/logs/nbd.log")
[ "$sent" -le 1 ] || it_fail "tessera-nbd sent $sent reports of one damaged replica"
it_ok "tessera-nbd sent $sent report(s) of the damaged replica"
for ((i = 0; i < 50; i++)); do
    it_json "all(r['server'] != $victim for r in j['chunks'][0]['replicas'])" \
        fileinfo /f2 | grep -q True && break
    sleep 0.1
done
logged=$(grep -c "chunk report: bad replica: chunk=$id" "$TS_DIR/logs/metad.log")
it_expect_eq "reports metad acted on" "$logged" 1
echo "PASS"
