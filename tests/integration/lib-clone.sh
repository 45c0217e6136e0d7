# lib-clone.sh: the cluster and helpers of the clone tests (test-clone.sh,
# test-clone-writes.sh).  Sourced after lib.sh: starts metad, three chunkd
# (goal 3), a mount and tessera-nbd; W/NAME holds what image /NAME must
# hold.  Exits 77 without nbdcopy, qemu-io, python3, /dev/fuse or root
# (drop_caches).
it_need tessera-nbd nbdcopy qemu-io python3 sha256sum fusermount3 mountpoint dd
[ -e /dev/fuse ] || { echo "skip: /dev/fuse missing"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root to drop caches"; exit 77; }
. "$(dirname "${BASH_SOURCE[0]}")/lib-data.sh"
ts_start_nbd || it_fail "tessera-nbd did not start"

T="$TS_BIN/tessera"
MIB=$((1 << 20))
SIZE=$((140 * MIB)) # three chunk slots: 64 + 64 + 12 MiB
W=$IT_TMP/want      # W/NAME: what image /NAME must hold
mkdir "$W"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
nbd_url() { echo "nbd://$TS_NBD_ADDR/$1"; }

# check NAME...: each image reads as W/NAME over NBD and through the mount
# (over NBD only with CHECK_MOUNT=0).
check() {
    local n want
    drop_caches
    for n in "$@"; do
        want=$(it_sha256 <"$W/$n")
        it_expect_eq "$n over NBD" "$(nbdcopy "$(nbd_url "$n")" - | it_sha256)" "$want"
        [ "${CHECK_MOUNT:-1}" = 0 ] ||
            it_expect_eq "$n through the mount" "$(it_sha256 <"$TS_MNT/$n")" "$want"
    done
}

# nbd_patch NAME OFF LEN: the same random bytes into image NAME (over NBD,
# with qemu-io) and into W/NAME.
nbd_patch() { it_nbd_patch "$(nbd_url "$1")" "$W/$1" "$2" "$3"; }

# mnt_patch NAME OFF LEN: the same through the mount (dd, fsync).
mnt_patch() {
    head -c "$3" /dev/urandom >"$IT_TMP/piece"
    dd if="$IT_TMP/piece" of="$TS_MNT/$1" bs="$3" seek="$2" oflag=seek_bytes \
        conv=notrunc,fsync status=none || it_fail "dd into $1 at $2"
    dd if="$IT_TMP/piece" of="$W/$1" bs="$3" seek="$2" oflag=seek_bytes \
        conv=notrunc status=none
}

# snap|clone SRC DST: the CLI verb, and DST's expected bytes are SRC's.
snap() { "$T" snapshot "/$1" "/$2" >/dev/null || it_fail "snapshot /$1 /$2"; cp "$W/$1" "$W/$2"; }
clone() { "$T" clone "/$1" "/$2" >/dev/null || it_fail "clone /$1 /$2"; cp "$W/$1" "$W/$2"; }
