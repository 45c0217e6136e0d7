#!/usr/bin/env bash
# it-long: started first by scripts/run-integration.sh
# test-clone.sh: clones of snapshots that hold data, and every chain of
# snapshots and clones built from them (docs/vmdisk.md, "Snapshots and
# clones"), written and read over NBD and through the FUSE mount, every
# image checked byte for byte (sha256 against a local copy).
#
# Starts tessera-metad, three tessera-chunkd (goal 3), a mount and
# tessera-nbd, then:
#   1. over NBD: an image filled with nbdcopy (data in three chunks, a hole
#      after), snapshotted right after the copy, and the snapshot cloned
#      at once (the case of issue 13: the chunks still had write leases);
#      the clone reads the snapshot's bytes over NBD and the mount;
#   2. the clone written over NBD (shared chunks, a partly written chunk, a
#      hole): the clone has its writes, the snapshot and the origin not;
#      the origin written, the snapshot cloned again at once: the new clone
#      has the snapshot's bytes;
#   3. chains: snapshot of a written clone and a clone of it, a clone of
#      that clone, a snapshot of a snapshot and a clone of it; each
#      written over NBD where writable, each checked;
#   4. template -> snapshot -> ten clones, each written differently over
#      NBD, all correct over NBD (two also through the mount), the
#      snapshot unchanged;
#   5. the same through the mount: a file written with dd, snapshotted and
#      cloned at once, the clone written, a snapshot of it cloned;
#   6. the origin removed, its snapshot still cloned, and fsck clean;
#   7. `tessera image list` (JSON, and the --tree table): each file's kind,
#      parent (a removed one as such), depth in the tree, and shared plus
#      exclusive bytes adding up to its allocated bytes; `image rm` of the
#      template snapshot says which clones keep its chunks, frees none,
#      and the clones still read their bytes;
# Case 8, a snapshot taken while tessera-nbd writes the image, is
# test-clone-writes.sh (a cluster of its own, so that the two run side by
# side).
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount,nbd}, tessera, nbdcopy,
# qemu-io, python3, sha256sum; runs as root (drop_caches); exits 77
# otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-clone.sh"

# ---- 1. the issue's case: clone of a snapshot with data, at once ----------
# Data in [0, 40 MiB) and [100, 120 MiB): chunks 0 and 1 partly written,
# chunk 2 a hole.
truncate -s "$SIZE" "$W/b.img"
head -c $((40 * MIB)) /dev/urandom |
    dd of="$W/b.img" bs=1M conv=notrunc status=none iflag=fullblock
head -c $((20 * MIB)) /dev/urandom |
    dd of="$W/b.img" bs=1M seek=100 conv=notrunc status=none iflag=fullblock
"$T" image create /b.img "$SIZE" >/dev/null || it_fail "image create"
nbdcopy "$W/b.img" "$(nbd_url b.img)" || it_fail "nbdcopy into b.img"
snap b.img b.snap
"$T" clone /b.snap /vm1.img 2>"$IT_TMP/err" >/dev/null ||
    it_fail "clone of a snapshot with data: $(cat "$IT_TMP/err")"
cp "$W/b.snap" "$W/vm1.img"
it_ok "clone of a snapshot with data right after it was taken"
it_expect_eq "the clone is writable" "$(it_json "j['readonly']" image info /vm1.img)" False
# b.img, written by nothing else, is read after its own writes in case 2.
check b.snap vm1.img

# ---- 2. the clone and the origin written -----------------------------------
nbd_patch vm1.img 0 4096                       # shared chunk 0
nbd_patch vm1.img $((70 * MIB + 123)) $((MIB)) # shared chunk 1, unwritten part
nbd_patch vm1.img $((110 * MIB)) 65536         # shared chunk 1, written part
nbd_patch vm1.img $((SIZE - 5000)) 5000        # the hole, up to the end
check vm1.img
# The snapshot and the origin are read once both the clone and the origin
# were written (no write of either lands where the other's does): a
# write of the clone's that reached them shows there.
nbd_patch b.img $((MIB)) $((2 * MIB))
nbd_patch b.img $((120 * MIB)) 4096
clone b.snap vm2.img
check b.img vm2.img b.snap

# ---- 3. chains --------------------------------------------------------------
snap vm1.img vm1.snap # a clone with live leases on its copies
clone vm1.snap vm1c.img
nbd_patch vm1c.img $((64 * MIB - 2048)) 4096 # across chunks 0 and 1
clone vm1c.img vm1cc.img                      # clone of a clone of a snapshot
nbd_patch vm1cc.img $((130 * MIB)) $((MIB))
snap b.snap b.snap2 # snapshot of a snapshot
clone b.snap2 vm3.img
nbd_patch vm3.img $((5 * MIB)) 8192
nbd_patch vm1.img 4096 4096 # the clone written after its snapshot
# b.snap, under b.snap2 and vm3.img, is read again in case 6, after every
# write into what was made from it.
check vm1.snap vm1c.img vm1cc.img b.snap2 vm3.img vm1.img

