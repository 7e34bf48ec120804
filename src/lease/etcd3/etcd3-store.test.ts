import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Etcd3LeaseStore, joinKey, normalizePrefix } from './etcd3-store.ts';

test('prefix and keys join like Go path.Join (a trailing slash is harmless)', () => {
  assert.equal(normalizePrefix('/coreos.com/network'), '/coreos.com/network');
  assert.equal(normalizePrefix('/coreos.com/network/'), '/coreos.com/network');
  assert.equal(normalizePrefix('/coreos.com//network///'), '/coreos.com/network');
  assert.equal(normalizePrefix('coreos.com/network'), 'coreos.com/network');
  assert.equal(normalizePrefix('/'), '/');
  assert.equal(normalizePrefix(''), '');
  assert.equal(joinKey('/coreos.com/network', 'config'), '/coreos.com/network/config');
  assert.equal(joinKey('/', 'subnets/10.5.52.0-24'), '/subnets/10.5.52.0-24');
  assert.equal(joinKey('', 'config'), 'config');
});

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const VALUE = '{"PublicIP":"192.168.1.1","PublicIPv6":null,"BackendType":"vxlan"}';

/**
 * A stand-in for etcd's JSON gateway that serves a fixed keyspace (key → lease id, '0' for
 * none) and counts the TimeToLive calls: what the listing options are about.
 */
async function fakeGateway(keys: Map<string, string>): Promise<{ url: string; ttlCalls: string[]; close(): Promise<void> }> {
  const ttlCalls: string[] = [];
  const answer = (res: ServerResponse, body: unknown): void => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, string>;
      const header = { revision: '42' };
      if (req.url === '/v3/kv/range') {
        const kvs = [...keys].sort(([a], [b]) => a.localeCompare(b)).map(([key, lease]) => ({
          key: b64(key), value: b64(VALUE), mod_revision: '40', ...(lease === '0' ? {} : { lease }),
        }));
        return answer(res, { header, kvs, count: String(kvs.length) });
      }
      if (req.url === '/v3/lease/timetolive') {
        ttlCalls.push(body.ID ?? '');
        return answer(res, { header, ID: body.ID, TTL: '100', grantedTTL: '3600' });
      }
      if (req.url === '/v3/lease/grant') return answer(res, { header, ID: '7001', TTL: body.TTL });
      if (req.url === '/v3/kv/put') return answer(res, { header });
      res.writeHead(404).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, ttlCalls, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

test('listLeases: no TimeToLive call by default, hasTtl from the kv lease id; { expiry: true } asks once per distinct lease', async () => {
  const keys = new Map([
    ['/p/subnets/10.5.1.0-24', '0'], // a reservation
    ['/p/subnets/10.5.2.0-24', '11'],
    ['/p/subnets/10.5.3.0-24', '12'],
    ['/p/subnets/10.5.4.0-24', '12'], // two keys on one etcd lease
  ]);
  const gw = await fakeGateway(keys);
  const store = new Etcd3LeaseStore({ endpoints: [gw.url], prefix: '/p' });
  try {
    const lean = await store.listLeases();
    assert.deepEqual(gw.ttlCalls, []);
    assert.deepEqual(lean.leases.map((l) => [l.key, l.hasTtl, l.expiresAt]), [
      ['subnets/10.5.1.0-24', false, null],
      ['subnets/10.5.2.0-24', true, null],
      ['subnets/10.5.3.0-24', true, null],
      ['subnets/10.5.4.0-24', true, null],
    ]);
    const before = Date.now();
    const exact = await store.listLeases({ expiry: true });
    assert.deepEqual([...gw.ttlCalls].sort(), ['11', '12']);
    for (const l of exact.leases.filter((x) => x.hasTtl)) {
      assert.ok(l.expiresAt !== null && l.expiresAt >= before + 99_000 && l.expiresAt <= Date.now() + 100_000, `${l.key}: ${l.expiresAt}`);
    }
    assert.equal(exact.leases[0]!.expiresAt, null);
    // Known now: a lean listing hands the cached expiries over without asking again.
    const again = await store.listLeases();
    assert.equal(gw.ttlCalls.length, 2);
    assert.ok(again.leases.slice(1).every((l) => l.expiresAt !== null));
  } finally {
    await store.close();
    await gw.close();
  }
});

test('listLeases: a key this store wrote keeps an exact expiry, also after another client moved it to a lease of its own', async () => {
  const keys = new Map([['/p/subnets/10.5.9.0-24', '13']]);
  const gw = await fakeGateway(keys);
  const store = new Etcd3LeaseStore({ endpoints: [gw.url], prefix: '/p' });
  try {
    const written = await store.put('subnets/10.5.8.0-24', VALUE, 60);
    assert.ok(written.hasTtl && written.expiresAt !== null);
    keys.set('/p/subnets/10.5.8.0-24', '7001'); // our grant
    const ours = (await store.listLeases()).leases.find((l) => l.key === 'subnets/10.5.8.0-24');
    assert.equal(ours?.expiresAt, written.expiresAt, 'our own grant, known without a call');
    assert.deepEqual(gw.ttlCalls, []);
    keys.set('/p/subnets/10.5.8.0-24', '8002'); // someone else rewrote our key with their lease
    const listing = await store.listLeases();
    assert.deepEqual(gw.ttlCalls, ['8002'], 'only our own key is looked up, not 10.5.9.0-24');
    const byKey = new Map(listing.leases.map((l) => [l.key, l]));
    assert.ok(byKey.get('subnets/10.5.8.0-24')?.expiresAt !== null);
    assert.deepEqual([byKey.get('subnets/10.5.9.0-24')?.hasTtl, byKey.get('subnets/10.5.9.0-24')?.expiresAt], [true, null]);
  } finally {
    await store.close();
    await gw.close();
  }
});
