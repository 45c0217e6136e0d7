#!/usr/bin/env bash
# Authentication and capabilities (docs/security.md) on a real cluster:
#   - on metad's and chunkd's ports, a peer with no key, a wrong key, a
#     replayed handshake or another identity's ticket is refused with
#     EAUTH, one that says HELLO and nothing more is cut off, and both
#     daemons keep serving the others;
#   - the CLI says so in one line, refuses a key file others may read, and
#     runs admin verbs only for an admin;
#   - a mount of an identity limited to /tenantA cannot list, read, write
#     or delete outside it, creates files as 65534 (root squash), and a
#     read-only identity cannot write;
#   - over NBD with TLS, the PSK identity is the Tessera identity: client.t1
#     opens and lists images under /tenantA only, client.ro cannot write
#     (libnbd's own checks off), and a TLS name that is no identity, a
#     plain client, a wrong PSK or a replayed TLS session is refused, the
#     export serving the others;
#   - chunkd refuses a ticket handshake replayed on a new connection;
#   - a removed identity is refused at once.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera python3 \
    fusermount3 nbdinfo nbdsh psktool

ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "servers did not register"
T=$TS_BIN/tessera
P="python3 $(dirname "$0")/auth_peer.py"
K=$IT_TMP/keys
mkdir -p "$K"

# ---- Identities ------------------------------------------------------------
"$T" auth add -o "$K/t1.key" client.t1 rw path=/tenantA squash >/dev/null ||
    it_fail "auth add client.t1"
"$T" auth add -o "$K/ro.key" client.ro ro path=/tenantA >/dev/null ||
    it_fail "auth add client.ro"
[ "$(stat -c %a "$K/t1.key")" = 600 ] || it_fail "key file mode"
it_expect_eq "auth list shows the caps" \
    "$(it_json "j['client.t1']" auth list)" "rw path=/tenantA squash=65534:65534"
"$T" auth add client.t1 >/dev/null 2>&1 && it_fail "a second add succeeded"
"$T" auth add --get -o "$K/t1b.key" client.t1 >/dev/null ||
    it_fail "auth add --get"
cmp -s <(grep secret "$K/t1.key") <(grep secret "$K/t1b.key") ||
    it_fail "--get returned another key"
it_ok "auth add, add --get, list"

# ---- The CLI's refusals ----------------------------------------------------
out=$(TESSERA_KEY= "$T" status 2>&1) && it_fail "status without a key"
echo "$out" | grep -q "requires a key" || it_fail "no key: $out"
printf 'name admin\nsecret %064d\n' 0 >"$K/bad.key" && chmod 600 "$K/bad.key"
out=$("$T" --key "$K/bad.key" status 2>&1) && it_fail "status with a wrong key"
echo "$out" | grep -q "refused the key" || it_fail "wrong key: $out"
cp "$K/t1.key" "$K/open.key" && chmod 644 "$K/open.key"
out=$("$T" --key "$K/open.key" status 2>&1) && it_fail "a readable key file"
echo "$out" | grep -q "chmod 600" || it_fail "readable key: $out"
for verb in status "auth list" "auth add x.y" "server drain 1"; do
    # shellcheck disable=SC2086
    out=$("$T" --key "$K/t1.key" $verb 2>&1) && it_fail "client.t1 ran $verb"
    echo "$out" | grep -q "not permitted for identity client.t1" ||
        it_fail "$verb as client.t1: $out"
done
it_expect_eq "an identity reads its own caps" \
    "$(TESSERA_KEY=$K/t1.key it_json "j['client.t1']" auth list client.t1)" \
    "rw path=/tenantA squash=65534:65534"
out=$("$T" --key "$K/t1.key" auth list admin 2>&1) && it_fail "t1 read admin's caps"
echo "$out" | grep -q "not permitted for identity client.t1" ||
    it_fail "t1 reading admin's caps: $out"
it_ok "no key, wrong key, readable key file, non-admin verbs: one-line refusals"

# ---- Hostile peers on both ports -------------------------------------------
$P nokey "$TS_META_ADDR" >/dev/null || it_fail "metad took a peer without key"
$P wrongkey "$TS_META_ADDR" "$TESSERA_KEY" >/dev/null ||
    it_fail "metad took a wrong key"
$P replay "$TS_META_ADDR" "$K/t1.key" >/dev/null ||
    it_fail "metad took a replayed handshake"
