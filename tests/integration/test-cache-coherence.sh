#!/usr/bin/env bash
# test-cache-coherence.sh: two mounts A and B of one cluster stay coherent
# (docs/caching.md): a file written and closed on A reads whole on B; a
# create, rename and unlink on A shows on B at once (polled for at most 1 s,
# the delay is reported); a write on A drops B's cached pages; a dirty
# writeback file on A (no close, no fsync) opened on B is recalled first,
# and shows the mtime A showed;
# tessera status counts the breaks; and with consistency=validate a reader
# sees a closed file's new bytes at its next open (close-to-open).
. "$(dirname "$0")/lib.sh"
it_need python3 cmp
. "$(dirname "$0")/lib-data.sh"
A=$TS_MNT
B=$IT_TMP/mnt-b
ts_start_mount "$B" || it_fail "second mount did not start"

# poll WHAT CMD...: run CMD until it succeeds, for at most 1 s; report the
# delay.
poll() {
    local what=$1 t0 t1 i
    shift
    t0=$(date +%s%N)
    for ((i = 0; i < 100; i++)); do
        if "$@"; then
            t1=$(date +%s%N)
            it_ok "$what (seen after $(((t1 - t0) / 1000000)) ms)"
            return 0
        fi
        sleep 0.01
    done
    it_fail "$what: not seen within 1 s"
}

# 1. Written and closed on A, read whole on B.
head -c 3000000 /dev/urandom >"$IT_TMP/data1"
cp "$IT_TMP/data1" "$A/f1"
cmp -s "$IT_TMP/data1" "$B/f1" || it_fail "f1 differs on B"
it_ok "file written and closed on A reads whole on B"

# 2. Namespace changes show on B at once (B has the directory cached).
mkdir "$A/d"
ls "$B/d" >/dev/null
stat "$B/d" >/dev/null
echo hello >"$A/d/new"
poll "create on A visible on B" test -e "$B/d/new"
mv "$A/d/new" "$A/d/renamed"
poll "rename on A visible on B" sh -c "test -e '$B/d/renamed' && ! test -e '$B/d/new'"
rm "$A/d/renamed"
poll "unlink on A visible on B" sh -c "! test -e '$B/d/renamed'"
[ -z "$(ls "$B/d")" ] || it_fail "B still lists entries in d: $(ls "$B/d")"
it_ok "listing on B is empty after the unlink"

# 3. A write on A invalidates B's cached pages.
head -c 1048576 /dev/urandom >"$IT_TMP/data3"
cp "$IT_TMP/data3" "$A/f3"
cmp -s "$IT_TMP/data3" "$B/f3" || it_fail "f3 differs on B (first read)"
python3 - "$A/f3" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"NEWBYTES" * 512, 4096)
os.close(fd)
PY
python3 - "$IT_TMP/data3" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, b"NEWBYTES" * 512, 4096)
os.close(fd)
PY
# B reads through an fd it held open since before the write too.
cmp -s "$IT_TMP/data3" "$B/f3" || it_fail "B did not re-read the new bytes"
it_ok "a write on A drops B's cached pages; B reads the new bytes"
# Size and mtime changes show in B's cached attributes.
head -c 5000 /dev/urandom >>"$A/f3"
poll "size change on A visible in B's stat" \
    sh -c "[ \$(stat -c %s '$B/f3') = $((1048576 + 5000)) ]"

# 4. Recall: a dirty writeback file on A (written, open, no fsync) opened on
# B shows the data, and the mtime A showed (the write's, not the time of
# the recall's WRITE_END, 0.3 s later).
python3 - "$A/f4" "$IT_TMP/go" "$IT_TMP/ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"dirty-data-from-A\n" * 1000)
mtime = os.fstat(fd).st_mtime_ns
time.sleep(0.3)
with open(sys.argv[3] + ".tmp", "w") as f:
    f.write("%d\n" % mtime)
os.rename(sys.argv[3] + ".tmp", sys.argv[3])
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
os.close(fd)
PY
writer=$!
for _ in $(seq 100); do [ -e "$IT_TMP/ready" ] && break; sleep 0.05; done
[ -e "$IT_TMP/ready" ] || it_fail "writer did not start"
want=$((18 * 1000))
got=$(wc -c <"$B/f4")
touch "$IT_TMP/go"
wait "$writer"
it_expect_eq "B sees A's delayed writes (recalled before open)" "$got" "$want"
it_expect_eq "B sees the mtime A showed for its delayed writes" \
    "$(python3 -c 'import os, sys; print(os.stat(sys.argv[1]).st_mtime_ns)' "$B/f4")" \
    "$(cat "$IT_TMP/ready")"
recalls=$("$TS_BIN/tessera" --meta "$TS_META_ADDR" --json status |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("cache.recalls", 0))')
[ "${recalls:-0}" -ge 1 ] || it_fail "no recall counted in status"
it_ok "status counts $recalls recall(s)"
"$TS_BIN/tessera" --meta "$TS_META_ADDR" status | grep -q "breaks" ||
    it_fail "status does not show cache breaks"
it_ok "status shows per-session cache lines"

# 5. consistency=validate: close-to-open.
C=$IT_TMP/mnt-c
ts_start_mount "$C" -o consistency=validate || it_fail "validate mount did not start"
printf 'version-1\n' >"$A/f5"
[ "$(cat "$C/f5")" = "version-1" ] || it_fail "C did not read version 1"
printf 'version-2\n' >"$A/f5"
[ "$(cat "$C/f5")" = "version-2" ] || it_fail "C did not read version 2 at its next open"
it_ok "validate mode: next open after A's close sees the new data"
exit 0
