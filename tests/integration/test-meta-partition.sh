#!/usr/bin/env bash
# test-meta-partition.sh: a partitioned metad leader cannot acknowledge
# anything (no split brain; docs/architecture.md, "The replicated log").
#
# Three metad replicas are three hosts: each runs in a network namespace
# of its own, linked by a veth pair to a hub namespace that routes between
# them and holds chunkd, a FUSE mount and the admin CLI (the test runs its
# cluster inside the hub):
#
#     replica 1 10.213.1.2 --+
#     replica 2 10.213.2.2 --+-- hub (10.213.I.1): chunkd, mount, tessera
#     replica 3 10.213.3.2 --+
#
# The partition: the hub drops whatever it would forward between the
# leader and the two others (ip rule ... blackhole), both ways, while the
# hub itself (the clients, chunkd) still reaches every replica.
#   1. The mount creates files in a loop (each written and closed); a
#      name is acknowledged once that returned.
#   2. The leader is cut off; at once several CLI creates are sent to it
#      alone (--meta naming only it): every one fails, none is redirected
#      to a leader that accepted it.  The two others elect a new leader and
#      the mount's creates go on there.  While cut off, the old replica
#      does not answer a read of a name the new leader created.
#   3. The partition heals: the old leader follows, catches up, and its
#      database (as the group's) holds every acknowledged name and none of
#      the names it was sent alone.
#   4. The leader is cut off again and stops on SIGTERM.
# Namespaces, links and processes go on every exit path.  Skips (77) when
# network namespaces cannot be made (not root, no ip netns).
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, tessera, ip, nsenter,
# sqlite3, python3.
set -u
NET=10.213

# ---- outside: the namespaces, then this script again inside the hub --------
if [ "${1:-}" != inside ]; then
    for p in ip nsenter; do
        command -v "$p" >/dev/null 2>&1 || { echo "skip: $p not available"; exit 77; }
    done
    ns=tsp$$
    HUB=${ns}h
    probe=${ns}probe
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "skip: ip netns is not available (needs root)"
        exit 77
    fi
    ip netns del "$probe"
    inner=
    state=$(mktemp -d /tmp/tessera-partition.XXXXXX)
    # Everything the namespaces hold goes, whatever state the test is in:
    # the inner script's own cleanup first, then any process left in a
    # namespace (only ours run there), the mount, the namespaces.
    cleanup() {
        local rc=$? i n pids tmp
        trap - EXIT INT TERM
        if [ -n "$inner" ]; then
            kill -TERM "$inner" 2>/dev/null
            for ((i = 0; i < 300; i++)); do
                kill -0 "$inner" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$inner" 2>/dev/null
            wait "$inner" 2>/dev/null
        fi
        for n in "$HUB" "${ns}1" "${ns}2" "${ns}3"; do
            pids=$(ip netns pids "$n" 2>/dev/null)
            # shellcheck disable=SC2086 # a list of pids
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        done
        # The inner script's folder, when it could not remove it itself.
        if [ -s "$state/tmp" ]; then
            tmp=$(cat "$state/tmp")
            awk -v m="$tmp/cluster/mnt" '$2 == m { f = 1 } END { exit !f }' /proc/mounts &&
                { fusermount3 -u "$tmp/cluster/mnt" 2>/dev/null ||
                    fusermount3 -uz "$tmp/cluster/mnt" 2>/dev/null; }
            case $tmp in
            /tmp/tessera-test.*) [ -n "${IT_KEEP:-}" ] || rm -rf "$tmp" ;;
            esac
        fi
        for n in "$HUB" "${ns}1" "${ns}2" "${ns}3"; do
            [ -e "/run/netns/$n" ] && ip netns del "$n" 2>/dev/null
        done
        rm -rf "$state"
        exit "$rc"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns add "$HUB" || exit 1
    ip -n "$HUB" link set lo up
    nsenter --net="/run/netns/$HUB" sysctl -qw net.ipv4.ip_forward=1 || exit 1
    for i in 1 2 3; do
        ip netns add "$ns$i" || exit 1
        ip -n "$ns$i" link set lo up
        ip -n "$HUB" link add "r$i" type veth peer name eth0 netns "$ns$i" || exit 1
        ip -n "$HUB" addr add "$NET.$i.1/24" dev "r$i"
        ip -n "$HUB" link set "r$i" up
        ip -n "$ns$i" addr add "$NET.$i.2/24" dev eth0
        ip -n "$ns$i" link set eth0 up
        ip -n "$ns$i" route add default via "$NET.$i.1"
    done
    PART_NS=$ns PART_STATE=$state nsenter --net="/run/netns/$HUB" \
        bash "$0" inside &
    inner=$!
    wait "$inner"
    rc=$?
    inner=
    exit "$rc"
