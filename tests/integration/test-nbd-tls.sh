#!/usr/bin/env bash
# NBD over TLS with stock clients, against tessera-nbd's dir: backend.
# PSK (keys made by psktool) and X.509 (a CA, a server and a client
# certificate made by certtool, client certificates verified): qemu-img
# info and qemu-io through --image-opts with a tls-creds-psk or
# tls-creds-x509 object, nbdinfo and nbdcopy (both ways, sha256-checked)
# with an nbds:// URI.  Refused, each followed by a good client to show
# the server keeps serving: a plain client when TLS is required, a wrong
# key, an unknown identity, a client without a certificate.  And
# tessera-nbd refuses to start on a non-loopback address without
# credentials, and with a PSK file others can read.
#
#   BUILD=/path/to/build bash tests/integration/test-nbd-tls.sh
NBD_TOOLS="nbdinfo nbdcopy qemu-img qemu-io psktool certtool sha256sum truncate"
. "$(dirname "$0")/lib-nbd.sh"

exports=$tmp/exports
mkdir -p "$exports"
truncate -s 64M "$exports/disk.raw"

# ---- Credentials ------------------------------------------------------------
# PSK: the server's file names alice; qemu reads <dir>/keys.psk.
mkdir -p "$tmp/psk" "$tmp/psk-wrong"
psktool -u alice -p "$tmp/psk/keys.psk" >/dev/null || fail "psktool"
psktool -u alice -p "$tmp/psk-wrong/keys.psk" >/dev/null || fail "psktool"
psktool -u mallory -p "$tmp/psk-mallory.psk" >/dev/null || fail "psktool"
mkdir -p "$tmp/psk-mallory" && cp "$tmp/psk-mallory.psk" "$tmp/psk-mallory/keys.psk"
chmod 600 "$tmp"/psk*/keys.psk

# X.509: one CA signs the server's and the client's certificates.
x=$tmp/x509
mkdir -p "$x/server" "$x/client" "$x/nocert"
cat >"$x/ca.info" <<EOF
cn = Tessera test CA
ca
cert_signing_key
expiration_days = 2
EOF
cat >"$x/server.info" <<EOF
organization = Tessera test
cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key
expiration_days = 2
EOF
cat >"$x/client.info" <<EOF
organization = Tessera test
cn = hv3
tls_www_client
encryption_key
signing_key
expiration_days = 2
EOF
ct() { certtool "$@" >/dev/null 2>&1 || fail "certtool $*"; }
ct --generate-privkey --key-type=ecdsa --outfile "$x/ca-key.pem"
ct --generate-self-signed --load-privkey "$x/ca-key.pem" \
    --template "$x/ca.info" --outfile "$x/ca-cert.pem"
for who in server client; do
    ct --generate-privkey --key-type=ecdsa --outfile "$x/$who/$who-key.pem"
    ct --generate-certificate --load-privkey "$x/$who/$who-key.pem" \
        --load-ca-certificate "$x/ca-cert.pem" --load-ca-privkey "$x/ca-key.pem" \
        --template "$x/$who.info" --outfile "$x/$who/$who-cert.pem"
    cp "$x/ca-cert.pem" "$x/$who/"
