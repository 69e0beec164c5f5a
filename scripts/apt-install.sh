#!/usr/bin/env bash
# Install those of the named Debian packages that are missing. Refreshes the package lists only when they are
# more than a day old, or when an install fails on lists already superseded; waits for another apt to finish.
# Idempotent: does nothing (and needs no root) when every package is installed.
set -euo pipefail

missing=()
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
APT=($SUDO apt-get -o DPkg::Lock::Timeout=600 -qq)
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]; then
    "${APT[@]}" update
fi
install() { "${APT[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; }
install || { "${APT[@]}" update && install; }
