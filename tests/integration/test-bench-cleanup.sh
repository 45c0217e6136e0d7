#!/usr/bin/env bash
# test-bench-cleanup.sh: `make bench` stops the MooseFS peer it starts
# (scripts/bench-mfs.sh), checked on a harmless stand-in, since the
# benchmark itself is too long for the test suite.
#
# In a network namespace and veth pair of its own it starts what mfs_up
# would leave behind: two processes in the namespace (one ignores TERM),
# fake mfsmaster/mfschunkserver commands that record the "stop" they are
# asked for, and a tmpfs mounted with MooseFS's source form
# mfs#IP:PORT, held busy by a process; beside it, another MooseFS-looking
# mount that is not ours.  mfs_down must ask each daemon to stop, unmount
# ours (lazily, as it is busy), kill both processes, delete the veth and
# the namespace, say nothing is left, and leave the other mount alone;
# a second mfs_down, with nothing left, must succeed too.  Then bench.sh
# with no system and no part (and a stopped cluster's empty pid list in
# TS_DIR) must remove its work folder on exit.
# Needs root (ip netns, mount).
. "$(dirname "$0")/lib.sh"
it_need ip nsenter mount umount timeout
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }

MFS_NS=tsb-test-$$
MFS_IP=10.78.$((RANDOM % 200 + 10)).1
MFS_VETH0=tsbt$((RANDOM % 100000))a
MFS_VETH1=${MFS_VETH0%a}b
work=$IT_TMP/bench
need_pkgs() { return 0; }
. "$it_root/scripts/bench-mfs.sh"
other=$IT_TMP/other
holder=
gone() { # release what a failed check may have left
    [ -n "$holder" ] && kill "$holder" 2>/dev/null
    umount -l "$other" 2>/dev/null
    mfs_clear 2>/dev/null
}
trap 'gone; it_cleanup' EXIT

ip netns add "$MFS_NS" || it_fail "ip netns add"
ip link add "$MFS_VETH0" type veth peer name "$MFS_VETH1" || it_fail "veth"
ip link set "$MFS_VETH1" netns "$MFS_NS" || it_fail "veth into the namespace"
mkdir -p "$work/mfs/mnt" "$work/mfs/master" "$other" "$IT_TMP/bin"
for i in 1 2 3; do mkdir -p "$work/mfs/cs$i" && : >"$work/mfs/cs$i/mfschunkserver.cfg"; done
: >"$work/mfs/master/mfsmaster.cfg"
for p in mfsmaster mfschunkserver; do
    printf '#!/bin/sh\necho "%s $*" >>"%s/stops"\n' "$p" "$IT_TMP" >"$IT_TMP/bin/$p"
    chmod +x "$IT_TMP/bin/$p"
done
export PATH=$IT_TMP/bin:$PATH

ip netns exec "$MFS_NS" setsid sleep 600 </dev/null >/dev/null 2>&1 &
ip netns exec "$MFS_NS" setsid bash -c 'trap "" TERM; sleep 600' </dev/null >/dev/null 2>&1 &
mount -t tmpfs "mfs#$MFS_IP:19421" "$work/mfs/mnt" || it_fail "mount the stand-in"
mount -t tmpfs "mfs#10.99.0.1:19421" "$other" || it_fail "mount the other"
(cd "$work/mfs/mnt" && exec sleep 600) &
holder=$!
for ((i = 0; i < 50; i++)); do
    [ "$(ip netns pids "$MFS_NS" | wc -l)" -ge 2 ] && break
    sleep 0.1
done
nspids=$(ip netns pids "$MFS_NS")
[ "$(echo "$nspids" | wc -l)" = 2 ] || it_fail "the stand-in processes did not start"
it_expect_eq "our mount is found" "$(mfs_mounts)" "$work/mfs/mnt"

# bench.sh's cleanup stops the Tessera cluster first, whose pid list a
# finished part has emptied already: that must not end the cleanup (under
# set -u an empty list once did, leaving MooseFS running).
ts_stop_all && ts_stop_all || it_fail "ts_stop_all on an empty pid list"
mfs_down 2>"$IT_TMP/down.err" || it_fail "mfs_down: $(cat "$IT_TMP/down.err")"
it_expect_eq "each daemon asked to stop" "$(sort "$IT_TMP/stops" | tr '\n' ' ')" \
    "mfschunkserver -c $work/mfs/cs1/mfschunkserver.cfg stop mfschunkserver -c $work/mfs/cs2/mfschunkserver.cfg stop mfschunkserver -c $work/mfs/cs3/mfschunkserver.cfg stop mfsmaster -c $work/mfs/master/mfsmaster.cfg stop "
awk -v m="$work/mfs/mnt" '$2 == m { f = 1 } END { exit f }' /proc/mounts ||
    it_fail "our mount is still there"
for p in $nspids; do ts_running "$p" && it_fail "process $p of the namespace still runs"; done
[ -e "/run/netns/$MFS_NS" ] && it_fail "the namespace is still there"
ip link show "$MFS_VETH0" >/dev/null 2>&1 && it_fail "the veth is still there"
awk -v m="$other" '$2 == m { f = 1 } END { exit !f }' /proc/mounts ||
    it_fail "mfs_down unmounted a MooseFS mount that is not ours"
it_ok "mfs_down stops the daemons, unmounts, kills, deletes the namespace and veth, and nothing else"
mfs_down 2>"$IT_TMP/down.err" || it_fail "a second mfs_down: $(cat "$IT_TMP/down.err")"
it_ok "mfs_down with nothing left succeeds"

# bench.sh with nothing to run: its work folder goes on exit.
out=$(BENCH_SYSTEMS=" " BENCH_PARTS=" " bash "$it_root/scripts/bench.sh" 2>&1)
w=$(grep -o '/tmp/tessera-bench\.[A-Za-z0-9]*' <<<"$out" | head -1)
for d in /tmp/tessera-bench.*; do
    [ -e "$d" ] || continue
    # a folder of a run of someone else started before ours is not ours
    [ "$d" -nt "$IT_TMP" ] && it_fail "bench.sh left $d: $out"
done
it_ok "bench.sh removes its work folder on exit${w:+ ($w)}"
