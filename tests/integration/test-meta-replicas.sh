#!/usr/bin/env bash
# test-meta-replicas.sh: three tessera-metad replicas on a Raft log
# (docs/architecture.md, "The replicated log"; docs/protocol.md §5.3).
#
# Starts three metad replicas (snapshots every 32 records), two chunkd, a
# FUSE mount and tessera-nbd, every client given the three addresses.
#   1. While the mount creates files (each written and fsynced), a
#      second mount writes files under temporary names and renames them
#      (the directory fsynced after each rename) and the NBD export
#      writes and flushes blocks of an image, the leader is killed with
#      -9: another replica leads within 5 s (the time is printed), the
#      three workloads go on, and every file, renamed name and block they
#      were told was done is there afterwards, read back through the
#      first mount and the export.
#   2. The killed replica comes back and catches up.
#   3. A follower is killed, its folder wiped, and it starts again empty
#      without --bootstrap: it is sent a snapshot and applies the rest, so
#      its database holds the files.
#   4. Two of three killed: the survivor refuses a mutation with a clear
#      error.
#   5. The survivor stops on SIGTERM.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, qemu-io,
# sqlite3, python3; exits 77 when one is missing.
export META=3
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera \
    qemu-io sqlite3 python3

T="$TS_BIN/tessera"
SOCK=$IT_TMP/nbd.sock
ts_start_metad --snapshot-every 32 || it_fail "the metad group did not start"
for i in 1 2; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 20 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"
ts_start_nbd --unix "$SOCK" --cache none || it_fail "tessera-nbd did not start"
"$T" image create /disk.img 64M >/dev/null || it_fail "image create"
URI="nbd+unix:///disk.img?socket=$SOCK"
mkdir -p "$TS_MNT/w" || it_fail "mkdir through the mount"
mkdir -p "$B/r" || it_fail "mkdir through the second mount"
"$T" meta status || it_fail "meta status"
it_ok "three replicas, leader $(ts_meta_leader)"

# restart_replica I: start replica I again (its --bootstrap only when
# its folder is empty).
restart_replica() {
    ts_forget "$(ts_meta_name "$1")"
    ts_start_meta_replica "$1" --snapshot-every 32 || it_fail "replica $1 did not start"
}

# wait_applied I: wait until replica I's database has applied what the
# leader has committed now; sets $applied.
wait_applied() { it_meta_applied "$1" "$(it_json "j['commit']" meta status)"; }

# ---- 1. kill -9 of the leader under two workloads ---------------------------
# The mount: create, write, fsync, close; a name is listed once all of that
# returned.  The export: a 64 KiB block of pattern k at k * 64 KiB, flushed.
files_loop() {
    local n=0
    while [ ! -f "$IT_TMP/stop" ]; do
        n=$((n + 1))
        python3 - "$TS_MNT/w/f$n" "$n" <<'EOF' 2>>"$IT_TMP/files.err" &&
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, ("file %s\n" % sys.argv[2]).encode() * 100)
os.fsync(fd)
os.close(fd)
EOF
            echo "$n" >>"$IT_TMP/files.acked"
    done
}
# The second mount: write a file under a temporary name, fsync, rename
# it, fsync the directory; the number is listed once all of that returned.
renames_loop() {
    local n=0
    while [ ! -f "$IT_TMP/stop" ]; do
        n=$((n + 1))
        python3 - "$B/r" "$n" <<'EOF' 2>>"$IT_TMP/renames.err" &&
import os, sys
d, n = sys.argv[1], sys.argv[2]
tmp = os.path.join(d, "tmp%s" % n)
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, ("renamed %s\n" % n).encode() * 50)
os.fsync(fd)
os.close(fd)
os.rename(tmp, os.path.join(d, "r%s" % n))
dfd = os.open(d, os.O_RDONLY)
os.fsync(dfd)
os.close(dfd)
EOF
            echo "$n" >>"$IT_TMP/renames.acked"
    done
}
blocks_loop() {
    local k=0
    while [ ! -f "$IT_TMP/stop" ] && [ "$k" -lt 1000 ]; do
        k=$((k + 1))
        qemu-io -f raw -c "write -P $((k % 250 + 1)) $((k * 65536)) 65536" \
            -c flush "$URI" >>"$IT_TMP/blocks.out" 2>&1 &&
            echo "$k" >>"$IT_TMP/blocks.acked"
    done
}
: >"$IT_TMP/files.acked"
: >"$IT_TMP/blocks.acked"
: >"$IT_TMP/renames.acked"
files_loop &
fpid=$!
it_bg "$fpid"
renames_loop &
rpid=$!
it_bg "$rpid"
blocks_loop &
bpid=$!
it_bg "$bpid"
sleep 3
old=$(ts_meta_leader)
[ -n "$old" ] || it_fail "no leader before the kill"
before_files=$(wc -l <"$IT_TMP/files.acked")
before_blocks=$(wc -l <"$IT_TMP/blocks.acked")
before_renames=$(wc -l <"$IT_TMP/renames.acked")
t0=$(date +%s.%N)
ts_kill "$(ts_meta_name "$old")" KILL
it_meta_new_leader "$old"
# The new leader's own log says when it started to lead.
led=$(grep "meta raft: leading: id=$new " "$TS_DIR/logs/$(ts_meta_name "$new").log" |
    tail -1 | cut -d' ' -f1)
