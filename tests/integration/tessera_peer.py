"""tessera_peer.py: the frame format (docs/protocol.md §2) and the KEY
handshake (§3.1, §3.2), written from docs/protocol.md alone, for the test
peers (auth_peer.py, limit_peer.py, once_peer.py).

A connection here is a plain socket; call() sends one request and waits for
its reply, answering ENOSYS to any request the server sends meanwhile (a
peer MUST answer every request, §2.2, and these peers serve none).
"""
import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x54535241
FLAG_REPLY = 1
HELLO, AUTH, TICKET = 0x0001, 0x0003, 0x0007
KEY, TICKET_METHOD = 1, 2
ROLE_CLIENT = 1
ENOSYS = 38
EAUTH = 1006
HEADER = ">IBBHQiI"


def frame(opcode, req_id, payload, flags=0, status=0):
    return struct.pack(HEADER, MAGIC, 1, flags, opcode, req_id, status,
                       len(payload)) + payload


def recv_all(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise ConnectionError("closed")
        b += c
    return b


def call(s, opcode, req_id, payload):
    """Send request @opcode as @req_id; returns the reply's (status, body)."""
    s.sendall(frame(opcode, req_id, payload))
    while True:
        magic, version, flags, op, rid, status, length = struct.unpack(
            HEADER, recv_all(s, 24))
        body = recv_all(s, length) if length else b""
        assert magic == MAGIC and version == 1, "bad frame header"
        if not flags & FLAG_REPLY:
            s.sendall(frame(op + 1, rid, b"", FLAG_REPLY, ENOSYS))
            continue
        assert rid == req_id and op == opcode + 1, "bad reply"
        return status, body


def pstr(b):
    return struct.pack(">H", len(b)) + b


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host.strip("[]"), int(port)), 5)
    s.settimeout(30)
    return s


def hello(s, methods, max_version=1):
    """HELLO_REQ offering @methods and versions 1..@max_version; returns
    (status, method, nonce, version)."""
    p = struct.pack(">HHBII", 1, max_version, ROLE_CLIENT, 0,
                    methods) + pstr(b"tessera test peer")
    status, body = call(s, HELLO, 1, p)
    if status:
        return status, 0, None, 0
    version, _, method, _, nlen = struct.unpack(">HIIQH", body[:20])
    nonce = body[20 + nlen:]
    assert method == 0 or len(nonce) == 32, "no challenge"
    assert 1 <= version <= max_version, "a version not offered"
    return 0, method, nonce, version


def proof(key, side, method, name, ns, nc):
    label = b"tessera auth v1 " + side + b"\0"
    msg = label + bytes([method, ROLE_CLIENT]) + pstr(name) + ns + nc
    return hmac.new(key, msg, hashlib.sha256).digest()


def auth_req(key, method, name, ticket, ns):
    """AUTH_REQ's body and the responder's proof to expect."""
    nc = os.urandom(32)
    p = proof(key, b"initiator", method, name, ns, nc)
    body = (bytes([method]) + pstr(name) + struct.pack(">I", len(ticket)) +
            ticket + nc + p)
    return body, proof(key, b"responder", method, name, ns, nc)


def load_key(path):
    name = secret = None
    for line in open(path):
        if line.startswith("name "):
            name = line[5:].strip().encode()
        elif line.startswith("secret "):
            secret = bytes.fromhex(line[7:].strip())
    return name, secret


def login(addr, keyfile, max_version=1):
    """Authenticate with KEYFILE (request ids 1 and 2); returns (socket,
    AUTH_REQ body sent, protocol version chosen)."""
    name, key = load_key(keyfile)
    s = connect(addr)
    status, method, ns, version = hello(s, 1 << (KEY - 1), max_version)
    assert status == 0 and method == KEY, "no KEY challenge"
    body, expect = auth_req(key, KEY, name, b"", ns)
    status, rep = call(s, AUTH, 2, body)
    assert status == 0, "refused: %d" % status
    assert rep == expect, "the server's proof is wrong"
    return s, body, version
