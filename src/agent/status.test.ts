import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fetchStatus, startHealthz, startStatusServer, type AgentStatus } from './status.ts';
import { isWeftError } from '../errors.ts';
import { AgentMetrics } from './metrics.ts';
import type { ReadinessView } from './readiness.ts';

const sample: AgentStatus = {
  node: 'n1', mode: 'etcd', phase: 'ready', ready: true, reasons: [], publicIp: '172.31.1.11', interface: 'eth0', backend: 'vxlan',
  store: { kind: 'etcd-v3', endpoints: ['http://172.31.1.5:2379'], prefix: '/coreos.com/network' },
  lease: { subnet: '10.16.85.0/24', subnets: ['10.16.85.0/24'], expiresAt: '2026-11-28T12:00:00.000Z', reservation: false, held: true },
  network: '10.16.0.0/16', mtu: 1450,
  peers: [{ id: 'subnets/10.16.9.0-24', subnet: '10.16.9.0/24', subnets: ['10.16.9.0/24'], publicIp: '172.31.2.12', backendType: 'vxlan', path: 'vxlan' }],
  rejected: [], rejectedCount: 0, lastSync: '2026-11-27T12:00:00.000Z', errors: [],
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

test('healthz answers from the first second; readyz follows readiness and says why not; /metrics is served', async (t) => {
  let view: ReadinessView = { phase: 'waiting-for-store', ready: false, reasons: ['etcd at http://10.0.0.1:2379: connection refused'] };
  const metrics = new AgentMetrics({ version: 't', mode: 'etcd' });
  const server = await startHealthz('127.0.0.1', 0, { readiness: () => view, metrics });
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  assert.equal((await get('/healthz')).status, 200);
  const notReady = await get('/readyz');
  assert.equal(notReady.status, 503);
  assert.match(notReady.body, /waiting-for-store.*connection refused/);
  view = { phase: 'ready', ready: true, reasons: [] };
  assert.equal((await get('/readyz')).status, 200);
  assert.equal((await get('/nope')).status, 404);
  assert.match((await get('/metrics')).body, /weft_build_info/);
});
