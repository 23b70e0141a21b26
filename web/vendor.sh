#!/usr/bin/env bash
# Copy the page's JavaScript libraries from the npm registry into the Python package, so that
# `pip install` ships them and `dial serve` needs neither npm nor a CDN at run time.
# Run after changing the pin in package.json (`npm install` updates package-lock.json first),
# then commit src/dial_core/app/static/vendor/. tests/test_static_page.py checks the copy
# matches the pin.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
dest=../src/dial_core/app/static/vendor/leaflet
rm -rf "$dest"
mkdir -p "$dest/images"
src=node_modules/leaflet
cp "$src/dist/leaflet.js" "$src/dist/leaflet.css" "$src/LICENSE" "$dest/"
cp "$src"/dist/images/*.png "$dest/images/"
echo "vendored leaflet $(node -p "require('./$src/package.json').version") into ${dest#../}"
