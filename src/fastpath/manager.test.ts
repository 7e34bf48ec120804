import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../log/logger.ts';
import type { FastPathKernel, FastPathStat, PodLinkEntry } from './kernel.ts';
import { FastPath } from './manager.ts';

/** An in-memory FastPathKernel: the real one is tested end to end in test/e2e/fastpath-kernel.test.ts. */
function fakeKernel(): FastPathKernel & { attachments: Map<number, string>; calls: string[]; network?: string } {
  const pods = new Map<number, PodLinkEntry>();
  const uplinks = new Set<number>();
  const peers = new Set<string>();
  const attachments = new Map<number, string>();
  const calls: string[] = [];
  const k = {
    attachments, calls,
    attachUplink: (i: number) => { calls.push(`attachUplink ${i}`); attachments.set(i, 'uplink'); },
    attachPod: (i: number) => { calls.push(`attachPod ${i}`); attachments.set(i, 'pod'); },
    detach: (i: number) => void attachments.delete(i),
    attached: (i: number) => attachments.get(i) as 'uplink' | 'pod' | 'stale' | undefined,
    setNetwork: (c: string) => { k.network = c; },
    setPod: (e: PodLinkEntry) => { calls.push(`setPod ${e.ifindex}`); pods.set(e.ifindex, e); },
    deletePod: (i: number) => { calls.push(`deletePod ${i}`); pods.delete(i); },
    listPods: () => [...pods.values()],
    setUplink: (i: number) => void uplinks.add(i),
    deleteUplink: (i: number) => void uplinks.delete(i),
    listUplinks: () => [...uplinks],
    setPeer: (c: string) => { calls.push(`setPeer ${c}`); peers.add(c); },
    deletePeer: (c: string) => { calls.push(`deletePeer ${c}`); peers.delete(c); },
    listPeers: () => [...peers],
    stats: () => ({ rx_redirect: 3 }) as Record<FastPathStat, number>,
    close: () => undefined,
    network: undefined as string | undefined,
  };
  return k;
}

