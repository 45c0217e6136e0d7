#!/usr/bin/env bash
# test-metrics.sh: every daemon's Prometheus endpoint (--http), as the
# cluster launcher turns it on.
#
# Starts metad, three chunkd, a mount and tessera-nbd (lib-data.sh), then:
# each /metrics answers 200 with the text format's content type and passes
# `promtool check metrics`; an unknown path is 404; writes through the
# mount and through NBD move the counters they should (requests by
# message and NBD command, bytes, latency histograms, the commit stage);
# a failed lookup is counted by its error;
# metad shows three servers up, and one down after a chunkd is stopped; a
# SIGUSR1 dump leaves the histograms' counts as they were.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, curl,
# promtool (Debian's prometheus), qemu-io; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-nbd curl promtool qemu-io qemu-img fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
. "$(dirname "$0")/lib-data.sh"
ts_start_nbd || it_fail "tessera-nbd did not start"

# scrape NAME: the metrics of NAME into $IT_TMP/NAME.prom (headers too).
scrape() {
    local addr
    addr=$(ts_http_addr "$1")
    [ -n "$addr" ] || it_fail "$1 has no metrics address"
    curl -sf -D "$IT_TMP/$1.hdr" -o "$IT_TMP/$1.prom" "http://$addr/metrics" ||
        it_fail "scrape of $1 at $addr failed"
}

# value NAME SERIES: the value of SERIES (as written, labels included) in
# NAME's last scrape, 0 when absent.
value() {
    awk -v s="$2" '$1 == s { v = $2 } END { print v + 0 }' "$IT_TMP/$1.prom"
}

# chunkd_sum SERIES: SERIES summed over the three chunkd's last scrapes.
chunkd_sum() {
    local i t=0
    for i in 1 2 3; do t=$((t + $(value "chunkd$i" "$1"))); done
    echo "$t"
}

scrape_all() { local n; for n in metad chunkd1 chunkd2 chunkd3 mount nbd; do scrape "$n"; done; }

# ---- Every endpoint answers and passes promtool -----------------------------
scrape_all
for n in metad chunkd1 chunkd2 chunkd3 mount nbd; do
    grep -qi '^Content-Type: text/plain; version=0.0.4' "$IT_TMP/$n.hdr" ||
        it_fail "$n: wrong content type: $(grep -i content-type "$IT_TMP/$n.hdr")"
    out=$(promtool check metrics <"$IT_TMP/$n.prom" 2>&1) ||
        it_fail "$n: promtool check metrics: $out"
    grep -q '^process_cpu_seconds_total ' "$IT_TMP/$n.prom" ||
        it_fail "$n: no process_cpu_seconds_total"
done
it_ok "promtool accepts the metrics of metad, three chunkd, the mount and tessera-nbd"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$(ts_http_addr metad)/nope")
it_expect_eq "unknown path" "$code" 404

it_expect_eq "metad: servers up" \
    "$(value metad 'tessera_metad_servers{state="up"}')" 3
[ "$(value metad tessera_metad_sessions)" -ge 2 ] ||
    it_fail "metad: fewer than 2 sessions (mount, nbd)"
it_ok "metad: sessions of the mount and tessera-nbd"

# ---- Writes move the counters -----------------------------------------------
w0=$(chunkd_sum 'tessera_requests_total{op="CHUNK_WRITE"}')
h0=$(chunkd_sum 'tessera_stage_duration_seconds_count{stage="chunk.write"}')
b0=$(value metad 'tessera_requests_total{op="CHUNK_WRITE_BEGIN"}')
c0=$(value metad 'tessera_stage_duration_seconds_count{stage="meta.db.commit"}')
m0=$(value mount 'tessera_client_requests_total{op="CHUNK_WRITE"}')

dd if=/dev/urandom of="$TS_MNT/f" bs=64k count=16 conv=fsync status=none ||
    it_fail "write through the mount"
qemu-img create -q -f raw "$TS_MNT/disk.img" 64M || it_fail "qemu-img create"
n0=$(value nbd 'tessera_nbd_requests_total{command="write"}')
nb0=$(value nbd 'tessera_nbd_bytes_total{command="write"}')
qemu-io -f raw -c "write -P 0x5a 0 1M" -c "flush" \
    -c "read -P 0x5a 0 4k" -c "read -P 0x5a 0 4k" \
    "nbd://$TS_NBD_ADDR/disk.img" >"$IT_TMP/qio.out" 2>&1 ||
    { cat "$IT_TMP/qio.out"; it_fail "qemu-io write over NBD"; }