done
cp "$x/ca-cert.pem" "$x/nocert/"
chmod 600 "$x"/*/*-key.pem
ok "credentials made with psktool and certtool"

# ---- Startup checks ---------------------------------------------------------
out=$("$NBD" --backend "dir:$exports" --listen "0.0.0.0:$(free_port)" 2>&1)
[ $? -eq 1 ] || fail "started on 0.0.0.0 without credentials"
grep -q "no credentials were given" <<<"$out" || fail "message: $out"
chmod 644 "$tmp/psk/keys.psk"
out=$("$NBD" --backend "dir:$exports" --listen "127.0.0.1:$(free_port)" \
    --tls-psk "$tmp/psk/keys.psk" 2>&1)
[ $? -eq 1 ] || fail "started with a PSK file others can read"
grep -q "chmod 600" <<<"$out" || fail "message: $out"
chmod 600 "$tmp/psk/keys.psk"
ok "refused to start: non-loopback without credentials; PSK file mode 0644"

# ---- PSK --------------------------------------------------------------------
port=$(free_port)
"$NBD" --backend "dir:$exports" --listen "127.0.0.1:$port" --tls=require \
    --tls-psk "$tmp/psk/keys.psk" >"$tmp/nbd-psk.log" 2>&1 &
pids+=("$!")
wait_up "$port"

# --image-opts with a tls-creds-psk object, as QEMU and libvirt use it.
psk_obj() { echo "tls-creds-psk,id=tls0,endpoint=client,dir=$1,username=${2:-alice}"; }
psk_opts="driver=nbd,host=127.0.0.1,port=$port,export=disk.raw,tls-creds=tls0"
good_psk_client() {
    qemu-img info --object "$(psk_obj "$tmp/psk")" --image-opts "$psk_opts" \
        >"$tmp/info.out" 2>&1 || fail "$1: qemu-img info over TLS: $(cat "$tmp/info.out")"
    grep -q "67108864 bytes" "$tmp/info.out" || fail "$1: size: $(cat "$tmp/info.out")"
}
good_psk_client "first"
ok "qemu-img info --image-opts with tls-creds-psk"

qemu-io --object "$(psk_obj "$tmp/psk")" --image-opts "$psk_opts" \
    -c "write -P 0x5a 32M 256k" -c "read -P 0x5a 32M 256k" -c "flush" \
    >"$tmp/io.out" 2>&1 || fail "qemu-io: $(cat "$tmp/io.out")"
grep -q "Pattern verification failed" "$tmp/io.out" && fail "qemu-io pattern"
ok "qemu-io write and pattern-verified read over TLS"

# libnbd takes the PSK file in the URI and the identity from LOGNAME.
uri="nbds://127.0.0.1:$port/disk.raw?tls-psk-file=$tmp/psk/keys.psk"
info=$(LOGNAME=alice nbdinfo "$uri" 2>&1) || fail "nbdinfo: $info"
grep -q "with TLS" <<<"$info" || fail "nbdinfo: $info"
ok "nbdinfo over TLS"

head -c 8M /dev/urandom >"$tmp/in.bin"
LOGNAME=alice nbdcopy "$tmp/in.bin" "$uri" || fail "nbdcopy in"
LOGNAME=alice nbdcopy "$uri" "$tmp/out.bin" || fail "nbdcopy out"
want=$(sha256sum <"$tmp/in.bin" | cut -d' ' -f1)
got=$(head -c 8M "$tmp/out.bin" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "nbdcopy round trip: sha256 $got, want $want"
ok "nbdcopy in and out over TLS, sha256 equal"

# A plain client: refused with the server's sentence.
if qemu-img info "nbd://127.0.0.1:$port/disk.raw" >"$tmp/plain.out" 2>&1; then
    fail "a plain client was served"
fi
grep -q "requires TLS" "$tmp/plain.out" || fail "plain client message: $(cat "$tmp/plain.out")"
nbdinfo "nbd://127.0.0.1:$port/disk.raw" >/dev/null 2>&1 && fail "plain nbdinfo served"
good_psk_client "after a plain client"
ok "plain clients refused ($(grep -m1 -o 'TLS negotiation required[^.]*' "$tmp/plain.out")); others still served"

# A wrong key, an identity the file does not know: the handshake fails.
qemu-img info --object "$(psk_obj "$tmp/psk-wrong")" --image-opts "$psk_opts" \
    >"$tmp/wrong.out" 2>&1 && fail "a wrong PSK was served"
qemu-img info --object "$(psk_obj "$tmp/psk-mallory" mallory)" \
    --image-opts "$psk_opts" >/dev/null 2>&1 && fail "an unknown identity was served"
good_psk_client "after bad keys"
[ "$(grep -c 'TLS handshake failed' "$tmp/nbd-psk.log")" -ge 2 ] ||
    fail "server log: no handshake failures"
ok "wrong key and unknown identity refused ($(grep -m1 -o 'TLS handshake failed.*' "$tmp/wrong.out")); others still served"

grep -q "nbd connection: open: .*tls=psk tls_user=alice" "$tmp/nbd-psk.log" ||
    fail "server log lacks the TLS name"
ok "the server logs the PSK identity"
# AES-GCM, not the clients' first SHA-256 suite, ChaCha20 (vd_tls.c).
ciphers=$(grep -o "auth=psk ([^)]*)" "$tmp/nbd-psk.log" | sort | uniq -c)
grep -q "AES-128-GCM" <<<"$ciphers" && ! grep -q "CHACHA20" <<<"$ciphers" ||
    fail "PSK sessions' ciphers: $ciphers"
ok "PSK sessions run on AES-128-GCM"

# ---- X.509, client certificates verified ---------------------------------------
xport=$(free_port)
"$NBD" --backend "dir:$exports" --listen "127.0.0.1:$xport" \
    --tls-certificates "$x/server" --tls-verify-peer >"$tmp/nbd-x509.log" 2>&1 &
pids+=("$!")
wait_up "$xport"
x_obj() { echo "tls-creds-x509,id=tls0,endpoint=client,dir=$1"; }
x_opts="driver=nbd,host=localhost,port=$xport,export=disk.raw,tls-creds=tls0"

qemu-img info --object "$(x_obj "$x/client")" --image-opts "$x_opts" \
    >"$tmp/xinfo.out" 2>&1 || fail "qemu-img info x509: $(cat "$tmp/xinfo.out")"
grep -q "67108864 bytes" "$tmp/xinfo.out" || fail "x509 size: $(cat "$tmp/xinfo.out")"
qemu-io --object "$(x_obj "$x/client")" --image-opts "$x_opts" \
    -c "read -P 0x5a 32M 256k" >"$tmp/xio.out" 2>&1 || fail "qemu-io x509: $(cat "$tmp/xio.out")"
grep -q "Pattern verification failed" "$tmp/xio.out" && fail "qemu-io x509 pattern"
ok "qemu-img info and qemu-io with tls-creds-x509"

xuri="nbds://localhost:$xport/disk.raw?tls-certificates=$x/client"
info=$(nbdinfo "$xuri" 2>&1) || fail "nbdinfo x509: $info"
grep -q "with TLS" <<<"$info" || fail "nbdinfo x509: $info"
nbdcopy "$xuri" "$tmp/xout.bin" || fail "nbdcopy x509 out"
got=$(head -c 8M "$tmp/xout.bin" | sha256sum | cut -d' ' -f1)
[ "$want" = "$got" ] || fail "nbdcopy x509: sha256 $got, want $want"
ok "nbdinfo and nbdcopy with a client certificate"

qemu-img info --object "$(x_obj "$x/nocert")" --image-opts "$x_opts" \
    >/dev/null 2>&1 && fail "a client without a certificate was served"
qemu-img info --object "$(x_obj "$x/client")" --image-opts "$x_opts" \
    >/dev/null 2>&1 || fail "x509 client after a refusal"
grep -q "TLS handshake failed" "$tmp/nbd-x509.log" || fail "x509 log: no refusal"
grep -q "tls=x509 tls_user=.*CN=hv3" "$tmp/nbd-x509.log" ||
    fail "x509 log lacks the certificate's DN"
ok "a client without a certificate refused; the DN is logged; others still served"

for p in "${pids[@]}"; do kill -TERM "$p"; wait "$p" || fail "tessera-nbd exit status $?"; done
pids=()
ok "SIGTERM stops both servers cleanly"
