#!/bin/sh
# make-bench-media.sh OUT.mp4 [SECONDS]
#
# Creates the benchmark source clip that `camsim --bench-file` serves: 1920x1080,
# 25 fps, H.264 at ~4 Mbit/s (capped so the rate is close to constant, like a real
# camera), a keyframe every 2 s, no audio, moov atom up front. Does nothing if OUT
# already exists, so benchmark runs can call it unconditionally.
set -eu

usage() {
	echo "usage: $0 OUT.mp4 [SECONDS]" >&2
	exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	usage
fi
out=$1
secs=${2:-75}
case $secs in
'' | *[!0-9]*) usage ;;
esac

if [ -e "$out" ]; then
	exit 0
fi

command -v ffmpeg >/dev/null 2>&1 || {
	echo "$0: ffmpeg not found" >&2
	exit 1
}

# Write next to the target and rename, so an interrupted run never leaves a
# truncated file that a later run would take as done. The temp name keeps the
# .mp4 suffix because ffmpeg picks the muxer from it.
dir=$(dirname -- "$out")
base=$(basename -- "$out")
tmp="$dir/.$base.$$.tmp.mp4"
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# -sc_threshold 0 and keyint_min = g keep the GOP fixed at 50 frames (2 s), as
# most IP cameras do; maxrate/bufsize keep the bitrate near 4 Mbit/s.
ffmpeg -nostdin -hide_banner -loglevel error -y \
	-f lavfi -i "testsrc2=size=1920x1080:rate=25" \
	-t "$secs" -an \
	-c:v libx264 -preset veryfast -b:v 4M -maxrate 4M -bufsize 8M \
	-g 50 -keyint_min 50 -sc_threshold 0 -pix_fmt yuv420p \
	-movflags +faststart \
	"$tmp"

mv -f -- "$tmp" "$out"
trap - EXIT
