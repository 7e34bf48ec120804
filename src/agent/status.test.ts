import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fetchStatus, startHealthz, startStatusServer, type AgentStatus } from './status.ts';
import { isWeftError } from '../errors.ts';

const sample: AgentStatus = {
  node: 'n1', mode: 'etcd', ready: true, publicIp: '172.31.1.11', interface: 'eth0', backend: 'vxlan',
  store: { kind: 'etcd-v3', endpoints: ['http://172.31.1.5:2379'], prefix: '/coreos.com/network' },
  lease: { subnet: '10.16.85.0/24', expiresAt: '2026-11-28T12:00:00.000Z', reservation: false }, mtu: 1450,
  peers: [{ subnet: '10.16.9.0/24', publicIp: '172.31.2.12', backendType: 'vxlan', path: 'vxlan' }],
  lastSync: '2026-11-27T12:00:00.000Z', errors: [],
};

test('status is served on a unix socket only its owner can open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-status-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'run', 'agent.sock');
  const server = await startStatusServer(path, () => sample);
  t.after(() => server.close());
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.deepEqual(await fetchStatus(path), sample);
});

test('no agent: a clear error that says what to check', async () => {
  await assert.rejects(fetchStatus('/nonexistent/agent.sock'), (e) => isWeftError(e, 'WEFT_NOT_READY') && /is `weft agent` running/.test(e.message));
});

test('healthz answers like flanneld; readyz follows readiness', async (t) => {
  let ready = false;
  const server = await startHealthz('127.0.0.1', 0, () => ready);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = async (path: string): Promise<number> => (await fetch(`http://127.0.0.1:${port}${path}`)).status;
  assert.equal(await get('/healthz'), 200);
  assert.equal(await get('/readyz'), 503);
  ready = true;
  assert.equal(await get('/readyz'), 200);
  assert.equal(await get('/nope'), 404);
});
