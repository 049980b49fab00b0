#!/usr/bin/env bash
# Installs everything the tests need (system packages, npm runtimes, Python extras), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v ffmpeg >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ffmpeg >/dev/null
fi
python -m pip install -q -e ".[dev]"
npm ci --no-audit --no-fund --silent
python -m pytest "$@"
