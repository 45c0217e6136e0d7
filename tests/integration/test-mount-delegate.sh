#!/usr/bin/env bash
# test-mount-delegate.sh: creates and unlinks answered by the mount in a
# directory delegated to its session (docs/caching.md, "Delegated
# directories"), seen by a second mount B, through a metad restart and a
# mount killed after an fsync of the directory.
#   1. 300 creates on A in a directory A made are answered by A (its local
#      changes counter grows by 300; after an fsync of the directory A
#      has sent 300 MKNODs, no more), and B
#      lists all 300 at once (its listing recalls the delegation); a file's
#      mode, owner and mtime and the directory's mtime are the same on B.
#      The 300 creates hand the reading of requests on fewer than 30 times.
#   2. Once B looked at d it holds a promise there: A's creates go the
#      ordinary way (DIR_DELEGATE is refused while another client caches
#      the directory) and B sees each at once.
#   3. 100 unlinks on A in a directory B has not looked at are answered by
#      A; B then lists the other 100, and a name B makes there is on A.
#   4. A file created locally takes writes and reads them back; unlinked
#      while open it still reads; O_EXCL on a name A made is EEXIST.
#   5. 200 creates, fsync of the directory, kill -9 of A: B sees all 200.
#   6. kill -9 and restart of metad while A creates: every name created
#      before A's fsync of the directory returned exists afterwards, and A
#      counts no refused change.
#   7. -o delegate=no works as before; a bad value is refused.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, curl, python3; exits 77
# when one is missing.
. "$(dirname "$0")/lib.sh"
it_need curl python3 fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"

metric() { it_mount_metric "$1"; }
local_sent() { metric tessera_mount_local_changes_total; }
local_failed() { metric tessera_mount_local_changes_failed_total; }
mknods() { metric 'tessera_client_requests_total{op="MKNOD"}'; }

# create DIR N [PREFIX]: N empty files DIR/PREFIXi, one open+close each.
create() {
    python3 - "$1" "$2" "${3:-f}" <<'PY' || it_fail "creates in $1"
import os, sys
d, n, p = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    os.close(os.open(os.path.join(d, "%s%d" % (p, i)), os.O_CREAT | os.O_WRONLY, 0o640))
PY
}
fsyncdir() {
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.close(fd)' "$1" ||
        it_fail "fsync of $1"
}

# 1. Creates answered by A, listed by B.  The first create in a directory
# A just made is answered by A too (the MKDIR's reply told it the
# directory's attributes).
s0=$(local_sent)
mkdir "$A/d" || it_fail "mkdir on A"
create "$A/d" 1 warm
it_expect_eq "the first create in a new directory answered by A" "$(($(local_sent) - s0))" 1
s0=$(local_sent)
m0=$(mknods)
h0=$(metric tessera_mount_request_handovers_total)
create "$A/d" 300
it_expect_eq "creates A answered itself" "$(($(local_sent) - s0))" 300
# Answered from memory, they hand the reading of requests on (fc_loop.c)
# only at the few waits for metad (inode numbers, the delegation).
h=$(($(metric tessera_mount_request_handovers_total) - h0))
[ "$h" -lt 30 ] || it_fail "300 creates answered by A handed the reading on $h times"
it_ok "300 creates answered by A handed the reading on $h times"
# Once the directory's fsync returns every one was sent, as one MKNOD.
fsyncdir "$A/d"
it_expect_eq "MKNODs A sent for 300 creates" "$(($(mknods) - m0))" 300
it_expect_eq "names B lists in d" "$(ls "$B/d" | grep -c '^f')" 300
it_expect_eq "f7 on B: mode, owner, mtime as on A" \
    "$(stat -c '%a %u %g %Y' "$B/d/f7")" "$(stat -c '%a %u %g %Y' "$A/d/f7")"
it_expect_eq "d's mtime on B is A's" "$(stat -c '%y' "$B/d")" "$(stat -c '%y' "$A/d")"

# 2. B caches d now: A's creates there go the ordinary way.
s0=$(local_sent)
create "$A/d" 20 g
it_expect_eq "creates A answered itself while B caches d" "$(($(local_sent) - s0))" 0
it_expect_eq "names B lists in d after A's second round" "$(ls "$B/d" | grep -c '^g')" 20
rm "$A/d/g3" || it_fail "rm d/g3 on A"
! test -e "$B/d/g3" || it_fail "d/g3 unlinked on A is still on B"

