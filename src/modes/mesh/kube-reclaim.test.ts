// The reclaim protocol through the real client over real HTTP against the stand-in: several
// reclaimers racing over dead records (exactly one rmpeer each, run only by the claim's holder),
// a gone reclaimer's claim taken over (and a renewing one not), a rebuilt node, a Node that was
// only missing from a stale cache, the owner clearing a claim on its own record, and the ring
// record created exactly once. The end-to-end test with real MeshNodes is kube-peers.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../log/logger.ts';
import { waitFor } from '../../mesh/testing.ts';
import { connectKube, type KubeClient } from '../../kube/client.ts';
import { KubeStandin } from '../../kube/standin/server.ts';
import { ANNOTATION, NO_RECLAIMER, newPeerRecord, parsePeerRecord, recordName, withAnnotations, type LeaseLike, type PeerRecordLease } from './kube-objects.ts';
import { Reclaimer, type ClusterView, type RmpeerOutcome } from './kube-reclaim.ts';
import { ensureOwnRecord, newRingRecord, ringSeeds } from './kube-records.ts';

const NS = 'weft';
const dir = mkdtempSync(join(tmpdir(), 'weft-kube-reclaim-'));
let standin: KubeStandin;
const clients: KubeClient[] = [];
const reclaimers: Reclaimer[] = [];

before(async () => {
  standin = await KubeStandin.start();
  standin.writeKubeconfig(join(dir, 'kubeconfig'));
  for (let i = 0; i < 3; i++) clients.push(await connectKube({ kubeconfigFile: join(dir, 'kubeconfig') }));
});

after(async () => {
  await Promise.all(reclaimers.map((r) => r.stop()));
  await standin.close();
  rmSync(dir, { recursive: true, force: true });
});

function nodeUid(name: string): string {
  return (standin.get('nodes', undefined, name) as { metadata: { uid: string } }).metadata.uid;
}

function addRecord(peer: string, node: string, uid: string, extra: Record<string, string> = {}): void {
  const lease = newPeerRecord(NS, { peer, node, nodeUid: uid });
  lease.metadata!.annotations = { ...lease.metadata!.annotations, ...extra };
  standin.create('leases', lease);
}

function records(): Map<string, PeerRecordLease> {
  const out = new Map<string, PeerRecordLease>();
  for (const l of standin.list('leases', NS) as LeaseLike[]) {
    const r = parsePeerRecord(l);
    if (!('error' in r)) out.set(r.peer, r);
  }
  return out;
}

function view(): ClusterView {
  const nodes = new Map<string, string>();
  for (const n of standin.list('nodes') as { metadata: { name: string; uid: string } }[]) nodes.set(n.metadata.name, n.metadata.uid);
  return { nodes, records: records() };
}

interface Call {
  by: string;
  peer: string;
  /** Who the record named as its reclaimer when rmpeer ran. */
  holder: string | undefined;
}

type Api = ConstructorParameters<typeof Reclaimer>[0]['api'];

/**
 * A reclaimer for peer `self` on `node`. Its rmpeer records each call and whose claim the record
 * showed at that moment; `alive` says how many more attempts on a peer are refused ("still looks alive").
 */
function reclaimer(self: string, node: string, calls: Call[], o: { alive?: Map<string, number>; staleAfterMs?: number; api?: Api } = {}): Reclaimer {
  const rmpeer = (peer: string): RmpeerOutcome => {
    const lease = standin.get('leases', NS, recordName(peer)) as LeaseLike | undefined;
    calls.push({ by: self, peer, holder: lease?.metadata?.annotations?.[ANNOTATION.reclaimer] });
    const refusals = o.alive?.get(peer) ?? 0;
    if (refusals > 0) {
      o.alive!.set(peer, refusals - 1);
      return { done: false, reason: `${peer} still looks alive` };
    }
    return { done: true, addresses: 64 };
  };
  const r = new Reclaimer({
    api: o.api ?? clients[reclaimers.length % clients.length]!, namespace: NS, self: { peer: self, node },
    selfNodeUid: () => (standin.get('nodes', undefined, node) as { metadata: { uid: string } } | undefined)?.metadata.uid,
    rmpeer, log: silentLogger, retryMs: 50, rankDelayMs: 0, ...(o.staleAfterMs !== undefined ? { staleAfterMs: o.staleAfterMs } : {}),
  });
  reclaimers.push(r);
  return r;
}

