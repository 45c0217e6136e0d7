# cluster.sh: start and stop a local Tessera cluster on loopback.
#
# Sourced by `make run` (scripts/tessera-run) and by every integration test,
# so what users run is what is tested.  Everything lives under one folder:
#
#   $TS_DIR/meta/            metad data (meta.db)     logs/metad.log
#   $TS_DIR/meta2, meta3/    the other metad replicas logs/metad2.log ...
#   $TS_DIR/meta/*.key       the admin and chunkd keys metad creates on its
#                            first start (docs/security.md; copied here from
#                            the replica that led first); TESSERA_KEY names
#                            the admin's once metad is up
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
# TS_NOAUTH=1 runs them with --no-auth instead.  ts_flavour sets either
# for a benchmark's cluster.
#
# META (default 3) is the number of metad replicas: a group on a Raft log
# (docs/operations.md, "Metadata replicas"), replica I named metadI
# (replica 1: metad) with its client port BASE_PORT + 30 + I (replica 1:
# BASE_PORT) and its raft port BASE_PORT + 40 + I; TS_META_ADDR lists
# their client addresses, as --meta and $TESSERA_META take them.  META=1
# is a single metad with the local log.  scripts/run-integration.sh runs
# the tests with META=1 unless a test asks for more.  TS_META_HOSTS (set
# before ts_cluster_init: one address per replica, space separated)
# replaces 127.0.0.1 as replica I's host, and TS_META_NETNS (as many
# network namespace names) runs replica I inside that namespace, so that
# each replica is a host of its own (tests/integration/test-meta-partition.sh).
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

# ts_free_port: a port nothing listens on, below the kernel's ephemeral
# range when there is room: a port the kernel hands out for bind(0) may
# be taken as the local port of some outgoing connection before the
# daemon binds it (EADDRINUSE), while ports below that range are only
# ever bound on purpose.  Clusters started at once (tests run three at a
# time) could still pick the same port before either binds it, so each
# pick is reserved for an hour under $TS_PORTS_DIR (mkdir is atomic) and
# no other pick takes it meanwhile.
TS_PORTS_DIR=${TS_PORTS_DIR:-/tmp/tessera-ports}
ts_free_port() {
    python3 - "$TS_PORTS_DIR" <<'PY'
import os, random, socket, sys, time
d = sys.argv[1]
try:
    os.makedirs(d, exist_ok=True)
except OSError:
    d = None
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 0

def reserve(p):
    if d is None:
        return True
    path = os.path.join(d, str(p))
    try:
        if time.time() - os.stat(path).st_mtime > 3600:
            os.rmdir(path)  # a reservation from long ago
    except OSError:
        pass
    try:
        os.mkdir(path)
        return True
    except OSError:
        return False

ports = [random.randrange(10000, lo) for _ in range(200)] if lo > 11000 else []
for p in ports + [0]:
    if p and not reserve(p):
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(s.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        s.close()
PY
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
    local i
    TS_DIR=$(mkdir -p "$1" && cd "$1" && pwd)
    TS_BASE_PORT=${2:-0}
    TS_META_N=${META:-3}
    # Each replica's ports, picked once (ts_port runs in a subshell here).
    local -a hosts=()
    read -r -a hosts <<<"${TS_META_HOSTS:-}"
    for ((i = 1; i <= TS_META_N; i++)); do
        local host=${hosts[i - 1]:-127.0.0.1}
        printf -v "TS_META${i}_ADDR" '%s:%s' "$host" \
            "$(ts_port $([ "$i" = 1 ] && echo 0 || echo $((30 + i))))"
        printf -v "TS_META${i}_RAFT" '%s:%s' "$host" "$(ts_port $((40 + i)))"
        export "TS_META${i}_ADDR" "TS_META${i}_RAFT"
    done
    TS_META_ADDR=$(ts_meta_addr 1)
    for ((i = 2; i <= TS_META_N; i++)); do
        TS_META_ADDR+=,$(ts_meta_addr "$i")
    done
    TS_NBD_ADDR=127.0.0.1:$(ts_port 9)
    TS_MNT=$TS_DIR/mnt
    mkdir -p "$TS_DIR/logs"
    : >"$TS_DIR/pids"
    : >"$TS_DIR/http"
    export TS_DIR TS_META_N TS_META_ADDR TS_NBD_ADDR TS_MNT TESSERA_META=$TS_META_ADDR
    TS_SECURE_OPT=
    if [ "${TS_SECURE:-0}" = 1 ]; then
        TS_SECURE_OPT=--secure
        export TESSERA_SECURE=1
    fi
    TS_AUTH_OPT=
    [ "${TS_NOAUTH:-0}" != 1 ] || TS_AUTH_OPT=--no-auth
}

# ts_flavour FLAVOUR: the next ts_cluster_init's cluster is "" (as it
# ships: authenticated), noauth (--no-auth everywhere) or secure (--secure
# everywhere); the client settings of an earlier cluster are dropped.
ts_flavour() {
    unset TESSERA_KEY TESSERA_SECURE
    TS_SECURE=0 TS_NOAUTH=0
    case $1 in
    secure) TS_SECURE=1 ;;
    noauth) TS_NOAUTH=1 ;;
    esac
}

