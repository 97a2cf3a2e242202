#!/usr/bin/env bash
# Install what the TypeScript SDK's tests need (tests/test_ts_sdk.py): Node.js 18+ and npm
# (Debian's `nodejs` and `npm` packages) when missing, then the SDK's locked dependencies
# (`npm ci` in clients/ts, only when package-lock.json changed since the last install).
# Needs root or sudo only to install Node: without them it says what to install and fails,
# so that the TypeScript tests fail clearly instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "install_node: need root or sudo to run: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { "${as_root[@]}" apt-get update >&2 && "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  echo "install_node: Node.js $(node --version) is too old; the SDK needs 18 or newer" >&2
  exit 1
fi
# npm ci again only when the lock file is newer than the last install. clients/pages: the
# console and viewer pages' build (tests/test_browser_pages.py checks their bundles).
for package in clients/ts clients/pages; do
  stamp=$package/node_modules/.package-lock.json
  if [ ! -e "$stamp" ] || [ $package/package-lock.json -nt "$stamp" ]; then
    (cd $package && npm ci --no-audit --no-fund >&2)
  fi
done
