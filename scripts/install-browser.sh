#!/usr/bin/env bash
# The browser tests' set-up: Debian's headless Chromium and Firefox ESR (with libavcodec, which Firefox needs for
# H.264 and a normal install brings as a recommendation), playwright-core (Chromium) and puppeteer-core (Firefox,
# over WebDriver BiDi) from npm, pinned in tests/browser/package-lock.json. Idempotent; never downloads a browser
# build of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/apt-install.sh chromium firefox-esr libavcodec59 fonts-dejavu-core

cd tests/browser
# npm ci is exact and fast; skip it when node_modules already matches the lock file.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.install-stamp; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.install-stamp
fi
