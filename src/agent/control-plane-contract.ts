// The control-plane contract as a reusable suite: every implementation of ControlPlane
// (etcd mode over the in-memory store and over a real etcd; later a Kubernetes-API store and
// the mesh) must pass it. A harness gives the suite a fresh cluster and the few things only a
// cluster can do: write another node's announcement, take this node's range away, change the
// config. Not a test file itself: call controlPlaneContract() from one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, NodeRanges, PeerSnapshot } from './control-plane.ts';

export interface ContractCluster {
  /** The cluster Network the harness configured, canonical. */
  readonly network: string;
  /**
   * A control plane for this node (a new instance each call: "a restart"), or, given another
   * node's public IP, for that other node (modes that know nodes by name need to be told).
   */
  controlPlane(otherNode?: { publicIp: string }): ControlPlane;
  /** Announces another node with a range of its own; returns that range. */
  addPeer(publicIp: string): Promise<string>;
  /** Writes an announcement that must be refused: a range outside the Network. */
  addHostilePeer(publicIp: string): Promise<string>;
  removePeer(publicIp: string): Promise<void>;
  /** Takes this node's range away as the store would (expiry, deletion). */
  revokeOwn(publicIp: string): Promise<void>;
  /** Changes the backend section of the config; `network` changes the address plan. */
  changeConfig(change: { backendType?: string; network?: string }): Promise<void>;
  /** The config is absent until provideConfig() (for the waiting phase). */
  withholdConfig(): Promise<void>;
  provideConfig(): Promise<void>;
  close(): Promise<void>;
}

export class Recorder implements ControlPlaneEvents {
  phases: string[] = [];
  snapshots: PeerSnapshot[] = [];
  ranges: (NodeRanges | null)[] = [];
  configs: ClusterConfig[] = [];
  problems: string[] = [];
  stopped = false;
  late = 0;
  #waiters: (() => void)[] = [];

