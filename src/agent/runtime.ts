// The mode-neutral node runtime: everything a node needs whatever its control plane is. It
// serves status and health from the first second, then: control plane open (store + config)
// → external interface → backend device → pod ranges → firewall, subnet.env, bridge → CNI
// server → peers, reconciled on every change and on a timer. It never flushes working state:
// a restart adopts what the kernel already has. Every dependency is injected (kernel, firewall,
// files, servers), so the orchestration is unit-tested with fakes and end to end with the
// real ones.
import type { Logger } from '../log/logger.ts';
import type { Backend, Peer, PeerPath, ReconcileReport } from '../dataplane/index.ts';
import type {
  Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, NodeRanges, PeerSnapshot,
} from './control-plane.ts';
import type { ExternalInterface } from './interface.ts';
import type { AgentMetrics } from './metrics.ts';
import { ProblemLog } from './problems.ts';
import { Readiness, type ReadinessView } from './readiness.ts';
import type { AgentStatus, PeerStatus } from './status.ts';
import type { FastPathStatus } from '../fastpath/manager.ts';

/** The kernel as the runtime uses it; the agent builds it on rtnetlink and the backend registry. */
export interface NodeKernel {
  externalInterface(): ExternalInterface;
  /** Parses the backend section and builds the backend; throws WEFT_INVALID_CONFIG for what weft cannot do. */
  createBackend(section: Readonly<Record<string, unknown>>, ext: ExternalInterface, network: string): Backend;
  /** Deletes weft-owned routes outside these networks (a bad peer's route must not survive a restart). */
  removeRoutesOutside(networks: readonly string[]): number;
  /** Deletes backend devices this config does not use (a flannel.1 left by an older config). */
  removeUnusedDevices(section: Readonly<Record<string, unknown>>): string[];
  /** The devices this backend section uses (flannel.1 for vxlan and auto; none for host-gw). */
  backendDevices(section: Readonly<Record<string, unknown>>): string[];
  /** Deletes a pod bridge address left from a previous network (a cni0 address in none of the node's pod ranges now). */
  removeStaleBridgeAddress(previousNetworks: readonly string[], subnets: readonly string[]): string[];
  close(): void;
}

export interface NodeFirewall {
  /** Installs (or checks) the masquerade/forward rules for this node's subnet. */
  ensure(network: string, subnet: string, nftables: boolean): Promise<void>;
}

export interface SubnetFile {
  /** The last subnet.env's network and subnet, if there is a readable one. */
  previous(): { networks: string[]; subnet: string | undefined } | undefined;
  /** Whether the file is there with what we wrote. */
  intact(): boolean;
  write(network: string, subnet: string, mtu: number): void;
}

/**
 * An accelerator for pod-to-pod traffic (the tc-eBPF fast path, src/fastpath): told where the
 * node's traffic comes in and which peers the data plane reaches. It never fails the node: when
 * it cannot run, its notice says why and pods use the normal path.
 */
export interface NodeFastPath {
  start(targets: { network: string; uplinks: readonly string[] }): void;
  setPeers(subnets: readonly string[]): void;
  reconcile(): void;
  status(): FastPathStatus;
  /** Why the node runs without the fast path it was asked for; undefined while it runs. */
  notice(): string | undefined;
}

export interface RuntimeDeps {
  node: string;
  controlPlane: ControlPlane;
  kernel: NodeKernel;
  firewall: NodeFirewall;
  subnetFile: SubnetFile;
  metrics: AgentMetrics;
  log: Logger;
  fastPath?: NodeFastPath;
  /** Starts the CNI server once the node is programmed; returns its stop. */
  startCni?: () => Promise<{ stop(): Promise<void> }>;
  reconcileMs: number;
  firewallResyncMs: number;
  now?: () => number;
}

