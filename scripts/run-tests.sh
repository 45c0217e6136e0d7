#!/usr/bin/env bash
# `make test`: unit tests then integration tests, then one summary line.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here"/scripts/run-unit.sh "$@" | tee -a "$out"
"$here"/scripts/run-integration.sh | tee -a "$out"
p=0 f=0 s=0
while read -r pp _ ff _ ss _; do
    p=$((p + pp)); f=$((f + ff)); s=$((s + ${ss:-0}))
done < <(grep -E '^(unit|integration): ' "$out" | sed 's/^[a-z]*: //; s/,//g')
echo
echo "tests: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
