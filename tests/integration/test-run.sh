#!/usr/bin/env bash
# test-run.sh: `make run` (scripts/tessera-run) as a new user meets it.
#
# Starts tessera-run in a folder of its own and waits for its banner (the
# status page URL among the addresses); a second run in the same folder,
# on other ports, is refused with a message naming the folder, and leaves
# the first cluster's mount and processes alone; Ctrl-C stops everything.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera fusermount3 mountpoint flock
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }

# free_base: a base port with the 22 ports tessera-run uses free.
free_base() {
    local b p ok
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        b=$((20000 + RANDOM % 30000))
        ok=1
        for ((p = b; p <= b + 21; p++)); do
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { ok=0; break; }
        done
        [ "$ok" = 1 ] && { echo "$b"; return; }
    done
    return 1
}
base=$(free_base) || it_fail "no free port range"
run=$IT_TMP/run
# A background job starts with SIGINT ignored, which bash then cannot
# trap: give it back its default, as a terminal's foreground job has.
TESSERA_RUN_DIR=$run TESSERA_PORT=$base setsid python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$it_root/scripts/tessera-run" >"$IT_TMP/run1.log" 2>&1 &
runner=$!
# it_cleanup stops what the run started if the test ends early.
TS_DIR=$run
for ((i = 0; i < 300; i++)); do
    grep -q "Press Ctrl-C" "$IT_TMP/run1.log" && break
    kill -0 "$runner" 2>/dev/null || { cat "$IT_TMP/run1.log"; it_fail "tessera-run exited"; }
    sleep 0.1
done
grep -q "Press Ctrl-C" "$IT_TMP/run1.log" || it_fail "tessera-run did not start"
grep -q "Status page         http://127.0.0.1:$((base + 10))/" "$IT_TMP/run1.log" ||
    it_fail "no status page URL: $(cat "$IT_TMP/run1.log")"
it_ok "tessera-run starts and prints the status page URL"

# The README shows those URLs as the default ports give them.
python3 - "$IT_TMP/run1.log" "$it_root/README.md" "$base" <<'PY' || it_fail "README.md and make run disagree"
import re, sys
log, readme, base = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
urls = [re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:%d" % (int(m.group(1)) - base + 9420), l.rstrip())
        for l in log.splitlines() if "http://" in l]
missing = [u for u in urls if "    " + u not in readme.splitlines()]
if not urls or missing:
    print("make run prints, README.md lacks:", *missing, sep="\n  ")
    sys.exit(1)
PY
it_ok "README.md shows the URLs make run prints"

npids=$(wc -l <"$run/pids")
TESSERA_RUN_DIR=$run TESSERA_PORT=$((base + 100)) "$it_root/scripts/tessera-run" \
    >"$IT_TMP/run2.log" 2>&1
rc=$?
[ "$rc" = 1 ] || it_fail "second run in the same folder: exit $rc"
grep -q "$run is in use by another cluster" "$IT_TMP/run2.log" ||
    it_fail "second run: no clear message: $(cat "$IT_TMP/run2.log")"
mountpoint -q "$run/mnt" || it_fail "the second run unmounted the first one's mount"
[ "$(wc -l <"$run/pids")" = "$npids" ] || it_fail "the second run touched the pid list"
it_ok "a second run in the same folder is refused and leaves the first alone"

kill -INT -- "-$runner"
for ((i = 0; i < 300; i++)); do kill -0 "$runner" 2>/dev/null || break; sleep 0.1; done
kill -0 "$runner" 2>/dev/null && it_fail "tessera-run did not stop on Ctrl-C"
while read -r name pid; do
    ts_running "$pid" && it_fail "$name still runs after Ctrl-C"
done <"$run/pids"
mountpoint -q "$run/mnt" && it_fail "the mount is still there after Ctrl-C"
it_ok "Ctrl-C stops every process and unmounts"
