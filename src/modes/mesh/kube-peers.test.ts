// Mesh peers from the Kubernetes Node list, through the real client and reflector over real HTTP
// against the stand-in: targets from InternalIPs (ExternalIP as fallback), this node and bad
// addresses left out, kept current as Nodes come and go, bounded and stable; the ring record;
// an API outage that keeps the targets (and a restart during one); and end to end, three real
// mesh control planes on loopback where a deleted Node's blocks end up owned by one live peer.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../log/logger.ts';
import type { ControlPlaneEvents } from '../../agent/control-plane.ts';
import type { Target } from '../../mesh/connections.ts';
import { loadIdentity } from '../../mesh/identity.ts';
import type { MeshNodeOptions } from '../../mesh/node.ts';
import { saveMeshState } from '../../mesh/state-file.ts';
import { ringIdOf } from '../../mesh/node.ts';
import { freePort, waitFor } from '../../mesh/testing.ts';
import { connectKube } from '../../kube/client.ts';
import { KubeStandin } from '../../kube/standin/server.ts';
import { ANNOTATION, recordName, type LeaseLike } from './kube-objects.ts';
import { KubePeers, type KubePeersOptions } from './kube-peers.ts';
import { defaultRefuse } from './kube-targets.ts';
import { MeshControlPlane, type MeshPeerHost, type RmpeerOutcome } from './mesh-control-plane.ts';
import { meshMode } from './mode.ts';
import { DEFAULT_AGENT_OPTIONS } from '../../agent/options.ts';

const NS = 'weft';
const root = mkdtempSync(join(tmpdir(), 'weft-kube-peers-'));
let standin: KubeStandin;
const kubeconfig = join(root, 'kubeconfig');
const stoppers: (() => Promise<void>)[] = [];

before(async () => {
  standin = await KubeStandin.start();
  standin.writeKubeconfig(kubeconfig);
});

after(async () => {
  for (const stop of stoppers.reverse()) await stop();
  await standin.close();
  rmSync(root, { recursive: true, force: true });
});

interface Events extends ControlPlaneEvents {
  phases: string[];
  problems: Map<string, string>;
  recovered: string[];
}

function events(): Events {
  const e: Events = {
    phases: [], problems: new Map(), recovered: [],
    onPhase: (p, why) => e.phases.push(`${p}: ${why}`), onPeers: () => undefined, onRanges: () => undefined, onConfig: () => undefined,
    onProblem: (k, m) => e.problems.set(k, m),
    onRecovered: (k) => {
      e.problems.delete(k);
      e.recovered.push(k);
    },
  };
  return e;
}

function nodeOptions(dir: string, extra: Partial<MeshNodeOptions> = {}): MeshNodeOptions {
  return {
    dir: join(root, dir), nickname: dir, listenHost: '127.0.0.1', port: 0, targets: [], psks: null,
    universe: '10.32.0.0/16', blockPrefix: 24, init: { mode: 'observer' }, connLimit: 16, version: 'test', log: silentLogger,
    timing: { tickMs: 100, heartbeatMs: 250, antiEntropyMs: 300, deadAfterMs: 1500, growWaitMs: 5000 }, ...extra,
  };
}

function peers(nodeName: string, extra: Partial<KubePeersOptions> = {}): KubePeers {
  const p = new KubePeers({
    connect: () => connectKube({ kubeconfigFile: kubeconfig, requestTimeoutMs: 2000 }),
    namespace: NS, nodeName, port: 6783, staticTargets: [], ipallocInit: undefined, log: silentLogger,
    timing: { scanMs: 200, retryMs: 100, rankDelayMs: 0, openRetryMs: [50, 200] },
    // 10.99.0.9 stands for an address of this host.
    refuse: defaultRefuse(new Set(['10.99.0.9'])),
    ...extra,
  });
  stoppers.push(() => p.stop());
  return p;
}

/** A host that records what the peer source does to the mesh. */
function recordingHost(name: string): MeshPeerHost & { targets: Target[][]; rmpeers: string[] } {
  const h = {
    name, targets: [] as Target[][], rmpeers: [] as string[],
    setTargets: (t: readonly Target[]) => void h.targets.push([...t]),
    rmpeer: (peer: string): RmpeerOutcome => {
      h.rmpeers.push(peer);
      return { done: true, addresses: 0 };
    },
    ringSeeds: () => null,
  };
  return h;
}

const hosts = (t: readonly Target[] | undefined): string[] => (t ?? []).map((x) => x.host).sort();

function status(p: KubePeers): { targets: string[]; refused: { node: string; reason: string }[]; nodes: number; problems: string[]; reclaims: { done: number } } {
  return p.status() as ReturnType<typeof status>;
}

