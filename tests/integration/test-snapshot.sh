#!/usr/bin/env bash
# test-snapshot.sh: instant snapshots and clones (docs/vmdisk.md) with real
# daemons and a FUSE mount.
#
# Starts tessera-metad, three tessera-chunkd and tessera-mount on loopback,
# then:
#   1. a 100 MiB file of random data written through the mount; `tessera
#      snapshot` of it; parts of the origin overwritten (dd conv=notrunc at
#      several offsets, in both chunks); with the page cache dropped the
#      snapshot reads back with its old sha256 and the origin with the new
#      bytes; writing to the snapshot fails with EROFS; removing the origin
#      leaves the snapshot readable.
#  1b. a validate-mode mount (no callbacks) holding the origin and the
#      snapshot open reads the origin's new bytes and the snapshot's old
#      ones right after a write through the first mount.
#   2. templating: `tessera image create` of a 1 GiB template with some
#      data, then ten `tessera clone`s of it timed together (printed;
#      must take < 5 s) and no extra space on the chunk servers (du of
#      their data folders, within 1 MiB); a write to one clone changes
#      neither the template nor another clone.
#   3. `tessera image info` (sharing, read-only flag), `image resize`
#      (grow; shrink refused without --shrink), `image rm`, and `tessera
#      fsck` finding no orphan among the shared chunks.
# Needs: $BUILD/bin/tessera-{metad,chunkd,mount}, tessera, fusermount3,
# python3, sha256sum, du; runs as root (drop_caches); exits 77 otherwise.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera fusermount3 \
    mountpoint python3 sha256sum du dd
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to drop caches"; exit 77; }

T="$TS_BIN/tessera"
MIB=${SNAPSHOT_MIB:-100}

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do
    ts_start_chunkd "$i" || it_fail "chunkd $i did not start"
done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
ts_start_mount || it_fail "mount did not start"

json() {
    local expr=$1
    shift
    "$T" --json "$@" 2>/dev/null |
        python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)"
}
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
sha() { it_sha256 <"$1"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
chunk_kb() { du -sk "$TS_DIR"/chunk{1,2,3}/chunks | awk '{s += $1} END {print s}'; }
# patch FILE OFFSET LEN SEED: the same random bytes into FILE (through the
# mount) and into its local copy $IT_TMP/expect.
patch() {
    python3 -c 'import random, sys; r = random.Random(int(sys.argv[1]));
sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(int(sys.argv[2]))))' \
        "$4" "$3" >"$IT_TMP/piece"
    dd if="$IT_TMP/piece" of="$1" bs="$3" seek="$2" oflag=seek_bytes \
        conv=notrunc,fsync status=none || it_fail "dd into $1 at $2"
    dd if="$IT_TMP/piece" of="$IT_TMP/expect" bs="$3" seek="$2" \
        oflag=seek_bytes conv=notrunc status=none
}

mkdir "$TS_MNT/images" || it_fail "mkdir /images"

# ---- 1. snapshot, overwrite the origin ------------------------------------
head -c $((MIB << 20)) /dev/urandom >"$IT_TMP/expect"
dd if="$IT_TMP/expect" of="$TS_MNT/images/vm.img" bs=1M conv=fsync \
    status=none || it_fail "write vm.img"
ORIG_SHA=$(sha "$IT_TMP/expect")
t0=$(date +%s%N)
"$T" snapshot /images/vm.img /images/vm.snap >/dev/null || it_fail "tessera snapshot"
echo "snapshot: ${MIB} MiB image in $(ms_since "$t0") ms"
it_expect_eq "snapshot shares with the origin" \
    "$(json "[s['path'] for s in j['shares_with']]" image info /images/vm.snap)" \
    "['/images/vm.img']"
patch "$TS_MNT/images/vm.img" 0 4096 1
patch "$TS_MNT/images/vm.img" $((1048576 + 123)) 65536 2
patch "$TS_MNT/images/vm.img" $((70 << 20)) 1048576 3
patch "$TS_MNT/images/vm.img" $(((MIB << 20) - 5000)) 5000 4
drop_caches
it_expect_eq "snapshot keeps its contents" "$(sha "$TS_MNT/images/vm.snap")" "$ORIG_SHA"
it_expect_eq "origin has the new bytes" "$(sha "$TS_MNT/images/vm.img")" \
    "$(sha "$IT_TMP/expect")"
