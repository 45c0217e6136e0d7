#!/usr/bin/env bash
# bench-meta-requests.sh WORK [N]: metad round trips per create and per
# unlink through the mount (docs/performance.md, "Metadata path").
#
# Starts a cluster in WORK with scripts/cluster.sh (three metad replicas
# unless $META says otherwise, three chunkd, a mount; goal 3), then runs
# scripts/bench-meta.py's create and unlink phases on N files (2000) one
# after the other.  For each phase it prints the rate, then the requests
# per file by message, from the mount's tessera_client_requests_total and
# from metad's tessera_requests_total summed over the replicas, before and
# after.  The binaries are $TS_BIN's ($BUILD/bin), so two builds can be
# compared on one host.  PHASES="dbench" runs Debian's dbench (4 clients)
# for N seconds (default 15) instead, and prints requests per second.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"
work=$1
phases=${PHASES:-create unlink}
case $phases in *dbench*) n=${2:-15} ;; *) n=${2:-2000} ;; esac

ts_cluster_init "$work" 0
trap ts_stop_all EXIT
ts_start_all 3 || { echo "bench: cluster did not start" >&2; exit 1; }
"$TS_BIN/tessera" --meta "$TS_META_ADDR" setgoal 3 / >/dev/null || exit 1

# counts FILE: "WHO OP COUNT" lines of every daemon's request counters.
counts() {
    local name addr
    while read -r name addr; do
        case $name in metad* | mount) ;; *) continue ;; esac
        curl -sf "http://$addr/metrics" | awk -v who="${name%%[0-9]*}" '
            /^tessera_(client_)?requests_total\{op="/ {
                split($1, p, "\""); print who, p[2], $2 }'
    done <"$TS_DIR/http" | awk '{ s[$1 " " $2] += $3 }
        END { for (k in s) print k, s[k] }' | sort >"$1"
}

for phase in $phases; do
    counts "$work/before"
    if [ "$phase" = dbench ]; then
        # Per second of dbench instead of per file.
        mkdir -p "$TS_MNT/dbench"
        (cd "$work" && dbench -D "$TS_MNT/dbench" -t "$n" 4 2>/dev/null) |
            awk '/^Throughput/ { print "dbench", $2, "MB/s" }'
    else
        python3 "$here/scripts/bench-meta.py" "$TS_MNT/d" "$n" "$phase"
    fi
    counts "$work/after"
    join -a 2 -e 0 -o '0,1.2,2.2' <(awk '{ print $1 "/" $2, $3 }' "$work/before") \
        <(awk '{ print $1 "/" $2, $3 }' "$work/after") |
        awk -v n="$n" -v ph="$phase" '$3 - $2 > 0 {
            printf "%s %s %.2f\n", ph, $1, ($3 - $2) / n }'
done