fi

# ---- inside the hub ----------------------------------------------------------
export META=3
TS_META_HOSTS="$NET.1.2 $NET.2.2 $NET.3.2"
TS_META_NETNS="${PART_NS}1 ${PART_NS}2 ${PART_NS}3"
TS_HTTP=0
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera sqlite3 python3
echo "$IT_TMP" >"$PART_STATE/tmp"
T="$TS_BIN/tessera"

ts_start_metad || it_fail "the metad group did not start"
ts_start_chunkd 1 || it_fail "chunkd did not start"
ts_wait_servers 1 20 || it_fail "the storage server did not register"
ts_start_mount || it_fail "mount did not start"
"$T" setgoal 1 / >/dev/null || it_fail "setgoal 1"
mkdir -p "$TS_MNT/w" || it_fail "mkdir through the mount"
old=$(ts_meta_leader)
[ -n "$old" ] || it_fail "no leader"
it_ok "three replicas on three hosts, leader $old"

# cut I / heal I: drop (or forward again) everything between replica I and
# the two others.
cut_rules() {
    local j
    for ((j = 1; j <= 3; j++)); do
        [ "$j" = "$1" ] && continue
        ip rule "$2" from "$NET.$1.2/32" to "$NET.$j.2/32" priority $((100 + j)) blackhole
        ip rule "$2" from "$NET.$j.2/32" to "$NET.$1.2/32" priority $((110 + j)) blackhole
    done
}

# The mount's workload: create, write, close (which writes the data back);
# a name is listed once that returned.  A few a second: what counts is
# that they go on.
files_loop() {
    local n=0
    while [ ! -f "$IT_TMP/stop" ]; do
        n=$((n + 1))
        echo "file $n" 2>>"$IT_TMP/files.err" >"$TS_MNT/w/f$n" &&
            echo "$n" >>"$IT_TMP/files.acked"
        sleep 0.2
    done
}
: >"$IT_TMP/files.acked"
files_loop &
fpid=$!
it_bg "$fpid"
for ((i = 0; i < 100; i++)); do
    [ -s "$IT_TMP/files.acked" ] && break
    sleep 0.1
done
[ -s "$IT_TMP/files.acked" ] || it_fail "the mount's creates do not go on: $(tail -3 "$IT_TMP/files.err")"

# ---- 2. the leader is cut off ----------------------------------------------
cut_rules "$old" add || it_fail "cannot cut replica $old off"
before=$(wc -l <"$IT_TMP/files.acked")
# At once, creates sent to the old leader alone: it may still believe it
# leads for up to an election timeout and take them into its log.
alone_addr=$(ts_meta_addr "$old")
for k in 1 2 3 4 5 6; do
    "$T" --meta "$alone_addr" image create "/alone$k.img" 1M \
        >"$IT_TMP/alone$k.out" 2>&1 &
    eval "apid$k=\$!"
    sleep 0.1
done
others=
for ((i = 1; i <= 3; i++)); do
    [ "$i" != "$old" ] && others+=${others:+,}$(ts_meta_addr "$i")
done
new=
for ((i = 0; i < 200; i++)); do
    new=$("$T" --meta "$others" --json meta status 2>/dev/null |
        python3 -c 'import json,sys; j = json.load(sys.stdin); print(j["leader"] or "")' 2>/dev/null)
    [ -n "$new" ] && [ "$new" != "$old" ] && break
    sleep 0.1
done
[ -n "$new" ] && [ "$new" != "$old" ] || it_fail "the majority elected no leader"
it_ok "replica $new leads the majority"
for k in 1 2 3 4 5 6; do
    p="apid$k"
    if wait "${!p}"; then
        it_fail "the cut-off replica acknowledged /alone$k.img: $(cat "$IT_TMP/alone$k.out")"
    fi
