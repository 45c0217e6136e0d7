#!/usr/bin/env bash
# tessera-nbd's NBD protocol, driven by real clients over TCP and a unix
# socket against the dir: backend: nbdinfo (info, --list, --map), qemu-io
# with pattern verification (write, read, discard, zero), qemu-img
# (info, convert, compare, check on a qcow2 inside an export), nbdcopy in
# and out keeping sparseness, a read-only server, and hostile raw-socket
# input, after which normal clients must still work.  Ends with SIGTERM,
# which must stop the server cleanly.
#
#   BUILD=/path/to/build bash tests/integration/test-nbd-proto.sh
NBD_TOOLS="nbdinfo nbdcopy qemu-img qemu-io truncate du cmp"
. "$(dirname "$0")/lib-nbd.sh"
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# Allocated KiB of a file.
alloc_kib() { du -k "$1" | cut -f1; }

exports=$tmp/exports
mkdir -p "$exports/vm"
truncate -s 64M "$exports/disk.raw"
truncate -s 64M "$exports/in.raw"
# An NBD export has a fixed size, so the qcow2 container is preallocated:
# guest writes land inside the file instead of growing it.
qemu-img create -q -f qcow2 -o preallocation=metadata \
    "$exports/vm/guest.qcow2" 256M || fail "qemu-img create"

port=$(free_port)
sock=$tmp/nbd.sock
"$NBD" --backend "dir:$exports" --listen "127.0.0.1:$port" --unix "$sock" \
    >"$tmp/nbd.log" 2>&1 &
server=$!
pids+=("$server")
wait_up "$port"
URL=nbd://127.0.0.1:$port
UURL="nbd+unix:///disk.raw?socket=$sock"

# ---- nbdinfo ----------------------------------------------------------------
info=$(nbdinfo --json "$URL/disk.raw") || fail "nbdinfo"
[ "$(echo "$info" | json '["exports"][0]["export-size"]')" = 67108864 ] ||
    fail "export size: $info"
[ "$(echo "$info" | json '["exports"][0]["can_multi_conn"]')" = True ] ||
    fail "can_multi_conn not advertised"
[ "$(echo "$info" | json '["exports"][0]["is_read_only"]')" = False ] ||
    fail "read-only unexpectedly"
[ "$(echo "$info" | json '["exports"][0]["block_size_maximum"]')" = 33554432 ] ||
    fail "block size maximum"
ok "nbdinfo reports size, flags and block sizes"

list=$(nbdinfo --list --json "$URL") || fail "nbdinfo --list"
names=$(echo "$list" | python3 -c 'import json,sys; print(" ".join(sorted(e["export-name"] for e in json.load(sys.stdin)["exports"])))')
[ "$names" = "disk.raw in.raw vm/guest.qcow2" ] || fail "export list: $names"
ok "nbdinfo --list lists every file"

nbdinfo "$URL/nosuch.raw" >/dev/null 2>&1 && fail "unknown export opened"
nbdinfo "$URL/../etc/passwd" >/dev/null 2>&1 && fail "escaping name opened"
nbdinfo "$URL/" >/dev/null 2>&1 && fail "empty name without default opened"
ok "unknown, escaping and empty names are refused"

# ---- qemu-io patterns over TCP and unix -------------------------------------
qemu-io -f raw -c 'write -P 0xa5 0 4M' -c 'write -P 0x5a 8M 1M' \
    -c 'write -P 0x11 60M 64k' -c 'write -z 1M 1M' -c 'discard 2M 1M' \
    -c 'flush' "$URL/disk.raw" >"$tmp/qemu-io.out" 2>&1 || fail "qemu-io writes: $(cat "$tmp/qemu-io.out")"
out=$(qemu-io -f raw -r -c 'read -P 0xa5 0 1M' -c 'read -P 0 1M 2M' \
    -c 'read -P 0xa5 3M 1M' -c 'read -P 0x5a 8M 1M' -c 'read -P 0x11 60M 64k' \
    -c 'read -P 0 30M 1M' "$UURL" 2>&1) || fail "qemu-io reads: $out"
echo "$out" | grep -q 'Pattern verification failed' && fail "pattern mismatch: $out"
ok "qemu-io patterns written over TCP read back over the unix socket"

# Offsets not aligned to anything, and FUA writes.
qemu-io -f raw -c 'write -P 0x77 12345 7777' -c 'write -f -P 0x78 5000001 3' \
    "$URL/disk.raw" >/dev/null 2>&1 || fail "qemu-io unaligned writes"
out=$(qemu-io -f raw -r -c 'read -P 0x77 12345 7777' -c 'read -P 0x78 5000001 3' \
    "$URL/disk.raw" 2>&1) || fail "qemu-io unaligned reads"
echo "$out" | grep -q 'Pattern verification failed' && fail "unaligned mismatch"
ok "unaligned and FUA writes"