  #seen(): void {
    if (this.stopped) this.late++;
    for (const w of this.#waiters.splice(0)) w();
  }
  onPhase(phase: string): void { this.phases.push(phase); this.#seen(); }
  onPeers(s: PeerSnapshot): void { this.snapshots.push(s); this.#seen(); }
  onRanges(r: NodeRanges | null): void { this.ranges.push(r); this.#seen(); }
  onConfig(c: ClusterConfig): void { this.configs.push(c); this.#seen(); }
  onProblem(key: string, message: string): void { this.problems.push(`${key}: ${message}`); this.#seen(); }
  onRecovered(): void { this.#seen(); }

  get peers(): PeerSnapshot {
    return this.snapshots.at(-1) ?? { peers: [], rejected: [] };
  }

  /** Waits (bounded by the test's own timeout, never by a timed assertion) until what holds. */
  async until(what: string, holds: () => boolean): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (!holds()) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for: ${what}`);
      await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), new Promise((r) => setTimeout(r, 50))]);
    }
  }
}

const me: Announcement = { publicIp: '192.0.2.10', backendType: 'host-gw', backendData: undefined };

function inside(network: string, subnet: string): boolean {
  const [n, np] = network.split('/') as [string, string];
  const [s, sp] = subnet.split('/') as [string, string];
  const num = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const mask = (bits: number): number => (bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits));
  return Number(sp) >= Number(np) && (num(s) & mask(Number(np))) >>> 0 === (num(n) & mask(Number(np))) >>> 0;
}

export function controlPlaneContract(name: string, makeCluster: () => Promise<ContractCluster>): void {
  describe(`control-plane contract: ${name}`, () => {
    async function opened(t: { after(fn: () => Promise<void>): void }) {
      const cluster = await makeCluster();
      const cp = cluster.controlPlane();
      const events = new Recorder();
      t.after(async () => { await cp.stop(); events.stopped = true; await cluster.close(); });
      const config = await cp.open(events);
      return { cluster, cp, events, config };
    }

    it('open() waits for a missing config, saying so, and returns it canonical once it appears', async (t) => {
      const cluster = await makeCluster();
      await cluster.withholdConfig();
      const cp = cluster.controlPlane();
      const events = new Recorder();
      t.after(async () => { await cp.stop(); await cluster.close(); });
      const opening = cp.open(events);
      await events.until('a waiting-for-config phase', () => events.phases.includes('waiting-for-config'));
      await cluster.provideConfig();
      const config = await opening;
      assert.equal(config.network, cluster.network);
      assert.equal(typeof config.restartKey, 'string');
      assert.equal(typeof config.backend.Type, 'string');
    });

    it('acquire() grants ranges inside the Network; a restart with the same announcement gets them back', async (t) => {
      const { cluster, cp } = await opened(t);
      const ranges = await cp.acquire(me);
      assert.ok(ranges.subnets.length >= 1);
      for (const s of ranges.subnets) assert.ok(inside(cluster.network, s), `${s} inside ${cluster.network}`);
      await cp.stop();
      const again = cluster.controlPlane();
      t.after(() => again.stop());
      await again.open(new Recorder());
      assert.deepEqual((await again.acquire(me)).subnets, ranges.subnets);
    });

    it('start() delivers the peers (never this node), then every change; hostile announcements are refused with a reason', async (t) => {
      const { cluster, cp, events } = await opened(t);
      const theirs = await cluster.addPeer('192.0.2.11');
      const mine = await cp.acquire(me);
      await cp.start();
      assert.ok(events.snapshots.length >= 1, 'a first snapshot before start() resolves');
      assert.deepEqual(events.peers.peers.map((p) => p.subnets), [[theirs]]);
      assert.ok(!events.peers.peers.some((p) => p.subnets.some((s) => mine.subnets.includes(s))));
      const peer = events.peers.peers[0]!;
      assert.equal(peer.publicIp, '192.0.2.11');
      assert.equal(typeof peer.id, 'string');

      const hostile = await cluster.addHostilePeer('192.0.2.66');
      await events.until('the hostile peer refused', () => events.peers.rejected.some((r) => r.key.includes(hostile.replace('/', '-')) || r.key.includes(hostile)));
      assert.ok(!events.peers.peers.some((p) => p.publicIp === '192.0.2.66'), 'a refused peer is never a peer');
      assert.ok(events.peers.rejected.every((r) => r.reason.length > 0));

      const second = await cluster.addPeer('192.0.2.12');
      await events.until('the new peer', () => events.peers.peers.some((p) => p.subnets.includes(second)));
      await cluster.removePeer('192.0.2.11');
      await events.until('the removed peer gone', () => !events.peers.peers.some((p) => p.subnets.includes(theirs)));
    });

    it('a range taken away is reported lost (null), then regained', async (t) => {
      const { cluster, cp, events } = await opened(t);
      await cp.acquire(me);
      await cp.start();
      await cluster.revokeOwn(me.publicIp);
      await events.until('the range lost', () => events.ranges.includes(null));
      await events.until('the range regained', () => {
        const i = events.ranges.lastIndexOf(null);
        return events.ranges.slice(i + 1).some((r) => r !== null && r.subnets.length > 0);
      });
    });

    it('a config change reaches a running node; a new address plan changes restartKey, a new backend does not', async (t) => {
      const { cluster, cp, events, config } = await opened(t);
      await cp.acquire(me);
      await cp.start();
      await cluster.changeConfig({ backendType: 'vxlan' });
      await events.until('the changed config', () => events.configs.length >= 1);
      const changed = events.configs.at(-1)!;
      assert.equal(String(changed.backend.Type).toLowerCase(), 'vxlan');
      assert.equal(changed.restartKey, config.restartKey);
      await cluster.changeConfig({ network: '10.99.0.0/16' });
      await events.until('the new address plan', () => events.configs.at(-1)!.network === '10.99.0.0/16');
      assert.notEqual(events.configs.at(-1)!.restartKey, config.restartKey);
    });

    it('announce() publishes a changed announcement for the ranges already held', async (t) => {
      const { cluster, cp } = await opened(t);
      const mine = await cp.acquire(me);
      await cp.start();
      await cp.announce({ ...me, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:0a' } });
      // Seen from another node: our announcement carries the new backend.
      const other = cluster.controlPlane({ publicIp: '192.0.2.13' });
      const seen = new Recorder();
      t.after(() => other.stop());
      await other.open(seen);
      await other.acquire({ publicIp: '192.0.2.13', backendType: 'host-gw', backendData: undefined });
      await other.start();
      await seen.until('our new announcement', () => seen.peers.peers.some((p) => p.subnets.includes(mine.subnets[0]!) && p.backendType === 'vxlan'));
    });

    it('no callback after stop()', async (t) => {
      const { cluster, cp, events } = await opened(t);
      await cp.acquire(me);
      await cp.start();
      await cp.stop();
      events.stopped = true;
      await cluster.addPeer('192.0.2.14');
      await cluster.changeConfig({ backendType: 'vxlan' });
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(events.late, 0);
    });
  });
}
