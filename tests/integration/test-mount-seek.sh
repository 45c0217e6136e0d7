#!/usr/bin/env bash
# test-mount-seek.sh: lseek(2) SEEK_DATA and SEEK_HOLE in the mount
# (docs/caching.md, "Holes: SEEK_DATA and SEEK_HOLE"), at chunk slot
# granularity (64 MiB).
#   1. A 1 GiB sparse file with 1 MiB written at 0 and at 512 MiB, in the
#      default (writeback) mount: the answers python's os.lseek gets,
#      lseek(2)'s rules included (an offset inside a run of the kind
#      asked is the answer, data at or past the end is ENXIO, the end is
#      the last hole).
#   2. cp --sparse=always makes an identical copy (extents, sha256) that
#      stays sparse (du).
#   3. Delayed writes count as data: a write into a hole, not yet written
#      back (the file still open, no fsync), is data to SEEK_DATA.
#   4. A write-through mount sees the same file, and a file ending in data
#      has its hole at the end of the file.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, python3, cp, du; exits
# 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need fusermount3 mountpoint python3 du cp
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
M=1048576
S=$((64 * M)) # PROTO_CHUNK_SIZE

# seeks FILE [WHENCE OFFSET WANT]...: os.lseek answers, WANT a number or
# ENXIO.  Prints the first mismatch and fails.
seeks() {
    python3 - "$@" <<'EOF' || it_fail "lseek answers of $1"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
args = sys.argv[2:]
for i in range(0, len(args), 3):
    whence = {"DATA": os.SEEK_DATA, "HOLE": os.SEEK_HOLE}[args[i]]
    off, want = int(args[i + 1]), args[i + 2]
    try:
        got = str(os.lseek(fd, off, whence))
    except OSError as e:
        got = errno.errorcode[e.errno]
    if got != want:
        sys.exit(f"SEEK_{args[i]} {off}: got {got}, want {want}")
EOF
}

# 1. The default mount (writeback): sparse file, writes closed (written
# back at close).
# The same file is made on local disk, to check the copy against.
F=$TS_MNT/sparse.img
WANT=$IT_TMP/want.img
head -c $M /dev/urandom >"$IT_TMP/a.bin"
head -c $M /dev/urandom >"$IT_TMP/b.bin"
for f in "$F" "$WANT"; do
    truncate -s 1G "$f" || it_fail "truncate $f"
    dd if="$IT_TMP/a.bin" of="$f" bs=1M conv=notrunc status=none ||
        it_fail "dd at 0 into $f"
    dd if="$IT_TMP/b.bin" of="$f" bs=1M seek=512 conv=notrunc status=none ||
        it_fail "dd at 512 MiB into $f"
done
it_ok "sparse file written"
seeks "$F" \
    DATA 0 0 \
    DATA $((5 * M)) $((5 * M)) \
    HOLE 0 $S \
    HOLE $((S - 1)) $S \
    DATA $S $((512 * M)) \
    DATA $((100 * M)) $((512 * M)) \
    HOLE $((100 * M)) $((100 * M)) \
    HOLE $((512 * M)) $((512 * M + S)) \
    DATA $((512 * M + S)) ENXIO \
    HOLE $((600 * M)) $((600 * M)) \
    DATA $((1024 * M - 1)) ENXIO \
    DATA $((1024 * M)) ENXIO \
    HOLE $((1024 * M)) ENXIO \
    HOLE $((5000 * M)) ENXIO
it_ok "SEEK_DATA and SEEK_HOLE of a 1 GiB file with data at 0 and 512 MiB"

# 2. A sparse copy: identical bytes, holes kept.  The copy and the file
# made locally (both on a local file system, whose SEEK_DATA is exact)
# are compared by their data: same size, same extents, the same sha256 of
# each, so equal without hashing 1 GiB of zeros twice.
cp --sparse=always "$F" "$IT_TMP/copy.img" || it_fail "cp --sparse=always"
python3 - "$IT_TMP/copy.img" "$WANT" <<'PY' || it_fail "the copy differs"
import hashlib, os, sys

