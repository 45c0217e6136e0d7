#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-image-diff.sh: rollback, flatten and incremental diffs of images
# (docs/vmdisk.md "Rollback", "Flatten", "Incremental diffs"), with real
# daemons (metad, three chunkd, goal 3), tessera-nbd and qemu-io.
#
#   1. /a.img (256 MiB, four chunk slots): 1 MiB in slots 0..2, snapshot
#      a@1; four 4 KiB writes (slots 0 and 2, and slot 3, a hole in a@1),
#      snapshot a@2.
#   2. diff a@1 -> a@2: its size is that of the four changed blocks plus
#      the format's few hundred bytes, not of the 64 MiB chunks they are
#      in; its records name exactly the blocks written.
#   3. a@1 exported and imported as /b.img, the diff applied: /b.img reads
#      as a@2 (sha256), and so does a copy of a@1 imported on a second
#      cluster (its own metad and chunkd) once the diff is applied there;
#      then diffs that grow and shrink /b.img (a@3, a@4).
#      The diff applied to a copy of a@2 is refused (wrong base), and to a
#      copy of a@1 with one block changed where the diff does not write
#      (the base's content digest differs), and a damaged diff too, each
#      leaving the image as it was.
#   4. tessera-nbd's tessera:changes-since:/a@1 metadata context on a@2
#      (nbdinfo --map) marks exactly the diff's records.
#   5. rollback, apply-diff and flatten of /a.img are refused while an
#      NBD client has it open for writing; then the rollback to a@1 is
#      done: /a.img reads as a@1.
#   6. a clone of a@2 written, flattened, then the template's whole
#      lineage removed: the clone still reads its bytes and shares nothing.
# Needs tessera-nbd, qemu-io, nbdcopy, nbdinfo, python3, sha256sum.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera tessera-nbd qemu-io nbdcopy nbdinfo python3 sha256sum
ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
ts_start_nbd || it_fail "tessera-nbd did not start"

T="$TS_BIN/tessera"
MIB=$((1 << 20))
CHUNK=$((64 * MIB))
url() { echo "nbd://$TS_NBD_ADDR/$1"; }
img_sha() { nbdcopy "$(url "$1")" - | it_sha256; }
qio() { # qio IMAGE CMD...: qemu-io commands, in order, over one NBD connection
    local img=$1 c cmds=()
    shift
    for c in "$@"; do cmds+=(-c "$c"); done
    qemu-io -f raw "${cmds[@]}" "$(url "$img")" >"$IT_TMP/qio.out" 2>&1 &&
        ! grep -qiE "fail|error" "$IT_TMP/qio.out" ||
        { cat "$IT_TMP/qio.out"; it_fail "qemu-io $img: $*"; }
}

# ---- 1. an image and two snapshots ---------------------------------------
"$T" image create /a.img 256M >/dev/null || it_fail "image create"
qio a.img "write -P 1 0 1M" "write -P 2 $CHUNK 1M" "write -P 3 $((2 * CHUNK)) 1M"
"$T" snapshot /a.img /a@1 >/dev/null || it_fail "snapshot a@1"
# Four 4 KiB blocks: two in slot 0 (one inside the 1 MiB, one past it),
# one in slot 2, one in slot 3 (a hole in a@1).
CHANGED="$((8 * 4096)) $((1000 * 4096)) $((2 * CHUNK + 4096)) $((3 * CHUNK + 12288))"
writes=()
for off in $CHANGED; do writes+=("write -P 170 $off 4k"); done
qio a.img "${writes[@]}"
"$T" snapshot /a.img /a@2 >/dev/null || it_fail "snapshot a@2"
A1=$(img_sha a@1)
A2=$(img_sha a@2)
[ "$A1" != "$A2" ] || it_fail "a@1 and a@2 read the same"

# ---- 2. the diff ----------------------------------------------------------
"$T" image diff --from /a@1 /a@2 >"$IT_TMP/d12" 2>"$IT_TMP/diff.err" ||
    { cat "$IT_TMP/diff.err"; it_fail "image diff"; }
size=$(stat -c %s "$IT_TMP/d12")
# 16 KiB of data; header, five records and the two digests: < 1 KiB more.
[ "$size" -gt 16384 ] && [ "$size" -lt $((16384 + 1024)) ] ||
    it_fail "diff of four 4 KiB blocks is $size bytes"
it_ok "diff of four changed 4 KiB blocks: $size bytes"

# The records, from the documented layout (docs/vmdisk.md): TYPE OFF LEN.
records() {
    python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'TSRADIFF'
off = 80
for _ in range(2):
    n = struct.unpack('>H', d[off:off + 2])[0]
    off += 2 + n
while True:
    t, o, l = d[off], *struct.unpack('>QQ', d[off + 8:off + 24])
    off += 24
    if t == 0xFF:
        break
    print(t, o, l)
    if t == 1:
        off += l
assert off + 64 == len(d), "END is last"
PY
}
records "$IT_TMP/d12" >"$IT_TMP/recs"
want=$(for off in $CHANGED; do echo "1 $off 4096"; done)
it_expect_eq "diff records are the blocks written" "$(cat "$IT_TMP/recs")" "$want"

