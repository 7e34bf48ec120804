// The mesh node over real TCP on loopback: seeding by consensus, joining, grants, restart,
// rmpeer, split rings and a forged claim. No root needed; the data plane is not involved.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './testing.ts';
import { silentLogger } from '../log/logger.ts';
import { MeshNode, type IpallocInit, type MeshNodeOptions } from './node.ts';

const root = mkdtempSync(join(tmpdir(), 'weft-mesh-node-'));
const nodes: MeshNode[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  rmSync(root, { recursive: true, force: true });
});

interface Spec {
  dir: string;
  port: number;
  peers: number[];
  init: IpallocInit;
  psks?: Buffer[] | null;
  name?: string;
}

async function startNode(s: Spec, extra: Partial<MeshNodeOptions> = {}): Promise<MeshNode> {
  const n = new MeshNode({
    dir: join(root, s.dir), nickname: s.dir, listenHost: '127.0.0.1', port: s.port, ...(s.name ? { name: s.name } : {}),
    targets: s.peers.map((port) => ({ host: '127.0.0.1', port })), psks: s.psks ?? null,
    universe: '10.32.0.0/12', blockPrefix: 26, init: s.init, connLimit: 16, version: 'test', log: silentLogger,
    timing: { tickMs: 100, heartbeatMs: 400, antiEntropyMs: 300, deadAfterMs: 2500, growWaitMs: 5000 },
    ...extra,
  });
  nodes.push(n);
  await n.start();
  n.announce({ publicIp: '127.0.0.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } });
  return n;
}

function owned(n: MeshNode): Set<number> {
  return new Set(n.ownBlocks());
}

function assertDisjoint(list: MeshNode[]): void {
  const seen = new Map<number, string>();
  for (const n of list) {
    for (const b of n.ownBlocks()) {
      assert.ok(!seen.has(b), `block ${b} owned by both ${seen.get(b)} and ${n.name} in their own views`);
      seen.set(b, n.name);
    }
  }
}

const ports = await Promise.all(Array.from({ length: 12 }, () => freePort()));

test('three electors seed one ring by consensus; their blocks are disjoint and cover the range', async () => {
  const [p1, p2, p3] = ports as [number, number, number];
  const init: IpallocInit = { mode: 'consensus', peers: 3 };
  const a = await startNode({ dir: 'a', port: p1, peers: [p2, p3], init });
  const b = await startNode({ dir: 'b', port: p2, peers: [p1, p3], init });
  const c = await startNode({ dir: 'c', port: p3, peers: [p1, p2], init });
  await waitFor('one ring on all three', () => !!a.ring && a.ring.id === b.ring?.id && b.ring.id === c.ring?.id);
  await waitFor('equal block maps', () => a.map!.digest() === b.map!.digest() && b.map!.digest() === c.map!.digest());
  assertDisjoint([a, b, c]);
  assert.equal(a.ownBlocks().length + b.ownBlocks().length + c.ownBlocks().length, a.map!.size);
  assert.equal(a.ipamStatus(), 'ready');
  await waitFor('each sees two routed peers', () => [a, b, c].every((n) => n.dataPlanePeers().peers.length === 2));
  const peersOfA = a.dataPlanePeers().peers;
  for (const p of peersOfA) assert.ok(p.subnets.length > 0 && p.publicIp === '127.0.0.1');
  const st = a.status();
  assert.equal(st.ipam.status, 'ready');
  assert.equal(st.peers.length, 3);
  assert.equal(st.connections.filter((x) => x.state === 'established').length, 2);

  // A late joiner (an observer) adopts the ring and is granted blocks by a donor.
  const d = await startNode({ dir: 'd', port: ports[3]!, peers: [p1], init: { mode: 'observer' } });
  await waitFor('the joiner adopts the ring', () => d.ring?.id === a.ring!.id);
  d.requestBlocks(4);
  await waitFor('the joiner is granted blocks', () => d.ownBlocks().length > 0 && d.wants === 0);
  await waitFor('everyone agrees on the grant', () => [a, b, c].every((n) => n.map!.digest() === d.map!.digest()));
  assertDisjoint([a, b, c, d]);

  // A restart keeps the same identity, ring and blocks, without asking anyone.
  const before = owned(d);
  const name = d.name;
  await d.stop();
  nodes.splice(nodes.indexOf(d), 1);
  const d2 = await startNode({ dir: 'd', port: ports[3]!, peers: [p1], init: { mode: 'observer' } });
  assert.equal(d2.name, name);
  assert.deepEqual(owned(d2), before);
  assert.equal(d2.ring?.id, a.ring!.id);

  // rmpeer is refused while the peer is alive, and takes its blocks once it is gone.
  assert.throws(() => a.rmpeer(name), /is alive/);
  await d2.stop();
  nodes.splice(nodes.indexOf(d2), 1);
  await waitFor('d is unreachable from a', () => !a.reachable(name));
  const r = a.rmpeer('d');
  assert.equal(r.addresses, before.size * 64);
  for (const blk of before) assert.equal(a.map!.entry(blk).owner, a.name);
  await waitFor('b learns the takeover', () => [...before].every((blk) => b.map!.entry(blk).owner === a.name));
});

test('two rings seeded apart meet: the conflict is reported, never merged, never routed', async () => {
  const [p1, p2, p3, p4] = ports.slice(4, 8) as [number, number, number, number];
  const x = await startNode({ dir: 'x', name: 'x', port: p1, peers: [p2], init: { mode: 'seed', names: ['x', 'y'] } });
  const y = await startNode({ dir: 'y', name: 'y', port: p2, peers: [p1], init: { mode: 'seed', names: ['x', 'y'] } });
  const u = await startNode({ dir: 'u', name: 'u', port: p3, peers: [p4], init: { mode: 'seed', names: ['u', 'v'] } });
  const v = await startNode({ dir: 'v', name: 'v', port: p4, peers: [p3, p1], init: { mode: 'seed', names: ['u', 'v'] } });
  await waitFor('v sees the other ring', () => v.ringConflicts().length > 0 || x.ringConflicts().length > 0);
  await waitFor('x refuses v as a data-plane peer', () => x.dataPlanePeers().rejected.some((r) => /seeded apart/.test(r.reason)) || x.ringConflicts().length > 0);
  assert.notEqual(x.ring!.id, u.ring!.id);
  // Each ring keeps its own map: nothing of the other was merged in.
  assert.ok(x.map!.ownedBy('u').length === 0 && u.map!.ownedBy('x').length === 0);
  assert.ok(!x.dataPlanePeers().peers.some((p) => p.id === 'u' || p.id === 'v'));
  // Exactly one ring yields (the same one on all four peers, u included, which only heard of x's ring by gossip).
  const xRingWins = x.ring!.id < u.ring!.id;
  const losers = xRingWins ? [u, v] : [x, y];
  const winners = xRingWins ? [x, y] : [u, v];
  await waitFor('both peers of the losing ring yield', () => losers.every((n) => n.yieldsTo() !== null));
  for (const n of winners) assert.equal(n.yieldsTo(), null);
  assert.match(losers[0]!.ipamStatus(), /yields to ring/);
});

test('a forged claim on a block that holds pods is refused and re-asserted', async () => {
  const [p1, p2] = ports.slice(8, 10) as [number, number];
  const init: IpallocInit = { mode: 'seed', names: ['f1', 'f2'] };
  const f1 = await startNode({ dir: 'f1', name: 'f1', port: p1, peers: [p2], init });
  const f2 = await startNode({ dir: 'f2', name: 'f2', port: p2, peers: [p1], init });
  await waitFor('connected', () => f1.dataPlanePeers().peers.length === 1 && f2.dataPlanePeers().peers.length === 1);
  const block = f1.ownBlocks()[0]!;
  f1.activate(block);
  // f2 writes f1's block as its own at a higher version: only f1 may write it.
  const e = f2.map!.entry(block);
  f2.map!.merge([{ start: block, count: 1, owner: 'f2', epoch: e.epoch, counter: e.counter + 5 }]);
  // Its next anti-entropy round sends the forged map to f1.
  await waitFor('f1 re-asserts its block everywhere', () => f2.map!.entry(block).owner === 'f1' && f1.map!.entry(block).owner === 'f1');
});

test('a hostile peer: malformed messages, bad and oversized records, a flood of names, forged runs; the node keeps working', async () => {
  const { dialChannel } = await import('./wire/index.ts');
  const { meshIdOf } = await import('./node.ts');
  const [p1, p2] = ports.slice(10, 12) as [number, number];
  const init: IpallocInit = { mode: 'seed', names: ['h1', 'h2'] };
  const h1 = await startNode({ dir: 'h1', name: 'h1', port: p1, peers: [p2], init }, { maxPeers: 50 });
  const h2 = await startNode({ dir: 'h2', name: 'h2', port: p2, peers: [p1], init });
  await waitFor('h1 and h2 see each other', () => h1.dataPlanePeers().peers.length === 1);
  const evil = await dialChannel('127.0.0.1', p1, {
    self: { name: 'ee:ee:ee:ee:ee:ee', uid: '00000000000000ee', nickname: 'evil', port: 1 },
    meshId: meshIdOf('10.32.0.0/12', 26), psks: null,
  });
  const send = (m: unknown): boolean => evil.send(Buffer.from(typeof m === 'string' ? m : JSON.stringify(m)));
  const good = {
    name: 'aa:aa:aa:aa:aa:01', uid: '0123456789abcdef', nickname: 'ok', incarnation: 1, seq: 1, addr: '127.0.0.9:6783', publicIp: '127.0.0.9',
    backendType: 'vxlan', backendData: null, ring: null, elector: false, paxos: null, owned: 0, free: 0, wants: 0, left: false, heartbeat: 0,
  };
  send({
    t: 'state', records: [
      good,
      { ...good, name: 'not a name!' },
      { ...good, name: 'aa:aa:aa:aa:aa:02', backendData: 'x'.repeat(5000) },
      { ...good, name: 'aa:aa:aa:aa:aa:03', incarnation: -1 },
      { ...good, name: 'aa:aa:aa:aa:aa:04', wants: 1e9 },
      'garbage',
    ],
  });
  await waitFor('the good record is taken and the bad ones are refused one by one', () => {
    const rejected = h1.dataPlanePeers().rejected.map((r) => r.reason).join(' | ');
    return h1.status().peers.some((p) => p.name === good.name) && /backend data is 5\d{3} bytes/.test(rejected) && /incarnation/.test(rejected) && /wants/.test(rejected);
  });
  // Forged runs for a ring that does not match its seed list, and runs out of range: refused, nothing merged.
  const digest = h1.map!.digest();
  send({ t: 'state', ring: { id: 'f'.repeat(32), seeds: ['h1'] }, runs: [{ start: 0, count: 16384, owner: 'evil', epoch: 9, counter: 9 }] });
  send({ t: 'state', ring: h1.ring, runs: [{ start: 16000, count: 1000, owner: 'evil', epoch: 9, counter: 9 }] });
  await waitFor('both refused', () => h1.dataPlanePeers().rejected.filter((r) => /ring|runs|start|count|block/i.test(r.reason)).length >= 2);
  assert.equal(h1.map!.digest(), digest);
  // A message that is not JSON closes only that connection.
  const closed = new Promise<void>((r) => evil.onClose(() => r()));
  send('{not json');
  await closed;
  // A flood of distinct peers (thousands of made-up records) is bounded by the peer limit.
  const flood = await dialChannel('127.0.0.1', p1, {
    self: { name: 'ee:ee:ee:ee:ee:ef', uid: '00000000000000ef', nickname: 'flood', port: 1 },
    meshId: meshIdOf('10.32.0.0/12', 26), psks: null,
  });
  for (let batch = 0; batch < 10; batch++) {
    flood.send(Buffer.from(JSON.stringify({ t: 'state', records: Array.from({ length: 500 }, (_, i) => ({ ...good, name: `p${batch}-${i}` })) })));
  }
  await waitFor('the peer bound is reached and reported', () => h1.dataPlanePeers().rejected.some((r) => /already has 50 peers/.test(r.reason)));
  assert.ok(h1.status().peers.length <= 50, `peers ${h1.status().peers.length}`);
  flood.close();
  // Still a working mesh.
  assert.equal(h1.dataPlanePeers().peers.length, 1);
  assert.equal(h2.map!.digest(), h1.map!.digest());
});

test('a clean leave hands every block to a reachable heir, and the peer is no longer routed', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const init: IpallocInit = { mode: 'seed', names: ['l1', 'l2'] };
  const l1 = await startNode({ dir: 'l1', name: 'l1', port: p1, peers: [p2], init });
  const l2 = await startNode({ dir: 'l2', name: 'l2', port: p2, peers: [p1], init });
  await waitFor('connected', () => l1.dataPlanePeers().peers.length === 1 && l2.dataPlanePeers().peers.length === 1);
  const mine = l2.ownBlocks().length;
  const r = l2.leave();
  assert.equal(r.heir, 'l1');
  assert.equal(r.addresses, mine * 64);
  await waitFor('l1 owns everything and routes nobody', () => l1.ownBlocks().length === l1.map!.size && l1.dataPlanePeers().peers.length === 0);
  // Later records (heartbeats every 400 ms here, and a request for blocks) still say it left.
  l2.requestBlocks(2);
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(!l1.status().peers.some((p) => p.name === 'l2'), 'l2 stays gone');
  assert.equal(l2.wants, 0);
});

test('two live peers with one name: the collision is detected and reported, and that target is not retried', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const init: IpallocInit = { mode: 'observer' };
  const c1 = await startNode({ dir: 'c1', name: 'twin', port: p1, peers: [p2], init });
  const c2 = await startNode({ dir: 'c2', name: 'twin', port: p2, peers: [p1], init });
  await waitFor('both report the collision', () => !!c1.collision && !!c2.collision);
  assert.match(c1.collision!, /uses this node's name twin/);
  await waitFor('the target is marked failed for good', () => c1.status().connections.some((c) => c.state === 'failed' && c.retry === null && /collision/.test(c.info ?? '')));
});

test('a crafted ring whose seed list cannot build a ring is refused by a peer without one, which keeps waiting', async () => {
  const { dialChannel } = await import('./wire/index.ts');
  const { meshIdOf, ringIdOf } = await import('./node.ts');
  const port = await freePort();
  const o = await startNode({ dir: 'o1', port, peers: [], init: { mode: 'observer' } });
  const evil = await dialChannel('127.0.0.1', port, {
    self: { name: 'ee:ee:ee:ee:ee:e1', uid: '00000000000000e1', nickname: 'evil', port: 1 },
    meshId: meshIdOf('10.32.0.0/12', 26), psks: null,
  });
  const seeds = ['bad name!'];
  evil.send(Buffer.from(JSON.stringify({ t: 'state', ring: { id: ringIdOf('10.32.0.0/12', 26, seeds), seeds }, runs: [] })));
  await waitFor('the ring is refused', () => o.dataPlanePeers().rejected.some((r) => /cannot be built/.test(r.reason)));
  assert.equal(o.ring, null);
  assert.match(o.ipamStatus(), /priming/);
  evil.close();
});

test('setTargets: a node started with no peers dials the ones it is given later, and status lists them', async () => {
  const [p1, p2] = [await freePort(), await freePort()];
  const init: IpallocInit = { mode: 'seed', names: ['t1', 't2'] };
  const t1 = await startNode({ dir: 't1', name: 't1', port: p1, peers: [], init });
  const t2 = await startNode({ dir: 't2', name: 't2', port: p2, peers: [], init });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(t1.dataPlanePeers().peers.length, 0, 'nobody dials anybody without targets');
  t1.setTargets([{ host: '127.0.0.1', port: p2 }, { host: '127.0.0.1', port: p2 }]);
  assert.deepEqual(t1.status().targets, [`127.0.0.1:${p2}`], 'duplicates are dropped');
  await waitFor('t1 and t2 connect', () => t1.dataPlanePeers().peers.length === 1 && t2.dataPlanePeers().peers.length === 1);
  t1.setTargets([]);
  assert.deepEqual(t1.status().targets, []);
});
