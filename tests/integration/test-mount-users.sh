#!/usr/bin/env bash
# Ordinary users on a default mount (no -o option): they get in, within the
# permissions, supplementary groups included, as on a local file system;
# their writes and truncates clear setuid and setgid; ftruncate works on a
# file they created with mode 0; -o private keeps a mount to the user who
# mounted it.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount setpriv /usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "skip: needs root to switch users"; exit 77; }

ts_start_metad || it_fail "metad did not start"
ts_start_chunkd 1 || it_fail "chunkd did not start"
ts_wait_servers 1 15 || it_fail "server did not register"
"$TS_BIN/tessera" setgoal 1 / >/dev/null || it_fail "setgoal"
ts_start_mount "$TS_MNT" || it_fail "mount did not start"
M=$TS_MNT

# nobody, with no supplementary group or with group 4242.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_member() { setpriv --reuid=65534 --regid=65534 --groups=4242 "$@"; }

as_nobody stat "$M" >/dev/null || it_fail "nobody cannot stat the mount"
as_nobody ls "$M" >/dev/null || it_fail "nobody cannot list the mount"
it_ok "a default mount lets other users in"

mkdir "$M/pub" && chmod 0777 "$M/pub"
printf secret >"$M/secret" && chmod 0600 "$M/secret"
as_nobody cat "$M/secret" >/dev/null 2>&1 && it_fail "nobody read a 0600 file"
as_nobody sh -c "echo x >>'$M/secret'" 2>/dev/null && it_fail "nobody wrote it"
as_nobody touch "$M/new" 2>/dev/null && it_fail "nobody created in a 0755 root"
it_ok "mode bits refuse other users"

as_nobody sh -c "printf mine >'$M/pub/mine'" || it_fail "nobody cannot create in 0777"
it_expect_eq "owner of a file nobody created" "$(stat -c %u:%g "$M/pub/mine")" \
    65534:65534
it_expect_eq "nobody reads it back" "$(as_nobody cat "$M/pub/mine")" mine

# Supplementary groups decide too.
printf grp >"$M/grp" && chgrp 4242 "$M/grp" && chmod 0640 "$M/grp"
mkdir "$M/team" && chgrp 4242 "$M/team" && chmod 0770 "$M/team"
it_expect_eq "a member reads a group file" "$(as_member cat "$M/grp")" grp
as_nobody cat "$M/grp" >/dev/null 2>&1 && it_fail "a non-member read it"
as_member touch "$M/team/t" || it_fail "a member cannot create in a 0770 dir"
as_nobody touch "$M/team/u" 2>/dev/null && it_fail "a non-member created there"
it_ok "supplementary groups"

# An ordinary user's open-unlinked file (issue 15's case).
out=$(cd "$M/pub" && as_nobody /usr/bin/python3 -c 'import os
fd = os.open("u", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"Hello")
os.unlink("u")
print(os.pread(fd, 5, 0))
os.close(fd)') || it_fail "python as nobody"
it_expect_eq "nobody reads an unlinked open file" "$out" "b'Hello'"

# Setuid and setgid go when anyone but root writes or truncates the file.
printf a >"$M/pub/s1" && chmod 06777 "$M/pub/s1"
as_nobody sh -c "echo x >>'$M/pub/s1'" || it_fail "nobody's write to a 06777 file"
it_expect_eq "a write by another user clears setuid and setgid" \
    "$(stat -c %a "$M/pub/s1")" 777
it_expect_eq "the write landed" "$(cat "$M/pub/s1")" "ax"
printf a >"$M/pub/s2" && chmod 04777 "$M/pub/s2"
as_nobody truncate -s 0 "$M/pub/s2" || it_fail "nobody's truncate"
it_expect_eq "a truncate by another user clears setuid" \
    "$(stat -c %a "$M/pub/s2")" 777
printf a >"$M/pub/s3" && chmod 04777 "$M/pub/s3"
echo x >>"$M/pub/s3"
it_expect_eq "root's write keeps setuid" "$(stat -c %a "$M/pub/s3")" 4777

# A write drops a file capability as it drops setuid.  The mount answers
# the kernel's ask for security.capability before each write from memory
# once metad said there is none (client-fuse/fc_nocap.c): a setcap
# through the mount must end that.
if command -v setcap >/dev/null && command -v getcap >/dev/null; then
    printf a >"$M/pub/c1" && chmod 0777 "$M/pub/c1"
    echo x >>"$M/pub/c1" # the mount learns that c1 has no capability
    setcap cap_net_raw+ep "$M/pub/c1" || it_fail "setcap on the mount"
    [ -n "$(getcap "$M/pub/c1")" ] || it_fail "getcap does not show it"
    echo y >>"$M/pub/c1" || it_fail "a write to a file with a capability"
    it_expect_eq "a write drops the file capability" "$(getcap "$M/pub/c1")" ""
fi

# ftruncate on a file just created with mode 0, through its O_RDWR fd.
out=$(cd "$M/pub" && as_nobody /usr/bin/python3 -c 'import os
fd = os.open("z", os.O_CREAT | os.O_RDWR, 0)
os.write(fd, b"abc")
os.ftruncate(fd, 1)
print(os.fstat(fd).st_size, oct(os.fstat(fd).st_mode & 0o7777))
os.close(fd)') || it_fail "ftruncate of a mode 0 file as nobody"
it_expect_eq "ftruncate through an fd of a mode 0 file" "$out" "1 0o0"

# -o private: only the user who mounted it.
P=$IT_TMP/private
ts_start_mount "$P" -o private || it_fail "private mount did not start"
ls "$P" >/dev/null || it_fail "the owner cannot use a private mount"
as_nobody stat "$P" >/dev/null 2>&1 && it_fail "nobody got into a private mount"
it_ok "-o private keeps other users out"
