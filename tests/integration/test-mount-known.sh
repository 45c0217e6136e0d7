#!/usr/bin/env bash
# test-mount-known.sh: what the mount answers without metad from what it
# knows under callback promises (docs/caching.md, "Listings, open files
# and statfs answered by the mount"), checked against a second mount B.
#   1. A directory A made and changed (creates, unlinks, renames within it
#      and out of it) is listed by A without a READDIR: names, inode
#      numbers and types as B lists them; a directory A moves keeps links,
#      times and ".." as B sees them.
#   2. A directory B made, listed once by A (one READDIR), is listed again
#      by A without one; a name B adds or removes there is in, or gone
#      from, A's next listing (the break forgets what A knew).
#   3. A file open on A: fstat after A's own writes costs at most one
#      GETATTR in all and
#      shows A's size; a chmod on B is seen by A's fstat (the break); after
#      A unlinks it while open, fstat shows nlink 0; a truncate after
#      writes, then a write, shows the new size.
#      Opening again a file A holds costs no OPEN; after B wrote it, A
#      reads B's bytes, and opening it to write asks metad again; the
#      same for 60 files written and closed quickly on A, then on B.
#   4. statfs twice within a second costs at most one STATFS.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, curl, python3; exits 77
# when one is missing.
. "$(dirname "$0")/lib.sh"
it_need curl python3 fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"

sent() { it_mount_sent "$1"; }
# listing DIR: "name inode type" of every entry but "." and "..", sorted.
listing() {
    python3 - "$1" <<'PY' || it_fail "listing of $1"
import os, sys
out = []
with os.scandir(sys.argv[1]) as it:
    for e in it:
        t = "d" if e.is_dir(follow_symlinks=False) else "l" if e.is_symlink() else "f"
        out.append("%s %d %s" % (e.name, e.inode(), t))
print("\n".join(sorted(out)))
PY
}

# 1. A directory A made, changed by A, listed by A without metad.
mkdir "$A/d" "$A/d2" || it_fail "mkdir on A"
for i in $(seq 0 49); do : >"$A/d/f$i" || it_fail "create d/f$i"; done
mkdir "$A/d/sub" || it_fail "mkdir d/sub"
ln -s f1 "$A/d/link" || it_fail "symlink d/link"
for i in $(seq 0 4); do rm "$A/d/f$i" || it_fail "rm d/f$i"; done
for i in $(seq 5 9); do mv "$A/d/f$i" "$A/d/r$i" || it_fail "mv d/f$i"; done
mv "$A/d/f10" "$A/d2/moved" || it_fail "mv d/f10 to d2"
mv "$A/d/f11" "$A/d/f12" || it_fail "mv d/f11 over d/f12"
r0=$(sent READDIR)
la=$(listing "$A/d")
la2=$(listing "$A/d2")
it_expect_eq "READDIRs A sent to list d and d2" "$(($(sent READDIR) - r0))" 0
it_expect_eq "entries A lists in d" "$(echo "$la" | wc -l)" 45
echo "$la" | grep -q '^sub [0-9]* d$' || it_fail "d/sub not listed as a directory on A"
echo "$la" | grep -q '^link [0-9]* l$' || it_fail "d/link not listed as a symlink on A"
! echo "$la" | grep -q '^f11 ' || it_fail "d/f11, renamed away, listed on A"
it_expect_eq "d/f12 is the renamed f11" "$(echo "$la" | awk '$1 == "f12" { print $2 }')" \
    "$(stat -c %i "$A/d/f12")"
it_expect_eq "d as B lists it" "$(listing "$B/d")" "$la"
it_expect_eq "d2 as B lists it" "$(listing "$B/d2")" "$la2"
it_expect_eq "ls -a on A shows . and .." "$(ls -a "$A/d" | head -2 | tr '\n' ' ')" ". .. "
it_expect_eq "find on A sees d/sub/.. as d" "$(cd "$A/d/sub/.." && pwd)" "$A/d"
# A directory moved between two A knows: links, times and ".." as on B.
stat "$A/d" "$A/d2" "$A/d/sub" >/dev/null || it_fail "stat on A"
mv "$A/d/sub" "$A/d2/sub" || it_fail "mv d/sub to d2"
it_expect_eq "d, d2, d2/sub after the move: on A as on B" \
    "$(stat -c '%n %h %Y %Z' "$A/d" "$A/d2" "$A/d2/sub" | sed "s|$A||")" \
    "$(stat -c '%n %h %Y %Z' "$B/d" "$B/d2" "$B/d2/sub" | sed "s|$B||")"
