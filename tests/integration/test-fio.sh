#!/usr/bin/env bash
# fio with crc32c verification on the mount: sequential and random writes
# by several jobs, every block read back and checked.
. "$(dirname "$0")/lib.sh"
it_need fio
. "$(dirname "$0")/lib-data.sh"

common=(--directory="$TS_MNT" --ioengine=psync --verify=crc32c --verify_state_save=0
        --verify_fatal=1 --do_verify=1 --group_reporting --output-format=terse)
fio --name=seq --rw=write --bs=1M --size=96M --numjobs=2 "${common[@]}" \
    >"$IT_TMP/fio-seq" || it_fail "sequential write+verify failed"
it_ok "sequential 1 MiB writes by 2 jobs verify"
fio --name=rand --rw=randwrite --bs=4k --size=16M --numjobs=3 \
    --randrepeat=0 "${common[@]}" >"$IT_TMP/fio-rand" ||
    it_fail "random write+verify failed"
it_ok "random 4 KiB writes by 3 jobs verify"
fio --name=mixed --rw=randrw --bs=64k --size=32M --numjobs=2 \
    --verify_backlog=64 "${common[@]}" >"$IT_TMP/fio-mixed" ||
    it_fail "mixed random read/write+verify failed"
it_ok "mixed 64 KiB random read/write verify"
