// The I/O half of a peer reconcile, shared by every backend: read the kernel's routes (and,
// for vxlan, the device's neighbours and FDB entries), plan and diff them with plan.ts, and
// apply the difference as netlink batches. Never flushes: an in-sync kernel costs three dumps
// and no change.
//
// Netlink calls are synchronous, and the agent has one JavaScript thread that also serves CNI
// ADDs, status and health: 5,000 vxlan peers are 15,000 requests, about half a second of
// blocked event loop in one piece. So the pass is cut in slices of at most `sliceSize` units of
// work (netlink requests applied, peers planned), with a yield to the event loop (setImmediate)
// after each: other work runs between slices, and the longest stall is one slice or one dump.
// The kernel applies each request on its own, so a slice boundary changes nothing about the
// outcome; the diff comes from one snapshot, as before (the gap between read and write just got
// longer, and the next pass repairs whatever changed meanwhile). Two passes must not overlap on
// one kernel: each backend runs them through a SerialWork on its socket's queue (serial.ts), so
// even the old and the new backend of a live switch take turns.
import { fdbRequest, neighbourRequest, routeRequest, type NetlinkRequest, type Rtnetlink } from '../netlink/index.ts';
import type { LocalNode, Peer, ReconcileReport } from './backend.ts';
import { diff, ownedFdb, ownedRoutes, PeerPlanner, RTPROT_WEFT, type Operation, type TunnelData } from './plan.ts';

/** Units of work (netlink requests, peers planned) between two yields; 256 is also one send() (socket.ts). */
export const DEFAULT_SLICE_SIZE = 256;

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
  /**
   * Units of work per slice between two yields to the event loop (default DEFAULT_SLICE_SIZE).
   * Infinity runs the whole pass in one synchronous piece, without yielding: the behaviour
   * before slicing, kept for benchmarks' baselines.
   */
  sliceSize?: number;
}

/** Resolves on the event loop's next check phase: pending I/O callbacks and timers run first. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A valid slice size: a whole number >= 1, or Infinity. */
export function sliceSizeOf(value: number | undefined): number {
  if (value === undefined) return DEFAULT_SLICE_SIZE;
  return value === Infinity ? Infinity : Math.max(1, Math.floor(value) || 1);
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

/**
 * Reconciles the kernel with peers; see plan.ts for what is desired and what is ours. Yields to
 * the event loop between slices (see the top of this file); the caller must not run two on one
 * kernel at once.
 */
export async function reconcilePeers(nl: Rtnetlink, peers: readonly Peer[], o: PeerReconcileOptions): Promise<ReconcileReport> {
  const slice = sliceSizeOf(o.sliceSize);
  const pause = slice === Infinity ? undefined : yieldToEventLoop;
  const routes = nl.listRoutes({ family: 4 });
  if (pause) await pause();
  const planner = new PeerPlanner({
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
  for (let i = 0; i < peers.length; i++) {
    planner.add(peers[i] as Peer);
    if (pause && (i + 1) % slice === 0) await pause();
  }
  const plan = planner.plan;
  const owned = ownedRoutes(routes, {
    deviceIndex: o.deviceIndex,
    underlayIndex: o.node.underlayIndex,
    network: o.network,
    desired: new Set(plan.desired.routes.keys()),
  });
  const device = o.deviceIndex;
  if (pause && device !== undefined) await pause();
  const neighbours = device === undefined ? [] : nl.listNeighbours({ index: device, family: 4 });
  if (pause && device !== undefined) await pause();
  const fdb = device === undefined ? [] : ownedFdb(nl.listFdb({ index: device }), device);
  if (pause) await pause();
  const ops = diff(plan.desired, { routes: owned, neighbours, fdb });
  const report: ReconcileReport = { changes: 0, paths: plan.paths, errors: plan.errors, warnings: plan.warnings };
  if (ops.length === 0) return report;
  const firstSubnet = new Map(peers.map((p) => [p.id, p.subnets[0] ?? '']));
  for (let at = 0; at < ops.length; at += slice) {
    if (pause && at > 0) await pause();
    const chunk = slice === Infinity ? ops : ops.slice(at, at + slice);
    nl.batchSettled(chunk.map(operationRequest)).forEach((error, i) => {
      if (!error) {
        report.changes++;
        return;
      }
      const op = chunk[i] as Operation;
      if (report.paths.has(op.peer)) {
        const subnet = op.kind === 'route' ? op.route.dst : (firstSubnet.get(op.peer) ?? '');
        report.errors.push({ peer: op.peer, subnet, error: error.message });
        report.paths.set(op.peer, 'unreachable');
      } else {
        report.errors.push({ subnet: op.peer, error: error.message });
      }
    });
  }
  return report;
}
