#!/bin/sh
# The browser UI's third-party files (web/ui/vendor/), from their npm
# packages, with their licences, pinned in web/ui/vendor/MANIFEST
# (name version file sha256).
#   scripts/vendor-ui.sh          fetch the pinned versions, copy, rewrite MANIFEST
#   scripts/vendor-ui.sh --check  verify every file against MANIFEST (offline)
# To upgrade, change a version below and run it without arguments.
set -eu
cd "$(dirname "$0")/.."
VENDOR=web/ui/vendor
MANIFEST=$VENDOR/MANIFEST

# package version: files inside the package to copy (renamed to name/basename)
PACKAGES="uplot 1.6.32 dist/uPlot.esm.js dist/uPlot.min.css LICENSE
hls.js 1.7.4 dist/hls.light.min.mjs LICENSE
wavesurfer.js 7.12.12 dist/wavesurfer.esm.js LICENSE"

if [ "${1:-}" = "--check" ]; then
    [ -f "$MANIFEST" ] || { echo "vendor-ui: $MANIFEST is missing"; exit 1; }
    bad=0
    n=0
    while read -r name version file sum; do
        case "$name" in ''|'#'*) continue ;; esac
        n=$((n + 1))
        got=$(sha256sum "$VENDOR/$file" 2>/dev/null | cut -d' ' -f1 || true)
        if [ "$got" != "$sum" ]; then
            echo "vendor-ui: $VENDOR/$file ($name $version) does not match MANIFEST"
            bad=1
        fi
    done < "$MANIFEST"
    [ "$bad" -eq 0 ] && echo "vendor-ui: $n vendored files match MANIFEST"
    exit "$bad"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# name version file sha256 (written by scripts/vendor-ui.sh)\n' > "$tmp/MANIFEST"
echo "$PACKAGES" | while read -r name version files; do
    [ -n "$name" ] || continue
    (cd "$tmp" && npm pack --silent "$name@$version" > /dev/null)
    mkdir -p "$tmp/$name"
    tar -xzf "$tmp/$name-$version.tgz" -C "$tmp/$name"
    rm -rf "${VENDOR:?}/$name"
    mkdir -p "$VENDOR/$name"
    for f in $files; do
        cp "$tmp/$name/package/$f" "$VENDOR/$name/"
        b=$(basename "$f")
        echo "$name $version $name/$b $(sha256sum "$VENDOR/$name/$b" | cut -d' ' -f1)" >> "$tmp/MANIFEST"
    done
done
cp "$tmp/MANIFEST" "$MANIFEST"
echo "vendor-ui: wrote $MANIFEST"