/** Holds each racer's first claim write on a record until all racers have sent theirs: a real race, every time. */
function racingApi(client: KubeClient, racers: number, gates: Map<string, { waiting: (() => void)[] }>, conflicts: Map<string, number>): Api {
  const first = new Set<string>();
  return {
    getNode: (n) => client.getNode(n), getLease: (ns, n) => client.getLease(ns, n), deleteLease: (ns, n, p) => client.deleteLease(ns, n, p),
    replaceLease: async (ns, lease) => {
      const name = lease.metadata?.name ?? '';
      if (!first.has(name)) {
        first.add(name);
        const gate = gates.get(name) ?? { waiting: [] };
        gates.set(name, gate);
        await new Promise<void>((resolve) => {
          gate.waiting.push(resolve);
          if (gate.waiting.length === racers) for (const go of gate.waiting) go();
          setTimeout(resolve, 10_000);
        });
      }
      const result = await client.replaceLease(ns, lease);
      if (result === 'conflict') conflicts.set(name, (conflicts.get(name) ?? 0) + 1);
      return result;
    },
  };
}

test('three reclaimers race over five dead records: each is reclaimed exactly once, by the claim holder, and deleted', async () => {
  for (const n of ['r1', 'r2', 'r3']) standin.addNode(n, { internalIP: '10.0.0.1' });
  for (const [i, n] of ['r1', 'r2', 'r3'].entries()) addRecord(`live-${i}`, n, nodeUid(n));
  const dead = ['d0', 'd1', 'd2', 'd3', 'd4'];
  for (const d of dead) {
    standin.addNode(`node-${d}`, { internalIP: '10.0.1.1' });
    addRecord(d, `node-${d}`, nodeUid(`node-${d}`));
    standin.delete('nodes', undefined, `node-${d}`);
  }
  const calls: Call[] = [];
  const alive = new Map(dead.map((d) => [d, 2]));
  const gates = new Map<string, { waiting: (() => void)[] }>();
  const conflicts = new Map<string, number>();
  const racers = ['r1', 'r2', 'r3'].map((n, i) => reclaimer(`live-${i}`, n, calls, { alive, api: racingApi(clients[i]!, 3, gates, conflicts) }));
  const v = view();
  for (const r of racers) r.reconcile(v);
  await waitFor('every dead record is gone', () => dead.every((d) => standin.get('leases', NS, recordName(d)) === undefined), 30_000);
  await waitFor('the reclaimers are idle', () => racers.every((r) => r.tasks().length === 0));
  for (const d of dead) {
    // All three wrote a claim on the same resourceVersion: two lost with 409.
    assert.equal(conflicts.get(recordName(d)), 2, `${d}: ${conflicts.get(recordName(d))} conflicts`);
    const by = new Set(calls.filter((c) => c.peer === d).map((c) => c.by));
    assert.equal(by.size, 1, `${d} had rmpeer called by ${[...by].join(', ')}`);
    // Two refusals ("still alive"), then the one rmpeer that took the blocks.
    assert.equal(calls.filter((c) => c.peer === d).length, 3);
  }
  for (const c of calls) assert.equal(c.holder, c.by, `rmpeer of ${c.peer} ran on ${c.by} while the record named ${c.holder}`);
  assert.equal(racers.reduce((n, r) => n + r.reclaimed, 0), dead.length);
  assert.equal(racers.reduce((n, r) => n + r.addresses, 0), dead.length * 64);
  // Live records are untouched.
  for (let i = 0; i < 3; i++) assert.ok(standin.get('leases', NS, recordName(`live-${i}`)));
});

