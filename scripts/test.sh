#!/usr/bin/env bash
# Sets the machine up (scripts/setup.sh) and runs every test: type check, lint, unit tests,
# and the end-to-end tests on real kernel networking (root; each in its own namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec npm test
