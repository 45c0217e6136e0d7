#!/usr/bin/env bash
# Install the Debian packages Tessera builds, runs and tests with.  As root
# it runs apt-get for whatever is missing; otherwise it prints the line to run.
set -euo pipefail

# Build: compiler, pkg-config, the six libraries.  Run: fuse3.  Test:
# clients that drive the daemons for real, curl and promtool (in
# prometheus) for the metrics endpoints, chromium (headless) for metad's
# status page, clang for the fuzzers, certtool and psktool (in gnutls-bin)
# for the NBD-over-TLS credentials; help2man for the man pages `make
# install` writes, man-db and systemd (man and systemd-analyze) to check
# them and the units; debhelper for `make deb`.
pkgs=(build-essential pkg-config libfuse3-dev fuse3 libuv1-dev
      libsqlite3-dev libmicrohttpd-dev libcmocka-dev libgnutls28-dev sqlite3
      clang qemu-utils libnbd-bin nbdkit fio attr python3 procps psmisc curl
      prometheus chromium gnutls-bin help2man man-db systemd debhelper)
pkgs+=(nettle-dev) # SHA-256 of image diffs (tessera image diff, apply-diff)
pkgs+=(libraft-dev) # the Raft log of a metad group (metadata/meta_raft.c)
pkgs+=(tcpdump)    # test-secure.sh: what crosses loopback on --secure links
pkgs+=(python3-libnbd python3-cryptography) # test-auth.sh: nbdsh; a ticket's session key
pkgs+=(dbench)     # make bench: dbench through each mount

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages; run as root:" >&2
    echo "  apt-get update && $line" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
