#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-metad-outage.sh: what goes on and what fails while metad does not
# answer (docs/operations.md, "When metad is unreachable").
#
# metad is stopped with SIGSTOP (its connections stay open and silent, the
# hardest case: nothing fails at once) under a mount and an NBD export:
#   1. an NBD connection opened before keeps reading and writing its image
#      (the image lease and the chunk locations it holds are enough);
#   2. a namespace call through the mount (a stat of a new name) does not
#      hang forever: it fails with an error once the call's bound passes,
#      and the mount's log says that metad is not answering meanwhile;
#      while it waits it has handed the reading of requests to another
#      thread (the mount's handovers metric grows);
#   3. tessera-nbd's metrics count the stalled connection;
#   4. after SIGCONT everything works again, the writes made meanwhile are
#      there, and the log says metad answers again.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, qemu-io.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera qemu-io curl

T="$TS_BIN/tessera"
SOCK=$IT_TMP/nbd.sock
ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"
ts_start_nbd --unix "$SOCK" --cache none || it_fail "tessera-nbd did not start"
"$T" image create /v.img 64M >/dev/null || it_fail "image create"
echo hello >"$TS_MNT/before" || it_fail "write before the outage"

# One long-lived qemu-io on the export, fed through a fifo.
fifo=$IT_TMP/qio.in
out=$IT_TMP/qio.out
mkfifo "$fifo"
qemu-io -f raw "nbd+unix:///v.img?socket=$SOCK" <"$fifo" >"$out" 2>&1 &
qio=$!
exec 7>"$fifo"
# qio_do CMD: run one qemu-io command and wait for its result line.
qio_pat='bytes at offset\|failed\|error'
qio_do() {
    local n i
    n=$(grep -c "$qio_pat" "$out")
    echo "$1" >&7
    for ((i = 0; i < 600; i++)); do
        [ "$(grep -c "$qio_pat" "$out")" -gt "$n" ] && return 0
        sleep 0.1
    done
    return 1
}
qio_do "write -P 0x11 0 1M" || it_fail "nbd write before the outage"
qio_do "read -P 0x11 0 1M" || it_fail "nbd read before the outage"
grep -q -i -e failed -e error "$out" && it_fail "nbd I/O before the outage: $(cat "$out")"
it_ok "NBD connection open, data written"

kill -STOP "$(ts_pid metad)"
it_ok "metad stopped (SIGSTOP)"

# 1. The open NBD connection goes on.
qio_do "read -P 0x11 0 1M" || it_fail "nbd read hangs without metad"
qio_do "write -P 0x22 4096 64k" || it_fail "nbd write hangs without metad"
qio_do "read -P 0x22 4096 64k" || it_fail "nbd read-back hangs without metad"
grep -q -i -e failed -e error "$out" && it_fail "nbd I/O failed without metad: $(cat "$out")"
it_ok "NBD reads and writes go on without metad"

# 2. A namespace call fails with an error instead of hanging.  While it
# waits the mount reads the requests behind it: the waiting request
# handed the reading on (client-fuse/fc_loop.c).
h0=$(it_mount_metric tessera_mount_request_handovers_total)
rc=0
timeout 120 stat "$TS_MNT/new-name" >/dev/null 2>"$IT_TMP/stat.err" &
stat_pid=$!
for ((i = 0; i < 100; i++)); do
    [ "$(it_mount_metric tessera_mount_request_handovers_total)" -gt "$h0" ] && break
    sleep 0.1
done
[ "$(it_mount_metric tessera_mount_request_handovers_total)" -gt "$h0" ] ||
    it_fail "the stat waiting for metad did not hand the reading on"
it_ok "the stat waiting for metad handed the reading on"
wait "$stat_pid" || rc=$?
[ "$rc" -ne 124 ] || it_fail "stat still blocked after 120 s"
[ "$rc" -ne 0 ] || it_fail "stat of a new name succeeded without metad"
it_ok "stat without metad fails: $(cat "$IT_TMP/stat.err")"
grep -q "rpc: no answer for" "$TS_DIR/logs/mount.log" ||
    it_fail "the mount's log does not say metad is not answering"
it_ok "the mount's log says metad does not answer"

# 3. The NBD export's metrics count the stall.
http=$(ts_http_addr nbd)
if [ -n "$http" ]; then
    curl -s "http://$http/metrics" | grep -q '^tessera_client_stalls_total [1-9]' ||
        it_fail "tessera-nbd's metrics do not count the stall"
    it_ok "tessera-nbd's metrics count the stall"
fi

# 4. Back: everything works, the writes made meanwhile are there.
kill -CONT "$(ts_pid metad)"
it_ok "metad continued"
for ((i = 0; i < 300; i++)); do
    cat "$TS_MNT/before" >/dev/null 2>&1 && break
    sleep 0.1
done
it_expect_eq "file written before" "$(cat "$TS_MNT/before")" hello
echo after >"$TS_MNT/after" || it_fail "create after the outage"
it_expect_eq "file created after" "$(cat "$TS_MNT/after")" after
qio_do "read -P 0x22 4096 64k" || it_fail "nbd read after the outage"
echo quit >&7
exec 7>&-
wait "$qio"
grep -q -i -e failed -e error "$out" && it_fail "nbd I/O failed: $(cat "$out")"
qemu-io -f raw -c "read -P 0x22 4096 64k" "nbd+unix:///v.img?socket=$SOCK" |
    grep -q "read 65536/65536" || it_fail "a new NBD connection reads the data"
it_ok "after metad is back, a new NBD connection reads what was written meanwhile"
