#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-nbd-tessera.sh: tessera-nbd's default backend, images stored in
# Tessera, driven by real NBD clients.
#
# Starts tessera-metad, three tessera-chunkd and a mount (lib-data.sh),
# creates images through the mount (truncate -s, qemu-img create), then
# starts tessera-nbd with ts_start_nbd (TCP and a unix socket) and checks:
# nbdinfo (size, --list, --map showing holes, multi-conn), qemu-io pattern
# writes, reads, discards and zeroes over nbd:// and nbd+unix://, the
# same bytes through the mount, qemu-img info/check on a qcow2 image and
# convert/compare, 136 MiB (two whole chunks and part of a third) copied
# in and out with nbdcopy and with qemu-img convert (equal checksums; MB/s
# printed), a sparse image staying sparse both ways, two connections
# writing at once, and FUA/flush durability across a kill -9 of
# tessera-nbd.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, nbdinfo,
# nbdcopy, qemu-img, qemu-io, python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-nbd nbdinfo nbdcopy qemu-img qemu-io python3 sha256sum \
    fusermount3 mountpoint du
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"

SOCK=$IT_TMP/nbd.sock
img=$TS_MNT/images
mkdir "$img" || it_fail "mkdir images"
truncate -s 64M "$img/small.raw"
COPY_MIB=136 # the images copied in and out whole: across two chunk
# boundaries, into a last chunk written in part
truncate -s "${COPY_MIB}M" "$img/big.raw"
truncate -s "${COPY_MIB}M" "$img/big2.raw"
truncate -s 256M "$img/sparse.raw"
qemu-img create -q -f raw "$img/q.raw" 100M || it_fail "qemu-img create raw"
qemu-img create -q -f qcow2 -o preallocation=metadata "$img/q.qcow2" 100M || it_fail "qemu-img create qcow2"

ts_start_nbd --unix "$SOCK" --images-dir /images || it_fail "tessera-nbd did not start"
it_ok "tessera-nbd started on $TS_NBD_ADDR and $SOCK"
tcp() { echo "nbd://$TS_NBD_ADDR/images/$1"; }
unx() { echo "nbd+unix:///images/$1?socket=$SOCK"; }

# ---- nbdinfo ----------------------------------------------------------------
it_expect_eq "size over tcp" "$(nbdinfo --size "$(tcp small.raw)")" 67108864
it_expect_eq "size over unix" "$(nbdinfo --size "$(unx q.raw)")" 104857600
list=$(nbdinfo --list "nbd://$TS_NBD_ADDR" 2>&1) || it_fail "nbdinfo --list: $list"
for n in small.raw big.raw q.qcow2; do
    grep -q "export=\"images/$n\"" <<<"$list" || it_fail "--list misses images/$n"
done
it_ok "nbdinfo --list shows the images"
nbdinfo "$(tcp small.raw)" | grep -q "can_multi_conn: true" ||
    it_fail "multi-conn not advertised"
it_ok "multi-conn advertised"
nbdinfo "nbd://$TS_NBD_ADDR/images/nope.raw" >/dev/null 2>&1 &&
    it_fail "a missing image opened"
it_ok "a missing image is refused"
# A directory: nbdinfo shows the error code's text (no longer "No such
# file or directory"); qemu shows the server's sentence.
out=$(nbdinfo "nbd://$TS_NBD_ADDR/images" 2>&1) && it_fail "a directory opened as an image"
grep -q "No such file" <<<"$out" && it_fail "a directory export reads as missing: $out"
out=$(qemu-img info "nbd://$TS_NBD_ADDR/images" 2>&1) && it_fail "qemu-img opened a directory"
grep -q "/images is a directory, not an image" <<<"$out" ||
    it_fail "a directory export is not explained: $out"
it_ok "a directory export is refused as a directory"

# ---- qemu-io patterns -----------------------------------------------------------
qio() { qemu-io -f raw "$@" >"$IT_TMP/qio.out" 2>&1 || { cat "$IT_TMP/qio.out"; return 1; }
        ! grep -qiE "fail|error|mismatch" "$IT_TMP/qio.out" || { cat "$IT_TMP/qio.out"; return 1; }; }
