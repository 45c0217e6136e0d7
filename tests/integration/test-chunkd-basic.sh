#!/usr/bin/env bash
# tessera-chunkd on its own and then with metad: it must start and keep
# redialling while metad is down, register and send its inventory once
# metad is up, keep its uuid across restarts, and exit 0 on SIGTERM.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BUILD:-$root/build}/bin
for p in tessera-chunkd tessera-metad; do
    [ -x "$bin/$p" ] || { echo "skip: $p not built"; exit 77; }
done

tmp=$(mktemp -d /tmp/tessera-chunkd-test.XXXXXX)
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    if [ $rc -ne 0 ]; then
        for f in "$tmp"/*.log; do echo "---- $f"; tail -n 20 "$f"; done
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

base=$((20000 + RANDOM % 20000))
meta=127.0.0.1:$base
listen=127.0.0.1:$((base + 1))

# wait_for FILE PATTERN SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# metad's first start creates the storage servers' key (docs/security.md).
"$bin/tessera-metad" --data "$tmp/meta" --listen "$meta" 2>"$tmp/metad0.log" &
mpid=$!
wait_for "$tmp/metad0.log" "created identity chunkd" 5 || fail "no chunkd key"
kill -TERM "$mpid"
wait "$mpid"
key=$tmp/meta/chunkd.key

"$bin/tessera-chunkd" --data "$tmp/chunk" --listen "$listen" --meta "$meta" \
    --key "$key" 2>"$tmp/chunkd.log" &
cpid=$!
pids+=("$cpid")
sleep 2.5
kill -0 "$cpid" 2>/dev/null || fail "chunkd died without metad"
[ -s "$tmp/chunk/uuid" ] || fail "no uuid file"
uuid=$(cat "$tmp/chunk/uuid")
echo "ok: chunkd runs without metad"

"$bin/tessera-metad" --data "$tmp/meta" --listen "$meta" 2>"$tmp/metad.log" &
mpid=$!
pids+=("$mpid")
wait_for "$tmp/chunkd.log" "chunk meta: registered" 5 || fail "no register"
wait_for "$tmp/chunkd.log" "chunk meta: inventory sent" 5 || fail "no inventory"
echo "ok: registered and sent inventory after metad came up"
sleep 2 # a few heartbeats
kill -0 "$cpid" 2>/dev/null || fail "chunkd died"

kill -TERM "$cpid"
wait "$cpid"
rc=$?
[ $rc -eq 0 ] || fail "chunkd exit status $rc after SIGTERM"
echo "ok: SIGTERM exits 0"

"$bin/tessera-chunkd" --data "$tmp/chunk" --listen "$listen" --meta "$meta" \
    --key "$key" 2>"$tmp/chunkd2.log" &
cpid=$!
pids+=("$cpid")
wait_for "$tmp/chunkd2.log" "chunk meta: registered" 5 || fail "no re-register"
[ "$(cat "$tmp/chunk/uuid")" = "$uuid" ] || fail "uuid changed"
echo "ok: same uuid after restart"
kill -INT "$cpid"
wait "$cpid" || fail "chunkd exit status $? after SIGINT"
kill -TERM "$mpid"
wait "$mpid"
echo "ok: done"
