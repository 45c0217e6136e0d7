#!/usr/bin/env bash
# apt-mirror.sh [APT_DIR [SUITE]]: print the URI of the first Debian
# repository this machine's APT uses for SUITE (default bookworm), from
# APT_DIR (default /etc/apt): sources.list, then sources.list.d/*.list
# (one-line "deb [options] URI SUITE COMPONENT..." entries) and
# sources.list.d/*.sources (deb822 paragraphs: Types, URIs, Suites,
# Enabled), as apt reads them; other files there are ignored, as apt
# ignores them.  Exit 1, printing nothing, when no entry serves SUITE.
# build-guest.sh takes its debootstrap mirror from here, so the guest
# comes from wherever apt gets its packages.
set -euo pipefail
dir=${1:-/etc/apt}
suite=${2:-bookworm}

files=()
[ -f "$dir/sources.list" ] && files+=("$dir/sources.list")
for f in "$dir"/sources.list.d/*.list "$dir"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
done
[ ${#files[@]} -gt 0 ] || exit 1

for f in "${files[@]}"; do
    case $f in
    *.sources)
        awk -v suite="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") &&
                    tolower(enabled) != "no" && uri != "") { print uri; found = 1; exit }
                types = suites = uri = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower(substr($0, 1, index($0, ":") - 1))
                val = substr($0, index($0, ":") + 1)
                gsub(/^[ \t]+|[ \t]+$/, "", val); gsub(/[ \t]+/, " ", val)
                if (key == "types") types = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = val
                else if (key == "uris") { split(val, u, " "); uri = u[1] }
            }
            END { if (!found) flush(); exit !found }' "$f" && exit 0 ;;
    *)
        awk -v suite="$suite" '
            { sub(/#.*/, "") }
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; found = 1; exit }
            }
            END { exit !found }' "$f" && exit 0 ;;
    esac
done
exit 1
