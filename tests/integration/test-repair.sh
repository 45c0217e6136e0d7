#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-repair.sh: failure detection, re-replication, reintegration and
# drain with real daemons.
#
# Starts tessera-metad, four tessera-chunkd and a FUSE mount on loopback,
# writes $REPAIR_MIB MiB (default 32) as files of 4 MiB (goal 3), then:
#   1. kill -9 one chunkd holding replicas: `tessera status` reports it
#      down within 6.5 s, and `tessera checkfile` shows every file back at
#      its goal on the remaining servers within 60 s; the kill-to-restored
#      time is printed ("repair: ... restored in S s").
#   2. the killed server restarts: its copies (dropped meanwhile) are
#      discarded and it ends holding nothing; every file reads back equal.
#   3. setgoal/getgoal; `tessera server drain ID --wait` of a server that
#      holds replicas: it ends empty, every file is still at its goal and
#      reads back equal; `tessera server remove ID` then forgets it.
#   4. `tessera fsck` exits 0 on the healthy cluster.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, tessera, fusermount3,
# python3, sha256sum; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera fusermount3 \
    mountpoint python3 sha256sum
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

MIB=${REPAIR_MIB:-32}
NFILES=$((MIB / 4))
T="$TS_BIN/tessera"

ts_start_metad --suspect-ms 1500 --down-ms 5000 || it_fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"

state_of() { it_json "[s['state'] for s in j['server_list'] if s['id']==$1][0]" status; }

# all_at_goal: every file's copies are at its goal (checkfile exits 0).
all_at_goal() {
    local k
    for ((k = 1; k <= NFILES; k++)); do
        "$T" checkfile "/f$k" >/dev/null 2>&1 || return 1
    done
}

verify_data() {
    local k
    for ((k = 1; k <= NFILES; k++)); do
        [ "$(it_sha256 <"$TS_MNT/f$k")" = "$(cat "$IT_TMP/f$k.sha")" ] ||
            it_fail "$1: /f$k does not read back equal"
    done
    it_ok "$1: $NFILES files read back equal"
}

now() { date +%s.%N; }

# ---- Data ----------------------------------------------------------------
for ((k = 1; k <= NFILES; k++)); do
    python3 -c 'import os, sys; sys.stdout.buffer.write(os.urandom(4 << 20))' \
        >"$IT_TMP/src"
    it_sha256 <"$IT_TMP/src" >"$IT_TMP/f$k.sha"
    cp "$IT_TMP/src" "$TS_MNT/f$k" || it_fail "write /f$k"
done
sync "$TS_MNT" 2>/dev/null || sync
for ((i = 0; i < 100; i++)); do all_at_goal && break; sleep 0.1; done
all_at_goal || it_fail "files not at goal after writing"
it_ok "wrote $NFILES files, $MIB MiB, goal $("$T" getgoal /f1 | awk '{print $2}')"

# ---- 1. Kill a server holding replicas -----------------------------------
victim=$(it_json "j['chunks'][0]['replicas'][0]['server']" fileinfo /f1)
vi=$(it_server_index "$victim")
[ -n "$vi" ] || it_fail "no chunkd for server $victim"
t0=$(now)
ts_kill "chunkd$vi" KILL
down=
for ((i = 0; i < 65; i++)); do
    [ "$(state_of "$victim")" = down ] && { down=$(now); break; }
    sleep 0.1
done
[ -n "$down" ] || it_fail "server $victim not reported down within 6.5 s"
it_ok "server $victim reported down after $(python3 -c "print(round($down - $t0, 1))") s"
rc=0
"$T" status >"$IT_TMP/status.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || it_fail "tessera status with a server down: exit $rc, want 1"
grep -q "down" "$IT_TMP/status.out" || it_fail "status does not show the server down"

restored=
for ((i = 0; i < 600; i++)); do
    all_at_goal && { restored=$(now); break; }
    sleep 0.1
