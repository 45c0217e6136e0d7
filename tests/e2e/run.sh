#!/usr/bin/env bash
# run.sh: the slow end-to-end test (`make e2e`, not part of `make test`).
#
# A small Debian bookworm guest boots under qemu-system-x86_64 (TCG) from a
# disk image stored in Tessera and served by tessera-nbd, runs a write
# workload with fsync, and carries on while one storage server is killed
# with SIGKILL.  In order:
#
#   1. installs what is missing (apt-get, as root): debootstrap,
#      qemu-system-x86, qemu-utils, e2fsprogs, libnbd-bin, fuse3;
#   2. builds the guest once under $BUILD/e2e-cache (build-guest.sh:
#      debootstrap, kernel + initramfs from the chroot, 1 GiB ext4 image
#      with guest-init as its init);
#   3. starts metad, four chunkd, a mount and tessera-nbd with the launcher
#      (scripts/cluster.sh), copies the image to /images/guest.img (goal 3)
#      through the mount, and boots the guest from
#      nbd://ADDR/images/guest.img;
#   4. once the guest has written a few files, kill -9 of the storage
#      server holding most of the image's chunks; the guest must go on
#      writing, finish (E2E-WORKLOAD-OK) and power off, with no I/O or
#      file-system error on its console;
#   5. copies the image out with nbdcopy, checks it with e2fsck -fn,
#      compares every file the guest wrote (debugfs) with the checksum the
#      guest printed, and the image read through the mount with the copy;
#      then reports (without failing) when the goal is restored.
#
# The guest boots with loglevel=5: warnings and errors still reach the
# console, but routine kernel messages do not cut into its report lines.
#
# Everything after the guest build is bounded by E2E_TIMEOUT seconds
# (default 900).  Other knobs: E2E_FILES (files the guest writes, default
# 48), E2E_MB (MiB each, default 4), E2E_KILL_AFTER (files written before
# the kill, default 6), E2E_KEEP=1 keeps the temp folder.
#
# The last line is "e2e: PASS" or "e2e: FAIL <why>"; exit status 0 or 1.
set -u
set -o pipefail

e2e_dir=$(cd "$(dirname "$0")" && pwd)
e2e_root=$(cd "$e2e_dir/../.." && pwd)
BUILD=${BUILD:-$e2e_root/build}
export BUILD
. "$e2e_root/scripts/cluster.sh"

E2E_TIMEOUT=${E2E_TIMEOUT:-900}
E2E_FILES=${E2E_FILES:-48}
E2E_MB=${E2E_MB:-4}
E2E_KILL_AFTER=${E2E_KILL_AFTER:-6}
cache=$BUILD/e2e-cache
image=/images/guest.img

tmp=
qemu_pid=
e2e_why=

say() { echo "e2e: $*"; }

# ms: milliseconds since the epoch; secs MS: MS as seconds, one decimal.
ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

# fail WHY: stop here; the exit trap cleans up and prints the summary.
fail() {
    e2e_why=$*
    exit 1
}

cleanup() {
    local rc=$? f
    trap - EXIT INT TERM
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -TERM "$qemu_pid" 2>/dev/null
        sleep 1
        kill -KILL "$qemu_pid" 2>/dev/null
        wait "$qemu_pid" 2>/dev/null
    fi
    if [ -n "${TS_DIR:-}" ]; then
        ts_stop_all 2>/dev/null
    fi
    if [ "$rc" -ne 0 ] && [ -n "$tmp" ]; then
        [ -f "$tmp/console.log" ] && {
            echo "---- guest console (last 30 lines)"
            tail -n 30 "$tmp/console.log"
        }
        for f in "$tmp"/cluster/logs/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 15 lines)"
            tail -n 15 "$f"
        done
    fi
    if [ -n "$tmp" ]; then
        if [ "${E2E_KEEP:-0}" = 1 ]; then
            say "kept $tmp"
        else
            rm -rf "$tmp"
        fi
    fi
    if [ "$rc" -eq 0 ]; then
        echo "e2e: PASS"
    else
        echo "e2e: FAIL ${e2e_why:-exit status $rc}"
        rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'e2e_why="interrupted"; exit 1' INT TERM

# ---- 1. tools ----------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || fail "must run as root (apt-get, debootstrap, FUSE)"

# command:package, what the test runs and the Debian package that has it.
need=(debootstrap:debootstrap qemu-system-x86_64:qemu-system-x86
      qemu-img:qemu-utils mkfs.ext4:e2fsprogs e2fsck:e2fsprogs
      debugfs:e2fsprogs nbdcopy:libnbd-bin nbdinfo:libnbd-bin
      fusermount3:fuse3 python3:python3 mountpoint:util-linux)