qio -c "write -P 0xab 0 1M" -c "write -P 0xcd 1M 1M" -c "write -P 0x11 3M 512k" \
    -c "write -P 0x22 67043328 65536" "$(tcp small.raw)" || it_fail "qemu-io write"
qio -c "read -P 0xab 0 1M" -c "read -P 0xcd 1M 1M" -c "read -P 0 2M 1M" \
    -c "read -P 0x11 3M 512k" -c "read -P 0x22 67043328 65536" "$(unx small.raw)" ||
    it_fail "qemu-io read back over unix"
it_ok "qemu-io write over tcp, read back over unix"
qio -c "discard 1M 1M" -c "read -P 0 1M 1M" -c "read -P 0xab 0 1M" "$(tcp small.raw)" ||
    it_fail "qemu-io discard"
qio -c "write -z 0 512k" -c "read -P 0 0 512k" -c "read -P 0xab 512k 512k" \
    -c "write -z 60M 4M" -c "read -P 0 60M 4M" -c "read -P 0x11 3M 512k" "$(unx small.raw)" ||
    it_fail "qemu-io zero"
it_ok "qemu-io discard and write zeroes"

# The same bytes through the mount.
qemu-img convert -f raw -O raw "$(tcp small.raw)" "$IT_TMP/small.out" || it_fail "convert out"
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
cmp "$IT_TMP/small.out" "$img/small.raw" || it_fail "NBD and mount disagree"
python3 - "$img/small.raw" <<'PY' || it_fail "mount content"
import sys
d = open(sys.argv[1], "rb").read()
M = 1 << 20
assert d[512 << 10:M] == b"\xab" * (512 << 10)
assert d[:512 << 10] == bytes(512 << 10) and d[M:3 * M] == bytes(2 * M)
assert d[3 * M:3 * M + (512 << 10)] == b"\x11" * (512 << 10)
PY
it_ok "data written over NBD reads back identically through the mount"

# ---- qemu-img ------------------------------------------------------------------
qemu-img info -f qcow2 "$(tcp q.qcow2)" | grep -q "virtual size: 100 MiB" || it_fail "qemu-img info"
qemu-io -f qcow2 -c "write -P 0x33 5M 2M" "$(tcp q.qcow2)" >/dev/null || it_fail "qcow2 write"
qemu-img check -f qcow2 "$(unx q.qcow2)" >"$IT_TMP/check.out" 2>&1 ||
    { cat "$IT_TMP/check.out"; it_fail "qemu-img check"; }
qemu-io -f qcow2 -c "read -P 0x33 5M 2M" "$(unx q.qcow2)" | grep -q "read 2097152" ||
    it_fail "qcow2 read back"
it_ok "qemu-img info/check on a qcow2 image"

# ---- Three chunks in and out --------------------------------------------------
# Every byte of big.raw, each 4 MiB block numbered.
python3 - "$IT_TMP/src.raw" $((COPY_MIB / 4)) <<'PY'
import os, sys
blk = os.urandom(4 << 20)
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(i.to_bytes(8, "big") + blk[8:])
PY
want=$(it_sha256 <"$IT_TMP/src.raw")
now() { date +%s.%N; }
mbps() { python3 -c "print(round($COPY_MIB * 1.048576 / ($2 - $1)))"; }
t0=$(now); nbdcopy "$IT_TMP/src.raw" "$(tcp big.raw)" || it_fail "nbdcopy in"
t1=$(now); nbdcopy "$(tcp big.raw)" "$IT_TMP/out.raw" || it_fail "nbdcopy out"
t2=$(now)
it_expect_eq "nbdcopy $COPY_MIB MiB round trip" "$(it_sha256 <"$IT_TMP/out.raw")" "$want"
echo "nbdcopy: in $(mbps "$t0" "$t1") MB/s, out $(mbps "$t1" "$t2") MB/s ($COPY_MIB MiB)"
rm -f "$IT_TMP/out.raw"
t0=$(now); qemu-img convert -n -f raw -O raw "$IT_TMP/src.raw" "$(unx big2.raw)" || it_fail "convert in"
t1=$(now); qemu-img convert -f raw -O raw "$(unx big2.raw)" "$IT_TMP/out.raw" || it_fail "convert out"
t2=$(now)
it_expect_eq "qemu-img convert $COPY_MIB MiB round trip" "$(it_sha256 <"$IT_TMP/out.raw")" "$want"
echo "qemu-img convert: in $(mbps "$t0" "$t1") MB/s, out $(mbps "$t1" "$t2") MB/s ($COPY_MIB MiB)"
qemu-img compare -f raw -F raw "$(tcp big.raw)" "$(unx big2.raw)" >/dev/null ||
    it_fail "qemu-img compare of the two copies"
