#!/usr/bin/env bash
# Install containerd + ctr and the Docker engine (dockerd, the docker CLI) from Debian for
# tests/clients/test_containerd.py, test_docker.py and test_docker_cli.py. Idempotent: installs
# only what is missing. The tests start private daemons themselves; nothing is enabled or started
# here (in a container, the packages' own service start is refused by policy-rc.d and that is fine).
# Takes about 25 s on a fresh machine (plus apt-get update).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=""
if ! command -v containerd >/dev/null 2>&1 || ! command -v ctr >/dev/null 2>&1; then
  missing="$missing containerd"
fi
# docker.io brings dockerd and a docker CLI; a docker CLI already on PATH is used as it is.
if ! command -v dockerd >/dev/null 2>&1; then
  missing="$missing docker.io"
fi
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