missing=()
for p in "${need[@]}"; do
    command -v "${p%%:*}" >/dev/null 2>&1 && continue
    case " ${missing[*]-} " in *" ${p##*:} "*) ;; *) missing+=("${p##*:}") ;; esac
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >/dev/null || fail "apt-get install ${missing[*]} failed"
fi
[ -e /dev/fuse ] || fail "/dev/fuse missing"
for b in tessera-metad tessera-chunkd tessera-mount tessera-nbd tessera; do
    ts_have "$b" || fail "$TS_BIN/$b not built (make BUILD=$BUILD all)"
done

# ---- 2. the guest ------------------------------------------------------------
t0=$SECONDS
"$e2e_dir/build-guest.sh" "$cache" || fail "could not build the guest image"
t_build=$((SECONDS - t0))
for f in vmlinuz initrd.img guest.img; do
    [ -s "$cache/$f" ] || fail "$cache/$f missing after the guest build"
done
say "guest ready in $t_build s (cache: $cache)"

# From here on everything is bounded by E2E_TIMEOUT.
deadline=$((SECONDS + E2E_TIMEOUT))
left() { echo $((deadline - SECONDS)); }
check_time() { [ "$(left)" -gt 0 ] || fail "timeout (E2E_TIMEOUT=$E2E_TIMEOUT s) $*"; }

tmp=$(mktemp -d /tmp/tessera-e2e.XXXXXX)
console=$tmp/console.log

# ---- 3. cluster, image, guest ------------------------------------------------
ts_cluster_init "$tmp/cluster" 0
T() { "$TS_BIN/tessera" --meta "$TS_META_ADDR" "$@"; }
json() { # json EXPR ARGS...: EXPR over tessera --json ARGS (as j)
    local expr=$1
    shift
    T --json "$@" 2>/dev/null |
        python3 -c "import json,sys; j=json.load(sys.stdin); print($expr)" 2>/dev/null
}

ts_start_metad --suspect-ms 1500 --down-ms 5000 || fail "metad did not start"
for i in 1 2 3 4; do
    ts_start_chunkd "$i" || fail "chunkd $i did not start"
done
ts_wait_servers 4 15 || fail "the storage servers did not register"
ts_start_mount || fail "the mount did not start"
mkdir -p "$TS_MNT/images" || fail "mkdir $TS_MNT/images"
T setgoal 3 /images >/dev/null || fail "setgoal 3 /images"

t0=$SECONDS
timeout "$(left)" cp --sparse=always "$cache/guest.img" "$TS_MNT$image" ||
    fail "copying the image into Tessera failed or timed out"
timeout "$(left)" python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' \
    "$TS_MNT$image" || fail "fsync of $image failed"
t_copy=$((SECONDS - t0))
say "image copied into Tessera through the mount in $t_copy s" \
    "($(du -h "$cache/guest.img" | cut -f1) allocated of $(du -h --apparent-size "$cache/guest.img" | cut -f1))"

ts_start_nbd || fail "tessera-nbd did not start"
uri=nbd://$TS_NBD_ADDR$image
size=$(timeout 30 nbdinfo --size "$uri" 2>"$tmp/nbdinfo.err") ||
    fail "tessera-nbd does not serve $image: $(head -c 300 "$tmp/nbdinfo.err")"
[ "$size" = "$(stat -c %s "$cache/guest.img")" ] ||
    fail "tessera-nbd reports $size bytes for $image, want $(stat -c %s "$cache/guest.img")"

# The storage server with most replicas of the image's chunks (chunkd2 if
# that cannot be told).
held="__import__('collections').Counter(r['server'] for c in j['chunks'] for r in c['replicas'])"
victim=$(json "$held.most_common(1)[0][0]" fileinfo "$image")
victim_addr=$(json "[s['addr'] for s in j['server_list'] if s['id']==${victim:-0}][0]" status)
vi=2
for i in 1 2 3 4; do
    a=TS_CHUNK${i}_ADDR
    [ -n "$victim_addr" ] && [ "${!a}" = "$victim_addr" ] && vi=$i
done
nchunks=$(json "len(j['chunks'])" fileinfo "$image")
nheld=$(json "${held}[${victim:-0}]" fileinfo "$image")
say "victim: chunkd$vi (holds ${nheld:-?} of the image's ${nchunks:-?} chunks)"

count() { grep -c "$1" "$console" 2>/dev/null || true; }

say "booting the guest from $uri (TCG, $E2E_FILES files of $E2E_MB MiB)"
: >"$console"
qemu-system-x86_64 -accel tcg -m 1024 -smp 1 -display none -monitor none \
    -no-reboot -nic none -serial "file:$console" \
    -kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 loglevel=5 init=/sbin/e2e-init panic=1 e2e.files=$E2E_FILES e2e.mb=$E2E_MB" \
    -drive "file=$uri,format=raw,if=virtio,cache=none" \
    </dev/null >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!
t_qemu=$SECONDS

guest_running() { kill -0 "$qemu_pid" 2>/dev/null; }
guest_failed() {
    local l
    l=$(grep -m1 'E2E-WORKLOAD-FAIL' "$console" | tr -d '\r')
    [ -z "$l" ] || fail "guest: ${l#E2E-WORKLOAD-FAIL }"
}

