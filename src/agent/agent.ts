// `weft agent` in etcd mode: flanneld's job, in flanneld's order (flannel.md §0), but
// reconciling instead of replaying: config → interface → backend device → lease → firewall →
// subnet.env → renew + watch peers → reconcile the data plane on every change and on a timer.
// It never flushes working state: a restart adopts what the kernel already has.
import { hostname } from 'node:os';
import type { Server } from 'node:net';
import { WeftError, isWeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { Rtnetlink } from '../netlink/index.ts';
import { formatCidr } from '../net/cidr.ts';
import { openLeaseStore, type OpenedLeaseStore } from '../lease/open-store.ts';
import { loadNetworkConfig, type NetworkConfig } from '../lease/network-config.ts';
import { findOwnLeases } from '../lease/acquire.ts';
import { LeaseManager, type HeldLease } from '../lease/manager.ts';
import type { PeerLease, PeerWatch } from '../lease/peers.ts';
import { createBackend, type Backend, type Peer, type ReconcileReport } from '../dataplane/index.ts';
import { firstAddressOf, readSubnetEnv, writeSubnetEnv, type SubnetEnv } from '../subnet/subnet-env.ts';
import { selectExternalInterface, type ExternalInterface } from './interface.ts';
import type { AgentOptions } from './options.ts';
import { startHealthz, startStatusServer, type AgentStatus, type PeerStatus } from './status.ts';
import { AgentFirewall } from './firewall.ts';
import { startAgentCniServer } from './cni.ts';
import { acquireNodeLock } from './node-lock.ts';
import { backendSection } from './backend-config.ts';

export interface RunningAgent {
  status(): AgentStatus;
  /** Stops the loops and servers; the kernel state stays, as on a restart. */
  stop(): Promise<void>;
  /** Resolves when the agent ends on its own (a fatal error); the value says why. */
  readonly done: Promise<Error>;
}

const retryDelayMs = 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Retries `attempt` while it fails with WEFT_NOT_READY (store unreachable, config absent), logging each new reason. */
async function untilReady<T>(what: string, log: Logger, attempt: () => Promise<T>, stopped: () => boolean): Promise<T> {
  let last = '';
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if (!isWeftError(e, 'WEFT_NOT_READY') || stopped()) throw e;
      // gRPC puts a timestamp into its messages: compare without it, so each reason is logged once.
      const reason = e.message.replace(/\(?\d{4}-\d\d-\d\dT[\d:.]+Z\)?/g, '');
      if (reason !== last) log.warn({ err: e.message }, `${what}: not ready yet; retrying every ${retryDelayMs / 1000}s`);
      last = reason;
      await sleep(retryDelayMs);
    }
  }
}

