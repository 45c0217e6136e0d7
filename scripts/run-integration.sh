#!/usr/bin/env bash
# Run tests/integration/test-*.sh (or those named in $TESTS), each with a
# time limit, $TEST_JOBS at a time (default 3).  Exit 77 from a test means
# skipped (a tool is missing).  Tests whose file says "it-long" near the
# top get twice the time limit.  The longest tests start first, so that
# the short ones fill in beside them: longest by the time each took in the
# last run here ($BUILD/tests/integration/NAME.secs), and without one (a
# new build folder, a new test) the "it-long" ones first.  Tests that say
# "it-manual" there run only when $TESTS names them (`make test-deb`):
# they are not part of `make test`.  Each test's line gives its time; the
# end, their sum and the slowest.
#
# Each test runs its own cluster on free ports and its own temp folder, so
# tests do not share anything but the machine.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$here/build}
# The tests are written for a single metad unless they set META themselves
# (scripts/cluster.sh; test-meta-replicas.sh runs three).
export META=${META:-1}
limit=${TEST_TIMEOUT:-300}
jobs=${TEST_JOBS:-3}
tests=${TESTS:-}
if [ -z "$tests" ]; then
    for t in "$here"/tests/integration/test-*.sh; do
        head -n 5 "$t" | grep -q 'it-manual' || tests="$tests $t"
    done
fi
logdir=$BUILD/tests/integration
mkdir -p "$logdir"

# The tests call python3 hundreds of times.  Where python3 is a version
# manager's shim (pyenv's is a shell script that costs about half a second
# of CPU a call), they get the interpreter it runs, the same one, linked
# first on their PATH.
if py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) &&
    [ -x "$py" ]; then
    mkdir -p "$logdir/bin"
    ln -sfn "$py" "$logdir/bin/python3"
    export PATH=$logdir/bin:$PATH
fi

# Long tests (it-long) get twice the limit.  The order: by the last run's
# time, longest first; a test without one counts as longer than any when
# it says it-long, else as 0 s (sort -s keeps name order among equals).
long=() order=()
for t in $tests; do
    name=$(basename "$t" .sh)
    secs=$(cat "$logdir/$name.secs" 2>/dev/null)
    if head -n 5 "$t" | grep -q 'it-long'; then
        long+=("$t")
        secs=${secs:-999999}
    fi
    order+=("${secs:-0} $t")
done
mapfile -t ordered < <(printf '%s\n' "${order[@]}" | sort -s -k1,1nr | cut -d' ' -f2-)

# run_one TEST LIMIT: run it, print its line, leave its rc in NAME.rc.
# A test that fails is run once more (TEST_RETRY=0: never): passing then,
# it is reported FLAKY with its first log kept as NAME.first.log, so a
# race shows up without failing the run.
run_one() {
    local t=$1 name start rc secs
    name=$(basename "$t" .sh)
    start=$(date +%s)
    timeout -k 10 "$2" bash "$t" >"$logdir/$name.log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "${TEST_RETRY:-1}" = 1 ]; then
        mv "$logdir/$name.log" "$logdir/$name.first.log"
        timeout -k 10 "$2" bash "$t" >"$logdir/$name.log" 2>&1
        if [ $? -eq 0 ]; then
            rc=0
            echo "integ FLAKY $name: failed once, passed on a second run" \
                "(first log: $logdir/$name.first.log)"
            grep -m 3 '^FAIL' "$logdir/$name.first.log" | sed 's/^/    /'
        fi
    fi
    secs=$(( $(date +%s) - start ))
    echo "$secs" >"$logdir/$name.secs"
    case $rc in
    0) echo "integ PASS  $name (${secs}s)" ;;
    77) echo "integ SKIP  $name: $(tail -n 1 "$logdir/$name.log")" ;;
    *) echo "integ FAIL  $name (rc=$rc, ${secs}s, log: $logdir/$name.log)" ;;
    esac
    echo "$rc" >"$logdir/$name.rc"
}

# A long test gets twice the limit: on a loaded host they stretch most.
names=()
run_start=$(date +%s)
for t in "${ordered[@]}"; do
    names+=("$(basename "$t" .sh)")
    rm -f "$logdir/${names[-1]}.rc" "$logdir/${names[-1]}.first.log"
    lim=$limit
    for l in "${long[@]}"; do [ "$l" = "$t" ] && lim=$((2 * limit)); done
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_one "$t" "$lim" &
done
wait

pass=0 fail=0 skip=0
for name in "${names[@]}"; do
    rc=$(cat "$logdir/$name.rc" 2>/dev/null || echo 1)
    case $rc in
    0) pass=$((pass + 1)) ;;
    77) skip=$((skip + 1)) ;;
    *) fail=$((fail + 1))
       echo "---- $name failed (rc=$rc), last lines of $logdir/$name.log:"
       tail -n 30 "$logdir/$name.log" | sed 's/^/    /' ;;
    esac
done
flaky=()
for name in "${names[@]}"; do
    [ -f "$logdir/$name.first.log" ] && flaky+=("$name")
done
[ ${#flaky[@]} -eq 0 ] || echo "flaky (failed once, then passed): ${flaky[*]}"
sum=0 times=()
for name in "${names[@]}"; do
    secs=$(cat "$logdir/$name.secs" 2>/dev/null) || continue
    sum=$((sum + secs))
    times+=("$secs $name")
done
echo "integration times: sum ${sum}s over ${#times[@]} tests, wall" \
    "$(($(date +%s) - run_start))s at $jobs at a time; slowest:" \
    "$(printf '%s\n' "${times[@]}" | sort -k1,1nr | head -n 5 |
        awk '{ printf "%s%s %ss", (NR > 1 ? ", " : ""), $2, $1 }')"
echo "integration: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