# ---- 3. applied to a copy of a@1; refused on a wrong base ---------------
"$T" image export /a@1 "$IT_TMP/a1.raw" >/dev/null || it_fail "export a@1"
"$T" image import "$IT_TMP/a1.raw" /b.img >/dev/null || it_fail "import b.img"
it_expect_eq "b.img is a copy of a@1" "$(img_sha b.img)" "$A1"
out=$("$T" --json image apply-diff /b.img "$IT_TMP/d12") || it_fail "apply-diff: $out"
it_expect_eq "apply-diff --json" \
    "$(echo "$out" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["base"], j["target"])')" \
    "/a@1 /a@2"
it_expect_eq "b.img + diff reads as a@2" "$(img_sha b.img)" "$A2"

# The same on a second cluster (its own metad and chunkd, other chunk ids
# and versions): a copy of a@1 imported there takes the diff and reads as
# a@2.  Its processes stop with the subshell.
(
    trap 'ts_stop_all' EXIT
    META=1 ts_cluster_init "$IT_TMP/cluster2" 0
    ts_start_metad || it_fail "second cluster: metad did not start"
    ts_start_chunkd 1 || it_fail "second cluster: chunkd did not start"
    ts_wait_servers 1 15 || it_fail "second cluster: no storage server"
    "$T" image import "$IT_TMP/a1.raw" /copy.img >/dev/null ||
        it_fail "second cluster: import"
    "$T" image apply-diff /copy.img "$IT_TMP/d12" >/dev/null ||
        it_fail "second cluster: apply-diff"
    "$T" image export /copy.img "$IT_TMP/copy.raw" >/dev/null ||
        it_fail "second cluster: export"
    it_expect_eq "a copy of a@1 on a second cluster + diff reads as a@2" \
        "$(it_sha256 <"$IT_TMP/copy.raw")" "$A2"
) || exit 1

# Size changes travel too: grown and written past the old end (a@3), then
# shrunk inside a chunk (a@4); each diff applied in turn to b.img.
"$T" image resize /a.img 320M >/dev/null || it_fail "grow a.img"
qio a.img "write -P 33 $((300 * MIB)) 4k"
"$T" snapshot /a.img /a@3 >/dev/null || it_fail "snapshot a@3"
"$T" image resize --shrink /a.img 200M >/dev/null || it_fail "shrink a.img"
"$T" snapshot /a.img /a@4 >/dev/null || it_fail "snapshot a@4"
"$T" image diff --from /a@2 /a@3 >"$IT_TMP/d23" 2>/dev/null || it_fail "diff a@2 a@3"
"$T" image diff --from /a@3 /a@4 >"$IT_TMP/d34" 2>/dev/null || it_fail "diff a@3 a@4"
"$T" image apply-diff /b.img "$IT_TMP/d23" >/dev/null || it_fail "apply d23"
it_expect_eq "b.img grown by a diff reads as a@3" "$(img_sha b.img)" "$(img_sha a@3)"
"$T" image apply-diff /b.img "$IT_TMP/d34" >/dev/null || it_fail "apply d34"
it_expect_eq "b.img shrunk by a diff reads as a@4" "$(img_sha b.img)" "$(img_sha a@4)"
it_expect_eq "b.img has a@4's size" "$(it_json 'j["size"]' image info /b.img)" $((200 * MIB))
"$T" image resize /a.img 256M >/dev/null || it_fail "grow a.img back"

"$T" image export /a@2 "$IT_TMP/a2.raw" >/dev/null || it_fail "export a@2"
"$T" image import "$IT_TMP/a2.raw" /c.img >/dev/null || it_fail "import c.img"
if "$T" image apply-diff /c.img "$IT_TMP/d12" 2>"$IT_TMP/err"; then
    it_fail "a diff applied to an image that is not its base"
fi
grep -q "does not hold the diff's base" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "wrong-base message"; }
it_expect_eq "wrong base refused, image untouched" "$(img_sha c.img)" "$A2"
# Applied twice: the second time the base no longer matches.
"$T" image apply-diff /b.img "$IT_TMP/d12" 2>/dev/null &&
    it_fail "a diff applied twice"
# A copy of a@1 changed only where the diff does not write: the base's
# content digest (the CRC32C of every block) tells it apart.
"$T" image import "$IT_TMP/a1.raw" /e.img >/dev/null || it_fail "import e.img"
qio e.img "write -P 77 $((100 * MIB)) 4k"
E1=$(img_sha e.img)
if "$T" image apply-diff /e.img "$IT_TMP/d12" 2>"$IT_TMP/err"; then
    it_fail "a diff applied to a base changed outside its records"
