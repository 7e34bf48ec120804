// The behaviour every LeaseStore must have, as one test suite run against each implementation:
// MemoryLeaseStore in a unit test (src/lease/memory/memory-store.test.ts), and the etcd v2 and
// v3 stores against a real etcd (test/e2e/etcd-store.test.ts). Test code: it registers
// node:test tests when leaseStoreContract() is called.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_LEASE_VALUE_BYTES, type LeaseStore, type WatchEvent } from './store.ts';

export interface ContractHarness {
  /** Shown in test names, e.g. "etcd v3". */
  name: string;
  /** A store over a keyspace of its own (empty); `config` is written to <prefix>/config first. */
  open(config?: string): Promise<LeaseStore>;
  /** Lets ms of store time pass: a real sleep, or a fake clock's step plus expiry. */
  elapse(store: LeaseStore, ms: number): Promise<void>;
  /**
   * Makes the store forget its history up to now (v3 compaction, v2 more than 1000 events
   * elsewhere, memory compact()), so a watch from an earlier revision must reset.
   */
  forgetHistory(store: LeaseStore): Promise<void>;
  /**
   * Writes value at the relative key (no TTL) as another client could, past the store's own
   * checks: how the tests plant values over MAX_LEASE_VALUE_BYTES.
   */
  writeRaw(store: LeaseStore, key: string, value: string): Promise<void>;
  /**
   * Writes a lease with a TTL as another client would (v3: its own etcd lease): a key whose
   * expiry this store does not know. Without it, the tests that need one are skipped.
   */
  writeForeign?(store: LeaseStore, key: string, value: string, ttlSeconds: number): Promise<void>;
  /** A TTL the store honours (etcd rounds very short lease TTLs up). */
  shortTtlSeconds: number;
  /** How long to wait for an event before failing; generous, not a measurement. Default 20 s. */
  eventTimeoutMs?: number;
}

const CONFIG = '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}';
/** A lease-shaped JSON value of about `bytes` bytes (padding in an extra field). */
export const paddedLease = (ip: string, bytes: number): string => {
  const head = `{"PublicIP":"${ip}","BackendType":"vxlan","Pad":"`;
  return `${head}${'x'.repeat(Math.max(0, bytes - head.length - 2))}"}`;
};
const lease = (ip: string): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } });

/** Collects watch events and resets; waits for the ones a test expects. */
export class EventLog {
  readonly events: WatchEvent[] = [];
  readonly resets: string[] = [];
  readonly errors: Error[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #timeoutMs: number;

  constructor(timeoutMs = 20_000) {
    this.#timeoutMs = timeoutMs;
  }

  readonly handlers = {
    onEvent: (e: WatchEvent): void => {
      this.events.push(e);
      this.#wake();
    },
    onReset: (reason: string): void => {
      this.resets.push(reason);
      this.#wake();
    },
    onError: (e: Error): void => {
      this.errors.push(e);
      this.#wake();
    },
  };

  /** Resolves when check() holds; rejects after the timeout with what was seen. */
  async until(what: string, check: () => boolean): Promise<void> {
    if (check()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`no ${what} within ${this.#timeoutMs} ms; events: ${JSON.stringify(this.events.map(brief))}, resets: ${JSON.stringify(this.resets)}, `
          + `errors: ${JSON.stringify(this.errors.map((e) => e.message))}`));
      }, this.#timeoutMs);
      const waiter = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#waiters.delete(waiter);
        resolve();
      };
      this.#waiters.add(waiter);
    });
  }

  /** Waits until there are at least n events. */
  count(n: number): Promise<void> {
    return this.until(`${n} events`, () => this.events.length >= n);
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}

export const brief = (e: WatchEvent): string => (e.type === 'put' ? `put ${e.lease.key}=${e.lease.value}` : `${e.type} ${e.key}`);

/** Matches a skip reason that names the value's size in bytes (a number of at least 4 digits). */
const NAMES_A_SIZE = /\d{4,}.*bytes|bytes.*\d{4,}/;

