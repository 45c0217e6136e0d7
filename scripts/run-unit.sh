#!/usr/bin/env bash
# Run each cmocka binary given; print one line per binary and a summary.
# Exit status: 0 when every binary passed.
set -u
pass=0 fail=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The binaries run $TEST_JOBS at a time (default 2); results print in order.
jobs=${TEST_JOBS:-2}
for b in "$@"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    ( "$b" >"$(dirname "$b")/$(basename "$b").log" 2>&1
      echo $? >"$(dirname "$b")/$(basename "$b").rc" ) &
done
wait
for b in "$@"; do
    name=$(basename "$b")
    log=$(dirname "$b")/$name.log
    rc=$(cat "$(dirname "$b")/$name.rc" 2>/dev/null || echo 1)
    ok=$(grep -c '^\[       OK \]' "$log")
    bad=$(grep -cE '^\[  (FAILED  |ERROR   )\] test_' "$log")
    if [ "$rc" -eq 0 ] && [ "$bad" -eq 0 ]; then
        echo "unit  PASS  $name ($ok tests)"
    else
        [ "$bad" -eq 0 ] && bad=1   # a crash fails the binary as one test
        echo "unit  FAIL  $name (rc=$rc, log: $log)"
        grep -E '^\[  (FAILED|ERROR) |ERROR:|runtime error|Sanitizer|Assert' "$log" | head -20
    fi
    pass=$((pass + ok)) fail=$((fail + bad))
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
