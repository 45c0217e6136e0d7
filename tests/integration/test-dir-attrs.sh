#!/usr/bin/env bash
# test-dir-attrs.sh: directory attributes from the replies of namespace
# changes, and negative entries, stay coherent across two mounts A and B
# of one cluster (docs/caching.md, "Directory attributes and negative
# entries"; docs/protocol.md §3.4, §6.4).
#   1. A create and a stat of the directory on A send no GETATTR to metad
#      (A answers from the create's reply), and what A shows is what metad
#      holds (B's stat).
#   2. A create, mkdir, unlink and rmdir on B show on A at once: the name
#      (and its absence), the directory's new mtime and nlink.
#   3. A name A looked up and did not find (a negative entry A may keep),
#      created on B, is seen on A at once.
#   4. A rename on B between two directories A has cached shows on A.
#   5. In a directory A made, A's creates send no LOOKUP (A knows every
#      name there, docs/caching.md), and names B adds or removes there
#      are seen on A at once.
#   6. With consistency=validate, a third mount sees the same, and its
#      lookups in a directory it made still ask metad.
#   7. A listing of 1,030 names on A takes two READDIRs (a window of up to
#      1,024 entries each, none for the end), lists every name, and a new
#      listing shows a name B added since (docs/caching.md).
#   8. The kernel keeps a listing of a directory A knows whole: listing it
#      again asks A for no page; B's create and unlink there, and A's own
#      create, show in A's next listing, and in a rewound listing of a
#      directory A held open across B's change.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, curl; exits 77 when one
# is missing.
. "$(dirname "$0")/lib.sh"
it_need curl fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"

sent() { it_mount_sent "$1"; }
getattrs() { sent GETATTR; }

# same_dir WHAT DIR: stat of DIR on A and on B agree (mtime, ctime, nlink).
same_dir() {
    local a b
    a=$(stat -c '%Y.%y %Z.%z %h' "$A/$2") || it_fail "$1: stat on A"
    b=$(stat -c '%Y.%y %Z.%z %h' "$B/$2") || it_fail "$1: stat on B"
    it_expect_eq "$1: A's stat of $2 is B's" "$a" "$b"
}

mkdir "$A/d" "$A/e" || it_fail "mkdir on A"
stat "$A/d" "$A/e" "$B/d" "$B/e" >/dev/null
ls "$A/d" "$B/d" >/dev/null

# 1. A's own create: the directory's attributes come with the reply.
: >"$A/d/warm"
stat "$A/d" >/dev/null
g0=$(getattrs)
: >"$A/d/own"
m1=$(stat -c '%y %h' "$A/d")
g1=$(getattrs)
it_expect_eq "GETATTRs sent by A for a create and a stat of its directory" \
    "$((g1 - g0))" 0
same_dir "create on A" d
rm "$A/d/own" "$A/d/warm"
g2=$(getattrs)
stat "$A/d" >/dev/null
it_expect_eq "GETATTRs sent by A for a stat after its unlinks" \
    "$(($(getattrs) - g2))" 0
[ "$(stat -c '%y' "$A/d")" != "$m1" ] || it_fail "A's mtime of d did not move"
same_dir "unlink on A" d

# 2. B's changes reach A at once (A holds d's attributes cached).
stat "$A/d" >/dev/null
: >"$B/d/f"
test -e "$A/d/f" || it_fail "create on B: d/f not on A"
same_dir "create on B" d
mkdir "$B/d/sub"
it_expect_eq "mkdir on B: nlink of d on A" "$(stat -c %h "$A/d")" 3
same_dir "mkdir on B" d
rm "$B/d/f"
! test -e "$A/d/f" || it_fail "unlink on B: d/f still on A"
same_dir "unlink on B" d
rmdir "$B/d/sub"
it_expect_eq "rmdir on B: nlink of d on A" "$(stat -c %h "$A/d")" 2
same_dir "rmdir on B" d

# 3. A negative entry on A (a second look sends no LOOKUP), then the name
# created on B.
! test -e "$A/d/late" || it_fail "d/late exists before it was made"
l0=$(sent LOOKUP)
! test -e "$A/d/late" || it_fail "d/late exists before it was made"
it_expect_eq "LOOKUPs sent by A for a name it just did not find" \
    "$(($(sent LOOKUP) - l0))" 0
: >"$B/d/late"
test -e "$A/d/late" || it_fail "create on B after a failed lookup on A: d/late not on A"
it_ok "a name A did not find, created on B, is on A at once"
rm "$B/d/late"
! test -e "$A/d/late" || it_fail "unlink on B: d/late still on A"

# 4. A rename on B between two directories A holds.
: >"$A/d/mv"
stat "$A/d" "$A/e" >/dev/null
mv "$B/d/mv" "$B/e/moved"
! test -e "$A/d/mv" || it_fail "rename on B: d/mv still on A"
test -e "$A/e/moved" || it_fail "rename on B: e/moved not on A"
same_dir "rename on B (source)" d
same_dir "rename on B (target)" e
mv "$A/e/moved" "$A/d/back"
same_dir "rename on A (source)" e
same_dir "rename on A (target)" d