it_ok "qemu-img compare"
rm -f "$IT_TMP/src.raw" "$IT_TMP/out.raw"

# ---- Sparse both ways --------------------------------------------------------
truncate -s 256M "$IT_TMP/sp.raw"
python3 - "$IT_TMP/sp.raw" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, os.urandom(1 << 20), 0)
os.pwrite(fd, os.urandom(1 << 20), 200 << 20)
os.close(fd)
PY
nbdcopy "$IT_TMP/sp.raw" "$(tcp sparse.raw)" || it_fail "nbdcopy sparse in"
nbdinfo --map "$(tcp sparse.raw)" >"$IT_TMP/map.out" || it_fail "nbdinfo --map"
python3 - "$IT_TMP/map.out" <<'PY' || { cat "$IT_TMP/map.out"; it_fail "map of the sparse image"; }
import sys
hole = data = 0
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 3:
        continue
    if "hole" in line:
        hole += int(f[1])
    else:
        data += int(f[1])
# Chunks are 64 MiB: data at 0 and at 200 MiB allocate two of four.
assert hole == 128 << 20 and data == 128 << 20, (hole, data)
PY
it_ok "the sparse image keeps its holes (nbdinfo --map)"
nbdcopy "$(tcp sparse.raw)" "$IT_TMP/sp.out" || it_fail "nbdcopy sparse out"
cmp "$IT_TMP/sp.raw" "$IT_TMP/sp.out" || it_fail "sparse round trip differs"
kb=$(du -k "$IT_TMP/sp.out" | cut -f1)
[ "$kb" -lt 140000 ] || it_fail "sparse copy out takes $kb KiB"
it_ok "sparse copy out stays sparse ($kb KiB allocated of 256 MiB)"

# ---- Two connections at once -------------------------------------------------
qemu-io -f raw -c "write -P 0x61 0 8M" "$(tcp q.raw)" >"$IT_TMP/a.out" 2>&1 &
a=$!
qemu-io -f raw -c "write -P 0x62 8M 8M" "$(unx q.raw)" >"$IT_TMP/b.out" 2>&1 &
b=$!
wait $a || it_fail "first connection"
wait $b || it_fail "second connection"
qio -c "read -P 0x61 0 8M" -c "read -P 0x62 8M 8M" "$(unx q.raw)" ||
    it_fail "writes of two connections"
it_ok "two connections writing at once"

# ---- FUA and flush survive kill -9 of tessera-nbd ----------------------------
qio -c "write -f -P 0x71 20M 1M" -c "write -P 0x72 22M 1M" -c "flush" "$(tcp q.raw)" ||
    it_fail "FUA write and flush"
ts_kill nbd KILL
ts_start_nbd --unix "$SOCK" --images-dir /images || it_fail "tessera-nbd did not restart"
qio -c "read -P 0x71 20M 1M" -c "read -P 0x72 22M 1M" "$(unx q.raw)" ||
    it_fail "data after kill -9 of tessera-nbd"
it_ok "FUA and flushed writes read back through a new tessera-nbd"
echo "PASS"
