#!/usr/bin/env bash
# man-verbs.sh TESSERA OUTDIR VERSION: a man page tessera-VERB.1 in OUTDIR
# for every verb of the admin CLI, made by help2man from `tessera VERB
# --help` (admin/adm_verbs.c holds the text), and OUTDIR/see-also.h2m, the
# SEE ALSO section that tessera(1) includes to list them.  The verbs come
# from `tessera --help`, read as the bash completion reads them, so a new
# verb gets its page without a change here.
set -euo pipefail
tessera=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
out=$2
version=$3
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/dist/bash-completion/tessera"

mkdir -p "$out"
rm -f "$out"/tessera-*.1
verbs=$(_tessera_words "$tessera" "")
[ -n "$verbs" ] || { echo "man-verbs.sh: no verbs in $1 --help" >&2; exit 1; }
see=
for v in $verbs; do
    # help2man names the page after the program it runs: a two-line
    # wrapper called tessera-VERB.
    wrap=$out/bin/tessera-$v
    mkdir -p "$out/bin"
    printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$tessera" "$v" >"$wrap"
    chmod +x "$wrap"
    summary=$("$tessera" "$v" --help | awk '/^$/ { n++; next } n == 1 { sub(/\.$/, ""); print tolower(substr($0, 1, 1)) substr($0, 2); exit }')
    help2man -N --version-string="$version" -n "$summary" \
        -i "$here/dist/man/tessera-verb.h2m" -o "$out/tessera-$v.1" "$wrap"
    see+=".BR tessera\\-$v (1),"$'\n'
done
rm -rf "$out/bin"
# Before the page's own SEE ALSO (dist/man/tessera.h2m), which goes on.
printf '[SEE ALSO]\n%s' "$see" >"$out/see-also.h2m"
