#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# Open-unlinked files (docs/protocol.md §6.22) through real mounts: a file
# unlinked or renamed over while open stays readable and writable through
# its descriptor, on the mount that unlinked it and on another one, and is
# reclaimed at the last close, or when the client holding it dies (its
# session expires).
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera python3

ts_start_metad || it_fail "metad did not start"
for i in 1 2; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 2 15 || it_fail "servers did not register"
A=$IT_TMP/a
B=$IT_TMP/b
ts_start_mount "$A" || it_fail "mount A did not start"
ts_start_mount "$B" || it_fail "mount B did not start"
"$TS_BIN/tessera" setgoal 2 / >/dev/null || it_fail "setgoal"

orphans() { it_json "j.get('orphans', 'missing')" status; }

# wait_orphans N SECONDS: until metad counts N open-unlinked files.
wait_orphans() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [ "$(orphans)" = "$1" ] && return 0
        sleep 0.1
    done
    it_fail "orphans: got '$(orphans)', want '$1' after $2 s"
}

# 1. The case of the issue, on one mount, with write-back caching: the
# delayed write survives the unlink and the file is gone after close.
cd "$A" || it_fail "cd"
out=$(python3 -c 'import os
fd = os.open("u", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"Hello")
os.unlink("u")
print(os.pread(fd, 5, 0), os.fstat(fd).st_nlink, os.fstat(fd).st_size)
os.pwrite(fd, b"x" * 70000000, 5)   # into a second chunk
os.fsync(fd)
print(os.pread(fd, 6, 0), os.pread(fd, 1, 70000004), os.fstat(fd).st_size)
os.close(fd)') || it_fail "python"
cd / || exit 1
it_expect_eq "read after unlink" "$(echo "$out" | head -1)" "b'Hello' 0 5"
it_expect_eq "write after unlink" "$(echo "$out" | tail -1)" \
    "b'Hellox' b'x' 70000005"
[ -e "$A/u" ] && it_fail "u still listed"
wait_orphans 0 10
it_ok "unlinked file reclaimed at close"
for ((i = 0; i < 100; i++)); do
    [ "$(it_json "j['chunks']" status)" = 0 ] && break
    sleep 0.1
done
it_expect_eq "its chunks dropped" "$(it_json "j['chunks']" status)" 0

# 2. Rename over an open file: the old file stays readable through its
# descriptor until closed.
printf old >"$A/dst"
printf new >"$A/src"
out=$(python3 -c 'import os, sys
fd = os.open(sys.argv[1] + "/dst", os.O_RDONLY)
os.rename(sys.argv[1] + "/src", sys.argv[1] + "/dst")
print(os.pread(fd, 3, 0), open(sys.argv[1] + "/dst").read())
os.close(fd)' "$A") || it_fail "python rename"
it_expect_eq "rename over an open file" "$out" "b'old' new"
wait_orphans 0 10
rm -f "$A/dst"

# 3. Opened on A, unlinked on B: A goes on reading and writing; A dies and
# the orphan goes with its session.
printf Hello >"$B/shared"
python3 - "$A/shared" "$IT_TMP" <<'EOF' >"$IT_TMP/holder.out" 2>&1 &
import os, sys, time
path, tmp = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR)
os.pwrite(fd, b"fromA", 100)
os.fsync(fd)
open(tmp + "/opened", "w").close()
while not os.path.exists(tmp + "/unlinked"):
    time.sleep(0.05)
ok = os.pread(fd, 5, 0) == b"Hello" and os.pread(fd, 5, 100) == b"fromA"
os.pwrite(fd, b"after", 200)
os.fsync(fd)
ok = ok and os.pread(fd, 5, 200) == b"after" and os.fstat(fd).st_nlink == 0
print("ok" if ok else "bad", flush=True)
time.sleep(600)
EOF
holder=$!
for ((i = 0; i < 100; i++)); do [ -e "$IT_TMP/opened" ] && break; sleep 0.1; done
[ -e "$IT_TMP/opened" ] || it_fail "holder did not open the file"
rm "$B/shared" || it_fail "unlink on B"
touch "$IT_TMP/unlinked"
for ((i = 0; i < 100; i++)); do [ -s "$IT_TMP/holder.out" ] && break; sleep 0.1; done
it_expect_eq "A reads and writes after B unlinked" "$(cat "$IT_TMP/holder.out")" ok
it_expect_eq "one orphan while A holds it" "$(orphans)" 1
kill -9 "$(ts_pid mount-a)" || it_fail "kill mount A"
kill -9 "$holder" 2>/dev/null
# The mount asked for a 30 s session lease; metad expires it after that.
wait_orphans 0 60
it_ok "orphan reclaimed when its holder's session expired"
