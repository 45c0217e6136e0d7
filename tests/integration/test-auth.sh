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
#     opens images under /tenantA only, client.ro only reads, and a TLS
#     name that is no identity is refused, the export serving the others;
#   - a removed identity is refused at once.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera python3 \
    fusermount3 nbdinfo psktool

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
$P silent "$TS_CHUNK1_ADDR" >/dev/null || it_fail "chunkd kept a silent peer"
grep -q "authentication refused" "$TS_DIR/logs/metad.log" ||
    it_fail "metad did not log the refusal"
grep -q "authentication refused" "$TS_DIR/logs/chunkd1.log" ||
    it_fail "chunkd did not log the refusal"
"$T" status >/dev/null || it_fail "metad stopped serving"
it_ok "no key, wrong key, replay, stolen ticket, silent peer refused"

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
truncate -s 16M "$A/tenantA/disk.img" "$A/tenantB/disk.img" || it_fail "images"
for u in client.t1 client.ro nobody.here; do
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
it_ok "NBD over TLS: the PSK identity's paths and ro hold"

# ---- Revocation --------------------------------------------------------------
"$T" auth rm client.ro >/dev/null || it_fail "auth rm"
out=$("$T" --key "$K/ro.key" ping 2>&1) && it_fail "a removed identity got in"
echo "$out" | grep -q "refused the key" || it_fail "removed: $out"
it_ok "a removed identity is refused"
