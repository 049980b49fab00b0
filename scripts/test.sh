#!/usr/bin/env bash
# Installs everything the tests need (system packages, npm runtimes, Python extras), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()  # Debian packages the tests use that this machine lacks
command -v chromium >/dev/null || need+=(chromium)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v npm >/dev/null || need+=(nodejs npm)  # npm ci below fetches the browser runtimes (Node.js >= 18)
if ((${#need[@]})); then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python -m pip install -q -e ".[dev]"
npm ci --no-audit --no-fund --silent
python -m pytest "$@"