cows=$(grep -c 'copy-on-write' "$TS_DIR/logs/metad.log")
[ "$cows" -ge 2 ] || it_fail "expected copies of both chunks, metad logged $cows"
it_ok "first writes copied the shared chunks ($cows chunk copies)"

if err=$(dd if=/dev/zero of="$TS_MNT/images/vm.snap" bs=4096 count=1 \
    conv=notrunc status=none 2>&1); then
    it_fail "writing to the snapshot succeeded"
fi
case $err in
*"Read-only file system"*) it_ok "writing to the snapshot: EROFS" ;;
*) it_fail "writing to the snapshot: unexpected error: $err" ;;
esac
it_expect_eq "snapshot is read-only" "$(json "j['readonly']" image info /images/vm.snap)" True
it_expect_eq "every chunk written: nothing shared any more" \
    "$(json "j['shared_chunks']" image info /images/vm.snap)" 0

"$T" image rm /images/vm.img >/dev/null || it_fail "image rm vm.img"
drop_caches
it_expect_eq "snapshot readable after the origin is removed" \
    "$(sha "$TS_MNT/images/vm.snap")" "$ORIG_SHA"

# ---- 1b. a client without callbacks sees the copy at once ---------------------
# A validate-mode mount holds the file open with its chunk locations
# cached; another client's first write after a snapshot copies the shared
# chunk and bumps its version, so the held locations are refused
# (EOLDVER) and the next read locates again: the origin reads its new
# bytes, the snapshot (also held open) its old ones, without waiting for
# the location cache to expire.
ts_start_mount "$IT_TMP/mntv" -o consistency=validate || it_fail "validate mount"
head -c $((8 << 20)) /dev/urandom >"$IT_TMP/v0"
dd if="$IT_TMP/v0" of="$TS_MNT/images/v.img" bs=1M conv=fsync status=none ||
    it_fail "write v.img"
res=$(python3 - "$IT_TMP/mntv/images" "$TS_MNT/images" "$T" <<'EOF2'
import os, subprocess, sys
vdir, wdir, cli = sys.argv[1:4]
def drop():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
fd = os.open(vdir + "/v.img", os.O_RDONLY)
old = os.pread(fd, 65536, 4096)
subprocess.check_call([cli, "snapshot", "/images/v.img", "/images/v.snap"],
                      stdout=subprocess.DEVNULL)
sfd = os.open(vdir + "/v.snap", os.O_RDONLY)
assert os.pread(sfd, 65536, 4096) == old
new = os.urandom(65536)
w = os.open(wdir + "/v.img", os.O_WRONLY)
os.pwrite(w, new, 4096)
os.fsync(w)
os.close(w)
drop()
got = os.pread(fd, 65536, 4096)
snap = os.pread(sfd, 65536, 4096)
print("origin=" + ("new" if got == new else "old" if got == old else "other"),
      "snapshot=" + ("old" if snap == old else "new" if snap == new else "other"))
EOF2
) || it_fail "reading through the validate mount"
it_expect_eq "held-open readers after another client's first write" "$res" \
    "origin=new snapshot=old"
drop_caches
it_expect_eq "snapshot read afresh through the validate mount" \
    "$(sha "$IT_TMP/mntv/images/v.snap")" "$(sha "$IT_TMP/v0")"

# ---- 2. templating ----------------------------------------------------------
"$T" image create /images/tmpl.img 1G >/dev/null || it_fail "image create"
it_expect_eq "template size" "$(stat -c %s "$TS_MNT/images/tmpl.img")" 1073741824
head -c $((8 << 20)) /dev/urandom >"$IT_TMP/expect"
dd if="$IT_TMP/expect" of="$TS_MNT/images/tmpl.img" bs=1M conv=notrunc,fsync \
    status=none || it_fail "write template"
dd if="$IT_TMP/expect" of="$TS_MNT/images/tmpl.img" bs=1M seek=200 \
    conv=notrunc,fsync status=none || it_fail "write template at 200 MiB"
