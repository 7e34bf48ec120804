import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { request } from 'node:http';
import { MAX_COMMAND_BYTES, commandTable, fetchStatus, postCommand, startHealthz, startStatusServer, type AgentStatus, type CommandHandler } from './status.ts';
import { WeftError, isWeftError } from '../errors.ts';
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
  // A note (the fast path fell back) is in the body, and the node stays ready.
  view = { phase: 'ready', ready: true, reasons: [], notes: ['the eBPF fast path could not be loaded, so pods use the normal path: no BTF'] };
  const noted = await get('/readyz');
  assert.equal(noted.status, 200);
  assert.match(noted.body, /^weft is ready\nnote: the eBPF fast path could not be loaded.*no BTF\n$/);
  assert.equal((await get('/nope')).status, 404);
  assert.match((await get('/metrics')).body, /weft_build_info/);
});

async function statusServer(t: { after(fn: () => void): void }, commands?: CommandHandler): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-status-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  const server = await startStatusServer(path, () => sample, commands);
  t.after(() => server.close());
  return path;
}

/** One raw request: `chunks` are written one by one without a Content-Length (chunked) unless `length` is given. */
function raw(path: string, opts: { method: string; url: string; chunks?: (string | Buffer)[]; length?: number }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = opts.length === undefined ? {} : { 'content-length': opts.length };
    const req = request({ socketPath: path, path: opts.url, method: opts.method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const c of opts.chunks ?? []) req.write(c);
    req.end();
  });
}

test('commands: POST /command/<name> with a JSON body; the answer is the JSON result, or {error} with 400, 404 or 500', async (t) => {
  const seen: [string, unknown][] = [];
  const path = await statusServer(t, commandTable({
    rmpeer: async (body) => {
      seen.push(['rmpeer', body]);
      const peer = (body as { peer?: unknown } | null)?.peer;
      if (peer === 'alive') throw new WeftError('WEFT_INVALID_CONFIG', 'peer alive is reachable; rmpeer is for dead peers');
      if (peer === 'bug') throw new TypeError('x is undefined');
      return { addresses: 512, peer: 'aa:bb:cc:dd:ee:03(node-3)' };
    },
  }));
  assert.deepEqual(await postCommand(path, 'rmpeer', { peer: 'node-3' }), { status: 200, body: { addresses: 512, peer: 'aa:bb:cc:dd:ee:03(node-3)' } });
  assert.deepEqual(seen, [['rmpeer', { peer: 'node-3' }]]);
  assert.deepEqual(await postCommand(path, 'rmpeer', { peer: 'alive' }), { status: 400, body: { error: 'peer alive is reachable; rmpeer is for dead peers' } });
  const internal = await postCommand(path, 'rmpeer', { peer: 'bug' });
  assert.equal(internal.status, 500);
  assert.match((internal.body as { error: string }).error, /^rmpeer failed inside the agent: x is undefined$/);
  const unknown = await postCommand(path, 'launch', {});
  assert.equal(unknown.status, 404);
  assert.match((unknown.body as { error: string }).error, /no command "launch"/);
  assert.equal((await postCommand(path, 'Bad_Name', {})).status, 404);
  // GET /status is as it was.
  assert.deepEqual(await fetchStatus(path), sample);
});

test('commands: bodies over 16 KiB are refused with 413 without being kept; a body that is not JSON is a 400', async (t) => {
  let calls = 0;
  const path = await statusServer(t, commandTable({ echo: async (body) => { calls++; return body; } }));
  // Exactly at the bound: accepted.
  const atBound = JSON.stringify({ s: 'x'.repeat(MAX_COMMAND_BYTES - 8) });
  assert.equal(Buffer.byteLength(atBound), MAX_COMMAND_BYTES);
  const ok = await raw(path, { method: 'POST', url: '/command/echo', chunks: [atBound], length: MAX_COMMAND_BYTES });
  assert.equal(ok.status, 200, ok.body);
  assert.equal((JSON.parse(ok.body) as { s: string }).s.length, MAX_COMMAND_BYTES - 8);
  // Declared too big.
  const declared = JSON.stringify({ s: 'x'.repeat(MAX_COMMAND_BYTES) });
  const big = await raw(path, { method: 'POST', url: '/command/echo', chunks: [declared], length: Buffer.byteLength(declared) });
  assert.equal(big.status, 413);
  assert.match(big.body, /at most 16384 bytes/);
  // Chunked, no length: refused once the chunks add up to more.
  const chunked = await raw(path, { method: 'POST', url: '/command/echo', chunks: ['{"s":"', 'y'.repeat(10_000), 'y'.repeat(10_000), '"}'] });
  assert.equal(chunked.status, 413);
  assert.equal(calls, 1);
  const notJson = await raw(path, { method: 'POST', url: '/command/echo', chunks: ['{nope'] });
  assert.equal(notJson.status, 400);
  assert.match(notJson.body, /not JSON/);
  // No body at all is null.
  assert.deepEqual(await raw(path, { method: 'POST', url: '/command/echo' }), { status: 200, body: 'null\n' });
  assert.equal((await raw(path, { method: 'GET', url: '/command/echo' })).status, 405);
  await assert.rejects(postCommand(path, 'echo', { s: 'z'.repeat(MAX_COMMAND_BYTES) }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /at most 16384/.test(e.message));
});

test('commands: an agent without any answers 404, and GET /status still works', async (t) => {
  const path = await statusServer(t);
  assert.deepEqual(await postCommand(path, 'rmpeer', { peer: 'x' }), { status: 404, body: { error: 'this agent takes no commands' } });
  assert.deepEqual(await fetchStatus(path), sample);
  await assert.rejects(postCommand('/nonexistent/agent.sock', 'rmpeer', {}), (e) => isWeftError(e, 'WEFT_NOT_READY') && /is `weft agent` running/.test(e.message));
});
