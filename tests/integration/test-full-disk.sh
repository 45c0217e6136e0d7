#!/usr/bin/env bash
# test-full-disk.sh: storage servers whose disks fill up.
#
# Two tessera-chunkd, each on a 100 MiB tmpfs, goal 2, a FUSE mount and
# tessera-nbd:
#   1. files a and b get a chunk each; a grows to 60 MiB, which leaves each
#      server less free space than a chunk: both are full.
#   2. a new file's first write fails with ENOSPC at once (no server may
#      take a new chunk, though each has 38 MiB free); written without
#      fsync, its close reports ENOSPC.
#   3. b grows into the space left: the write fails with ENOSPC (the disk
#      itself ran out), and everything written before reads back equal;
#      an NBD write to a new chunk fails with NBD_ENOSPC (qemu-io says "No
#      space left on device").
#   4. the daemons still serve: status, reads; removing a and b frees the
#      space and new writes succeed again.
# Needs root (tmpfs mounts), tessera-{metad,chunkd,mount,nbd}, qemu-io,
# fusermount3, python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera \
    qemu-io fusermount3 mountpoint python3 sha256sum
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "skip: tmpfs mounts need root"; exit 77; }

T="$TS_BIN/tessera"
disks=()
full_cleanup() {
    local rc=$? d
    ts_stop_all 2>/dev/null
    for d in "${disks[@]}"; do umount -l "$d" 2>/dev/null; done
    (exit $rc)
    it_cleanup
}
trap full_cleanup EXIT

for i in 1 2; do
    mkdir -p "$TS_DIR/chunk$i"
    mount -t tmpfs -o size=100m tmpfs "$TS_DIR/chunk$i" 2>/dev/null ||
        { echo "skip: cannot mount a tmpfs"; exit 77; }
    disks+=("$TS_DIR/chunk$i")
done
ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"
"$T" setgoal -r 2 / >/dev/null || it_fail "setgoal 2 /"

# wr FILE OFFSET_MIB MIB SEED: write MIB MiB at OFFSET_MIB and fsync; print
# ok or the errno's name.
wr() {
    python3 - "$@" <<'EOF'
import errno, os, random, sys
path, off, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(mib):
            os.pwrite(fd, rnd.randbytes(1 << 20), (off + i) << 20)
        os.fsync(fd)
    finally:
        os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
}
# sha FILE MIB: the sha256 of FILE's first MIB MiB.
sha() { head -c $(($2 << 20)) "$1" | it_sha256; }
# want_sha FILE OFFSET_MIB MIB SEED: what wr wrote there.
want_sha() {
    python3 -c "import random, hashlib, sys
r = random.Random($4); h = hashlib.sha256()
for i in range($3): h.update(r.randbytes(1 << 20))
print(h.hexdigest())"
}

# ---- 1. Fill both servers ------------------------------------------------
it_expect_eq "write a (1 MiB)" "$(wr "$TS_MNT/a" 0 1 1)" ok
it_expect_eq "write b (1 MiB)" "$(wr "$TS_MNT/b" 0 1 2)" ok
it_expect_eq "grow a to 60 MiB" "$(wr "$TS_MNT/a" 1 59 3)" ok
a_sha=$(sha "$TS_MNT/a" 60)
b_sha=$(want_sha "$TS_MNT/b" 0 1 2)

# ---- 2. No server may take a new chunk ------------------------------------
sleep 2 # a heartbeat tells metad how little is free
got=$(wr "$TS_MNT/c" 0 1 5)
it_expect_eq "a new chunk with every server full (38 MiB free each)" "$got" ENOSPC
# Without fsync: the delayed write fails at write-back, which gives up
# and reports ENOSPC at close (not retried for ever).
got=$(python3 - "$TS_MNT/c2" <<'EOF'
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x" * (1 << 20))
try:
    os.close(fd)
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
)
it_expect_eq "close after a delayed write with every server full" "$got" ENOSPC
# ---- 3. The disk itself runs out -----------------------------------------
got=$(wr "$TS_MNT/b" 1 40 4)
it_expect_eq "growing b past the disks" "$got" ENOSPC

it_expect_eq "a reads back equal" "$(sha "$TS_MNT/a" 60)" "$a_sha"
it_expect_eq "b's acknowledged MiB reads back equal" "$(sha "$TS_MNT/b" 1)" "$b_sha"

mkdir "$TS_MNT/images" && truncate -s 256M "$TS_MNT/images/disk.raw" ||
    it_fail "image"
ts_start_nbd || it_fail "tessera-nbd did not start"
out=$(qemu-io -f raw -c "write -P 0x5a 128M 1M" \
    "nbd://$TS_NBD_ADDR/images/disk.raw" 2>&1)
grep -q "No space left on device" <<<"$out" ||
    it_fail "NBD write with every server full: $out"
it_ok "NBD write with every server full: NBD_ENOSPC"

# ---- 4. Still serving; space comes back ----------------------------------
"$T" status >/dev/null 2>&1 || [ $? -eq 1 ] || it_fail "status does not answer"
it_expect_eq "a reads back equal again" "$(sha "$TS_MNT/a" 60)" "$a_sha"
rm "$TS_MNT/a" "$TS_MNT/b" || it_fail "rm a b"
got=
for ((i = 0; i < 40; i++)); do
    got=$(wr "$TS_MNT/d" 0 4 6)
    [ "$got" = ok ] && break
    sleep 0.5
done
it_expect_eq "a new file once a and b are gone" "$got" ok
it_expect_eq "d reads back equal" "$(sha "$TS_MNT/d" 4)" "$(want_sha "$TS_MNT/d" 0 4 6)"
out=$(qemu-io -f raw -c "write -P 0x5a 128M 1M" -c "read -P 0x5a 128M 1M" \
    "nbd://$TS_NBD_ADDR/images/disk.raw" 2>&1)
grep -q "error\|No space" <<<"$out" && it_fail "NBD write after space came back: $out"
it_ok "NBD write after space came back"
echo "PASS"
