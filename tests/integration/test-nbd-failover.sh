#!/usr/bin/env bash
# test-nbd-failover.sh: the NBD fast path under storage server failures.
#
# Starts tessera-metad (suspect 1.5 s, down 5 s), four tessera-chunkd and
# tessera-nbd, and a 64 MiB goal-3 image (one chunk, three replicas).  fio
# (nbd engine) writes every 4 KiB block of it once, in random order, eight
# requests in flight, each block holding its own checksum and offset:
#   1. kill -9 of a chunkd in the chunk's chain while the writes run: the
#      requests in flight on the fast path fail, go down the slow path,
#      which reports the server and writes on a new chain; fio sees no
#      error;
#   2. fio then reads every block back and checks it (--verify), and again
#      in a second pass over a new connection while another replica is
#      stopped with SIGSTOP (a partition): reads that hang on it time out
#      and are served by another replica.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, fio with the nbd
# engine, python3; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera fio python3
fio --enghelp 2>/dev/null | grep -qw nbd || { echo "skip: fio has no nbd engine"; exit 77; }

T="$TS_BIN/tessera"
SOCK=$IT_TMP/nbd.sock
ts_start_metad --suspect-ms 1500 --down-ms 5000 || it_fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || it_fail "storage servers did not register"
# No block cache: the reads below must reach the servers.  Small writes go
# straight to every replica, so a kill fails some copies of a write and
# not others.
ts_start_nbd --unix "$SOCK" --cache none --direct-write-max 128 ||
    it_fail "tessera-nbd did not start"
"$T" image create /f.img 64M >/dev/null || it_fail "image create"
"$T" setgoal 3 /f.img >/dev/null || it_fail "setgoal"
URI="nbd+unix:///f.img?socket=$SOCK"
cd "$IT_TMP" || it_fail "cd"  # fio keeps its verify state in the working folder

# A server holding the image's chunk, other than $1.
replica_other_than() {
    it_json "[r['server'] for r in j['chunks'][0]['replicas'] if r['server'] != ${1:-0}][0]" fileinfo /f.img
}

job=(--name=nbdfail --ioengine=nbd --uri="$URI" --size=64M --bs=4k
     --rw=randwrite --iodepth=8 --verify=crc32c --verify_fatal=1
     --output="$IT_TMP/fio.out")

# Take the chunk's lease and locations first, so the writes below run on
# the fast path from the start.
fio --name=warm --ioengine=nbd --uri="$URI" --size=1M --bs=64k --rw=write \
    --output="$IT_TMP/warm.out" || it_fail "first write: $(cat "$IT_TMP/warm.out")"

# ---- 1. kill -9 of a replica under the writes --------------------------------
victim=$(replica_other_than 0)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
fio "${job[@]}" --do_verify=0 &
fiopid=$!
sleep 1.5
kill -0 "$fiopid" 2>/dev/null || it_fail "fio ended before the kill: $(cat "$IT_TMP/fio.out")"
ts_kill "chunkd$vi" KILL
it_ok "chunkd $vi (server $victim) killed under the writes"
wait "$fiopid" || it_fail "fio saw an error: $(tail -20 "$IT_TMP/fio.out")"
grep -q "err= 0" "$IT_TMP/fio.out" || it_fail "fio reported errors: $(cat "$IT_TMP/fio.out")"
it_ok "every write acknowledged despite the kill"
holders=$(it_json "sorted(r['server'] for r in j['chunks'][0]['replicas'])" fileinfo /f.img)
case "$holders" in
*"$victim"*) it_fail "the killed server $victim still holds the chunk: $holders" ;;
esac
it_ok "the writes went on on a chain without server $victim ($holders)"

# ---- 2. read back and verify, then again with a replica stopped --------------
fio "${job[@]}" --verify_only || it_fail "verify: $(tail -20 "$IT_TMP/fio.out")"
it_ok "every acknowledged block reads back"

stopped=$(replica_other_than "$victim")
si=$(it_server_index "$stopped")
[ -n "$si" ] || it_fail "no running chunkd for server $stopped"
kill -STOP "$(ts_pid "chunkd$si")"
it_ok "chunkd $si (server $stopped) stopped"
fio "${job[@]}" --verify_only --iodepth=4 ||
    { kill -CONT "$(ts_pid "chunkd$si")"; it_fail "verify with a stopped replica: $(tail -20 "$IT_TMP/fio.out")"; }
kill -CONT "$(ts_pid "chunkd$si")"
it_ok "every block reads back with a replica stopped"
echo "PASS"
