#!/usr/bin/env python3
"""limit_peer.py: fill a daemon's connection limits for test-limits.sh,
written from docs/protocol.md §3 and the NBD protocol alone.

    limit_peer.py tessera ADDR SRC N KEYFILE -- CMD...
        open N connections to a Tessera port from source address SRC,
        authenticated with KEYFILE, check that one more is refused with
        ELIMIT, run CMD while holding them, then PING on the first held
        connection; KEYFILE "-" stops each connection at the challenge
        (HELLO only: held until the daemon's handshake timeout, so CMD
        must be quick), and there is no PING
    limit_peer.py nbd ADDR N EXPORT -- CMD...
        open N NBD connections (greeting and flags only), run CMD while
        holding them, then open EXPORT with NBD_OPT_GO on the first

Prints one line per step and "cmd exit=N"; exits 0 when the daemon did
what the limits say (the refusal, then service on a held connection).
"""
import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tessera_peer as tp  # noqa: E402

ELIMIT = 1007
PING = 0x0005


def dial(addr, src):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), 5,
                                 source_address=(src, 0) if src else None)
    s.settimeout(30)
    return s


def tessera_open(addr, src, keyfile):
    """One connection through HELLO (and AUTH): (socket, wire status)."""
    s = dial(addr, src)
    if keyfile == "-":
        status, _, _, _ = tp.hello(s, (1 << (tp.KEY - 1)) |
                                   (1 << (tp.TICKET_METHOD - 1)))
        return s, status
    name, key = tp.load_key(keyfile)
    status, method, ns, _ = tp.hello(s, 1 << (tp.KEY - 1))
    if status:
        return s, status
    body, expect = tp.auth_req(key, method, name, b"", ns)
    status, rep = tp.call(s, tp.AUTH, 2, body)
    if status == 0 and rep != expect:
        raise AssertionError("the server's proof is wrong")
    return s, status


def run(cmd):
    rc = subprocess.call(cmd)
    print("cmd exit=%d" % rc)
    sys.stdout.flush()


def tessera(addr, src, n, keyfile, cmd):
    held = []
    for i in range(n):
        s, status = tessera_open(addr, src, keyfile)
        print("connection %d: %s" % (i + 1, status or "OK"))
        if status:
            return 1
        held.append(s)
    s, status = tessera_open(addr, src, keyfile)
    print("connection %d: %s" % (n + 1, "ELIMIT" if status == ELIMIT
                                 else status or "OK"))
    sys.stdout.flush()
    if status != ELIMIT:
        return 1
    run(cmd)
    if keyfile == "-":
        return 0
    status, body = tp.call(held[0], PING, 9, b"12345678")
    print("ping on a held connection: %s" % (status or "OK"))
    return 0 if status == 0 and body == b"12345678" else 1


NBD_MAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3e889045565a9
OPT_GO = 7
REP_ACK = 1


def nbd_open(addr):
    s = dial(addr, None)
    magic, opt, flags = struct.unpack(">QQH", tp.recv_all(s, 18))
    assert magic == NBD_MAGIC and opt == IHAVEOPT, "not an NBD server"
    s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
    return s


def nbd_go(s, name):
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
    while True:
        magic, opt, rtype, rlen = struct.unpack(">QIII", tp.recv_all(s, 20))
        assert magic == REPLY_MAGIC and opt == OPT_GO, "bad option reply"
        body = tp.recv_all(s, rlen) if rlen else b""
        if rtype == REP_ACK:
            return "OK"
        if rtype & 0x80000000:
            return "error %#x: %s" % (rtype, body.decode(errors="replace"))


def nbd(addr, n, export, cmd):
    held = [nbd_open(addr) for _ in range(n)]
    print("held %d NBD connections" % len(held))
    sys.stdout.flush()
    run(cmd)
    res = nbd_go(held[0], export.encode())
    print("NBD_OPT_GO on a held connection: %s" % res)
    return 0 if res == "OK" else 1


def main(argv):
    if "--" not in argv:
        print(__doc__)
        return 2
    cut = argv.index("--")
    args, cmd = argv[1:cut], argv[cut + 1:]
    if args[0] == "tessera" and len(args) == 5:
        return tessera(args[1], args[2], int(args[3]), args[4], cmd)
    if args[0] == "nbd" and len(args) == 4:
        return nbd(args[1], int(args[2]), args[3], cmd)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