test('discovery: InternalIPs (else ExternalIP) of the other Nodes; this node and bad addresses left out; kept current as Nodes come and go', async () => {
  standin.addNode('d-self', { internalIP: '10.1.0.1' });
  standin.addNode('d-two', { internalIP: '10.1.0.2' });
  standin.create('nodes', { metadata: { name: 'd-ext' }, status: { addresses: [{ type: 'ExternalIP', address: '198.51.100.3' }, { type: 'Hostname', address: 'd-ext' }] } });
  standin.create('nodes', { metadata: { name: 'd-bad' }, status: { addresses: [{ type: 'InternalIP', address: '300.1.1.1' }, { type: 'InternalIP', address: 'fd00::4' }] } });
  standin.addNode('d-loop', { internalIP: '127.0.0.5' });
  standin.addNode('d-mcast', { internalIP: '224.0.0.6' });
  standin.addNode('d-local', { internalIP: '10.99.0.9' });
  standin.create('nodes', { metadata: { name: 'd-none' }, status: {} });
  const p = peers('d-self', { ipallocInit: 'consensus' });
  const ev = events();
  const patch = await p.prepare(nodeOptions('d'), ev);
  assert.deepEqual(hosts(patch.targets), ['10.1.0.2', '198.51.100.3']);
  assert.ok(patch.targets!.every((t) => t.port === 6783));
  // consensus without a number counts every Node, this one included.
  assert.deepEqual(patch.init, { mode: 'consensus', peers: 8 });
  const refused = new Map(status(p).refused.map((r) => [r.node, r.reason]));
  assert.match(refused.get('d-bad') ?? '', /300\.1\.1\.1.*not an IPv4 address.*fd00::4.*not an IPv4 address/);
  assert.match(refused.get('d-loop') ?? '', /loopback/);
  assert.match(refused.get('d-mcast') ?? '', /multicast/);
  assert.match(refused.get('d-local') ?? '', /an address of this host/);
  assert.match(refused.get('d-none') ?? '', /no InternalIP or ExternalIP/);
  assert.ok(!refused.has('d-self') && !refused.has('d-two'));

  const host = recordingHost('aa:00:00:00:0d:01');
  p.start(host);
  await waitFor('its own record exists', () => standin.get('leases', NS, recordName(host.name)) !== undefined);
  const record = standin.get('leases', NS, recordName(host.name)) as LeaseLike;
  assert.equal(record.spec?.holderIdentity, 'd-self');
  assert.equal(record.metadata?.annotations?.[ANNOTATION.nodeUid], (standin.get('nodes', undefined, 'd-self') as { metadata: { uid: string } }).metadata.uid);
  standin.addNode('d-new', { internalIP: '10.1.0.7' });
  await waitFor('the new Node is a target', () => hosts(host.targets.at(-1)).includes('10.1.0.7'));
  standin.delete('nodes', undefined, 'd-two');
  await waitFor('the deleted Node is no longer a target', () => hosts(host.targets.at(-1)).join() === '10.1.0.7,198.51.100.3');
  for (const n of ['d-self', 'd-ext', 'd-bad', 'd-loop', 'd-mcast', 'd-local', 'd-none', 'd-new']) standin.delete('nodes', undefined, n);
  await waitFor('no targets once the other Nodes are gone', () => host.targets.at(-1)?.length === 0);
  assert.equal(host.rmpeers.length, 0, 'nothing to reclaim: no peer record of a dead node');
});

test('targets are bounded and stable: a handful per node by rendezvous hashing, unchanged when an unchosen Node goes', async () => {
  for (let i = 0; i < 12; i++) standin.addNode(`b-${i}`, { internalIP: `10.2.0.${i + 1}` });
  const p = peers('b-0', { targetCount: 3, ipallocInit: 'consensus' });
  const host = recordingHost('aa:00:00:00:0b:00');
  const first = hosts((await p.prepare(nodeOptions('b'), events())).targets);
  assert.equal(first.length, 3);
  assert.equal(status(p).nodes, 12);
  p.start(host);
  const unchosen = Array.from({ length: 11 }, (_, i) => `10.2.0.${i + 2}`).find((a) => !first.includes(a))!;
  standin.delete('nodes', undefined, `b-${Number(unchosen.split('.')[3]) - 1}`);
  await waitFor('the deletion is seen', () => status(p).nodes === 11);
  assert.deepEqual(hosts(status(p).targets.map((t) => ({ host: t.split(':')[0]!, port: 0 }))), first, 'an unchosen Node going changes nothing');
  const chosen = first[0]!;
  standin.delete('nodes', undefined, `b-${Number(chosen.split('.')[3]) - 1}`);
  await waitFor('a chosen Node going is replaced', () => host.targets.length > 0 && !hosts(host.targets.at(-1)).includes(chosen));
  const now = hosts(host.targets.at(-1));
  assert.equal(now.length, 3);
  assert.deepEqual(now.filter((a) => first.includes(a)), first.filter((a) => a !== chosen), 'the other two stay');
  // Another node picks another set (no hub), from the same list.
  const other = peers('b-5', { targetCount: 3, ipallocInit: 'consensus' });
  assert.notDeepEqual(hosts((await other.prepare(nodeOptions('b5'), events())).targets), now);
  for (let i = 0; i < 12; i++) standin.delete('nodes', undefined, `b-${i}`);
});