test("a gone reclaimer's claim is taken over once it stops changing; a live or renewing one is not", async () => {
  standin.addNode('s1', { internalIP: '10.0.2.1' });
  standin.addNode('s2', { internalIP: '10.0.2.2' });
  addRecord('s-live-1', 's1', nodeUid('s1'));
  addRecord('s-live-2', 's2', nodeUid('s2'));
  const claimBy = (peer: string, node: string, uid: string): Record<string, string> => ({
    [ANNOTATION.reclaimer]: peer, [ANNOTATION.reclaimerNode]: node, [ANNOTATION.reclaimerNodeUid]: uid, [ANNOTATION.reclaimStarted]: new Date().toISOString(),
  });
  // Dead peer x1, claimed by s-live-2 (alive): s-live-1 leaves it alone.
  addRecord('x1', 'gone-node-1', 'uid-gone-1', claimBy('s-live-2', 's2', nodeUid('s2')));
  // Dead peer x2, claimed by a peer whose node is gone: taken over.
  addRecord('x2', 'gone-node-2', 'uid-gone-2', claimBy('s-ghost', 'gone-node-3', 'uid-gone-3'));
  // Dead peer x3, claimed by a peer whose node is gone but that still renews its claim.
  addRecord('x3', 'gone-node-4', 'uid-gone-4', claimBy('s-zombie', 'gone-node-5', 'uid-gone-5'));
  const calls: Call[] = [];
  const r = reclaimer('s-live-1', 's1', calls, { staleAfterMs: 3000 });
  let renewing = true;
  const renewer = (async () => {
    while (renewing) {
      const lease = standin.get('leases', NS, recordName('x3')) as LeaseLike;
      standin.update('leases', withAnnotations(lease, { [ANNOTATION.reclaimRenewed]: new Date().toISOString() + Math.random() }));
      await new Promise((res) => setTimeout(res, 50));
    }
  })();
  const v = view();
  r.reconcile({ nodes: v.nodes, records: new Map([...v.records].filter(([p]) => p !== 'x3')) });
  assert.deepEqual(r.tasks().map((t) => t.peer), ['x2'], 'only the claim of a gone reclaimer is looked at');
  r.reconcile(v);
  await waitFor('x2 is taken over and reclaimed', () => standin.get('leases', NS, recordName('x2')) === undefined, 30_000);
  assert.deepEqual(calls.map((c) => c.peer), ['x2']);
  assert.match(r.tasks().find((t) => t.peer === 'x3')?.state ?? '', /taking over in/);
  // 1.5 s of renewals every 50 ms, against a 3 s staleness bound: no takeover meanwhile.
  await new Promise((res) => setTimeout(res, 1500));
  assert.ok(!calls.some((c) => c.peer === 'x3'), 'a renewing claim was taken over');
  renewing = false;
  await renewer;
  await waitFor('x3 is taken over once its claim stopped changing', () => standin.get('leases', NS, recordName('x3')) === undefined, 30_000);
  assert.deepEqual(calls.map((c) => c.peer), ['x2', 'x3']);
  const x1 = standin.get('leases', NS, recordName('x1')) as LeaseLike | undefined;
  assert.equal(x1?.metadata?.annotations?.[ANNOTATION.reclaimer], 's-live-2', 'the live claim is untouched');
});

test('a rebuilt node: its new peer reclaims the old peer of the same Node; others leave it, and a re-created Node (new uid) is everyone\'s', async () => {
  standin.addNode('b1', { internalIP: '10.0.3.1' });
  standin.addNode('b2', { internalIP: '10.0.3.2' });
  addRecord('b-new', 'b1', nodeUid('b1'));
  addRecord('b-2', 'b2', nodeUid('b2'));
  // Same Node object, wiped disk: the old peer's record names b1 with b1's current uid.
  addRecord('b-old', 'b1', nodeUid('b1'));
  const calls: Call[] = [];
  const onB1 = reclaimer('b-new', 'b1', calls);
  const onB2 = reclaimer('b-2', 'b2', calls);
  const v = view();
  onB2.reconcile(v);
  assert.equal(onB2.tasks().length, 0, 'a live Node with the record\'s uid is not dead to other nodes');
  onB1.reconcile(v);
  await waitFor('b-old is reclaimed by b-new', () => standin.get('leases', NS, recordName('b-old')) === undefined);
  assert.deepEqual(calls.map((c) => `${c.by}>${c.peer}`), ['b-new>b-old']);

  // The Node is deleted and registers again (a new uid): its old record is dead to every peer.
  addRecord('b-older', 'b2', nodeUid('b2'));
  standin.delete('nodes', undefined, 'b2');
  standin.addNode('b2', { internalIP: '10.0.3.2' });
  onB1.reconcile(view());
  await waitFor('b-older is reclaimed', () => standin.get('leases', NS, recordName('b-older')) === undefined);
  assert.deepEqual(calls.map((c) => `${c.by}>${c.peer}`).slice(1).sort(), ['b-new>b-2', 'b-new>b-older'], 'b-2 still had the old uid too: its agent would have refreshed it');
});