done
it_ok "the cut-off replica acknowledged none of its 6 creates: $(tail -1 "$IT_TMP/alone1.out")"
# What the old leader took into its log alone (last_index past commit).
# (meta status exits 1 when the replica knows no leader.)
"$T" --meta "$alone_addr" --json meta status >"$IT_TMP/alone-status.json" 2>&1
python3 -c 'import json,sys; j = json.load(open(sys.argv[1]))
print("the old leader, cut off: leader=%s term=%s commit=%s last_index=%s" %
      (j["leader"], j["term"], j["commit"], j["last_index"]))' \
    "$IT_TMP/alone-status.json" ||
    it_fail "the cut-off replica does not answer META_STATUS: $(cat "$IT_TMP/alone-status.json")"

# The majority serves: the mount's creates go on, and the new leader's
# name is not served stale by the old one.
for ((i = 0; i < 300; i++)); do
    [ "$(wc -l <"$IT_TMP/files.acked")" -gt $((before + 2)) ] && break
    sleep 0.1
done
[ "$(wc -l <"$IT_TMP/files.acked")" -gt $((before + 2)) ] ||
    it_fail "the mount's creates did not go on with the majority: $(tail -3 "$IT_TMP/files.err")"
"$T" --meta "$others" image create /majority.img 1M >/dev/null ||
    it_fail "the majority refused a create"
# The CLI asks it again and again for a leader (15 s): 4 s will do.
timeout 4 "$T" --meta "$alone_addr" getgoal /majority.img >"$IT_TMP/stale.out" 2>&1
rc=$?
[ "$rc" = 124 ] || grep -q "no metad replica leads" "$IT_TMP/stale.out" ||
    it_fail "the cut-off replica answered a read (rc $rc): $(cat "$IT_TMP/stale.out")"
it_ok "the majority serves (files $before -> $(wc -l <"$IT_TMP/files.acked")); the cut-off replica refuses reads"

# ---- 3. the partition heals ------------------------------------------------
cut_rules "$old" del || it_fail "cannot heal the partition"
touch "$IT_TMP/stop"
wait "$fpid"
it_meta_applied "$old" "$(it_json "j['commit']" --meta "$others" meta status)"
leader=$(ts_meta_leader)
it_ok "healed: replica $leader leads, the old leader $old applied $applied"

# Every acknowledged name is there, through the group and in the old
# leader's own database; nothing sent to it alone is.
names() { # names DB: every name in the namespace, one a line
    sqlite3 "$1" "SELECT CAST(name AS TEXT) FROM dirents" | sort
}
names "$(ts_meta_dir "$old")/meta.db" >"$IT_TMP/old.names"
while read -r n; do
    [ "$(cat "$TS_MNT/w/f$n" 2>/dev/null)" = "file $n" ] ||
        it_fail "acknowledged file f$n is missing or wrong"
    grep -qx "f$n" "$IT_TMP/old.names" ||
        it_fail "the old leader's database lacks acknowledged file f$n"
done <"$IT_TMP/files.acked"
grep -qx majority.img "$IT_TMP/old.names" || it_fail "the old leader lacks /majority.img"
for k in 1 2 3 4 5 6; do
    grep -qx "alone$k.img" "$IT_TMP/old.names" &&
        it_fail "/alone$k.img, sent to the cut-off replica alone, survived in its database"
    "$T" getgoal "/alone$k.img" >/dev/null 2>&1 &&
        it_fail "/alone$k.img, sent to the cut-off replica alone, survived in the group"
done
it_ok "all $(wc -l <"$IT_TMP/files.acked") acknowledged files are there; nothing the cut-off replica was sent alone survived"

# ---- 4. a replica cut off stops on SIGTERM -----------------------------------
# Its peers' packets vanish, so its raft links hang rather than fail.
leader=$(ts_meta_leader)
cut_rules "$leader" add || it_fail "cannot cut replica $leader off"
sleep 1
it_stops_on_term "$(ts_meta_name "$leader")"
it_ok "replica $leader, cut off from its group, stopped on SIGTERM"
echo "PASS"
