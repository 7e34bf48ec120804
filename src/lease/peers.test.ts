import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../log/logger.ts';
import { describeSubnets, formatLeaseValue, vxlanBackendData } from './lease.ts';
import { LeaseManager } from './manager.ts';
import { MemoryLeaseStore } from './memory/memory-store.ts';
import { parseNetworkConfig } from './network-config.ts';
import { watchPeers, type PeerChange, type PeerLease } from './peers.ts';
import type { WatchHandlers } from './store.ts';
import { delegateStore, FakeClock } from './testing.ts';

const config = parseNetworkConfig('{"Network":"10.16.0.0/16"}');
const ME = '192.168.1.10';

function value(publicIp: string, macByte = 1): string {
  const vtepMac = `02:00:00:00:00:${macByte.toString(16).padStart(2, '0')}`;
  return formatLeaseValue({ publicIp, publicIpv6: null, backendType: 'vxlan', backendData: vxlanBackendData({ vni: 1, vtepMac }), backendV6Data: undefined });
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

  it('skips keys that are not subnets and values that are not leases, with a warning', async () => {
    const { clock, memory, log, changes } = await setup();
    await memory.put('subnets/not-a-subnet', value('192.168.1.9'), 3600);
    await memory.put('subnets/10.16.9.0-24', '{"PublicIP":', 3600);
    await clock.settle();
    assert.equal(changes.length, 1, 'nothing to deliver');
    assert.ok(log.warnings().some((w) => /skipping subnets\/not-a-subnet: "not-a-subnet" is not a subnet key/.test(w)));
    assert.ok(log.warnings().some((w) => /skipping subnets\/10.16.9.0-24: .*value is not a flannel lease: not JSON/.test(w)));
    // A known peer rewritten with garbage is gone for the data plane.
    await memory.put('subnets/10.16.5.0-24', '{"PublicIP":"nope"}', 3600);
    await clock.settle();
    assert.deepEqual(names(changes[1]?.removed ?? []), ['10.16.5.0/24']);
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
    const w = watchPeers({ store: memory, isOwn: () => false, timers: clock, retryIntervalMs: 10_000, logger: log.logger }, (c) => {
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
