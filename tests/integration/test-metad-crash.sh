#!/usr/bin/env bash
# kill -9 of metad under a running namespace workload, then restart: the
# workload carries on through the mount, every acknowledged mutation is
# there afterwards, and the database is consistent.  With metad killed
# for good, the mount still stops on SIGTERM within ts_stop_all's 10 s,
# giving up on what it had left for metad.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-mount tessera sqlite3 python3

ts_start_metad || it_fail "metad did not start"
ts_start_mount || it_fail "mount did not start"

acked=$IT_TMP/acked
# The workload: directories with a file each, a rename and an unlink every
# few steps.  Each line in $acked is written only after the call returned.
python3 - "$TS_MNT" "$acked" 400 <<'PY' &
import errno, os, sys
mnt, acked, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(acked, "w", buffering=1) as log:
    for i in range(n):
        d = os.path.join(mnt, "d%04d" % i)
        try:
            os.mkdir(d)
        except FileExistsError:
            pass  # applied before a crash whose reply was lost
        log.write("dir d%04d\n" % i)
        fd = os.open(os.path.join(d, "f"), os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
        log.write("file d%04d/f\n" % i)
        if i % 5 == 4:
            try:
                os.rename(os.path.join(d, "f"), os.path.join(d, "g"))
            except FileNotFoundError:
                pass  # the rename was applied before a crash
            log.write("renamed d%04d/g\n" % i)
        if i % 7 == 6:
            try:
                os.unlink(os.path.join(d, "f"))
            except FileNotFoundError:
                pass
            log.write("unlinked d%04d/f\n" % i)
PY
wl=$!

# Crash metad three times while the workload runs.
for round in 1 2 3; do
    sleep 1
    ts_kill metad KILL
    it_ok "metad killed (round $round)"
    sleep 0.3
    ts_start_metad || it_fail "metad did not restart"
done
wait $wl || it_fail "workload failed (status $?)"
it_ok "workload finished across three metad crashes"

# Every acknowledged mutation is visible.
while read -r what path; do
    case $what in
    dir) [ -d "$TS_MNT/$path" ] || it_fail "acknowledged mkdir lost: $path" ;;
    file) [ -e "$TS_MNT/$path" ] || [ -e "$TS_MNT/${path%f}g" ] ||
              grep -q "^unlinked $path\$" "$acked" || it_fail "acknowledged create lost: $path" ;;
    renamed) [ -e "$TS_MNT/$path" ] || it_fail "acknowledged rename lost: $path" ;;
    unlinked) [ ! -e "$TS_MNT/$path" ] || it_fail "acknowledged unlink lost: $path" ;;
    esac
done <"$acked"
it_expect_eq "directories present" "$(ls "$TS_MNT" | grep -c '^d')" 400

# The root's link count agrees with its subdirectories.
it_expect_eq "root nlink" "$(stat -c %h "$TS_MNT")" 402

# A final crash with no workload, right after a file was written and
# closed: the mount's RELEASE of it (due once the file lingered) then
# waits for a metad that is gone.  Stopped with SIGTERM, the mount gives
# up on it within its bound (CL_CLOSE_META_MS, client/cl.h), says so, and
# exits by itself instead of waiting out its 60 s reconnect limit.
: >"$TS_MNT/last" || it_fail "create before the final crash"
waiting() { grep -c "rpc: no answer for .* (not connected)" "$TS_DIR/logs/mount.log"; }
before=$(waiting)
ts_kill metad KILL
for ((i = 0; i < 300; i++)); do
    [ "$(waiting)" -gt "$before" ] && break
    sleep 0.1
done
[ "$(waiting)" -gt "$before" ] || it_fail "no call of the mount waits for the killed metad"
it_stops_on_term mount
# What it gave up on first is named (the RELEASE, or another call that
# was waiting then, such as the session's renewal); the count of all of
# them follows at close.
grep -Eq "rpc: closing: (gave up on [A-Z_]+_REQ|[0-9]+ calls given up)" \
    "$TS_DIR/logs/mount.log" ||
    it_fail "the mount's log does not say it gave up on the calls left"
it_ok "the mount exits on SIGTERM with metad gone, saying what it gave up on"

# The database itself is sound.
it_expect_eq "integrity" "$(sqlite3 "$TS_DIR/meta/meta.db" 'PRAGMA integrity_check')" ok
