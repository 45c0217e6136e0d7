#!/usr/bin/env bash
# it-manual: run by `make test-deb`, not by `make test`
# test-deb.sh: the Debian package builds (docs/operations.md, "Install").
#
# `make deb` (dpkg-buildpackage -us -uc -b on a copy of the tree) with
# DEB_BUILD_OPTIONS=nocheck noddebs parallel=N: no tests inside the package
# build, no debug-symbol package, every core.  The package then holds the
# five programs, the three systemd units, the example configs, bash
# completion and the man pages (each program's and each CLI verb's, as
# `tessera --help` lists the verbs), depends on the libraries it links,
# and its programs run when unpacked.  `make test-deb` runs it;
# it is not part of `make test` (it builds the whole tree once more).
# Needs: make, dpkg-buildpackage, dpkg-deb, dh, help2man and the
# Build-Depends of debian/control; exits 77 when one is missing.
. "$(dirname "$0")/lib.sh"
it_need make dpkg-buildpackage dpkg-deb dpkg-checkbuilddeps dh help2man tessera
(cd "$it_root" && dpkg-checkbuilddeps 2>&1) ||
    { echo "skip: build dependencies missing (make deps)"; exit 77; }

out=$IT_TMP/build
DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" \
    make -s --no-print-directory -C "$it_root" BUILD="$out" deb \
    >"$IT_TMP/deb.log" 2>&1 ||
    { tail -n 40 "$IT_TMP/deb.log"; it_fail "make deb"; }
debs=("$out"/deb/tessera_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] ||
    it_fail "make deb made no tessera_*.deb: $(ls "$out/deb")"
deb=${debs[0]}
it_ok "make deb builds $(basename "$deb")"

list=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
want=(/usr/bin/tessera /usr/bin/tessera-metad /usr/bin/tessera-chunkd
    /usr/bin/tessera-mount /usr/bin/tessera-nbd
    /usr/lib/systemd/system/tessera-metad.service
    /usr/lib/systemd/system/tessera-chunkd@.service
    /usr/lib/systemd/system/tessera-nbd.service
    /usr/share/doc/tessera/examples/metad.cfg
    /usr/share/doc/tessera/examples/chunkd.cfg
    /usr/share/bash-completion/completions/tessera)
for p in tessera tessera-metad tessera-chunkd tessera-mount tessera-nbd; do
    want+=("/usr/share/man/man1/$p.1.gz")
done
verbs=$(bash -c ". '$it_root/dist/bash-completion/tessera'; _tessera_words '$TS_BIN/tessera' ''")
[ -n "$verbs" ] || it_fail "no verbs in tessera --help"
for v in $verbs; do want+=("/usr/share/man/man1/tessera-$v.1.gz"); done
for f in "${want[@]}"; do
    grep -qxF "$f" <<<"$list" || it_fail "the package lacks $f"
done
it_ok "the package holds the programs, units, examples, completion and ${#want[@]} files in all, man pages of every verb included"

[ "$(dpkg-deb -f "$deb" Package)" = tessera ] || it_fail "package name"
deps=$(dpkg-deb -f "$deb" Depends)
for lib in libuv1 libsqlite3 libfuse3 libgnutls30 libmicrohttpd; do
    grep -q "$lib" <<<"$deps" || it_fail "Depends lacks $lib: $deps"
done
it_ok "Depends names the libraries it links: $deps"

dpkg-deb -x "$deb" "$IT_TMP/root"
for p in tessera tessera-metad tessera-chunkd tessera-mount tessera-nbd; do
    "$IT_TMP/root/usr/bin/$p" --help >/dev/null 2>&1 || it_fail "packaged $p --help"
done
zcat "$IT_TMP/root/usr/share/man/man1/tessera-image.1.gz" | grep -q "image create" ||
    it_fail "packaged tessera-image(1) lacks its synopsis"
it_ok "the packaged programs run and the verb pages are the CLI's"
