import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dialChannel, type Channel } from './channel.ts';
import { TokenBucket, listenMesh } from './listen.ts';
import { channelOptions, identity, recordingListener, until, type Recorded } from './test-support.ts';

const A = identity('peer-a');
const B = identity('peer-b');

/** Opens `n` sockets that never send a byte; each records when the server dropped it. */
async function flood(port: number, n: number, localAddress = '127.0.0.1'): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve());
    s.resume(); // read, so a close by the server is seen
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    sockets.push(s);
  })));
  return sockets;
}

function sampleMaxPending(r: Recorded): { max: () => number; stop: () => void } {
  let max = 0;
  const sample = (): void => {
    max = Math.max(max, r.listener.pending());
  };
  const timer = setInterval(sample, 1);
  return { max: () => (sample(), max), stop: () => clearInterval(timer) };
}

async function dialUntilConnected(port: number): Promise<Channel> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await dialChannel('127.0.0.1', port, channelOptions(A, { handshakeTimeoutMs: 2000 }));
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test('a flood of 300 silent connections: pending stays bounded, the rest is dropped, and a real peer gets in afterwards', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, handshakeTimeoutMs: 1000 });
  t.after(() => server.listener.close());
  const pending = sampleMaxPending(server);
  t.after(() => pending.stop());
  const sockets = await flood(server.listener.port, 300);
  await until('every flood socket accepted or dropped', () => server.refused.length + server.listener.pending() >= 300);
  // Defaults: 20 accept tokens, 16 in progress per source address, 64 in all.
  assert.ok(pending.max() <= 16, `pending reached ${pending.max()}`);
  assert.ok(server.refused.filter((r) => r.why.reason === 'busy').length >= 300 - 20);
  for (const s of sockets) s.destroy();
  await until('the pending handshakes to end', () => server.listener.pending() === 0);
  const ch = await dialUntilConnected(server.listener.port);
  assert.equal(ch.remote.name, B.name);
  ch.close();
});

test('maxPending bounds handshakes in progress across source addresses', async (t) => {
  const server = await recordingListener({
    self: { ...B, port: 0 }, maxPending: 10, maxPendingPerHost: 1000, acceptBurst: 1000, handshakeTimeoutMs: 60_000,
  });
  t.after(() => server.listener.close());
  const pending = sampleMaxPending(server);
  t.after(() => pending.stop());
  const sockets = await flood(server.listener.port, 100);
  t.after(() => sockets.forEach((s) => s.destroy()));
  await until('the overflow dropped', () => server.refused.length >= 90);
  assert.equal(server.listener.pending(), 10);
  assert.ok(pending.max() <= 10);
  assert.match(server.refused[0]!.why.message, /too many mesh handshakes in progress \(limit 10\)/);
});

test('the per-address bound keeps one flooding host from locking out another', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, maxPendingPerHost: 4, acceptBurst: 1000, handshakeTimeoutMs: 60_000 });
  t.after(() => server.listener.close());
  const sockets = await flood(server.listener.port, 30, '127.0.0.2');
  t.after(() => sockets.forEach((s) => s.destroy()));
  await until('the flood settled', () => server.refused.length >= 26);
  assert.equal(server.listener.pending(), 4);
  // The flood's handshakes are still in progress (60 s deadline), yet 127.0.0.1 gets in.
  const ch = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A));
  ch.close();
});

test('token bucket: a burst, then one token per refill interval', () => {
  let now = 1000;
  const bucket = new TokenBucket(3, 50, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
  now += 49;
  assert.equal(bucket.take(), false);
  now += 1;
  assert.equal(bucket.take(), true);
  now += 10_000;
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take()], [true, true, true, false]);
});

test('close() stops accepting and ends handshakes in progress; established channels stay', async (t) => {
  const channels: Channel[] = [];
  const listener = await listenMesh('127.0.0.1', 0, {
    ...channelOptions({ ...B, port: 0 }), onChannel: (ch) => channels.push(ch), onRefused: () => {},
  });
  t.after(() => listener.close());
  const ch = await dialChannel('127.0.0.1', listener.port, channelOptions(A));
  t.after(() => ch.close());
  await until('the inbound channel', () => channels.length === 1);
  const silent = await flood(listener.port, 1);
  t.after(() => silent[0]!.destroy());
  await until('one pending', () => listener.pending() === 1);
  await listener.close();
  assert.equal(listener.pending(), 0);
  await until('the pending socket closed by the server', () => silent[0]!.closed);
  const got: Buffer[] = [];
  channels[0]!.onMessage((m) => got.push(m));
  ch.send(Buffer.from('still here'));
  await until('the message', () => got.length === 1);
  await assert.rejects(dialChannel('127.0.0.1', listener.port, channelOptions(A)), (e: Error & { reason?: string }) => e.reason === 'connect');
});

test('listening on a taken port is a clear error', async (t) => {
  const first = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => first.listener.close());
  await assert.rejects(
    listenMesh('127.0.0.1', first.listener.port, { ...channelOptions(B), onChannel: () => {}, onRefused: () => {} }),
    /cannot listen for mesh connections on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
  );
});