export async function startAgent(opts: AgentOptions, log: Logger): Promise<RunningAgent> {
  const nodeLock = acquireNodeLock(opts.lockFile); // before anything: a second agent must not touch this node
  let stopping = false;
  const errors: { at: string; message: string }[] = [];
  const noteError = (message: string): void => {
    errors.push({ at: new Date().toISOString(), message });
    if (errors.length > 20) errors.shift();
  };
  let fail: (e: Error) => void = () => undefined;
  const done = new Promise<Error>((resolve) => (fail = resolve));

  // 1. The store and the network config (waits for etcd and for the config to appear).
  const store: OpenedLeaseStore = await untilReady('etcd', log, () => openLeaseStore({
    api: opts.etcdApi, endpoints: opts.etcdEndpoints, prefix: opts.etcdPrefix, logger: log,
    tls: { ...(opts.etcdCafile ? { caFile: opts.etcdCafile } : {}), ...(opts.etcdCertfile ? { certFile: opts.etcdCertfile } : {}), ...(opts.etcdKeyfile ? { keyFile: opts.etcdKeyfile } : {}) },
    ...(opts.etcdUsername ? { username: opts.etcdUsername } : {}), ...(opts.etcdPassword ? { password: opts.etcdPassword } : {}),
  }), () => stopping);
  log.info({ api: store.selection.api, why: store.selection.reason }, 'etcd API chosen');
  const config: NetworkConfig = await untilReady('network config', log, () => loadNetworkConfig(store, opts.etcdPrefix), () => stopping);
  for (const w of config.warnings) log.warn({ warning: w }, 'network config');
  if (!config.ipv4) throw new WeftError('WEFT_INVALID_CONFIG', 'network config: weft needs an IPv4 "Network" (IPv6-only clusters are not supported yet)');

  // 2. The external interface, 3. the backend's device.
  const nl = Rtnetlink.open();
  const ext: ExternalInterface = selectExternalInterface({ links: nl.listLinks(), addresses: nl.listAddresses(), routes: nl.listRoutes() }, opts);
  log.info({ iface: ext.name, publicIp: ext.publicIp, mtu: ext.mtu }, 'external interface');
  const network = formatCidr(config.ipv4.network);
  const backend: Backend = createBackend(nl, { underlayInterface: ext.name, underlayIndex: ext.index, underlayMtu: ext.mtu, publicIp: ext.publicIp },
    backendSection(config.backend), { network, log });
  const listing = await store.listLeases();
  const own = findOwnLeases(config, { publicIp: ext.publicIp, publicIpv6: null, backendType: undefined, backendData: undefined, backendV6Data: undefined }, listing.leases);
  const prepared = backend.prepare(own[0]?.attrs.backendData);

  // 4. The lease: ours again if we had one (same subnet, and the device kept its MAC).
  let previous: SubnetEnv | undefined;
  try {
    previous = readSubnetEnv(opts.subnetFile);
  } catch {
    previous = undefined;
  }
  const manager = new LeaseManager({
    store, config, publicIp: ext.publicIp, backendType: prepared.backendType, backendData: prepared.backendData,
    previous, ttlSeconds: opts.leaseTtlSeconds, renewMarginSeconds: opts.renewMarginSeconds,
    retryIntervalSeconds: Math.min(60, Math.max(1, opts.renewMarginSeconds / 4)), logger: log,
  });
  let lease: HeldLease = await manager.acquire();
  let subnet = formatCidr(lease.subnets.ipv4!);
  log.info({ subnet, how: lease.how, expiresAt: lease.expiresAt }, 'lease acquired');

  // 5. Device address, firewall, subnet.env: everything pods on this node need.
  const firewall = new AgentFirewall({ network, ipMasq: opts.ipMasq, forwardRules: opts.iptablesForwardRules, nftables: config.enableNFTables, log });
  const program = async (): Promise<void> => {
    backend.attach(subnet);
    await firewall.ensure(subnet);
    writeSubnetEnv(opts.subnetFile, { network: config.ipv4!.network, subnet: firstAddressOf(lease.subnets.ipv4!), mtu: prepared.mtu, ipMasq: opts.ipMasq });
  };
  await program();
  manager.on('revoked', (e) => noteError(`lease ${formatCidr(e.lease.subnets.ipv4!)} revoked (${e.reason}): ${e.detail}`));
  manager.on('reacquired', (e) => {
    lease = e.lease;
    subnet = formatCidr(e.lease.subnets.ipv4!);
    if (!e.sameSubnet) program().catch((err: Error) => noteError(`re-programming for the new lease failed: ${err.message}`));
  });
  manager.on('renewed', (l) => void (lease = l));
  manager.start();

  // 6. Peers: reconcile on every change and on a timer.
  let peers: readonly PeerLease[] = [];
  let lastReport: ReconcileReport | undefined;
  let lastSync: string | null = null;
  const reconcile = (): void => {
    try {
      lastReport = backend.reconcile(peers.map(toDataplanePeer).filter((p): p is Peer => p !== undefined));
      lastSync = new Date().toISOString();
      for (const e of lastReport.errors) noteError(`peer ${e.peer ?? e.subnet}: ${e.error}`);
      if (lastReport.changes > 0) log.info({ changes: lastReport.changes, peers: peers.length }, 'data plane reconciled');
    } catch (e) {
      noteError(`reconcile failed: ${(e as Error).message}`);
      log.error({ err: (e as Error).message }, 'reconcile failed');
    }
  };
  const watch: PeerWatch = manager.watchPeers((change) => {
    peers = change.peers;
    reconcile();
  });
  await watch.ready;
  const timers = [
    setInterval(reconcile, opts.reconcileSeconds * 1000),
    setInterval(() => void firewall.ensure(subnet).catch((e: Error) => noteError(`firewall resync: ${e.message}`)), opts.iptablesResyncSeconds * 1000),
  ];

  // 7. Serve: CNI requests, status, health.
  let ready = true;
  const status = (): AgentStatus => ({
    node: process.env.NODE_NAME || hostname(), mode: 'etcd', ready,
    publicIp: ext.publicIp, interface: ext.name, backend: config.backend.type,
    store: { kind: store.kind, endpoints: opts.etcdEndpoints, prefix: opts.etcdPrefix },
    lease: { subnet, expiresAt: lease.expiresAt === null ? null : new Date(lease.expiresAt).toISOString(), reservation: lease.expiresAt === null },
    mtu: prepared.mtu,
    peers: peers.map((p) => peerStatus(p, lastReport)),
    lastSync,
    errors: [...errors],
  });
  const servers: Server[] = [await startStatusServer(opts.statusSocket, status)];
  if (opts.healthzPort > 0) servers.push(await startHealthz(opts.healthzIp, opts.healthzPort, () => ready));
  const cni = opts.cniSocket === '' ? undefined : await startAgentCniServer(opts.cniSocket, log);
  log.info({ subnet, peers: peers.length, backend: config.backend.type }, 'weft agent ready');

  return {
    status,
    done,
    async stop() {
      stopping = true;
      ready = false;
      for (const t of timers) clearInterval(t);
      watch.close();
      manager.stop();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      await cni?.stop();
      await store.close();
      nl.close();
      nodeLock.release();
      fail(new Error('stopped'));
    },
  };
}

/** A lease as the data plane takes it: keyed by its etcd key, its BackendData passed on undecoded (the backend owns the format). */
function toDataplanePeer(p: PeerLease): Peer | undefined {
  if (!p.subnets.ipv4) return undefined;
  return { id: p.key, subnets: [formatCidr(p.subnets.ipv4)], publicIp: p.attrs.publicIp, backendType: p.attrs.backendType ?? '', backendData: p.attrs.backendData };
}

function peerStatus(p: PeerLease, report: ReconcileReport | undefined): PeerStatus {
  const subnet = p.subnets.ipv4 ? formatCidr(p.subnets.ipv4) : '';
  const path = report?.paths.get(p.key);
  const error = report?.errors.find((e) => e.peer === p.key)?.error;
  return {
    id: p.key, subnets: subnet ? [subnet] : [], subnet, publicIp: p.attrs.publicIp, backendType: p.attrs.backendType ?? '',
    path: path === 'direct' || path === 'vxlan' ? path : 'unreachable',
    ...(error ? { error } : {}),
  };
}
