#!/usr/bin/env bash
# test-e2e-mirror.sh: the mirror `make e2e` builds its guest from comes from
# the machine's APT configuration (tests/e2e/apt-mirror.sh), in the forms
# apt reads: sources.list one-line entries (with options, after comments
# and deb-src lines), sources.list.d/*.list, deb822 *.sources paragraphs
# (disabled ones and other suites skipped), files apt ignores ignored; no
# entry for the suite is an error.  No daemons: a fake /etc/apt per case.
. "$(dirname "$0")/lib.sh"
m=$it_root/tests/e2e/apt-mirror.sh

# case NAME WANT: run apt-mirror.sh on $IT_TMP/apt, expect WANT ("" = exit 1).
case_() {
    local got rc
    got=$("$m" "$IT_TMP/apt" bookworm 2>&1)
    rc=$?
    if [ -z "$2" ]; then
        [ "$rc" = 1 ] && [ -z "$got" ] || it_fail "$1: want exit 1, got $rc '$got'"
        it_ok "$1"
    else
        it_expect_eq "$1" "$got" "$2"
    fi
    rm -rf "$IT_TMP/apt"
    mkdir -p "$IT_TMP/apt/sources.list.d"
}
mkdir -p "$IT_TMP/apt/sources.list.d"

cat >"$IT_TMP/apt/sources.list" <<'SRC'
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main contrib
SRC
case_ "sources.list, options and other suites" http://one.example/debian

cat >"$IT_TMP/apt/sources.list.d/a.sources" <<'SRC'
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Enabled: no

# a comment
Types: deb-src deb
URIs: http://first.example/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
SRC
echo "deb http://ignored.example/debian bookworm main" \
    >"$IT_TMP/apt/sources.list.d/x.list.disabled"
case_ "deb822, a disabled paragraph skipped, other files ignored" http://first.example/debian

echo "deb [ arch=amd64 ] http://list.example/debian bookworm main" \
    >"$IT_TMP/apt/sources.list.d/b.list"
case_ "sources.list.d/*.list with spaced options" http://list.example/debian

printf 'Types: deb\nURIs: http://trixie.example/debian\nSuites: trixie\n' \
    >"$IT_TMP/apt/sources.list.d/t.sources"
case_ "no entry for the suite" ""