$P silent "$TS_META_ADDR" >/dev/null || it_fail "metad kept a silent peer"
$P nokey "$TS_CHUNK1_ADDR" >/dev/null || it_fail "chunkd took a peer without key"
$P ticket "$TS_META_ADDR" "$K/t1.key" "$TS_CHUNK1_ADDR" >/dev/null ||
    it_fail "chunkd took a stolen ticket"
$P ticket-replay "$TS_META_ADDR" "$K/t1.key" "$TS_CHUNK1_ADDR" >/dev/null ||
    it_fail "chunkd took a replayed ticket handshake"
$P silent "$TS_CHUNK1_ADDR" >/dev/null || it_fail "chunkd kept a silent peer"
grep -q "authentication refused" "$TS_DIR/logs/metad.log" ||
    it_fail "metad did not log the refusal"
grep -q "authentication refused" "$TS_DIR/logs/chunkd1.log" ||
    it_fail "chunkd did not log the refusal"
"$T" status >/dev/null || it_fail "metad stopped serving"
it_ok "no key, wrong key, replay, stolen ticket, silent peer refused"
# chunkd keeps serving: the mounts below read and write through it.

# ---- Capabilities on the mount ---------------------------------------------
ts_start_mount "$TS_MNT" || it_fail "admin mount"
A=$TS_MNT
mkdir -p "$A/tenantA" "$A/tenantB" && chmod 777 "$A/tenantA" || it_fail "mkdir"
head -c 2000000 /dev/urandom >"$A/tenantA/data"
echo secret >"$A/tenantB/s"
sync "$A/tenantA/data"

M1=$IT_TMP/m1
ts_start_mount "$M1" --key "$K/t1.key" || it_fail "client.t1 mount"
ls "$M1" >/dev/null 2>&1 && it_fail "client.t1 listed /"
ls "$M1/tenantB" >/dev/null 2>&1 && it_fail "client.t1 listed /tenantB"
cat "$M1/tenantB/s" >/dev/null 2>&1 && it_fail "client.t1 read /tenantB/s"
(echo x >"$M1/tenantB/x") 2>/dev/null && it_fail "client.t1 wrote /tenantB"
rm -f "$M1/tenantB/s" 2>/dev/null
[ -f "$A/tenantB/s" ] || it_fail "client.t1 deleted /tenantB/s"
mkdir "$M1/outside" 2>/dev/null && it_fail "client.t1 made /outside"
out=$(cat "$M1/tenantB/s" 2>&1)
echo "$out" | grep -q "Permission denied" || it_fail "not EACCES: $out"
cmp -s "$M1/tenantA/data" "$A/tenantA/data" || it_fail "client.t1 read of /tenantA"
echo hello >"$M1/tenantA/mine" || it_fail "client.t1 write in /tenantA"
it_expect_eq "root squash" "$(stat -c %u:%g "$A/tenantA/mine")" "65534:65534"
rm "$M1/tenantA/mine" || it_fail "client.t1 delete in /tenantA"
it_ok "client.t1 stays inside /tenantA, squashed"

M2=$IT_TMP/m2
ts_start_mount "$M2" --key "$K/ro.key" || it_fail "client.ro mount"
cmp -s "$M2/tenantA/data" "$A/tenantA/data" || it_fail "client.ro read"
out=$(echo y 2>&1 >"$M2/tenantA/y") && it_fail "client.ro wrote"
echo "$out" | grep -q "Read-only" || it_fail "not EROFS: $out"
dd if=/dev/zero of="$M2/tenantA/data" bs=4k count=1 conv=notrunc 2>/dev/null &&
    it_fail "client.ro overwrote data"
it_ok "client.ro reads and cannot write"

# ---- NBD over TLS: the PSK identity is the Tessera identity -------------------
truncate -s 16M "$A/tenantA/disk.img" "$A/tenantB/disk.img" "$A/shared.img" ||
    it_fail "images"
"$T" auth add -o "$K/all.key" client.all >/dev/null || it_fail "auth add client.all"
for u in client.t1 client.ro client.all nobody.here; do
    psktool -u "$u" -p "$K/nbd.psk" >/dev/null || it_fail "psktool $u"
done
chmod 600 "$K/nbd.psk"
ts_start_nbd --tls=require --tls-psk "$K/nbd.psk" || it_fail "tessera-nbd with TLS"
nbd() { # nbd USER EXPORT: nbdinfo as USER over TLS
    LOGNAME=$1 nbdinfo "nbds://$TS_NBD_ADDR/$2?tls-psk-file=$K/nbd.psk" 2>&1
}
out=$(nbd client.t1 tenantA/disk.img) || it_fail "client.t1 over NBD: $out"
grep -q "is_read_only: false" <<<"$out" || it_fail "client.t1 read-only: $out"
# libnbd shows the refusal's code (POLICY), the log its sentence.
out=$(nbd client.t1 tenantB/disk.img) && it_fail "client.t1 opened /tenantB over NBD"
grep -q "identity client.t1 may not open tenantB/disk.img" "$TS_DIR/logs/nbd.log" ||
    it_fail "client.t1 /tenantB refusal: $out"
