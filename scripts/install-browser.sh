#!/usr/bin/env bash
# The browser tests' set-up: Debian's headless Chromium and Firefox ESR (with libavcodec, which Firefox needs for
# H.264 and a normal install brings as a recommendation), playwright-core (Chromium) and puppeteer-core (Firefox,
# over WebDriver BiDi) from npm, pinned in tests/browser/package-lock.json. Idempotent; never downloads a browser
# build of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(chromium firefox-esr libavcodec59 fonts-dejavu-core)
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/firefox-esr ] || ! dpkg -s libavcodec59 >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # Refresh the package lists unless they were fetched in the last day.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
        $SUDO apt-get update -qq
    fi
    install() { $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; }
    install || { $SUDO apt-get update -qq && install; }  # lists that were fresh but already superseded
fi

cd tests/browser
# npm ci is exact and fast; skip it when node_modules already matches the lock file.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.install-stamp; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.install-stamp
fi
