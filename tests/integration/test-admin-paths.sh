#!/usr/bin/env bash
# The admin CLI takes a path inside a mount as well as a namespace path:
# fileinfo, checkfile, setgoal and getgoal given /mnt/.../f act on /f.
# Its errors name the path and the cause (empty or relative paths, a
# missing folder and -p, bad sizes, a size beyond the cluster, a missing
# image, an unknown server), and `server drain --wait` stops when the
# other servers cannot take the chunks at their goal.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera python3

ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "servers did not register"
ts_start_mount "$TS_MNT" || it_fail "mount did not start"
T=$TS_BIN/tessera
M=$TS_MNT

# A server's used space is what its chunk files take on its disk, as its
# heartbeat reports it (docs/protocol.md §9.2): 1 MiB written into a fresh
# 64 MiB file counts about 1 MiB on each server holding it, not the chunk's
# 64 MiB of file.
truncate -s 64M "$M/one"
head -c 1048576 /dev/urandom | dd of="$M/one" bs=1M conv=notrunc status=none
sync "$M/one"
mib=1048576
used=
for _ in $(seq 50); do
    used=$(it_json "' '.join('%d:%d' % (s['chunks'], s['used']) for s in j['server_list'])" status)
    held=$(tr ' ' '\n' <<<"$used" | awk -F: -v m=$mib '$1 > 0 && $2 >= m' | wc -l)
    [ "$held" -ge 1 ] && break
    sleep 0.2
done
[ "$held" -ge 1 ] || it_fail "no server reports the 1 MiB it holds (chunks:used $used)"
for cu in $used; do
    [ "${cu#*:}" -lt $((8 * mib)) ] ||
        it_fail "1 MiB written shows ${cu#*:} bytes used on a server (chunks:used $used)"
done
it_ok "1 MiB written shows about 1 MiB used per server holding it (chunks:used $used)"
"$T" servers | grep -q "1\.0 MiB" || it_fail "tessera servers: $("$T" servers)"
it_ok "tessera servers shows the bytes on disk"
rm "$M/one"

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

# ---- Errors name the path and the cause ------------------------------------
# expect_err WHAT RC TEXT CMD...: CMD exits RC and says TEXT on stderr.
expect_err() {
    local what=$1 want=$2 text=$3 rc
    shift 3
    "$T" "$@" >"$IT_TMP/out" 2>"$IT_TMP/err"
    rc=$?
    [ "$rc" = "$want" ] || it_fail "$what: exit $rc, want $want: $(cat "$IT_TMP/err")"
    grep -qF -- "$text" "$IT_TMP/err" || it_fail "$what: no '$text' in: $(cat "$IT_TMP/err")"
    it_ok "$what"
}
expect_err "empty path" 64 "the path is empty" image create "" 1G
expect_err "relative path outside a mount" 64 "'rel.img' is a relative path outside a Tessera mount" \
    image create rel.img 1G
(cd "$M/d" && "$T" image create rel.img 1M >/dev/null) || it_fail "relative path inside a mount"
[ -f "$M/d/rel.img" ] || it_fail "rel.img not made in /d"
it_ok "a relative path inside a mount names the file there"
expect_err "missing folder" 1 "/nodir/x.img: the folder /nodir does not exist" \
    image create /nodir/x.img 1G
grep -qF -- "-p" "$IT_TMP/err" || it_fail "missing folder: no -p hint"
"$T" image create -p /nodir/sub/x.img 1M >/dev/null || it_fail "image create -p"
"$T" image create -p "$M/m1/m2/y.img" 1M >/dev/null || it_fail "image create -p in a mount"
[ -f "$M/nodir/sub/x.img" ] && [ -f "$M/m1/m2/y.img" ] || it_fail "-p did not make the folders"
[ ! -e "$M/${M#/}" ] || it_fail "-p made the mount's own path inside the namespace"
it_ok "image create -p makes the folders"
expect_err "file exists" 1 "/nodir/sub/x.img: already exists" image create /nodir/sub/x.img 1M
for s in 10Q -1 1.5G; do
    expect_err "size $s" 64 "bad size '$s'" image create /s.img "$s"
    grep -qF "K, M, G, T, P or E" "$IT_TMP/err" || it_fail "size $s: units not listed"
done
grep -qF "whole" "$IT_TMP/err" || it_fail "1.5G: not told the number must be whole"
"$T" image create /huge.img 100P >/dev/null 2>"$IT_TMP/err" || it_fail "100P refused"
grep -qF "more than the cluster's capacity" "$IT_TMP/err" || it_fail "100P: no capacity warning"
it_ok "100P is made, with a warning about the cluster's capacity"
expect_err "image info of a missing image" 1 "/nope.img: no such file or folder" image info /nope.img
expect_err "drain of an unknown server" 1 "no storage server has id 9" server drain 9

# ---- A drain that cannot finish says so -------------------------------------
# Goal 2 on two servers: the chunks of server 1 have nowhere to go.
mkdir "$M/g2" && "$T" setgoal 2 "$M/g2" >/dev/null || it_fail "setgoal 2"
head -c 1000000 /dev/urandom >"$M/g2/f" && sync "$M/g2/f"
timeout 60 "$T" server drain 1 --wait >"$IT_TMP/out" 2>"$IT_TMP/err"
rc=$?
[ "$rc" = 1 ] || it_fail "drain --wait: exit $rc, want 1: $(tail -3 "$IT_TMP/out" "$IT_TMP/err")"
grep -qF "so the goal cannot be met" "$IT_TMP/err" ||
    it_fail "drain --wait: no reason given: $(cat "$IT_TMP/err")"
"$T" server undrain 1 >/dev/null || it_fail "undrain"
it_ok "drain --wait stops and says the goal cannot be met"
