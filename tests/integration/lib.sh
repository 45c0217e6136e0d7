# lib.sh: shared by the integration tests.  Sources the cluster launcher,
# makes a temp folder, and stops everything on exit (IT_KEEP=1 keeps the
# folder, logs included, for a look afterwards).
#   . "$(dirname "$0")/lib.sh"; it_need tessera-metad tessera-mount
set -u
it_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$it_root/scripts/cluster.sh"

IT_TMP=$(mktemp -d /tmp/tessera-test.XXXXXX)
IT_BG=() # it_bg: the test's own background loops, stopped first on exit
# Ordinary users must reach the mount point for the permission tests.
chmod 0755 "$IT_TMP"
it_cleanup() {
    local rc=$? p
    for p in "${IT_BG[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${IT_BG[@]}"; do wait "$p" 2>/dev/null; done
    ts_stop_all 2>/dev/null
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$IT_TMP"/cluster/logs/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 25 lines)"
            tail -n 25 "$f"
        done
    fi
    # The folder is deleted in the background, in a session of its own
    # (nothing of the test's is left to write into it): on a disk mounted
    # with online discard, a test's gigabytes of chunks take seconds to
    # delete, seconds in which the next test can run.
    [ -n "${IT_KEEP:-}" ] ||
        setsid rm -rf "$IT_TMP" </dev/null >/dev/null 2>&1 &
    exit $rc
}
trap it_cleanup EXIT
trap 'exit 130' INT TERM

# it_need PROG...: skip (exit 77) when a binary or tool is missing.
it_need() {
    local p
    for p in "$@"; do
        if [ -x "$TS_BIN/$p" ] || command -v "$p" >/dev/null 2>&1; then
            continue
        fi
        echo "skip: $p not available"
        exit 77
    done
}

it_fail() { echo "FAIL: $*" >&2; exit 1; }

# it_bg PID: a background loop of the test (a workload), killed on exit
# if still running, before the cluster stops.
it_bg() { IT_BG+=("$1"); }

# it_stops_on_term NAME: send SIGTERM to daemon NAME and fail unless it
# exits on its own within 10 s (what ts_stop_all gives it).
it_stops_on_term() {
    local p i
    p=$(ts_pid "$1")
    [ -n "$p" ] && ts_running "$p" || it_fail "$1 is not running"
    kill -TERM "$p"
    for ((i = 0; i < 100; i++)); do
        ts_running "$p" || break
        sleep 0.1
    done
    ts_running "$p" && it_fail "$1 did not stop on SIGTERM within 10 s"
    wait "$p" 2>/dev/null
    ts_forget "$1"
}
# it_ok WHAT: a check passed; the seconds since the test began follow, so
# that a log shows where a test spends its time.
it_ok() { echo "ok: $* (${SECONDS}s)"; }

# it_json EXPR CMD...: run the admin CLI with --json and print EXPR (a
# python expression on the output, bound to j).
it_json() {
    local expr=$1
    shift
    "$TS_BIN/tessera" --json "$@" 2>/dev/null |
        python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}

# it_server_index ID: the chunkd index (1..9) whose address server ID has.
it_server_index() {
    local addr i a
    addr=$(it_json "[s['addr'] for s in j['server_list'] if s['id']==$1][0]" status)
    for i in 1 2 3 4 5 6 7 8 9; do
        a="TS_CHUNK${i}_ADDR"
        [ "${!a:-}" = "$addr" ] && { echo "$i"; return; }
    done
}

# it_wait_moved PATH SERVER [PID]: wait up to 40 s until the first chunk
# of PATH is at its goal with no replica on SERVER; fails early when PID
# (a process the test needs running meanwhile) exits.
it_wait_moved() {
    local i
    for ((i = 0; i < 400; i++)); do
        [ -z "${3:-}" ] || kill -0 "$3" 2>/dev/null || return 1
        "$TS_BIN/tessera" checkfile "$1" >/dev/null 2>&1 &&
            it_json "all(r['server'] != $2 for r in j['chunks'][0]['replicas'])" \
                fileinfo "$1" | grep -q True && return 0
        sleep 0.1
    done
    return 1
}

# it_meta_applied I COMMIT: wait (up to 30 s) until metad replica I's
# database has applied log index COMMIT; sets $applied; fails otherwise.
it_meta_applied() {
    local i
    for ((i = 0; i < 300; i++)); do
        applied=$(sqlite3 "$(ts_meta_dir "$1")/meta.db" \
            "SELECT value FROM counters WHERE name = 'log_applied'" 2>/dev/null)
        [ "${applied:-0}" -ge "$2" ] && return 0
        sleep 0.1
    done
    it_fail "replica $1 applied ${applied:-0}, want $2"
}

# it_sha256: the SHA-256 of stdin, in hex.  The tests hash gigabytes:
# openssl's digest uses the CPU's SHA instructions, about a quarter of
# sha256sum's CPU here; sha256sum where openssl is missing.  A digest that
# fails prints a word of its own (never equal to another's) and says so.
it_sha256() {
    local h
    if command -v openssl >/dev/null 2>&1; then
        h=$(openssl dgst -sha256 -r)
    else
        h=$(sha256sum)
    fi
    h=${h%% *}
    [ ${#h} -eq 64 ] || { echo "it_sha256: no digest" >&2; h=no-digest-$BASHPID; }
    echo "$h"
}

# it_meta_new_leader OLD: wait (up to 20 s) until a replica other than OLD
# leads the metad group; sets $new; fails otherwise.
it_meta_new_leader() {
    local i
    for ((i = 0; i < 200; i++)); do
        new=$(ts_meta_leader)
        [ -n "$new" ] && [ "$new" != "$1" ] && return 0
        sleep 0.1
    done
    it_fail "no replica other than $1 leads the metad group after 20 s"
}

# it_expect_eq WHAT GOT WANT
# it_mount_metric SERIES: the cluster's first mount's value of the
# metrics series SERIES (0 when absent); it_mount_sent OP: the OP requests
# it has sent to metad so far.
it_mount_metric() {
    curl -sf "http://$(ts_http_addr mount)/metrics" |
        awk -v s="$1" '$1 == s { v = $2 } END { print v + 0 }'
}
it_mount_sent() { it_mount_metric "tessera_client_requests_total{op=\"$1\"}"; }

it_expect_eq() { [ "$2" = "$3" ] || it_fail "$1: got '$2', want '$3'"; it_ok "$1"; }

# it_nbd_patch URL FILE OFF LEN: the same LEN random bytes at OFF into the
# image at the NBD URL (with qemu-io) and into FILE, its expected bytes.
it_nbd_patch() {
    head -c "$4" /dev/urandom >"$IT_TMP/piece"
    qemu-io -f raw -c "write -s $IT_TMP/piece $3 $4" "$1" \
        >"$IT_TMP/qio.out" 2>&1 || { cat "$IT_TMP/qio.out"; it_fail "write $1 at $3"; }
    grep -qiE "fail|error" "$IT_TMP/qio.out" && { cat "$IT_TMP/qio.out"; it_fail "write $1 at $3"; }
    dd if="$IT_TMP/piece" of="$2" bs="$4" seek="$3" oflag=seek_bytes \
        conv=notrunc status=none
}

ts_cluster_init "$IT_TMP/cluster" 0
