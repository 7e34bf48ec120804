// Mesh mode's control plane as the runtime drives it, two of them over loopback TCP: open,
// acquire (a ring by consensus, then a home block), start (peers), the pod block source (grow
// by a grant), the rmpeer command, and the status it reports.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../../mesh/testing.ts';
import { silentLogger } from '../../log/logger.ts';
import type { ControlPlaneEvents, NodeRanges, PeerSnapshot } from '../../agent/control-plane.ts';
import { MeshControlPlane } from './mesh-control-plane.ts';

const root = mkdtempSync(join(tmpdir(), 'weft-mesh-cp-'));
const planes: MeshControlPlane[] = [];
after(async () => {
  await Promise.all(planes.map((p) => p.stop()));
  rmSync(root, { recursive: true, force: true });
});

interface Recorder extends ControlPlaneEvents {
  phases: string[];
  peers: PeerSnapshot[];
  ranges: (NodeRanges | null)[];
  problems: string[];
}

function recorder(): Recorder {
  const r: Recorder = {
    phases: [], peers: [], ranges: [], problems: [],
    onPhase: (phase, reason) => r.phases.push(`${phase}: ${reason}`),
    onPeers: (s) => r.peers.push(s),
    onRanges: (x) => r.ranges.push(x),
    onConfig: () => undefined,
    onProblem: (_k, m) => r.problems.push(m),
    onRecovered: () => undefined,
  };
  return r;
}

function plane(dir: string, port: number, peer: number, growWaitMs = 10_000): MeshControlPlane {
  const p = new MeshControlPlane({
    node: {
      dir: join(root, dir), nickname: dir, listenHost: '127.0.0.1', port, targets: [{ host: '127.0.0.1', port: peer }], psks: null,
      universe: '10.32.0.0/16', blockPrefix: 24, init: { mode: 'consensus', peers: 2 }, connLimit: 8, version: 'test', log: silentLogger,
      timing: { tickMs: 100, heartbeatMs: 400, antiEntropyMs: 300, deadAfterMs: 1500 },
    },
    backend: { Type: 'vxlan', Port: 6784 }, nftables: false, log: silentLogger, growWaitMs,
  });
  planes.push(p);
  return p;
}

test('two nodes: a shared ring, a home block each, each other as peers, growth, rmpeer', async () => {
  const [pa, pb] = [await freePort(), await freePort()];
  const a = plane('a', pa, pb);
  const b = plane('b', pb, pa);
  const ea = recorder();
  const eb = recorder();
  const config = await a.open(ea);
  await b.open(eb);
  assert.equal(config.network, '10.32.0.0/16');
  assert.match(config.warnings.join(' '), /without a password/);
  const announce = (ip: string) => ({ publicIp: ip, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:0a' } });
  const [ra, rb] = await Promise.all([a.acquire(announce('127.0.0.1')), b.acquire(announce('127.0.0.1'))]);
  assert.ok(ea.phases.some((p) => /awaiting consensus \(quorum: 2/.test(p)) || eb.phases.some((p) => /awaiting consensus/.test(p)), 'the wait for a quorum is reported');
  assert.equal(ra.expiresAt, null);
  assert.match(ra.subnets[0]!, /\/24$/);
  assert.notEqual(ra.subnets[0], rb.subnets[0]);
  await Promise.all([a.start(), b.start()]);
  await waitFor('a sees b with its blocks', () => ea.peers.at(-1)?.peers.length === 1);
  const peer = ea.peers.at(-1)!.peers[0]!;
  assert.equal(peer.backendType, 'vxlan');
  for (const s of peer.subnets) for (const mine of ra.subnets) assert.notEqual(s, mine);

  // The pod block source: the home block is active; growing beyond the owned blocks asks the mesh.
  assert.deepEqual(a.podBlocks.active(), [ra.subnets[0]]);
  assert.ok(a.podBlocks.blocks().includes(ra.subnets[0]!));
  const status = a.status();
  assert.equal(status.kind, 'mesh');
  const mesh = (status.details as { mesh: { ipam: { status: string } } }).mesh;
  assert.equal(mesh.ipam.status, 'ready');

  // grow() asks the mesh: the donor (b, with spare blocks) grants more.
  const before = a.node.ownBlocks().length;
  await a.podBlocks.grow();
  assert.ok(a.node.ownBlocks().length > before, 'a was granted blocks');
  await waitFor('b agrees', () => b.node.map!.digest() === a.node.map!.digest());

  // rmpeer of a live peer is refused; once b is gone, a takes its blocks.
  await assert.rejects(a.command('rmpeer', { peer: 'b' }), /is alive/);
  await assert.rejects(a.command('nonsense', {}), /no command/);
  await b.stop();
  await waitFor('b unreachable', () => !a.node.reachable(b.node.name));
  const taken = await a.command('rmpeer', { peer: 'b' }) as { addresses: number };
  assert.ok(taken.addresses > 0);
  assert.equal(a.node.ownBlocks().length, a.node.map!.size, 'a owns the whole range now');
  await waitFor('a reports its new ranges to the runtime', () => ea.ranges.length > 0);
  const last = ea.ranges.at(-1)!;
  assert.equal(last.subnets[0], ra.subnets[0], 'the home block stays first');
  assert.ok(last.subnets.includes('10.32.0.0/16') || last.subnets.length > ra.subnets.length, `ranges now ${last.subnets.join(' ')}`);
});
