# lib-nbd.sh: scaffolding for tests that run tessera-nbd alone (no
# cluster), sourced by test-nbd-proto.sh and test-nbd-tls.sh:
#   NBD_TOOLS="nbdinfo qemu-img"; . "$(dirname "$0")/lib-nbd.sh"
# Skips (exit 77) when a tool in $NBD_TOOLS or the binary is missing; makes
# $tmp, kills the PIDs added to pids=() on exit, and shows the tail of
# every $tmp/*.log when the test failed.
set -u
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$root/build}
NBD=$BUILD/bin/tessera-nbd

for t in ${NBD_TOOLS:-} python3; do
    command -v "$t" >/dev/null 2>&1 || { echo "skip: $t not available"; exit 77; }
done
[ -x "$NBD" ] || { echo "skip: $NBD not built"; exit 77; }

tmp=$(mktemp -d /tmp/tessera-nbd.XXXXXX)
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$tmp"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_up PORT: until the server accepts connections.
wait_up() {
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1).close()" \
            2>/dev/null && return 0
        sleep 0.1
    done
    fail "server on port $1 did not come up"
}
