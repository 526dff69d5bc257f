#!/usr/bin/env bash
# Install the pages' npm packages (package-lock.json) and copy the NHS.UK frontend's built CSS,
# JS and assets into web/static/vendor/ (git-ignored: built here, never committed).
# axe-core stays in node_modules/, where the browser tests read it.
# The service runs without this step (pages render unstyled, the API is unaffected).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "[build-assets] npm is not installed (Debian package: npm)" >&2
  exit 1
fi
# npm ci installs exactly the lock file; without one, npm install makes it (without registry
# addresses in it: npm ci resolves against whichever registry npm is configured for).
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error --omit-lockfile-registry-resolved
fi

src=node_modules/nhsuk-frontend/dist/nhsuk
dest=web/static/vendor/nhsuk
for f in nhsuk-frontend.min.css nhsuk-frontend.min.js nhsuk-frontend.min.js.map; do
  [ -f "$src/$f" ] || { echo "[build-assets] $src/$f is missing: has nhsuk-frontend changed its layout?" >&2; exit 1; }
done
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cp "$src/nhsuk-frontend.min.css" "$src/nhsuk-frontend.min.js" "$src/nhsuk-frontend.min.js.map" "$dest.tmp/"
cp -R "$src/assets" "$dest.tmp/assets"
# Swap in whole, so a running server never serves half a copy.
rm -rf "$dest"
mv "$dest.tmp" "$dest"
version=$(node -p "require('./node_modules/nhsuk-frontend/package.json').version")
echo "[build-assets] nhsuk-frontend $version copied to $dest"
