#!/usr/bin/env bash
# test-meta-once.sh: a request sent again after the metad leader died is
# answered once (docs/protocol.md §5.4), by a client that speaks the
# protocol itself (once_peer.py) to three metad replicas on a Raft log.
#   1. A session makes /once and /once/f (MKNOD, EXCL) on the leader, and
#      keeps the answer; the leader that served it is killed with -9.
#   2. On a new connection to the new leader the session is renewed and
#      the same MKNOD is sent again with the same request id: the same
#      answer, byte for byte (not EEXIST), and the directory unchanged;
#      with a new request id it is EEXIST.  The admin CLI sees one file,
#      the inode of the first answer.
#   3. SNAPSHOT of /once/f as /once/s, sent again the same way: the same
#      answer; with a new request id EEXIST.  /once/s is unlinked.
#   4. UNLINK of /once/f, then again with the same request id on a new
#      connection: the same answer and the directory unchanged; with a new
#      request id ENOENT.  The CLI sees no file.  SESSION_CLOSE drops the
#      session's kept answers on every replica.
# Needs: $BUILD/bin/tessera-metad, tessera, python3, sqlite3; exits 77
# when one is missing.
export META=3
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera python3 sqlite3

P="python3 $(dirname "$0")/once_peer.py"
STATE=$IT_TMP/once.json
ts_start_metad || it_fail "the metad group did not start"
it_ok "three replicas up"

# peer PHASE: run once_peer.py's PHASE against the group; its output is in
# $IT_TMP/PHASE.out (and the test's log).
peer() {
    $P "$1" "$STATE" "$TS_META_ADDR" "$TESSERA_KEY" >"$IT_TMP/$1.out" 2>&1
    local rc=$?
    cat "$IT_TMP/$1.out"
    [ $rc -eq 0 ] || it_fail "once_peer.py $1: $(grep FAIL "$IT_TMP/$1.out")"
}

# files: the regular files under /once, as the admin CLI counts them.
files() { it_json "sum(g['files'] for g in j['goals'])" getgoal -r /once; }

# ---- 1. the create, then kill -9 of the replica that served it --------------
peer create
addr=$(sed -n 's/^addr=\([^ ]*\) .*/\1/p' "$IT_TMP/create.out")
ino=$(sed -n 's/^addr=.* ino=//p' "$IT_TMP/create.out")
served=
for ((i = 1; i <= TS_META_N; i++)); do
    [ "$(ts_meta_addr "$i")" = "$addr" ] && served=$i
done
[ -n "$served" ] || it_fail "the create was served by $addr, no replica of the group"
it_ok "replica $served made /once/f, inode $ino"
ts_kill "$(ts_meta_name "$served")" KILL
it_meta_new_leader "$served"
it_ok "replica $served, which served the create, killed; replica $new leads"

# ---- 2. the create sent again to the new leader ------------------------------
peer again
it_expect_eq "files under /once" "$(files)" 1
it_expect_eq "the inode of /once/f" "$(it_json "j['ino']" fileinfo /once/f)" "$ino"

# ---- 3. a snapshot sent again ------------------------------------------------
peer snapshot
it_expect_eq "files under /once after the snapshot's unlink" "$(files)" 1

# ---- 4. the unlink sent again ------------------------------------------------
peer unlink
it_expect_eq "files under /once after the unlink" "$(files)" 0
session=$(sed -n 's/^session=\([0-9]*\) closed/\1/p' "$IT_TMP/unlink.out")
commit=$(it_json "j['commit']" meta status)
for ((i = 1; i <= TS_META_N; i++)); do
    [ "$i" = "$served" ] && continue
    it_meta_applied "$i" "$commit"
    it_expect_eq "replica $i: answers kept for the closed session" \
        "$(sqlite3 "$(ts_meta_dir "$i")/meta.db" \
            "SELECT count(*) FROM replies WHERE session_id = $session")" 0
done
echo "PASS"