# 3. Unlinks answered by A, in a directory B has not looked at.
mkdir "$A/u" || it_fail "mkdir u"
create "$A/u" 1 warm
create "$A/u" 200
# The RELEASEs of the files of 2., held 2 s after their last close, count
# as changes A answered too: let them go first (the flush thread sends
# them at its next tick, once a second, so wait until the count has not
# moved for longer than a tick).
sleep 2
s0=$(local_sent)
for _ in $(seq 30); do
    sleep 1.2
    s1=$(local_sent)
    [ "$s1" = "$s0" ] && break
    s0=$s1
done
for i in $(seq 0 99); do rm "$A/u/f$i" || it_fail "rm u/f$i on A"; done
it_expect_eq "unlinks A answered itself" "$(($(local_sent) - s0))" 100
it_expect_eq "names B lists in u after 100 unlinks on A" "$(ls "$B/u" | grep -c '^f')" 100
! test -e "$B/u/f5" || it_fail "u/f5 unlinked on A is on B"
: >"$B/u/fromb" || it_fail "create on B"
test -e "$A/u/fromb" || it_fail "a name B made in u is not on A"
it_expect_eq "u's mtime on B is A's after the unlinks" "$(stat -c '%y' "$B/u")" "$(stat -c '%y' "$A/u")"

# 4. Data through a file created locally; unlink while open; O_EXCL.
mkdir "$A/e" || it_fail "mkdir e"
create "$A/e" 1 warm
python3 - "$A/e/data" <<'PY' || it_fail "data through a file created locally"
import errno, os, sys
p = sys.argv[1]
fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
os.write(fd, b"x" * 100000)
os.fsync(fd)
os.unlink(p)
os.lseek(fd, 0, 0)
assert os.read(fd, 200000) == b"x" * 100000, "read after unlink"
os.close(fd)
fd = os.open(p + "2", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.close(fd)
try:
    os.open(p + "2", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    sys.exit("O_EXCL on an existing name succeeded")
except OSError as e:
    assert e.errno == errno.EEXIST, e
os.close(os.open(p + "2", os.O_CREAT | os.O_WRONLY, 0o644))
PY
! test -e "$B/e/data" || it_fail "e/data unlinked on A is on B"
test -e "$B/e/data2" || it_fail "e/data2 is not on B"
it_ok "a file created locally: data, unlink while open, O_EXCL"

# 5. fsync of the directory, then kill -9 of A.
mkdir "$A/k" || it_fail "mkdir k"
create "$A/k" 1 warm
create "$A/k" 200
fsyncdir "$A/k"
ts_kill mount KILL
fusermount3 -u -z "$A" 2>/dev/null || true
it_expect_eq "names in k after fsync and kill -9 of the mount that made them" \
    "$(ls "$B/k" | grep -c '^f')" 200
ts_start_mount "$A" || it_fail "mount A did not start again"

# 6. metad restarts while A creates.
mkdir "$A/r" || it_fail "mkdir r"
create "$A/r" 1 warm
python3 - "$A/r" "$IT_TMP/r-done" <<'PY' &
import os, sys
d, done = sys.argv[1], sys.argv[2]
n = 0
with open(done, "w") as out:
    for i in range(4000):
        try:
            os.close(os.open(os.path.join(d, "f%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
        except OSError:
            break
        n = i + 1
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    out.write("%d\n" % n)
PY
creator=$!
sleep 1
ts_kill metad KILL
sleep 1
# shellcheck disable=SC2086
ts_start_metad ${METAD_ARGS:-} || it_fail "metad did not start again"
wait "$creator" || it_fail "the creates during the restart failed"
n=$(cat "$IT_TMP/r-done")
[ "$n" -gt 0 ] || it_fail "no create answered"
it_expect_eq "names in r on B after the metad restart (A answered $n)" \
    "$(ls "$B/r" | grep -c '^f')" "$n"
it_expect_eq "changes metad refused" "$(local_failed)" 0

# 7. delegate=no.
C=$IT_TMP/mnt-c
ts_start_mount "$C" -o delegate=no || it_fail "delegate=no mount did not start"
mkdir "$C/n" && create "$C/n" 10 && rm "$C/n/f3" &&
    [ "$(ls "$B/n" | wc -l)" = 9 ] || it_fail "creates on a delegate=no mount"
mkdir -p "$IT_TMP/x"
out=$("$TS_BIN/tessera-mount" --meta "$TS_META_ADDR" -f -o delegate=maybe "$IT_TMP/x" 2>&1) &&
    it_fail "delegate=maybe was accepted"
case $out in *"delegate must be yes or no"*) ;; *) it_fail "delegate=maybe: $out" ;; esac
it_ok "creates and unlinks answered by the mount stay coherent"
