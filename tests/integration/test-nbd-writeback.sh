#!/usr/bin/env bash
# test-nbd-writeback.sh: tessera-nbd --cache writeback keeps NBD semantics.
#
# Starts tessera-metad, three tessera-chunkd and tessera-nbd with a
# write-back cache whose age limit is long (10 min), so nothing leaves the
# cache unless something asks for it.  One qemu-io process holds a goal-3
# image open for the whole test, as a running guest would, and:
#   1. writes without FUA or FLUSH: reads through it see the bytes, and no
#      chunk exists yet on any server (the write is in memory only);
#   2. a snapshot then holds those bytes (metad recalls them from the NBD
#      writer first), and so does a clone made after further unflushed
#      writes;
#   3. a FUA write reaches the servers at once; a FLUSH makes every write
#      before it durable: after kill -9 of tessera-nbd and a new one, all
#      flushed bytes read back;
#   4. fio writes and verifies random blocks (16 in flight) through the
#      cache;
#   5. the default, --cache auto: before an image's first FLUSH a write is
#      on the servers when it is acknowledged (it survives kill -9 of
#      tessera-nbd); after it, writes wait in memory as in write-back.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, qemu-io, fio with
# the nbd engine, python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera qemu-io fio python3
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "skip: fio has no nbd engine"; exit 77; }

T="$TS_BIN/tessera"
SOCK=$IT_TMP/nbd.sock
ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
NBD_ARGS=(--unix "$SOCK" --cache writeback --cache-max-dirty-age 600000)
ts_start_nbd "${NBD_ARGS[@]}" || it_fail "tessera-nbd did not start"
"$T" image create /wb.img 64M >/dev/null || it_fail "image create"
uri() { echo "nbd+unix:///$1?socket=$SOCK"; }

# Chunk files on the servers' disks (asking metad would recall the
# cache: a GETATTR by another session does).
nchunkfiles() {
    find "$TS_DIR"/chunk*/chunks -type f ! -name '*.crc' 2>/dev/null | wc -l
}

# The held qemu-io (-t writeback: no FUA unless asked): commands go in
# through a fifo; io CMD runs one and waits for its answer line.
hold=$IT_TMP/hold
mkfifo "$hold"
qemu-io -f raw -t writeback "$(uri wb.img)" <"$hold" >"$IT_TMP/qemu-io.out" 2>&1 &
qpid=$!
exec 5>"$hold"
io() {
    local before want
    before=$(wc -l <"$IT_TMP/qemu-io.out")
    echo "$1" >&5
    for _ in $(seq 300); do
        want=$(tail -n +"$((before + 1))" "$IT_TMP/qemu-io.out" |
            sed 's/^\(qemu-io> \)*//' |
            grep -E "^(wrote|read|Pattern|.*(failed|error|Error))" | head -1)
        [ -n "$want" ] && { echo "$want"; return 0; }
        kill -0 "$qpid" 2>/dev/null || it_fail "qemu-io ended: $(tail -5 "$IT_TMP/qemu-io.out")"
        sleep 0.1
    done
    it_fail "qemu-io: no answer to '$1'"
}
# check URI PATTERN OFFSET LENGTH: a fresh read-only reader sees PATTERN.
check() {
    qemu-io -f raw -r -c "read -P $2 $3 $4" "$1" >"$IT_TMP/check.out" 2>&1 &&
        ! grep -q "Pattern verification failed" "$IT_TMP/check.out"
}

# ---- 1. unflushed writes stay in tessera-nbd --------------------------------
io "write -P 0x5a 0 1M" | grep -q "^wrote" || it_fail "first write"
io "read -P 0x5a 0 1M" | grep -q "^read" || it_fail "reading our own write: $(tail -3 "$IT_TMP/qemu-io.out")"
grep -q "Pattern verification failed" "$IT_TMP/qemu-io.out" && it_fail "our own write read back wrong"
it_expect_eq "no chunk on the servers' disks before FLUSH" "$(nchunkfiles)" 0

# ---- 2. snapshot and clone see them ---------------------------------------------
"$T" snapshot /wb.img /wb.snap >/dev/null || it_fail "snapshot"
check "$(uri wb.snap)" 0x5a 0 1M || it_fail "the snapshot misses unflushed writes: $(cat "$IT_TMP/check.out")"
it_ok "a snapshot holds the writes acknowledged before it (recalled from the cache)"
io "write -P 0x33 2M 64k" | grep -q "^wrote" || it_fail "write before the clone"
"$T" clone /wb.img /wb2.img >/dev/null || it_fail "clone"
check "$(uri wb2.img)" 0x33 2M 64k || it_fail "the clone misses unflushed writes: $(cat "$IT_TMP/check.out")"
it_ok "a clone holds the writes acknowledged before it"

