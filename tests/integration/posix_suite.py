#!/usr/bin/env python3
"""POSIX behaviour over a mounted Tessera file system.

Usage: posix_suite.py DIR   (DIR: an empty, world-writable folder on the
mount; the mount must allow other users).  Runs as root and switches to
unprivileged users in child processes for the permission cases.  Prints
one line per check and "N passed, N failed" last; exits 1 on any failure.
"""
import ctypes
import errno
import os
import stat
import sys
import time

ROOT = sys.argv[1]
passed = 0
failed = 0

libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
AT_FDCWD = -100


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def expect_errno(name, want, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        check(name, e.errno == want,
              "(got %s, want %s)" % (errno.errorcode.get(e.errno, e.errno),
                                     errno.errorcode[want]))
        return
    check(name, False, "(succeeded, want %s)" % errno.errorcode[want])


def renameat2(a, b, flags):
    rc = libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def p(*parts):
    return os.path.join(ROOT, *parts)


def touch(path, mode=0o644):
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, mode))


def as_user(uid, gid, fn, groups=()):
    """Run fn() in a child as uid/gid; returns (errno or 0, message)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.setgroups(list(groups))
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            fn()
        except OSError as e:
            code = e.errno
        except Exception:  # an assertion inside fn
            code = 255
        os.write(w, str(code).encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return int(out or b"255")


def expect_user(name, want, uid, gid, fn, groups=()):
    got = as_user(uid, gid, fn, groups)
    check(name, got == want, "(got %s, want %s)" % (
        errno.errorcode.get(got, got), errno.errorcode.get(want, want)))


# ---- names and errnos ------------------------------------------------------
os.mkdir(p("a"))
expect_errno("mkdir existing -> EEXIST", errno.EEXIST, os.mkdir, p("a"))
touch(p("a", "f"))
expect_errno("rmdir non-empty -> ENOTEMPTY", errno.ENOTEMPTY, os.rmdir, p("a"))
expect_errno("rmdir file -> ENOTDIR", errno.ENOTDIR, os.rmdir, p("a", "f"))
expect_errno("unlink dir -> EISDIR", errno.EISDIR, os.unlink, p("a"))
expect_errno("open missing -> ENOENT", errno.ENOENT, os.open, p("nope"), os.O_RDONLY)
expect_errno("mkdir under missing -> ENOENT", errno.ENOENT, os.mkdir, p("nope", "x"))
expect_errno("path through file -> ENOTDIR", errno.ENOTDIR, os.stat, p("a", "f", "x"))
expect_errno("name of 256 bytes -> ENAMETOOLONG", errno.ENAMETOOLONG, touch, p("n" * 256))
touch(p("n" * 255))
check("name of 255 bytes works", os.path.exists(p("n" * 255)))
expect_errno("O_EXCL on existing -> EEXIST", errno.EEXIST, os.open, p("a", "f"),
             os.O_CREAT | os.O_EXCL | os.O_WRONLY)
expect_errno("open dir for write -> EISDIR", errno.EISDIR, os.open, p("a"), os.O_WRONLY)

# ---- rename ----------------------------------------------------------------
os.makedirs(p("r", "sub", "deep"))
expect_errno("rename into own subtree -> EINVAL", errno.EINVAL, os.rename,
             p("r"), p("r", "sub", "deep", "r"))
os.mkdir(p("r2"))
touch(p("r2", "x"))
expect_errno("rename dir over non-empty dir -> ENOTEMPTY", errno.ENOTEMPTY,
             os.rename, p("r", "sub"), p("r2"))
expect_errno("rename dir over file -> ENOTDIR", errno.ENOTDIR, os.rename,
             p("r", "sub"), p("r2", "x"))
expect_errno("rename file over dir -> EISDIR", errno.EISDIR, os.rename,
             p("r2", "x"), p("r", "sub"))
os.mkdir(p("empty"))
os.rename(p("r", "sub"), p("empty"))
check("rename dir over empty dir", os.path.isdir(p("empty", "deep"))
      and not os.path.exists(p("r", "sub")))
ino = os.stat(p("r2", "x")).st_ino
os.rename(p("r2", "x"), p("r2", "x"))
check("rename onto itself is a no-op", os.stat(p("r2", "x")).st_ino == ino)
touch(p("r2", "y"))
with open(p("r2", "x"), "w") as f:
    f.write("x")
expect_errno("RENAME_NOREPLACE onto existing -> EEXIST", errno.EEXIST, renameat2,
             p("r2", "y"), p("r2", "x"), RENAME_NOREPLACE)
renameat2(p("r2", "y"), p("r2", "x"), RENAME_EXCHANGE)
check("RENAME_EXCHANGE swaps", os.stat(p("r2", "y")).st_size == 1
      and os.stat(p("r2", "x")).st_size == 0)
expect_errno("RENAME_EXCHANGE with missing target -> ENOENT", errno.ENOENT,
             renameat2, p("r2", "y"), p("r2", "zz"), RENAME_EXCHANGE)
os.rename(p("r2", "y"), p("r", "moved"))
check("rename across directories", os.path.exists(p("r", "moved"))
      and not os.path.exists(p("r2", "y")))
touch(p("r", "over"))
os.rename(p("r", "moved"), p("r", "over"))
check("rename replaces a file", os.stat(p("r", "over")).st_size == 1)

# ---- links -----------------------------------------------------------------
touch(p("l1"))
check("new file nlink 1", os.stat(p("l1")).st_nlink == 1)
os.link(p("l1"), p("l2"))
check("hard link nlink 2", os.stat(p("l1")).st_nlink == 2
      and os.stat(p("l1")).st_ino == os.stat(p("l2")).st_ino)
os.unlink(p("l1"))
check("unlink one link leaves nlink 1", os.stat(p("l2")).st_nlink == 1)
os.mkdir(p("ld"))
check("new dir nlink 2", os.stat(p("ld")).st_nlink == 2)
os.mkdir(p("ld", "s"))
check("subdir raises parent nlink to 3", os.stat(p("ld")).st_nlink == 3)
os.rename(p("ld", "s"), p("s_moved"))
check("moving a subdir out lowers nlink", os.stat(p("ld")).st_nlink == 2)
expect_errno("link to a directory -> EPERM", errno.EPERM, os.link, p("ld"), p("ldl"))
os.symlink("l2", p("sym"))
check("symlink reads back", os.readlink(p("sym")) == "l2")
check("lstat shows a symlink", stat.S_ISLNK(os.lstat(p("sym")).st_mode))
check("stat follows the symlink", os.stat(p("sym")).st_ino == os.stat(p("l2")).st_ino)
expect_errno("readlink on a file -> EINVAL", errno.EINVAL, os.readlink, p("l2"))
os.symlink("x" * 1000, p("longsym"))
check("long symlink target", os.readlink(p("longsym")) == "x" * 1000)

# ---- timestamps ------------------------------------------------------------
os.mkdir(p("t"))
before = os.stat(p("t"))
time.sleep(0.05)
touch(p("t", "f"))
after = os.stat(p("t"))
check("create updates parent mtime", after.st_mtime_ns > before.st_mtime_ns)
check("create updates parent ctime", after.st_ctime_ns > before.st_ctime_ns)
os.utime(p("t", "f"), ns=(1000000000, 2000000000))
st = os.stat(p("t", "f"))
check("utime sets atime and mtime", st.st_atime_ns == 1000000000
      and st.st_mtime_ns == 2000000000)
c0 = os.stat(p("t", "f")).st_ctime_ns
time.sleep(0.05)
os.chmod(p("t", "f"), 0o600)
st = os.stat(p("t", "f"))
check("chmod updates ctime", st.st_ctime_ns > c0)
check("chmod leaves mtime", st.st_mtime_ns == 2000000000)
time.sleep(0.05)
before = os.stat(p("t"))
os.unlink(p("t", "f"))
check("unlink updates parent mtime", os.stat(p("t")).st_mtime_ns > before.st_mtime_ns)

# ---- xattrs ----------------------------------------------------------------
touch(p("x"))
os.setxattr(p("x"), "user.k", b"v1")
check("xattr reads back", os.getxattr(p("x"), "user.k") == b"v1")
expect_errno("XATTR_CREATE on existing -> EEXIST", errno.EEXIST, os.setxattr,
             p("x"), "user.k", b"v2", os.XATTR_CREATE)
expect_errno("XATTR_REPLACE on missing -> ENODATA", errno.ENODATA, os.setxattr,
             p("x"), "user.none", b"v", os.XATTR_REPLACE)
os.setxattr(p("x"), "user.k", b"v2", os.XATTR_REPLACE)
os.setxattr(p("x"), "user.big", b"z" * 4000)
check("xattr list", sorted(os.listxattr(p("x"))) == ["user.big", "user.k"])
check("xattr replace and big value", os.getxattr(p("x"), "user.k") == b"v2"
      and os.getxattr(p("x"), "user.big") == b"z" * 4000)
os.removexattr(p("x"), "user.k")
expect_errno("removed xattr -> ENODATA", errno.ENODATA, os.getxattr, p("x"), "user.k")

# ---- permissions (uid 1000 and 1001 are ordinary users) ----------------------
os.mkdir(p("perm"), 0o755)
os.chmod(p("perm"), 0o755)
expect_user("create in a 0755 root dir -> EACCES", errno.EACCES, 1000, 1000,
            lambda: touch(p("perm", "u")))
os.mkdir(p("open"))
os.chmod(p("open"), 0o777)
expect_user("create in a 0777 dir", 0, 1000, 1000, lambda: touch(p("open", "u")))
check("new file owned by its creator", os.stat(p("open", "u")).st_uid == 1000
      and os.stat(p("open", "u")).st_gid == 1000)
touch(p("perm", "secret"), 0o600)
os.chmod(p("perm", "secret"), 0o600)
expect_user("read a 0600 root file -> EACCES", errno.EACCES, 1000, 1000,
            lambda: os.open(p("perm", "secret"), os.O_RDONLY))
expect_user("chmod another's file -> EPERM", errno.EPERM, 1000, 1000,
            lambda: os.chmod(p("perm", "secret"), 0o666))
expect_user("chown own file to another user -> EPERM", errno.EPERM, 1000, 1000,
            lambda: os.chown(p("open", "u"), 1001, -1))
expect_user("chgrp own file to a group not held -> EPERM", errno.EPERM, 1000, 1000,
            lambda: os.chown(p("open", "u"), -1, 1001))
expect_user("chgrp own file to a supplementary group", 0, 1000, 1000,
            lambda: os.chown(p("open", "u"), -1, 2000), groups=(2000,))
os.mkdir(p("closed"))
touch(p("closed", "f"))
os.chmod(p("closed"), 0o700)
expect_user("stat through a 0700 dir -> EACCES", errno.EACCES, 1000, 1000,
            lambda: os.stat(p("closed", "f")))
os.mkdir(p("sticky"))
os.chmod(p("sticky"), 0o1777)
as_user(1000, 1000, lambda: touch(p("sticky", "mine")))
expect_user("remove another's file in a sticky dir -> EPERM", errno.EPERM, 1001, 1001,
            lambda: os.unlink(p("sticky", "mine")))
expect_user("owner removes own file in a sticky dir", 0, 1000, 1000,
            lambda: os.unlink(p("sticky", "mine")))
expect_user("set explicit times on another's file -> EPERM", errno.EPERM, 1000, 1000,
            lambda: os.utime(p("perm", "secret"), ns=(1, 1)))
touch(p("open", "w"), 0o666)
os.chmod(p("open", "w"), 0o666)
expect_user("touch (times now) with write permission", 0, 1001, 1001,
            lambda: os.utime(p("open", "w")))
os.chmod(p("open", "u"), 0o6755)
as_user(1000, 1000, lambda: os.chown(p("open", "u"), -1, 1000))
check("chown by the owner clears setuid/setgid",
      os.stat(p("open", "u")).st_mode & 0o6000 == 0)

# ---- readdir ---------------------------------------------------------------
os.mkdir(p("many"))
for i in range(1000):
    touch(p("many", "e%04d" % i))
names = os.listdir(p("many"))
check("1000 entries listed once each", len(names) == 1000 and len(set(names)) == 1000)
with os.scandir(p("many")) as it:
    kinds = {e.name: e.is_file() for e in it}
check("readdir reports types", all(kinds.values()))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
