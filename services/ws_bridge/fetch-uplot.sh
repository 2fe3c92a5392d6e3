#!/bin/sh
# Installs uPlot (the dashboard's chart library) from the npm registry: a pinned version whose tarball must match a
# pinned sha512, so nothing third-party is committed to the repository. Run by `make setup` and by the bridge's
# Dockerfile (build stage). Needs node + npm + tar.
#
#   sh services/ws_bridge/fetch-uplot.sh [DEST]
#
# DEST (default: services/ws_bridge/ws_bridge/static/vendor/uplot, ignored by git) receives uPlot.iife.min.js,
# uPlot.min.css and LICENSE; the bridge serves them at /static/vendor/uplot/. The tarball is cached in
# $IOTPIPE_CACHE/npm (default ~/.cache/iotpipe/npm). Fast (no network) when DEST already holds this version.
set -eu

VERSION=1.6.32
INTEGRITY=sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/ws_bridge/static/vendor/uplot}
cache=${IOTPIPE_CACHE:-$HOME/.cache/iotpipe}/npm
tarball=$cache/uplot-$VERSION.tgz

if [ -f "$dest/INTEGRITY" ] && [ "$(cat "$dest/INTEGRITY")" = "$INTEGRITY" ]; then
    exit 0
fi

sha512() {  # the npm "integrity" form of a file's digest: sha512-<base64>
    node -e 'const c = require("crypto"), fs = require("fs");
             process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"));' "$1"
}

mkdir -p "$cache"
if [ ! -f "$tarball" ] || [ "$(sha512 "$tarball")" != "$INTEGRITY" ]; then
    echo "uplot: npm pack uplot@$VERSION into $cache"
    rm -f "$tarball"
    (cd "$cache" && npm pack --silent --pack-destination "$cache" "uplot@$VERSION" >/dev/null)
fi
actual=$(sha512 "$tarball")
if [ "$actual" != "$INTEGRITY" ]; then
    rm -f "$tarball"
    echo "uplot: $tarball has integrity $actual, expected $INTEGRITY; refusing to install it" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work" package/LICENSE package/dist/uPlot.iife.min.js package/dist/uPlot.min.css
mkdir -p "$work/out"
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$work/out/"
printf '%s' "$INTEGRITY" > "$work/out/INTEGRITY"
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$work/out" "$dest"
chmod 755 "$dest"
echo "uplot: $VERSION installed in $dest"
