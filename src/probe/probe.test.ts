// The probes against real sockets on loopback (no root): the responder, each method's pass
// and its ways of failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { icmpProbe, parsePingRtt } from './icmp.ts';
import { runProbes } from './run.ts';
import { startProbeServer, type ProbeServer } from './serve.ts';
import { tcpProbe } from './tcp.ts';
import { udpProbe } from './udp.ts';
import { MAX_HEADER_BYTES } from './wire.ts';

async function withServer(fn: (s: ProbeServer, seen: { method: string; from: string }[]) => Promise<void>): Promise<void> {
  const seen: { method: string; from: string }[] = [];
  const s = await startProbeServer({ port: 0, onProbe: (p) => seen.push(p) });
  try {
    await fn(s, seen);
  } finally {
    await s.close();
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

async function freePort(): Promise<number> {
  const s = createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

test('tcp and udp probes pass against `weft probe serve`, which reports the source it saw', async () => {
  await withServer(async (s, seen) => {
    const tcp = await tcpProbe('127.0.0.1', s.port);
    assert.equal(tcp.ok, true, tcp.error);
    assert.equal(tcp.seen, '127.0.0.1');
    assert.equal(tcp.attempts, 1);
    assert.equal(typeof tcp.rttMs, 'number');
    const udp = await udpProbe('127.0.0.1', s.port);
    assert.equal(udp.ok, true, udp.error);
    assert.equal(udp.seen, '127.0.0.1');
    assert.match(udp.nonce ?? '', /^[0-9a-f]{16}$/);
    assert.deepEqual(seen.map((p) => `${p.method} ${p.from}`), ['tcp 127.0.0.1', 'udp 127.0.0.1']);
    // The default address takes IPv6 too, where the host has it.
    const v6 = await tcpProbe('::1', s.port, { attempts: 1 });
    if (s.address === '::') assert.equal(v6.seen, '::1', v6.error);
  });
});

test('the tcp echo carries a multi-segment payload both ways, up to the bound', async () => {
  await withServer(async (s) => {
    assert.equal((await tcpProbe('127.0.0.1', s.port, { payloadBytes: 65536 })).ok, true);
    assert.equal((await tcpProbe('127.0.0.1', s.port, { payloadBytes: 1 })).ok, true);
    const over = await tcpProbe('127.0.0.1', s.port, { payloadBytes: 65537, attempts: 1 });
    assert.equal(over.ok, false);
    assert.match(over.error ?? '', /closed the connection|reset the connection/);
  });
});

test('a refused tcp port fails with "connection refused" after every try', async () => {
  const port = await freePort();
  const r = await tcpProbe('127.0.0.1', port, { attempts: 2, timeoutMs: 200 });
  assert.deepEqual([r.ok, r.attempts], [false, 2]);
  assert.match(r.error ?? '', /connection refused/);
});

test('a port that accepts but never echoes fails naming the echo (an MTU symptom), and handshake-only passes it', async () => {
  const silent = createServer((c) => c.on('data', () => undefined));
  const port = await listen(silent);
  try {
    const r = await tcpProbe('127.0.0.1', port, { attempts: 1, timeoutMs: 1500 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /connected, but the 4096-byte echo did not come back/);
    assert.equal((await tcpProbe('127.0.0.1', port, { attempts: 1, payloadBytes: 0 })).ok, true);
  } finally {
    silent.close();
  }
});

test('a tcp peer that answers something else is not taken for a responder', async () => {
  const liar = createServer((c) => c.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const port = await listen(liar);
  try {
    const r = await tcpProbe('127.0.0.1', port, { attempts: 1, timeoutMs: 2000 });
    assert.equal(r.ok, false);
    assert.match(r.error ?? '', /does not speak weft probe|closed the connection|reset the connection/);
  } finally {
    liar.close();
  }
});

test('udp without an answer fails after its tries; a wrong answer is ignored', async () => {
  const wrong = createSocket('udp4');
  wrong.on('message', (_m, peer) => wrong.send(JSON.stringify({ nonce: 'ffff', seen: '1.2.3.4' }), peer.port, peer.address));
  await new Promise<void>((r) => wrong.bind(0, '127.0.0.1', () => r()));
  try {
    const r = await udpProbe('127.0.0.1', wrong.address().port, { attempts: 2, waitMs: 200 });
    assert.deepEqual([r.ok, r.attempts, r.seen], [false, 2, undefined]);
    assert.match(r.error ?? '', /no answer to 2 datagrams/);
  } finally {
    wrong.close();
  }
});

test('the responder drops oversized or malformed requests and keeps serving', async () => {
  await withServer(async (s) => {
    const closed = (data: string): Promise<string> =>
      new Promise((resolve) => {
        const c = connect(s.port, '127.0.0.1', () => c.write(data));
        let got = '';
        c.on('data', (b) => (got += b.toString()));
        c.on('close', () => resolve(got));
        c.on('error', () => undefined);
      });
    assert.equal(await closed('x'.repeat(MAX_HEADER_BYTES + 10)), '');
    assert.equal(await closed('weft-probe zz 10\n'), '');
    assert.equal(await closed('weft-probe ab 2\nabc'), '');
    assert.equal((await udpProbe('127.0.0.1', s.port, { nonce: 'not-hex', attempts: 1, waitMs: 200 })).ok, false);
    assert.equal((await tcpProbe('127.0.0.1', s.port)).ok, true);
  });
});

test('icmp runs ping (here through a prefix that fakes it) and reads its rtt; failures say why', async () => {
  const fake = (script: string): string[] => ['sh', '-c', script, 'ping-fake'];
  const ok = await icmpProbe('10.0.0.1', { argvPrefix: fake('echo "64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.25 ms"'), attempts: 2 });
  assert.deepEqual(ok, { ok: true, rttMs: 0.25, attempts: 1 });
  const lost = await icmpProbe('10.0.0.1', { argvPrefix: fake('echo "1 packets transmitted, 0 received"; exit 1'), attempts: 2 });
  assert.deepEqual(lost, { ok: false, error: 'no echo reply within 1 s', attempts: 2 });
  const denied = await icmpProbe('10.0.0.1', { argvPrefix: fake('echo "ping: socket: Operation not permitted" >&2; exit 2'), attempts: 1 });
  assert.equal(denied.error, 'ping: socket: Operation not permitted');
  const missing = await icmpProbe('10.0.0.1', { argvPrefix: ['/nonexistent/nsenter'] });
  assert.deepEqual([missing.ok, missing.attempts], [false, 1]);
  assert.match(missing.error ?? '', /cannot run \/nonexistent\/nsenter/);
  await assert.rejects(icmpProbe('10.0.0.1', { argvPrefix: ['/nonexistent/nsenter'], throwIfUnrunnable: true }), /cannot run/);
  assert.equal(parsePingRtt('rtt min/avg/max/mdev = 0.100/0.250/0.400/0.010 ms\n'), 0.25);
});

test('runProbes keeps the order of its targets and counts what passed', async () => {
  await withServer(async (s) => {
    const refused = await freePort();
    const report = await runProbes(
      [
        { method: 'udp', address: '127.0.0.1', port: s.port },
        { method: 'tcp', address: '127.0.0.1', port: refused },
        { method: 'tcp', address: '127.0.0.1', port: s.port },
      ],
      { attempts: 1, waitMs: 300, concurrency: 2 },
    );
    assert.deepEqual(report.results.map((r) => [r.method, r.port, r.ok]), [['udp', s.port, true], ['tcp', refused, false], ['tcp', s.port, true]]);
    assert.deepEqual([report.weft_probe, report.passed, report.failed], [1, 2, 1]);
    assert.equal(report.results[1]?.rtt_ms, null);
    assert.match(report.results[1]?.error ?? '', /refused/);
  });
});