# 5. A directory A made: A knows every name in it.
mkdir "$A/n" || it_fail "mkdir n on A"
l0=$(sent LOOKUP)
for i in 1 2 3 4 5 6 7 8 9 10; do : >"$A/n/f$i" || it_fail "create n/f$i on A"; done
rm "$A/n/f3"
! test -e "$A/n/f3" || it_fail "n/f3 is on A after its unlink on A"
it_expect_eq "LOOKUPs sent by A for 10 creates, an unlink and a lookup in a directory it made" \
    "$(($(sent LOOKUP) - l0))" 0
: >"$B/n/fromb"
test -e "$A/n/fromb" || it_fail "create on B in A's new directory: n/fromb not on A"
rm "$B/n/f1"
! test -e "$A/n/f1" || it_fail "unlink on B in A's new directory: n/f1 still on A"
mkdir "$A/n2" && : >"$A/n2/x" && mv "$B/n2/x" "$B/n/y" ||
    it_fail "rename on B between A's new directories"
test -e "$A/n/y" && ! test -e "$A/n2/x" || it_fail "rename on B: A does not see n/y, or still sees n2/x"
it_expect_eq "A lists what B lists in n" "$(ls "$A/n" | tr '\n' ' ')" "$(ls "$B/n" | tr '\n' ' ')"
it_ok "a directory A made: its own creates ask nothing, B's changes show at once"

# 6. consistency=validate: a third mount, no callbacks.
C=$IT_TMP/mnt-c
ts_start_mount "$C" -o consistency=validate || it_fail "validate mount did not start"
mkdir "$C/m" || it_fail "mkdir on the validate mount"
: >"$B/m/fromb"
test -e "$C/m/fromb" || it_fail "validate mount: a name B made in its new directory is not seen"
: >"$C/d/v"
it_expect_eq "validate mount: its stat of d is metad's" \
    "$(stat -c '%y %h' "$C/d")" "$(stat -c '%y %h' "$B/d")"
test -e "$B/d/v" || it_fail "create on the validate mount: d/v not on B"
rm "$C/d/v" "$B/d/back"
rm -r "$B/n" "$B/n2" "$B/m"
[ -z "$(ls "$A/d")" ] || it_fail "A still lists entries in d: $(ls "$A/d")"
# 7. Listings come a window at a time.
mkdir "$B/big" || it_fail "mkdir big on B"
(cd "$B/big" && seq -f 'entry-with-a-longer-name-%04g' 1 1030 | xargs touch) ||
    it_fail "1,030 creates on B"
r0=$(sent READDIR)
it_expect_eq "names A lists in big" "$(ls -f "$A/big" | grep -c '^entry-')" 1030
it_expect_eq "READDIRs sent by A for a listing of 1,030 names" \
    "$(($(sent READDIR) - r0))" 2
it_expect_eq "names ls -l on A shows in big (attributes from the window)" \
    "$(ls -l "$A/big" | grep -c ' entry-')" 1030
: >"$B/big/zz-late"
ls "$A/big" | grep -qx zz-late || it_fail "a new listing on A does not show B's new name"
python3 - "$A/big" <<'PY' || it_fail "a rewound listing on A differs"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
first = sorted(os.listdir(fd))
os.lseek(fd, 0, os.SEEK_SET)
again = sorted(os.listdir(fd))
os.close(fd)
sys.exit(0 if first == again and len(first) == 1031 else 1)
PY
rm -r "$B/big"
# 8. Listings the kernel keeps.
pages() { it_mount_metric tessera_mount_dir_pages_total; }
names() { ls "$A/kl" | tr '\n' ' '; }
mkdir "$A/kl" && : >"$A/kl/one" || it_fail "mkdir kl on A"
names >/dev/null
p0=$(pages)
it_expect_eq "names A lists in kl again" "$(names)" "one "
it_expect_eq "pages A served for a listing the kernel kept" "$(($(pages) - p0))" 0
: >"$B/kl/two"
it_expect_eq "A lists B's create in kl" "$(names)" "one two "
rm "$B/kl/one"
it_expect_eq "A lists B's unlink in kl" "$(names)" "two "
: >"$A/kl/three"
it_expect_eq "A lists its own create in kl" "$(names)" "three two "
# getdents64 itself, as a program that never stats the directory lists it:
# glibc's opendir() would stat it, and a new mtime alone makes the kernel
# drop its copy.
python3 - "$A/kl" "$B/kl/four" <<'PY' || it_fail "a rewound listing on A misses B's create"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def names(fd):
    os.lseek(fd, 0, os.SEEK_SET)
    out, buf = [], ctypes.create_string_buffer(65536)
    while True:
        n = libc.syscall(217, fd, buf, len(buf))  # getdents64
        if n <= 0:
            break
        off = 0
        while off < n:
            reclen = struct.unpack_from("<H", buf.raw, off + 16)[0]
            name = buf.raw[off + 19:off + reclen].split(b"\0", 1)[0].decode()
            if name not in (".", ".."):
                out.append(name)
            off += reclen
    return sorted(out)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
first = names(fd)
open(sys.argv[2], "w").close()
again = names(fd)
os.close(fd)
print(first, again)
sys.exit(0 if first == ["three", "two"] and again == ["four", "three", "two"] else 1)
PY
it_ok "a rewound listing on A shows B's create"
rm -r "$B/kl"
it_ok "directory attributes and negative entries stay coherent"
