import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWeftError } from '../errors.ts';
import { DEFAULT_ETCD_ENDPOINTS, loadTls, openLeaseStore, parseEndpoints } from './open-store.ts';

const invalid = (fn: () => unknown, message: RegExp) => assert.throws(fn, (e: unknown) => isWeftError(e, 'WEFT_INVALID_CONFIG') && message.test(e.message));
const invalidAsync = (p: Promise<unknown>, message: RegExp) => assert.rejects(p, (e: unknown) => isWeftError(e, 'WEFT_INVALID_CONFIG') && message.test(e.message));

test('parseEndpoints: flannel-style comma list, normalized, default ports filled in, duplicates dropped', () => {
  assert.deepEqual(parseEndpoints('http://10.0.0.1:2379, http://10.0.0.2:2379/,http://10.0.0.1:2379'), ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  assert.deepEqual(parseEndpoints(['https://etcd.example']), ['https://etcd.example:443']);
  assert.deepEqual(parseEndpoints(['http://[fd00::1]:2379']), ['http://[fd00::1]:2379']);
  assert.deepEqual(parseEndpoints(DEFAULT_ETCD_ENDPOINTS.join(',')), DEFAULT_ETCD_ENDPOINTS);
});

test('parseEndpoints: names the bad endpoint and says how to write it', () => {
  invalid(() => parseEndpoints(''), /empty/);
  invalid(() => parseEndpoints('127.0.0.1:2379'), /"127\.0\.0\.1:2379".*(http:\/\/|URL)/);
  invalid(() => parseEndpoints('unix:///run/etcd.sock'), /must start with http/);
  invalid(() => parseEndpoints('http://127.0.0.1:2379/v2/keys'), /path or query/);
  invalid(() => parseEndpoints('http://root:pw@127.0.0.1:2379'), /--etcd-username/);
  invalid(() => parseEndpoints('http://a:2379,https://b:2379'), /mixes/);
});

test('loadTls: certfile and keyfile together, https only, unreadable files named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tls-'));
  try {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'ca');
    assert.equal(await loadTls(undefined, ['http://a:2379']), undefined);
    assert.equal(await loadTls({ caFile: '', certFile: '', keyFile: '' }, ['http://a:2379']), undefined);
    assert.deepEqual(await loadTls({ caFile: ca }, ['https://a:2379']), { ca: Buffer.from('ca') });
    await invalidAsync(loadTls({ certFile: ca }, ['https://a:2379']), /--etcd-keyfile/);
    await invalidAsync(loadTls({ caFile: ca }, ['http://a:2379']), /not https/);
    await invalidAsync(loadTls({ caFile: join(dir, 'missing.pem') }, ['https://a:2379']), /--etcd-cafile .*missing\.pem.*ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openLeaseStore: rejects a bad api, half of username/password, bad endpoints before connecting', async () => {
  await invalidAsync(openLeaseStore({ api: 'v4' as 'v3', endpoints: ['http://a:2379'] }), /v2, v3 or auto/);
  await invalidAsync(openLeaseStore({ api: 'v3', endpoints: ['http://a:2379'], username: 'root' }), /--etcd-password/);
  await invalidAsync(openLeaseStore({ api: 'v3', endpoints: ['ftp://a'] }), /http/);
});

test('openLeaseStore: v2 and v3 on request, each saying so', async () => {
  for (const api of ['v2', 'v3'] as const) {
    const s = await openLeaseStore({ api, endpoints: ['http://127.0.0.1:2379'], prefix: '/x/' });
    try {
      assert.equal(s.kind, api === 'v2' ? 'etcd-v2' : 'etcd-v3');
      assert.deepEqual(s.selection, { api, reason: `asked for the ${api} API` });
    } finally {
      await s.close();
    }
  }
});
