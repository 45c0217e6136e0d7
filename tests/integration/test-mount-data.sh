#!/usr/bin/env bash
# test-mount-data.sh: file data through a real FUSE mount.
#
# Starts tessera-metad, three tessera-chunkd and tessera-mount -f on
# loopback, then: files of sizes around block, megabyte and chunk
# boundaries written with dd and python and read back (after a remount, so
# from the chunk servers, not the page cache) with equal sha256; 1 MiB
# writes arriving whole; a sparse file with a write at 5 GiB; truncate
# down and up showing zeros; fsync, O_SYNC (also over an older delayed
# write of the same bytes), O_DIRECT; fallocate (extend,
# punch hole, zero range, keep-size preallocation, fallocate(1) and
# qemu-img's preallocation=falloc, unsupported modes); a file's data
# surviving the loss of one replica's server; du (st_blocks) of a sparse
# 100 GiB file following writes and truncates to the bytes the chunk
# servers allocate, and qemu-img info and cp --sparse=auto with it; times
# set after writes (cp -p, touch -d, utime on an open descriptor) stand.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, fusermount3, python3,
# sha256sum; exits 77 when one is missing.
set -u
BUILD=${BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}

skip() { echo "skip: $*"; exit 77; }
for b in tessera-metad tessera-chunkd tessera-mount; do
    [ -x "$BUILD/bin/$b" ] || skip "$BUILD/bin/$b not built"
done
for t in fusermount3 mountpoint python3 sha256sum dd; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
[ -e /dev/fuse ] || skip "/dev/fuse missing"