export function leaseStoreContract(h: ContractHarness): void {
  const timeout = h.eventTimeoutMs ?? 20_000;
  // Opens a store for one test and closes it afterwards, whatever happens.
  const withStore = async (fn: (s: LeaseStore) => Promise<void>, config?: string): Promise<void> => {
    const s = await h.open(config);
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };

  describe(`LeaseStore contract: ${h.name}`, () => {
    test('getConfig: null when <prefix>/config is absent', () => withStore(async (s) => {
      assert.equal(await s.getConfig(), null);
    }));

    test('getConfig: the stored JSON when present', () => withStore(async (s) => {
      assert.equal(await s.getConfig(), CONFIG);
    }, CONFIG));

    test('create: only when absent; never overwrites', () => withStore(async (s) => {
      assert.equal(await s.create('subnets/10.5.1.0-24', lease('192.168.0.1'), 60), true);
      assert.equal(await s.create('subnets/10.5.1.0-24', lease('192.168.0.2'), 60), false);
      const { leases } = await s.listLeases();
      assert.deepEqual(leases.map((l) => [l.key, l.value]), [['subnets/10.5.1.0-24', lease('192.168.0.1')]]);
    }));

    test('create: 20 concurrent creates of one key, exactly one wins', () => withStore(async (s) => {
      const key = 'subnets/10.5.2.0-24';
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.create(key, lease(`192.168.1.${i + 1}`), 60)));
      const winners = results.flatMap((won, i) => (won ? [i] : []));
      assert.equal(winners.length, 1, `winners: ${JSON.stringify(winners)}`);
      const { leases } = await s.listLeases();
      assert.equal(leases.length, 1);
      assert.equal(leases[0]!.value, lease(`192.168.1.${winners[0]! + 1}`));
    }));

    test('put: writes unconditionally; a renewal has a later expiresAt and a later version', () => withStore(async (s) => {
      const key = 'subnets/10.5.3.0-24';
      const before = Date.now();
      const first = await s.put(key, lease('192.168.2.1'), 60);
      assert.equal(first.key, key);
      assert.equal(first.value, lease('192.168.2.1'));
      assert.ok(first.expiresAt !== null, 'a TTL gives an expiry');
      // The expiry is about 60 s away (a loose sanity window, not a timing check).
      assert.ok(first.expiresAt >= before + 50_000 && first.expiresAt <= Date.now() + 70_000, `expiresAt ${first.expiresAt - before} ms after the put`);
      await h.elapse(s, 1100);
      const second = await s.put(key, lease('192.168.2.2'), 60);
      assert.ok(second.expiresAt !== null && second.expiresAt > first.expiresAt, `renewal ${second.expiresAt} after ${first.expiresAt}`);
      assert.ok(second.version > first.version);
      const listed = (await s.listLeases()).leases.find((l) => l.key === key);
      assert.equal(listed?.value, lease('192.168.2.2'));
      assert.equal(listed?.version, second.version);
      assert.ok(listed?.expiresAt !== null && listed?.expiresAt !== undefined && Math.abs(listed.expiresAt - second.expiresAt) <= 2000,
        `listed expiry ${listed?.expiresAt} vs written ${second.expiresAt}`);
    }));

    test('null TTL is a reservation: expiresAt null, also when a put drops an earlier TTL', () => withStore(async (s) => {
      assert.equal(await s.create('subnets/10.5.4.0-24', lease('192.168.3.1'), null), true);
      const withTtl = await s.put('subnets/10.5.5.0-24', lease('192.168.3.2'), 60);
      assert.notEqual(withTtl.expiresAt, null);
      const reserved = await s.put('subnets/10.5.5.0-24', lease('192.168.3.2'), null);
      assert.equal(reserved.expiresAt, null);
      assert.equal(withTtl.hasTtl, true);
      assert.equal(reserved.hasTtl, false);
      for (const expiry of [false, true]) {
        const { leases } = await s.listLeases({ expiry });
        const byKey = new Map(leases.map((l) => [l.key, l]));
        assert.deepEqual([byKey.get('subnets/10.5.4.0-24')?.hasTtl, byKey.get('subnets/10.5.4.0-24')?.expiresAt], [false, null], `expiry: ${expiry}`);
        assert.deepEqual([byKey.get('subnets/10.5.5.0-24')?.hasTtl, byKey.get('subnets/10.5.5.0-24')?.expiresAt], [false, null], `expiry: ${expiry}`);
      }
    }));

    test('keys another client wrote: hasTtl tells leases from reservations in every listing; { expiry: true } gives the exact expiry', { skip: h.writeForeign ? false : 'the harness cannot write as another client' }, () => withStore(async (s) => {
      const before = Date.now();
      await h.writeForeign!(s, 'subnets/10.5.30.0-24', lease('192.168.13.1'), 300);
      await h.writeRaw(s, 'subnets/10.5.31.0-24', lease('192.168.13.2'));
      const lean = new Map((await s.listLeases()).leases.map((l) => [l.key, l]));
      assert.equal(lean.get('subnets/10.5.30.0-24')?.hasTtl, true, 'a TTL, even when its expiry was not looked up');
      assert.deepEqual([lean.get('subnets/10.5.31.0-24')?.hasTtl, lean.get('subnets/10.5.31.0-24')?.expiresAt], [false, null]);
      const exact = new Map((await s.listLeases({ expiry: true })).leases.map((l) => [l.key, l]));
      const at = exact.get('subnets/10.5.30.0-24')?.expiresAt;
      // About 300 s away (a loose sanity window, not a timing check).
      assert.ok(typeof at === 'number' && at > before + 250_000 && at < Date.now() + 310_000, `expiresAt ${at}`);
      assert.deepEqual([exact.get('subnets/10.5.31.0-24')?.hasTtl, exact.get('subnets/10.5.31.0-24')?.expiresAt], [false, null]);
    }));

    test('our own writes have exact expiries in the default listing and in watch events', () => withStore(async (s) => {
      const { revision } = await s.listLeases();
      const log = new EventLog(timeout);
      const w = s.watchLeases(revision, log.handlers);
      try {
        const written = await s.put('subnets/10.5.32.0-24', lease('192.168.14.1'), 120);
        await log.count(1);
        const event = log.events[0];
        assert.ok(event?.type === 'put' && event.lease.hasTtl);
        assert.ok(event.lease.expiresAt !== null && written.expiresAt !== null && Math.abs(event.lease.expiresAt - written.expiresAt) <= 2000,
          `event expiry ${event.lease.expiresAt} vs written ${written.expiresAt}`);
        const listed = (await s.listLeases()).leases.find((l) => l.key === 'subnets/10.5.32.0-24');
        assert.ok(listed?.expiresAt !== null && listed?.expiresAt !== undefined && Math.abs(listed.expiresAt - written.expiresAt) <= 2000);
      } finally {
        w.close();
      }
    }));

    test('a short TTL expires (delete event, gone from the listing); a reservation stays', () => withStore(async (s) => {
      await s.create('subnets/10.5.6.0-24', lease('192.168.4.1'), null);
      const { revision } = await s.listLeases();
      const log = new EventLog(timeout);
      const w = s.watchLeases(revision, log.handlers);
      try {
        assert.equal(await s.create('subnets/10.5.7.0-24', lease('192.168.4.2'), h.shortTtlSeconds), true);
        await h.elapse(s, h.shortTtlSeconds * 1000 + 200);
        await log.until('delete event for the expired lease', () => log.events.some((e) => e.type === 'delete' && e.key === 'subnets/10.5.7.0-24'));
        const keys = (await s.listLeases()).leases.map((l) => l.key);
        assert.deepEqual(keys, ['subnets/10.5.6.0-24']);
        await h.elapse(s, 1000);
        assert.deepEqual((await s.listLeases()).leases.map((l) => [l.key, l.hasTtl, l.expiresAt]), [['subnets/10.5.6.0-24', false, null]]);
      } finally {
        w.close();
      }
    }));

    test('listLeases: every key under subnets/ with a revision to watch from', () => withStore(async (s) => {
      const empty = await s.listLeases();
      assert.deepEqual(empty.leases, []);
      assert.ok(Number.isInteger(empty.revision) && empty.revision >= 0);
      const a = await s.put('subnets/10.5.8.0-24', lease('192.168.5.1'), 60);
      const b = await s.put('subnets/10.244.1.0-24&2001:cafe:42:1::-64', lease('192.168.5.2'), 60);
      const { leases, revision } = await s.listLeases();
      assert.deepEqual(leases.map((l) => l.key).sort(), [a.key, b.key].sort());
      assert.ok(revision >= Math.max(a.version, b.version), `revision ${revision} covers the writes`);
      for (const l of leases) assert.ok(l.version > empty.revision);
      assert.equal(leases.find((l) => l.key === b.key)?.value, lease('192.168.5.2'));
    }, CONFIG));

    test('watchLeases: put, update, delete and expiry after the revision, in order; not before it', () => withStore(async (s) => {
      await s.put('subnets/10.5.9.0-24', lease('192.168.6.1'), 60);
      const { revision } = await s.listLeases();
      const log = new EventLog(timeout);
      const w = s.watchLeases(revision, log.handlers);
      try {
        await s.put('subnets/10.5.10.0-24', lease('192.168.6.2'), 60);
        await s.put('subnets/10.5.10.0-24', lease('192.168.6.3'), null);
        await s.delete('subnets/10.5.10.0-24');
        await s.create('subnets/10.5.11.0-24', lease('192.168.6.4'), h.shortTtlSeconds);
        await log.count(4);
        await h.elapse(s, h.shortTtlSeconds * 1000 + 200);
        await log.count(5);
        assert.deepEqual(log.events.map(brief), [
          `put subnets/10.5.10.0-24=${lease('192.168.6.2')}`,
          `put subnets/10.5.10.0-24=${lease('192.168.6.3')}`,
          'delete subnets/10.5.10.0-24',
          `put subnets/10.5.11.0-24=${lease('192.168.6.4')}`,
          'delete subnets/10.5.11.0-24',
        ]);
        const revs = log.events.map((e) => e.revision);
        assert.ok(revs[0]! > revision && revs.every((r, i) => i === 0 || r > revs[i - 1]!), `revisions ${revs.join(',')} after ${revision}`);
        const puts = log.events.filter((e): e is Extract<WatchEvent, { type: 'put' }> => e.type === 'put');
        assert.notEqual(puts[0]!.lease.expiresAt, null);
        assert.equal(puts[0]!.lease.hasTtl, true);
        assert.equal(puts[1]!.lease.expiresAt, null);
        assert.equal(puts[1]!.lease.hasTtl, false);
        assert.equal(puts[0]!.lease.version, puts[0]!.revision);
        assert.deepEqual(log.resets, []);
      } finally {
        w.close();
      }
    }));

    test('watchLeases: replays events after an older revision; close() stops delivery', () => withStore(async (s) => {
      const start = (await s.listLeases()).revision;
      await s.put('subnets/10.5.12.0-24', lease('192.168.7.1'), 60);
      await s.put('subnets/10.5.13.0-24', lease('192.168.7.2'), 60);
      const log = new EventLog(timeout);
      const w = s.watchLeases(start, log.handlers);
      await log.count(2);
      assert.deepEqual(log.events.map((e) => (e.type === 'put' ? e.lease.key : e.key)), ['subnets/10.5.12.0-24', 'subnets/10.5.13.0-24']);
      w.close();
      // A second watch proves the next write happened and was delivered to watchers; the closed one saw nothing.
      const probe = new EventLog(timeout);
      const w2 = s.watchLeases((await s.listLeases()).revision, probe.handlers);
      try {
        await s.put('subnets/10.5.14.0-24', lease('192.168.7.3'), 60);
        await probe.count(1);
        assert.equal(log.events.length, 2);
      } finally {
        w2.close();
      }
    }));

    test('watchLeases: after history is forgotten, onReset; a re-list and a new watch carry on', () => withStore(async (s) => {
      const { revision } = await s.listLeases();
      await s.put('subnets/10.5.15.0-24', lease('192.168.8.1'), 60);
      await h.forgetHistory(s);
      const log = new EventLog(timeout);
      const w = s.watchLeases(revision, log.handlers);
      try {
        await log.until('onReset', () => log.resets.length > 0);
        assert.deepEqual(log.events, []);
      } finally {
        w.close();
      }
      const again = await s.listLeases();
      assert.deepEqual(again.leases.map((l) => l.key), ['subnets/10.5.15.0-24']);
      const log2 = new EventLog(timeout);
      const w2 = s.watchLeases(again.revision, log2.handlers);
      try {
        await s.delete('subnets/10.5.15.0-24');
        await log2.count(1);
        assert.deepEqual(log2.events.map(brief), ['delete subnets/10.5.15.0-24']);
        assert.deepEqual(log2.resets, []);
      } finally {
        w2.close();
      }
    }));

    test('listLeases: values over MAX_LEASE_VALUE_BYTES (three of 1.4 MB, one just over) are skipped by key with their size; every other lease is listed', () => withStore(async (s) => {
      const big = ['subnets/10.5.17.0-24', 'subnets/10.5.18.0-24', 'subnets/10.5.19.0-24'];
      for (const [i, key] of big.entries()) await h.writeRaw(s, key, paddedLease(`192.168.10.${i + 1}`, 1_400_000));
      await h.writeRaw(s, 'subnets/10.5.20.0-24', paddedLease('192.168.10.9', MAX_LEASE_VALUE_BYTES + 1));
      // The largest value that is still a lease, and two ordinary ones around the big keys.
      await h.writeRaw(s, 'subnets/10.5.21.0-24', paddedLease('192.168.10.10', MAX_LEASE_VALUE_BYTES));
      await s.put('subnets/10.5.1.0-24', lease('192.168.10.11'), 60);
      await s.put('subnets/10.5.99.0-24', lease('192.168.10.12'), null);
      const listing = await s.listLeases();
      assert.deepEqual(listing.leases.map((l) => l.key).sort(), ['subnets/10.5.1.0-24', 'subnets/10.5.21.0-24', 'subnets/10.5.99.0-24']);
      assert.equal(listing.leases.find((l) => l.key === 'subnets/10.5.21.0-24')?.value, paddedLease('192.168.10.10', MAX_LEASE_VALUE_BYTES));
      const skipped = [...(listing.skipped ?? [])].sort((a, b) => a.key.localeCompare(b.key));
      assert.deepEqual(skipped.map((k) => k.key), [...big, 'subnets/10.5.20.0-24']);
      for (const k of skipped) assert.match(k.reason, NAMES_A_SIZE, `${k.key}: ${k.reason}`);
      assert.match(skipped[3]!.reason, new RegExp(String(MAX_LEASE_VALUE_BYTES + 1)), 'the exact size of a value just over the bound');
    }));

    test('watchLeases: a put of an oversized value is a skip event naming the key; events before and after it arrive', () => withStore(async (s) => {
      const { revision } = await s.listLeases();
      const log = new EventLog(timeout);
      const w = s.watchLeases(revision, log.handlers);
      try {
        await s.put('subnets/10.5.22.0-24', lease('192.168.11.1'), 60);
        await h.writeRaw(s, 'subnets/10.5.23.0-24', paddedLease('192.168.11.2', 1_400_000));
        await h.writeRaw(s, 'subnets/10.5.24.0-24', paddedLease('192.168.11.3', MAX_LEASE_VALUE_BYTES + 100));
        await s.put('subnets/10.5.25.0-24', lease('192.168.11.4'), 60);
        await log.count(4);
        assert.deepEqual(log.events.map(brief), [
          `put subnets/10.5.22.0-24=${lease('192.168.11.1')}`, 'skip subnets/10.5.23.0-24', 'skip subnets/10.5.24.0-24', `put subnets/10.5.25.0-24=${lease('192.168.11.4')}`,
        ]);
        for (const e of log.events) if (e.type === 'skip') assert.match(e.reason, NAMES_A_SIZE, e.reason);
        const revs = log.events.map((e) => e.revision);
        assert.ok(revs.every((r, i) => i === 0 || r > revs[i - 1]!), `revisions ${revs.join(',')}`);
        assert.deepEqual(log.resets, []);
      } finally {
        w.close();
      }
    }));

    test('create and put refuse a value over MAX_LEASE_VALUE_BYTES, writing nothing', () => withStore(async (s) => {
      const tooBig = paddedLease('192.168.12.1', MAX_LEASE_VALUE_BYTES + 1);
      await assert.rejects(s.create('subnets/10.5.26.0-24', tooBig, 60), /at most/);
      await assert.rejects(s.put('subnets/10.5.26.0-24', tooBig, 60), /at most/);
      assert.deepEqual((await s.listLeases()).leases, []);
    }));

    test('getConfig: a config over 64 KiB is refused with a clear error', () => withStore(async (s) => {
      await assert.rejects(s.getConfig(), /70\d{3} bytes|over .*characters|at most 65536/);
    }, JSON.stringify({ Network: '10.5.0.0/16', Pad: 'x'.repeat(70_000) })));

    test('delete: a missing key is not an error', () => withStore(async (s) => {
      await s.delete('subnets/10.5.16.0-24');
      await s.put('subnets/10.5.16.0-24', lease('192.168.9.1'), 60);
      await s.delete('subnets/10.5.16.0-24');
      await s.delete('subnets/10.5.16.0-24');
      assert.deepEqual((await s.listLeases()).leases, []);
    }));
  });
}
