#!/usr/bin/env python3
"""auth_peer.py: a hostile or careless peer for test-auth.sh, written from
docs/protocol.md §2 and §3.2 alone.

    auth_peer.py nokey ADDR                  HELLO offering no method
    auth_peer.py wrongkey ADDR KEYFILE       a proof made with KEYFILE
    auth_peer.py replay ADDR KEYFILE         a good answer, sent again on a
                                             second connection
    auth_peer.py ticket META KEYFILE CHUNKD  KEYFILE's ticket from metad,
                                             shown to CHUNKD without its
                                             session key (a stolen ticket)
    auth_peer.py silent ADDR                 HELLO, then nothing
    auth_peer.py ticket-replay META KEYFILE CHUNKD
                                             KEYFILE's ticket and session
                                             key shown to CHUNKD (must be
                                             taken), then that AUTH_REQ
                                             sent again on a new connection
    auth_peer.py nbd-replay NBD CMD...       relays CMD's NBD connection
                                             (CMD's "{port}" is the relay's
                                             port) and records what the
                                             client sent; then sends it
                                             again to NBD on a new
                                             connection, which the server
                                             must close (TLS does not
                                             replay)

Each prints what the server answered (OK, EAUTH, CLOSED, ...) and exits
0 when that is what a correct server does, 1 otherwise.
"""
import os
import select
import socket
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tessera_peer import (AUTH, EAUTH, KEY, TICKET, TICKET_METHOD,  # noqa: E402
                          auth_req, call, connect, hello, load_key, login)


def session_key(secret, sealed):
    """Open the ticket's session key (protocol.md §3.5: AES-256-GCM under
    the identity's secret, nonce first, for "tessera session key v1")."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(secret).decrypt(sealed[:12], sealed[12:],
                                  b"tessera session key v1")


def ticket_replay(meta, keyfile, chunkd):
    s, _, _ = login(meta, keyfile)
    status, rep = call(s, TICKET, 3, b"")
    assert status == 0, "no ticket: %d" % status
    tlen = struct.unpack(">I", rep[8:12])[0]
    ticket = rep[12:12 + tlen]
    klen = struct.unpack(">I", rep[12 + tlen:16 + tlen])[0]
    name, secret = load_key(keyfile)
    key = session_key(secret, rep[16 + tlen:16 + tlen + klen])
    c = connect(chunkd)
    _, method, ns, _ = hello(c, 1 << (TICKET_METHOD - 1))
    body, expect = auth_req(key, TICKET_METHOD, name, ticket, ns)
    status, rep = call(c, AUTH, 2, body)
    assert status == 0 and rep == expect, "the first use was refused: %d" % status
    c = connect(chunkd)
    hello(c, 1 << (TICKET_METHOD - 1))
    status, _ = call(c, AUTH, 2, body)
    return verdict(status, (EAUTH,))


def nbd_replay(server, cmd):
    """Relay one connection of @cmd to @server, then replay its bytes."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]
    sent = []

    def relay():
        a, _ = lsock.accept()
        b = connect(server)
        ends = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select(list(ends), [], [], 30)
                if not ready:
                    return
                for x in ready:
                    d = x.recv(65536)
                    if not d:
                        return
                    if x is a:
                        sent.append(d)
                    ends[x].sendall(d)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    t = threading.Thread(target=relay, daemon=True)
    t.start()
    run = subprocess.run([c.replace("{port}", str(port)) for c in cmd],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t.join(30)
    assert run.returncode == 0, "the relayed client failed: %s" % run.stderr
    s = connect(server)
    s.sendall(b"".join(sent))
    s.settimeout(10)
    try:
        while s.recv(65536):
            pass
        status = -1
    except socket.timeout:
        status = 0  # still open: the replay was taken
    except ConnectionError:
        status = -1
    return verdict(status, (-1,))


def verdict(status, want):
    names = {0: "OK", EAUTH: "EAUTH", -1: "CLOSED"}
    print(names.get(status, str(status)))
    return 0 if status in want else 1


def main(argv):
    cmd = argv[1]
    if cmd == "nokey":
        s = connect(argv[2])
        status, _, _, _ = hello(s, 0)
        return verdict(status, (EAUTH,))
    if cmd == "wrongkey":
        name, key = load_key(argv[3])
        s = connect(argv[2])
        _, method, ns, _ = hello(s, 1 << (KEY - 1))
        body, _ = auth_req(bytes(32) if key != bytes(32) else b"\1" * 32,
                           method, name, b"", ns)
        status, _ = call(s, AUTH, 2, body)
        return verdict(status, (EAUTH,))
    if cmd == "replay":
        s, body, _ = login(argv[2], argv[3])
        s.close()
        s = connect(argv[2])
        hello(s, 1 << (KEY - 1))
        status, _ = call(s, AUTH, 2, body)
        return verdict(status, (EAUTH,))
    if cmd == "ticket":
        s, _, _ = login(argv[2], argv[3])
        status, rep = call(s, TICKET, 3, b"")
        assert status == 0, "no ticket: %d" % status
        tlen = struct.unpack(">I", rep[8:12])[0]
        ticket = rep[12:12 + tlen]
        name, _ = load_key(argv[3])
        worst = 0
        for who in (name, b"client.other"):
            c = connect(argv[4])
            _, method, ns, _ = hello(c, 1 << (TICKET_METHOD - 1))
            body, _ = auth_req(os.urandom(32), TICKET_METHOD, who, ticket, ns)
            status, _ = call(c, AUTH, 2, body)
            worst |= verdict(status, (EAUTH,))
        return worst
    if cmd == "silent":
        s = connect(argv[2])
        hello(s, (1 << (KEY - 1)) | (1 << (TICKET_METHOD - 1)))
        try:
            while s.recv(4096):
                pass
            status = -1
        except socket.timeout:
            status = 0
        return verdict(status, (-1,))
    if cmd == "ticket-replay":
        return ticket_replay(argv[2], argv[3], argv[4])
    if cmd == "nbd-replay":
        return nbd_replay(argv[2], argv[3:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
