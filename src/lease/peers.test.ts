import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../log/logger.ts';
import { describeSubnets, formatLeaseValue } from './lease.ts';
import { LeaseManager } from './manager.ts';
import { MemoryLeaseStore } from './memory/memory-store.ts';
import { parseNetworkConfig } from './network-config.ts';
import { peerProblem, watchPeers, type PeerChange, type PeerLease } from './peers.ts';
import { parseLeaseKey, parseLeaseValue } from './lease.ts';
import type { WatchHandlers } from './store.ts';
import { delegateStore, FakeClock } from './testing.ts';

const config = parseNetworkConfig('{"Network":"10.16.0.0/16"}');
const ME = '192.168.1.10';

function value(publicIp: string, macByte = 1): string {
  const vtepMac = `02:00:00:00:00:${macByte.toString(16).padStart(2, '0')}`;
  return formatLeaseValue({ publicIp, publicIpv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: vtepMac }, backendV6Data: undefined });
}

function capture() {
  const lines: { level: number; msg: string; key?: string }[] = [];
  const logger = createLogger({ name: 'test', level: 'debug', destination: { write: (s: string) => { lines.push(JSON.parse(s)); } } });
  return { logger, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

const names = (ps: readonly PeerLease[]): string[] => ps.map((p) => describeSubnets(p.subnets));

/** A store whose watch can lose events and be told to reset, as a compacted etcd would. */
function lossy(inner: MemoryLeaseStore) {
  const active = new Set<WatchHandlers>();
  const control = { drop: false, reset: () => { for (const h of [...active]) h.onReset('test: fell behind'); } };
  const store = delegateStore(inner, {
    watchLeases: (after, handlers) => {
      const mine: WatchHandlers = { ...handlers, onEvent: (e) => { if (!control.drop) handlers.onEvent(e); } };
      active.add(mine);
      const w = inner.watchLeases(after, mine);
      return { close: () => { active.delete(mine); w.close(); } };
    },
  });
  return { store, control };
}

async function setup() {
  const clock = new FakeClock();
  const memory = new MemoryLeaseStore({ clock });
  const { store, control } = lossy(memory);
  const log = capture();
  const m = new LeaseManager({ store, config, publicIp: ME, backendType: 'vxlan', timers: clock, random: () => 0, logger: log.logger, retryIntervalSeconds: 10 });
  await memory.create('subnets/10.16.5.0-24', value('192.168.1.5'), 3600);
  await memory.create('subnets/10.16.6.0-24', value('192.168.1.6'), 3600);
  const own = await m.acquire(); // 10.16.1.0/24
  const changes: PeerChange[] = [];
  const watch = m.watchPeers((c) => changes.push(c));
  await watch.ready;
  await clock.settle();
  return { clock, memory, control, log, m, own, changes, watch };
}

describe('peer watching', () => {
  it('starts with the full snapshot, own subnet filtered out, sorted', async () => {
    const { changes, own } = await setup();
    assert.equal(own.key, 'subnets/10.16.1.0-24');
    assert.equal(changes.length, 1);
    assert.equal(changes[0]?.cause, 'snapshot');
    assert.deepEqual(names(changes[0]?.peers ?? []), ['10.16.5.0/24', '10.16.6.0/24']);
    assert.deepEqual(names(changes[0]?.added ?? []), ['10.16.5.0/24', '10.16.6.0/24']);
  });

  it('delivers add, update and remove with the whole set each time; an unchanged renewal is no change', async () => {
    const { clock, memory, changes } = await setup();
    await memory.create('subnets/10.16.3.0-24', value('192.168.1.3'), 3600);
    await clock.settle();
    assert.deepEqual(names(changes[1]?.added ?? []), ['10.16.3.0/24']);
    assert.deepEqual(names(changes[1]?.peers ?? []), ['10.16.3.0/24', '10.16.5.0/24', '10.16.6.0/24']);

    await memory.put('subnets/10.16.5.0-24', value('192.168.1.5'), 3600); // a renewal: same value
    await clock.settle();
    assert.equal(changes.length, 2);

    await memory.put('subnets/10.16.5.0-24', value('192.168.1.5', 0x55), 3600); // restarted: new VTEP MAC
    await clock.settle();
    assert.equal(changes[2]?.cause, 'event');
    assert.deepEqual(names(changes[2]?.updated ?? []), ['10.16.5.0/24']);
    assert.match(changes[2]?.peers[1]?.value ?? '', /02:00:00:00:00:55/);

    await memory.delete('subnets/10.16.6.0-24');
    await clock.settle();
    assert.deepEqual(names(changes[3]?.removed ?? []), ['10.16.6.0/24']);
    assert.deepEqual(names(changes[3]?.peers ?? []), ['10.16.3.0/24', '10.16.5.0/24']);
  });

  it('never reports our own lease, not even its renewals', async () => {
    const { clock, memory, own, changes } = await setup();
    await memory.put(own.key, own.value, 3600);
    await clock.settle();
    assert.equal(changes.length, 1);
  });

  it('skips keys that are not subnets and values that are not leases, with a warning, and reports them as rejected', async () => {
    const { clock, memory, log, changes } = await setup();
    await memory.put('subnets/not-a-subnet', value('192.168.1.9'), 3600);
    await memory.put('subnets/10.16.9.0-24', '{"PublicIP":', 3600);
    await clock.settle();
    assert.equal(changes.length, 3, 'each new rejection is delivered, with no peer change');
    assert.deepEqual(changes.slice(1).map((c) => [c.added.length, c.updated.length, c.removed.length]), [[0, 0, 0], [0, 0, 0]]);
    assert.deepEqual(changes[2]?.rejected.map((r) => r.key), ['subnets/10.16.9.0-24', 'subnets/not-a-subnet']);
    assert.match(changes[2]?.rejected[0]?.reason ?? '', /^value is not a flannel lease: not JSON/);
    assert.ok(log.warnings().some((w) => /skipping subnets\/not-a-subnet: "not-a-subnet" is not a subnet key/.test(w)));
    assert.ok(log.warnings().some((w) => /skipping subnets\/10.16.9.0-24: .*value is not a flannel lease: not JSON/.test(w)));
    // A known peer rewritten with garbage is gone for the data plane.
    await memory.put('subnets/10.16.5.0-24', '{"PublicIP":"nope"}', 3600);
    await clock.settle();
    assert.deepEqual(names(changes[3]?.removed ?? []), ['10.16.5.0/24']);
    assert.deepEqual(changes[3]?.rejected.map((r) => r.key), ['subnets/10.16.5.0-24', 'subnets/10.16.9.0-24', 'subnets/not-a-subnet']);
  });

  it('refuses a lease outside the Network, larger than SubnetLen, or with an unusable PublicIP; logs each once, re-lists included', async () => {
    const { clock, memory, control, log, changes } = await setup();
    const bad: [string, string, RegExp][] = [
      ['subnets/192.168.1.0-24', value('192.168.1.20'), /subnet 192\.168\.1\.0\/24 is outside the cluster Network 10\.16\.0\.0\/16/],
      ['subnets/10.16.0.0-17', value('192.168.1.21'), /larger than a node's \/24 \(SubnetLen\)/],
      ['subnets/10.16.20.0-24', value('0.0.0.0'), /PublicIP 0\.0\.0\.0 is in 0\.0\.0\.0\/8/],
      ['subnets/10.16.21.0-24', value('127.0.0.1'), /PublicIP 127\.0\.0\.1 is a loopback address/],
      ['subnets/10.16.22.0-24', value('224.0.0.251'), /is a multicast address/],
      ['subnets/10.16.23.0-24', value('255.255.255.255'), /is the broadcast address/],
      ['subnets/10.16.24.0-24', value('169.254.169.254'), /is a link-local address/],
      ['subnets/10.16.25.0-24', value('10.16.99.7'), /PublicIP 10\.16\.99\.7 lies inside the cluster Network/],
      ['subnets/10.16.26.0-24', '{"BackendType":"vxlan"}', /PublicIP 0\.0\.0\.0/],
    ];
    for (const [key, v] of bad) await memory.put(key, v, 3600);
    await clock.settle();
    const last = changes.at(-1);
    assert.deepEqual(names(last?.peers ?? []), ['10.16.5.0/24', '10.16.6.0/24'], 'none of them is a peer');
    assert.deepEqual(last?.rejected.map((r) => r.key), bad.map(([k]) => k).sort());
    for (const [key, , re] of bad) assert.match(last?.rejected.find((r) => r.key === key)?.reason ?? '', re, key);
    const skips = (): string[] => log.warnings().filter((w) => w.startsWith('skipping '));
    const warned = skips().length;
    assert.equal(warned, bad.length);
    // A re-list after a reset, a compaction and unchanged rewrites: nothing new to say or deliver.
    const delivered = changes.length;
    control.reset();
    await clock.settle();
    await memory.put(bad[0]![0], bad[0]![1], 3600);
    await clock.settle();
    assert.equal(skips().length, warned, 'each (key, reason) logged once');
    assert.equal(changes.length, delivered, 'the same rejected set is no change');
    // Fixed: the key becomes a peer and leaves the rejected set.
    await memory.put('subnets/10.16.20.0-24', value('192.168.1.30'), 3600);
    await clock.settle();
    assert.deepEqual(names(changes.at(-1)?.added ?? []), ['10.16.20.0/24']);
    assert.ok(!changes.at(-1)?.rejected.some((r) => r.key === 'subnets/10.16.20.0-24'));
    // Deleted: gone from the set too.
    await memory.delete('subnets/10.16.21.0-24');
    await clock.settle();
    assert.ok(!changes.at(-1)?.rejected.some((r) => r.key === 'subnets/10.16.21.0-24'));
  });

  it('keys the store could not hand over (listing.skipped, skip events) are rejected too', async () => {
    const clock = new FakeClock();
    const memory = new MemoryLeaseStore({ clock });
    await memory.create('subnets/10.16.5.0-24', value('192.168.1.5'), 3600);
    let handlers: WatchHandlers | undefined;
    const store = delegateStore(memory, {
      listLeases: async () => ({ ...(await memory.listLeases()), skipped: [{ key: 'subnets/10.16.7.0-24', reason: 'value of 9000 bytes is over the limit' }] }),
      watchLeases: (_after, h) => { handlers = h; return { close: () => undefined }; },
    });
    const log = capture();
    const changes: PeerChange[] = [];
    const w = watchPeers({ store, isOwn: () => false, bounds: config, timers: clock, retryIntervalMs: 10_000, logger: log.logger }, (c) => changes.push(c));
    await w.ready;
    assert.deepEqual(changes[0]?.rejected, [{ key: 'subnets/10.16.7.0-24', reason: 'value of 9000 bytes is over the limit' }]);
    handlers?.onEvent({ type: 'skip', key: 'subnets/10.16.5.0-24', reason: 'not decodable', revision: 9 });
    assert.deepEqual(names(changes[1]?.removed ?? []), ['10.16.5.0/24'], 'a skipped key is gone for the data plane');
    assert.deepEqual(changes[1]?.rejected.map((r) => r.key), ['subnets/10.16.5.0-24', 'subnets/10.16.7.0-24']);
    handlers?.onEvent({ type: 'skip', key: 'subnets/10.16.5.0-24', reason: 'not decodable', revision: 10 });
    assert.equal(changes.length, 2, 'the same skip again is no change');
    assert.equal(log.warnings().length, 2);
    w.close();
  });

  it('after a reset, diffs the new listing against what it had', async () => {
    const { clock, memory, control, changes } = await setup();
    control.drop = true; // these events are lost...
    await memory.create('subnets/10.16.7.0-24', value('192.168.1.7'), 3600);
    await memory.delete('subnets/10.16.6.0-24');
    await memory.put('subnets/10.16.5.0-24', value('192.168.1.5', 0x77), 3600);
    await clock.settle();
    assert.equal(changes.length, 1);
    control.drop = false;
    control.reset(); // ...and the store says so
    await clock.settle();
    assert.equal(changes.length, 2);
    const c = changes[1];
    assert.equal(c?.cause, 'reset');
    assert.deepEqual(names(c?.added ?? []), ['10.16.7.0/24']);
    assert.deepEqual(names(c?.removed ?? []), ['10.16.6.0/24']);
    assert.deepEqual(names(c?.updated ?? []), ['10.16.5.0/24']);
    assert.deepEqual(names(c?.peers ?? []), ['10.16.5.0/24', '10.16.7.0/24']);
    // The new watch works.
    await memory.delete('subnets/10.16.7.0-24');
    await clock.settle();
    assert.deepEqual(names(changes[2]?.removed ?? []), ['10.16.7.0/24']);
  });

  it('a real compaction of the memory store re-lists without a spurious change', async () => {
    const { clock, memory, changes } = await setup();
    memory.compact();
    await clock.settle();
    assert.equal(changes.length, 1);
    await memory.create('subnets/10.16.8.0-24', value('192.168.1.8'), 3600);
    await clock.settle();
    assert.deepEqual(names(changes[1]?.added ?? []), ['10.16.8.0/24']);
  });

  it('when our subnet is taken over and we move, the old subnet becomes a peer and the new one is never one', async () => {
    const { clock, memory, m, own, changes } = await setup();
    m.start();
    await clock.settle();
    await memory.put(own.key, value('192.168.1.99'), 3600);
    await clock.settle();
    const moved = m.lease;
    assert.ok(moved && moved.key !== own.key);
    const all = changes.flatMap((c) => [...c.added, ...c.updated].map((p) => p.key));
    assert.ok(!all.includes(moved.key), 'our new subnet was never delivered as a peer');
    const last = changes.at(-1);
    assert.equal(last?.cause, 'own-subnet');
    assert.deepEqual(names(last?.added ?? []), ['10.16.1.0/24']);
    assert.ok(!names(last?.peers ?? []).includes(describeSubnets(moved.subnets)));
    m.stop();
  });

  it('retries the first listing while the store is down; a throwing handler is logged, not fatal; close stops it', async () => {
    const clock = new FakeClock();
    const memory = new MemoryLeaseStore({ clock });
    const log = capture();
    memory.failNext = 2;
    const changes: PeerChange[] = [];
    const w = watchPeers({ store: memory, isOwn: () => false, bounds: config, timers: clock, retryIntervalMs: 10_000, logger: log.logger }, (c) => {
      changes.push(c);
      if (changes.length === 2) throw new Error('handler bug');
    });
    await clock.advance(19_999);
    assert.equal(changes.length, 0);
    await clock.advance(1);
    assert.equal(changes.length, 1, 'snapshot after the store came back');
    await w.ready;
    await memory.create('subnets/10.16.2.0-24', value('192.168.1.2'), 3600);
    await clock.settle();
    await memory.create('subnets/10.16.3.0-24', value('192.168.1.3'), 3600);
    await clock.settle();
    assert.equal(changes.length, 3);
    w.close();
    await memory.delete('subnets/10.16.3.0-24');
    await clock.settle();
    assert.equal(changes.length, 3);
  });
});

describe('peerProblem', () => {
  const record = (key: string, v: string) => {
    const k = parseLeaseKey(key);
    const a = parseLeaseValue(v);
    assert.ok(k.ok && a.ok);
    return { subnets: k.value, attrs: a.value };
  };
  it('accepts a lease inside the Network with a usable PublicIP, smaller subnets included', () => {
    assert.equal(peerProblem(record('10.16.5.0-24', value('192.168.1.5')), config), undefined);
    assert.equal(peerProblem(record('10.16.5.0-25', value('192.168.1.5')), config), undefined);
    assert.equal(peerProblem(record('10.16.0.0-24', value('203.0.113.9')), config), undefined, 'the first subnet (outside SubnetMin) is still inside the Network');
  });
  it('refuses a subnet of a family the network does not have, and a missing one it has', () => {
    assert.match(peerProblem(record('10.16.5.0-24&fd00::-64', value('192.168.1.5')), config) ?? '', /IPv6 subnet fd00::\/64 is not wanted/);
    assert.match(peerProblem(record('0.0.0.0-0&fd00::-64', value('192.168.1.5')), config) ?? '', /has no IPv4 subnet/);
  });
  it('an IPv6 network checks the IPv6 part and PublicIPv6', () => {
    const dual = parseNetworkConfig('{"Network":"10.16.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10::/48"}');
    const v6 = (ip: string | null) => JSON.stringify({ PublicIP: '192.168.1.5', PublicIPv6: ip });
    assert.equal(peerProblem(record('10.16.5.0-24&fd00:10:0:5::-64', v6('2001:db8::5')), dual), undefined);
    assert.match(peerProblem(record('10.16.5.0-24&fd00:99::-64', v6('2001:db8::5')), dual) ?? '', /outside the cluster Network fd00:10::\/48/);
    assert.match(peerProblem(record('10.16.5.0-24&fd00:10:0:5::-64', v6(null)), dual) ?? '', /no usable PublicIPv6/);
    assert.match(peerProblem(record('10.16.5.0-24&fd00:10:0:5::-64', v6('::1')), dual) ?? '', /loopback/);
  });
});