def extents(path):
    fd, out, off = os.open(path, os.O_RDONLY), [], 0
    size = os.fstat(fd).st_size
    while off < size:
        try:
            off = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, off, os.SEEK_HOLE)
        data = os.pread(fd, end - off, off)
        out.append((off, end, hashlib.sha256(data).hexdigest()))
        off = end
    return size, out

got, want = extents(sys.argv[1]), extents(sys.argv[2])
if got != want or len(got[1]) != 2:
    sys.exit(f"copy {got} != file {want}")
PY
it_ok "the copy's extents and their sha256 are the file's"
kb=$(du -k "$IT_TMP/copy.img" | cut -f1)
[ "$kb" -le 8192 ] || it_fail "sparse copy takes $kb KiB, want at most 8 MiB"
it_ok "cp --sparse=always copy stays sparse ($kb KiB of 1 GiB)"

# 3. A delayed write into a hole is data before it is written back.
python3 - "$F" $((768 * M)) <<'EOF' || it_fail "delayed write as data"
import os, sys
path, off = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR)
os.pwrite(fd, b"\x5a" * 65536, off + 4096)
got = os.lseek(fd, off - (64 << 20), os.SEEK_DATA)
if got != off:
    sys.exit(f"SEEK_DATA before the delayed write: got {got}, want {off}")
got = os.lseek(fd, off, os.SEEK_HOLE)
if got != off + (64 << 20):
    sys.exit(f"SEEK_HOLE at the delayed write: got {got}")
os.close(fd)
EOF
it_ok "a delayed write not yet written back is data"

# 4. Another mount, write-through: the same answers after the close, and a
# file whose last slot holds data ends in the hole at its end.
W=$IT_TMP/mnt-wt
ts_start_mount "$W" -o cache=writethrough || it_fail "write-through mount"
seeks "$W/sparse.img" \
    DATA $S $((512 * M)) \
    DATA $((600 * M)) $((768 * M)) \
    HOLE $((768 * M)) $((768 * M + S)) \
    DATA $((832 * M)) ENXIO
G=$W/tail.img
truncate -s $((100 * M)) "$G" || it_fail "truncate tail.img"
dd if=/dev/urandom of="$G" bs=1M count=1 seek=90 conv=notrunc status=none ||
    it_fail "dd into tail.img"
seeks "$G" \
    DATA 0 $S \
    HOLE $S $((100 * M)) \
    HOLE $((99 * M)) $((100 * M)) \
    DATA $((100 * M)) ENXIO
it_ok "write-through mount: the same answers; the end is the last hole"

# 5. A file just written shows blocks at once (a chunk counts whole until
# its server reports it), so tar --sparse, which takes 0 blocks for holes
# alone, archives its data (docs/protocol.md §4.2 "blocks").
if command -v tar >/dev/null; then
    T=$TS_MNT/tar.img
    truncate -s $((400 * M)) "$T" || it_fail "truncate tar.img"
    dd if=/dev/urandom of="$T" bs=1M count=1 seek=300 conv=notrunc status=none ||
        it_fail "dd into tar.img"
    [ "$(stat -c %b "$T")" -gt 0 ] || it_fail "tar.img shows 0 blocks right after its write"
    (cd "$TS_MNT" && tar --sparse -cf "$IT_TMP/tar.tar" tar.img) || it_fail "tar --sparse"
    mkdir "$IT_TMP/untar" && tar -xf "$IT_TMP/tar.tar" -C "$IT_TMP/untar" || it_fail "untar"
    it_expect_eq "tar --sparse of a file just written: the data is in the archive" \
        "$(sha256sum <"$IT_TMP/untar/tar.img")" "$(sha256sum <"$T")"
fi