# wait_for PATTERN N WHAT: until the console has N lines matching PATTERN.
wait_for() {
    while [ "$(count "$1")" -lt "$2" ]; do
        guest_failed
        guest_running || fail "qemu exited before $3 ($(head -c 300 "$tmp/qemu.out"))"
        check_time "before $3"
        sleep 0.2
    done
}

wait_for E2E-WORKLOAD-START 1 "the guest booted"
t_boot=$((SECONDS - t_qemu))
t_work0=$SECONDS
say "guest booted in $t_boot s; workload running"

# ---- 4. kill -9 of a storage server under the workload -----------------------
wait_for '^E2E-FILE ' "$E2E_KILL_AFTER" "$E2E_KILL_AFTER files were written"
k0=$(count '^E2E-FILE ')
# (The shell's "Killed" job notice is not news here.)
{ ts_kill "chunkd$vi" KILL; } 2>/dev/null
t_kill=$SECONDS
ms_kill=$(ms)
say "killed chunkd$vi (kill -9) after $k0 files"
wait_for '^E2E-FILE ' $((k0 + 1)) "a file was written after the kill"
t_failover=$(secs $(($(ms) - ms_kill)))
say "the guest finished its next file $t_failover s after the kill"

wait_for E2E-WORKLOAD-OK 1 "the workload finished"
t_work=$((SECONDS - t_work0))
k1=$(count '^E2E-FILE ')
say "workload done in $t_work s: $k1 files, $((k1 - k0)) after the kill"
[ "$k1" -eq "$E2E_FILES" ] || fail "the guest reported $k1 files, want $E2E_FILES"
while guest_running; do
    check_time "waiting for the guest to power off"
    sleep 0.2
done
wait "$qemu_pid"
qrc=$?
qemu_pid=
[ $qrc -eq 0 ] || fail "qemu exited with status $qrc"
say "guest powered off $((SECONDS - t_qemu)) s after it was started"

errs=$(tr -d '\r' <"$console" | grep -E 'I/O error|Buffer I/O|EXT4-fs error|EXT4-fs warning|blk_update_request|Aborting journal|Remounting filesystem read-only|Kernel panic|BUG:|Call Trace')
[ -z "$errs" ] || fail "errors on the guest console: $(echo "$errs" | head -3 | tr '\n' ' ')"
grep -q '^E2E-VERIFY-OK ' "$console" || fail "the guest did not read its files back"

# ---- 5. the image from outside -----------------------------------------------
t0=$SECONDS
timeout "$(left)" nbdcopy "$uri" "$tmp/after.img" 2>"$tmp/nbdcopy.err" ||
    fail "nbdcopy of $image failed: $(head -c 300 "$tmp/nbdcopy.err")"
say "image copied out with nbdcopy in $((SECONDS - t0)) s"
e2fsck -fn "$tmp/after.img" >"$tmp/e2fsck.out" 2>&1 ||
    fail "e2fsck -fn found problems: $(tail -3 "$tmp/e2fsck.out" | tr '\n' ' ')"
say "e2fsck -fn: clean ($(tail -1 "$tmp/e2fsck.out"))"

bad=0
while read -r _ i sum; do
    got=$(debugfs -R "cat /e2e/f$i" "$tmp/after.img" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$got" != "$sum" ]; then
        bad=$((bad + 1))
        say "/e2e/f$i: checksum $got, the guest wrote $sum"
    fi
done < <(grep '^E2E-FILE ' "$console" | tr -d '\r')
[ $bad -eq 0 ] || fail "$bad of $k1 files differ from what the guest wrote"
say "all $k1 files match the guest's checksums"

# The mount is another client: once the host's page cache is dropped it
# must read what the guest wrote through tessera-nbd.
sync
echo 3 >/proc/sys/vm/drop_caches
timeout "$(left)" cmp "$TS_MNT$image" "$tmp/after.img" >"$tmp/cmp.out" 2>&1 ||
    fail "the image read through the mount differs from nbdcopy's: $(head -c 200 "$tmp/cmp.out")"
say "the image reads the same through the mount"

# The goal is restored on the three servers left (informational).
t0=$SECONDS
under=
while [ $((SECONDS - t0)) -lt 60 ] && [ "$(left)" -gt 0 ]; do
    under=$(json "j.get('chunks.under_goal', '')" status)
    [ "$under" = 0 ] && break
    sleep 1
done
if [ "$under" = 0 ]; then
    say "replication goal restored (no chunk under goal) $((SECONDS - t_kill)) s after the kill"
else
    say "note: ${under:-?} chunks still under goal 60 s after the guest finished"
fi

say "times: guest build $t_build s (0 when cached), copy in $t_copy s, boot $t_boot s," \
    "workload $t_work s, failover $t_failover s, total $SECONDS s"
exit 0
