// The etcd lease stores (src/lease/etcd2, src/lease/etcd3, src/lease/open-store.ts) against a
// real etcd 3.4 (Debian's etcd-server). The whole file runs inside a scratch network namespace
// (see test/e2e/support/etcd.ts): every etcd listens on 127.0.0.1 there, never on the host.
// Needs root; skipped with a message otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { isWeftError } from '../../src/errors.ts';
import { createLogger, type Logger } from '../../src/log/logger.ts';
import { Etcd3LeaseStore } from '../../src/lease/etcd3/etcd3-store.ts';
import { openLeaseStore, type OpenLeaseStoreOptions, type OpenedLeaseStore } from '../../src/lease/open-store.ts';
import { EventLog, leaseStoreContract } from '../../src/lease/store-contract.ts';
import type { LeaseStore } from '../../src/lease/store.ts';
import { enterScratchNetns, etcdPrerequisiteProblem, makeTestPki, scratchDirFor, startEtcd, type EtcdServer } from './support/etcd.ts';
import { rand } from './support/sandbox.ts';

const skip = etcdPrerequisiteProblem();
if (!skip) await enterScratchNetns();

const LEASE = (ip: string): string => JSON.stringify({ PublicIP: ip, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } });
const CONFIG = '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}';
const newPrefix = (): string => `/weft-test-${rand()}/network`;

/** A store over the given server, closed by the caller. */
function open(etcd: EtcdServer, api: OpenLeaseStoreOptions['api'], prefix: string, extra: Partial<OpenLeaseStoreOptions> = {}): Promise<OpenedLeaseStore> {
  return openLeaseStore({ api, endpoints: [etcd.endpoint], prefix, ...extra });
}

/** v2 writes straight over HTTP (to make history, and to check what the store wrote). */
async function v2put(etcd: EtcdServer, key: string, value: string, ttlSeconds?: number): Promise<void> {
  const res = await fetch(`${etcd.endpoint}/v2/keys${key}`, { method: 'PUT', body: new URLSearchParams({ value, ...(ttlSeconds === undefined ? {} : { ttl: String(ttlSeconds) }) }) });
  if (!res.ok) throw new Error(`v2 PUT ${key}: ${res.status} ${await res.text()}`);
}

