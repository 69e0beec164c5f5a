#!/usr/bin/env bash
# Debian's PostgreSQL 15 for the store's tests (harness/postgres.py starts a throw-away server from it; the
# cluster Debian creates is not used). Idempotent.
set -euo pipefail
bash "$(dirname "$0")/apt-install.sh" postgresql-15