const pod = (ifindex: number, ipv4: string): PodLinkEntry => ({ ifindex, ipv4, podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02' });
const links = new Map([['eth0', 2], ['flannel.1', 5]]);

test('start attaches the uplinks that exist and fills the pod map from the kernel', () => {
  const k = fakeKernel();
  const fp = new FastPath({ open: () => k, linkIndex: (n) => links.get(n), routedPods: () => [pod(10, '10.16.1.2')], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0', 'flannel.1', 'weft.missing'] });
  assert.equal(k.network, '10.16.0.0/16');
  assert.deepEqual([...k.attachments], [[2, 'uplink'], [5, 'uplink'], [10, 'pod']]);
  assert.deepEqual(k.listUplinks().sort(), [2, 5]);
  assert.deepEqual(k.listPods().map((p) => p.ifindex), [10]);
  const s = fp.status();
  assert.equal(s.active, true);
  assert.equal(s.pods, 1);
  assert.equal(s.stats?.rx_redirect, 3);
  assert.equal(fp.notice(), undefined);
});

test('reconcile removes pods the kernel no longer has and changes only what differs', () => {
  const k = fakeKernel();
  let kernelPods = [pod(10, '10.16.1.2'), pod(11, '10.16.1.3')];
  const fp = new FastPath({ open: () => k, linkIndex: (n) => links.get(n), routedPods: () => kernelPods, log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0'] });
  k.calls.length = 0;
  kernelPods = [pod(11, '10.16.1.3'), pod(12, '10.16.1.9')];
  fp.reconcile();
  assert.deepEqual(k.calls, ['deletePod 10', 'setPod 12', 'attachPod 12']);
  k.calls.length = 0;
  fp.reconcile();
  assert.deepEqual(k.calls, [], 'a second pass with nothing changed changes nothing');
});

test('a program left by an older agent is replaced, and a pod attached by the CNI server gets its program at once', () => {
  const k = fakeKernel();
  k.attachments.set(10, 'stale');
  const fp = new FastPath({ open: () => k, linkIndex: () => undefined, routedPods: () => [pod(10, '10.16.1.2')], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: [] });
  assert.equal(k.attached(10), 'pod');
  fp.podAttached(pod(20, '10.16.1.20'));
  assert.equal(k.attached(20), 'pod');
  assert.ok(k.listPods().some((p) => p.ifindex === 20));
});

test('peers: the map follows the latest set exactly', () => {
  const k = fakeKernel();
  const fp = new FastPath({ open: () => k, linkIndex: () => undefined, routedPods: () => [], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: [] });
  fp.setPeers(['10.16.2.0/24', '10.16.3.0/24', '10.16.2.0/24']);
  assert.deepEqual(k.listPeers().sort(), ['10.16.2.0/24', '10.16.3.0/24']);
  fp.setPeers(['10.16.3.0/24']);
  assert.deepEqual(k.listPeers(), ['10.16.3.0/24']);
  assert.equal(fp.status().peers, 1);
});

test('a load failure is the fallback: not active, the reason in the status and the notice, nothing thrown later', () => {
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (_o: unknown, m: string) => void warnings.push(m) } as unknown as typeof silentLogger;
  const fp = new FastPath({ open: () => { throw new Error('the kernel refused the program: invalid argument'); }, linkIndex: () => 1, routedPods: () => [pod(1, '10.0.0.1')], log });
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0'] });
  fp.podAttached(pod(3, '10.16.1.3'));
  fp.setPeers(['10.16.2.0/24']);
  fp.reconcile();
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0'] });
  const s = fp.status();
  assert.equal(s.active, false);
  assert.match(s.reason ?? '', /normal path: the kernel refused the program/);
  assert.match(fp.notice() ?? '', /could not be loaded/);
  assert.equal(warnings.filter((w) => /could not be loaded/.test(w)).length, 1, 'said once');
});

test('a failing kernel step is logged once and does not stop the other steps', () => {
  const k = fakeKernel();
  k.attachPod = () => { throw new Error('no such device'); };
  const warnings: string[] = [];
  const log = { ...silentLogger, warn: (_o: unknown, m: string) => void warnings.push(m) } as unknown as typeof silentLogger;
  const fp = new FastPath({ open: () => k, linkIndex: (n) => links.get(n), routedPods: () => [pod(10, '10.16.1.2')], log });
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0'] });
  fp.setPeers(['10.16.2.0/24']);
  fp.reconcile();
  assert.equal(k.attached(2), 'uplink');
  assert.deepEqual(k.listPeers(), ['10.16.2.0/24']);
  assert.equal(warnings.filter((w) => /reconcile pods/.test(w)).length, 1);
});

test('a failing step shows in the status and the notice until a whole reconcile goes through', () => {
  const k = fakeKernel();
  let broken = true;
  const attachPod = k.attachPod;
  k.attachPod = (i: number) => {
    if (broken) throw new Error('no such device');
    attachPod(i);
  };
  const fp = new FastPath({ open: () => k, linkIndex: () => undefined, routedPods: () => [pod(10, '10.16.1.2')], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: [] });
  assert.equal(fp.status().active, true);
  assert.match(fp.status().error ?? '', /cannot reconcile pods: no such device/);
  assert.match(fp.notice() ?? '', /no such device.*normal path/);
  broken = false;
  fp.reconcile();
  assert.equal(fp.status().error, undefined);
  assert.equal(fp.notice(), undefined);
});

test('peers: IPv6 subnets are left to the normal path, and one refused entry does not stop the others', () => {
  const k = fakeKernel();
  const setPeer = k.setPeer;
  k.setPeer = (c: string) => {
    if (c === '10.16.9.0/24') throw new Error('the map is full');
    setPeer(c);
  };
  const fp = new FastPath({ open: () => k, linkIndex: () => undefined, routedPods: () => [], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: [] });
  fp.setPeers(['fd00:16:2::/64', '10.16.2.0/24', '10.16.9.0/24', '10.16.3.0/24']);
  assert.deepEqual(k.listPeers().sort(), ['10.16.2.0/24', '10.16.3.0/24']);
});

test('pods: a veth gone between the dump and the attach does not keep the other pods out', () => {
  const k = fakeKernel();
  const attachPod = k.attachPod;
  k.attachPod = (i: number) => {
    if (i === 11) throw new Error('no such device');
    attachPod(i);
  };
  k.attachUplink = () => { throw new Error('no such device'); };
  const fp = new FastPath({ open: () => k, linkIndex: (n) => links.get(n), routedPods: () => [pod(10, '10.16.1.2'), pod(11, '10.16.1.3'), pod(12, '10.16.1.4')], log: silentLogger });
  fp.start({ network: '10.16.0.0/16', uplinks: ['eth0'] });
  assert.deepEqual([10, 12].map((i) => k.attached(i)), ['pod', 'pod']);
  assert.deepEqual(k.listPods().map((p) => p.ifindex).sort(), [10, 11, 12]);
  assert.deepEqual(k.listUplinks(), [2], 'the uplink map is kept right even when its attach failed');
});
