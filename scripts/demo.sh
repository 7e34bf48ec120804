#!/usr/bin/env bash
# Sets the machine up and shows the pod network working in both modes: a lab cluster of
# network namespaces (nodes in two zones, pods wired by the real weft CNI plugin) first with
# etcd (flannel-style), then with no store at all (mesh, Weave-style), and every connectivity
# probe of each. The labs stay up to explore; `npx weft lab down --name demo` (and `meshdemo`) remove them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx weft lab down --name demo >/dev/null 2>&1 || true
npx weft lab down --name meshdemo >/dev/null 2>&1 || true
npx weft lab up --name demo --nodes 3 --pods-per-node 2 --store etcd
npx weft lab status --name demo
npx weft lab check --name demo
npx weft lab up --name meshdemo --nodes 3 --pods-per-node 2 --store mesh
npx weft lab check --name meshdemo
npx weft lab exec --name meshdemo n1 -- weft status
cat <<'MSG'

The labs "demo" (etcd mode) and "meshdemo" (mesh mode, no etcd) are still up. Try:
  npx weft lab exec --name demo n1-p1 -- ip addr
  npx weft lab check --name demo --json
  npx weft lab exec --name meshdemo n1 -- weft status ipam
  npx weft lab down --name demo; npx weft lab down --name meshdemo
MSG
