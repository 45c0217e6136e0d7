#!/usr/bin/env bash
# Run tests/integration/test-*.sh (or those named in $TESTS), each with a
# time limit.  Exit 77 from a test means skipped (a tool is missing).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$here/build}
limit=${TEST_TIMEOUT:-300}
pass=0 fail=0 skip=0
tests=${TESTS:-$(ls "$here"/tests/integration/test-*.sh 2>/dev/null)}
logdir=$BUILD/tests/integration
mkdir -p "$logdir"
for t in $tests; do
    name=$(basename "$t" .sh)
    start=$(date +%s)
    timeout -k 10 "$limit" bash "$t" >"$logdir/$name.log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    case $rc in
    0) echo "integ PASS  $name (${secs}s)"; pass=$((pass + 1)) ;;
    77) echo "integ SKIP  $name: $(tail -n 1 "$logdir/$name.log")"; skip=$((skip + 1)) ;;
    *) echo "integ FAIL  $name (rc=$rc, ${secs}s, log: $logdir/$name.log)"
       tail -n 30 "$logdir/$name.log" | sed 's/^/    /'
       fail=$((fail + 1)) ;;
    esac
done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