done
[ -n "$restored" ] || { "$T" status; it_fail "goal not restored within 60 s"; }
secs=$(python3 -c "print(round($restored - $t0, 2))")
echo "repair: kill -9 of server $victim to goal restored for $MIB MiB ($NFILES chunks, goal 3): $secs s"
it_ok "goal restored on the remaining servers"
for ((k = 1; k <= NFILES; k++)); do
    it_json "all(r['server'] != $victim for c in j['chunks'] for r in c['replicas'])" \
        fileinfo "/f$k" | grep -q True || it_fail "/f$k still lists server $victim"
done
verify_data "after repair"

# ---- 2. The killed server comes back -------------------------------------
ts_start_chunkd "$vi" || it_fail "chunkd $vi did not restart"
for ((i = 0; i < 100; i++)); do
    [ "$(state_of "$victim")" = up ] && break
    sleep 0.1
done
[ "$(state_of "$victim")" = up ] || it_fail "server $victim not up after restart"
for ((i = 0; i < 150; i++)); do
    n=$(find "$TS_DIR/chunk$vi" -type f -path '*chunks*' ! -name '*.tmp' 2>/dev/null | wc -l)
    c=$(it_json "[s['chunks'] for s in j['server_list'] if s['id']==$victim][0]" status)
    [ "${c:-1}" -eq 0 ] && break
    sleep 0.2
done
[ "${c:-1}" -eq 0 ] || it_fail "server $victim still holds $c chunks after rejoining"
it_ok "rejoined server discarded its stale replicas"
all_at_goal || it_fail "files not at goal after the rejoin"
verify_data "after rejoin"

# ---- 3. Goals, drain and remove ------------------------------------------
"$T" setgoal 2 /f1 >/dev/null || it_fail "setgoal 2 /f1"
it_expect_eq "getgoal /f1" "$("$T" getgoal /f1)" "/f1: 2"
for ((i = 0; i < 100; i++)); do
    [ "$(it_json "len(j['chunks'][0]['replicas'])" fileinfo /f1)" = 2 ] && break
    sleep 0.1
done
it_expect_eq "surplus copy removed" "$(it_json "len(j['chunks'][0]['replicas'])" fileinfo /f1)" 2
"$T" setgoal -r 3 / >/dev/null || it_fail "setgoal -r 3 /"
"$T" getgoal -r / | grep -qE '^ +3 +'"$NFILES"' ' || it_fail "getgoal -r: $("$T" getgoal -r /)"
it_ok "getgoal -r summary"

drain=$(it_json "[r['server'] for r in j['chunks'][0]['replicas'] if r['server'] != $victim][0]" fileinfo /f2)
t0=$(now)
timeout 90 "$T" server drain "$drain" --wait >"$IT_TMP/drain.out" 2>&1 ||
    { cat "$IT_TMP/drain.out"; it_fail "drain of server $drain did not finish"; }
echo "drain: server $drain emptied in $(python3 -c "print(round($(now) - $t0, 2))") s"
it_expect_eq "drained server holds no replica" \
    "$(it_json "[s['replicas'] for s in j if s['id']==$drain][0]" servers)" 0
all_at_goal || it_fail "files not at goal after the drain"
verify_data "after drain"
ts_kill "chunkd$(it_server_index "$drain")" TERM
"$T" server remove "$drain" >/dev/null || it_fail "remove drained server"
it_expect_eq "removed server is gone" \
    "$(it_json "len([s for s in j if s['id']==$drain])" servers)" 0

# ---- 4. fsck -------------------------------------------------------------
for ((i = 0; i < 50; i++)); do "$T" fsck >/dev/null 2>&1 && break; sleep 0.2; done
"$T" fsck >"$IT_TMP/fsck.out" 2>&1 || { cat "$IT_TMP/fsck.out"; it_fail "fsck"; }
it_ok "fsck clean"
echo "PASS"
