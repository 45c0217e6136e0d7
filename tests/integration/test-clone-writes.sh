#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-clone-writes.sh: a snapshot taken while tessera-nbd writes the
# image, cloned at once (docs/vmdisk.md, "Snapshots and clones"); case 8
# of test-clone.sh, in a file of its own so that the two run side by side.
#
# Starts tessera-metad, three tessera-chunkd (goal 3), a mount and
# tessera-nbd (lib-clone.sh), then:
#   8. an image filled over NBD, then written again in order (qemu-io,
#      64 KiB writes) while it is snapshotted and the snapshot cloned: the
#      clone equals the snapshot, the snapshot holds a prefix of the
#      writes (at most the one in flight half done), and the image all of
#      them, over NBD and through the mount.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, nbdcopy,
# qemu-io, python3, sha256sum; runs as root (drop_caches); exits 77
# otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-clone.sh"

# ---- 8. snapshot and clone during writes ---------------------------------------
WSIZE=$((96 * MIB))
"$T" image create /w.img "$WSIZE" >/dev/null || it_fail "image create w.img"
qemu-io -f raw -c "write -P 0x11 0 $WSIZE" "$(nbd_url w.img)" >/dev/null ||
    it_fail "fill w.img"
cmds=()
for ((off = 0; off < WSIZE; off += 65536)); do cmds+=(-c "write -P 0x22 $off 64k"); done
qemu-io -f raw "${cmds[@]}" "$(nbd_url w.img)" >"$IT_TMP/writer.out" 2>&1 &
writer=$!
sleep 0.5
"$T" snapshot /w.img /w.snap >/dev/null || it_fail "snapshot during writes"
"$T" clone /w.snap /w1.img >/dev/null || it_fail "clone of a snapshot during writes"
wait "$writer" || { tail "$IT_TMP/writer.out"; it_fail "the writer failed"; }
grep -qiE "fail|error" "$IT_TMP/writer.out" && { grep -iE "fail|error" "$IT_TMP/writer.out" | head; it_fail "writer errors"; }
it_ok "snapshot and clone while qemu-io wrote the image"
head -c "$WSIZE" /dev/zero | tr '\0' '\042' >"$W/w.img"
check w.img
drop_caches
it_expect_eq "the clone equals the snapshot" "$(nbdcopy "$(nbd_url w1.img)" - | it_sha256)" \
    "$(it_sha256 <"$TS_MNT/w.snap")"
res=$(python3 - "$TS_MNT/w.snap" <<'PY'
import sys
B = 65536
kinds = []
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(B)
        if not b:
            break
        kinds.append("new" if b == b"\x22" * B else "old" if b == b"\x11" * B else "mixed")
new = kinds.count("new")
mixed = [i for i, k in enumerate(kinds) if k == "mixed"]
# In order: new blocks first, then at most one half-written, then old.
ok = all(k == "new" for k in kinds[:new]) and len(mixed) <= 1 and \
    all(i == new for i in mixed) and all(k == "old" for k in kinds[new + len(mixed):])
print("prefix" if ok else "not a prefix", new, len(mixed), file=sys.stderr)
print("prefix" if ok else "not a prefix")
PY
)
it_expect_eq "the snapshot holds a prefix of the writes" "$res" prefix