# ---- 3. FUA and FLUSH are durable ------------------------------------------------
io "write -f -P 0x77 8M 4k" | grep -q "^wrote" || it_fail "FUA write"
io "write -P 0xa5 16M 1M" | grep -q "^wrote" || it_fail "write before FLUSH"
echo "flush" >&5
io "read -P 0xa5 16M 4k" >/dev/null # after the flush in the same stream
ts_kill nbd KILL
# Read-only: the killed process's session holds the image's writer lease
# until it expires.
ts_start_nbd "${NBD_ARGS[@]}" --readonly || it_fail "tessera-nbd did not restart"
check "$(uri wb.img)" 0x77 8M 4k || it_fail "a FUA write was lost: $(cat "$IT_TMP/check.out")"
check "$(uri wb.img)" 0xa5 16M 1M || it_fail "a flushed write was lost: $(cat "$IT_TMP/check.out")"
check "$(uri wb.img)" 0x5a 0 1M || it_fail "a write recalled by the snapshot was lost"
it_ok "after kill -9 of tessera-nbd: FUA and flushed writes are all there"
exec 5>&-
kill "$qpid" 2>/dev/null # it lost its server above and may be retrying
wait "$qpid" 2>/dev/null || true

# ---- 4. a verified random workload through the cache -------------------------------
ts_kill nbd TERM
ts_start_nbd "${NBD_ARGS[@]}" || it_fail "tessera-nbd did not restart"
cd "$IT_TMP" || it_fail "cd"
"$T" image create /wbf.img 64M >/dev/null || it_fail "image create"
fio --name=wbverify --ioengine=nbd --uri="$(uri wbf.img)" --size=32M --bs=4k \
    --rw=randwrite --iodepth=16 --verify=crc32c --verify_fatal=1 \
    --output="$IT_TMP/fio.out" || it_fail "fio: $(tail -20 "$IT_TMP/fio.out")"
it_ok "fio: 32 MiB of random 4 KiB writes read back and verified"

# ---- 5. auto (the default): write-through until the image's first FLUSH -----------
ts_kill nbd TERM
AUTO_ARGS=(--unix "$SOCK" --cache-max-dirty-age 600000) # no --cache: auto
ts_start_nbd "${AUTO_ARGS[@]}" || it_fail "tessera-nbd did not restart"
# hold_open IMAGE: a new held qemu-io on IMAGE behind io().
hold_open() {
    rm -f "$hold"
    mkfifo "$hold"
    qemu-io -f raw -t writeback "$(uri "$1")" <"$hold" >>"$IT_TMP/qemu-io.out" 2>&1 &
    qpid=$!
    exec 5>"$hold"
}
hold_close() {
    exec 5>&-
    kill "$qpid" 2>/dev/null
    wait "$qpid" 2>/dev/null || true
}
"$T" image create /auto.img 128M >/dev/null || it_fail "image create"
hold_open auto.img
io "write -P 0x21 0 1M" | grep -q "^wrote" || it_fail "auto: first write"
ts_kill nbd KILL
ts_start_nbd "${AUTO_ARGS[@]}" --readonly || it_fail "tessera-nbd did not restart"
check "$(uri auto.img)" 0x21 0 1M ||
    it_fail "auto: a write acknowledged before any FLUSH was lost: $(cat "$IT_TMP/check.out")"
it_ok "auto: before the first FLUSH a write survives kill -9 of tessera-nbd"
hold_close
ts_kill nbd TERM
ts_start_nbd "${AUTO_ARGS[@]}" || it_fail "tessera-nbd did not restart"
"$T" image create /auto2.img 128M >/dev/null || it_fail "image create"
hold_open auto2.img
io "write -P 0x31 0 64k" | grep -q "^wrote" || it_fail "auto: write before FLUSH"
echo "flush" >&5
io "read -P 0x31 0 4k" >/dev/null
# on_disk BYTE: some chunk file on a server starts with a 4 KiB block of
# BYTE (the servers' disks, not metad: asking metad would recall the
# cache).
on_disk() {
    python3 - "$1" "$TS_DIR" <<'PY'
import glob, sys
want = bytes([int(sys.argv[1], 16)]) * 4096
for f in glob.glob(sys.argv[2] + "/chunk*/chunks/*/*"):
    if f.endswith((".crc", ".wmap")):
        continue
    with open(f, "rb") as fh:
        if fh.read(4096) == want:
            sys.exit(0)
sys.exit(1)
PY
}
io "write -P 0x32 64M 1M" | grep -q "^wrote" || it_fail "auto: write after FLUSH"
on_disk 0x32 && it_fail "auto: a write after the first FLUSH went to the servers at once"
it_ok "auto: after the first FLUSH a write waits in memory"
echo "flush" >&5
io "read -P 0x32 64M 4k" >/dev/null
on_disk 0x32 || it_fail "auto: the FLUSH did not write it to the servers"
it_ok "auto: the next FLUSH writes it"
hold_close
