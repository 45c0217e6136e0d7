# cluster.sh: start and stop a local Tessera cluster on loopback.
#
# Sourced by `make run` (scripts/tessera-run) and by every integration test,
# so what users run is what is tested.  Everything lives under one folder:
#
#   $TS_DIR/meta/            metad data (meta.db)     logs/metad.log
#   $TS_DIR/meta/*.key       the admin and chunkd keys metad creates on its
#                            first start (docs/security.md); TESSERA_KEY
#                            names the admin's once metad is up
#   $TS_DIR/chunk1..N/       chunkd data              logs/chunkd1.log ...
#   $TS_DIR/mnt/             the FUSE mount           logs/mount.log
#   $TS_DIR/pids             every process started, one "name pid" a line
#   $TS_DIR/http             each daemon's metrics address, one "name addr"
#
# Use:  ts_cluster_init DIR [BASE_PORT]   (BASE_PORT 0: pick free ports)
#       ts_start_metad; ts_start_chunkd N; ts_start_mount [OPTS]; ts_start_nbd
#       ts_start_all [NCHUNKD]            (what exists: metad, chunkds, mount, nbd)
#       ts_stop_all                       (unmount, stop everything, wait)
#
# TS_SECURE=1 (before ts_cluster_init) runs metad and chunkd with --secure
# and exports TESSERA_SECURE=1, so that every client (mount, NBD, CLI)
# asks for secure links too (docs/security.md, "Secure links").
#
# Every daemon serves Prometheus metrics (--http) on a port of its own,
# BASE_PORT + 10 for metad, + 10 + I for chunkd I, + 20 for the NBD export,
# + 21 for the mount; ts_http_addr NAME gives one.  TS_HTTP=0 turns it off.
#
# Daemons run in their own sessions (setsid) so that a Ctrl-C meant for the
# launcher does not reach them: the launcher stops them in order itself.
#
# Functions return non-zero with a message on stderr when a process does not
# come up; the caller decides what to do.