test('an API outage: the last targets stay, the problem is reported, and it recovers', async () => {
  standin.addNode('o-self', { internalIP: '10.3.0.1' });
  standin.addNode('o-two', { internalIP: '10.3.0.2' });
  const p = peers('o-self', { ipallocInit: 'consensus' });
  const ev = events();
  await p.prepare(nodeOptions('o'), ev);
  const host = recordingHost('aa:00:00:00:0e:01');
  p.start(host);
  await waitFor('synced', () => standin.get('leases', NS, recordName(host.name)) !== undefined);
  const before = status(p).targets;
  const calls = host.targets.length;
  standin.setAvailable(false);
  standin.endWatches();
  await waitFor('the outage is reported', () => ev.problems.size > 0);
  assert.match([...ev.problems.values()].join(' | '), /keeps its last 1 target/);
  assert.deepEqual(status(p).targets, before);
  assert.equal(host.targets.length, calls, 'no target change during the outage');
  standin.setAvailable(true);
  standin.addNode('o-three', { internalIP: '10.3.0.3' });
  await waitFor('recovered: the new Node is a target', () => hosts(host.targets.at(-1)).join() === '10.3.0.2,10.3.0.3', 30_000);
  await waitFor('the problem is over', () => ev.problems.size === 0, 30_000);
  for (const n of ['o-self', 'o-two', 'o-three']) standin.delete('nodes', undefined, n);
});

test('open during an outage: a node with a ring starts on its saved targets; one without waits for the API', async () => {
  standin.addNode('r-self', { internalIP: '10.4.0.1' });
  standin.addNode('r-two', { internalIP: '10.4.0.2' });
  const options = nodeOptions('r');
  // A first run saves its targets.
  await peers('r-self').prepare(options, events());
  const name = loadIdentity(options.dir, { nickname: 'r' }).name;
  saveMeshState(options.dir, {
    format: 1, name, incarnation: 1, universe: options.universe, blockPrefix: options.blockPrefix,
    ring: { id: ringIdOf(options.universe, options.blockPrefix, [name]), seeds: [name] }, runs: [], paxos: null, active: [], announcement: null,
  });
  standin.setAvailable(false);
  const ev = events();
  const patch = await peers('r-self').prepare(options, ev);
  assert.deepEqual(hosts(patch.targets), ['10.4.0.2']);
  assert.deepEqual(patch.init, { mode: 'seed', names: [name] });
  assert.match([...ev.problems.values()].join(), /runs on the 1 peer\(s\) saved last time/);

  const fresh = nodeOptions('r-fresh');
  const ev2 = events();
  let opened = false;
  const pending = peers('r-self').prepare(fresh, ev2).then((x) => {
    opened = true;
    return x;
  });
  await waitFor('it waits, saying why', () => ev2.phases.some((ph) => /^waiting-for-store: mesh peers come from the Kubernetes Node list/.test(ph)));
  assert.equal(opened, false);
  standin.setAvailable(true);
  const later = await pending;
  assert.deepEqual(hosts(later.targets), ['10.4.0.2']);
  assert.equal(later.init?.mode, 'seed');
  for (const n of ['r-self', 'r-two']) standin.delete('nodes', undefined, n);
  standin.delete('leases', NS, 'mesh-ring');
});

