import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Ipam, RangeSetUsage } from '../ipam/ipam.ts';
import { IpamUsageCache } from './ipam-usage.ts';

/** An Ipam whose usage() calls wait until the test answers them. */
function gatedIpam() {
  const pending: { resolve(u: RangeSetUsage[]): void; reject(e: Error): void }[] = [];
  const ipam = {
    usage: () => new Promise<RangeSetUsage[]>((resolve, reject) => pending.push({ resolve, reject })),
  } as unknown as Ipam;
  return {
    ipam,
    pending,
    answer: async (allocated: number, capacity = 10) => {
      pending.shift()!.resolve([{ allocated, capacity }]);
      await new Promise((r) => setImmediate(r));
    },
  };
}

function cache() {
  let now = 0;
  const errors: string[] = [];
  const c = new IpamUsageCache({ ttlMs: 1000, clock: () => now, onError: (e) => errors.push(e.message) });
  return { c, errors, advance: (ms: number) => { now += ms; } };
}

describe('IpamUsageCache', () => {
  it('coalesces a burst of changes into the scan in flight plus one after it', async () => {
    const { c } = cache();
    const g = gatedIpam();
    assert.equal(c.get(), undefined);
    c.served('net', g.ipam);
    for (let i = 0; i < 50; i++) c.changed();
    assert.equal(g.pending.length, 1, 'one scan in flight');
    await g.answer(3);
    assert.deepEqual(c.get(), { used: 3, free: 7 });
    assert.equal(g.pending.length, 1, 'one more for the changes it may have missed');
    await g.answer(4);
    await c.settled();
    assert.equal(g.pending.length, 0);
    assert.deepEqual(c.get(), { used: 4, free: 6 });
  });

  it('drops a reading of a network that is no longer served', async () => {
    const { c } = cache();
    const old = gatedIpam();
    const current = gatedIpam();
    c.get();
    c.served('old', old.ipam);
    c.served('new', current.ipam);
    assert.equal(c.get(), undefined);
    await old.answer(9);
    assert.equal(c.get(), undefined, 'the old network is not reported');
    await current.answer(1);
    assert.deepEqual(c.get(), { used: 1, free: 9 });
    c.record('old', [{ allocated: 5, capacity: 10 }]);
    assert.deepEqual(c.get(), { used: 1, free: 9 }, 'nor recorded');
  });

  it('keeps the last value when a refresh fails, reports it, and waits a TTL before the next try', async () => {
    const { c, errors, advance } = cache();
    const g = gatedIpam();
    c.get();
    c.served('net', g.ipam);
    await g.answer(2);
    advance(1000);
    assert.deepEqual(c.get(), { used: 2, free: 8 });
    g.pending.shift()!.reject(new Error('EACCES'));
    await c.settled();
    assert.deepEqual(errors, ['EACCES']);
    assert.deepEqual(c.get(), { used: 2, free: 8 });
    assert.equal(g.pending.length, 0, 'no retry on the next scrape');
    advance(1000);
    c.get();
    assert.equal(g.pending.length, 1, 'a retry once the TTL has passed');
  });

  it('scans nothing until someone reads the usage, then starts the first scan', async () => {
    const { c } = cache();
    const g = gatedIpam();
    c.served('net', g.ipam);
    c.changed();
    assert.equal(g.pending.length, 0);
    c.record('net', [{ allocated: 1, capacity: 10 }]);
    assert.deepEqual(c.get(), { used: 1, free: 9 }, 'a recorded reading is there for free');
    assert.equal(g.pending.length, 0, 'and fresh');
    const h = gatedIpam();
    c.served('other', h.ipam);
    assert.equal(h.pending.length, 1, 'once read, a new network is scanned at once');
  });

  it('does nothing before a network is served', async () => {
    const { c } = cache();
    c.changed();
    assert.equal(c.get(), undefined);
    await c.settled();
  });
});