map=$(nbdinfo --map --json "$URL/disk.raw") || fail "nbdinfo --map"
echo "$map" | python3 -c '
import json, sys
m = json.load(sys.stdin)
def at(off):
    for e in m:
        if e["offset"] <= off < e["offset"] + e["length"]:
            return e["type"]
    sys.exit("no extent at %d" % off)
assert at(0) & 1 == 0, "written data reported as a hole"
assert at(2 << 20) & 1 == 1, "discarded range reported as data"
assert at(30 << 20) == 3, "never-written range not a hole"
assert sum(e["length"] for e in m) == 64 << 20, "map does not cover the disk"
' || fail "block status map: $map"
ok "nbdinfo --map shows data, punched and never-written holes"

# ---- qemu-img on a qcow2 image inside an export ----------------------------
fmt=$(qemu-img info --output=json "$URL/vm/guest.qcow2" | json '["format"]') ||
    fail "qemu-img info"
[ "$fmt" = qcow2 ] || fail "qcow2 over nbd detected as $fmt"
qemu-io -f qcow2 -c 'write -P 0x33 0 2M' -c 'write -P 0x44 200M 1M' \
    "$URL/vm/guest.qcow2" >/dev/null 2>&1 || fail "qemu-io on qcow2"
out=$(qemu-io -f qcow2 -r -c 'read -P 0x33 0 2M' -c 'read -P 0x44 200M 1M' \
    "$URL/vm/guest.qcow2" 2>&1) || fail "qemu-io read qcow2"
echo "$out" | grep -q 'Pattern verification failed' && fail "qcow2 mismatch"
qemu-img check -q "$exports/vm/guest.qcow2" || fail "qemu-img check"
ok "qcow2 inside an export: written over NBD, checks clean"

head -c 3M /dev/urandom >"$tmp/rand"
truncate -s 64M "$tmp/rand"
qemu-img convert -n -f raw -O raw "$tmp/rand" "$URL/disk.raw" || fail "convert in"
qemu-img compare -q -f raw -F raw "$tmp/rand" "$URL/disk.raw" || fail "compare"
qemu-img convert -f raw -O raw "$URL/disk.raw" "$tmp/back.raw" || fail "convert out"
cmp -s "$tmp/rand" "$tmp/back.raw" || fail "converted copy differs"
ok "qemu-img convert in and out, compare equal"

# ---- nbdcopy keeps sparseness both ways ------------------------------------
nbdcopy "$URL/disk.raw" "$tmp/out.raw" || fail "nbdcopy out"
cmp -s "$exports/disk.raw" "$tmp/out.raw" || fail "nbdcopy out differs"
a=$(alloc_kib "$tmp/out.raw")
[ "$a" -lt 16384 ] || fail "nbdcopy out not sparse: $a KiB allocated"
ok "nbdcopy out: equal and sparse ($a KiB of 64 MiB)"

truncate -s 64M "$tmp/sparse.raw"
printf 'hello' | dd of="$tmp/sparse.raw" bs=1 seek=$((40 << 20)) conv=notrunc 2>/dev/null
head -c 1M /dev/urandom | dd of="$tmp/sparse.raw" bs=1M seek=5 conv=notrunc 2>/dev/null
nbdcopy "$tmp/sparse.raw" "$URL/in.raw" || fail "nbdcopy in"
cmp -s "$tmp/sparse.raw" "$exports/in.raw" || fail "nbdcopy in differs"
a=$(alloc_kib "$exports/in.raw")
[ "$a" -lt 16384 ] || fail "nbdcopy in not sparse: $a KiB allocated"
ok "nbdcopy in: equal and sparse ($a KiB of 64 MiB)"

# ---- a read-only server ------------------------------------------------------
# A known pattern again (the convert above replaced the disk's content).
qemu-io -f raw -c 'write -P 0x11 60M 64k' "$URL/disk.raw" >/dev/null 2>&1 ||
    fail "qemu-io rewrite"
rport=$(free_port)
"$NBD" --backend "dir:$exports" --listen "127.0.0.1:$rport" --readonly \
    --default-export disk.raw >"$tmp/nbd-ro.log" 2>&1 &
ro=$!
pids+=("$ro")
wait_up "$rport"
[ "$(nbdinfo --json "nbd://127.0.0.1:$rport/" | json '["exports"][0]["is_read_only"]')" = True ] ||
    fail "read-only flag (default export)"
qemu-io -f raw -c 'write -P 1 0 4k' "nbd://127.0.0.1:$rport/disk.raw" >/dev/null 2>&1 &&
    fail "write to read-only export succeeded"
qemu-io -f raw -r -c 'read -P 0x11 60M 64k' "nbd://127.0.0.1:$rport/disk.raw" \
    2>&1 | grep -q 'Pattern verification failed' && fail "read-only read"
kill -TERM "$ro"
wait "$ro" || fail "read-only server exit status"
ok "read-only server: flag set, writes refused, reads fine"

# ---- hostile input ---------------------------------------------------------
python3 - "$port" >"$tmp/hostile.out" 2>&1 <<'EOF' || fail "hostile input: $(cat "$tmp/hostile.out")"
import socket, struct, sys

port = int(sys.argv[1])
NBDMAGIC, IHAVEOPT, REPMAGIC = 0x4e42444d41474943, 0x49484156454f5054, 0x3e889045565a9

def conn():
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5)
    return s

