#!/usr/bin/env bash
# test-config.sh: --config FILE on every daemon (docs/operations.md,
# "Config files").
#
# A whole cluster started from config files: metad (data, listen and
# metrics address from its file), a chunkd whose file's listen address the
# command line overrides, a mount whose file makes it private and
# write-through, a tessera-nbd whose file makes it read-only; each
# behaves as the same flags would make it.  Then a bad line in each
# program's file is refused with the file's name and the line number.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, curl,
# nbdinfo, qemu-io; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera curl \
    nbdinfo qemu-io fusermount3 mountpoint
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

C=$IT_TMP/conf
mkdir -p "$C" "$TS_DIR/meta" "$TS_DIR/chunk1"
http=127.0.0.1:$(ts_free_port)

# ---- metad: everything from the file ------------------------------------------
cat >"$C/metad.cfg" <<CFG
# tessera-metad
data = $TS_DIR/meta
LISTEN = $TS_META_ADDR
http = "$http"
repair_mbps = 20
CFG
setsid "$TS_BIN/tessera-metad" --config "$C/metad.cfg" >>"$TS_DIR/logs/metad.log" 2>&1 &
ts_record metad $!
ts_wait_port "$TS_META_ADDR" 10 $! || it_fail "metad did not start from its config"
curl -sf "http://$http/metrics" | grep -q '^tessera_' ||
    it_fail "metad's metrics address from the file does not answer"
it_ok "metad: data, listen and http from its file"

# ---- chunkd: the command line overrides the file -----------------------------
addr=127.0.0.1:$(ts_free_port)
cat >"$C/chunkd.cfg" <<CFG
data = $TS_DIR/chunk1
listen = 127.0.0.1:1
meta = $TS_META_ADDR
scrub-mbps = 0
CFG
setsid "$TS_BIN/tessera-chunkd" --config "$C/chunkd.cfg" --listen "$addr" \
    >>"$TS_DIR/logs/chunkd1.log" 2>&1 &
ts_record chunkd1 $!
ts_wait_port "$addr" 10 $! || it_fail "chunkd did not listen on the command line's address"
ts_wait_servers 1 15 || it_fail "chunkd from its config did not register"
got=$(it_json "[s['addr'] for s in j['server_list']]" status)
[[ $got == *"$addr"* ]] || it_fail "metad knows the chunkd as $got, not $addr"
it_ok "chunkd: the command line's --listen overrides the file's"

# ---- mount: private and write-through from the file --------------------------
"$TS_BIN/tessera" setgoal 1 / >/dev/null || it_fail "setgoal"
cat >"$C/mount.cfg" <<CFG
meta = $TS_META_ADDR
private = yes
cache = writethrough
foreground = yes
CFG
mkdir -p "$TS_MNT"
setsid "$TS_BIN/tessera-mount" --config "$C/mount.cfg" "$TS_MNT" \
    >>"$TS_DIR/logs/mount.log" 2>&1 &
ts_record mount $!
echo "$TS_MNT" >>"$TS_DIR/mounts"
for ((i = 0; i < 100; i++)); do mountpoint -q "$TS_MNT" && break; sleep 0.1; done
mountpoint -q "$TS_MNT" || it_fail "mount from its config did not come up"
opts=$(awk -v m="$TS_MNT" '$2 == m { print $4 }' /proc/mounts)
[[ $opts != *allow_other* ]] || it_fail "private = yes still mounted allow_other ($opts)"
echo hello >"$TS_MNT/f" && [ "$(cat "$TS_MNT/f")" = hello ] || it_fail "mount data"
grep -q "mount: ready:.* cache=writethrough" "$TS_DIR/logs/mount.log" ||
    it_fail "the mount log does not show the write-through policy"
it_ok "mount: private and write-through from its file"

# ---- tessera-nbd: read-only from the file ------------------------------------
truncate -s 16M "$TS_MNT/disk.img"
cat >"$C/nbd.cfg" <<CFG
meta = $TS_META_ADDR
listen = $TS_NBD_ADDR
readonly = yes
cache = none
CFG
setsid "$TS_BIN/tessera-nbd" --config "$C/nbd.cfg" >>"$TS_DIR/logs/nbd.log" 2>&1 &
ts_record nbd $!
ts_wait_port "$TS_NBD_ADDR" 10 $! || it_fail "tessera-nbd did not start from its config"
nbdinfo "nbd://$TS_NBD_ADDR/disk.img" | grep -q "is_read_only: true" ||
    it_fail "readonly = yes did not make the export read-only"
if qemu-io -f raw -c "write 0 4k" "nbd://$TS_NBD_ADDR/disk.img" >/dev/null 2>&1; then
    it_fail "a write to the read-only export succeeded"
fi
it_ok "tessera-nbd: read-only from its file"

# ---- bad files: refused with the line ----------------------------------------
printf '# comment\nhttp = 127.0.0.1:9\nbogus-key = 1\n' >"$C/bad.cfg"
for prog in tessera-metad tessera-chunkd tessera-nbd tessera-mount; do
    if out=$("$TS_BIN/$prog" --config "$C/bad.cfg" "$IT_TMP/nomnt" 2>&1); then
        it_fail "$prog accepted an unknown key"
    fi
    [[ $out == *"bad.cfg:3: unknown key 'bogus-key'"* ]] ||
        it_fail "$prog: the refusal does not name the line: $out"
done
printf 'listen\n' >"$C/bad2.cfg"
out=$("$TS_BIN/tessera-metad" --config "$C/bad2.cfg" 2>&1) && it_fail "metad accepted 'listen'"
[[ $out == *"bad2.cfg:1: expected KEY = VALUE"* ]] || it_fail "metad: $out"
out=$("$TS_BIN/tessera-chunkd" --config "$C/none.cfg" 2>&1) && it_fail "chunkd ran without its file"
[[ $out == *"none.cfg: No such file"* ]] || it_fail "chunkd: $out"
it_ok "unknown keys, malformed lines and missing files are refused with the file and line"
