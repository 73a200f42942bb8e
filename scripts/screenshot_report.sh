#!/usr/bin/env bash
# Screenshot a report's index.html in headless Chromium, to look at it as a reader would.
# Usage: scripts/screenshot_report.sh [REPORT_DIR] [OUT_PNG] [HEIGHT]
# Needs the Debian package `chromium` (apt-get install -y chromium); runs as root, hence --no-sandbox.
set -euo pipefail
report_dir=$(realpath "${1:-attentionlite-report}")
out_png=$(realpath -m "${2:-report-screenshot.png}")
height=${3:-4000}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --screenshot="$out_png" \
  --window-size=1280,"$height" "file://$report_dir/index.html" 2>/dev/null
echo "$out_png"
