// The lease over time: renewal at expiry − margin, retries, revocation and re-acquisition,
// all on a fake clock (TTL 100 s, margin 30 s, retry 10 s).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatLeaseValue } from './lease.ts';
import { LeaseManager, type LeaseManagerOptions, type ReacquiredEvent, type RevokedEvent } from './manager.ts';
import { MemoryLeaseStore } from './memory/memory-store.ts';
import { parseNetworkConfig } from './network-config.ts';
import { FakeClock } from './testing.ts';

const config = parseNetworkConfig('{"Network":"10.16.0.0/16"}');
const S = 1000;

function other(publicIp: string): string {
  return formatLeaseValue({ publicIp, publicIpv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:99' }, backendV6Data: undefined });
}

async function started(options: Partial<LeaseManagerOptions> = {}) {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore({ clock });
  const m = new LeaseManager({
    store, config, publicIp: '192.168.1.10', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:0a' },
    ttlSeconds: 100, renewMarginSeconds: 30, retryIntervalSeconds: 10, timers: clock, random: () => 0, ...options,
  });
  const events = { renewed: 0, revoked: [] as RevokedEvent[], reacquired: [] as ReacquiredEvent[], conflicts: 0 };
  m.on('renewed', () => { events.renewed++; });
  m.on('revoked', (e) => events.revoked.push(e));
  m.on('reacquired', (e) => events.reacquired.push(e));
  m.on('conflict', () => { events.conflicts++; });
  const lease = await m.acquire();
  m.start();
  await clock.settle();
  const stored = async (key = lease.key) => (await store.listLeases()).leases.find((l) => l.key === key);
  return { clock, store, m, lease, events, stored, t0: clock.now() };
}

describe('renewal', () => {
  it('renews at expiry − margin, again and again, with a fresh TTL each time', async (t) => {
    const { clock, m, lease, events, stored, t0 } = await started();
    t.after(() => m.stop());
    await clock.advance(69 * S);
    assert.equal(events.renewed, 0);
    assert.equal((await stored())?.expiresAt, t0 + 100 * S);
    await clock.advance(1 * S);
    assert.equal(events.renewed, 1);
    assert.equal((await stored())?.expiresAt, t0 + 170 * S);
    assert.equal(m.lease?.expiresAt, t0 + 170 * S);
    await clock.advance(70 * S);
    assert.equal(events.renewed, 2);
    assert.equal((await stored())?.expiresAt, t0 + 240 * S);
    assert.equal((await stored())?.value, lease.value);
  });

  it('retries every retryInterval after a failure, without throwing', async (t) => {
    const { clock, store, m, events, stored, t0 } = await started();
    t.after(() => m.stop());
    await clock.advance(69 * S);
    store.failNext = 2;
    await clock.advance(1 * S); // fails
    assert.equal(events.renewed, 0);
    await clock.advance(10 * S); // fails again
    assert.equal(events.renewed, 0);
    await clock.advance(9 * S);
    assert.equal(events.renewed, 0, 'not before the retry interval');
    await clock.advance(1 * S);
    assert.equal(events.renewed, 1);
    assert.equal((await stored())?.expiresAt, t0 + 190 * S);
    assert.equal(events.revoked.length, 0);
  });

  it('a reservation is never renewed and stays one', async (t) => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore({ clock });
    await store.put('subnets/10.16.77.0-24', other('192.168.1.10'), null);
    const m = new LeaseManager({ store, config, publicIp: '192.168.1.10', backendType: 'vxlan', ttlSeconds: 100, renewMarginSeconds: 30, timers: clock });
    t.after(() => m.stop());
    const lease = await m.acquire();
    m.start();
    await clock.settle();
    const version = (await store.listLeases()).leases[0]?.version;
    await clock.advance(1000 * S);
    const [after] = (await store.listLeases()).leases;
    assert.equal(after?.key, lease.key);
    assert.equal(after?.expiresAt, null);
    assert.equal(after?.version, version, 'not rewritten');
    assert.equal(clock.pendingTimers, 0);
  });

  it('a lease an operator turns into a reservation stops being renewed', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    await store.put(lease.key, lease.value, null);
    await clock.advance(500 * S);
    assert.equal(events.renewed, 0);
    assert.equal(m.lease?.expiresAt, null);
    assert.equal(events.revoked.length, 0);
  });
});

