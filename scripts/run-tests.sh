#!/usr/bin/env bash
# `make test`: unit tests then integration tests, then one summary line.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Arguments: unit test binaries, then "--", then fuzz targets.
units=() fuzzers=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do units+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
fuzzers=("$@")
"$here"/scripts/run-unit.sh "${units[@]}" | tee -a "$out"
if [ ${#fuzzers[@]} -gt 0 ]; then
    "$here"/scripts/run-fuzz.sh "${FUZZ_SECONDS:-10}" "${fuzzers[@]}" | tee -a "$out"
fi
"$here"/scripts/run-integration.sh | tee -a "$out"
p=0 f=0 s=0
while read -r pp _ ff _ ss _; do
    p=$((p + pp)); f=$((f + ff)); s=$((s + ${ss:-0}))
done < <(grep -E '^(unit|fuzz|integration): ' "$out" | sed 's/^[a-z]*: //; s/,//g')
echo
echo "tests: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
