#!/bin/sh
# Installs the Debian packages vigil needs to build, test and benchmark.
# A no-op when every package is already present.
set -eu

PKGS="build-essential pkg-config
libavformat-dev libavcodec-dev libavutil-dev ffmpeg
libsqlite3-dev sqlite3 libinih-dev libjansson-dev check
libsodium-dev libmicrohttpd-dev libsystemd-dev nettle-dev
libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
python3
clang openssl wrk nginx-light"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# nginx (a benchmark peer) must not be started as a system service by its
# package scripts: tests start their own instances on free ports.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ "$(id -u)" -eq 0 ] && [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod 0755 "$POLICY" && ADDED_POLICY=1
fi
cleanup() { [ -n "$ADDED_POLICY" ] && rm -f "$POLICY"; return 0; }
trap cleanup EXIT
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