describe('revocation', () => {
  it('missed renewals until expiry: revoked (expired), then re-acquired, the same subnet since it is free', async (t) => {
    const { clock, store, m, lease, events, stored } = await started();
    t.after(() => m.stop());
    store.failNext = 1_000;
    await clock.advance(99 * S);
    assert.equal(events.revoked.length, 0);
    await clock.advance(1 * S);
    assert.equal(events.revoked.length, 1);
    assert.equal(events.revoked[0]?.reason, 'expired');
    assert.equal(events.revoked[0]?.reacquiring, true);
    const held = () => m.lease; // (a function: assertions must not narrow m.lease for the lines below)
    assert.equal(held(), undefined, 'no lease while re-acquiring');
    await clock.advance(30 * S); // the store is still down: re-acquisition retries
    assert.equal(events.reacquired.length, 0);
    store.failNext = 0;
    store.expire(); // etcd dropped the key when its TTL ran out
    await clock.advance(10 * S);
    assert.equal(events.reacquired.length, 1);
    assert.equal(events.reacquired[0]?.sameSubnet, true);
    assert.equal(m.lease?.key, lease.key);
    assert.equal((await stored())?.expiresAt, clock.now() + 100 * S);
    // ...and it is renewed again from then on.
    await clock.advance(70 * S);
    assert.equal(events.renewed, 1);
  });

  it('an expired lease is not rewritten blindly: if another node took the subnet meanwhile, we get another', async (t) => {
    const { clock, store, m, lease, events, stored } = await started();
    t.after(() => m.stop());
    store.failNext = 1_000;
    await clock.advance(100 * S);
    assert.equal(events.revoked[0]?.reason, 'expired');
    store.failNext = 0;
    store.expire();
    await store.create(lease.key, other('192.168.1.99'), 100); // the subnet went to a new node
    await clock.advance(10 * S);
    assert.equal(events.reacquired.length, 1);
    assert.equal(events.reacquired[0]?.sameSubnet, false);
    assert.notEqual(m.lease?.key, lease.key);
    assert.equal((await stored(lease.key))?.value, other('192.168.1.99'), 'the other node keeps it');
  });

  it('our key deleted: revoked (deleted) and re-acquired at once, same subnet', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    await clock.advance(10 * S);
    await store.delete(lease.key);
    await clock.settle();
    assert.equal(events.revoked[0]?.reason, 'deleted');
    assert.equal(events.reacquired[0]?.sameSubnet, true);
    assert.equal(m.lease?.key, lease.key);
    assert.ok((await store.listLeases()).leases.some((l) => l.key === lease.key));
  });

  it('the TTL running out in the store (the node was too slow) counts as expired', async (t) => {
    const { clock, store, m, events } = await started();
    t.after(() => m.stop());
    store.failNext = 1;
    await clock.advance(75 * S); // the renewal at 70 s failed; the retry is due at 80 s
    await store.delete((await store.listLeases()).leases[0]?.key ?? '');
    await clock.settle();
    assert.equal(events.revoked[0]?.reason, 'expired');
  });

  it('our key overwritten by another node: revoked (taken), re-acquired elsewhere', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    await store.put(lease.key, other('192.168.1.99'), 100);
    await clock.settle();
    assert.equal(events.revoked[0]?.reason, 'taken');
    assert.match(events.revoked[0]?.detail ?? '', /192\.168\.1\.99/);
    assert.equal(events.reacquired[0]?.sameSubnet, false);
    assert.notEqual(m.lease?.key, lease.key);
  });

  it('our key rewritten with our public IP but another value: a conflict, reported once, lease kept', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    const twin = other('192.168.1.10');
    await store.put(lease.key, twin, 100);
    await store.put(lease.key, twin, 100);
    await clock.settle();
    assert.equal(events.conflicts, 1);
    assert.equal(events.revoked.length, 0);
    assert.equal(m.lease?.key, lease.key);
  });

  it('with reacquireOnRevoke off, only `revoked` is emitted (flannel exits here)', async (t) => {
    const { clock, store, m, lease, events } = await started({ reacquireOnRevoke: false });
    t.after(() => m.stop());
    await store.delete(lease.key);
    await clock.advance(500 * S);
    assert.equal(events.revoked.length, 1);
    assert.equal(events.revoked[0]?.reacquiring, false);
    assert.equal(events.reacquired.length, 0);
    assert.equal((await store.listLeases()).leases.length, 0);
    assert.equal(clock.pendingTimers, 0);
  });

  it('own-lease monitoring survives a compaction (re-list, then watch again)', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    store.compact();
    await clock.settle();
    await store.delete(lease.key);
    await clock.settle();
    assert.equal(events.revoked.length, 1);
    assert.equal(events.reacquired.length, 1);
  });

  it('a throwing listener does not break the manager', async (t) => {
    const { clock, store, m, lease, events } = await started();
    t.after(() => m.stop());
    m.on('revoked', () => { throw new Error('listener bug'); });
    await store.delete(lease.key);
    await clock.settle();
    assert.equal(events.reacquired.length, 1);
  });

  it('stop() cancels renewal, watching and re-acquisition', async () => {
    const { clock, store, m, lease, events } = await started();
    m.stop();
    assert.equal(clock.pendingTimers, 0);
    await store.delete(lease.key);
    await clock.advance(1000 * S);
    assert.equal(events.revoked.length, 0);
    assert.equal(events.renewed, 0);
    assert.equal((await store.listLeases()).leases.length, 0);
  });
});

