#!/usr/bin/env bash
# Install podman and buildah from Debian for tests/clients/test_podman.py, test_buildah.py and
# test_tls.py. Idempotent: installs only what is missing. Neither tool has a daemon; the tests
# run them as root with vfs storage and a private configuration in a temporary directory, so
# nothing under /etc/containers is written or needed here.
# Takes about 30 s on a fresh machine (apt-get update included).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

missing=""
for tool in podman buildah; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
