# bench-mfs.sh: the MooseFS peer of `make bench`, sourced by bench.sh.
#
# mfs_up starts, inside a private network namespace ($MFS_NS, reached
# through a veth pair $MFS_VETH0/$MFS_VETH1 with address $MFS_IP that
# exists only there): mfsmaster, three mfschunkserver and mfsmount, all
# under $work/mfs (the caller's work folder; need_pkgs is the caller's
# too).  MooseFS refuses chunk servers against a loopback master, hence
# the namespace; the mount is still visible here.
#
# mfs_down stops all of it, whatever state it is in (never started, half
# started, running, a run killed earlier), and says what it could not
# stop:
#   1. the mounts of our master (source "mfs#$MFS_IP:PORT", which
#      /proc/mounts spells mfs\043...): unmounted, lazily if busy; no
#      other MooseFS mount of the machine is touched;
#   2. the daemons: a clean "stop" when their config is there, then every
#      process left in the namespace gets TERM, and KILL after 5 s;
#   3. the veth pair and the namespace are deleted.
# The caller removes $work afterwards.
MFS_NS=${MFS_NS:-tessera-bench}
MFS_IP=${MFS_IP:-10.77.0.1}
MFS_VETH0=${MFS_VETH0:-tsbench0}
MFS_VETH1=${MFS_VETH1:-tsbench1}
mfs_ns() { nsenter --net="/run/netns/$MFS_NS" "$@"; }
mfs_ns_exists() { [ -e "/run/netns/$MFS_NS" ]; }

# mfs_mounts: the mount points of our master's mounts, one a line.
mfs_mounts() {
    awk -v src="$MFS_IP:" '
        { s = $1; gsub(/\\043/, "#", s) }
        index(s, "mfs#" src) == 1 { gsub(/\\040/, " ", $2); print $2 }' /proc/mounts
}

mfs_unmount() {
    local m
    while read -r m; do
        [ -n "$m" ] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done < <(mfs_mounts)
}

# mfs_kill_ns: TERM every process of the namespace, KILL what is left
# after 5 s.
mfs_kill_ns() {
    local pids i
    mfs_ns_exists || return 0
    pids=$(ip netns pids "$MFS_NS" 2>/dev/null)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086 # a list of pids
    kill -TERM $pids 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        [ -z "$(ip netns pids "$MFS_NS" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    pids=$(ip netns pids "$MFS_NS" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
    sleep 0.2
}

# mfs_clear: everything but the clean stops (a run killed earlier left
# MooseFS holding the namespace and its ports).
mfs_clear() {
    mfs_unmount
    mfs_kill_ns
    ip link del "$MFS_VETH0" 2>/dev/null
    mfs_ns_exists && ip netns del "$MFS_NS" 2>/dev/null
    return 0
}

mfs_up() {
    local d=$work/mfs i
    need_pkgs moosefs-master moosefs-chunkserver moosefs-client || return 1
    mfs_clear
    ip netns add "$MFS_NS" || return 1
    ip link add "$MFS_VETH0" type veth peer name "$MFS_VETH1" || return 1
    ip link set "$MFS_VETH1" netns "$MFS_NS" || return 1
    mfs_ns ip link set lo up
    mfs_ns ip addr add "$MFS_IP/24" dev "$MFS_VETH1" || return 1
    mfs_ns ip link set "$MFS_VETH1" up
    ip link set "$MFS_VETH0" up
    mkdir -p "$d/master" "$d/mnt"
    cp /var/lib/mfs/metadata.mfs.empty "$d/master/metadata.mfs"
    echo "* / rw,alldirs,maproot=0" >"$d/master/exports.cfg"
    : >"$d/master/topology.cfg"
    cat >"$d/master/mfsmaster.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $d/master
EXPORTS_FILENAME = $d/master/exports.cfg
TOPOLOGY_FILENAME = $d/master/topology.cfg
MATOML_LISTEN_HOST = $MFS_IP
MATOML_LISTEN_PORT = 19419
MATOCS_LISTEN_HOST = $MFS_IP
MATOCS_LISTEN_PORT = 19420
MATOCL_LISTEN_HOST = $MFS_IP
MATOCL_LISTEN_PORT = 19421
EOF
    mfs_ns mfsmaster -c "$d/master/mfsmaster.cfg" start >/dev/null 2>&1 || return 1
    for i in 1 2 3; do
        mkdir -p "$d/cs$i/hdd"
        echo "$d/cs$i/hdd" >"$d/cs$i/hdd.cfg"
        cat >"$d/cs$i/mfschunkserver.cfg" <<EOF
WORKING_USER = root
WORKING_GROUP = root
DATA_PATH = $d/cs$i
HDD_CONF_FILENAME = $d/cs$i/hdd.cfg
MASTER_HOST = $MFS_IP
MASTER_PORT = 19420
CSSERV_LISTEN_HOST = $MFS_IP
CSSERV_LISTEN_PORT = $((19421 + i))
HDD_LEAVE_SPACE_DEFAULT = 1GiB
EOF
        mfs_ns mfschunkserver -c "$d/cs$i/mfschunkserver.cfg" start >/dev/null 2>&1 || return 1
    done
    sleep 3
    mfs_ns mfsmount -H "$MFS_IP" -P 19421 "$d/mnt" >/dev/null 2>&1 || return 1
}

mfs_down() {
    local d=$work/mfs i left
    mfs_unmount
    if mfs_ns_exists; then
        for i in 1 2 3; do
            [ -f "$d/cs$i/mfschunkserver.cfg" ] &&
                timeout 30 nsenter --net="/run/netns/$MFS_NS" \
                    mfschunkserver -c "$d/cs$i/mfschunkserver.cfg" stop >/dev/null 2>&1
        done
        [ -f "$d/master/mfsmaster.cfg" ] &&
            timeout 30 nsenter --net="/run/netns/$MFS_NS" \
                mfsmaster -c "$d/master/mfsmaster.cfg" stop >/dev/null 2>&1
    fi
    mfs_clear
    left=$(mfs_mounts)
    mfs_ns_exists &&
        left="$left namespace $MFS_NS: $(ip netns pids "$MFS_NS" 2>/dev/null | tr '\n' ' ')"
    ip link show "$MFS_VETH0" >/dev/null 2>&1 && left="$left link $MFS_VETH0"
    if [ -n "${left// /}" ]; then
        echo "bench: could not stop all of MooseFS: $left" >&2
        return 1
    fi
    return 0
}
