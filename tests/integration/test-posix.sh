#!/usr/bin/env bash
# The POSIX behaviour suite (tests/integration/posix_suite.py) over a mount
# of a full cluster: errnos, link counts, rename cases, permissions with
# ordinary users, timestamps, xattrs, large directories.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera-mount tessera python3

ts_start_metad || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd $i || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "servers did not register"
ts_start_mount "$TS_MNT" -o allow_other || it_fail "mount did not start"

mkdir "$TS_MNT/suite" && chmod 0777 "$TS_MNT/suite"
python3 "$it_root/tests/integration/posix_suite.py" "$TS_MNT/suite"