took=$(python3 -c "import datetime as d
print(round(d.datetime.fromisoformat('$led'.replace('Z', '+00:00')).timestamp() - $t0, 2))")
echo "failover: replica $new leads $took s after kill -9 of leader $old"
python3 -c "import sys; sys.exit(0 if $took < 5 else 1)" ||
    it_fail "replica $new led only $took s after the kill (more than 5 s)"
it_ok "a new leader within 5 s"

# The workloads go on under the new leader.
for ((i = 0; i < 300; i++)); do
    [ "$(wc -l <"$IT_TMP/files.acked")" -gt $((before_files + 5)) ] &&
        [ "$(wc -l <"$IT_TMP/renames.acked")" -gt $((before_renames + 5)) ] &&
        [ "$(wc -l <"$IT_TMP/blocks.acked")" -gt $((before_blocks + 5)) ] && break
    sleep 0.1
done
touch "$IT_TMP/stop"
wait "$fpid" "$rpid" "$bpid"
after_files=$(wc -l <"$IT_TMP/files.acked")
after_renames=$(wc -l <"$IT_TMP/renames.acked")
after_blocks=$(wc -l <"$IT_TMP/blocks.acked")
[ "$after_files" -gt $((before_files + 5)) ] ||
    it_fail "file creates did not go on after the kill ($before_files then $after_files): $(tail -3 "$IT_TMP/files.err")"
[ "$after_renames" -gt $((before_renames + 5)) ] ||
    it_fail "renames did not go on after the kill ($before_renames then $after_renames): $(tail -3 "$IT_TMP/renames.err")"
[ "$after_blocks" -gt $((before_blocks + 5)) ] ||
    it_fail "NBD writes did not go on after the kill ($before_blocks then $after_blocks): $(tail -3 "$IT_TMP/blocks.out")"
it_ok "workloads went on: files $before_files -> $after_files, renames $before_renames -> $after_renames, blocks $before_blocks -> $after_blocks"

# Every acknowledged file and block is there.
while read -r n; do
    [ "$(sort -u "$TS_MNT/w/f$n" 2>/dev/null)" = "file $n" ] ||
        it_fail "acknowledged file f$n is missing or wrong"
done <"$IT_TMP/files.acked"
# Renamed on the second mount, read through the first.
while read -r n; do
    [ "$(sort -u "$TS_MNT/r/r$n" 2>/dev/null)" = "renamed $n" ] ||
        it_fail "acknowledged rename r$n is missing or wrong on the first mount"
    [ ! -e "$TS_MNT/r/tmp$n" ] || it_fail "tmp$n is still there after its rename"
done <"$IT_TMP/renames.acked"
# Every block read over one connection (qemu-io runs each -c in turn and
# names the offset of a block that reads wrong).
reads=()
while read -r k; do
    reads+=(-c "read -P $((k % 250 + 1)) $((k * 65536)) 65536")
done <"$IT_TMP/blocks.acked"
qemu-io -f raw "${reads[@]}" "$URI" >"$IT_TMP/read.out" 2>&1 &&
    [ "$(grep -c "^read 65536/65536 bytes" "$IT_TMP/read.out")" -eq "$after_blocks" ] &&
    ! grep -q "Pattern verification failed" "$IT_TMP/read.out" ||
    it_fail "acknowledged blocks are wrong: $(grep -v "^read\|ops/sec" "$IT_TMP/read.out" | head -20)"
it_ok "every acknowledged file ($after_files), rename ($after_renames) and block ($after_blocks) is there"

# ---- 2. the killed replica comes back ---------------------------------------
restart_replica "$old"
leader=$(ts_meta_leader)
wait_applied "$old"
it_ok "replica $old is back and applied $applied"

# ---- 3. a wiped replica re-joins from a snapshot ----------------------------
wiped=
for ((i = 1; i <= 3; i++)); do [ "$i" != "$leader" ] && wiped=$i; done
ts_kill "$(ts_meta_name "$wiped")" KILL
rm -rf "$(ts_meta_dir "$wiped")"
mkdir "$TS_MNT/w/after-wipe" || it_fail "mkdir with one replica wiped"
ts_meta_keys
restart_replica "$wiped"
wait_applied "$wiped"
grep -q "restored a snapshot" "$TS_DIR/logs/$(ts_meta_name "$wiped").log" ||
    it_fail "the wiped replica was not sent a snapshot"
names=$(sqlite3 "$(ts_meta_dir "$wiped")/meta.db" \
    "SELECT count(*) FROM dirents WHERE CAST(name AS TEXT) IN ('after-wipe', 'f1')")
it_expect_eq "the wiped replica holds the namespace" "$names" 2

# ---- 4. a minority refuses mutations ----------------------------------------
leader=$(ts_meta_leader)
ts_kill "$(ts_meta_name "$leader")" KILL
for ((i = 1; i <= 3; i++)); do
    [ "$i" != "$leader" ] && [ "$i" != "$wiped" ] && ts_kill "$(ts_meta_name "$i")" KILL
done
if "$T" image create /minority.img 1M >"$IT_TMP/minority.out" 2>&1; then
    it_fail "a mutation succeeded with one replica of three"
fi
cat "$IT_TMP/minority.out"
grep -q "no metad replica leads" "$IT_TMP/minority.out" ||
    it_fail "no clear error with one replica of three: $(cat "$IT_TMP/minority.out")"
it_ok "one replica of three refuses mutations"

# ---- 5. the survivor, its peers gone, stops on SIGTERM ----------------------
for ((i = 1; i <= 3; i++)); do
    ts_alive "$(ts_meta_name "$i")" && survivor=$i
done
it_stops_on_term "$(ts_meta_name "$survivor")"
it_ok "replica $survivor, alone, stopped on SIGTERM"
echo "PASS"
