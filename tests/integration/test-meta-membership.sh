#!/usr/bin/env bash
# test-meta-membership.sh: `tessera meta add|remove` grow and shrink a
# running metad group (docs/operations.md, "Metadata replicas").
#
#   1. A group of three serves; a fourth replica starts empty, without
#      --bootstrap, and `tessera meta add` makes it a member: meta status
#      lists it as a voter with its addresses (and the replicas that
#      never led with theirs), and it applies what the group commits, the
#      records from before it came included.
#   2. `tessera meta remove` takes a follower out: meta status no longer
#      lists it, and the removed replica is stopped.
#   3. The group of three that is left loses one more and still serves:
#      two of three are a majority (with the removed one still counted,
#      two of four would not be).
# Needs: $BUILD/bin/tessera-metad, tessera, sqlite3, python3.
export META=3
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera sqlite3 python3

T="$TS_BIN/tessera"
ts_start_metad || it_fail "the metad group did not start"
"$T" image create /before.img 1M >/dev/null || it_fail "image create"

# members: "id voter|spare client" per member, as meta status --json
# lists them.
members() {
    it_json "'\n'.join('%s %s %s' % (m['id'],
        'voter' if m['voter'] else 'spare', m['client']) for m in j['members'])" \
        meta status
}
# wait_applied I: replica I's database has applied the group's commit.
wait_applied() {
    it_meta_applied "$1" \
        "$(it_json "j['commit']" --meta "$(ts_meta_addr "$(ts_meta_leader)")" meta status)"
}
# has_name I NAME: replica I's database holds a root entry NAME.
has_name() {
    [ "$(sqlite3 "$(ts_meta_dir "$1")/meta.db" \
        "SELECT count(*) FROM dirents WHERE CAST(name AS TEXT) = '$2'")" = 1 ]
}

# ---- 1. grow to four ---------------------------------------------------------
printf -v TS_META4_ADDR '127.0.0.1:%s' "$(ts_port 34)"
printf -v TS_META4_RAFT '127.0.0.1:%s' "$(ts_port 44)"
ts_start_meta_one 4 --raft "$TS_META4_RAFT" --id 4 || it_fail "replica 4 did not start"
"$T" meta add 4 "$TS_META4_RAFT" "$TS_META4_ADDR" || it_fail "meta add 4"
# The replica's client address is a record of its own, applied just
# after the membership change, and meta status answers from the replica
# it reaches, which may not have applied it yet: wait for it.
for ((i = 0; i < 50; i++)); do
    members >"$IT_TMP/members"
    grep -qx "4 voter $TS_META4_ADDR" "$IT_TMP/members" && break
    sleep 0.1
done
cat "$IT_TMP/members"
grep -qx "4 voter $TS_META4_ADDR" "$IT_TMP/members" ||
    it_fail "meta status does not list replica 4 as a voter at $TS_META4_ADDR"
[ "$(wc -l <"$IT_TMP/members")" = 4 ] || it_fail "not four members"
# Replicas that never led show their client address too (each gives its
# own; meta status asks those of --meta).
grep -q " -$" "$IT_TMP/members" && it_fail "a member's client address is unknown"
"$T" image create /after-add.img 1M >/dev/null || it_fail "image create with four"
wait_applied 4
has_name 4 before.img && has_name 4 after-add.img ||
    it_fail "replica 4 lacks what the group committed"
it_ok "replica 4 added; it holds the records from before and after"

# ---- 2. shrink: remove a follower --------------------------------------------
leader=$(ts_meta_leader)
gone=
for i in 1 2 3; do [ "$i" != "$leader" ] && { gone=$i; break; }; done
"$T" meta remove "$gone" || it_fail "meta remove $gone"
# meta status answers from the replica it reaches, which may not have
# applied the change yet: wait for it.
for ((i = 0; i < 50; i++)); do
    members >"$IT_TMP/members"
    grep -q "^$gone " "$IT_TMP/members" || break
    sleep 0.1
done
cat "$IT_TMP/members"
grep -q "^$gone " "$IT_TMP/members" && it_fail "meta status still lists replica $gone"
[ "$(wc -l <"$IT_TMP/members")" = 3 ] || it_fail "not three members"
it_stops_on_term "$(ts_meta_name "$gone")"
"$T" image create /after-remove.img 1M >/dev/null || it_fail "image create after the removal"
it_ok "replica $gone removed; the group serves"

# ---- 3. two of the three left still serve -----------------------------------
other=
for i in 1 2 3 4; do
    [ "$i" != "$leader" ] && [ "$i" != "$gone" ] && { other=$i; break; }
done
ts_kill "$(ts_meta_name "$other")" KILL
ts_forget "$(ts_meta_name "$other")"
"$T" image create /two-of-three.img 1M >"$IT_TMP/two.out" 2>&1 ||
    it_fail "two replicas of three refused a create: $(cat "$IT_TMP/two.out")"
it_ok "with replica $other down too, two of three serve"
echo "PASS"
