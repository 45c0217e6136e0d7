#!/usr/bin/env bash
# test-session-resume.sh: a client whose connection to metad breaks while
# metad keeps (or gets back) its session resumes that session instead of
# opening a new one (docs/protocol.md §6.2), so what metad holds for it
# survives: here, tessera-nbd's image writer lease.
#
# Starts tessera-metad, three tessera-chunkd and two tessera-nbd.  A
# qemu-io kept open on the first writes to an image; then:
#   - metad is killed (-9) and started again at once: it restores the
#     sessions from its database, the nbd reconnects and resumes its
#     session; writes (in a chunk not written before, so metad grants a
#     new chunk lease) and a flush through the same connection work;
#   - if the kernel can destroy sockets (ss -K), only the nbd's
#     connection to metad is cut, metad running: the same again;
#   - a second writer through the other tessera-nbd is still refused, and
#     every byte reads back.
# Needs: $BUILD/bin/tessera-{metad,chunkd,nbd}, tessera, qemu-io.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera qemu-io

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
T() { "$TS_BIN/tessera" --meta "$TS_META_ADDR" "$@"; }
T image create /vm1.img 512M >/dev/null || it_fail "image create"

start_nbd() { # start_nbd NAME SOCKET
    setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --unix "$2" \
        >>"$TS_DIR/logs/$1.log" 2>&1 &
    ts_record "$1" $!
    for _ in $(seq 100); do [ -S "$2" ] && return 0; sleep 0.1; done
    tail -5 "$TS_DIR/logs/$1.log" >&2
    return 1
}
S1=$IT_TMP/a.sock
S2=$IT_TMP/b.sock
start_nbd nbd-a "$S1" || it_fail "tessera-nbd a did not start"
start_nbd nbd-b "$S2" || it_fail "tessera-nbd b did not start"
uri_a="nbd+unix:///vm1.img?socket=$S1"
uri_b="nbd+unix:///vm1.img?socket=$S2"

mkfifo "$IT_TMP/q.in"
qemu-io -f raw "$uri_a" <"$IT_TMP/q.in" >"$IT_TMP/q.out" 2>&1 &
qpid=$!
exec 3>"$IT_TMP/q.in"
q_cmd() { # q_cmd CMD WANT: run CMD in the open qemu-io, wait for WANT
    local n
    n=$(grep -c "$2" "$IT_TMP/q.out" 2>/dev/null)
    echo "$1" >&3
    for _ in $(seq 300); do
        [ "$(grep -c "$2" "$IT_TMP/q.out" 2>/dev/null)" -gt "${n:-0}" ] && return 0
        sleep 0.1
    done
    cat "$IT_TMP/q.out" >&2
    return 1
}
# qemu-io's flush prints nothing when it works: a read after it tells
# when it is done.
q_flush() { echo "flush" >&3; q_cmd "read 0 512" "read 512" || it_fail "flush"; }
q_cmd "write -P 0xa1 0 1M" "wrote 1048576" || it_fail "first write"
q_flush
session=$(grep -o "session: opened: session=[0-9]*" "$TS_DIR/logs/nbd-a.log" | tail -1)
[ -n "$session" ] || it_fail "nbd-a logged no session"
it_ok "tessera-nbd writes the image ($session)"

# check_resumed WHAT N: the nbd resumed its session N times in all, opened
# no other one, and writes and flushes through the same connection work.
check_resumed() {
    local i
    for i in $(seq 150); do
        [ "$(grep -c "session: resumed after reconnect" "$TS_DIR/logs/nbd-a.log")" -ge "$2" ] && break
        sleep 0.1
    done
    [ "$(grep -c "session: resumed after reconnect" "$TS_DIR/logs/nbd-a.log")" -ge "$2" ] ||
        it_fail "$1: the nbd did not resume its session"
    [ "$(grep -c "session: opened" "$TS_DIR/logs/nbd-a.log")" -eq 1 ] ||
        it_fail "$1: the nbd opened a new session"
    it_ok "$1: the nbd resumed its session"
}

# ---- metad killed and started again ------------------------------------------
ts_kill metad KILL
ts_forget metad
ts_start_metad || it_fail "metad did not start again"
# Until the storage servers have registered again metad has nowhere to
# place a new chunk.
ts_wait_servers 3 15 || it_fail "storage servers did not register again"
q_cmd "write -P 0xa2 130M 1M" "wrote 1048576" || it_fail "write after the metad restart"
q_flush
grep -qiE "fail|error" "$IT_TMP/q.out" && { cat "$IT_TMP/q.out"; it_fail "I/O after the metad restart"; }
check_resumed "metad restart" 1
it_ok "writes (new chunk) and a flush work through the same connection"

# ---- Only the connection cut, metad running -----------------------------------
port=${TS_META_ADDR##*:}
pid_a=$(ts_pid nbd-a)
lport=$(ss -Htnp state established dst 127.0.0.1 dport = ":$port" 2>/dev/null |
    grep "pid=$pid_a," | awk '{ print $3 }' | sed 's/.*://' | head -1)
if [ -n "$lport" ] && ss -K dst 127.0.0.1 dport = ":$port" sport = ":$lport" >/dev/null 2>&1 &&
    sleep 1 && [ "$(grep -c "rpc: reconnected" "$TS_DIR/logs/nbd-a.log")" -ge 2 ]; then
    q_cmd "write -P 0xa3 200M 1M" "wrote 1048576" || it_fail "write after the cut"
    q_flush
    grep -qiE "fail|error" "$IT_TMP/q.out" && { cat "$IT_TMP/q.out"; it_fail "I/O after the cut"; }
    check_resumed "connection cut (ss -K)" 2
    cut=1
else
    echo "skip: ss -K cannot destroy sockets here (CONFIG_INET_DIAG_DESTROY)"
    cut=0
fi

# ---- A second writer is still refused ----------------------------------------
out=$(qemu-io -f raw -c "write -P 0xee 0 4k" "$uri_b" 2>&1)
grep -q "is open for writing by" <<<"$out" || it_fail "second writer: $out"
it_ok "a second writer (not a hand-over) is still refused"

echo "quit" >&3
exec 3>&-
wait "$qpid" 2>/dev/null
reads=(-c "read -P 0xa1 0 1M" -c "read -P 0xa2 130M 1M")
[ "$cut" -eq 1 ] && reads+=(-c "read -P 0xa3 200M 1M")
qemu-io -f raw "${reads[@]}" "$uri_b" >"$IT_TMP/all.out" 2>&1 || { cat "$IT_TMP/all.out"; it_fail "final read"; }
grep -qiE "fail|error|mismatch" "$IT_TMP/all.out" && { cat "$IT_TMP/all.out"; it_fail "final read"; }
it_ok "every byte reads back through the other tessera-nbd"
echo "PASS"
