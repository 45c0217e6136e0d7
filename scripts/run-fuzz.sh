#!/usr/bin/env bash
# Run libFuzzer targets: run-fuzz.sh SECONDS BIN...
#
# Each target runs for SECONDS (-max_total_time) on its own corpus,
# $(dirname BIN)/corpus-NAME, which is kept between runs so coverage
# accumulates.  A crash leaves its input as $(dirname BIN)/crash-NAME-*
# and the full output in $(dirname BIN)/NAME.log.  tests/fuzz/NAME.dict,
# when present, is passed as the target's dictionary.  Targets run
# $FUZZ_JOBS at a time (default: the number of cores).  Prints one line per
# target, in the order given; exits nonzero when any target crashed or
# failed to run.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS FUZZ_BINARY..." >&2
    exit 2
fi
secs=$1
shift
case $secs in
'' | *[!0-9]*)
    echo "run-fuzz: SECONDS must be a number, got '$secs'" >&2
    exit 2
    ;;
esac

dictdir=$(cd "$(dirname "$0")/.." && pwd)/tests/fuzz
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

# fuzz_one BIN: run one target; its line goes to $(dirname BIN)/NAME.result,
# "PASS" or "FAIL" first.
fuzz_one() {
    local bin=$1 name dir corpus log dict rc runs cov files
    name=$(basename "$bin")
    dir=$(dirname "$bin")
    corpus=$dir/corpus-$name
    log=$dir/$name.log
    mkdir -p "$corpus"
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz  FAIL  $name (no binary at $bin)" >"$dir/$name.result"
        return
    fi
    dict=()
    [ -f "$dictdir/$name.dict" ] && dict=(-dict="$dictdir/$name.dict")
    "$bin" -max_total_time="$secs" -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$dir/crash-$name-" "$corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    files=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        echo "PASS fuzz  PASS  $name (${secs}s, ${runs:-?} runs, cov ${cov:-?}, corpus $files)" \
            >"$dir/$name.result"
    else
        { echo "FAIL fuzz  FAIL  $name (rc=$rc, log: $log)"
          grep -E '^==[0-9]+==ERROR|runtime error|SUMMARY|Test unit written' \
              "$log" | head -10; } >"$dir/$name.result"
    fi
}

for bin in "$@"; do
    rm -f "$(dirname "$bin")/$(basename "$bin").result"
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    fuzz_one "$bin" &
done
wait

failed=0
npass=0 nfail=0
for bin in "$@"; do
    result=$(dirname "$bin")/$(basename "$bin").result
    if [ "$(head -c 4 "$result" 2>/dev/null)" = PASS ]; then
        npass=$((npass + 1))
    else
        failed=1 nfail=$((nfail + 1))
        [ -f "$result" ] || echo "FAIL fuzz  FAIL  $(basename "$bin") (no result)" >"$result"
    fi
    sed '1s/^[A-Z]* //' "$result"
done
echo "fuzz: $npass passed, $nfail failed"
exit $failed