drop_caches
TMPL_SHA=$(sha "$TS_MNT/images/tmpl.img")
sleep 1
du0=$(chunk_kb)
t0=$(date +%s%N)
for k in $(seq 1 10); do
    "$T" clone /images/tmpl.img "/images/vm$k.img" >/dev/null || it_fail "clone $k"
done
ms=$(ms_since "$t0")
echo "clone: 10 clones of a 1 GiB template in $ms ms"
[ "$ms" -lt 5000 ] || it_fail "ten clones took $ms ms"
it_ok "ten clones in under 5 s"
sync
du1=$(chunk_kb)
echo "clone: chunk servers used ${du0} KiB before, ${du1} KiB after"
[ $((du1 - du0)) -lt 1024 ] || it_fail "clones took $((du1 - du0)) KiB"
it_ok "clones take no space until written"
it_expect_eq "template shared by ten clones" \
    "$(json "len(j['shares_with'])" image info /images/tmpl.img)" 10
it_expect_eq "clone is writable" "$(json "j['readonly']" image info /images/vm3.img)" False

cp "$IT_TMP/expect" "$IT_TMP/tmpl-head"
# expect := the template's contents, to patch like clone 3.
dd if="$TS_MNT/images/tmpl.img" of="$IT_TMP/expect" bs=1M status=none
patch "$TS_MNT/images/vm3.img" 4096 1048576 5
drop_caches
it_expect_eq "clone 3 has its write" "$(sha "$TS_MNT/images/vm3.img")" \
    "$(sha "$IT_TMP/expect")"
it_expect_eq "template unchanged" "$(sha "$TS_MNT/images/tmpl.img")" "$TMPL_SHA"
it_expect_eq "clone 5 unchanged" "$(sha "$TS_MNT/images/vm5.img")" "$TMPL_SHA"
it_expect_eq "clone 3 owns one chunk now" \
    "$(json "j['chunks'] - j['shared_chunks']" image info /images/vm3.img)" 1

# ---- 3. image verbs -----------------------------------------------------------
"$T" image info /images/tmpl.img || it_fail "image info"
"$T" image resize /images/vm5.img 2G >/dev/null || it_fail "resize grow"
it_expect_eq "grown" "$(json "j['size']" image info /images/vm5.img)" 2147483648
"$T" image resize /images/vm5.img 100M >/dev/null 2>&1
it_expect_eq "shrink without --shrink refused" $? 1
"$T" image resize --shrink /images/vm5.img 100M >/dev/null || it_fail "shrink"
it_expect_eq "shrunk" "$(json "j['size']" image info /images/vm5.img)" 104857600
"$T" image resize --shrink /images/vm5.img 3M >/dev/null || it_fail "shrink into a chunk"
"$T" image resize /images/vm5.img 8M >/dev/null || it_fail "grow again"
# Read through a second mount: the first one may still hold the location
# of the chunk vm5 shared before the CLI's resize copied it (see
# docs/vmdisk.md, "Limits").
ts_start_mount "$IT_TMP/mnt2" || it_fail "second mount"
head -c $((3 << 20)) "$IT_TMP/tmpl-head" >"$IT_TMP/want"
head -c $((5 << 20)) /dev/zero >>"$IT_TMP/want"
it_expect_eq "shrink then grow reads zeros past the cut" \
    "$(sha "$IT_TMP/mnt2/images/vm5.img")" "$(sha "$IT_TMP/want")"
it_expect_eq "template unchanged by the clone's resize" \
    "$(sha "$TS_MNT/images/tmpl.img")" "$TMPL_SHA"
"$T" image create /images/vm1.img 1G >/dev/null 2>&1
it_expect_eq "create over an existing image refused" $? 1
"$T" image rm /images/vm1.img >/dev/null || it_fail "image rm"
"$T" image info /images/vm1.img >/dev/null 2>&1
it_expect_eq "removed image is gone" $? 1
"$T" snapshot /images /images/x >/dev/null 2>&1
it_expect_eq "snapshot of a directory refused" $? 1
"$T" fsck >/dev/null || it_fail "fsck after snapshots and clones"
it_ok "fsck: shared chunks are not orphans"