fi
grep -q "does not hold the diff's base" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "changed-base message"; }
it_expect_eq "base changed elsewhere refused, image untouched" "$(img_sha e.img)" "$E1"
cp "$IT_TMP/d12" "$IT_TMP/bad"
printf 'X' | dd of="$IT_TMP/bad" bs=1 seek=$((size - 100)) conv=notrunc status=none
"$T" image import "$IT_TMP/a1.raw" /d.img >/dev/null || it_fail "import d.img"
if "$T" image apply-diff /d.img "$IT_TMP/bad" 2>"$IT_TMP/err"; then
    it_fail "a damaged diff applied"
fi
grep -q "checksum mismatch" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "damaged-diff message"; }
it_expect_eq "damaged diff refused, image untouched" "$(img_sha d.img)" "$A1"

# ---- 4. the NBD metadata context marks the diff's records ---------------
# nbdinfo --map prints "OFFSET LENGTH VALUE [DESCRIPTION]" per extent.
nbdinfo --map="tessera:changes-since:/a@1" "$(url a@2)" >"$IT_TMP/map" 2>&1 ||
    { cat "$IT_TMP/map"; it_fail "nbdinfo --map tessera:changes-since"; }
got=$(awk '$3 == 1 { print "1", $1, $2 }' "$IT_TMP/map")
it_expect_eq "changes-since context marks the diff's extents" "$got" "$(cat "$IT_TMP/recs")"
covered=$(awk '{ s += $2 } END { print s }' "$IT_TMP/map")
it_expect_eq "the map covers the image" "$covered" $((4 * CHUNK))
# Against itself nothing changed; a name that is no file is refused.
it_expect_eq "no changes against itself" \
    "$(nbdinfo --map="tessera:changes-since:/a@2" "$(url a@2)" | awk '$3 == 1' | wc -l)" 0
if nbdinfo --map="tessera:changes-since:/nosuch" "$(url a@2)" >/dev/null 2>&1; then
    it_fail "a changes-since context for a missing file"
fi
it_ok "changes-since of a missing file is not offered"

# ---- 5. rollback ---------------------------------------------------------
qio a.img "write -P 99 $((5 * MIB)) 64k"
# An NBD client holding the image open for writing (its writer lease).
mkfifo "$IT_TMP/hold"
qemu-io -f raw "$(url a.img)" <"$IT_TMP/hold" >/dev/null 2>&1 &
holder=$!
exec 7>"$IT_TMP/hold"
sleep 1
if "$T" image rollback /a.img /a@1 2>"$IT_TMP/err"; then
    it_fail "rollback while an NBD client writes the image"
fi
grep -q "open for writing" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "rollback refusal message"; }
it_ok "rollback refused while the image is open for writing"
"$T" image apply-diff /a.img "$IT_TMP/d12" 2>"$IT_TMP/err" &&
    it_fail "apply-diff while an NBD client writes the image"
grep -q "open for writing by" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "apply-diff refusal message"; }
"$T" image flatten /a.img 2>"$IT_TMP/err" &&
    it_fail "flatten while an NBD client writes the image"
grep -q "open for writing by" "$IT_TMP/err" || { cat "$IT_TMP/err"; it_fail "flatten refusal message"; }
it_ok "apply-diff and flatten refused while the image is open for writing"
echo quit >&7
exec 7>&-
wait "$holder" 2>/dev/null
for _ in $(seq 50); do
    "$T" image rollback /a.img /a@1 >"$IT_TMP/rb" 2>&1 && break
    sleep 0.2
done
grep -q "rolled back to /a@1" "$IT_TMP/rb" || { cat "$IT_TMP/rb"; it_fail "rollback"; }
it_expect_eq "a.img rolled back reads as a@1" "$(img_sha a.img)" "$A1"
qio a.img "write -P 77 0 4k"
it_expect_eq "a@1 unchanged by writes after the rollback" "$(img_sha a@1)" "$A1"

# ---- 6. flatten, then the template's lineage removed --------------------
"$T" clone /a@2 /vm.img >/dev/null || it_fail "clone vm.img"
qio vm.img "write -P 55 $((CHUNK + 4096)) 8k"
VM=$(img_sha vm.img)
out=$("$T" --json image flatten /vm.img) || it_fail "flatten: $out"
it_expect_eq "flatten copied the shared chunks" \
    "$(echo "$out" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["chunks"], j["copied"])')" "4 3"
for f in /a@4 /a@3 /a@2 /a@1 /a.img /b.img /c.img /d.img; do
    "$T" image rm "$f" >/dev/null || it_fail "image rm $f"
done
it_expect_eq "vm.img reads its bytes with its template gone" "$(img_sha vm.img)" "$VM"
it_expect_eq "vm.img shares nothing" \
    "$(it_json 'j["shared_chunks"]' image info /vm.img)" 0
it_expect_eq "vm.img has no parent" \
    "$(it_json '[e["parent"] for e in j["images"] if e["path"] == "/vm.img"][0]' image list /)" None