ts_have() { [ -x "$TS_BIN/$1" ]; }

# ts_meta_addr I, ts_meta_raft I: replica I's client and raft addresses.
ts_meta_addr() { local v="TS_META$1_ADDR"; echo "${!v}"; }
ts_meta_raft() { local v="TS_META$1_RAFT"; echo "${!v}"; }
ts_meta_name() { if [ "$1" = 1 ]; then echo metad; else echo "metad$1"; fi; }
ts_meta_dir() { if [ "$1" = 1 ]; then echo "$TS_DIR/meta"; else echo "$TS_DIR/meta$1"; fi; }

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

# ts_start_metad [ARGS]: the single metad, or every replica of the group
# (then waits for a leader); ARGS go to each.
ts_start_metad() {
    local i
    if [ "$TS_META_N" -le 1 ]; then
        ts_start_meta_one 1 "$@" || return 1
    else
        # A new group when no replica has raft state yet: every replica
        # bootstraps it (read by ts_start_meta_replica).
        local TS_META_NEW=1
        for ((i = 1; i <= TS_META_N; i++)); do
            [ -d "$(ts_meta_dir "$i")/raft" ] && TS_META_NEW=0
        done
        for ((i = 1; i <= TS_META_N; i++)); do
            ts_start_meta_replica "$i" "$@" || return 1
        done
        ts_wait_leader 20 || return 1
    fi
    # The keys are written by the metad that first leads, before it serves.
    ts_meta_keys
}

# ts_start_meta_one I [ARGS]: start metad (replica I of the group when
# META > 1, ARGS holding its --raft options) and wait for its port.
ts_start_meta_one() {
    local i=$1 name dir addr http wrap=() netns=()
    shift
    read -r -a netns <<<"${TS_META_NETNS:-}"
    [ -n "${netns[i - 1]:-}" ] && wrap=(nsenter "--net=/run/netns/${netns[i - 1]}")
    name=$(ts_meta_name "$i")
    dir=$(ts_meta_dir "$i")
    addr=$(ts_meta_addr "$i")
    http=$(ts_http_opt "$name" $([ "$i" = 1 ] && echo 10 || echo $((50 + i))))
    mkdir -p "$dir"
    # shellcheck disable=SC2086 # $http is an option and its value, or nothing
    setsid "${wrap[@]}" "$TS_BIN/tessera-metad" --data "$dir" --listen "$addr" \
        $http $TS_SECURE_OPT $TS_AUTH_OPT "$@" >>"$TS_DIR/logs/$name.log" 2>&1 &
    ts_record "$name" $!
    ts_wait_port "$addr" 10 $! || { tail -5 "$TS_DIR/logs/$name.log" >&2; return 1; }
}

# ts_start_meta_replica I [ARGS]: replica I; --bootstrap only when
# ts_start_metad starts a new group (a restart reads the membership from
# its folder; a wiped replica started alone joins the running group and is
# sent a snapshot).
ts_start_meta_replica() {
    local i=$1 boot=() j spec=
    shift
    if [ "${TS_META_NEW:-0}" = 1 ]; then
        for ((j = 1; j <= TS_META_N; j++)); do
            spec+=${spec:+,}$j=$(ts_meta_raft "$j")
        done
        boot=(--bootstrap "$spec")
    fi
    ts_start_meta_one "$i" --raft "$(ts_meta_raft "$i")" --id "$i" "${boot[@]}" "$@"
}

