#!/usr/bin/env bash
# build-guest.sh CACHE: make the end-to-end test's Debian guest under CACHE.
#
#   CACHE/rootfs.tar.zst  debootstrap --variant=minbase bookworm chroot with
#                         linux-image-amd64, minus /boot, modules and docs
#                         (built once, reused)
#   CACHE/vmlinuz         the guest kernel and initramfs, from the chroot,
#   CACHE/initrd.img      booted with qemu -kernel/-initrd (no boot loader)
#   CACHE/guest.img       1 GiB raw ext4 made with mkfs.ext4 -d from the
#                         chroot plus tests/e2e/guest-init as /sbin/e2e-init
#   CACHE/guest.stamp     checksum of the guest-init the image was made with
#
# The chroot comes from the Debian mirror this machine's APT uses for
# bookworm (apt-mirror.sh reads /etc/apt), or from $E2E_MIRROR.  The
# image is remade (a few seconds) when it is missing or guest-init
# changed; the chroot only when it is missing.
#
# The chroot is kept as a tarball and unpacked only in a temp folder
# outside CACHE: CACHE lives under $BUILD, where the Makefile includes
# every "*.d" it finds, and a Debian tree is full of them (/etc/rc2.d ...).
# Needs root (debootstrap).  Prints what it does on stderr; exit 1 on failure.
set -euo pipefail

cache=$1
here=$(cd "$(dirname "$0")" && pwd)
img_size=${E2E_IMG_SIZE:-1G}

say() { echo "e2e: $*" >&2; }
die() { echo "e2e: guest build: $*" >&2; exit 1; }

mirror=${E2E_MIRROR:-$("$here/apt-mirror.sh" /etc/apt bookworm || true)}
[ -n "$mirror" ] ||
    die "no APT source for Debian bookworm in /etc/apt; set E2E_MIRROR to a Debian mirror's URL"

mkdir -p "$cache"
work=$(mktemp -d /var/tmp/tessera-e2e-guest.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

if [ ! -s "$cache/rootfs.tar.zst" ] || [ ! -s "$cache/vmlinuz" ] ||
    [ ! -s "$cache/initrd.img" ]; then
    say "debootstrap bookworm (minbase + linux-image-amd64) from $mirror"
    t0=$SECONDS
    debootstrap --variant=minbase --include=linux-image-amd64,initramfs-tools \
        bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
        { tail -20 "$cache/debootstrap.log" >&2
          die "debootstrap failed (log: $cache/debootstrap.log)"; }
    say "debootstrap took $((SECONDS - t0)) s"

    k=$(ls "$root"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -1)
    [ -n "$k" ] || die "no kernel in the chroot"
    v=${k##*/vmlinuz-}
    [ -f "$root/boot/initrd.img-$v" ] || die "no initramfs for $v in the chroot"
    cp "$k" "$cache/vmlinuz.tmp"
    cp "$root/boot/initrd.img-$v" "$cache/initrd.img.tmp"

    # The kernel and initramfs boot from outside, and the tiny init loads
    # no modules: what the guest needs (virtio, ext4) is in the initramfs.
    rm -rf "${root:?}"/boot/* "$root"/lib/modules/* \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* \
        "$root"/usr/share/locale/*
    echo e2e-guest >"$root/etc/hostname"
    tar -C "$root" --numeric-owner --zstd -cf "$cache/rootfs.tar.zst.tmp" . ||
        die "tar of the chroot failed"
    mv "$cache/vmlinuz.tmp" "$cache/vmlinuz"
    mv "$cache/initrd.img.tmp" "$cache/initrd.img"
    mv "$cache/rootfs.tar.zst.tmp" "$cache/rootfs.tar.zst"
    rm -f "$cache/guest.img" "$cache/guest.stamp"
fi

stamp=$(sha256sum "$here/guest-init" | cut -d' ' -f1)
if [ ! -f "$cache/guest.img" ] ||
    [ "$(cat "$cache/guest.stamp" 2>/dev/null)" != "$stamp" ]; then
    say "making guest.img ($img_size ext4) from the chroot"
    if [ ! -d "$root" ]; then
        mkdir "$root"
        tar -C "$root" --numeric-owner --zstd -xpf "$cache/rootfs.tar.zst" ||
            die "cannot unpack $cache/rootfs.tar.zst"
    fi
    install -m 0755 "$here/guest-init" "$root/sbin/e2e-init"
    rm -f "$cache/guest.img.tmp"
    truncate -s "$img_size" "$cache/guest.img.tmp"
    mkfs.ext4 -q -F -L e2e-root -d "$root" "$cache/guest.img.tmp" ||
        die "mkfs.ext4 -d failed"
    mv "$cache/guest.img.tmp" "$cache/guest.img"
    echo "$stamp" >"$cache/guest.stamp"
fi
