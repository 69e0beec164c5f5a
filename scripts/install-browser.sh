#!/usr/bin/env bash
# Headless Chromium (Debian's package) and playwright-core (npm, pinned in tests/browser/package-lock.json)
# for the browser test. Idempotent; never downloads a browser build of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x /usr/bin/chromium ] || bash scripts/apt-install.sh chromium fonts-dejavu-core

cd tests/browser
# npm ci is exact and fast; skip it when node_modules already matches the lock file.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.install-stamp; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.install-stamp
fi
