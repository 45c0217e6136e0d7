#!/usr/bin/env bash
# Connections per address and sessions per identity (docs/security.md,
# "Limits against abuse") on real daemons:
#   - metad: a fourth connection from one address (127.0.0.2) is answered
#     ELIMIT at HELLO, a fifth session of client.lim ELIMIT at AUTH, while
#     the admin CLI (another address, another identity) still works and the
#     held connections still answer PING;
#   - chunkd: a third connection from 127.0.0.2 is answered ELIMIT while a
#     real client on 127.0.0.1 writes and reads an image through it;
#   - tessera-nbd: a second NBD connection from one address is refused at
#     NBD_OPT_GO with NBD_REP_ERR_POLICY and a sentence that says why,
#     and the held one opens its export.
# Every refusal is logged by the daemon.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-nbd tessera python3 nbdinfo

ts_start_metad --max-conns-per-addr 3 --max-sessions-per-identity 4 ||
    it_fail "metad did not start"
ts_start_chunkd 1 --max-conns-per-addr 2 || it_fail "chunkd did not start"
ts_wait_servers 1 15 || it_fail "server did not register"
T=$TS_BIN/tessera
L="python3 $(dirname "$0")/limit_peer.py"
"$T" auth add -o "$IT_TMP/lim.key" client.lim rw >/dev/null ||
    it_fail "auth add client.lim"

# ---- metad -----------------------------------------------------------------
out=$($L tessera "$TS_META_ADDR" 127.0.0.2 3 "$IT_TMP/lim.key" -- "$T" status 2>&1) ||
    it_fail "metad, per address: $out"
echo "$out" | grep -q "cmd exit=0" || it_fail "admin CLI refused meanwhile: $out"
grep -q "too many connections from this address: limit=3 peer=127.0.0.2" \
    "$TS_DIR/logs/metad.log" || it_fail "metad did not log the refusal"
it_ok "metad: 4th connection from 127.0.0.2 refused, others served"

out=$(python3 - "$TS_META_ADDR" "$IT_TMP/lim.key" "$(dirname "$0")" <<'PY' 2>&1
import sys
sys.path.insert(0, sys.argv[3])
import limit_peer as lp
held = []
for src in ("127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"):
    s, st = lp.tessera_open(sys.argv[1], src, sys.argv[2])
    assert st == 0, "session %d: %d" % (len(held) + 1, st)
    held.append(s)
s, st = lp.tessera_open(sys.argv[1], "127.0.0.5", sys.argv[2])
print("5th session:", "ELIMIT" if st == lp.ELIMIT else st)
sys.exit(0 if st == lp.ELIMIT else 1)
PY
) || it_fail "metad, per identity: $out"
"$T" status >/dev/null || it_fail "admin CLI refused after the session refusal"
grep -q "too many sessions of this identity: identity=client.lim limit=4" \
    "$TS_DIR/logs/metad.log" || it_fail "metad did not log the session refusal"
out=$(TESSERA_KEY=$IT_TMP/lim.key "$T" auth list client.lim 2>&1) ||
    it_fail "client.lim refused once the sessions were gone: $out"
it_ok "metad: 5th session of client.lim refused, then room again"

# ---- chunkd ----------------------------------------------------------------
head -c 1M /dev/urandom >"$IT_TMP/img.raw"
out=$($L tessera "$TS_CHUNK1_ADDR" 127.0.0.2 2 - -- \
    "$T" image import "$IT_TMP/img.raw" /lim.img 2>&1) ||
    it_fail "chunkd, per address: $out"
echo "$out" | grep -q "cmd exit=0" || it_fail "a client was refused meanwhile: $out"
"$T" image export /lim.img "$IT_TMP/back.raw" >/dev/null 2>&1 ||
    it_fail "image export"
cmp -s "$IT_TMP/img.raw" "$IT_TMP/back.raw" || it_fail "the image came back changed"
grep -q "too many connections from this address: limit=2 peer=127.0.0.2" \
    "$TS_DIR/logs/chunkd1.log" || it_fail "chunkd did not log the refusal"
it_ok "chunkd: 3rd connection from 127.0.0.2 refused, a client served"

# ---- tessera-nbd -----------------------------------------------------------
NBDADDR=127.0.0.1:$(ts_free_port)
setsid "$TS_BIN/tessera-nbd" --backend mem --listen "$NBDADDR" --tls off \
    --max-conns-per-addr 1 >>"$TS_DIR/logs/nbd-limits.log" 2>&1 &
ts_record nbd-limits $!
ts_wait_port "$NBDADDR" 10 $! || it_fail "tessera-nbd did not start"
out=$($L nbd "$NBDADDR" 1 disk -- nbdinfo "nbd://$NBDADDR/disk" 2>&1) ||
    it_fail "nbd, per address: $out"
echo "$out" | grep -q "cmd exit=0" && it_fail "a second NBD connection got in: $out"
# The sentence goes to the client with NBD_REP_ERR_POLICY, and to the log.
grep -q "export disk refused: too many connections from 127.0.0.1 (limit 1)" \
    "$TS_DIR/logs/nbd-limits.log" || it_fail "tessera-nbd did not log the refusal"
nbdinfo "nbd://$NBDADDR/disk" >/dev/null || it_fail "no room once the holder left"
it_ok "tessera-nbd: 2nd connection from 127.0.0.1 refused with a reason"