TS_ROOT=${TS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TS_BIN=${TS_BIN:-${BUILD:-$TS_ROOT/build}/bin}

ts_free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

ts_port() { # ts_port INDEX: the cluster's INDEX-th port
    if [ "$TS_BASE_PORT" -eq 0 ]; then
        local v="TS_PORT_$1"
        [ -n "${!v:-}" ] || printf -v "$v" '%s' "$(ts_free_port)"
        echo "${!v}"
    else
        echo $((TS_BASE_PORT + $1))
    fi
}

ts_cluster_init() {
    TS_DIR=$(mkdir -p "$1" && cd "$1" && pwd)
    TS_BASE_PORT=${2:-0}
    TS_META_ADDR=127.0.0.1:$(ts_port 0)
    TS_NBD_ADDR=127.0.0.1:$(ts_port 9)
    TS_MNT=$TS_DIR/mnt
    mkdir -p "$TS_DIR/logs"
    : >"$TS_DIR/pids"
    : >"$TS_DIR/http"
    export TS_DIR TS_META_ADDR TS_NBD_ADDR TS_MNT TESSERA_META=$TS_META_ADDR
    TS_SECURE_OPT=
    if [ "${TS_SECURE:-0}" = 1 ]; then
        TS_SECURE_OPT=--secure
        export TESSERA_SECURE=1
    fi
}

ts_have() { [ -x "$TS_BIN/$1" ]; }

# ts_wait_port ADDR SECONDS [PID]: wait until something listens on ADDR
# (giving up early if PID exits).
ts_wait_port() {
    local host=${1%:*} port=${1##*:} i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        if [ -n "${3:-}" ] && ! ts_running "$3"; then
            echo "cluster: the process for $1 exited" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "cluster: nothing listening on $1 after $2 s" >&2
    return 1
}

ts_record() { echo "$1 $2" >>"$TS_DIR/pids"; }

# ts_http_opt NAME INDEX: print "--http ADDR" for daemon NAME on the
# cluster's INDEX-th port and record the address; nothing with TS_HTTP=0.
ts_http_opt() {
    [ "${TS_HTTP:-1}" = 1 ] || return 0
    local addr=127.0.0.1:$(ts_port "$2")
    echo "$1 $addr" >>"$TS_DIR/http"
    echo "--http $addr"
}

# ts_http_addr NAME: the metrics address of NAME's latest start.
ts_http_addr() {
    awk -v n="$1" '$1 == n { a = $2 } END { print a }' "$TS_DIR/http" 2>/dev/null
}

# ts_forget NAME: drop NAME from the records (a process that never came up).
ts_forget() {
    local f tmp
    for f in pids http; do
        tmp=$TS_DIR/$f.tmp
        awk -v n="$1" '$1 != n' "$TS_DIR/$f" >"$tmp" && mv "$tmp" "$TS_DIR/$f"
    done
}

ts_pid() { awk -v n="$1" '$1 == n { p = $2 } END { print p }' "$TS_DIR/pids"; }

# ts_running PID: true while PID runs (a zombie that was not reaped yet counts
# as gone: our own children stay zombies until the shell waits for them).
ts_running() {
    [ -e "/proc/$1" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat" 2>/dev/null
}

ts_alive() { local p; p=$(ts_pid "$1"); [ -n "$p" ] && ts_running "$p"; }

ts_start_metad() {
    local http
    http=$(ts_http_opt metad 10)
    mkdir -p "$TS_DIR/meta"
    # shellcheck disable=SC2086 # $http is an option and its value, or nothing
    setsid "$TS_BIN/tessera-metad" --data "$TS_DIR/meta" --listen "$TS_META_ADDR" \
        $http $TS_SECURE_OPT "$@" >>"$TS_DIR/logs/metad.log" 2>&1 &
    ts_record metad $!
    ts_wait_port "$TS_META_ADDR" 10 $! || { tail -5 "$TS_DIR/logs/metad.log" >&2; return 1; }
    # Written before metad listens, on its first start.
    if [ -f "$TS_DIR/meta/admin.key" ]; then
        export TESSERA_KEY=$TS_DIR/meta/admin.key
    fi
}

# ts_start_chunkd I [ARGS]: storage server I (1-based).
ts_start_chunkd() {
    local i=$1 addr http
    shift
    addr=127.0.0.1:$(ts_port "$i")
    http=$(ts_http_opt "chunkd$i" $((10 + i)))
    mkdir -p "$TS_DIR/chunk$i"
    # shellcheck disable=SC2086
    local key=
    [ -f "$TS_DIR/meta/chunkd.key" ] && key="--key $TS_DIR/meta/chunkd.key"
    # shellcheck disable=SC2086
    setsid "$TS_BIN/tessera-chunkd" --data "$TS_DIR/chunk$i" --listen "$addr" \
        --meta "$TS_META_ADDR" $key $http $TS_SECURE_OPT "$@" \
        >>"$TS_DIR/logs/chunkd$i.log" 2>&1 &
    ts_record "chunkd$i" $!
    eval "TS_CHUNK${i}_ADDR=$addr"
    ts_wait_port "$addr" 10 $! || { tail -5 "$TS_DIR/logs/chunkd$i.log" >&2; return 1; }
}

# ts_wait_servers N SECONDS: wait until metad reports N servers up.
ts_wait_servers() {
    local i n
    for ((i = 0; i < $2 * 10; i++)); do
        n=$("$TS_BIN/tessera" --meta "$TS_META_ADDR" --json status 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("servers.up", 0))' 2>/dev/null)
        [ "${n:-0}" -ge "$1" ] && return 0
        sleep 0.1
    done
    echo "cluster: fewer than $1 storage servers up after $2 s" >&2
    return 1
}

# ts_start_mount [MOUNTPOINT [ARGS]]: a foreground mount, backgrounded here.
ts_start_mount() {
    local mnt=${1:-$TS_MNT} name i http=
    shift || true
    name=mount$([ "$mnt" = "$TS_MNT" ] || echo "-$(basename "$mnt")")
    # Only the cluster's own mount has a port of its own.
    [ "$mnt" = "$TS_MNT" ] && http=$(ts_http_opt "$name" 21)
    mkdir -p "$mnt"
    # shellcheck disable=SC2086
    setsid "$TS_BIN/tessera-mount" --meta "$TS_META_ADDR" $http -f "$@" "$mnt" \
        >>"$TS_DIR/logs/$name.log" 2>&1 &
    ts_record "$name" $!
    echo "$mnt" >>"$TS_DIR/mounts"
    for ((i = 0; i < 100; i++)); do
        mountpoint -q "$mnt" && return 0
        ts_running $! || break
        sleep 0.1
    done
    echo "cluster: mount at $mnt did not come up" >&2
    tail -5 "$TS_DIR/logs/$name.log" >&2
    return 1
}

ts_start_nbd() {
    local http
    http=$(ts_http_opt nbd 20)
    # shellcheck disable=SC2086
    setsid "$TS_BIN/tessera-nbd" --meta "$TS_META_ADDR" --listen "$TS_NBD_ADDR" $http "$@" \
        >>"$TS_DIR/logs/nbd.log" 2>&1 &
    ts_record nbd $!
    ts_wait_port "$TS_NBD_ADDR" 10 $! || { tail -5 "$TS_DIR/logs/nbd.log" >&2; return 1; }
}

# ts_start_all [NCHUNKD]: every part that has been built.
ts_start_all() {
    local n=${1:-3} i
    ts_start_metad || return 1
    if ts_have tessera-chunkd; then
        for ((i = 1; i <= n; i++)); do ts_start_chunkd "$i" || return 1; done
        ts_have tessera && { ts_wait_servers "$n" 15 || return 1; }
    fi
    if ts_have tessera-mount; then ts_start_mount || return 1; fi
    if ts_have tessera-nbd && ! ts_start_nbd; then
        echo "cluster: carrying on without the NBD export" >&2
        ts_forget nbd
        TS_NBD_ADDR=
    fi
    return 0
}

# ts_kill NAME [SIGNAL]: signal one process of the cluster and wait for it.
ts_kill() {
    local p i
    p=$(ts_pid "$1")
    [ -n "$p" ] || return 0
    kill "-${2:-TERM}" "$p" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        ts_running "$p" || break
        sleep 0.1
    done
    ts_running "$p" && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}

# ts_stop_all: unmount every mount, then stop processes newest first.
ts_stop_all() {
    local m name pid
    [ -n "${TS_DIR:-}" ] && [ -f "$TS_DIR/pids" ] || return 0
    if [ -f "$TS_DIR/mounts" ]; then
        # /proc/mounts, not mountpoint(1): the mount of a killed
        # tessera-mount cannot be stat'ed but must still go.
        while read -r m; do
            awk -v m="$m" '$2 == m { f = 1 } END { exit !f }' /proc/mounts &&
                { fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null; }
        done <"$TS_DIR/mounts"
        rm -f "$TS_DIR/mounts"
    fi
    local -a names=() pids=()  # empty, not unset: callers run with set -u
    while read -r name pid; do names+=("$name"); pids+=("$pid"); done <"$TS_DIR/pids"
    for ((j = ${#pids[@]} - 1; j >= 0; j--)); do
        ts_running "${pids[j]}" && kill -TERM "${pids[j]}" 2>/dev/null
    done
    for ((j = ${#pids[@]} - 1; j >= 0; j--)); do
        for ((i = 0; i < 100; i++)); do
            ts_running "${pids[j]}" || break
            sleep 0.1
        done
        if ts_running "${pids[j]}"; then
            echo "cluster: ${names[j]} did not stop on SIGTERM; killing it" >&2
            kill -KILL "${pids[j]}" 2>/dev/null
        fi
        wait "${pids[j]}" 2>/dev/null
    done
    : >"$TS_DIR/pids"
}
