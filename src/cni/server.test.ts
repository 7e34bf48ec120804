// The CNI server over a real unix socket (abstract, so nothing is left behind), with stub
// operations: framing, the per-request and per-connection bounds, refusals and their logging,
// the onRequest observation hook, and the errors of a socket it cannot listen on.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, silentLogger, type Logger } from '../log/logger.ts';
import { isWeftError } from '../errors.ts';
import type { CniOperations } from './plugin.ts';
import type { AddResult } from './result.ts';
import { cniServerStats, startCniServer, type CniRequestInfo, type CniServerOptions } from './server.ts';
import { decodeResponse, encodeRequest, MAX_REQUEST_BYTES, type CniResponse } from './wire.ts';

const isRoot = process.getuid?.() === 0;

const result: AddResult = {
  interfaces: [{ name: 'eth0', mac: '0a:00:00:00:00:03', sandbox: '/run/netns/p' }],
  ips: [{ address: '10.1.2.2/24', gateway: '10.1.2.1', interface: 0 }],
  routes: [],
  dns: {},
};

const ops: CniOperations = {
  add: async () => result,
  del: async () => { throw new Error('boom'); },
  check: async () => undefined,
  status: async () => undefined,
  gc: async () => undefined,
};

const env = (command: string): Record<string, string> => ({ CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' });
const CONFIG = JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft' });

const servers: Server[] = [];
after(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
});

async function start(extra: Partial<CniServerOptions> = {}): Promise<{ server: Server; socket: string; requests: CniRequestInfo[] }> {
  const socket = `@weft-cni-test-${randomBytes(4).toString('hex')}`;
  const requests: CniRequestInfo[] = [];
  const server = await startCniServer({ socket, ops, log: silentLogger, allowNonRoot: true, onRequest: (i) => requests.push(i), ...extra });
  servers.push(server);
  return { server, socket, requests };
}

const address = (socket: string): string => `\0${socket.slice(1)}`;

/** Sends bytes (then ends the request), and collects everything the server sends back until it closes. */
function exchange(socket: string, bytes: Buffer | undefined, endRequest = true): Promise<{ received: Buffer; error: string | undefined }> {
  return new Promise((resolve) => {
    const conn = createConnection({ path: address(socket), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.on('error', (e) => { error = e.message; });
    conn.on('end', () => conn.end()); // the server is done with us
    conn.on('close', () => resolve({ received: Buffer.concat(chunks), error }));
    if (bytes) conn.write(bytes);
    if (endRequest) conn.end();
  });
}

async function call(socket: string, command: string, stdin = CONFIG): Promise<CniResponse> {
  const { received } = await exchange(socket, encodeRequest({ env: env(command), stdin }));
  return decodeResponse(received);
}

const errorCode = (r: CniResponse): number => (JSON.parse(r.stdout) as { code: number }).code;

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !condition(); i++) await sleep(5);
  assert.ok(condition(), what);
}

describe('CNI server: requests and the onRequest hook', () => {
  it('serves requests and reports each one with its verb, result and duration', async () => {
    const { socket, requests } = await start();
    const add = await call(socket, 'ADD');
    assert.equal(add.exitCode, 0, add.stdout);
    assert.equal((JSON.parse(add.stdout) as { ips: { address: string }[] }).ips[0]!.address, '10.1.2.2/24');
    const del = await call(socket, 'DEL');
    assert.equal(del.exitCode, 1);
    assert.match(del.stdout, /boom/);
    assert.equal((await call(socket, 'VERSION')).exitCode, 0);
    // CNI_COMMAND is the caller's to choose; only real commands may become a metric label.
    assert.equal((await call(socket, 'EVIL-LABEL')).exitCode, 1);
    const garbage = decodeResponse((await exchange(socket, Buffer.from('GET / HTTP/1.1\r\n\r\n'))).received);
    assert.equal(errorCode(garbage), 6);
    await until('every connection reported', () => requests.length === 5);
    assert.deepEqual(requests.map((r) => [r.verb, r.result]), [['ADD', 'ok'], ['DEL', 'error'], ['VERSION', 'ok'], ['unknown', 'error'], ['unknown', 'error']]);
    for (const r of requests) assert.ok(r.seconds >= 0 && r.seconds < 60, String(r.seconds));
  });

  it('a throwing hook does not break serving', async () => {
    const { socket } = await start({ onRequest: () => { throw new Error('observer bug'); } });
    assert.equal((await call(socket, 'ADD')).exitCode, 0);
    assert.equal((await call(socket, 'ADD')).exitCode, 0);
  });
});

describe('CNI server: bounds', () => {
  it('answers a request one byte over the bound with a CNI error, holding no more than the bound', async () => {
    const { server, socket, requests } = await start();
    const { received } = await exchange(socket, Buffer.alloc(MAX_REQUEST_BYTES + 1, 'x'));
    const answer = decodeResponse(received);
    assert.equal(answer.exitCode, 1);
    assert.equal(errorCode(answer), 6);
    assert.match(answer.stdout, /larger than 1 MiB/);
    assert.deepEqual(requests.map((r) => [r.verb, r.result]), [['unknown', 'error']]);
    assert.ok(cniServerStats(server)!.largestRequestBytes <= MAX_REQUEST_BYTES);
  });

  it('100 connections sending 15 MB each: none holds more than the bound, nothing stays buffered, and it still serves', async () => {
    const { server, socket } = await start();
    const big = Buffer.alloc(15 << 20, 'y');
    const outcomes = await Promise.all(Array.from({ length: 100 }, () => exchange(socket, big)));
    for (const o of outcomes) {
      // Either our answer arrived or the drop reset the connection mid-send; never a served request.
      if (o.received.length > 0) assert.equal(errorCode(decodeResponse(o.received)), 6);
      else assert.ok(o.error, 'dropped without an answer only by a reset');
    }
    const stats = cniServerStats(server)!;
    assert.ok(stats.largestRequestBytes <= MAX_REQUEST_BYTES, `a connection held ${stats.largestRequestBytes} bytes`);
    await until('all connections closed', () => cniServerStats(server)!.connections === 0);
    assert.equal(cniServerStats(server)!.bufferedBytes, 0);
    assert.equal((await call(socket, 'ADD')).exitCode, 0);
  });

  it('answers connections beyond maxConnections with "try again later" (11) and serves the rest', async () => {
    const { server, socket, requests } = await start({ maxConnections: 2 });
    const frame = encodeRequest({ env: env('ADD'), stdin: CONFIG });
    // Two callers that have sent half a request hold both places.
    const held = [0, 1].map(() => {
      const conn = createConnection({ path: address(socket), allowHalfOpen: true });
      conn.write(frame.subarray(0, 10));
      const chunks: Buffer[] = [];
      conn.on('data', (c: Buffer) => chunks.push(c));
      const closed = new Promise<Buffer>((resolve) => conn.on('close', () => resolve(Buffer.concat(chunks))));
      return { conn, closed };
    });
    await until('both held connections accepted', () => cniServerStats(server)!.connections === 2);
    const busy = decodeResponse((await exchange(socket, frame)).received);
    assert.equal(errorCode(busy), 11);
    assert.match(busy.stdout, /busy.*try again later/);
    for (const h of held) h.conn.end(frame.subarray(10));
    for (const h of held) assert.equal(decodeResponse(await h.closed).exitCode, 0);
    assert.deepEqual(requests.map((r) => r.result).sort(), ['error', 'ok', 'ok']);
  });

  it('requests being served do not count against maxConnections: a burst of slow DELs all get served', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    const slow: CniOperations = { ...ops, del: async () => { started++; await gate; } };
    const { socket } = await start({ maxConnections: 2, ops: slow });
    // One after another, each in service before the next connects: five in service at once.
    const answers: ReturnType<typeof exchange>[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        answers.push(exchange(socket, encodeRequest({ env: { ...env('DEL'), CNI_CONTAINERID: `c${i}` }, stdin: CONFIG })));
        await until(`DEL ${i + 1} in service`, () => started === i + 1);
      }
    } finally {
      release();
    }
    for (const a of await Promise.all(answers)) assert.equal(decodeResponse(a.received).exitCode, 0);
  });

  it('drops a connection that does not finish its request within the timeout', async () => {
    const { server, socket, requests } = await start({ requestTimeoutMs: 50 });
    const idle = await exchange(socket, encodeRequest({ env: env('ADD'), stdin: CONFIG }).subarray(0, 7), false);
    assert.equal(idle.received.length, 0);
    await until('the drop reported', () => requests.length === 1);
    assert.deepEqual(requests.map((r) => [r.verb, r.result]), [['unknown', 'error']]);
    assert.equal(cniServerStats(server)!.bufferedBytes, 0);
  });
});

