#!/usr/bin/env bash
# test-cache-dropped.sh: a mount that does not answer a callback break in
# time loses every promise it holds, and is told so (docs/protocol.md
# §14.1, ALL; docs/caching.md, "When metad drops the promises").
#   1. A holds f2 open, has f1's attributes and knows directory d whole
#      (one listing); A's mount is stopped
#      (SIGSTOP), so the break of B's chmod of f1 goes unanswered: B's
#      chmod still returns, after metad's wait for the answer.
#   2. A runs again and hears ALL: it logs the drop.
#   3. B changes f2, which breaks nobody now (A holds no promise on it);
#      A's stat of f2 still shows B's mode and size, not the ones A kept
#      for the open file, and a name B adds to d is in A's listing of d
#      (A no longer lists d from what it knew).
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, python3; exits 77 when
# one is missing.
. "$(dirname "$0")/lib.sh"
it_need python3 fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"
pid_a=$(ts_pid mount)
[ -n "$pid_a" ] || it_fail "no pid for mount A"
log_a=$TS_DIR/logs/mount.log
resumed=0
cont_a() { [ "$resumed" = 1 ] || kill -CONT "$pid_a" 2>/dev/null; resumed=1; }
trap 'rc=$?; cont_a; (exit $rc); it_cleanup' EXIT

# 1. A caches f1's attributes and holds f2 open, both made by B (so A's
# promises are a reader's, broken without a recall's longer wait).
echo one >"$B/f1" || it_fail "create f1 on B"
echo two >"$B/f2" || it_fail "create f2 on B"
chmod 644 "$B/f1" "$B/f2"
mkdir "$B/d" && touch "$B/d/old" || it_fail "make d on B"
ls "$A/d" >/dev/null || it_fail "list d on A" # A now knows d whole
stat -c %a "$A/f1" >/dev/null
# A process of its own holds f2 open: a descriptor of this shell would be
# inherited by every command it runs, whose exit flushes it through A.
sleep 600 5<"$A/f2" &
holder=$!
it_bg "$holder"
for ((i = 0; i < 50; i++)); do [ -e "/proc/$holder/fd/5" ] && break; sleep 0.1; done
[ -e "/proc/$holder/fd/5" ] || it_fail "f2 not held open on A"
it_expect_eq "mode of f2 on A before" "$(stat -c %a "$A/f2")" 644
kill -STOP "$pid_a" || it_fail "could not stop mount A"
resumed=0
t0=$(date +%s%N)
chmod 600 "$B/f1" || it_fail "chmod f1 on B"
waited=$((($(date +%s%N) - t0) / 1000000))
[ "$waited" -ge 1000 ] || it_fail "chmod on B returned in $waited ms: A's break was not waited for"
it_ok "B's chmod returned after $waited ms, A not answering"

# 2. A runs again and learns that its promises are gone.
cont_a
dropped="promises dropped by metad: dropping cached state"
for ((i = 0; i < 50; i++)); do
    grep -q "$dropped" "$log_a" && break
    sleep 0.1
done
grep -q "$dropped" "$log_a" || it_fail "mount A did not log the dropped promises"
it_ok "A heard that metad dropped its promises"

# 3. A change of f2 on B breaks nobody; A sees it anyway, within 2 s
# (the kernel is told by A's break worker; without the drop being known,
# A would show what it kept for 30 s).
# within WHAT WANT CMD...: CMD's output is WANT within 2 s.
within() {
    local what=$1 want=$2 got i
    shift 2
    for ((i = 0; i < 20; i++)); do
        got=$("$@")
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    it_expect_eq "$what" "$got" "$want"
}
chmod 640 "$B/f2" || it_fail "chmod f2 on B"
within "mode of f2 on A after B's chmod" 640 stat -c %a "$A/f2"
within "mode of f1 on A after B's chmod" 600 stat -c %a "$A/f1"
echo longer-contents >>"$B/f2" || it_fail "append to f2 on B"
touch "$B/d/new" || it_fail "create d/new on B"
list_d() { ls "$A/d" | tr '\n' ' '; }
within "d as A lists it after B's create" "new old " list_d
within "size of open f2 on A after B's append" "$(stat -c %s "$B/f2")" \
    stat -c %s "$A/f2"