test('a Node missing only from a stale cache is confirmed alive with the API: nothing is reclaimed', async () => {
  standin.addNode('c1', { internalIP: '10.0.4.1' });
  standin.addNode('c2', { internalIP: '10.0.4.2' });
  addRecord('c-1', 'c1', nodeUid('c1'));
  addRecord('c-2', 'c2', nodeUid('c2'));
  const calls: Call[] = [];
  const r = reclaimer('c-1', 'c1', calls);
  const v = view();
  const stale = new Map(v.nodes);
  stale.delete('c2');
  r.reconcile({ nodes: stale, records: new Map([...v.records].filter(([p]) => p === 'c-1' || p === 'c-2')) });
  assert.deepEqual(r.tasks().map((t) => t.peer), ['c-2']);
  await waitFor('the check is over', () => r.tasks().length === 0);
  assert.equal(calls.length, 0);
  const lease = standin.get('leases', NS, recordName('c-2')) as LeaseLike;
  assert.equal(lease.metadata?.annotations?.[ANNOTATION.reclaimer], undefined, 'not even claimed');
});

test('the owner clears a claim on its own record and moves it to its Node\'s new uid; a foreign record under its name is a collision', async () => {
  standin.addNode('o1', { internalIP: '10.0.5.1' });
  const client = clients[0]!;
  const self = { peer: 'o-peer', node: 'o1', nodeUid: nodeUid('o1') };
  assert.equal(await ensureOwnRecord(client, NS, self), 'created');
  assert.equal(await ensureOwnRecord(client, NS, self), 'unchanged');
  const lease = standin.get('leases', NS, recordName('o-peer')) as LeaseLike;
  const claimed = standin.update('leases', withAnnotations(lease, { [ANNOTATION.reclaimer]: 'someone', [ANNOTATION.reclaimerNode]: 'x', [ANNOTATION.reclaimerNodeUid]: 'y' })) as LeaseLike;
  standin.update('leases', withAnnotations(claimed, { [ANNOTATION.nodeUid]: 'old-uid' }));
  // The cached copy is stale (an older resourceVersion): the CAS fails, it re-reads, and fixes it.
  assert.equal(await ensureOwnRecord(client, NS, self, claimed), 'updated');
  const fixed = parsePeerRecord(standin.get('leases', NS, recordName('o-peer')) as LeaseLike);
  assert.ok(!('error' in fixed));
  assert.equal(fixed.nodeUid, self.nodeUid);
  assert.equal(fixed.reclaimer, undefined);
  for (const k of Object.keys(NO_RECLAIMER)) assert.equal(fixed.lease.metadata?.annotations?.[k], undefined);
  const foreign = withAnnotations(standin.get('leases', NS, recordName('o-peer')) as LeaseLike, { [ANNOTATION.peer]: 'another' });
  standin.update('leases', foreign);
  const r = await ensureOwnRecord(client, NS, self);
  assert.ok(typeof r === 'object' && /holds peer "another"/.test(r.collision));
});

test('the ring record: racing agents agree on one seed list, created once; a malformed one is refused by name', async () => {
  const results = await Promise.all(['aa:00:00:00:00:01', 'aa:00:00:00:00:02', 'aa:00:00:00:00:03'].map((p, i) => ringSeeds(clients[i]!, NS, [p], `n${i}`)));
  assert.equal(results.filter((r) => r.created).length, 1);
  assert.equal(new Set(results.map((r) => r.seeds.join(','))).size, 1);
  assert.equal(results[0]!.seeds.length, 1);
  standin.delete('leases', NS, 'mesh-ring');
  const bad = newRingRecord(NS, ['x'], 'n0');
  bad.metadata!.annotations![ANNOTATION.ringSeeds] = 'ok-name,not a name!';
  standin.create('leases', bad);
  await assert.rejects(ringSeeds(clients[0]!, NS, ['y'], 'n0'), /mesh-ring is unusable: .*not a peer name/);
  standin.delete('leases', NS, 'mesh-ring');
});