function memoryLog(): { log: Logger; lines: { msg: string; repeated?: number }[] } {
  const lines: { msg: string; repeated?: number }[] = [];
  const log = createLogger({ name: 'test', level: 'warn', destination: { write: (s: string) => { lines.push(JSON.parse(s) as { msg: string }); } } });
  return { log, lines };
}

describe('CNI server: callers that are not root', { skip: isRoot ? false : 'needs root to run a caller as another uid' }, () => {
  it('refuses 1,000 of them with one warning, and one summary of the repeats', async () => {
    const { log, lines } = memoryLog();
    const { server, socket, requests } = await start({ allowNonRoot: false, log, clock: () => 0 });
    // A caller of uid 65534 (nobody), connecting 1,000 times, 20 at a time.
    const caller = `
      const net = require('node:net');
      let codes = [];
      const one = () => new Promise((resolve) => {
        const c = net.createConnection({ path: ${JSON.stringify(address(socket))} });
        const chunks = [];
        c.on('data', (d) => chunks.push(d));
        c.on('error', () => {});
        c.on('close', () => { const b = Buffer.concat(chunks); codes.push(b.length > 12 ? JSON.parse(b.subarray(12, 12 + b.readUInt32BE(8)).toString()).code : -1); resolve(); });
        c.end();
      });
      (async () => { for (let i = 0; i < 50; i++) await Promise.all(Array.from({ length: 20 }, one)); console.log(JSON.stringify(codes)); })();`;
    const child = spawn(process.execPath, ['-e', caller], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    await new Promise((resolve) => child.on('close', resolve));
    const codes = JSON.parse(out) as number[];
    assert.equal(codes.length, 1000);
    assert.deepEqual([...new Set(codes)], [4], 'each got the CNI error "serves root only"');
    const refusals = lines.filter((l) => l.msg.startsWith('refused a CNI request from a non-root caller'));
    assert.equal(refusals.length, 1, 'one line, not 1,000');
    await until('every refusal reported', () => requests.length === 1000);
    await new Promise((resolve) => server.close(resolve));
    servers.splice(servers.indexOf(server), 1);
    const summary = lines.filter((l) => l.msg.startsWith('refused a CNI request from a non-root caller'));
    assert.equal(summary.length, 2);
    assert.equal(summary[1]!.repeated, 999);
    assert.match(summary[1]!.msg, /\(repeated 999 times in the last 60s\)/);
  });
});

describe('CNI server: where it cannot listen', () => {
  const rejects = (socket: string, message: RegExp): Promise<void> => assert.rejects(
    startCniServer({ socket, ops, log: silentLogger, socketSetting: '--socket' }),
    (e: unknown) => {
      assert.ok(isWeftError(e), `expected a WeftError, got ${String(e)}`);
      assert.match(e.message, message);
      return true;
    },
  );

  it('refuses an empty address and a missing directory with messages that say what to do', async () => {
    await rejects('', /^the CNI --socket must not be empty$/);
    await rejects('/nonexistent/dir/sock', /^cannot listen on \/nonexistent\/dir\/sock: directory \/nonexistent\/dir does not exist; create it or choose another --socket$/);
    await rejects(`@${'x'.repeat(200)}`, /at most 107 bytes/);
  });

  it('an address in use names the other server, for abstract and path sockets', async () => {
    const { socket } = await start();
    await rejects(socket, /^cannot listen on @weft-cni-test-\w+: another weft agent or cni-server is already serving it in this network namespace; stop that one, or choose another --socket$/);
    const dir = mkdtempSync(join(tmpdir(), 'weft-cni-sock-'));
    try {
      const path = join(dir, 'sock');
      servers.push(await startCniServer({ socket: path, ops, log: silentLogger, allowNonRoot: true }));
      await rejects(path, /another weft agent or cni-server is already serving it; stop that one/);
      assert.equal(decodeResponse((await new Promise<Buffer>((resolve) => {
        const c = createConnection({ path, allowHalfOpen: true });
        const chunks: Buffer[] = [];
        c.on('data', (d: Buffer) => chunks.push(d));
        c.on('close', () => resolve(Buffer.concat(chunks)));
        c.end(encodeRequest({ env: env('VERSION'), stdin: '' }));
      }))).exitCode, 0, 'the first server still serves');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces a stale socket file, but never deletes a file that is not a socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cni-sock-'));
    try {
      const path = join(dir, 'sock');
      const first = await startCniServer({ socket: path, ops, log: silentLogger });
      // A server that died leaves its socket file; close() here removes it, so copy the case by hand.
      await new Promise((resolve) => first.close(resolve));
      const stale = await startCniServer({ socket: path, ops, log: silentLogger });
      await new Promise((resolve) => stale.close(resolve));
      const file = join(dir, 'precious');
      writeFileSync(file, 'keep me');
      await rejects(file, /it exists and is not a socket; remove it or choose another --socket/);
      assert.equal(readFileSync(file, 'utf8'), 'keep me');
      assert.ok(existsSync(file));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
