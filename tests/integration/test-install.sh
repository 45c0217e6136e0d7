#!/usr/bin/env bash
# test-install.sh: `make install` (docs/operations.md, "Install").
#
# Into a DESTDIR with PREFIX=/usr: binaries, man pages, systemd units with
# the paths substituted, example configs, bash completion, where a package
# puts them.  Into a real PREFIX under the temp folder: `systemd-analyze
# verify` accepts every unit (their programs and man pages exist there),
# every man page renders and documents --config, each verb of the CLI has
# its page tessera-VERB(1) made from `tessera VERB --help` and listed in
# tessera(1), the installed programs run, and the completion finds the
# CLI's verbs from its --help.
# Needs: make, help2man, systemd-analyze, man; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need make help2man systemd-analyze man groff

mk() { make -s --no-print-directory -C "$it_root" BUILD="$BUILD" "$@"; }

# ---- Staged, as a package would -----------------------------------------------
stage=$IT_TMP/stage
mk install DESTDIR="$stage" PREFIX=/usr >"$IT_TMP/make.log" 2>&1 ||
    { cat "$IT_TMP/make.log"; it_fail "make install DESTDIR"; }
for f in usr/bin/tessera usr/bin/tessera-metad usr/bin/tessera-chunkd \
    usr/bin/tessera-nbd usr/bin/tessera-mount \
    usr/share/man/man1/tessera.1 usr/share/man/man1/tessera-metad.1 \
    usr/share/man/man1/tessera-chunkd.1 usr/share/man/man1/tessera-nbd.1 \
    usr/share/man/man1/tessera-mount.1 \
    usr/lib/systemd/system/tessera-metad.service \
    usr/lib/systemd/system/tessera-chunkd@.service \
    usr/lib/systemd/system/tessera-nbd.service \
    usr/share/doc/tessera/examples/metad.cfg \
    usr/share/doc/tessera/examples/chunkd.cfg \
    usr/share/doc/tessera/examples/nbd.cfg \
    usr/share/doc/tessera/examples/mount.cfg \
    usr/share/bash-completion/completions/tessera \
    usr/share/bash-completion/completions/tessera-chunkd; do
    [ -e "$stage/$f" ] || it_fail "make install did not lay out /$f"
done
[ -x "$stage/usr/bin/tessera-metad" ] || it_fail "tessera-metad not executable"
grep -q "^ExecStart=/usr/bin/tessera-chunkd --config /etc/tessera/chunkd-%i.cfg$" \
    "$stage/usr/lib/systemd/system/tessera-chunkd@.service" ||
    it_fail "the chunkd unit's paths are not substituted"
it_ok "make install DESTDIR=... PREFIX=/usr lays everything out"

# ---- A real prefix: the units verify ----------------------------------------------
root=$IT_TMP/root
mk install PREFIX="$root" >"$IT_TMP/make2.log" 2>&1 ||
    { cat "$IT_TMP/make2.log"; it_fail "make install PREFIX"; }
units=$root/lib/systemd/system
cp "$units/tessera-chunkd@.service" "$units/tessera-chunkd@disk1.service"
for u in tessera-metad.service tessera-chunkd@disk1.service tessera-nbd.service; do
    out=$(MANPATH=$root/share/man systemd-analyze verify "$units/$u" 2>&1) ||
        it_fail "systemd-analyze verify $u: $out"
    [ -z "$out" ] || it_fail "systemd-analyze verify $u complains: $out"
done
it_ok "systemd-analyze verify accepts the three units"

for p in tessera tessera-metad tessera-chunkd tessera-nbd tessera-mount; do
    page=$(MANWIDTH=100 man -l "$root/share/man/man1/$p.1" 2>/dev/null) ||
        it_fail "man page of $p does not render"
    grep -q -- "--meta\|--data" <<<"$page" || it_fail "man page of $p lists no options"
    [ "$p" = tessera ] || grep -q -- "--config" <<<"$page" ||
        it_fail "man page of $p misses --config"
    "$root/bin/$p" --help >/dev/null 2>&1 || it_fail "installed $p --help fails"
done
it_ok "every man page renders with its options; the installed programs run"

# A page per verb of the CLI, made from its own --help: each exists (also
# staged), renders without a warning, shows the verb's synopsis as
# `tessera VERB --help` prints it, and tessera(1) lists it in SEE ALSO.
verbs=$(bash -c ". '$root/share/bash-completion/completions/tessera'; _tessera_words '$root/bin/tessera' ''")
[ "$(wc -w <<<"$verbs")" -ge 10 ] || it_fail "too few verbs in tessera --help: $verbs"
see=$(MANWIDTH=1000 man -l "$root/share/man/man1/tessera.1" 2>/dev/null |
    sed -n '/^SEE ALSO/,$p')
for v in $verbs; do
    page=$root/share/man/man1/tessera-$v.1
    [ -e "$stage/usr/share/man/man1/tessera-$v.1" ] ||
        it_fail "make install DESTDIR did not lay out tessera-$v.1"
    [ -e "$page" ] || it_fail "no man page for the verb $v"
    warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1) || it_fail "groff fails on tessera-$v.1"
    [ -z "$warn" ] || it_fail "tessera-$v.1 renders with warnings: $warn"
    text=$(MANWIDTH=1000 man -l "$page" 2>/dev/null) || it_fail "man -l tessera-$v.1"
    grep -q "^NAME" <<<"$text" && grep -q "tessera-$v - " <<<"$text" ||
        it_fail "tessera-$v.1 has no NAME line: $text"
    "$root/bin/tessera" "$v" --help | sed -n 's/^\(Usage:\|  or:\) *//p' |
        while read -r syn; do
            grep -qF -- "$syn" <<<"$text" ||
                it_fail "tessera-$v.1 lacks the synopsis '$syn' of tessera $v --help"
        done || exit 1
    grep -q "tessera-$v(1)" <<<"$see" || it_fail "tessera(1) SEE ALSO misses tessera-$v(1)"
done
it_ok "a man page per verb ($(wc -w <<<"$verbs")), rendering cleanly, with the synopsis of its --help, in tessera(1)'s SEE ALSO"

# The completion's words are the CLI's own.
words=$(bash -c ". '$root/share/bash-completion/completions/tessera'; _tessera_words '$root/bin/tessera'")
for v in status image setgoal snapshot; do
    grep -qx "$v" <<<"$words" || it_fail "completion misses the verb $v: $words"
done
sub=$(bash -c ". '$root/share/bash-completion/completions/tessera'; _tessera_words '$root/bin/tessera' image")
grep -qx create <<<"$sub" && grep -qx list <<<"$sub" ||
    it_fail "completion misses image's subcommands: $sub"
it_ok "bash completion takes the verbs from tessera --help"