scrape_all
w1=$(chunkd_sum 'tessera_requests_total{op="CHUNK_WRITE"}')
h1=$(chunkd_sum 'tessera_stage_duration_seconds_count{stage="chunk.write"}')
[ "$w1" -gt "$w0" ] || it_fail "chunkd CHUNK_WRITE requests did not rise: $w0 -> $w1"
[ "$h1" -gt "$h0" ] || it_fail "chunkd chunk.write histogram did not rise: $h0 -> $h1"
wb=$(chunkd_sum 'tessera_request_bytes_total{op="CHUNK_WRITE"}')
[ "$wb" -ge $((2 << 20)) ] ||
    it_fail "chunkd CHUNK_WRITE request bytes: $wb, want at least the 2 MiB written"
it_ok "chunkd: CHUNK_WRITE requests $w0 -> $w1, histogram $h0 -> $h1, $wb request bytes"

b1=$(value metad 'tessera_requests_total{op="CHUNK_WRITE_BEGIN"}')
c1=$(value metad 'tessera_stage_duration_seconds_count{stage="meta.db.commit"}')
[ "$b1" -gt "$b0" ] || it_fail "metad CHUNK_WRITE_BEGIN did not rise: $b0 -> $b1"
[ "$c1" -gt "$c0" ] || it_fail "metad commit histogram did not rise: $c0 -> $c1"
it_ok "metad: CHUNK_WRITE_BEGIN $b0 -> $b1, commits $c0 -> $c1"

m1=$(value mount 'tessera_client_requests_total{op="CHUNK_WRITE"}')
[ "$m1" -gt "$m0" ] || it_fail "mount CHUNK_WRITE calls did not rise: $m0 -> $m1"
it_ok "mount: CHUNK_WRITE calls $m0 -> $m1"

n1=$(value nbd 'tessera_nbd_requests_total{command="write"}')
nb1=$(value nbd 'tessera_nbd_bytes_total{command="write"}')
[ "$n1" -gt "$n0" ] || it_fail "nbd write requests did not rise: $n0 -> $n1"
it_expect_eq "nbd: bytes written" "$((nb1 - nb0))" $((1 << 20))
[ "$(value nbd 'tessera_nbd_requests_total{command="flush"}')" -ge 1 ] ||
    it_fail "nbd: no flush counted"
[ "$(value nbd 'tessera_nbd_requests_total{command="read"}')" -ge 2 ] ||
    it_fail "nbd: fewer than 2 reads counted"
[ "$(value nbd tessera_nbd_cache_hits_total)" -ge 1 ] ||
    it_fail "nbd: a repeated read was no block cache hit"
it_ok "nbd: flush, reads and a block cache hit counted"

# ---- Errors are counted by kind -----------------------------------------------
e0=$(value metad 'tessera_request_errors_total{op="LOOKUP",error="ENOENT"}')
stat "$TS_MNT/no-such-file-$RANDOM" >/dev/null 2>&1 && it_fail "a missing file exists"
scrape metad
scrape mount
e1=$(value metad 'tessera_request_errors_total{op="LOOKUP",error="ENOENT"}')
[ "$e1" -gt "$e0" ] || it_fail "metad LOOKUP ENOENT errors did not rise: $e0 -> $e1"
[ "$(value mount 'tessera_client_request_errors_total{op="LOOKUP",error="ENOENT"}')" -ge 1 ] ||
    it_fail "mount: no LOOKUP ENOENT counted"
it_ok "a failed lookup counts as LOOKUP ENOENT at metad ($e0 -> $e1) and the mount"

# ---- SIGUSR1 dumps do not reset what Prometheus reads -------------------------
kill -USR1 "$(ts_pid chunkd1)"
sleep 0.3
grep -q 'chunkd: stats (since the last dump) follow' "$TS_DIR/logs/chunkd1.log" ||
    it_fail "chunkd1 did not dump its stages on SIGUSR1"
before=$(value chunkd1 'tessera_stage_duration_seconds_count{stage="chunk.write"}')
scrape chunkd1
after=$(value chunkd1 'tessera_stage_duration_seconds_count{stage="chunk.write"}')
[ "$after" -ge "$before" ] && [ "$after" -gt 0 ] ||
    it_fail "chunkd1 histogram count after SIGUSR1: $before -> $after"
it_ok "SIGUSR1 leaves the histograms counting ($before -> $after)"

# ---- A server going down shows ------------------------------------------------
ts_kill chunkd3
for ((i = 0; i < 100; i++)); do
    scrape metad
    [ "$(value metad 'tessera_metad_servers{state="down"}')" = 1 ] && break
    sleep 0.1
done
it_expect_eq "metad: servers down after a chunkd stopped" \
    "$(value metad 'tessera_metad_servers{state="down"}')" 1
it_expect_eq "metad: servers up after a chunkd stopped" \
    "$(value metad 'tessera_metad_servers{state="up"}')" 2
