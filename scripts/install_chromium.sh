#!/usr/bin/env bash
# Install headless Chromium, a Chinese font and an emoji font (Debian packages `chromium`,
# `fonts-noto-cjk`, `fonts-noto-color-emoji`: the console and viewer pages show emoji)
# when they are missing. tests/test_report_render.py and tests/test_browser_pages.py run it
# before they drive the browser; CI can run it ahead. Needs root or sudo: without them it says what to install
# and fails, so that the render test fails clearly instead of skipping.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/share/fonts/opentype/noto/NotoSansCJK* >/dev/null 2>&1 || missing+=(fonts-noto-cjk)
ls /usr/share/fonts/truetype/noto/NotoColorEmoji* >/dev/null 2>&1 || missing+=(fonts-noto-color-emoji)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install_chromium: need root or sudo to run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
  || { "${as_root[@]}" apt-get update >&2 && "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