# ---- 4. template -> snapshot -> ten clones ----------------------------------
snap vm2.img tmpl.snap
for k in $(seq 1 10); do clone tmpl.snap "t$k.img"; done
for k in $(seq 1 10); do
    nbd_patch "t$k.img" $(((k * 13) * MIB + k * 4096)) $((k * 8192))
done
check tmpl.snap t1.img t2.img
CHECK_MOUNT=0 check $(for k in $(seq 3 10); do echo "t$k.img"; done)
it_expect_eq "the snapshot shares with its ten clones" \
    "$(it_json "sorted(int(s['path'][2:-4]) for s in j['shares_with'] if s['path'].startswith('/t'))" \
        image info /tmpl.snap)" "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"

# ---- 5. through the mount -------------------------------------------------------
head -c $((100 * MIB)) /dev/urandom >"$W/m.img"
dd if="$W/m.img" of="$TS_MNT/m.img" bs=1M conv=fsync status=none ||
    it_fail "write m.img"
snap m.img m.snap
clone m.snap m1.img
# A clone read before any write into it: case 1 (vm1.img) and case 2
# (vm2.img); m1.img is read after its writes, with the snapshot's bytes
# around them.
mnt_patch m1.img 0 4096
mnt_patch m1.img $((66 * MIB)) $((MIB))
mnt_patch m.img $((99 * MIB)) 4096
check m1.img m.snap m.img
snap m1.img m1.snap
clone m1.snap m2.img
mnt_patch m2.img $((10 * MIB)) 65536
check m1.snap m2.img m1.img

# ---- 6. the origin gone ----------------------------------------------------------
"$T" image rm /b.img >/dev/null || it_fail "image rm b.img"
clone b.snap vm4.img
nbd_patch vm4.img 0 65536
# vm2.img, under the ten clones of case 4, is read at the end of case 7.
check vm4.img b.snap
"$T" fsck >/dev/null || it_fail "fsck after clones of snapshots"
it_ok "fsck clean"

# ---- 7. lineage and space ------------------------------------------------------
# img PATH EXPR: EXPR of PATH's entry i in `image list --json`.
img() { it_json "(lambda i: ($2))([i for i in j['images'] if i['path'] == '$1'][0])" image list; }
it_expect_eq "vm1c.img's parent" "$(img /vm1c.img "i['parent']['path']")" /vm1.snap
it_expect_eq "vm1cc.img is a clone" "$(img /vm1cc.img "i['kind']")" clone
it_expect_eq "b.snap2 is a snapshot of b.snap" \
    "$(img /b.snap2 "i['kind'], i['parent']['path']" | tr -d "()',")" "snapshot /b.snap"
it_expect_eq "m.img has no parent" "$(img /m.img "i['parent']")" None
it_expect_eq "b.snap's parent was removed" \
    "$(img /b.snap "i['parent']['exists'], i['parent']['path']" | tr -d "()',")" "False None"
it_expect_eq "t3.img: b.snap -> vm2.img -> tmpl.snap -> t3.img" "$(img /t3.img "i['depth']")" 3
it_expect_eq "shared + exclusive = allocated, for every file" \
    "$(it_json "all(i['shared'] + i['exclusive'] == i['allocated'] for i in j['images'])" image list)" True
# m.img's chunk 1 was copied at its write, chunk 0 is still m.snap's too.
it_expect_eq "m.img's bytes: 100 MiB, the 36 MiB of chunk 1 its own" \
    "$(img /m.img "i['allocated'], i['exclusive']" | tr -d "()',")" "$((100 * MIB)) $((36 * MIB))"
it_expect_eq "a clone of a template shares all but what it wrote" \
    "$(img /t1.img "i['exclusive']")" $((64 * MIB))
"$T" image list --tree >"$IT_TMP/tree" || it_fail "image list --tree"
cat "$IT_TMP/tree"
grep -qE '^      `- /t3.img +clone +/tmpl.snap ' "$IT_TMP/tree" ||
    it_fail "the tree does not show /t3.img under /tmpl.snap"
it_ok "image list --tree"
it_expect_eq "image info names the parent" \
    "$(it_json "j['parent']['path']" image info /vm1cc.img)" /vm1c.img
it_expect_eq "a folder lists its subtree only" \
    "$(it_json "len(j['images'])" image list /b.snap)" 1

out=$("$T" image rm /tmpl.snap) || it_fail "image rm /tmpl.snap"
echo "$out"
case $out in
"/tmpl.snap: removed; 0 chunks freed, 2 kept: still used by"*/t5.img*) it_ok "image rm says what it keeps" ;;
*) it_fail "image rm: $out" ;;
esac
it_expect_eq "t1.img's parent is gone" "$(img /t1.img "i['parent']['exists']")" False
it_expect_eq "image info: the parent is gone" \
    "$(it_json "j['parent']['exists'], j['parent']['path']" image info /t1.img | tr -d "()',")" \
    "False None"
check t1.img t5.img vm2.img
