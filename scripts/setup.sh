#!/usr/bin/env bash
# Sets up a Debian 12 machine (as root) to build, test and demo weft: the Debian packages the
# lab and the tests use, the project's npm packages (which bring Node 24 along), and the
# native pieces. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js and npm only bootstrap the project's own pinned Node 24; any version will do, so
# they are installed from Debian only when the machine has no npm at all.
command -v npm >/dev/null 2>&1 || extra="nodejs npm"
packages="${extra:-} $(grep -v '^\s*#' scripts/ci-apt-packages.txt | tr -s ' \n' ' ')"
missing=$(for p in $packages; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# npm ci installs the pinned Node 24 (the `node` package) next to everything else.
if [ ! -x node_modules/node/bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build:native
echo "setup: ready ($(node_modules/node/bin/node --version))"