it_expect_eq "d2/sub/.. on A is d2" "$(stat -c %i "$A/d2/sub/..")" "$(stat -c %i "$A/d2")"

# 2. A directory B made: A's first listing asks metad, the next does not;
# B's changes there reach A's listings.
mkdir "$B/e" || it_fail "mkdir e on B"
for i in $(seq 0 29); do : >"$B/e/g$i" || it_fail "create e/g$i on B"; done
r0=$(sent READDIR)
it_expect_eq "names A lists in e" "$(ls "$A/e" | wc -l)" 30
it_expect_eq "READDIRs for A's first listing of e" "$(($(sent READDIR) - r0))" 1
it_expect_eq "names A lists in e again" "$(ls "$A/e" | wc -l)" 30
it_expect_eq "READDIRs for A's second listing of e" "$(($(sent READDIR) - r0))" 1
: >"$B/e/new" || it_fail "create e/new on B"
rm "$B/e/g3" || it_fail "rm e/g3 on B"
le=$(ls "$A/e")
echo "$le" | grep -qx new || it_fail "e/new made on B not in A's listing"
! echo "$le" | grep -qx g3 || it_fail "e/g3 removed on B still in A's listing"
it_expect_eq "e on A as on B" "$(listing "$A/e")" "$(listing "$B/e")"

# 3. Attributes of a file open on A.
g0=$(sent GETATTR)
python3 - "$A/d2/open" "$B/d2/open" "$(ts_http_addr mount)" <<'PY' || it_fail "attributes of an open file"
import os, re, subprocess, sys, urllib.request
pa, pb, http = sys.argv[1], sys.argv[2], sys.argv[3]

def getattrs():
    t = urllib.request.urlopen("http://%s/metrics" % http).read().decode()
    m = re.search(r'^tessera_client_requests_total\{op="GETATTR"\} (\S+)$', t, re.M)
    return float(m.group(1)) if m else 0.0

fd = os.open(pa, os.O_CREAT | os.O_RDWR, 0o644)
g = getattrs()
for i in range(20):
    os.write(fd, b"y" * 250)
    st = os.fstat(fd)
    assert st.st_size == 250 * (i + 1), "size after write %d: %d" % (i, st.st_size)
# At most the first may ask metad (when a break elsewhere moved the
# callback epoch while the create was answered).
assert getattrs() <= g + 1, "GETATTRs for fstat after writes: %d" % (getattrs() - g)
os.fsync(fd)
assert os.stat(pb).st_size == 5000, "size on B after fsync: %d" % os.stat(pb).st_size
subprocess.run(["chmod", "600", pb], check=True)
assert os.fstat(fd).st_mode & 0o777 == 0o600, "mode after chmod on B: %o" % os.fstat(fd).st_mode
os.unlink(pa)
st = os.fstat(fd)
assert st.st_nlink == 0, "nlink after unlink while open: %d" % st.st_nlink
assert st.st_size == 5000, "size after unlink while open: %d" % st.st_size
os.close(fd)
# A truncate after writes, then a write: the size is the new one (the
# write-back before the truncate must not leave the old size kept).
fd = os.open(pa + "t", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"z" * (1 << 20))
os.ftruncate(fd, 100)
os.pwrite(fd, b"x", 100)
assert os.fstat(fd).st_size == 101, "size after truncate and write: %d" % os.fstat(fd).st_size
os.close(fd)
assert os.stat(pa + "t").st_size == 101, "size on A after close"
assert os.stat(pb + "t").st_size == 101, "size on B after close"
PY
it_ok "an open file's attributes: own writes, a chmod on B, an unlink"