def recvn(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError("EOF after %d of %d bytes" % (len(b), n))
        b += k
    return b

def closed(s):
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

def greet(s, flags=3):
    magic, opt, hflags = struct.unpack(">QQH", recvn(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT and hflags == 3
    s.sendall(struct.pack(">I", flags))

def export_name(s, name):
    greet(s)
    s.sendall(struct.pack(">QII", IHAVEOPT, 1, len(name)) + name)
    size, tflags = struct.unpack(">QH", recvn(s, 10))
    return size

# Garbage instead of client flags, then garbage instead of an option.
s = conn(); recvn(s, 18); s.sendall(b"\xff" * 64); assert closed(s), "garbage flags"
s = conn(); greet(s); s.sendall(b"BADMAGIC" + b"\0" * 8); assert closed(s), "bad option magic"
# Truncated handshakes: leave at every step.
s = conn(); s.close()
s = conn(); recvn(s, 18); s.sendall(b"\0\0"); s.close()
s = conn(); greet(s); s.sendall(struct.pack(">QII", IHAVEOPT, 7, 100) + b"abc"); s.close()
# A huge option length: an error reply, then the server hangs up.
s = conn(); greet(s)
s.sendall(struct.pack(">QII", IHAVEOPT, 7, 0xffffffff))
magic, opt, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
assert magic == REPMAGIC and opt == 7 and rtype & 0x80000000, "no error reply"
recvn(s, rlen)
assert closed(s), "huge option did not disconnect"
# An unknown option is refused and the connection lives on.
s = conn(); greet(s)
s.sendall(struct.pack(">QII", IHAVEOPT, 999, 4) + b"abcd")
magic, opt, rtype, rlen = struct.unpack(">QIII", recvn(s, 20))
assert rtype == 0x80000001, "unknown option: reply %x" % rtype
recvn(s, rlen)
s.sendall(struct.pack(">QII", IHAVEOPT, 2, 0))  # ABORT
recvn(s, 20)
assert closed(s)
# Bad command magic disconnects.
s = conn(); export_name(s, b"disk.raw")
s.sendall(b"\xde\xad\xbe\xef" + b"\0" * 24)
assert closed(s), "bad request magic did not disconnect"
# Out-of-range and too-long requests get errors; the connection stays.
s = conn(); size = export_name(s, b"disk.raw")
READ, WRITE, DISC = 0, 1, 2
def req(t, cookie, off, ln, flags=0):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, t, cookie, off, ln))
def simple(cookie):
    magic, err, c = struct.unpack(">IIQ", recvn(s, 16))
    assert magic == 0x67446698 and c == cookie, "bad reply"
    return err
req(READ, 1, size, 512); assert simple(1) == 22, "read past end"
req(READ, 2, 2**64 - 1, 512); assert simple(2) == 22, "read offset overflow"
req(READ, 3, 0, 64 << 20); assert simple(3) in (22, 75), "huge read"
req(WRITE, 4, size - 1, 2); s.sendall(b"xy"); assert simple(4) in (22, 28), "write past end"
req(READ, 5, 60 << 20, 4096); assert simple(5) == 0; data = recvn(s, 4096)
assert data == b"\x11" * 4096, "data after errors"
req(DISC, 6, 0, 0)
assert closed(s)
# Many connections dropped mid-transmission with requests in flight.
for i in range(20):
    s = conn(); export_name(s, b"disk.raw")
    for c in range(8):
        req(READ, c, c * 4096, 1 << 20)
    s.close()
print("hostile input handled")
EOF
kill -0 "$server" 2>/dev/null || fail "server died on hostile input"
out=$(qemu-io -f raw -r -c 'read -P 0x11 60M 64k' "$URL/disk.raw" 2>&1) ||
    fail "client after hostile input: $out"
echo "$out" | grep -q 'Pattern verification failed' && fail "data after hostile input"
ok "hostile input: server survives, normal clients still work"

# ---- logging and a clean stop ---------------------------------------------
grep -q "nbd connection: open: peer=127.0.0.1:[0-9]* export=disk.raw" "$tmp/nbd.log" ||
    fail "no connection open log line"
grep -q "nbd connection: closed: .* peer=unix:" "$tmp/nbd.log" ||
    fail "no unix connection close log line"
kill -TERM "$server"
wait "$server" || fail "server exit status after SIGTERM"
pids=()
[ -e "$sock" ] && fail "unix socket left behind"
ok "SIGTERM stops the server cleanly"
