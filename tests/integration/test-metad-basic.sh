#!/usr/bin/env bash
# tessera-metad on its own: it starts on a free loopback port, answers
# `tessera status` (tables and --json) and `tessera ping`, stops cleanly on
# SIGTERM (exit 0), and `tessera status` then exits 2 with a clear message.
set -euo pipefail

BUILD=${BUILD:-./build}
metad=$BUILD/bin/tessera-metad
cli=$BUILD/bin/tessera
for b in "$metad" "$cli"; do
    if [ ! -x "$b" ]; then
        echo "SKIP: $b not built"
        exit 77
    fi
done
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    echo "--- metad log"
    cat "$tmp/metad.log" 2>/dev/null || true
    exit 1
}

port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
addr=127.0.0.1:$port
export TESSERA_META=$addr
# The admin key metad creates on its first start (docs/security.md).
export TESSERA_KEY=$tmp/meta/admin.key

"$metad" --data "$tmp/meta" --listen "$addr" >"$tmp/metad.log" 2>&1 &
pid=$!

# Wait until it answers (at most 10 s).
for _ in $(seq 100); do
    if "$cli" ping >/dev/null 2>&1; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || fail "metad exited at startup"
    sleep 0.1
done

"$cli" ping >"$tmp/ping.out" || fail "tessera ping: exit $?"
grep -q "^pong from $addr" "$tmp/ping.out" || fail "ping output: $(cat "$tmp/ping.out")"
[ -f "$tmp/meta/meta.db" ] || fail "no $tmp/meta/meta.db"

"$cli" status >"$tmp/status.out" || fail "tessera status: exit $?"
cat "$tmp/status.out"
grep -q "^Metadata server $addr" "$tmp/status.out" || fail "status: no header"
inodes=$(awk '$1 == "inodes" { print $2 }' "$tmp/status.out")
[ -n "$inodes" ] && [ "$inodes" -ge 1 ] || fail "status: inodes=$inodes"

"$cli" --json status >"$tmp/status.json" || fail "tessera status --json: exit $?"
"$cli" status --json >"$tmp/status2.json" || fail "tessera status --json (after): exit $?"
python3 - "$tmp/status.json" "$tmp/status2.json" "$addr" <<'EOF' || fail "status --json"
import json, sys
for path in sys.argv[1:3]:
    with open(path) as f:
        st = json.load(f)
    assert st["inodes"] >= 1, st
    assert st["dirs"] >= 1, st
    assert st["healthy"] is True, st
    assert st["meta"]["listen"] == sys.argv[3], st
    assert isinstance(st["meta"]["uptime_s"], int), st
    assert st["servers"] == 0 and st["server_list"] == [], st
EOF

"$cli" fileinfo / >"$tmp/fileinfo.out" || fail "tessera fileinfo /: exit $?"
grep -q "inode 1 " "$tmp/fileinfo.out" || fail "fileinfo /: $(cat "$tmp/fileinfo.out")"
rc=0
"$cli" fileinfo /no-such-file 2>"$tmp/fileinfo.err" || rc=$?
[ "$rc" -eq 1 ] || fail "fileinfo of a missing file: exit $rc"
grep -q "No such file" "$tmp/fileinfo.err" || fail "fileinfo: $(cat "$tmp/fileinfo.err")"

# SIGTERM: a clean stop with exit 0.
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "metad exit status after SIGTERM: $rc"
grep -q "metad: listening on $addr" "$tmp/metad.log" || fail "no listening line"
grep -q "metad: stopped" "$tmp/metad.log" || fail "no stopped line"

rc=0
"$cli" status >/dev/null 2>"$tmp/down.err" || rc=$?
[ "$rc" -eq 2 ] || fail "status with metad down: exit $rc, want 2"
grep -q "cannot reach metadata server at $addr" "$tmp/down.err" ||
    fail "status with metad down: $(cat "$tmp/down.err")"
rc=0
"$cli" ping >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "ping with metad down: exit $rc, want 2"

# Bad arguments: exit 1 with a message.
rc=0
"$metad" --listen "$addr" >/dev/null 2>"$tmp/args.err" || rc=$?
[ "$rc" -eq 1 ] || fail "metad without --data: exit $rc"
[ -s "$tmp/args.err" ] || fail "metad without --data: no message"

echo "PASS"
