#!/usr/bin/env bash
# Debian's HAProxy, the load balancer in front of several servers (deploy/haproxy.cfg); the cluster test starts
# its own from it (harness/cluster.py), Debian's service is not used. Idempotent.
set -euo pipefail
bash "$(dirname "$0")/apt-install.sh" haproxy