test('meshMode with --kube-peers: the agent\'s options make a control plane that seeds from the ring record and keeps its record', async () => {
  for (const l of standin.list('leases', NS) as LeaseLike[]) standin.delete('leases', NS, l.metadata!.name!);
  standin.addNode('w-self', { internalIP: '10.5.0.1' });
  const port = await freePort();
  const plane = meshMode({
    ...DEFAULT_AGENT_OPTIONS, store: 'mesh', kubePeers: true, kubeconfigFile: kubeconfig, nodeName: 'w-self', kubeNamespace: NS,
    meshDir: join(root, 'w'), meshListen: '127.0.0.1', meshPort: port, ipallocRange: '10.32.0.0/16', ipallocBlock: 24,
  }, silentLogger, 'test') as MeshControlPlane;
  stoppers.push(() => plane.stop());
  await plane.open(events());
  const ranges = await plane.acquire({ publicIp: '10.5.0.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:0a' } });
  assert.ok(ranges.subnets.length > 0, 'alone, it is the ring record\'s only seed and owns the range');
  await plane.start();
  assert.deepEqual((standin.get('leases', NS, 'mesh-ring') as LeaseLike).metadata?.annotations?.[ANNOTATION.ringSeeds], plane.node.name);
  await waitFor('its record exists', () => standin.get('leases', NS, recordName(plane.node.name)) !== undefined);
  const details = plane.status().details as { kubePeers: { node: string; nodes: number } };
  assert.equal(details.kubePeers.node, 'w-self');
  assert.ok(plane.metrics!.some((m) => m.name === 'weft_mesh_kube_reclaims_total'));
  // The ring record deleted by mistake is put back from this node's ring.
  standin.delete('leases', NS, 'mesh-ring');
  await waitFor('the ring record is back', () => (standin.get('leases', NS, 'mesh-ring') as LeaseLike | undefined)?.metadata?.annotations?.[ANNOTATION.ringSeeds] === plane.node.name);
  await plane.stop();
  standin.delete('nodes', undefined, 'w-self');
});

test('end to end: four mesh control planes on loopback seed one ring from the ring record; a deleted Node\'s blocks go to exactly one of the three live peers', async () => {
  // Records left by the tests above belong to deleted Nodes too: start from none.
  for (const l of standin.list('leases', NS) as LeaseLike[]) standin.delete('leases', NS, l.metadata!.name!);
  const names = ['e-1', 'e-2', 'e-3', 'e-4'];
  const ports = new Map<string, number>();
  for (const n of names) {
    ports.set(n, await freePort());
    standin.addNode(n, { internalIP: '127.0.0.1' });
  }
  const planes = names.map((n) => {
    const plane = new MeshControlPlane({
      node: nodeOptions(n, { port: ports.get(n)!, nickname: n }),
      backend: { Type: 'vxlan', Port: 6784 }, nftables: false, log: silentLogger,
      // The default rank delay: peers ranked lower for the dead one wait before they try.
      peerSource: peers(n, { refuse: () => undefined, portFor: (node) => ports.get(node) ?? 1, timing: { scanMs: 200, retryMs: 100, openRetryMs: [50, 200] } }),
    });
    stoppers.push(() => plane.stop());
    return plane;
  });
  await Promise.all(planes.map((p) => p.open(events())));
  const ring = standin.get('leases', NS, 'mesh-ring') as LeaseLike;
  assert.equal(ring.metadata?.annotations?.[ANNOTATION.ringSeeds]?.split(',').length, 1, 'one seed: whoever created the ring record first');
  await Promise.all(planes.map((p, i) => p.acquire({ publicIp: '127.0.0.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: `02:00:00:00:00:0${i + 1}` } })));
  await Promise.all(planes.map((p) => p.start()));
  for (const p of planes) assert.equal(p.node.ring?.id, planes[0]!.node.ring?.id);
  await waitFor('every record exists', () => planes.every((p) => standin.get('leases', NS, recordName(p.node.name))));
  await waitFor('equal block maps', () => planes.every((p) => p.node.map!.digest() === planes[0]!.node.map!.digest()));

  const [victim, ...live] = [planes[2]!, planes[0]!, planes[1]!, planes[3]!];
  const name = victim.node.name;
  const blocks = victim.node.ownBlocks();
  assert.ok(blocks.length > 0);
  await victim.stop();
  standin.delete('nodes', undefined, 'e-3');
  await waitFor('the victim\'s record is reclaimed and deleted', () => standin.get('leases', NS, recordName(name)) === undefined, 30_000);
  const liveNames = new Set(live.map((p) => p.node.name));
  await waitFor('every live peer sees its blocks owned by a live peer', () => live.every((p) => blocks.every((b) => liveNames.has(p.node.map!.entry(b).owner ?? ''))));
  const done = live.map((p) => (p.status().details as { kubePeers: { reclaims: { done: number } } }).kubePeers.reclaims.done);
  assert.deepEqual([...done].sort(), [0, 0, 1], `reclaims done: ${done.join(', ')}`);
  const winner = live[done.indexOf(1)]!;
  for (const b of blocks) assert.equal(winner.node.map!.entry(b).owner, winner.node.name);
  const metric = winner.metrics!.find((m) => m.name === 'weft_mesh_kube_reclaims_total')!;
  assert.equal(metric.read(), 1);
  for (const p of live) assert.equal(p.node.conflicts, 0, 'no double takeover (that would show as an equal-version conflict)');
});