export interface NodeRuntime {
  status(): AgentStatus;
  readiness(): ReadinessView;
  /** A condition found outside the runtime (a CNI config in weft's way): a reason fails it, undefined clears it. */
  setCondition(condition: string, reason: string | undefined): void;
  /** Runs start-up to the end (ready or a fatal error); status is served meanwhile. */
  run(): Promise<void>;
  stop(): Promise<void>;
}

interface Programmed {
  config: ClusterConfig;
  ext: ExternalInterface;
  backend: Backend;
  announcement: Announcement;
  mtu: number;
  ranges: NodeRanges | null;
  subnet: string;
}

const isCarried = (path: PeerPath | undefined): boolean => path === 'direct' || path === 'vxlan';

/** A store full of garbage must not make the status answer huge: the first ones, and the count. */
const MAX_REJECTED_SHOWN = 100;

export function createNodeRuntime(d: RuntimeDeps): NodeRuntime {
  const now = d.now ?? Date.now;
  const problems = new ProblemLog(50, now);
  const readiness = new Readiness((view) => {
    d.metrics.readiness(view.phase, view.ready);
    d.log.info({ phase: view.phase, ready: view.ready, reasons: view.reasons }, `phase: ${view.phase}${view.reasons.length ? ` (${view.reasons.join('; ')})` : ''}`);
  });
  let state: Programmed | undefined;
  let ext: ExternalInterface | undefined;
  let config: ClusterConfig | undefined;
  let peers: PeerSnapshot = { peers: [], rejected: [] };
  let report: ReconcileReport | undefined;
  let lastSync: string | null = null;
  let stopped = false;
  const timers: ReturnType<typeof setInterval>[] = [];
  let cni: { stop(): Promise<void> } | undefined;

  const problem = (key: string, message: string, level: 'warn' | 'error' = 'warn'): void => {
    if (problems.note(key, message)) d.log[level]({ about: key }, message);
    d.metrics.problems(problems.size);
  };

  const events: ControlPlaneEvents = {
    onPhase: (phase, reason) => readiness.phase(phase, reason),
    // Refused peers are the mode's to log (once each); the runtime shows them in the status.
    onPeers: (snapshot) => {
      peers = snapshot;
      void reconcile();
    },
    onRanges: (ranges, why) => void onRanges(ranges, why),
    onConfig: (c) => void onConfig(c),
    onProblem: (key, message) => {
      d.metrics.storeError(key);
      problem(key, message);
      if (key === 'lease-renewal') checkLease();
    },
    onRecovered: (key) => {
      if (key === 'lease-renewal') checkLease();
    },
  };

  /** The lease must be held and unexpired: otherwise this node's pods may collide with another's. */
  function checkLease(): void {
    const ranges = state?.ranges;
    if (!state) return;
    if (!ranges) {
      readiness.fail('lease', 'the pod range lease was lost; re-acquiring');
      return;
    }
    const expired = ranges.expiresAt !== null && ranges.expiresAt <= now();
    readiness.set('lease', expired ? `the lease of ${state.subnet} expired at ${new Date(ranges.expiresAt!).toISOString()} and was not renewed` : undefined);
    d.metrics.leaseExpiry(ranges.expiresAt);
  }

  async function onRanges(ranges: NodeRanges | null, why: string): Promise<void> {
    if (!state) return;
    const before = state.subnet;
    state.ranges = ranges;
    if (!ranges) {
      problem('lease', why, 'error');
      checkLease();
      return;
    }
    checkLease();
    const subnet = ranges.subnets[0];
    if (subnet === undefined || subnet === before) return;
    problem('lease', `this node moved from ${before} to ${subnet} (${why}); pods of the old subnet must be recreated`, 'error');
    state.subnet = subnet;
    await program(state).catch((e: Error) => problem('program', `programming the new subnet ${subnet} failed: ${e.message}`, 'error'));
    await reconcile();
  }

  /** The backend device, firewall and subnet.env for the node's subnet; each failure is a condition, retried on the timer. */
  async function program(s: Programmed): Promise<void> {
    attachDevice(s);
    await ensureFirewall(s);
    writeSubnetFile(s);
  }

  function attachDevice(s: Programmed): void {
    try {
      s.backend.attach(s.subnet);
      readiness.clear('device');
    } catch (e) {
      const message = `the ${s.backend.type} device could not take ${s.subnet}: ${(e as Error).message}`;
      readiness.fail('device', message);
      problem('device', message, 'error');
    }
  }

  async function ensureFirewall(s: Programmed): Promise<void> {
    try {
      await d.firewall.ensure(s.config.network, s.subnet, s.config.nftables);
      readiness.clear('firewall');
    } catch (e) {
      const message = `the masquerade/forward rules could not be installed: ${(e as Error).message}`;
      readiness.fail('firewall', message);
      problem('firewall', message, 'error');
    }
  }

  function writeSubnetFile(s: Programmed): void {
    try {
      d.subnetFile.write(s.config.network, s.subnet, s.mtu);
      readiness.clear('subnet.env');
    } catch (e) {
      const message = `subnet.env could not be written, so pods cannot start here: ${(e as Error).message}`;
      readiness.fail('subnet.env', message);
      problem('subnet.env', message, 'error');
    }
  }

  /**
   * Hands the backend the current peers. The backend serializes its passes and coalesces calls
   * made during one, and yields to the event loop while it programs, so calling this on every
   * peer event is cheap; it resolves once these peers (or newer ones) are in the kernel.
   */
  async function reconcile(): Promise<void> {
    const s = state;
    if (!s || stopped) return;
    const backend = s.backend;
    const started = performance.now();
    try {
      const r = await backend.reconcile(peers.peers as readonly Peer[]);
      if (stopped || state?.backend !== backend) return; // a live backend switch superseded it
      report = r;
      lastSync = new Date(now()).toISOString();
      d.metrics.reconciled((performance.now() - started) / 1000, r.changes);
      for (const e of r.errors) problem(`peer ${e.peer ?? e.subnet}`, `peer ${e.peer ?? e.subnet}: ${e.error}`);
      d.fastPath?.setPeers(peers.peers.filter((p) => isCarried(r.paths.get(p.id))).flatMap((p) => p.subnets));
      if (r.changes > 0) d.log.info({ changes: r.changes, peers: peers.peers.length }, 'data plane reconciled');
      readiness.clear('dataplane');
    } catch (e) {
      if (stopped) return;
      d.metrics.reconcileFailed();
      const message = `the data plane reconcile failed: ${(e as Error).message}`;
      readiness.fail('dataplane', message);
      problem('dataplane', message, 'error');
    }
    checkPeers();
  }

  /** The fast path's uplinks are the underlay and the backend's device; a backend switch changes them. */
  function startFastPath(s: Programmed): void {
    if (!d.fastPath) return;
    d.fastPath.start({ network: s.config.network, uplinks: [s.ext.name, ...d.kernel.backendDevices(s.config.backend)] });
    readiness.note('fast-path', d.fastPath.notice());
  }

  function pathOf(p: { id: string }): PeerPath {
    return report?.paths.get(p.id) ?? 'unreachable';
  }

  /** Ready includes "reaches its peers": a valid peer the data plane cannot reach makes the node degraded. */
  function checkPeers(): void {
    const byPath = new Map<string, number>();
    const unreachable: string[] = [];
    for (const p of peers.peers) {
      const path = pathOf(p);
      byPath.set(path, (byPath.get(path) ?? 0) + 1);
      if (path === 'unreachable' || path === 'ignored') unreachable.push(p.subnets[0] ?? p.id);
    }
    d.metrics.peers(byPath, peers.rejected.length);
    readiness.set('peers', unreachable.length === 0 ? undefined
      : `${unreachable.length} peer(s) unreachable: ${unreachable.slice(0, 5).join(', ')}${unreachable.length > 5 ? ', ...' : ''} (see the peers' errors)`);
  }

  async function onConfig(next: ClusterConfig): Promise<void> {
    const s = state;
    if (!s) return;
    for (const w of next.warnings) d.log.warn({ warning: w }, 'network config');
    if (next.restartKey !== s.config.restartKey) {
      const message = `config changed: restart required (the address plan changed: ${next.network}; this node keeps serving ${s.config.network})`;
      readiness.fail('config', message);
      problem('config', message, 'error');
      return;
    }
    readiness.clear('config');
    if (JSON.stringify(next.backend) !== JSON.stringify(s.config.backend)) await switchBackend(s, next);
    if (next.nftables !== s.config.nftables) {
      s.config = { ...s.config, nftables: next.nftables };
      await ensureFirewall(s);
    }
  }

  /**
   * A live backend change (type, DirectRouting, MTU, VNI): the new backend is built and
   * announced before the old one goes, and any failure keeps the old one, so the node never
   * runs half of each.
   */
  async function switchBackend(s: Programmed, next: ClusterConfig): Promise<void> {
    let backend: Backend;
    let prepared: ReturnType<Backend['prepare']>;
    try {
      backend = d.kernel.createBackend(next.backend, s.ext, s.config.network);
      prepared = backend.prepare(backend.type === s.backend.type ? s.announcement.backendData : undefined);
    } catch (e) {
      problem('config', `the new backend config cannot be applied (${(e as Error).message}); still running ${s.backend.type}`, 'error');
      return;
    }
    const announcement: Announcement = { publicIp: s.ext.publicIp, backendType: prepared.backendType, backendData: prepared.backendData };
    try {
      await d.controlPlane.announce(announcement);
    } catch (e) {
      problem('config', `announcing the new backend failed (${(e as Error).message}); still running ${s.backend.type}, will retry on the next config check`, 'error');
      return;
    }
    s.backend = backend;
    s.announcement = announcement;
    s.mtu = prepared.mtu;
    s.config = { ...s.config, backend: next.backend };
    const removed = d.kernel.removeUnusedDevices(next.backend);
    d.log.warn({ backend: backend.type, mtu: prepared.mtu, removed }, 'backend changed live; pods started before keep their MTU until recreated');
    await program(s);
    startFastPath(s);
    await reconcile();
  }

  /** The periodic checks: kernel drift, firewall drift, a deleted subnet.env, lease expiry. */
  function startTimers(s: Programmed): void {
    timers.push(setInterval(() => {
      if (readiness.failing('device')) attachDevice(s);
      // A pass of the old backend still in flight during a live switch can bring its device back
      // after the switch removed it; the next tick removes it again.
      const removed = d.kernel.removeUnusedDevices(s.config.backend);
      if (removed.length > 0) d.log.warn({ removed }, 'removed backend devices the current config does not use');
      void reconcile();
      if (d.fastPath) {
        d.fastPath.reconcile();
        readiness.note('fast-path', d.fastPath.notice());
      }
      if (readiness.failing('subnet.env')) writeSubnetFile(s);
      else if (!d.subnetFile.intact()) {
        d.log.warn('subnet.env is missing or changed; writing it again');
        writeSubnetFile(s);
      }
      checkLease();
    }, d.reconcileMs));
    timers.push(setInterval(() => void ensureFirewall(s), d.firewallResyncMs));
  }

  async function run(): Promise<void> {
    // A route for a prefix outside the last known Network can only be a bad peer's; it may be
    // what cuts this node off its store, so it goes before the store is asked anything.
    const previous = d.subnetFile.previous();
    if (previous && previous.networks.length > 0) {
      const removed = d.kernel.removeRoutesOutside(previous.networks);
      if (removed > 0) d.log.warn({ removed }, 'removed weft routes outside the cluster Network left by a previous run');
    }
    readiness.phase('waiting-for-store', `connecting to the ${d.controlPlane.mode} control plane`);
    config = await d.controlPlane.open(events);
    for (const w of config.warnings) d.log.warn({ warning: w }, 'network config');
    ext = d.kernel.externalInterface();
    d.log.info({ iface: ext.name, publicIp: ext.publicIp, mtu: ext.mtu }, 'external interface');
    const backend = d.kernel.createBackend(config.backend, ext, config.network);
    const removedDevices = d.kernel.removeUnusedDevices(config.backend);
    if (removedDevices.length > 0) d.log.warn({ removed: removedDevices }, 'removed backend devices the current config does not use');
    const prepared = backend.prepare(await d.controlPlane.previousBackendData(ext.publicIp));
    const announcement: Announcement = { publicIp: ext.publicIp, backendType: prepared.backendType, backendData: prepared.backendData };
    readiness.phase('acquiring-lease', 'acquiring a pod range');
    const ranges = await d.controlPlane.acquire(announcement);
    const subnet = ranges.subnets[0];
    if (subnet === undefined) throw new Error('the control plane granted no pod range');
    if (stopped) return;
    readiness.phase('programming', `programming ${subnet}`);
    const stale = d.kernel.removeStaleBridgeAddress(previous?.networks ?? [], ranges.subnets);
    if (stale.length > 0) d.log.warn({ removed: stale }, 'removed pod bridge addresses of a previous network');
    state = { config, ext, backend, announcement, mtu: prepared.mtu, ranges, subnet };
    await program(state);
    startFastPath(state);
    if (d.startCni) cni = await d.startCni();
    await d.controlPlane.start();
    if (stopped) return;
    checkLease();
    await reconcile();
    if (stopped) return;
    startTimers(state);
    readiness.programmed();
    d.log.info({ subnet, peers: peers.peers.length, backend: backend.type, ...readiness.view() }, readiness.view().ready ? 'weft agent ready' : 'weft agent running, not ready');
  }

  function peerStatus(p: Peer): PeerStatus {
    const error = report?.errors.find((e) => (e.peer ?? e.subnet) === p.id || p.subnets.includes(e.subnet))?.error;
    const warning = report?.warnings.find((w) => (w.peer ?? w.subnet) === p.id || p.subnets.includes(w.subnet))?.warning;
    const path = pathOf(p);
    return {
      id: p.id, subnet: p.subnets[0] ?? '', subnets: [...p.subnets], publicIp: p.publicIp, backendType: p.backendType,
      path: path === 'direct' || path === 'vxlan' ? path : 'unreachable',
      ...(error ?? warning ? { error: error ?? warning } : {}),
    };
  }

  function status(): AgentStatus {
    const view = readiness.view();
    const s = state;
    const expiresAt = s?.ranges?.expiresAt;
    return {
      node: d.node, mode: d.controlPlane.mode, phase: view.phase, ready: view.ready, reasons: view.reasons,
      publicIp: ext?.publicIp ?? null, interface: ext?.name ?? null, backend: s?.backend.type ?? null,
      store: d.controlPlane.status(),
      lease: s ? { subnet: s.subnet, subnets: s.ranges ? [...s.ranges.subnets] : [], expiresAt: expiresAt === undefined || expiresAt === null ? null : new Date(expiresAt).toISOString(), reservation: expiresAt === null, held: s.ranges !== null } : null,
      network: config?.network ?? null,
      mtu: s?.mtu ?? null,
      peers: (peers.peers as readonly Peer[]).map(peerStatus),
      rejected: peers.rejected.slice(0, MAX_REJECTED_SHOWN),
      rejectedCount: peers.rejected.length,
      lastSync,
      errors: problems.list(),
      ...(d.fastPath ? { fastPath: d.fastPath.status() } : {}),
      ...(view.notes && view.notes.length > 0 ? { notes: view.notes } : {}),
    };
  }

  return {
    status,
    readiness: () => readiness.view(),
    setCondition: (condition, reason) => void readiness.set(condition, reason),
    run,
    async stop() {
      stopped = true;
      for (const t of timers) clearInterval(t);
      await d.controlPlane.stop();
      await cni?.stop();
      d.kernel.close();
    },
  };
}
