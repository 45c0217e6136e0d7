#!/usr/bin/env bash
# test-mount-namespace.sh: the namespace through a real FUSE mount.
#
# Starts tessera-metad on a free loopback port and tessera-mount -f on a
# temp dir, then drives the mount with coreutils, attr tools and python3:
# mkdir/rmdir, create/stat/chmod/chown, hard and symbolic links, renames
# (over an existing file, across directories, RENAME_NOREPLACE), a 1000
# entry listing, xattrs, errno checks, nlink counts.  Ends with
# fusermount3 -u and checks that the mount process exited.
# Needs: $BUILD/bin/tessera-metad, tessera-mount, fusermount3, python3,
# setfattr/getfattr (package attr); exits 77 when one is missing.
set -u
BUILD=${BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}

skip() { echo "skip: $*"; exit 77; }
for b in tessera-metad tessera-mount; do
    [ -x "$BUILD/bin/$b" ] || skip "$BUILD/bin/$b not built"
done
for t in fusermount3 mountpoint python3 setfattr getfattr; do
    command -v "$t" >/dev/null 2>&1 || skip "$t not installed"
done
[ -e /dev/fuse ] || skip "/dev/fuse missing"

TMP=$(mktemp -d /tmp/tessera-mount-ns.XXXXXX)
MNT=$TMP/mnt
METAD_PID= MOUNT_PID=
cleanup() {
    local rc=$?
    if mountpoint -q "$MNT" 2>/dev/null; then
        fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
    fi
    [ -n "$MOUNT_PID" ] && kill "$MOUNT_PID" 2>/dev/null
    [ -n "$METAD_PID" ] && kill "$METAD_PID" 2>/dev/null
    wait 2>/dev/null
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for f in "$TMP"/*.log; do
            echo "---- $(basename "$f") (last 30 lines)"
            tail -n 30 "$f"
        done
    fi
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
expect_eq() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; ok "$1"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORT=$(free_port)
"$BUILD/bin/tessera-metad" --data "$TMP/meta" --listen "127.0.0.1:$PORT" \
    >"$TMP/metad.log" 2>&1 &
METAD_PID=$!
for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" \
        2>/dev/null && break
    sleep 0.1
done
# The admin key metad wrote on its first start (docs/security.md).
export TESSERA_KEY=$TMP/meta/admin.key

mkdir -p "$MNT"
# A wrong address fails at once with status 1 and mounts nothing.
BAD=$(free_port)
"$BUILD/bin/tessera-mount" --meta "127.0.0.1:$BAD" "$MNT" 2>"$TMP/bad.log"
expect_eq "wrong metad address exits 1" "$?" 1
grep -q "cannot reach metad" "$TMP/bad.log" || fail "no clear error: $(cat "$TMP/bad.log")"
mountpoint -q "$MNT" && fail "mounted despite a wrong address"

"$BUILD/bin/tessera-mount" --meta "127.0.0.1:$PORT" -f -o allow_other "$MNT" \
    >"$TMP/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do
    mountpoint -q "$MNT" && break
    sleep 0.1
done
mountpoint -q "$MNT" || fail "not mounted"
ok "mounted"
grep -q "fuse.tessera" /proc/mounts || fail "fs type is not fuse.tessera"
grep -q "^tessera $MNT" /proc/mounts || fail "fsname is not tessera"
ok "fsname and subtype"

cd "$MNT" || fail "cd"

# ---- directories ---------------------------------------------------------
mkdir d1 || fail "mkdir"
[ -d d1 ] || fail "d1 not a directory"
mkdir d1/sub
rmdir d1 2>/dev/null && fail "rmdir of a non-empty dir succeeded"
python3 - <<'EOF' || fail "rmdir non-empty errno"
import errno, os
try:
    os.rmdir("d1")
except OSError as e:
    assert e.errno == errno.ENOTEMPTY, e
else:
    raise SystemExit("no error")
EOF
ok "rmdir non-empty gives ENOTEMPTY"
rmdir d1/sub && rmdir d1 || fail "rmdir"
[ -e d1 ] && fail "d1 still exists"
ok "mkdir/rmdir"

# ---- files and attributes ----------------------------------------------
touch f1 || fail "touch"
expect_eq "new file size" "$(stat -c %s f1)" 0
expect_eq "new file type" "$(stat -c %F f1)" "regular empty file"
chmod 640 f1
expect_eq "chmod" "$(stat -c %a f1)" 640
chown 1234:5678 f1
expect_eq "chown" "$(stat -c %u:%g f1)" "1234:5678"
touch -d "2001-02-03 04:05:06 UTC" f1
expect_eq "utimes" "$(stat -c %Y f1)" 981173106
mkdir -m 700 private
expect_eq "mkdir mode" "$(stat -c %a private)" 700

# ---- links -------------------------------------------------------------------
echo -n > h1
ln h1 h2 || fail "ln"
expect_eq "nlink after ln" "$(stat -c %h h1)" 2
expect_eq "same inode" "$(stat -c %i h1)" "$(stat -c %i h2)"
rm h2
expect_eq "nlink after unlink" "$(stat -c %h h1)" 1
ln -s h1 s1 || fail "ln -s"
expect_eq "readlink" "$(readlink s1)" h1
expect_eq "symlink type" "$(stat -c %F s1)" "symbolic link"
ln -s /some/where/far/away s2
expect_eq "readlink absolute" "$(readlink s2)" /some/where/far/away
mkdir nd && mkdir nd/a nd/b
expect_eq "dir nlink with 2 subdirs" "$(stat -c %h nd)" 4

# ---- rename ------------------------------------------------------------------
echo -n > r1
echo -n > r2
ino1=$(stat -c %i r1)
mv r1 r2 || fail "mv over existing"
[ -e r1 ] && fail "r1 still there"
expect_eq "rename over existing keeps source inode" "$(stat -c %i r2)" "$ino1"
mv r2 nd/a/moved || fail "mv across dirs"
expect_eq "rename across dirs" "$(stat -c %i nd/a/moved)" "$ino1"
mv nd/b nd/a/b2 || fail "mv dir across dirs"
expect_eq "nlink of old parent" "$(stat -c %h nd)" 3
expect_eq "nlink of new parent" "$(stat -c %h nd/a)" 3
python3 - <<'EOF' || fail "rename errno checks"
import ctypes, errno, os
os.mkdir("rx")
os.mkdir("rx/inner")
try:
    os.rename("rx", "rx/inner/self")
except OSError as e:
    assert e.errno == errno.EINVAL, e
else:
    raise SystemExit("rename into own subtree succeeded")
open("ra", "w").close()
open("rb", "w").close()
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
r = libc.renameat2(AT_FDCWD, b"ra", AT_FDCWD, b"rb", RENAME_NOREPLACE)
assert r == -1 and ctypes.get_errno() == errno.EEXIST, (r, ctypes.get_errno())
ia, ib = os.stat("ra").st_ino, os.stat("rb").st_ino
r = libc.renameat2(AT_FDCWD, b"ra", AT_FDCWD, b"rb", RENAME_EXCHANGE)
assert r == 0, ctypes.get_errno()
assert os.stat("ra").st_ino == ib and os.stat("rb").st_ino == ia
os.mkdir("full")
open("full/x", "w").close()
os.mkdir("empty")
try:
    os.rename("empty", "full")
except OSError as e:
    assert e.errno == errno.ENOTEMPTY, e
else:
    raise SystemExit("rename over a non-empty dir succeeded")
EOF
ok "rename errnos (EINVAL, EEXIST, EXCHANGE, ENOTEMPTY)"

# ---- errno checks --------------------------------------------------------
python3 - <<'EOF' || fail "errno checks"
import errno, os
def expect(err, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        assert e.errno == err, (fn.__name__, a, e)
    else:
        raise SystemExit("%s%r: no error" % (fn.__name__, a))
expect(errno.ENOENT, os.stat, "missing")
expect(errno.EEXIST, os.mkdir, "nd")
expect(errno.ENOTDIR, os.mkdir, "f1/x")
expect(errno.ENOTDIR, os.rmdir, "f1")
expect(errno.EISDIR, os.unlink, "nd")
expect(errno.ENAMETOOLONG, os.mkdir, "n" * 256)
expect(errno.ENAMETOOLONG, open, "n" * 300, "w")
os.mkdir("n" * 255)
expect(errno.EEXIST, os.open, "f1", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
expect(errno.ENOENT, os.rename, "missing", "x")
expect(errno.ENOENT, os.link, "missing", "x")
expect(errno.EEXIST, os.link, "h1", "f1")
expect(errno.EEXIST, os.symlink, "t", "f1")
EOF
ok "errnos (ENOENT, EEXIST, ENOTDIR, EISDIR, ENAMETOOLONG)"

# Permissions are checked by metad with the caller's credentials.
chmod 755 private
echo -n > private/secret
chmod 600 private/secret
python3 - <<'EOF' || fail "permission checks as uid 1000"
import errno, os
os.setgroups([])
os.setgid(1000)
os.setuid(1000)
def expect(err, fn, *a):
    try:
        fn(*a)
    except OSError as e:
        assert e.errno == err, (fn.__name__, a, e)
    else:
        raise SystemExit("%s%r: no error" % (fn.__name__, a))
expect(errno.EACCES, open, "private/secret")
expect(errno.EACCES, os.mkdir, "private/x")
expect(errno.EPERM, os.chmod, "f1", 0o777)
assert not os.access("private/secret", os.R_OK)
assert os.access("private", os.R_OK | os.X_OK)
EOF
ok "permissions enforced by metad (EACCES, EPERM, access)"

# ---- xattrs ------------------------------------------------------------------
setfattr -n user.color -v blue f1 || fail "setfattr"
expect_eq "getfattr" "$(getfattr --only-values -n user.color f1)" blue
setfattr -n user.size -v 12345 f1
getfattr -d f1 | grep -q 'user.size="12345"' || fail "getfattr -d"
ok "listxattr"
setfattr -x user.color f1 || fail "setfattr -x"
getfattr -n user.color f1 2>/dev/null && fail "removed xattr still there"
python3 - <<'EOF' || fail "xattr errno checks"
import errno, os
os.setxattr("f1", "user.k", b"v" * 100)
assert os.getxattr("f1", "user.k") == b"v" * 100
try:
    os.getxattr("f1", "user.none")
except OSError as e:
    assert e.errno == errno.ENODATA, e
else:
    raise SystemExit("missing xattr read")
try:
    os.setxattr("f1", "user.k", b"x", os.XATTR_CREATE)
except OSError as e:
    assert e.errno == errno.EEXIST, e
else:
    raise SystemExit("XATTR_CREATE over existing")
try:
    os.setxattr("f1", "user.new", b"x", os.XATTR_REPLACE)
except OSError as e:
    assert e.errno == errno.ENODATA, e
else:
    raise SystemExit("XATTR_REPLACE of missing")
names = sorted(os.listxattr("f1"))
assert names == ["user.k", "user.size"], names
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
n = libc.getxattr(b"f1", b"user.k", None, 0)
assert n == 100, n
buf = ctypes.create_string_buffer(10)
n = libc.getxattr(b"f1", b"user.k", buf, 10)
assert n == -1 and ctypes.get_errno() == errno.ERANGE, (n, ctypes.get_errno())
EOF
ok "xattr create/replace/ENODATA/ERANGE/size probe"

# ---- a large listing ---------------------------------------------------------
mkdir big
python3 - <<'EOF' || fail "create 1000 files"
for i in range(1000):
    open("big/file-%04d" % i, "w").close()
EOF
expect_eq "ls count" "$(ls big | wc -l)" 1000
expect_eq "ls -la count" "$(ls -la big | tail -n +2 | wc -l)" 1002
expect_eq "ls order" "$(ls big | head -1),$(ls big | tail -1)" "file-0000,file-0999"
expect_eq "no duplicates" "$(ls -f big | sort | uniq -d | wc -l)" 0
python3 - <<'EOF' || fail "readdir with unlinks in between"
import os
names = set(os.listdir("big"))
assert len(names) == 1000 and "file-0500" in names
it = os.scandir("big")
seen = set()
for i, e in enumerate(it):
    seen.add(e.name)
    if i == 10:
        os.unlink("big/file-0999")
assert "file-0000" in seen and len(seen) >= 999, len(seen)
EOF
expect_eq "count after unlink" "$(ls big | wc -l)" 999
rm -rf big || fail "rm -rf"
[ -e big ] && fail "big still there"
ok "rm -rf of 999 files"

# ---- statfs ------------------------------------------------------------------
df -P "$MNT" >/dev/null || fail "statfs"
ok "statfs"

# ---- unmount -----------------------------------------------------------------
cd /
fusermount3 -u "$MNT" || fail "fusermount3 -u"
for _ in $(seq 50); do
    kill -0 "$MOUNT_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$MOUNT_PID" 2>/dev/null && fail "tessera-mount still running after unmount"
wait "$MOUNT_PID"
expect_eq "mount exit status" "$?" 0
MOUNT_PID=
grep -q "session closed" "$TMP/metad.log" && ok "session closed at metad"

# SIGTERM unmounts cleanly too.
"$BUILD/bin/tessera-mount" --meta "127.0.0.1:$PORT" -f -o allow_other "$MNT" \
    >>"$TMP/mount.log" 2>&1 &
MOUNT_PID=$!
for _ in $(seq 100); do
    mountpoint -q "$MNT" && break
    sleep 0.1
done
mountpoint -q "$MNT" || fail "not mounted again"
expect_eq "data survives remount" "$(readlink "$MNT/s1")" h1
kill -TERM "$MOUNT_PID"
wait "$MOUNT_PID"
expect_eq "exit status after SIGTERM" "$?" 0
MOUNT_PID=
mountpoint -q "$MNT" && fail "still mounted after SIGTERM"
ok "SIGTERM unmounts"
echo "all ok"
