#!/bin/sh
# make demo: starts the camera simulator and a vigild recording it, then
# shows what is being recorded. Ctrl-C stops both.
set -eu
BUILD=${1:-build}
DEMO=${DEMO_DIR:-$(mktemp -d /tmp/vigil-demo.XXXXXX)}
mkdir -p "$DEMO/data"

"$BUILD/camsim" --port 0 > "$DEMO/camsim.out" 2> "$DEMO/camsim.log" &
CAMSIM=$!
VIGILD=""
cleanup() {
    trap - EXIT INT TERM
    [ -n "$VIGILD" ] && kill -TERM "$VIGILD" 2>/dev/null && wait "$VIGILD" 2>/dev/null
    kill -TERM "$CAMSIM" 2>/dev/null || true
    wait "$CAMSIM" 2>/dev/null || true
    echo "demo stopped; recordings kept in $DEMO/data"
}
trap cleanup EXIT INT TERM

i=0
until grep -q '^READY' "$DEMO/camsim.out"; do
    i=$((i + 1))
    [ $i -gt 100 ] && { echo "camera simulator did not start" >&2; exit 1; }
    sleep 0.1
done
PORT=$(sed -n 's/^READY port=//p' "$DEMO/camsim.out")
# A free port for the HTTP API (8080 may be taken on a developer's machine).
HTTP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat > "$DEMO/vigil.conf" <<CONF
[server]
data_dir = $DEMO/data
log_level = info
http_listen = 127.0.0.1:$HTTP_PORT
ui_dir = $(pwd)/web/ui
[archive]
segment_seconds = 10
[source hall-1]
url = rtsp://127.0.0.1:$PORT/h264
kind = video
[source hall-2]
url = rtsp://127.0.0.1:$PORT/cam-g711
kind = video
[source line-1]
url = rtsp://127.0.0.1:$PORT/line-pcma
kind = audio
CONF

"$BUILD/vigild" -c "$DEMO/vigil.conf" 2> "$DEMO/vigild.log" &
VIGILD=$!
echo "demo-password-1" | "$BUILD/vigilctl" -c "$DEMO/vigil.conf" user add admin --role admin \
    >/dev/null
cat <<MSG
vigil demo is recording 3 sources from the camera simulator (rtsp://127.0.0.1:$PORT/).
  browser: http://127.0.0.1:$HTTP_PORT/  (user admin, password demo-password-1)
  config:  $DEMO/vigil.conf
  index:   $DEMO/data/index.db
  media:   $DEMO/data/media/
  log:     $DEMO/vigild.log
Try, in another shell:
  $BUILD/vigilctl -c $DEMO/vigil.conf segments hall-1
  $BUILD/vigilctl -c $DEMO/vigil.conf check --deep
  $BUILD/vigilctl -c $DEMO/vigil.conf export hall-1 --from \$(( \$(date +%s) - 25 )) --to \$(( \$(date +%s) - 5 )) -o /tmp/clip.mp4
  $BUILD/vigilctl -c $DEMO/vigil.conf status
  curl -c /tmp/vigil-demo-cookie -H 'Content-Type: application/json' \\
       -d '{"user":"admin","password":"demo-password-1"}' http://127.0.0.1:$HTTP_PORT/api/v1/login
  curl -b /tmp/vigil-demo-cookie http://127.0.0.1:$HTTP_PORT/api/v1/sources
  curl http://127.0.0.1:$HTTP_PORT/metrics
Press Ctrl-C to stop.
MSG
while kill -0 "$VIGILD" 2>/dev/null; do
    sleep 10
    "$BUILD/vigilctl" -c "$DEMO/vigil.conf" segments hall-1 2>/dev/null | tail -n 1 || true
done
