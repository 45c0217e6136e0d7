#!/usr/bin/env bash
# test-clone-cow.sh: copy-on-write costs one block, not a chunk
# (docs/vmdisk.md, "Copy-on-write, per block"), with real daemons over NBD.
#
# Starts tessera-metad, three tessera-chunkd and tessera-nbd on loopback,
# then:
#   1. a 64 MiB image at goal 3 (one chunk) written whole with random
#      data, snapshotted, the snapshot cloned;
#   2. one 4 KiB write into the clone: the servers' data folders (du) grow
#      by far less than the 64 MiB a chunk copy would cost on each replica
#      (< 1 MiB over all three, where the file system cannot reflink);
#   3. the origin written too (it shares its chunk with the snapshot, so
#      it gets a copy of its own): again < 1 MiB;
#   4. the clone, the snapshot and the origin read byte for byte as
#      expected (sha256 over NBD);
#   5. every chunkd killed with SIGKILL and started again: the three still
#      read as expected, and a second 4 KiB write into the clone at a new
#      place reads back with the rest;
#   6. a fourth chunkd started and the first killed: repair copies the
#      overlays (from what they read through to) to the new one; with two
#      more of the old ones stopped, the three images read as expected
#      from the copies repair made alone.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, nbdcopy, qemu-io,
# sha256sum, du.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera nbdcopy qemu-io \
    sha256sum du

T="$TS_BIN/tessera"
MIB=$((1 << 20))
W=$IT_TMP/want # W/NAME: what image /NAME must hold
mkdir "$W"

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
ts_start_nbd || it_fail "tessera-nbd did not start"

nbd_url() { echo "nbd://$TS_NBD_ADDR/$1"; }
chunk_kb() { du -sk "$TS_DIR"/chunk{1,2,3}/chunks | awk '{s += $1} END {print s}'; }

# nbd_patch NAME OFF LEN: the same random bytes into image NAME (over NBD,
# with qemu-io) and into W/NAME.
nbd_patch() { it_nbd_patch "$(nbd_url "$1")" "$W/$1" "$2" "$3"; }

check() { # check NAME...: each image reads as W/NAME over NBD
    local n
    for n in "$@"; do
        it_expect_eq "$n reads as expected" \
            "$(nbdcopy "$(nbd_url "$n")" - | it_sha256)" "$(it_sha256 <"$W/$n")"
    done
}

# grew_less KB_BEFORE LIMIT_KB WHAT: the data folders grew by < LIMIT_KB.
grew_less() {
    local after
    sync
    after=$(chunk_kb)
    [ $((after - $1)) -lt "$2" ] ||
        it_fail "$3: the data folders grew by $((after - $1)) KiB (limit $2 KiB)"
    it_ok "$3: the data folders grew by $((after - $1)) KiB"
}

# ---- 1. a fully written chunk, snapshotted and cloned --------------------
head -c $((64 * MIB)) /dev/urandom >"$W/t.img"
"$T" image create /t.img $((64 * MIB)) >/dev/null || it_fail "image create"
"$T" setgoal 3 /t.img >/dev/null || it_fail "setgoal"
nbdcopy "$W/t.img" "$(nbd_url t.img)" || it_fail "nbdcopy into t.img"
"$T" snapshot /t.img /t.snap >/dev/null || it_fail "snapshot"
cp "$W/t.img" "$W/t.snap"
"$T" clone /t.snap /c.img >/dev/null || it_fail "clone"
cp "$W/t.snap" "$W/c.img"

# ---- 2 and 3. one block written into each sharer -------------------------
sync
kb=$(chunk_kb)
nbd_patch c.img $((5 * MIB)) 4096
grew_less "$kb" 1024 "a 4 KiB write into the clone"
kb=$(chunk_kb)
nbd_patch t.img $((9 * MIB + 4096)) 4096
grew_less "$kb" 1024 "a 4 KiB write into the origin"

# ---- 4. every image as expected --------------------------------------------
check c.img t.snap t.img

# ---- 5. the servers killed and started again -------------------------------
for i in 1 2 3; do ts_kill "chunkd$i" KILL; done
for i in 1 2 3; do
    ts_forget "chunkd$i"
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start again"
done
ts_wait_servers 3 15 || it_fail "storage servers did not come back"
check c.img t.snap t.img
nbd_patch c.img $((40 * MIB + 100)) 5000
check c.img t.snap

# ---- 6. repair copies an overlay whole ----------------------------------
all_at_goal() {
    local n
    for n in c.img t.img t.snap; do "$T" checkfile "/$n" >/dev/null 2>&1 || return 1; done
}
ts_start_chunkd 4 || it_fail "chunkd 4 did not start"
ts_kill chunkd1 KILL
for ((i = 0; i < 900; i++)); do all_at_goal && break; sleep 0.1; done
all_at_goal || { "$T" status; it_fail "goal not restored within 90 s"; }
it_ok "goal restored on servers 2, 3 and 4"
ts_kill chunkd2 TERM
ts_kill chunkd3 TERM
check c.img t.snap t.img
