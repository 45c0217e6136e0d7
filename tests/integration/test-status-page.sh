#!/usr/bin/env bash
# test-status-page.sh: metad's status page (--http) in a real browser.
#
# Starts metad and three chunkd with an image and a clone of it, then:
# /api/status carries the same document as `tessera status --json` (keys,
# servers; the shared disk counted once) and /api/images that of
# `tessera image list --json`; headless
# Chromium renders / and the DOM shows every storage server's address, the
# health figures and the images; chunkd3 is killed, and once metad counts
# it down the page shows it down and the cluster needing attention.  The
# rendered pages and a screenshot of the second are kept beside the log
# ($BUILD/tests/integration/test-status-page.*).
# Needs: $BUILD/bin/tessera-{metad,chunkd}, tessera, curl, chromium.
. "$(dirname "$0")/lib.sh"
it_need tessera-metad tessera-chunkd tessera curl chromium
out=${BUILD:-$it_root/build}/tests/integration
mkdir -p "$out"

ts_start_metad --suspect-ms 1000 --down-ms 2500 || it_fail "metad did not start"
for i in 1 2 3; do ts_start_chunkd "$i" || it_fail "chunkd$i did not start"; done
ts_wait_servers 3 15 || it_fail "servers did not come up"
web=http://$(ts_http_addr metad)
tessera() { "$TS_BIN/tessera" "$@"; }
tessera image create /base.img 64M >/dev/null || it_fail "image create"
tessera snapshot /base.img /base.snap >/dev/null || it_fail "snapshot"
tessera clone /base.snap /vm1.img >/dev/null || it_fail "clone"

# ---- The JSON endpoints are the CLI's documents ----------------------------
curl -sf -D "$IT_TMP/api.hdr" -o "$IT_TMP/api.json" "$web/api/status" ||
    it_fail "GET /api/status"
grep -qi '^Content-Type: application/json' "$IT_TMP/api.hdr" ||
    it_fail "/api/status: wrong content type"
tessera --json status >"$IT_TMP/cli.json" || it_fail "tessera status --json"
python3 - "$IT_TMP/api.json" "$IT_TMP/cli.json" <<'PY' || it_fail "/api/status differs from status --json"
import json, sys
api, cli = (json.load(open(f)) for f in sys.argv[1:])
assert set(api) == set(cli), set(api) ^ set(cli)
assert set(api["meta"]) == set(cli["meta"])
key = lambda s: (s["id"], s["addr"], s["state"], s["capacity"])
assert sorted(map(key, api["server_list"])) == sorted(map(key, cli["server_list"]))
assert api["healthy"] is True and api["servers.up"] == 3
# Three chunkd with their folders on one disk: its capacity counts once.
assert api["capacity.disks"] == 1, api["capacity.disks"]
assert api["capacity"] == api["server_list"][0]["capacity"]
PY
it_ok "/api/status is the document of tessera status --json"
curl -sf "$web/api/images" >"$IT_TMP/img-api.json" || it_fail "GET /api/images"
tessera --json image list >"$IT_TMP/img-cli.json" || it_fail "image list --json"
cmp -s "$IT_TMP/img-api.json" "$IT_TMP/img-cli.json" ||
    it_fail "/api/images differs from image list --json: $(diff "$IT_TMP/img-api.json" "$IT_TMP/img-cli.json")"
it_ok "/api/images is the document of tessera image list --json"

# render NAME [shot]: the DOM of / after its scripts ran, and with "shot"
# a screenshot.
render() {
    local args=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage
                --no-first-run --user-data-dir="$IT_TMP/chromium"
                --virtual-time-budget=4000 --window-size=1280,900)
    timeout 30 chromium "${args[@]}" --dump-dom "$web/" >"$out/test-status-page.$1.html" \
        2>>"$IT_TMP/chromium.log" || it_fail "chromium --dump-dom failed: $(tail -3 "$IT_TMP/chromium.log")"
    [ "${2:-}" = shot ] || return 0
    timeout 30 chromium "${args[@]}" --screenshot="$out/test-status-page.$1.png" "$web/" \
        >>"$IT_TMP/chromium.log" 2>&1 || it_fail "chromium --screenshot failed"
}

# server_row DOM ADDR: the text of the servers table row holding ADDR.
server_row() {
    python3 - "$1" "$2" <<'PY'
import re, sys
dom, addr = open(sys.argv[1]).read(), sys.argv[2]
body = dom.split('id="servers"', 1)[1].split("</table>", 1)[0]
for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
    cells = [re.sub(r"<[^>]*>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
    if addr in cells:
        print(" ".join(cells))
PY
}

# ---- The page renders every server and the health figures -------------------
render up
dom=$out/test-status-page.up.html
grep -q '<span id="health" class="ok">healthy</span>' "$dom" ||
    it_fail "page does not say healthy: $(grep -o '<span id="health"[^<]*' "$dom")"
for i in 1 2 3; do
    a="TS_CHUNK${i}_ADDR"
    row=$(server_row "$dom" "${!a}")
    [[ "$row" == *" up "* ]] || it_fail "chunkd$i (${!a}) not shown up: '$row'"
done
grep -q '<div class="v">3 / 3</div><div class="k">servers up</div>' "$dom" ||
    it_fail "page does not show 3 / 3 servers up"
grep -q '<div class="v">0</div><div class="k">chunks under goal</div>' "$dom" ||
    it_fail "page does not show chunks under goal"
for p in /base.img /base.snap /vm1.img; do
    grep -q "$p" "$dom" || it_fail "page does not list $p"
done
grep -q '>clone</td><td>/base.snap</td>' "$dom" || it_fail "page does not show the clone's parent"
it_ok "the page shows three servers up, the health figures and the image lineage"

# ---- A chunkd dies: the page shows it down ----------------------------------
ts_kill chunkd3 KILL
for ((i = 0; i < 100; i++)); do
    [ "$(it_json "j['servers.down']" status)" = 1 ] && break
    sleep 0.1
done
[ "$(it_json "j['servers.down']" status)" = 1 ] || it_fail "metad did not count chunkd3 down"
render down shot
dom=$out/test-status-page.down.html
row=$(server_row "$dom" "$TS_CHUNK3_ADDR")
[[ "$row" == *" down "* ]] || it_fail "chunkd3 not shown down: '$row'"
grep -q '<span id="health" class="bad">needs attention</span>' "$dom" ||
    it_fail "page does not say the cluster needs attention"
grep -q '1 of 3 storage servers not up' "$dom" || it_fail "page does not say why"
it_ok "the page shows chunkd3 down and the cluster needing attention"