out=$(nbd client.ro tenantA/disk.img) || it_fail "client.ro over NBD: $out"
grep -q "is_read_only: true" <<<"$out" || it_fail "client.ro not read-only: $out"
out=$(nbd nobody.here tenantA/disk.img) && it_fail "an unknown TLS name got in"
grep -q "TLS user nobody.here is not an identity" "$TS_DIR/logs/nbd.log" ||
    it_fail "unknown TLS name: $out"
nbd client.t1 tenantA/disk.img >/dev/null || it_fail "the export stopped serving"
# The list (tessera-nbd's --images-dir, /) shows only what a name may open.
nbdlist() { LOGNAME=$1 nbdinfo --list "nbds://$TS_NBD_ADDR/?tls-psk-file=$K/nbd.psk" 2>&1; }
nbdlist client.all | grep -q shared.img || it_fail "client.all: $(nbdlist client.all)"
nbdlist client.t1 | grep -q shared.img && it_fail "client.t1 listed /shared.img over NBD"
# client.ro cannot write, even with libnbd's own checks off.  (nbdsh runs
# the python3 its Debian module was installed for.)
out=$(PATH=/usr/bin:$PATH nbdsh -c "
import errno
h.set_strict_mode(0)
h.set_uri_allow_local_file(True)
h.connect_uri('nbds://client.ro@$TS_NBD_ADDR/tenantA/disk.img?tls-psk-file=$K/nbd.psk')
try:
    h.pwrite(b'w' * 4096, 0)
    print('written')
except nbd.Error as e:
    print('refused', e.errnum == errno.EPERM or e.errnum == errno.EROFS)
" 2>&1)
[ "$out" = "refused True" ] || it_fail "client.ro wrote over NBD: $out"
it_expect_eq "the image is untouched" \
    "$(head -c 4096 "$A/tenantA/disk.img" | tr -d '\0' | wc -c)" 0
it_ok "NBD over TLS: the PSK identity's paths (open, list) and ro (write) hold"

# ---- Hostile clients on the NBD port ------------------------------------------
out=$(nbdinfo "nbd://$TS_NBD_ADDR/tenantA/disk.img" 2>&1) && it_fail "a plain NBD client got in"
grep -q "TLS" <<<"$out" || it_fail "plain NBD client: $out"
grep -v "^client.t1:" "$K/nbd.psk" >"$K/wrong.psk"
psktool -u client.t1 -p "$K/wrong.psk" >/dev/null && chmod 600 "$K/wrong.psk"
out=$(LOGNAME=client.t1 nbdinfo "nbds://$TS_NBD_ADDR/tenantA/disk.img?tls-psk-file=$K/wrong.psk" 2>&1) &&
    it_fail "a wrong PSK got in"
fails=$(grep -c "TLS handshake failed" "$TS_DIR/logs/nbd.log")
opens=$(grep -c "nbd connection: open:" "$TS_DIR/logs/nbd.log")
LOGNAME=client.t1 $P nbd-replay "$TS_NBD_ADDR" nbdinfo \
    "nbds://127.0.0.1:{port}/tenantA/disk.img?tls-psk-file=$K/nbd.psk" >/dev/null ||
    it_fail "a replayed NBD TLS session was not closed"
# The relayed session opened the export once; its replay did not.
it_expect_eq "exports opened by relay and replay" \
    "$(grep -c "nbd connection: open:" "$TS_DIR/logs/nbd.log")" $((opens + 1))
[ "$(grep -c "TLS handshake failed" "$TS_DIR/logs/nbd.log")" -gt "$fails" ] ||
    it_fail "the replay did not fail the TLS handshake"
nbd client.t1 tenantA/disk.img >/dev/null || it_fail "the export stopped serving"
it_ok "NBD: no key, wrong key and a replayed session refused; others served"

# ---- Revocation --------------------------------------------------------------
"$T" auth rm client.ro >/dev/null || it_fail "auth rm"
out=$("$T" --key "$K/ro.key" ping 2>&1) && it_fail "a removed identity got in"
echo "$out" | grep -q "refused the key" || it_fail "removed: $out"
it_ok "a removed identity is refused"
