#!/usr/bin/env bash
# QEMU's own tools on the mount: a qcow2 image created, written and read
# with pattern verification by qemu-io, and checked clean by qemu-img.
. "$(dirname "$0")/lib.sh"
it_need qemu-img qemu-io
. "$(dirname "$0")/lib-data.sh"

img=$TS_MNT/vm.qcow2
qemu-img create -q -f qcow2 "$img" 10G || it_fail "qemu-img create"
it_expect_eq "virtual size" \
    "$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" \
    10737418240
qemu-io -f qcow2 -c 'write -P 0xa5 0 4M' -c 'write -P 0x5a 5G 1M' \
    -c 'write -P 0x11 9G 64k' -c 'write -z 1M 1M' "$img" >/dev/null ||
    it_fail "qemu-io writes"
out=$(qemu-io -f qcow2 -c 'read -P 0xa5 0 1M' -c 'read -P 0 1M 1M' \
    -c 'read -P 0xa5 2M 2M' -c 'read -P 0x5a 5G 1M' -c 'read -P 0x11 9G 64k' \
    -c 'read -P 0 8G 1M' "$img") || it_fail "qemu-io reads"
echo "$out" | grep -q 'Pattern verification failed' && it_fail "pattern mismatch: $out"
it_ok "qemu-io patterns read back"
qemu-img check -q "$img" || it_fail "qemu-img check"
it_ok "qemu-img check clean"
qemu-img convert -O raw "$img" "$IT_TMP/local.raw" || it_fail "convert out"
qemu-img convert -f raw -O qcow2 "$IT_TMP/local.raw" "$TS_MNT/copy.qcow2" || it_fail "convert in"
qemu-img compare -q "$img" "$TS_MNT/copy.qcow2" || it_fail "compare"
it_ok "convert out and back in compares equal"
