#!/usr/bin/env python3
"""once_peer.py: a session's requests sent again (docs/protocol.md §5.4),
for test-meta-once.sh, written from docs/protocol.md alone.

    once_peer.py create STATE ADDRS KEYFILE
        SESSION_OPEN, MKDIR /once, MKNOD /once/f (EXCL); prints the address
        that served it and the new inode
    once_peer.py again STATE ADDRS KEYFILE
        on a new connection: SESSION_RENEW of that session, the same MKNOD
        with the same request id (the same answer, byte for byte, and the
        directory unchanged), then with a new one (EEXIST)
    once_peer.py snapshot STATE ADDRS KEYFILE
        SNAPSHOT /once/f as /once/s; on a new connection, SESSION_RENEW and
        the same SNAPSHOT with the same request id (the same answer, the
        directory unchanged), then with a new one (EEXIST); UNLINK /once/s
    once_peer.py unlink STATE ADDRS KEYFILE
        UNLINK /once/f; on a new connection, SESSION_RENEW and the same
        UNLINK with the same request id (the same answer, the directory
        unchanged), then with a new one (ENOENT); SESSION_CLOSE; prints the
        session id

ADDRS lists the metad replicas, "a,b,c": each phase dials them in turn and
follows ENOTLEADER (§5.3) to the replica that leads.  STATE is a JSON file
carried from one phase to the next: the session, the request ids and the
answers.  Each phase prints one line per step and exits 0 when metad
answered as §5.4 says, 1 (with the reason) otherwise.

Request ids (§2.4: unique and increasing on a connection; §5.4: never used
twice in one session for different requests): HELLO and AUTH are 1 and 2 on
every connection, before it is bound to the session; each SESSION_RENEW
takes the next of 4..9; the session's other requests count from 10 across
connections, so a request sent again on a new connection still has a
higher id than the renewal before it.
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tessera_peer as tp  # noqa: E402

SESSION_OPEN, SESSION_RENEW, SESSION_CLOSE = 0x0101, 0x0103, 0x0105
GETATTR, MKNOD, MKDIR, UNLINK = 0x0113, 0x0117, 0x0119, 0x011F
SNAPSHOT = 0x0139
ENOENT, EEXIST, ENOTLEADER = 2, 17, 1009
MKNOD_EXCL = 1
ROOT = 1
ATTR_SIZE = 80
VERSION = 2  # replies carry the changed directory's attributes (§6.4)
NAMES = {0: "OK", ENOENT: "ENOENT", EEXIST: "EEXIST"}


class Refused(Exception):
    pass


def cred():
    """uid 0, gid 0, no supplementary groups (§4.1)."""
    return struct.pack(">III", 0, 0, 0)


def attr_ino(a):
    return struct.unpack(">Q", a[:8])[0]


def attr_version(a):
    return struct.unpack(">Q", a[72:80])[0]


def not_leader(body):
    """ENOTLEADER's body: the leader's address, or "" (§5.3)."""
    n = struct.unpack(">H", body[:2])[0]
    return body[2:2 + n].decode()


def dial(to, opcode, req_id, payload):
    """Log in to the replica of @to (addresses, key file) that leads and
    send it the session request @opcode (SESSION_OPEN or SESSION_RENEW):
    (socket, address, reply).  A replica that does not answer (killed) is
    passed over."""
    order = list(to[0])
    for _ in range(50):
        addr = order.pop(0)
        order.append(addr)
        try:
            s, _, version = tp.login(addr, to[1], VERSION)
        except ConnectionError:
            time.sleep(0.1)
            continue
        if version != VERSION:
            raise Refused("%s chose protocol version %d" % (addr, version))
        status, body = tp.call(s, opcode, req_id, payload)
        if status == 0:
            return s, addr, body
        s.close()
        if status != ENOTLEADER:
            raise Refused("%s: status %d" % (addr, status))
        leader = not_leader(body)
        if leader:
            order.insert(0, leader)
        else:
            time.sleep(0.1)
    raise Refused("no replica leads")


def request(s, opcode, req_id, payload, want):
    """@opcode as @req_id; its body, when the status is @want."""
    status, body = tp.call(s, opcode, req_id, payload)
    if status != want:
        raise Refused("request %d (0x%04x): %s, want %s" % (
            req_id, opcode, NAMES.get(status, status), NAMES[want]))
    return body


def next_id(st):
    st["next"] += 1
    return st["next"] - 1


def renew(st, to):
    """A new connection, bound to the session again (§6.2)."""
    st["renew"] += 1
    assert st["renew"] < 10, "out of renewal ids"
    s, addr, body = dial(to, SESSION_RENEW, st["renew"],
                         struct.pack(">Q", st["session"]))
    print("session %d renewed at %s, lease %d ms" % (
        st["session"], addr, struct.unpack(">I", body)[0]))
    return s


def getattr_(s, st, ino):
    return request(s, GETATTR, next_id(st), struct.pack(">Q", ino), 0)


def resend(s, st, what, rid, payload, first, dir_attr):
    """Request @what (opcode, name) sent again as @rid: it must get @first,
    byte for byte, and leave the directory as @dir_attr said it was."""
    body = request(s, what[0], rid, payload, 0)
    if body != first:
        raise Refused("%s sent again: another answer:\n  first %s\n  "
                      "again %s" % (what[1], first.hex(), body.hex()))
    print("%s sent again as request %d: OK, the same %d bytes" % (
        what[1], rid, len(body)))
    d = getattr_(s, st, st["dir"])
    if d != dir_attr:
        raise Refused("%s sent again changed the directory: version %d, "
                      "was %d" % (what[1], attr_version(d),
                                  attr_version(dir_attr)))
    print("the directory is unchanged (version %d)" % attr_version(d))


def mknod_req(st):
    return (cred() + struct.pack(">QIIII", st["dir"], 0o100644, 0, 0o022,
                                 MKNOD_EXCL) + tp.pstr(b"f"))


def unlink_req(st):
    return cred() + struct.pack(">Q", st["dir"]) + tp.pstr(b"f")


def create(st, to):
    s, addr, body = dial(to, SESSION_OPEN, 3,
                         struct.pack(">II", 30000, 0) + tp.pstr(b"once_peer") +
                         tp.pstr(b"test-meta-once"))
    st.update(session=struct.unpack(">Q", body[:8])[0], renew=3, next=10,
              addr=addr)
    body = request(s, MKDIR, next_id(st), cred() + struct.pack(
        ">QII", ROOT, 0o755, 0o022) + tp.pstr(b"once"), 0)
    st["dir"] = attr_ino(body)
    st["mknod_id"] = next_id(st)
    body = request(s, MKNOD, st["mknod_id"], mknod_req(st), 0)
    if len(body) != 2 * ATTR_SIZE:
        raise Refused("MKNOD's reply is %d bytes" % len(body))
    st["mknod_body"] = body.hex()
    st["ino"] = attr_ino(body)
    # §6.4: the directory in the reply is what a GETATTR right after says.
    if getattr_(s, st, st["dir"]) != body[ATTR_SIZE:]:
        raise Refused("the directory in MKNOD's reply is not GETATTR's")
    print("session %d at %s: MKNOD /once/f as request %d: ino %d" % (
        st["session"], addr, st["mknod_id"], attr_ino(body)))
    print("addr=%s ino=%d" % (addr, attr_ino(body)))


def again(st, to):
    s = renew(st, to)
    first = bytes.fromhex(st["mknod_body"])
    resend(s, st, (MKNOD, "MKNOD"), st["mknod_id"], mknod_req(st), first,
           first[ATTR_SIZE:])
    rid = next_id(st)
    request(s, MKNOD, rid, mknod_req(st), EEXIST)
    print("the same MKNOD as new request %d: EEXIST" % rid)


def snapshot(st, to):
    s = renew(st, to)
    req = cred() + struct.pack(">QQ", st["ino"], st["dir"]) + tp.pstr(b"s")
    rid = next_id(st)
    first = request(s, SNAPSHOT, rid, req, 0)
    dir_attr = getattr_(s, st, st["dir"])
    print("SNAPSHOT /once/f as /once/s, request %d: ino %d" % (
        rid, attr_ino(first)))
    s.close()
    s = renew(st, to)
    resend(s, st, (SNAPSHOT, "SNAPSHOT"), rid, req, first, dir_attr)
    rid = next_id(st)
    request(s, SNAPSHOT, rid, req, EEXIST)
    print("the same SNAPSHOT as new request %d: EEXIST" % rid)
    request(s, UNLINK, next_id(st),
            cred() + struct.pack(">Q", st["dir"]) + tp.pstr(b"s"), 0)
    print("/once/s unlinked")


def unlink(st, to):
    s = renew(st, to)
    st["unlink_id"] = next_id(st)
    first = request(s, UNLINK, st["unlink_id"], unlink_req(st), 0)
    if len(first) != ATTR_SIZE:
        raise Refused("UNLINK's reply is %d bytes" % len(first))
    print("UNLINK /once/f as request %d: OK" % st["unlink_id"])
    s.close()
    s = renew(st, to)
    resend(s, st, (UNLINK, "UNLINK"), st["unlink_id"], unlink_req(st), first,
           first)
    rid = next_id(st)
    request(s, UNLINK, rid, unlink_req(st), ENOENT)
    print("the same UNLINK as new request %d: ENOENT" % rid)
    request(s, SESSION_CLOSE, next_id(st), struct.pack(">Q", st["session"]), 0)
    print("session=%d closed" % st["session"])


PHASES = {"create": create, "again": again, "snapshot": snapshot,
          "unlink": unlink}


def main(argv):
    if len(argv) != 5 or argv[1] not in PHASES:
        print(__doc__)
        return 2
    state, to = argv[2], (argv[3].split(","), argv[4])
    st = {}
    if argv[1] != "create":
        with open(state) as f:
            st = json.load(f)
    try:
        PHASES[argv[1]](st, to)
    except (Refused, AssertionError, OSError) as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        with open(state, "w") as f:
            json.dump(st, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