describe('republish (a live backend change)', () => {
  it('writes the new BackendType/BackendData at once, keeps the subnet, and is not mistaken for a takeover', async (t) => {
    const { clock, m, lease, events, stored } = await started();
    t.after(() => m.stop());
    await m.republish('host-gw', undefined);
    await clock.settle();
    const value = JSON.parse((await stored())!.value) as { BackendType: string; BackendData?: unknown };
    assert.equal(value.BackendType, 'host-gw');
    assert.equal(m.lease?.key, lease.key);
    assert.deepEqual(events.revoked, []);
    assert.equal(events.conflicts, 0);
    // The next renewal keeps the new value.
    await clock.advance(70 * S);
    assert.equal((JSON.parse((await stored())!.value) as { BackendType: string }).BackendType, 'host-gw');
  });

  it('a renewal in flight during a republish cannot land the old value last, and is not taken for another node', async (t) => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore({ clock });
    const { delegateStore } = await import('./testing.ts');
    let hold: (() => void) | undefined;
    const slow = delegateStore(store, {
      put: async (k, v, ttl) => {
        if (hold === undefined && JSON.parse(v).BackendType === 'vxlan') await new Promise<void>((r) => (hold = r)); // the renewal's write stalls
        return store.put(k, v, ttl);
      },
    });
    const m = new LeaseManager({ store: slow, config, publicIp: '192.168.1.10', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:0a' }, ttlSeconds: 100, renewMarginSeconds: 30, retryIntervalSeconds: 10, timers: clock, random: () => 0 });
    let conflicts = 0;
    m.on('conflict', () => conflicts++);
    const lease = await m.acquire();
    m.start();
    t.after(() => m.stop());
    await clock.advance(70 * S); // the renewal starts and stalls
    const republished = m.republish('host-gw', undefined);
    hold?.();
    await republished;
    await clock.settle();
    const stored = (await store.listLeases()).leases.find((l) => l.key === lease.key)!;
    assert.equal((JSON.parse(stored.value) as { BackendType: string }).BackendType, 'host-gw');
    assert.equal(conflicts, 0);
  });

  it('a failing renewal is reported as trouble (for status), then the renewal clears it', async (t) => {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore({ clock });
    let failPuts = false;
    const { delegateStore } = await import('./testing.ts');
    const flaky = delegateStore(store, { put: (k, v, ttl) => (failPuts ? Promise.reject(new Error('etcd unreachable')) : store.put(k, v, ttl)) });
    const m = new LeaseManager({ store: flaky, config, publicIp: '192.168.1.10', backendType: 'host-gw', ttlSeconds: 100, renewMarginSeconds: 30, retryIntervalSeconds: 10, timers: clock, random: () => 0 });
    const trouble: string[] = [];
    m.on('trouble', (e) => trouble.push(`${e.during}: ${e.error.message}`));
    await m.acquire();
    m.start();
    t.after(() => m.stop());
    failPuts = true;
    await clock.advance(70 * S);
    assert.deepEqual(trouble, ['renew: etcd unreachable']);
  });
});
