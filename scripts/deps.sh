#!/bin/sh
# Installs the Debian packages vigil needs to build, test and benchmark, and
# the browser tests' npm packages (tests/ui, pinned by its lockfile).
# A no-op when everything is already present.
set -eu
cd "$(dirname "$0")/.."

# npm ci only when node_modules is missing or older than the lockfile.
npm_deps() {
    lock=tests/ui/package-lock.json
    have=tests/ui/node_modules/.package-lock.json
    if [ ! -e "$have" ] || [ "$lock" -nt "$have" ]; then
        echo "deps: npm ci in tests/ui"
        (cd tests/ui && npm ci --no-audit --no-fund)
    fi
}

PKGS="build-essential pkg-config
libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libzip-dev ffmpeg
libsqlite3-dev sqlite3 libinih-dev libjansson-dev check
libsodium-dev libmicrohttpd-dev libsystemd-dev nettle-dev
libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
python3
clang openssl wrk nginx-light minisign sox espeak-ng unzip gstreamer1.0-nice
chromium fonts-dejavu-core
libgstreamer-plugins-bad1.0-dev
python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# node and npm may come from another packaging than Debian's: any will do.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -z "$missing" ]; then
    npm_deps
    exit 0
fi

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
npm_deps