# 3b. Opening again a file A still holds (a handle, or the last one's
# linger) costs no OPEN; once B wrote it, A's next open asks metad and
# reads B's bytes.
python3 - "$A/d2/again" "$B/d2/again" "$(ts_http_addr mount)" <<'PY' || it_fail "opening again a file A holds"
import os, re, sys, urllib.request
pa, pb, http = sys.argv[1], sys.argv[2], sys.argv[3]

def opens():
    t = urllib.request.urlopen("http://%s/metrics" % http).read().decode()
    m = re.search(r'^tessera_client_requests_total\{op="OPEN"\} (\S+)$', t, re.M)
    return float(m.group(1)) if m else 0.0

fd = os.open(pa, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"a" * 100)
os.close(fd)
# A reply noted while any break came is not kept, and breaks of section
# 3's files may still be on their way: open until one open costs no OPEN
# (a few at most), then count.
for i in range(20):
    o = opens()
    os.close(os.open(pa, os.O_RDWR))
    if opens() == o:
        break
o = opens()
for i in range(5):
    fd = os.open(pa, os.O_RDWR)
    assert os.pread(fd, 200, 0) == b"a" * 100, "A's bytes on A"
    os.close(fd)
assert opens() == o, "OPENs for 5 opens of a file A holds: %d" % (opens() - o)
fd = os.open(pb, os.O_RDWR)
os.pwrite(fd, b"b" * 100, 0)
os.close(fd)
# B's writes broke A's promise, a writer's: A may open to read from
# attributes it got again since, but writing needs a writer's promise
# first.
fd = os.open(pa, os.O_RDONLY)
got = os.pread(fd, 200, 0)
os.close(fd)
assert got == b"b" * 100, "A read %r after B wrote" % got[:8]
o = opens()
fd = os.open(pa, os.O_RDWR)
assert os.pread(fd, 200, 0) == b"b" * 100, "A's read for writing after B wrote"
os.pwrite(fd, b"c", 0)
os.close(fd)
assert opens() == o + 1, "OPENs for A's open to write after B wrote: %d" % (opens() - o)
with open(pb, "rb") as f:
    assert f.read() == b"c" + b"b" * 99, "B's read after A wrote again"
PY
it_ok "opening again a file A holds: no OPEN; to write after B wrote, one"

# 3c. The same, quickly and many times: A writes a file and closes it,
# opens it again a few times, B writes it and closes, and A's next open
# reads B's bytes, whether A answers that open itself or asks metad.
python3 - "$A/d2/quick" "$B/d2/quick" <<'PY' || it_fail "A opening again after B wrote"
import os, sys
pa, pb = sys.argv[1], sys.argv[2]
for i in range(60):
    fa, fb = "%s%d" % (pa, i), "%s%d" % (pb, i)
    fd = os.open(fa, os.O_CREAT | os.O_RDWR, 0o644)
    os.write(fd, b"a" * 100)
    os.close(fd)
    for j in range(4):
        fd = os.open(fa, os.O_RDWR)
        os.pread(fd, 200, 0)
        os.close(fd)
    fd = os.open(fb, os.O_RDWR)
    os.pwrite(fd, b"b" * 100, 0)
    os.close(fd)
    fd = os.open(fa, os.O_RDONLY)
    got = os.pread(fd, 200, 0)
    os.close(fd)
    assert got == b"b" * 100, "file %d: A read %r after B wrote" % (i, got[:8])
PY
it_ok "A's open after B wrote and closed reads B's bytes (60 files)"

# 4. statfs.
s0=$(sent STATFS)
df -P "$A" >/dev/null || it_fail "df on A"
df -P "$A" >/dev/null || it_fail "df on A, again"
[ $(($(sent STATFS) - s0)) -le 1 ] || it_fail "STATFS requests for two df within a second: $(($(sent STATFS) - s0))"
it_expect_eq "df on A and on B: the same size" "$(df -P "$A" | awk 'NR == 2 { print $2 }')" \
    "$(df -P "$B" | awk 'NR == 2 { print $2 }')"
it_ok "listings, open files and statfs answered by the mount stay coherent"
