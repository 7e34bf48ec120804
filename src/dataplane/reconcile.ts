// The I/O half of a peer reconcile, shared by every backend: read the kernel's routes (and,
// for vxlan, the device's neighbours and FDB entries), plan and diff them with plan.ts, and
// apply the difference in ONE netlink batch. Never flushes: an in-sync kernel costs three
// dumps and no change.
import { fdbRequest, neighbourRequest, routeRequest, type NetlinkRequest, type Rtnetlink } from '../netlink/index.ts';
import type { LocalNode, Peer, ReconcileReport } from './backend.ts';
import { diff, ownedFdb, ownedRoutes, planPeers, RTPROT_WEFT, type Operation, type TunnelData } from './plan.ts';

export interface PeerReconcileOptions {
  mode: 'vxlan' | 'host-gw';
  directRouting: boolean;
  node: LocalNode;
  /** vxlan mode: our device's ifindex and VNI. */
  deviceIndex?: number;
  vni?: number;
  /** This node's lease subnet, once attached. */
  ownSubnet?: string;
  /** The cluster Network: no peer subnet outside it is routed (none at all without it); flanneld's protocol-boot routes inside it on the underlay are adopted. */
  network: string | undefined;
  /** vxlan mode: the backend's decoder of a peer's BackendData. */
  decodeTunnel?: (backendData: unknown) => TunnelData | string;
}

export function operationRequest(op: Operation): NetlinkRequest {
  switch (op.kind) {
    case 'route':
      if (op.action === 'replace') return routeRequest('replace', { ...op.route, protocol: RTPROT_WEFT });
      return routeRequest('delete', {
        dst: op.route.dst, gateway: op.route.gateway, oif: op.route.oif, priority: op.route.priority, table: op.route.table,
      });
    case 'neigh':
      return op.action === 'replace' ? neighbourRequest('replace', op.neigh) : neighbourRequest('delete', { ...op.neigh, mac: '' });
    case 'fdb':
      return fdbRequest(op.action, op.fdb);
  }
}

/** Reconciles the kernel with peers; see plan.ts for what is desired and what is ours. */
export function reconcilePeers(nl: Rtnetlink, peers: readonly Peer[], o: PeerReconcileOptions): ReconcileReport {
  const routes = nl.listRoutes({ family: 4 });
  const plan = planPeers(peers, {
    mode: o.mode,
    directRouting: o.directRouting,
    network: o.network,
    vni: o.vni,
    ...(o.decodeTunnel ? { decodeTunnel: o.decodeTunnel } : {}),
    deviceIndex: o.deviceIndex,
    underlayIndex: o.node.underlayIndex,
    underlayName: o.node.underlayInterface,
    publicIp: o.node.publicIp,
    ownSubnet: o.ownSubnet,
    routes,
  });
  const owned = ownedRoutes(routes, {
    deviceIndex: o.deviceIndex,
    underlayIndex: o.node.underlayIndex,
    network: o.network,
    desired: new Set(plan.desired.routes.keys()),
  });
  const device = o.deviceIndex;
  const ops = diff(plan.desired, {
    routes: owned,
    neighbours: device === undefined ? [] : nl.listNeighbours({ index: device, family: 4 }),
    fdb: device === undefined ? [] : ownedFdb(nl.listFdb({ index: device }), device),
  });
  const report: ReconcileReport = { changes: 0, paths: plan.paths, errors: plan.errors, warnings: plan.warnings };
  if (ops.length === 0) return report;
  const results = nl.batchSettled(ops.map(operationRequest));
  const firstSubnet = new Map(peers.map((p) => [p.id, p.subnets[0] ?? '']));
  results.forEach((error, i) => {
    const op = ops[i] as Operation;
    if (!error) {
      report.changes++;
      return;
    }
    if (report.paths.has(op.peer)) {
      const subnet = op.kind === 'route' ? op.route.dst : (firstSubnet.get(op.peer) ?? '');
      report.errors.push({ peer: op.peer, subnet, error: error.message });
      report.paths.set(op.peer, 'unreachable');
    } else {
      report.errors.push({ subnet: op.peer, error: error.message });
    }
  });
  return report;
}
