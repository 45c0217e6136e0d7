#!/usr/bin/env bash
# test-image-io.sh: `tessera image import` and `tessera image export`, and
# read-only snapshots over NBD.
#
# Starts tessera-metad, three tessera-chunkd and a tessera-nbd.  Makes a
# sparse raw file and a qcow2 file with known patterns (qemu-io), imports
# both, compares them with what tessera-nbd serves (qemu-img compare),
# checks the import stayed sparse (nbdinfo --map, du of the chunk
# servers), exports both as raw and as qcow2, compares again, and checks
# the exports are sparse (du).  Then a snapshot of an image is exported
# read-only by tessera-nbd (nbdinfo is_read_only, writes refused).
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, qemu-img, qemu-io,
# qemu-nbd, nbdcopy, nbdinfo, python3.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera qemu-img qemu-io \
    qemu-nbd nbdcopy nbdinfo python3 du

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
T() { "$TS_BIN/tessera" --meta "$TS_META_ADDR" "$@"; }
SOCK=$IT_TMP/nbd.sock
ts_start_nbd --unix "$SOCK" || it_fail "tessera-nbd did not start"
u() { echo "nbd+unix:///$1?socket=$SOCK"; }
D=$IT_TMP/files
mkdir -p "$D"

# ---- Sources ---------------------------------------------------------------------
truncate -s 256M "$D/src.raw"
qemu-io -f raw -c "write -P 0xa1 0 1M" -c "write -P 0xa2 100M 2M" \
    -c "write -P 0xa3 255M 1M" -c "write -z 10M 1M" "$D/src.raw" >/dev/null ||
    it_fail "qemu-io on the raw source"
qemu-img create -q -f qcow2 "$D/src.qcow2" 192M || it_fail "qemu-img create qcow2"
qemu-io -f qcow2 -c "write -P 0xb1 4M 3M" -c "write -P 0xb2 130M 64k" \
    -c "write -P 0xb3 191M 1M" "$D/src.qcow2" >/dev/null || it_fail "qemu-io on the qcow2 source"

# ---- Import ------------------------------------------------------------------------
out=$(T image import --progress "$D/src.raw" /a.img 2>"$IT_TMP/progress") ||
    { cat "$IT_TMP/progress"; it_fail "import raw: $out"; }
grep -q "import: 256 of 256 MiB (100%)" "$IT_TMP/progress" ||
    { cat "$IT_TMP/progress"; it_fail "no progress line"; }
it_ok "import raw: $out"
out=$(T image import "$D/src.qcow2" /b.img) || it_fail "import qcow2: $out"
grep -q "(qcow2)" <<<"$out" || it_fail "qcow2 not detected: $out"
it_ok "import qcow2: $out"
T --json image import "$D/src.qcow2" /c.img >"$IT_TMP/out" 2>"$IT_TMP/err" ||
    it_fail "import --json"
[ ! -s "$IT_TMP/err" ] || it_fail "import --json wrote to stderr: $(cat "$IT_TMP/err")"
it_expect_eq "import --json: the document alone" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["path"])' "$IT_TMP/out")" /c.img
T image import "$D/src.raw" /a.img >/dev/null 2>&1 && it_fail "import over an existing image"
it_ok "import refuses an existing destination"

qemu-img compare -f raw -F raw "$D/src.raw" "$(u a.img)" >/dev/null ||
    it_fail "raw import differs from the source"
qemu-img compare -f qcow2 -F raw "$D/src.qcow2" "$(u b.img)" >/dev/null ||
    it_fail "qcow2 import differs from the source"
it_ok "qemu-img compare: both imports equal their sources"

# Sparse in Tessera: chunk slot 2 (128..192 MiB) of a.img was never written.
nbdinfo --map "$(u a.img)" >"$IT_TMP/map" || it_fail "nbdinfo --map"
grep -q "134217728 *67108864 *3 *hole,zero" "$IT_TMP/map" ||
    { cat "$IT_TMP/map"; it_fail "no hole at 128 MiB"; }
kb=$(du -skc "$TS_DIR"/chunk[123] | tail -1 | cut -f1)
[ "$kb" -lt 65536 ] || it_fail "the chunk servers hold $kb KiB for 7 MiB of data"
it_ok "imports are sparse: a hole slot, $kb KiB on all chunk servers together"

# ---- Export ------------------------------------------------------------------------
T image export --progress /a.img "$D/a.raw" >/dev/null 2>&1 || it_fail "export raw"
cmp "$D/src.raw" "$D/a.raw" || it_fail "raw export differs"
kb=$(du -k "$D/a.raw" | cut -f1)
[ "$kb" -lt 8192 ] || it_fail "raw export takes $kb KiB"
it_ok "export raw: equal, $kb KiB allocated of 256 MiB"
T --json image export -O qcow2 /b.img "$D/b.qcow2" >"$IT_TMP/out" 2>"$IT_TMP/err" ||
    it_fail "export qcow2"
[ ! -s "$IT_TMP/err" ] || it_fail "export --json wrote to stderr: $(cat "$IT_TMP/err")"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$IT_TMP/out" ||
    it_fail "export --json: not JSON: $(cat "$IT_TMP/out")"
qemu-img check -q "$D/b.qcow2" || it_fail "qemu-img check of the export"
qemu-img compare -f qcow2 -F qcow2 "$D/src.qcow2" "$D/b.qcow2" >/dev/null ||
    it_fail "qcow2 export differs"
kb=$(du -k "$D/b.qcow2" | cut -f1)
[ "$kb" -lt 8192 ] || it_fail "qcow2 export takes $kb KiB"
it_ok "export qcow2: equal, $kb KiB allocated of 192 MiB"
T image export -O qcow2 /a.img "$D/a.qcow2" >/dev/null || it_fail "export raw image as qcow2"
qemu-img compare -f raw -F qcow2 "$D/src.raw" "$D/a.qcow2" >/dev/null ||
    it_fail "qcow2 export of a.img differs"
T image export /b.img "$D/b.raw" >/dev/null || it_fail "export qcow2 image as raw"
qemu-img compare -f qcow2 -F raw "$D/src.qcow2" "$D/b.raw" >/dev/null ||
    it_fail "raw export of b.img differs"
it_ok "both images exported both ways compare equal"

# ---- A snapshot is exported read-only ----------------------------------------------
T snapshot /a.img /a-snap.img >/dev/null || it_fail "snapshot"
nbdinfo --json "$(u a-snap.img)" >"$IT_TMP/info.json" || it_fail "nbdinfo snapshot"
python3 - "$IT_TMP/info.json" <<'PY' || { cat "$IT_TMP/info.json"; it_fail "snapshot not read-only"; }
import json, sys
e = json.load(open(sys.argv[1]))["exports"][0]
assert e["is_read_only"] is True, e
PY
qemu-io -r -f raw -c "read -P 0xa2 100M 2M" "$(u a-snap.img)" | grep -q "read 2097152" ||
    it_fail "snapshot read"
out=$(qemu-io -f raw -c "write -P 0xff 0 4k" "$(u a-snap.img)" 2>&1) &&
    it_fail "a write to the snapshot worked: $out"
it_ok "a snapshot is exported with NBD_FLAG_READ_ONLY and refuses writes"
qemu-img compare -f raw -F raw "$D/src.raw" "$(u a-snap.img)" >/dev/null ||
    it_fail "snapshot content"
it_ok "snapshot content equals the source"
echo "PASS"
