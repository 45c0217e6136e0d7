# lib-data.sh: a full cluster (metad, three chunkd, a mount) for data tests.
# Sourced after lib.sh.  Extra mount arguments may be given in MOUNT_ARGS,
# extra metad arguments in METAD_ARGS.
it_need tessera-metad tessera-chunkd tessera-mount tessera
# shellcheck disable=SC2086 # options and their values
ts_start_metad ${METAD_ARGS:-} || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd $i did not start"; done
ts_wait_servers 3 15 || it_fail "storage servers did not register"
# shellcheck disable=SC2086
ts_start_mount "$TS_MNT" ${MOUNT_ARGS:-} || it_fail "mount did not start"