/** v3 write straight through etcd's JSON gateway: any value (etcdctl takes values as arguments, at most 128 KiB); with ttlSeconds, on an etcd lease of its own. */
async function v3putRaw(etcd: EtcdServer, key: string, value: string, ttlSeconds?: number): Promise<void> {
  const b64 = (x: string): string => Buffer.from(x).toString('base64');
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${etcd.endpoint}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`v3 ${path} ${key}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    return await res.json() as Record<string, unknown>;
  };
  const lease = ttlSeconds === undefined ? undefined : String((await post('/v3/lease/grant', { TTL: String(ttlSeconds) })).ID);
  await post('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
}

/** A debug logger that keeps its lines, to prove a fallback was not taken. */
function recordingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } });
  return { logger: createLogger({ name: 'etcd-test', level: 'debug', destination }), lines };
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<Error> {
  try {
    await p;
  } catch (e) {
    assert.ok(isWeftError(e), `expected a WeftError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected a ${code} rejection`);
}

describe('etcd lease stores', { skip }, () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  leaseStoreContract({
    name: 'etcd v3',
    shortTtlSeconds: 2,
    async open(config) {
      const prefix = newPrefix();
      if (config !== undefined) await etcd.etcdctl(3, ['put', `${prefix}/config`, config]);
      return open(etcd, 'v3', prefix);
    },
    elapse: (_s, ms) => sleep(ms),
    async forgetHistory(s) {
      // Compact past the caller's revision: one more write, then compact at the newest revision.
      assert.ok(s instanceof Etcd3LeaseStore);
      await etcd.etcdctl(3, ['put', `${s.prefix}/noise`, 'x']);
      await s.compact((await s.listLeases()).revision);
    },
    writeRaw: (s, key, value) => v3putRaw(etcd, `${(s as Etcd3LeaseStore).prefix}/${key}`, value),
    writeForeign: (s, key, value, ttl) => v3putRaw(etcd, `${(s as Etcd3LeaseStore).prefix}/${key}`, value, ttl),
  });

  leaseStoreContract({
    name: 'etcd v2',
    shortTtlSeconds: 2,
    async open(config) {
      const prefix = newPrefix();
      if (config !== undefined) await etcd.etcdctl(2, ['set', `${prefix}/config`, config]);
      return open(etcd, 'v2', prefix);
    },
    elapse: (_s, ms) => sleep(ms),
    async forgetHistory(s) {
      // v2 keeps the last 1000 events: write 1010 more elsewhere.
      const prefix = (s as unknown as { prefix: string }).prefix;
      for (let batch = 0; batch < 1010; batch += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, i) => v2put(etcd, `${prefix}/noise/${batch + i}`, 'x')));
      }
    },
    writeRaw: (s, key, value) => v2put(etcd, `${(s as unknown as { prefix: string }).prefix}/${key}`, value),
    writeForeign: (s, key, value, ttl) => v2put(etcd, `${(s as unknown as { prefix: string }).prefix}/${key}`, value, ttl),
  });

  describe('etcd v3 specifics', () => {
    test('keys and leases written by etcdctl: no lease is a reservation (hasTtl false), a lease has a TTL, its expiry exact when asked for', async () => {
      const prefix = newPrefix();
      const s = await open(etcd, 'v3', prefix);
      try {
        const grant = await etcd.etcdctl(3, ['lease', 'grant', '300']);
        const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
        assert.ok(id, grant);
        const { revision } = await s.listLeases();
        const log = new EventLog();
        const w = s.watchLeases(revision, log.handlers);
        try {
          const before = Date.now();
          await etcd.etcdctl(3, ['put', `${prefix}/subnets/10.5.20.0-24`, LEASE('192.168.20.1')]);
          await etcd.etcdctl(3, ['put', `--lease=${id}`, `${prefix}/subnets/10.5.21.0-24`, LEASE('192.168.20.2')]);
          await log.count(2);
          const [reservation, leased] = log.events;
          assert.ok(reservation?.type === 'put' && leased?.type === 'put');
          assert.deepEqual([reservation.lease.hasTtl, reservation.lease.expiresAt], [false, null]);
          // Another client's lease: the event says it has a TTL, without a TimeToLive call for it.
          assert.deepEqual([leased.lease.hasTtl, leased.lease.expiresAt], [true, null]);
          const listed = (await s.listLeases({ expiry: true })).leases.find((l) => l.key === 'subnets/10.5.21.0-24');
          assert.ok(listed?.expiresAt != null && listed.expiresAt > before + 280_000 && listed.expiresAt < Date.now() + 301_000,
            `expiresAt ${(listed?.expiresAt ?? 0) - before} ms after the put`);
        } finally {
          w.close();
        }
        // A fresh store knows none of these leases: asked for expiries, it asks etcd (TimeToLive).
        const fresh = await open(etcd, 'v3', prefix);
        try {
          const byKey = new Map((await fresh.listLeases({ expiry: true })).leases.map((l) => [l.key, l.expiresAt]));
          assert.equal(byKey.get('subnets/10.5.20.0-24'), null);
          const at = byKey.get('subnets/10.5.21.0-24');
          assert.ok(typeof at === 'number' && at > Date.now() + 250_000, `listed expiresAt ${at}`);
        } finally {
          await fresh.close();
        }
      } finally {
        await s.close();
      }
    });

    test('keys are stored literally under the prefix (dual-stack key, trailing slash in the prefix)', async () => {
      const prefix = newPrefix();
      const s = await open(etcd, 'v3', `${prefix}/`);
      try {
        await s.create('subnets/10.244.1.0-24&2001:cafe:42:1::-64', LEASE('192.168.21.1'), 60);
        const keys = (await etcd.etcdctl(3, ['get', '--prefix', '--keys-only', prefix])).split('\n').filter(Boolean);
        assert.deepEqual(keys, [`${prefix}/subnets/10.244.1.0-24&2001:cafe:42:1::-64`]);
        const leaseId = /"lease":(\d+)/.exec(await etcd.etcdctl(3, ['get', '-w', 'json', `${prefix}/subnets/10.244.1.0-24&2001:cafe:42:1::-64`]))?.[1];
        assert.ok(leaseId && leaseId !== '0', 'the key is attached to a lease');
      } finally {
        await s.close();
      }
    });

    test('a lost create revokes its unused lease', async () => {
      const prefix = newPrefix();
      const s = await open(etcd, 'v3', prefix);
      try {
        const leasesBefore = (await etcd.etcdctl(3, ['lease', 'list'])).split('\n').filter((l) => /^[0-9a-f]+$/.test(l.trim())).length;
        assert.equal(await s.create('subnets/10.5.22.0-24', LEASE('192.168.22.1'), 300), true);
        assert.equal(await s.create('subnets/10.5.22.0-24', LEASE('192.168.22.2'), 300), false);
        // The revoke is fire-and-forget; wait for it rather than time it.
        const deadline = Date.now() + 10_000;
        let count = -1;
        while (Date.now() < deadline) {
          count = (await etcd.etcdctl(3, ['lease', 'list'])).split('\n').filter((l) => /^[0-9a-f]+$/.test(l.trim())).length;
          if (count === leasesBefore + 1) break;
          await sleep(100);
        }
        assert.equal(count, leasesBefore + 1, 'only the winning create keeps a lease');
      } finally {
        await s.close();
      }
    });

    test('5000 leases, each on its own etcd lease, list completely, with and without expiries (durations reported)', async (t) => {
      const prefix = newPrefix();
      const writer = await open(etcd, 'v3', prefix);
      try {
        const keys = Array.from({ length: 5000 }, (_, i) => `subnets/10.${100 + Math.floor(i / 256)}.${i % 256}.0-24`);
        let next = 0;
        await Promise.all(Array.from({ length: 100 }, async () => {
          while (next < keys.length) {
            const k = keys[next++]!;
            await writer.put(k, LEASE('192.168.30.1'), 3600);
          }
        }));
      } finally {
        await writer.close();
      }
      // A second store has no cached lease expiries: without { expiry: true } it needs none;
      // with it, every one is a TimeToLive round trip.
      const reader = await open(etcd, 'v3', prefix);
      try {
        const t0 = performance.now();
        const lean = await reader.listLeases();
        const leanMs = performance.now() - t0;
        assert.equal(lean.leases.length, 5000);
        assert.ok(lean.leases.every((l) => l.hasTtl), 'every key has a TTL');
        const t1 = performance.now();
        const { leases } = await reader.listLeases({ expiry: true });
        const cold = performance.now() - t1;
        const t2 = performance.now();
        await reader.listLeases({ expiry: true });
        const warm = performance.now() - t2;
        t.diagnostic(`listLeases over 5000 keys / 5000 leases: ${leanMs.toFixed(0)} ms without expiries; with them ${cold.toFixed(0)} ms cold, ${warm.toFixed(0)} ms warm`);
        assert.equal(leases.length, 5000);
        assert.equal(new Set(leases.map((l) => l.key)).size, 5000);
        const soonest = Math.min(...leases.map((l) => l.expiresAt ?? 0));
        assert.ok(soonest > Date.now() + 3_000_000, 'every key has its hour-long expiry');
      } finally {
        await reader.close();
      }
    });
  });

  describe('etcd v2 specifics', () => {
    test('keys written by etcdctl (v2): set without --ttl is a reservation, with --ttl an expiry', async () => {
      const prefix = newPrefix();
      await etcd.etcdctl(2, ['set', `${prefix}/subnets/10.5.40.0-24`, LEASE('192.168.40.1')]);
      await etcd.etcdctl(2, ['set', '--ttl', '300', `${prefix}/subnets/10.5.41.0-24`, LEASE('192.168.40.2')]);
      const s = await open(etcd, 'v2', prefix);
      try {
        const byKey = new Map((await s.listLeases()).leases.map((l) => [l.key, l]));
        assert.equal(byKey.get('subnets/10.5.40.0-24')?.expiresAt, null);
        assert.equal(byKey.get('subnets/10.5.40.0-24')?.value, LEASE('192.168.40.1'));
        const at = byKey.get('subnets/10.5.41.0-24')?.expiresAt;
        assert.ok(typeof at === 'number' && at > Date.now() + 250_000 && at < Date.now() + 301_000, `expiresAt ${at}`);
      } finally {
        await s.close();
      }
    });

    test('keys are stored literally (dual-stack key with & and ::), and a put without TTL drops the TTL', async () => {
      const prefix = newPrefix();
      const s = await open(etcd, 'v2', `${prefix}/`);
      const key = 'subnets/10.244.1.0-24&2001:cafe:42:1::-64';
      try {
        await s.put(key, LEASE('192.168.41.1'), 60);
        assert.equal(await etcd.etcdctl(2, ['get', `${prefix}/${key}`]), `${LEASE('192.168.41.1')}\n`);
        await s.put(key, LEASE('192.168.41.1'), null);
        const raw = await (await fetch(`${etcd.endpoint}/v2/keys${prefix}/subnets/${encodeURIComponent(key.slice(8))}`)).json() as { node: { ttl?: number } };
        assert.equal(raw.node.ttl, undefined, 'etcd itself holds no TTL any more');
      } finally {
        await s.close();
      }
    });

    test('a watch falls back to onReset when more than 1000 events passed (errorCode 401)', async () => {
      // Covered by the contract's forgetHistory for v2; this checks the reason names the cause.
      const prefix = newPrefix();
      const s = await open(etcd, 'v2', prefix);
      try {
        const { revision } = await s.listLeases();
        for (let batch = 0; batch < 1010; batch += 50) {
          await Promise.all(Array.from({ length: 50 }, (_, i) => v2put(etcd, `${prefix}/noise/${batch + i}`, 'x')));
        }
        const log = new EventLog();
        const w = s.watchLeases(revision, log.handlers);
        try {
          await log.until('onReset', () => log.resets.length > 0);
          assert.match(log.resets[0]!, /cleared/);
        } finally {
          w.close();
        }
      } finally {
        await s.close();
      }
    });
  });

  describe('openLeaseStore auto', () => {
    test('finds a config that only the v2 keyspace has', async () => {
      const prefix = newPrefix();
      await etcd.etcdctl(2, ['set', `${prefix}/config`, CONFIG]);
      const s = await open(etcd, 'auto', prefix);
      try {
        assert.equal(s.selection.api, 'v2');
        assert.equal(s.kind, 'etcd-v2');
        assert.match(s.selection.reason, /v2/);
        assert.equal(await s.getConfig(), CONFIG);
      } finally {
        await s.close();
      }
    });

    test('prefers a config in the v3 keyspace, even when v2 has one too', async () => {
      const prefix = newPrefix();
      await etcd.etcdctl(2, ['set', `${prefix}/config`, '{"Network":"10.9.0.0/16"}']);
      await etcd.etcdctl(3, ['put', `${prefix}/config`, CONFIG]);
      const s = await open(etcd, 'auto', prefix);
      try {
        assert.equal(s.selection.api, 'v3');
        assert.equal(s.kind, 'etcd-v3');
        assert.equal(await s.getConfig(), CONFIG);
      } finally {
        await s.close();
      }
    });

    test('with no config anywhere, picks v3 and says why', async () => {
      const s = await open(etcd, 'auto', newPrefix());
      try {
        assert.equal(s.selection.api, 'v3');
        assert.match(s.selection.reason, /no network config/);
      } finally {
        await s.close();
      }
    });
  });

  describe('errors', () => {
    test('an endpoint where nothing listens is WEFT_NOT_READY naming it (v2, v3, auto)', async () => {
      // Nothing listens on the peer-less port 1 of this private namespace.
      const endpoints = ['http://127.0.0.1:1'];
      for (const api of ['v2', 'v3'] as const) {
        const s = await openLeaseStore({ api, endpoints, requestTimeoutMs: 3000 });
        try {
          await rejectsWith(s.getConfig(), 'WEFT_NOT_READY', /127\.0\.0\.1:1.*etcd-endpoints/s);
        } finally {
          await s.close();
        }
      }
      await rejectsWith(openLeaseStore({ api: 'auto', endpoints, requestTimeoutMs: 3000 }), 'WEFT_NOT_READY', /127\.0\.0\.1:1/);
    });
  });
});

describe('etcd stopped and restarted', { skip }, () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.close();
  });

  for (const api of ['v3', 'v2'] as const) {
    test(`${api}: the watch reports errors while etcd is down and resumes after it restarts`, async () => {
      const s = await open(etcd, api, newPrefix());
      try {
        const { revision } = await s.listLeases();
        const log = new EventLog(30_000);
        const w = s.watchLeases(revision, log.handlers);
        try {
          await s.put('subnets/10.5.50.0-24', LEASE('192.168.50.1'), 600);
          await log.count(1);
          await etcd.stop();
          await log.until('onError while etcd is down', () => log.errors.length > 0);
          await etcd.start();
          // Written after the restart by another client, while the watch may still be backing off.
          if (api === 'v3') await etcd.etcdctl(3, ['put', `${(s as unknown as { prefix: string }).prefix}/subnets/10.5.51.0-24`, LEASE('192.168.50.2')]);
          else await etcd.etcdctl(2, ['set', `${(s as unknown as { prefix: string }).prefix}/subnets/10.5.51.0-24`, LEASE('192.168.50.2')]);
          await s.put('subnets/10.5.52.0-24', LEASE('192.168.50.3'), 600);
          await log.count(3);
          assert.deepEqual(log.events.map((e) => (e.type === 'put' ? e.lease.key : `-${e.key}`)),
            ['subnets/10.5.50.0-24', 'subnets/10.5.51.0-24', 'subnets/10.5.52.0-24']);
          assert.deepEqual(log.resets, []);
          assert.ok(log.errors.every((e) => isWeftError(e, 'WEFT_NOT_READY')), log.errors.map((e) => e.message).join('\n'));
        } finally {
          w.close();
        }
      } finally {
        await s.close();
      }
    });
  }
});

describe('etcd over TLS with client certificates', { skip }, () => {
  let etcd: EtcdServer;
  let pki: Awaited<ReturnType<typeof makeTestPki>>;
  before(async () => {
    pki = await makeTestPki(scratchDirFor('pki'));
    etcd = await startEtcd({ tls: pki, clientCertAuth: true });
  });
  after(async () => {
    await etcd?.close();
  });

  for (const api of ['v3', 'v2'] as const) {
    test(`${api}: works with the client certificate, refused without it`, async () => {
      assert.match(etcd.endpoint, /^https:\/\/127\.0\.0\.1:/);
      const prefix = newPrefix();
      const s = await open(etcd, api, prefix, { tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } });
      try {
        await s.put('subnets/10.5.60.0-24', LEASE('192.168.60.1'), 60);
        assert.deepEqual((await s.listLeases()).leases.map((l) => l.key), ['subnets/10.5.60.0-24']);
      } finally {
        await s.close();
      }
      // A fresh store asked for expiries asks etcd for the lease's TTL (v3: TimeToLive over TLS too).
      const fresh = await open(etcd, api, prefix, { tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } });
      try {
        const [l] = (await fresh.listLeases({ expiry: true })).leases;
        assert.ok(l?.expiresAt && l.expiresAt > Date.now() + 30_000, `expiresAt ${l?.expiresAt}`);
      } finally {
        await fresh.close();
      }
      const anonymous: LeaseStore = await open(etcd, api, prefix, { tls: { caFile: pki.caFile }, requestTimeoutMs: 5000 });
      try {
        await rejectsWith(anonymous.listLeases(), 'WEFT_NOT_READY', /etcd-certfile/);
      } finally {
        await anonymous.close();
      }
    });
  }
});

describe('etcd with authentication', { skip }, () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
    // v3: a root user, then auth on.
    await etcd.etcdctl(3, ['user', 'add', 'root', '--new-user-password=s3cret']);
    await etcd.etcdctl(3, ['auth', 'enable']);
    // v2 (a separate auth store): root, auth on, and the guest role stripped of its default access.
    const v2 = async (method: string, path: string, body: unknown, auth?: string): Promise<void> => {
      const res = await fetch(`${etcd.endpoint}${path}`, {
        method, body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {}) },
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    };
    await v2('PUT', '/v2/auth/users/root', { user: 'root', password: 's3cret' });
    await v2('PUT', '/v2/auth/enable', {});
    await v2('PUT', '/v2/auth/roles/guest', { role: 'guest', revoke: { kv: { read: ['/*'], write: ['/*'] } } }, 'root:s3cret');
  });
  after(async () => {
    await etcd?.close();
  });

  for (const api of ['v3', 'v2'] as const) {
    test(`${api}: username/password work; a wrong password is WEFT_INVALID_CONFIG`, async () => {
      const prefix = newPrefix();
      const rec = recordingLogger();
      const s = await open(etcd, api, prefix, { username: 'root', password: 's3cret', logger: rec.logger });
      try {
        await s.put('subnets/10.5.70.0-24', LEASE('192.168.70.1'), 60);
        const fresh = await open(etcd, api, prefix, { username: 'root', password: 's3cret', logger: rec.logger });
        try {
          const [l] = (await fresh.listLeases({ expiry: true })).leases;
          assert.equal(l?.key, 'subnets/10.5.70.0-24');
          assert.ok(l.expiresAt && l.expiresAt > Date.now() + 30_000, `expiresAt ${l.expiresAt}`);
        } finally {
          await fresh.close();
        }
        assert.deepEqual(rec.lines.filter((x) => /could not|failed/.test(x)), []);
      } finally {
        await s.close();
      }
      const wrong = await open(etcd, api, prefix, { username: 'root', password: 'nope' });
      try {
        await rejectsWith(wrong.listLeases(), 'WEFT_INVALID_CONFIG', /--etcd-username/);
      } finally {
        await wrong.close();
      }
    });
  }
});
