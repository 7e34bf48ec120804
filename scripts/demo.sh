#!/usr/bin/env bash
# Sets the machine up and shows the pod network working in both modes: a lab cluster of
# network namespaces (nodes in two zones, pods wired by the real weft CNI plugin) first with
# etcd (flannel-style), then with the kube store (subnets claimed through a Kubernetes API:
# here weft's stand-in API server, not Kubernetes), then with no store at all (mesh,
# Weave-style), and every connectivity probe of each; then an etcd lab on the fast data path
# (routed pod links and the tc-eBPF fast path; `lab check` pings, which take the normal path, and
# `weft status` shows where the programs are attached and what they redirected).
# The labs stay up to explore; `npx weft lab down --name demo` (and `kubedemo`, `meshdemo`,
# `fastdemo`) remove them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
npx weft lab down --name demo >/dev/null 2>&1 || true
npx weft lab down --name kubedemo >/dev/null 2>&1 || true
npx weft lab down --name meshdemo >/dev/null 2>&1 || true
npx weft lab down --name fastdemo >/dev/null 2>&1 || true
npx weft lab up --name demo --nodes 3 --pods-per-node 2 --store etcd
npx weft lab status --name demo
npx weft lab check --name demo
npx weft lab up --name kubedemo --nodes 3 --pods-per-node 2 --store kube
npx weft lab check --name kubedemo
npx weft lab exec --name kubedemo n1 -- weft status
npx weft lab up --name meshdemo --nodes 3 --pods-per-node 2 --store mesh
npx weft lab check --name meshdemo
npx weft lab exec --name meshdemo n1 -- weft status
npx weft lab up --name fastdemo --nodes 3 --pods-per-node 2 --store etcd --backend host-gw --pod-link routed --fast-path ebpf
npx weft lab check --name fastdemo
npx weft lab exec --name fastdemo n1 -- weft status
cat <<'MSG'

The labs "demo" (etcd mode), "kubedemo" (kube store), "meshdemo" (mesh mode, no etcd) and
"fastdemo" (routed pod links with the eBPF fast path) are still up. Try:
  npx weft lab exec --name demo n1-p1 -- ip addr
  npx weft lab check --name demo --json
  npx weft lab exec --name meshdemo n1 -- weft status ipam
  npx weft manifests --mode kube      # what `kubectl apply` would install on a cluster
  npx weft lab exec --name fastdemo n1 -- weft status --json    # .fastPath.stats: what it redirected
  npx weft lab down --name demo; npx weft lab down --name kubedemo; npx weft lab down --name meshdemo; npx weft lab down --name fastdemo
MSG
