#!/usr/bin/env bash
# coverage.sh [FILE.c...]: line coverage of the unit tests.  Builds the
# unit-test binaries with --coverage into a build folder of their own
# (COV_BUILD, default build-cov; the normal build is not touched), runs
# them, and prints the lines run out of the lines of each FILE and the
# share of its branches taken at least once (default: the files the
# fault-injection tests aim at).  COV_NO_BUILD=1 reports on the last run
# without building or running.  Needs gcov.
set -eu
cd "$(dirname "$0")/.."
build=${COV_BUILD:-build-cov}
[ $# -gt 0 ] || set -- metadata/meta_srv_write.c metadata/meta_srv_repair.c \
    metadata/meta_srv_lease.c metadata/meta_srv_callback.c \
    client/cl_chunk.c client/cl_file.c vmdisk/vd_tessera.c vmdisk/vd_lease.c \
    server/chunk_write.c server/chunk_store.c server/chunk_replicate.c
command -v gcov >/dev/null || { echo "coverage: gcov is missing" >&2; exit 77; }
dirs=$(for f in "$@"; do dirname "$f"; done | sort -u)
bins=$(for d in $dirs; do echo "$build/tests/test_$d"; done)
if [ -z "${COV_NO_BUILD:-}" ]; then
    # shellcheck disable=SC2086 # one word per binary
    make -s -j"${JOBS:-2}" BUILD="$build" CFLAGS=--coverage $bins
    find "$build/san" -name '*.gcda' -delete
    # shellcheck disable=SC2086
    scripts/run-unit.sh $bins
fi
printf '%-32s %7s %7s %7s %9s %7s\n' file lines run percent branches taken
for f in "$@"; do
    out=$(gcov -b -n -o "$build/san/$(dirname "$f")" "$f" 2>/dev/null |
        awk -v f="$f" '$0 ~ "^File .*" f "'"'"'$" { hit = 1; next }
                      hit && /^Lines executed:/ { l = $0 }
                      hit && /^Taken at least once:/ { print l "|" $0; exit }
                      hit && /^No branches/ { print l "|"; exit }')
    [ -n "$out" ] || { printf '%-32s %7s\n' "$f" "-"; continue; }
    lines=${out%%|*} br=${out#*|}
    pct=${lines#Lines executed:}
    pct=${pct%%%*}
    total=${lines##* of }
    bpct=- btotal=0
    if [ -n "$br" ]; then
        bpct=${br#Taken at least once:}
        bpct=${bpct%%%*}%
        btotal=${br##* of }
    fi
    printf '%-32s %7s %7.0f %6s%% %9s %7s\n' "$f" "$total" \
        "$(echo "$pct * $total / 100" | bc -l)" "$pct" "$btotal" "$bpct"
done