# ts_meta_keys: copy the keys from the replica that wrote them into
# $TS_DIR/meta and point TESSERA_KEY at the admin's.
ts_meta_keys() {
    local i k dir
    for ((i = 1; i <= TS_META_N; i++)); do
        dir=$(ts_meta_dir "$i")
        for k in admin chunkd; do
            [ -f "$dir/$k.key" ] && [ ! -f "$TS_DIR/meta/$k.key" ] &&
                cp -p "$dir/$k.key" "$TS_DIR/meta/$k.key"
        done
    done
    if [ -f "$TS_DIR/meta/admin.key" ]; then
        export TESSERA_KEY=$TS_DIR/meta/admin.key
    fi
}

# ts_meta_leader: the id of the group's leader (tessera meta status), or
# nothing when none answers or none leads.
ts_meta_leader() {
    ts_meta_keys
    "$TS_BIN/tessera" --meta "$TS_META_ADDR" --json meta status 2>/dev/null |
        python3 -c 'import json,sys; l = json.load(sys.stdin)["leader"]; print(l if l else "")' 2>/dev/null
}

# ts_wait_leader SECONDS: wait until the group has a leader that answers.
ts_wait_leader() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        [ -n "$(ts_meta_leader)" ] && return 0
        sleep 0.1
    done
    echo "cluster: no metad leader after $1 s" >&2
    return 1
}

# ts_start_chunkd I [ARGS]: storage server I (1-based).
ts_start_chunkd() {
    local i=$1 addr http
    shift
    addr=127.0.0.1:$(ts_port "$i")
    http=$(ts_http_opt "chunkd$i" $((10 + i)))
    ts_meta_keys
    mkdir -p "$TS_DIR/chunk$i"
    # shellcheck disable=SC2086
    local key=
    [ -f "$TS_DIR/meta/chunkd.key" ] && key="--key $TS_DIR/meta/chunkd.key"
    # shellcheck disable=SC2086
    setsid "$TS_BIN/tessera-chunkd" --data "$TS_DIR/chunk$i" --listen "$addr" \
        --meta "$TS_META_ADDR" $key $http $TS_SECURE_OPT $TS_AUTH_OPT "$@" \
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

# ts_stop_tier NAME PID...: SIGTERM each running PID, then wait for each
# (up to 10 s; SIGKILL after, said on stderr under NAME's record).  The
# arguments are "name:pid" pairs.
ts_stop_tier() {
    local np i
    for np in "$@"; do
        ts_running "${np#*:}" && kill -TERM "${np#*:}" 2>/dev/null
    done
    for np in "$@"; do
        for ((i = 0; i < 100; i++)); do
            ts_running "${np#*:}" || break
            sleep 0.1
        done
        if ts_running "${np#*:}"; then
            echo "cluster: ${np%%:*} did not stop on SIGTERM; killing it" >&2
            kill -KILL "${np#*:}" 2>/dev/null
        fi
        wait "${np#*:}" 2>/dev/null
    done
}

# ts_stop_all: unmount every mount, then stop the processes in three
# tiers, each gone before the next is signalled: the clients (mounts, NBD
# exports, whatever else a test recorded; newest first), then the chunk
# servers, then the metad replicas.  A client on its way out still sends
# its last records (RELEASEs, SESSION_CLOSE) and writes back delayed
# writes: the servers must still be there to take them.
ts_stop_all() {
    local m name pid j
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
    local -a all=() clients=() chunkds=() metads=() # empty, not unset: set -u
    while read -r name pid; do all=("$name:$pid" "${all[@]}"); done <"$TS_DIR/pids"
    for j in "${all[@]}"; do
        case ${j%%:*} in
        metad*) metads+=("$j") ;;
        chunkd*) chunkds+=("$j") ;;
        *) clients+=("$j") ;;
        esac
    done
    ts_stop_tier "${clients[@]}"
    ts_stop_tier "${chunkds[@]}"
    ts_stop_tier "${metads[@]}"
    : >"$TS_DIR/pids"
}
