#!/usr/bin/env bash
# The page's npm dependency (uPlot, for the end-of-session report), pinned in web/package-lock.json, into
# web/node_modules, which the server serves under /static. Needs node and npm (Debian's, installed when missing).
# Idempotent: skips npm when node_modules already matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v npm >/dev/null || bash scripts/apt-install.sh nodejs npm

cd web
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.install-stamp; then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.install-stamp
fi
