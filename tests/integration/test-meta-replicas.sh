#!/usr/bin/env bash
# test-meta-replicas.sh: three tessera-metad replicas on a Raft log
# (docs/architecture.md, "The replicated log"; docs/protocol.md §5.3).
#
# Starts three metad replicas (snapshots every 32 records), two chunkd, a
# FUSE mount and tessera-nbd, every client given the three addresses.
#   1. While the mount creates files (each written and fsynced) and the
#      NBD export writes and flushes blocks of an image, the leader is
#      killed with -9: another replica leads (the time is printed), both
#      workloads go on, and every file and block they were told was done
#      is there afterwards, read back through the mount and the export.
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
ts_start_nbd --unix "$SOCK" --cache none || it_fail "tessera-nbd did not start"
"$T" image create /disk.img 64M >/dev/null || it_fail "image create"
URI="nbd+unix:///disk.img?socket=$SOCK"
mkdir -p "$TS_MNT/w" || it_fail "mkdir through the mount"
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
files_loop &
fpid=$!
it_bg "$fpid"
blocks_loop &
bpid=$!
it_bg "$bpid"
sleep 3
old=$(ts_meta_leader)
[ -n "$old" ] || it_fail "no leader before the kill"
before_files=$(wc -l <"$IT_TMP/files.acked")
before_blocks=$(wc -l <"$IT_TMP/blocks.acked")
t0=$(date +%s.%N)
ts_kill "$(ts_meta_name "$old")" KILL
it_meta_new_leader "$old"
# The new leader's own log says when it started to lead.
led=$(grep "meta raft: leading: id=$new " "$TS_DIR/logs/$(ts_meta_name "$new").log" |
    tail -1 | cut -d' ' -f1)
echo "failover: replica $new leads $(python3 -c "import datetime as d
print(round(d.datetime.fromisoformat('$led'.replace('Z', '+00:00')).timestamp() - $t0, 2))") s after kill -9 of leader $old"

# The workloads go on under the new leader.
for ((i = 0; i < 300; i++)); do
    [ "$(wc -l <"$IT_TMP/files.acked")" -gt $((before_files + 5)) ] &&
        [ "$(wc -l <"$IT_TMP/blocks.acked")" -gt $((before_blocks + 5)) ] && break
    sleep 0.1
done
touch "$IT_TMP/stop"
wait "$fpid" "$bpid"
after_files=$(wc -l <"$IT_TMP/files.acked")
after_blocks=$(wc -l <"$IT_TMP/blocks.acked")
[ "$after_files" -gt $((before_files + 5)) ] ||
    it_fail "file creates did not go on after the kill ($before_files then $after_files): $(tail -3 "$IT_TMP/files.err")"
[ "$after_blocks" -gt $((before_blocks + 5)) ] ||
    it_fail "NBD writes did not go on after the kill ($before_blocks then $after_blocks): $(tail -3 "$IT_TMP/blocks.out")"
it_ok "workloads went on: files $before_files -> $after_files, blocks $before_blocks -> $after_blocks"

# Every acknowledged file and block is there.
while read -r n; do
    [ "$(sort -u "$TS_MNT/w/f$n" 2>/dev/null)" = "file $n" ] ||
        it_fail "acknowledged file f$n is missing or wrong"
done <"$IT_TMP/files.acked"
while read -r k; do
    qemu-io -f raw -c "read -P $((k % 250 + 1)) $((k * 65536)) 65536" "$URI" \
        >"$IT_TMP/read.out" 2>&1 && ! grep -q "Pattern verification failed" "$IT_TMP/read.out" ||
        it_fail "acknowledged block $k is wrong: $(cat "$IT_TMP/read.out")"
done <"$IT_TMP/blocks.acked"
it_ok "every acknowledged file ($after_files) and block ($after_blocks) is there"

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