TMP=$(mktemp -d /tmp/tessera-mount-data.XXXXXX)
MNT=$TMP/mnt
PIDS=() MOUNT_PID=
cleanup() {
    local rc=$?
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
    fi
    [ -n "$MOUNT_PID" ] && kill "$MOUNT_PID" 2>/dev/null
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 30); do
        local left=0
        for p in $MOUNT_PID "${PIDS[@]}"; do
            kill -0 "$p" 2>/dev/null && left=1
        done
        [ $left -eq 0 ] && break
        sleep 0.1
    done
    for p in $MOUNT_PID "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$TMP"/*.log; do
            echo "---- $(basename "$f") (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; ok "$1"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2)" \
            2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

MPORT=$(free_port)
"$BUILD/bin/tessera-metad" --data "$TMP/meta" --listen "127.0.0.1:$MPORT" \
    >"$TMP/metad.log" 2>&1 &
PIDS+=($!)
wait_port "$MPORT" || fail "metad did not start"
# The keys metad wrote on its first start (docs/security.md).
export TESSERA_KEY=$TMP/meta/admin.key
CPORTS=()
for i in 1 2 3; do
    p=$(free_port)
    CPORTS+=("$p")
    "$BUILD/bin/tessera-chunkd" --data "$TMP/chunk$i" --listen "127.0.0.1:$p" \
        --meta "127.0.0.1:$MPORT" --key "$TMP/meta/chunkd.key" \
        >"$TMP/chunkd$i.log" 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 100); do
    [ "$(grep -c 'server registered' "$TMP/metad.log")" -ge 3 ] && break
    sleep 0.1
done
[ "$(grep -c 'server registered' "$TMP/metad.log")" -ge 3 ] ||
    fail "chunk servers did not register"
ok "cluster up"

mount_fs() {
    mkdir -p "$MNT"
    "$BUILD/bin/tessera-mount" --meta "127.0.0.1:$MPORT" -f -D fc.ops=1 \
        "$MNT" >>"$TMP/mount.log" 2>&1 &
    MOUNT_PID=$!
    for _ in $(seq 100); do
        mountpoint -q "$MNT" && return 0
        sleep 0.1
    done
    fail "not mounted"
}
umount_fs() {
    cd /
    fusermount3 -u "$MNT" || fail "fusermount3 -u"
    wait "$MOUNT_PID"
    local rc=$?
    MOUNT_PID=
    [ $rc -eq 0 ] || fail "tessera-mount exited with $rc"
}

mount_fs
cd "$MNT" || fail "cd"

# ---- sizes around boundaries -----------------------------------------------
SRC=$TMP/src
mkdir -p "$SRC"
for n in 0 1 4095 4096 4097 $((1048576 + 7)) $((70 * 1048576)); do
    head -c "$n" /dev/urandom >"$SRC/f$n"
done
for n in 0 1 4095 4096 4097; do
    python3 -c "import shutil,sys; shutil.copyfile(sys.argv[1], sys.argv[2])" \
        "$SRC/f$n" "$MNT/f$n" || fail "python write f$n"
done
for n in $((1048576 + 7)) $((70 * 1048576)); do
    dd if="$SRC/f$n" of="$MNT/f$n" bs=1M status=none || fail "dd write f$n"
done
for n in 0 1 4095 4096 4097 $((1048576 + 7)) $((70 * 1048576)); do
    expect_eq "size of f$n" "$(stat -c %s "$MNT/f$n")" "$n"
done
big=$(grep -c 'write: .* size=1048576$' "$TMP/mount.log")
[ "$big" -ge 70 ] || fail "1 MiB writes do not arrive whole ($big seen)"
ok "1 MiB writes arrive whole ($big)"

# Read back from the chunk servers: remount so no page cache is left.
umount_fs
mount_fs
cd "$MNT" || fail "cd"
for n in 0 1 4095 4096 4097 $((1048576 + 7)) $((70 * 1048576)); do
    a=$(sha256sum <"$SRC/f$n" | cut -d' ' -f1)
    b=$(sha256sum <"$MNT/f$n" | cut -d' ' -f1)
    expect_eq "sha256 of f$n after remount" "$b" "$a"
done
a=$(dd if="$SRC/f$((70 * 1048576))" bs=1M skip=63 count=2 status=none | sha256sum)
b=$(dd if="$MNT/f$((70 * 1048576))" bs=1M skip=63 count=2 status=none | sha256sum)
expect_eq "read across the chunk boundary" "$b" "$a"

# ---- the data path from python: sparse, truncate, fsync, flags --------------
python3 - <<'EOF' || fail "python data checks"
import ctypes, errno, mmap, os

def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)
    print("ok:", what)

# A sparse file with one write at 5 GiB.
G5 = 5 << 30
fd = os.open("sparse", os.O_CREAT | os.O_RDWR, 0o644)
check(os.pwrite(fd, b"X" * 4096, G5) == 4096, "write at 5 GiB")
os.fsync(fd)
check(os.fstat(fd).st_size == G5 + 4096, "sparse size")
check(os.pread(fd, 8192, 0) == b"\0" * 8192, "zeros at the start")
check(os.pread(fd, 8192, G5 - 4096) == b"\0" * 4096 + b"X" * 4096,
      "zeros then data at 5 GiB")
check(os.pread(fd, 100, 3 << 30) == b"\0" * 100, "zeros in the middle")
check(os.pread(fd, 100, G5 + 4096) == b"", "EOF after the data")
os.close(fd)

# Truncate down inside a chunk, then up: the old tail reads as zeros.
data = os.urandom(200000)
with open("t", "wb") as f:
    f.write(data)
os.truncate("t", 5000)
check(os.stat("t").st_size == 5000, "truncate down")
os.truncate("t", 200000)
with open("t", "rb") as f:
    d = f.read()
check(d[:5000] == data[:5000] and d[5000:] == b"\0" * 195000,
      "truncate up reads zeros")
# Through an open descriptor, across a chunk: 65 MiB down to 1 MiB + 3.
fd = os.open("t2", os.O_CREAT | os.O_RDWR | os.O_TRUNC)
blob = os.urandom(1 << 20)
for i in range(65):
    os.pwrite(fd, blob, i << 20)
os.ftruncate(fd, (1 << 20) + 3)
os.ftruncate(fd, 66 << 20)
check(os.pread(fd, 3, 1 << 20) == blob[:3], "ftruncate keeps the head")
check(os.pread(fd, 4096, (1 << 20) + 3) == b"\0" * 4096,
      "ftruncate zeroes the tail")
check(os.pread(fd, 4096, 64 << 20) == b"\0" * 4096,
      "dropped chunk reads zeros")
os.close(fd)
# O_TRUNC on open empties the file.
with open("t", "wb") as f:
    f.write(b"new")
with open("t", "rb") as f:
    check(f.read() == b"new", "O_TRUNC")

# fsync, O_SYNC, O_DSYNC.
fd = os.open("s", os.O_CREAT | os.O_WRONLY | os.O_SYNC)
check(os.write(fd, b"sync" * 1000) == 4000, "O_SYNC write")
os.close(fd)
fd = os.open("s", os.O_WRONLY | os.O_DSYNC | os.O_APPEND)
os.write(fd, b"more")
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
check(os.stat("s").st_size == 4004, "O_APPEND size")
# A delayed write, then an O_SYNC write of the same bytes through another
# descriptor: the older bytes must not be written back over the newer.
fd1 = os.open("sx", os.O_CREAT | os.O_WRONLY)
os.pwrite(fd1, b"A" * 8192, 0)
fd2 = os.open("sx", os.O_WRONLY | os.O_SYNC)
os.pwrite(fd2, b"B" * 4096, 4096)
os.close(fd2)
os.close(fd1)

# O_DIRECT: aligned reads and writes bypass the page cache.
m = mmap.mmap(-1, 1 << 20)
m.write(os.urandom(1 << 20))
fd = os.open("direct", os.O_CREAT | os.O_RDWR | os.O_DIRECT)
check(os.pwritev(fd, [m], 0) == 1 << 20, "O_DIRECT write")
r = mmap.mmap(-1, 1 << 20)
check(os.preadv(fd, [r], 0) == 1 << 20 and r[:] == m[:], "O_DIRECT read")
os.close(fd)

# fallocate: extend, punch a hole, zero a range, allocate keeping the
# size, refuse the rest.
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_int64]
KEEP, PUNCH, COLLAPSE, ZERO = 0x01, 0x02, 0x08, 0x10
fd = os.open("fa", os.O_CREAT | os.O_RDWR)
os.write(fd, b"B" * 300000)
os.posix_fallocate(fd, 0, 1000000)
check(os.fstat(fd).st_size == 1000000, "fallocate extends")
check(libc.fallocate(fd, PUNCH | KEEP, 1000, 5000) == 0, "punch hole")
d = os.pread(fd, 300000, 0)
check(d[:1000] == b"B" * 1000 and d[1000:6000] == b"\0" * 5000 and
      d[6000:] == b"B" * 294000, "punched range reads zeros")
check(os.fstat(fd).st_size == 1000000, "punch keeps the size")
check(libc.fallocate(fd, ZERO, 200000, 2000000) == 0, "zero range")
check(os.fstat(fd).st_size == 2200000, "zero range extends")
check(os.pread(fd, 100000, 200000) == b"\0" * 100000, "zeroed range")
check(libc.fallocate(fd, KEEP, 2000000, 4000000) == 0, "keep-size allocate")
check(os.fstat(fd).st_size == 2200000, "keep-size allocate keeps the size")
check(os.pread(fd, 10, 2195000) == b"\0" * 10, "nothing moved")
check(libc.fallocate(fd, COLLAPSE, 0, 4096) == -1 and
      ctypes.get_errno() == errno.EOPNOTSUPP, "collapse is EOPNOTSUPP")
os.close(fd)

# Overwrite in the middle, unaligned, and read back.
fd = os.open("ow", os.O_CREAT | os.O_RDWR)
base = os.urandom(3 << 20)
os.write(fd, base)
patch = os.urandom(12345)
os.pwrite(fd, patch, 777777)
exp = base[:777777] + patch + base[777777 + 12345:]
check(os.pread(fd, 3 << 20, 0) == exp, "unaligned overwrite")
os.close(fd)
with open("ow.expect", "wb") as f:
    f.write(exp)
EOF

# The tools that preallocate: fallocate(1) keeping the size, and qemu-img.
printf abc >kn
fallocate -n -l 1M kn || fail "fallocate -n"
expect_eq "fallocate -n keeps the size" "$(stat -c %s kn)" 3
fallocate -l 1M kn || fail "fallocate"
expect_eq "fallocate extends" "$(stat -c %s kn)" 1048576
if command -v qemu-img >/dev/null 2>&1; then
    qemu-img create -q -f raw -o preallocation=falloc qf.img 64M ||
        fail "qemu-img preallocation=falloc"
    expect_eq "qemu-img preallocation=falloc" "$(stat -c %s qf.img)" 67108864
fi

# st_blocks counts the bytes the chunks take on the servers' disks, not
# whole chunks (docs/protocol.md §4.2): 1 MiB written at 50 GiB into a
# 100 GiB file takes about 1 MiB, as on a local file system.  The figure
# follows the servers' reports (CHUNK_USAGE, §9.5), a heartbeat or so after
# the write: wait for it, then check it stays within the bounds.
du_within() { # file lo_kib hi_kib: wait until du -k is within [lo, hi]
    for _ in $(seq 150); do
        kb=$(du -k "$1" | cut -f1)
        [ "$kb" -ge "$2" ] && [ "$kb" -le "$3" ] && return 0
        sleep 0.2
    done
    return 1
}
truncate -s 100G du-sparse || fail "truncate -s 100G"
dd if=/dev/urandom of=du-sparse bs=1M count=1 seek=51200 conv=notrunc \
    status=none || fail "dd into the sparse file"
sync du-sparse
du_within du-sparse 1024 1536 ||
    fail "du of a sparse 100 GiB file with 1 MiB written: $kb KiB, want ~1024"
ok "du of a sparse 100 GiB file with 1 MiB written: $kb KiB"
expect_eq "st_blocks, 512-byte units" "$(stat -c %b du-sparse)" $((kb * 2))
if command -v qemu-img >/dev/null 2>&1; then
    qi=$(qemu-img info --output=json du-sparse |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["actual-size"])')
    expect_eq "qemu-img info: disk size" "$qi" $((kb * 1024))
fi
# More writes: 3 MiB more in the same chunk and 1 MiB in the next one.
dd if=/dev/urandom of=du-sparse bs=1M count=3 seek=51210 conv=notrunc \
    status=none || fail "dd 3 MiB more"
dd if=/dev/urandom of=du-sparse bs=1M count=1 seek=51270 conv=notrunc \
    status=none || fail "dd into the next chunk"
sync du-sparse
du_within du-sparse 5120 5760 || fail "du after 5 MiB written: $kb KiB"
ok "du grows with the writes: $kb KiB"
# cp --sparse=auto trusts st_blocks: the copy is as sparse as the source.
# (SEEK_DATA and SEEK_HOLE are test-mount-seek.sh's.)
truncate -s 256M cp-src || fail "truncate -s 256M"
dd if=/dev/urandom of=cp-src bs=1M count=1 seek=130 conv=notrunc status=none ||
    fail "dd into cp-src"
sync cp-src
du_within cp-src 1024 1536 || fail "du of cp-src: $kb KiB"
cp --sparse=auto cp-src cp-copy || fail "cp --sparse=auto"
sync cp-copy
du_within cp-copy 1024 1536 || fail "du of the sparse copy: $kb KiB"
cmp cp-src cp-copy || fail "the sparse copy differs"
ok "cp --sparse=auto keeps the holes: $kb KiB"
rm -f cp-src cp-copy
# Truncating down drops the second chunk, then cuts into the first.
truncate -s $(((51200 + 64) << 20)) du-sparse || fail "truncate to one chunk"
du_within du-sparse 4096 4608 || fail "du after dropping a chunk: $kb KiB"
ok "du shrinks when a chunk goes: $kb KiB"
truncate -s $(((51200 + 2) << 20)) du-sparse || fail "truncate into the chunk"
du_within du-sparse 1 2560 || fail "du after cutting into the chunk: $kb KiB"
ok "du shrinks when a chunk is cut: $kb KiB"
rm -f du-sparse

# A time set after writes stands: cp -p, touch -d after a write, and
# utime on a descriptor whose writes are not written back yet (the close's
# WRITE_END must not bring the write's time back).
printf 'preserved\n' >"$TMP/tm-src"
touch -d "2020-01-02 03:04:05 UTC" "$TMP/tm-src"
cp -p "$TMP/tm-src" tm-cp || fail "cp -p"
printf 'x\n' >tm-touch && touch -d "2019-05-05 00:00:00 UTC" tm-touch || fail "touch -d"
python3 -c '
import os
fd = os.open("tm-fd", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"y" * 5000)
os.utime(fd, (1000000000, 1000000000))
os.close(fd)' || fail "utime on an open descriptor"
times() { stat -c %Y tm-cp tm-touch tm-fd | paste -sd' '; }
expect_eq "times set after writes" "$(times)" "1577934245 1557014400 1000000000"
sleep 1
expect_eq "times set after writes, a second later" "$(times)" "1577934245 1557014400 1000000000"

# ---- after a remount, from the servers -------------------------------------
umount_fs
mount_fs
cd "$MNT" || fail "cd"
expect_eq "times set after writes, after remount" "$(times)" "1577934245 1557014400 1000000000"
expect_eq "cp -p data after remount" "$(cat tm-cp)" "preserved"
expect_eq "sparse size after remount" "$(stat -c %s sparse)" $(((5 << 30) + 4096))
expect_eq "sparse tail after remount" \
    "$(dd if=sparse bs=4096 skip=$(((5 << 30) / 4096)) count=1 status=none | tr -d X | wc -c)" 0
expect_eq "O_SYNC write over a delayed one, after remount" \
    "$(python3 -c 'd = open("sx", "rb").read(); print(d == b"A" * 4096 + b"B" * 4096)')" True
expect_eq "overwrite after remount" "$(sha256sum <ow | cut -d' ' -f1)" \
    "$(sha256sum <ow.expect | cut -d' ' -f1)"
t2=$(python3 -c '
import os
d = open("t2", "rb").read()
print(len(d), d[(1 << 20) + 3:] == bytes(len(d) - (1 << 20) - 3))')
expect_eq "truncated file after remount" "$t2" "$((66 << 20)) True"

# ---- one replica's server down: reads use the others -----------------------
# Crash it (SIGKILL) with the mount still connected, so its replicas are
# found dead on the first read; then again after a fresh mount.
a=$(sha256sum <"$SRC/f$((70 * 1048576))" | cut -d' ' -f1)
kill -9 "${PIDS[1]}"
wait "${PIDS[1]}" 2>/dev/null
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
b=$(sha256sum <"$MNT/f$((70 * 1048576))" | cut -d' ' -f1)
expect_eq "read with one server just crashed" "$b" "$a"
umount_fs
mount_fs
cd "$MNT" || fail "cd"
b=$(sha256sum <"$MNT/f$((70 * 1048576))" | cut -d' ' -f1)
expect_eq "read with one server down" "$b" "$a"
echo "after the crash" >"$MNT/new-after-crash" || fail "write with one server down"
expect_eq "write with one server down" "$(cat "$MNT/new-after-crash")" "after the crash"

umount_fs
ok "unmounted"
echo "all ok"
