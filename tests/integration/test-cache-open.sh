#!/usr/bin/env bash
# test-cache-open.sh: a file held open on mount B stays coherent with
# mount A's changes (docs/caching.md §3, "Files held open").  Through the
# descriptor it already has open, B reads the bytes A appended (the new
# size reaches it), and after holding the file idle for longer than a
# callback promise lasts (metad runs with --promise-ms 2000 here) B still
# gets A's overwrite and extension instead of its kernel's stale pages and
# old size.  Each change is polled for at most 1 s through B's descriptor.
METAD_ARGS="--promise-ms 2000"
. "$(dirname "$0")/lib.sh"
it_need python3
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"

head -c 100000 /dev/urandom >"$A/f"
python3 - "$A/f" "$B/f" <<'PY' || it_fail "B's open descriptors were not kept coherent"
import mmap, os, sys, time

a_path, b_path = sys.argv[1], sys.argv[2]
want = bytearray(open(a_path, "rb").read())
buf = mmap.mmap(-1, 1 << 20)  # page aligned, for O_DIRECT


def b_read(fd):
    n = os.preadv(fd, [buf], 0)
    return bytes(buf[:n])


def a_write(off, data):
    wfd = os.open(a_path, os.O_WRONLY)
    os.pwrite(wfd, data, off)
    os.close(wfd)
    want[off:off + len(data)] = data


def expect(fd, what):
    t0 = time.time()
    while time.time() - t0 < 1.0:
        got = b_read(fd)
        if got == want:
            print("ok: %s (seen after %d ms)" % (what, (time.time() - t0) * 1000))
            return
        time.sleep(0.01)
    sys.exit("FAIL: %s: B reads %d bytes, want %d%s" % (
        what, len(got), len(want),
        "" if len(got) != len(want) else " (same size, other bytes)"))


# 1. B reads with O_DIRECT (as qemu's cache=none does) through a
# descriptor opened before A extends the file: it reads up to the new size.
dfd = os.open(b_path, os.O_RDONLY | os.O_DIRECT)
expect(dfd, "B's O_DIRECT descriptor reads the file")
a_write(len(want), os.urandom(5000))
expect(dfd, "an extension on A reaches B's open O_DIRECT descriptor")
os.close(dfd)

# 2. B reads through the page cache, then holds the file idle for longer
# than a promise lasts; A overwrites bytes in place (the size stays, so
# nothing but a break drops B's pages).
fd = os.open(b_path, os.O_RDONLY)
expect(fd, "B's buffered descriptor reads the file")
time.sleep(5)
a_write(4096, b"NEWBYTES" * 512)
expect(fd, "after B held the file idle 5 s (promise 2 s), A's overwrite "
       "reaches B's open descriptor")
os.close(fd)
PY
exit 0
