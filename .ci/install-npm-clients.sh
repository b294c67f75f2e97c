#!/usr/bin/env bash
# Install the npm registry clients that tests/clients/test_npm.py drives
# (@sigstore/oci, @snyk/docker-registry-v2-client) into tests/clients/npm/node_modules,
# exactly as pinned by tests/clients/npm/package-lock.json.
# Idempotent: does nothing when node_modules is already there and not older than the lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=tests/clients/npm

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-npm-clients: node/npm not on PATH; the npm client tests will be skipped" >&2
  exit 0
fi

installed="$dir/node_modules/.package-lock.json"
if [ -f "$installed" ] && [ ! "$dir/package-lock.json" -nt "$installed" ]; then
  exit 0
fi
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
