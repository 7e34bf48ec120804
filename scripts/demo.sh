#!/usr/bin/env bash
# Sets the machine up and shows the pod network working: a lab cluster of network
# namespaces (nodes in two zones, pods wired by the real weft CNI plugin), then every
# connectivity probe. The lab stays up to explore; `npx weft lab down --name demo` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx weft lab down --name demo >/dev/null 2>&1 || true
npx weft lab up --name demo --nodes 3 --pods-per-node 2 --store etcd
npx weft lab status --name demo
npx weft lab check --name demo
cat <<'MSG'

The lab "demo" is still up. Try:
  npx weft lab exec --name demo n1-p1 -- ip addr
  npx weft lab check --name demo --json
  npx weft lab down --name demo
MSG
