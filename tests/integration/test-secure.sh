#!/usr/bin/env bash
# Secure links (docs/security.md, "Secure links"; protocol.md §3.7) on a
# real cluster run with --secure (TS_SECURE=1: metad and chunkd refuse
# plain peers, every client asks):
#   - a mount writes and reads a file, tessera-nbd serves an image to
#     nbdcopy both ways, with goal 2 so that chunkd forwards to chunkd;
#   - on loopback, the Tessera ports (metad, both chunkds) carry all that
#     data and none of it in the clear: a known pattern written through
#     the mount and over NBD never shows in a capture of them;
#   - a plain peer is refused with ESECURE on metad and on chunkd, and the
#     CLI and the mount say why.
TS_SECURE=1
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera python3 \
    fusermount3 nbdcopy tcpdump

ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "servers did not register"
T=$TS_BIN/tessera
port() { echo "${1##*:}"; }

# ---- Capture the Tessera ports on loopback ---------------------------------
PCAP=$IT_TMP/wire.pcap
tcpdump -i lo -U -s 0 -w "$PCAP" "tcp and (port $(port "$TS_META_ADDR") or \
port $(port "$TS_CHUNK1_ADDR") or port $(port "$TS_CHUNK2_ADDR"))" \
    2>"$IT_TMP/tcpdump.log" &
TCPDUMP=$!
ts_record tcpdump $TCPDUMP
for _ in $(seq 50); do
    grep -qs "listening on" "$IT_TMP/tcpdump.log" && break
    sleep 0.1
done
grep -q "listening on" "$IT_TMP/tcpdump.log" || it_fail "tcpdump did not start"

ts_start_mount || it_fail "the mount did not come up with --secure"
ts_start_nbd || it_fail "tessera-nbd did not start with --secure"
"$T" setgoal 2 / >/dev/null || it_fail "setgoal 2"

python3 -c '
import sys
line = b"TESSERA-SECRET-PATTERN-%08d\n"
sys.stdout.buffer.write(b"".join(line % i for i in range(4 << 20 >> 5)))' \
    >"$IT_TMP/pattern.raw"

# ---- I/O through the mount and over NBD ------------------------------------
cp "$IT_TMP/pattern.raw" "$TS_MNT/file.bin" && sync "$TS_MNT/file.bin" ||
    it_fail "write through the mount"
cmp -s "$IT_TMP/pattern.raw" "$TS_MNT/file.bin" || it_fail "read through the mount"
it_ok "mount: 4 MiB written and read over secure links"
truncate -s 8M "$TS_MNT/disk.img" || it_fail "image"
nbdcopy "$IT_TMP/pattern.raw" "nbd://$TS_NBD_ADDR/disk.img" || it_fail "nbdcopy in"
nbdcopy "nbd://$TS_NBD_ADDR/disk.img" "$IT_TMP/back.raw" || it_fail "nbdcopy out"
cmp -s -n $((4 << 20)) "$IT_TMP/pattern.raw" "$IT_TMP/back.raw" ||
    it_fail "NBD read back something else"
it_ok "NBD: 4 MiB written and read over secure links"

# ---- Nothing in the clear ----------------------------------------------------
kill -INT $TCPDUMP
wait $TCPDUMP 2>/dev/null
out=$(python3 - "$PCAP" <<'PY'
import sys
wire = open(sys.argv[1], "rb").read()
print("captured=%d clear=%d" % (len(wire), wire.count(b"SECRET-PATTERN")))
# Two copies of 4 MiB from the mount and from NBD, with the chain's
# forwarding: far more than 8 MiB crossed these ports.
sys.exit(0 if len(wire) > (8 << 20) and b"SECRET-PATTERN" not in wire else 1)
PY
) || it_fail "the capture shows the data or too little of it: $out"
it_ok "capture of the Tessera ports: $out, no pattern"

# ---- Plain peers are refused ---------------------------------------------------
out=$(TESSERA_SECURE=0 "$T" status 2>&1) && it_fail "a plain CLI got in"
echo "$out" | grep -q "requires a secure link" || it_fail "plain CLI: $out"
out=$(python3 - "$TS_META_ADDR" "$TS_CHUNK1_ADDR" "$TESSERA_KEY" "$(dirname "$0")" <<'PY'
import sys
sys.path.insert(0, sys.argv[4])
import limit_peer as lp
_, meta = lp.tessera_open(sys.argv[1], None, sys.argv[3])
_, chunk = lp.tessera_open(sys.argv[2], None, "-")
print("metad=%d chunkd=%d" % (meta, chunk))
sys.exit(0 if meta == chunk == 1008 else 1)
PY
) || it_fail "a plain peer was not refused with ESECURE: $out"
mkdir -p "$IT_TMP/mnt2"
out=$(TESSERA_SECURE=0 "$TS_BIN/tessera-mount" --meta "$TS_META_ADDR" -f \
    "$IT_TMP/mnt2" 2>&1) && it_fail "a plain mount came up"
echo "$out" | grep -q "secure links" || it_fail "plain mount: $out"
grep -q "a secure link (--secure) is required and was not asked for" \
    "$TS_DIR/logs/metad.log" || it_fail "metad did not log the refusal"
grep -q "a secure link (--secure) is required and was not asked for" \
    "$TS_DIR/logs/chunkd1.log" || it_fail "chunkd did not log the refusal"
"$T" status >/dev/null || it_fail "the secure CLI refused after that"
it_ok "plain peers refused with ESECURE (metad, chunkd, CLI, mount)"
