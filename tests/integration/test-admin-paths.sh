#!/usr/bin/env bash
# The admin CLI takes a path inside a mount as well as a namespace path:
# fileinfo, checkfile, setgoal and getgoal given /mnt/.../f act on /f.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera python3

ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "servers did not register"
ts_start_mount "$TS_MNT" || it_fail "mount did not start"
T=$TS_BIN/tessera
M=$TS_MNT

mkdir -p "$M/d/e"
head -c 3000000 /dev/urandom >"$M/d/e/f"
sync "$M/d/e/f"

ino=$(stat -c %i "$M/d/e/f")
it_expect_eq "fileinfo of a mount path" \
    "$(it_json "j['ino']" fileinfo "$M/d/e/f")" "$ino"
it_expect_eq "fileinfo of the namespace path" \
    "$(it_json "j['ino']" fileinfo /d/e/f)" "$ino"
it_expect_eq "same chunks either way" \
    "$("$T" fileinfo "$M/d/e/f" | tail -n +2)" "$("$T" fileinfo /d/e/f | tail -n +2)"
it_expect_eq "a relative path inside the mount" \
    "$(cd "$M/d" && it_json "j['ino']" fileinfo e/f)" "$ino"
it_expect_eq "the mount point is the root" \
    "$(it_json "j['ino']" fileinfo "$M")" 1

"$T" setgoal -r 1 "$M/d" >/dev/null || it_fail "setgoal on a mount path"
it_expect_eq "goal set through the mount path" "$("$T" getgoal /d/e/f)" "/d/e/f: 1"
it_expect_eq "getgoal of a mount path" "$("$T" getgoal "$M/d/e/f")" "$M/d/e/f: 1"
"$T" checkfile "$M/d/e/f" >/dev/null || it_fail "checkfile on a mount path"
it_ok "checkfile of a mount path"

# A namespace path that exists nowhere on this host still works, and a
# local path outside any mount is a namespace path.
"$T" fileinfo "$M/nope" >/dev/null 2>&1 && it_fail "a missing mount path"
mkdir -p "$IT_TMP/d/e" && touch "$IT_TMP/d/e/f"
(cd "$IT_TMP" && "$T" fileinfo d/e/f >/dev/null) ||
    it_fail "a local path outside a mount is not a namespace path"
it_ok "paths outside a mount are namespace paths"
