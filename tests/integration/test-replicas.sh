#!/usr/bin/env bash
# Replicas on disk: after files of many sizes are written through the mount
# and fsynced, every chunk's copies on the three storage servers are
# byte-identical (data and checksums), also after overlapping writes with
# many in flight over NBD.  Then one block of one copy is
# corrupted on disk: reads through a fresh mount still return the right
# bytes (the read fails over to a good copy).
. "$(dirname "$0")/lib.sh"
it_need python3 sha256sum cmp fio
MOUNT_ARGS="-o cache=writethrough"
. "$(dirname "$0")/lib-data.sh"

src=$IT_TMP/src
mkdir -p "$src"
# Sizes around block and chunk edges, and one file spanning two chunks.
for n in 1 4095 4096 4097 65537 1048583 70000000; do
    head -c "$n" /dev/urandom >"$src/f$n"
    cp "$src/f$n" "$TS_MNT/f$n"
done
sync -f "$TS_MNT" 2>/dev/null
for n in 1 4095 4096 4097 65537 1048583 70000000; do
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$TS_MNT/f$n"
done
it_ok "7 files written and fsynced"

# chunk_ids FILE: the chunk ids (16 hex digits) of a file, one per line.
chunk_ids() {
    "$TS_BIN/tessera" --meta "$TS_META_ADDR" --json fileinfo "$1" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["chunks"]:
    if c["id"] != "0000000000000000":
        print(c["id"])'
}
# copies ID: the data files of chunk ID on the servers, one per line.
copies() {
    local i
    for i in 1 2 3; do
        f=$TS_DIR/chunk$i/chunks/${1: -2}/$1
        [ -f "$f" ] && echo "$f"
    done
}

# same_copies ID FILE: chunk ID of FILE has three byte-identical copies,
# data and checksums.
same_copies() {
    local f files
    mapfile -t files < <(copies "$1")
    [ "${#files[@]}" -eq 3 ] || it_fail "chunk $1 of $2 has ${#files[@]} copies, want 3"
    for f in "${files[@]:1}"; do
        cmp -s "${files[0]}" "$f" || it_fail "chunk $1 of $2: data differs: ${files[0]} $f"
        cmp -s "${files[0]}.crc" "$f.crc" || it_fail "chunk $1 of $2: checksums differ: $f.crc"
    done
}

checked=0
for n in 1 4095 4096 4097 65537 1048583 70000000; do
    ids=$(chunk_ids "/f$n") || it_fail "fileinfo /f$n"
    [ -n "$ids" ] || it_fail "/f$n has no chunks"
    for id in $ids; do
        same_copies "$id" "/f$n"
        checked=$((checked + 1))
    done
done
it_ok "$checked chunks: the three copies are byte-identical"

# Overlapping writes at once over one small region of an NBD image, 4 KiB
# and unaligned 1.5 KiB ones, from 4 connections with 16 in flight each:
# each goes straight to every replica (--direct-write-max), never two
# over the same bytes together, so the copies still agree, block checksums
# included.
SOCK=$IT_TMP/nbd.sock
ts_start_nbd --unix "$SOCK" --cache none --direct-write-max 128 ||
    it_fail "tessera-nbd did not start"
for bs in 4k 1536; do
    "$TS_BIN/tessera" image create "/ovl$bs.img" 1M >/dev/null || it_fail "image create"
    fio --name=ovl --ioengine=nbd --uri="nbd+unix:///ovl$bs.img?socket=$SOCK" \
        --size=256k --bs=$bs --blockalign=512 --rw=randwrite --norandommap \
        --iodepth=16 --numjobs=4 --refill_buffers=1 --runtime=3 --time_based \
        --end_fsync=1 \
        >"$IT_TMP/fio-ovl$bs.log" 2>&1 || it_fail "fio ovl$bs: $(tail -3 "$IT_TMP/fio-ovl$bs.log")"
    same_copies "$(chunk_ids "/ovl$bs.img")" "/ovl$bs.img"
    it_ok "overlapping $bs writes, 4 connections x 16 in flight: the three copies are byte-identical"
done

# Corrupt one block in one copy of three different files' first chunks: the
# first copy of one, the second of the next, the third of the last, so the
# copy a client reads first is hit in one of them whatever the order.  Each
# is read through a fresh mount (no client cache).  A corrupt copy is
# reported and replaced behind the scenes; nothing is put back by hand.
round=0
for n in 65537 1048583 70000000; do
    round=$((round + 1))
    id=$(chunk_ids "/f$n" | head -n 1)
    mapfile -t files < <(copies "$id")
    f=${files[$((round - 1))]}
    python3 - "$f" $((4096 * 7 + 100)) <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as fh:
    fh.seek(off)
    b = fh.read(1)[0]
    fh.seek(off)
    fh.write(bytes([b ^ 0xff]))
PY
    mnt=$IT_TMP/m$round
    ts_start_mount "$mnt" || it_fail "mount $round did not start"
    want=$(it_sha256 <"$src/f$n")
    got=$(it_sha256 <"$mnt/f$n")
    [ "$got" = "$want" ] || it_fail "/f$n read with a corrupt copy ($f) returned wrong data"
    it_ok "/f$n: corrupt block in copy $round of its first chunk; reads back right"
    fusermount3 -u "$mnt"
done
