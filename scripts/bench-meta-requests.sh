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
# compared on one host.
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/cluster.sh"
work=$1
n=${2:-2000}

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

for phase in create unlink; do
    counts "$work/before"
    python3 "$here/scripts/bench-meta.py" "$TS_MNT/d" "$n" "$phase"
    counts "$work/after"
    join -a 2 -e 0 -o '0,1.2,2.2' <(awk '{ print $1 "/" $2, $3 }' "$work/before") \
        <(awk '{ print $1 "/" $2, $3 }' "$work/after") |
        awk -v n="$n" -v ph="$phase" '$3 - $2 > 0 {
            printf "%s %s %.2f\n", ph, $1, ($3 - $2) / n }'
done
