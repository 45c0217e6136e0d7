#!/usr/bin/env bash
# test-nbd-handover.sh: one writer per image, and the live-migration
# hand-over between two tessera-nbd processes (docs/vmdisk.md).
#
# Starts tessera-metad, three tessera-chunkd and two tessera-nbd (the
# "source" and the "destination" host, each on a unix socket).  A qemu-io
# kept open on the source writes patterns without flushing; then:
#   - a second writer through the destination (nbdinfo, qemu-io) is refused
#     at NBD_OPT_GO with "image /vm1.img is open for writing by ... on ...";
#   - `tessera image handover /vm1.img` arms a hand-over; the destination
#     opens the image (standby), reads the source's bytes, and its first
#     write takes the lease: the source flushes and lets go;
#   - every byte reads back through the destination; a write through the
#     source's still-open connection now fails (EPERM), and nothing of it
#     reaches the image; the source, which had read (and cached) the bytes
#     the destination overwrote, reads the new ones, before and after it
#     writes the image again.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, qemu-io, nbdinfo.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera qemu-io nbdinfo

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
T() { "$TS_BIN/tessera" --meta "$TS_META_ADDR" "$@"; }
T image create /vm1.img 256M >/dev/null || it_fail "image create"

start_nbd() { # start_nbd NAME SOCKET
    setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --unix "$2" \
        >>"$TS_DIR/logs/$1.log" 2>&1 &
    ts_record "$1" $!
    for _ in $(seq 100); do [ -S "$2" ] && return 0; sleep 0.1; done
    tail -5 "$TS_DIR/logs/$1.log" >&2
    return 1
}
S1=$IT_TMP/src.sock
S2=$IT_TMP/dst.sock
start_nbd nbd-src "$S1" || it_fail "source tessera-nbd did not start"
start_nbd nbd-dst "$S2" || it_fail "destination tessera-nbd did not start"
src="nbd+unix:///vm1.img?socket=$S1"
dst="nbd+unix:///vm1.img?socket=$S2"

# The source's guest: one qemu-io kept open, fed through a fifo.
mkfifo "$IT_TMP/src.in"
qemu-io -f raw "$src" <"$IT_TMP/src.in" >"$IT_TMP/src.out" 2>&1 &
qpid=$!
exec 3>"$IT_TMP/src.in"
src_cmd() { # src_cmd CMD WANT: run CMD in the source's qemu-io, wait for WANT
    local n
    n=$(grep -c "$2" "$IT_TMP/src.out" 2>/dev/null)
    echo "$1" >&3
    for _ in $(seq 100); do
        [ "$(grep -c "$2" "$IT_TMP/src.out" 2>/dev/null)" -gt "${n:-0}" ] && return 0
        sleep 0.1
    done
    cat "$IT_TMP/src.out" >&2
    return 1
}
src_cmd "write -P 0xa1 0 1M" "wrote 1048576" || it_fail "source write 1"
src_cmd "write -P 0xa2 100M 2M" "wrote 2097152" || it_fail "source write 2"
src_cmd "write -P 0xa3 255M 1M" "wrote 1048576" || it_fail "source write 3"
# Read before the hand-over: the source's block cache now holds these
# zeros, which the destination overwrites below.
src_cmd "read -P 0 1M 64k" "read 65536" || it_fail "source read before the hand-over"
it_ok "source writes through its open connection (not flushed)"

# ---- A second writer that is not a hand-over is refused -----------------------
# libnbd shows the server's sentence in its debug output only.
out=$(LIBNBD_DEBUG=1 nbdinfo "$dst" 2>&1) && it_fail "nbdinfo opened an image that is being written: $out"
grep -q "image /vm1.img is open for writing by tessera-nbd .* on " <<<"$out" ||
    it_fail "nbdinfo did not show the holder: $out"
it_ok "nbdinfo refused: $(grep -o 'image /vm1.img is open.*' <<<"$out" | head -1)"
out=$(qemu-io -f raw -c "write -P 0xee 0 4k" "$dst" 2>&1)
grep -q "is open for writing by" <<<"$out" || it_fail "qemu-io second writer: $out"
grep -q "export .* refused: image /vm1.img is open for writing" "$TS_DIR/logs/nbd-dst.log" ||
    it_fail "the destination did not log the refusal"
it_ok "a second writer (qemu-io) is refused with the holder's name, and it is logged"

# ---- Hand-over -----------------------------------------------------------------
out=$(T image handover /vm1.img) || it_fail "image handover: $out"
grep -q "written now by tessera-nbd" <<<"$out" || it_fail "handover output: $out"
it_ok "tessera image handover: $out"
qemu-io -f raw -c "read -P 0xa1 0 1M" -c "write -P 0xb1 1M 1M" -c "read -P 0xa2 100M 2M" \
    -c "read -P 0xa3 255M 1M" -c "flush" "$dst" >"$IT_TMP/dst.out" 2>&1 ||
    { cat "$IT_TMP/dst.out"; it_fail "destination qemu-io"; }
grep -qiE "fail|error|mismatch" "$IT_TMP/dst.out" && { cat "$IT_TMP/dst.out"; it_fail "destination I/O"; }
grep -q "recalled for a hand-over" "$TS_DIR/logs/nbd-src.log" || it_fail "source was not recalled"
grep -q "hand-over done" "$TS_DIR/logs/nbd-dst.log" || it_fail "destination did not take over"
it_ok "hand-over at the destination's first write: the source flushed and let go"

# ---- The source may not write any more ----------------------------------------
src_cmd "write -P 0xc1 4M 1M" "write failed" || it_fail "source write after the hand-over"
grep -q "Operation not permitted" "$IT_TMP/src.out" || { cat "$IT_TMP/src.out"; it_fail "source error"; }
src_cmd "read -P 0xb1 1M 64k" "read 65536" || it_fail "source read after the hand-over"
src_cmd "read -P 0xb1 1M 1M" "read 1048576" || it_fail "source read after the hand-over"
grep -q "Pattern verification failed" "$IT_TMP/src.out" &&
    { cat "$IT_TMP/src.out"; it_fail "the source read stale bytes after the hand-over"; }
it_ok "the source's writes are refused with EPERM after the hand-over (reads still work)"
echo "quit" >&3
exec 3>&-
wait "$qpid" 2>/dev/null

# ---- Every byte through the destination ----------------------------------------
qemu-io -f raw -c "read -P 0xa1 0 1M" -c "read -P 0xb1 1M 1M" -c "read -P 0 2M 98M" \
    -c "read -P 0xa2 100M 2M" -c "read -P 0 102M 153M" -c "read -P 0xa3 255M 1M" \
    "$dst" >"$IT_TMP/all.out" 2>&1 || { cat "$IT_TMP/all.out"; it_fail "final read"; }
grep -qiE "fail|error|mismatch" "$IT_TMP/all.out" && { cat "$IT_TMP/all.out"; it_fail "final read"; }
it_ok "every byte reads back through the destination; the refused write left no trace"

# ---- Without an armed hand-over, the image is free once closed -----------------
qemu-io -f raw -c "write -P 0xd1 8M 1M" -c "read -P 0xb1 1M 1M" "$src" \
    >"$IT_TMP/again.out" 2>&1 ||
    { cat "$IT_TMP/again.out"; it_fail "the source could not reopen the free image"; }
grep -qiE "fail|error|mismatch" "$IT_TMP/again.out" &&
    { cat "$IT_TMP/again.out"; it_fail "the source reads what it cached before the hand-over"; }
it_ok "a closed image can be opened for writing again, and the source reads the destination's bytes"
echo "PASS"
