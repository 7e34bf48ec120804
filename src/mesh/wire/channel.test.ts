import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { dialChannel, type Channel } from './channel.ts';
import { FRAME, FRAME_HEADER_BYTES, encodeFrame, frameHeader } from './frame.ts';
import {
  channelOptions, closeWhy, connect, frameProxy, frameType, helloFrame, identity, rawPlaintextPeer,
  plainIdentityFrame, recordingListener, refusalIn, rejection, until, watch,
} from './test-support.ts';

const A = identity('aa:00:00:00:00:01');
const B = identity('aa:00:00:00:00:02');

function collect(ch: Channel): Buffer[] {
  const got: Buffer[] = [];
  ch.onMessage((m) => got.push(m));
  return got;
}

test('plaintext: both ends see each other, messages flow both ways in order', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => server.listener.close());
  const client = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A));
  t.after(() => client.close());
  await until('the inbound channel', () => server.channels.length === 1);
  const inbound = server.channels[0]!;
  assert.equal(client.encrypted, false);
  assert.equal(client.outbound, true);
  assert.equal(inbound.outbound, false);
  assert.equal(client.handshakeHash, null);
  assert.deepEqual(client.remote, { ...B, port: server.listener.port });
  assert.deepEqual(inbound.remote, A);
  assert.equal(client.remoteAddress, `127.0.0.1:${server.listener.port}`);
  assert.equal(client.protocol, 1);

  const atServer = collect(inbound);
  const atClient = collect(client);
  for (let i = 0; i < 50; i++) assert.ok(client.send(Buffer.from(`c${i}`)));
  for (let i = 0; i < 50; i++) assert.ok(inbound.send(Buffer.from(`s${i}`)));
  assert.ok(client.send(Buffer.alloc(0)));
  await until('all messages', () => atServer.length === 51 && atClient.length === 50);
  assert.deepEqual(atServer.slice(0, 50).map(String), Array.from({ length: 50 }, (_, i) => `c${i}`));
  assert.equal(atServer[50]!.length, 0);
  assert.deepEqual(atClient.map(String), Array.from({ length: 50 }, (_, i) => `s${i}`));
  assert.ok(client.stats().framesOut >= 52 && inbound.stats().framesIn >= 52);
});

test('encrypted: many messages both ways and one of ~900 KiB; both ends have the same handshake hash', async (t) => {
  const psk = randomBytes(32);
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [psk] });
  t.after(() => server.listener.close());
  const client = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks: [psk] }));
  t.after(() => client.close());
  await until('the inbound channel', () => server.channels.length === 1);
  const inbound = server.channels[0]!;
  assert.ok(client.encrypted && inbound.encrypted);
  assert.ok(client.handshakeHash && inbound.handshakeHash);
  assert.deepEqual(client.handshakeHash, inbound.handshakeHash);
  assert.equal(client.maxMessageBytes, 1024 * 1024 - 16);

  const atServer = collect(inbound);
  const atClient = collect(client);
  const big = randomBytes(900 * 1024);
  for (let i = 0; i < 300; i++) client.send(Buffer.from(`c${i}`));
  assert.ok(client.send(big));
  for (let i = 0; i < 300; i++) inbound.send(Buffer.from(`s${i}`));
  assert.ok(inbound.send(big));
  await until('all messages', () => atServer.length === 301 && atClient.length === 301);
  assert.deepEqual(atServer.slice(0, 300).map(String), Array.from({ length: 300 }, (_, i) => `c${i}`));
  assert.deepEqual(atServer[300], big);
  assert.deepEqual(atClient[300], big);
  assert.throws(() => client.send(Buffer.alloc(client.maxMessageBytes + 1)), /over the .*-byte limit/);
});

test('PSK rotation: the responder tries every PSK it holds; the initiator uses its first', async (t) => {
  const [oldKey, newKey, other] = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [oldKey, newKey] });
  t.after(() => server.listener.close());
  for (const psks of [[newKey], [oldKey, other]]) {
    const ch = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks }));
    ch.close();
  }
  const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks: [other, newKey] })));
  assert.equal(e.reason, 'auth');
});

test('wrong password: refused with auth on both sides', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [randomBytes(32)] });
  t.after(() => server.listener.close());
  const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks: [randomBytes(32)] })));
  assert.equal(e.reason, 'auth');
  assert.match(e.message, /different password/);
  await until('the server side refusal', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'auth');
  assert.match(server.refused[0]!.why.message, /different passwords/);
  assert.equal(server.channels.length, 0);
});

test('password on one side only: the clear message on both sides, either way round', async (t) => {
  for (const [serverPsks, clientPsks] of [[[randomBytes(32)], null], [null, [randomBytes(32)]]] as const) {
    const server = await recordingListener({ self: { ...B, port: 0 }, psks: serverPsks });
    t.after(() => server.listener.close());
    const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks: clientPsks })));
    await until('the server side refusal', () => server.refused.length === 1);
    const s = server.refused[0]!.why;
    assert.equal(e.reason, 'encryption');
    assert.equal(s.reason, 'encryption');
    const port = server.listener.port;
    if (serverPsks) {
      assert.match(s.message, /^password specified, but peer 127\.0\.0\.1:6783 requested an unencrypted connection/);
      assert.match(e.message, new RegExp(`^no password specified, but peer 127\\.0\\.0\\.1:${port} requested an encrypted connection`));
    } else {
      assert.match(e.message, new RegExp(`^password specified, but peer 127\\.0\\.0\\.1:${port} requested an unencrypted connection`));
      assert.match(s.message, /^no password specified, but peer 127\.0\.0\.1:6783 requested an encrypted connection/);
    }
  }
});

test('version mismatch: both sides name both ranges', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, protocol: { min: 2, max: 3 } });
  t.after(() => server.listener.close());
  const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions(A)));
  assert.equal(e.reason, 'version');
  assert.match(e.message, /remote protocol range \[2,3\] is incompatible with ours \[1,1\]/);
  await until('the server side refusal', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'version');
  assert.match(server.refused[0]!.why.message, /remote protocol range \[1,1\] is incompatible with ours \[2,3\]/);
  // An overlapping range agrees on the highest common version.
  const ch = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { protocol: { min: 1, max: 2 } }));
  assert.equal(ch.protocol, 2);
  ch.close();
});

test('mesh id mismatch: both sides name both meshes', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, meshDescription: 'IPALLOC_RANGE 10.32.0.0/12, /26 blocks' });
  t.after(() => server.listener.close());
  const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { meshId: 'cd'.repeat(32), meshDescription: 'IPALLOC_RANGE 10.40.0.0/16, /24 blocks' })));
  assert.equal(e.reason, 'mesh');
  assert.match(e.message, /it uses IPALLOC_RANGE 10\.32\.0\.0\/12, \/26 blocks .*we use IPALLOC_RANGE 10\.40\.0\.0\/16, \/24 blocks/);
  await until('the server side refusal', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'mesh');
  assert.match(server.refused[0]!.why.message, /it uses IPALLOC_RANGE 10\.40\.0\.0\/16, \/24 blocks .*we use IPALLOC_RANGE 10\.32\.0\.0\/12/);
});

test('garbage: an HTTP request is refused as not a mesh peer, with a refuse frame, and a garbage server fails the dial', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => server.listener.close());
  const raw = watch(await connect(server.listener.port));
  raw.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await until('the refusal and close', () => server.refused.length === 1 && raw.ended());
  assert.equal(server.refused[0]!.why.reason, 'garbage');
  assert.equal(refusalIn(raw.frames)?.reason, 'garbage');

  const junk = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
  await new Promise<void>((r) => junk.listen(0, '127.0.0.1', r));
  t.after(() => junk.close());
  const e = await rejection(dialChannel('127.0.0.1', (junk.address() as net.AddressInfo).port, channelOptions(A)));
  assert.ok(e.reason === 'garbage', e.message);
});

test('an oversized length prefix before authentication closes at once, without waiting for (or keeping) the body', async (t) => {
  // The handshake deadline is far away: only the header check can end this connection.
  const server = await recordingListener({ self: { ...B, port: 0 }, handshakeTimeoutMs: 120_000 });
  t.after(() => server.listener.close());
  for (const length of [4097, 0xffff_fff0]) {
    const raw = watch(await connect(server.listener.port));
    raw.socket.write(frameHeader(FRAME.hello, length));
    await until('the refusal', () => raw.ended());
    assert.equal(refusalIn(raw.frames)?.reason, 'oversized');
  }
  await until('both refusals', () => server.refused.length === 2);
  assert.deepEqual(server.refused.map((r) => r.why.reason), ['oversized', 'oversized']);
  assert.match(server.refused[1]!.why.message, /4294967280 bytes, over the 4096-byte limit before authentication/);
});

test('an oversized frame after authentication closes the channel (plaintext by hand, and encrypted)', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, maxFrameBytes: 8192 });
  t.after(() => server.listener.close());
  const raw = await rawPlaintextPeer(server.listener.port, A);
  await until('the inbound channel', () => server.channels.length === 1);
  const why = closeWhy(server.channels[0]!);
  raw.socket.write(frameHeader(FRAME.message, 8193));
  assert.equal((await why)?.reason, 'oversized');

  const psk = randomBytes(32);
  const small = await recordingListener({ self: { ...B, port: 0 }, psks: [psk], maxFrameBytes: 8192 });
  t.after(() => small.listener.close());
  const client = await dialChannel('127.0.0.1', small.listener.port, channelOptions(A, { psks: [psk] }));
  await until('the inbound channel', () => small.channels.length === 1);
  const serverWhy = closeWhy(small.channels[0]!);
  const clientWhy = closeWhy(client);
  assert.ok(client.send(Buffer.alloc(10_000)));
  assert.equal((await serverWhy)?.reason, 'oversized');
  const c = await clientWhy;
  assert.equal(c?.reason, 'closed');
  assert.match(c?.message ?? '', /closed the connection: .*over the 8192-byte limit/);
});

test('a truncated frame (the peer ends inside it) is refused as garbage', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => server.listener.close());
  const raw = watch(await connect(server.listener.port));
  const hello = helloFrame();
  raw.socket.end(hello.subarray(0, hello.length - 3));
  await until('the refusal', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'garbage');
  assert.match(server.refused[0]!.why.message, /in the middle of a frame/);
});

test('a slow drip of handshake bytes does not extend the handshake deadline', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, handshakeTimeoutMs: 300 });
  t.after(() => server.listener.close());
  const raw = watch(await connect(server.listener.port));
  const bytes = helloFrame();
  let i = 0;
  // One byte every 20 ms: an idle timer reset by each byte would never fire.
  const drip = setInterval(() => {
    if (i < bytes.length && !raw.ended()) raw.socket.write(bytes.subarray(i, ++i));
  }, 20);
  t.after(() => clearInterval(drip));
  await until('the timeout', () => server.refused.length === 1 && raw.ended());
  assert.ok(i < bytes.length, 'the hello was still incomplete');
  assert.equal(server.refused[0]!.why.reason, 'timeout');
  assert.equal(refusalIn(raw.frames)?.reason, 'timeout');
});

test('a replayed initiator handshake (recorded bytes sent again) does not produce a channel', async (t) => {
  const psk = randomBytes(32);
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [psk] });
  t.after(() => server.listener.close());
  const proxy = await frameProxy(server.listener.port);
  t.after(() => proxy.close());
  const client = await dialChannel('127.0.0.1', proxy.port, channelOptions(A, { psks: [psk] }));
  await until('the real channel', () => server.channels.length === 1);
  client.send(Buffer.from('hello'));
  client.close();
  const recording = Buffer.concat(proxy.recorded);
  const raw = watch(await connect(server.listener.port));
  raw.socket.write(recording);
  await until('the replay refused', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'auth');
  assert.equal(server.channels.length, 1);
});

test('a changed hello breaks the handshake (the hellos are the Noise prologue)', async (t) => {
  const psk = randomBytes(32);
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [psk] });
  t.after(() => server.listener.close());
  // Appends one byte to the client's hello: still a valid hello, but not the one it sent.
  const proxy = await frameProxy(server.listener.port, (f, dir) => {
    if (dir !== 'toServer' || frameType(f) !== FRAME.hello) return [f];
    return [encodeFrame(FRAME.hello, Buffer.concat([f.subarray(FRAME_HEADER_BYTES), Buffer.from([0])]))];
  });
  t.after(() => proxy.close());
  const e = await rejection(dialChannel('127.0.0.1', proxy.port, channelOptions(A, { psks: [psk] })));
  assert.equal(e.reason, 'auth');
  await until('the server side refusal', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'auth');
});

for (const attack of ['replayed', 'modified', 'dropped', 'reordered'] as const) {
  test(`a ${attack} transport frame closes the channel`, async (t) => {
    const psk = randomBytes(32);
    const server = await recordingListener({ self: { ...B, port: 0 }, psks: [psk] });
    t.after(() => server.listener.close());
    let held: Buffer | undefined;
    const proxy = await frameProxy(server.listener.port, (f, dir) => {
      if (dir !== 'toServer' || frameType(f) !== FRAME.message) return [f];
      if (held) return [f, held]; // reordered: the target goes after the next frame
      const isTarget = f.length - FRAME_HEADER_BYTES - 16 === 'target'.length;
      if (!isTarget) return [f];
      if (attack === 'replayed') return [f, f];
      if (attack === 'modified') {
        const m = Buffer.from(f);
        m[FRAME_HEADER_BYTES + 2]! ^= 1;
        return [m];
      }
      if (attack === 'dropped') return [];
      held = f;
      return [];
    });
    t.after(() => proxy.close());
    const client = await dialChannel('127.0.0.1', proxy.port, channelOptions(A, { psks: [psk] }));
    t.after(() => client.close());
    await until('the inbound channel', () => server.channels.length === 1);
    const inbound = server.channels[0]!;
    const got = collect(inbound);
    const why = closeWhy(inbound);
    client.send(Buffer.from('one'));
    client.send(Buffer.from('target'));
    client.send(Buffer.from('two'));
    const w = await why;
    assert.equal(w?.reason, 'auth');
    assert.match(w?.message ?? '', /failed authentication/);
    // Only what arrived intact and in order was delivered; nothing after the bad frame.
    assert.deepEqual(got.map(String), attack === 'replayed' ? ['one', 'target'] : ['one']);
  });
}

test('idle timeout: a peer that goes silent is closed', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, idleTimeoutMs: 200, keepaliveMs: 50 });
  t.after(() => server.listener.close());
  const raw = await rawPlaintextPeer(server.listener.port, A); // never sends keepalives
  await until('the inbound channel', () => server.channels.length === 1);
  const why = await closeWhy(server.channels[0]!);
  assert.equal(why?.reason, 'timeout');
  assert.match(why?.message ?? '', /nothing heard from peer/);
  // Before closing, the channel kept sending its own keepalives to the silent peer.
  await until('the raw peer closed', () => raw.ended());
  assert.ok(raw.frames.filter((f) => frameType(f) === FRAME.keepalive).length >= 1);
});

test('keepalives keep an idle channel open, both encrypted and plaintext', async (t) => {
  for (const psks of [null, [randomBytes(32)]]) {
    const timing = { idleTimeoutMs: 600, keepaliveMs: 25 };
    const server = await recordingListener({ self: { ...B, port: 0 }, psks, ...timing });
    t.after(() => server.listener.close());
    const client = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks, ...timing }));
    await until('the inbound channel', () => server.channels.length === 1);
    const inbound = server.channels[0]!;
    let closed = false;
    client.onClose(() => (closed = true));
    inbound.onClose(() => (closed = true));
    // 60 keepalive intervals span more than two idle timeouts, with no message sent.
    await until('keepalives both ways', () => client.stats().framesIn >= 60 && inbound.stats().framesIn >= 60);
    assert.equal(closed, false);
    client.close('done');
  }
});

test('write queue bound: a peer that stops reading is closed as too slow', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, maxQueuedBytes: 256 * 1024, idleTimeoutMs: 60_000 });
  t.after(() => server.listener.close());
  const raw = await rawPlaintextPeer(server.listener.port, A);
  await until('the inbound channel', () => server.channels.length === 1);
  raw.socket.pause();
  const inbound = server.channels[0]!;
  const why = closeWhy(inbound);
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  while (inbound.send(chunk)) {
    sent++;
    if (sent > 20_000) assert.fail('the queue bound never applied');
  }
  const w = await why;
  assert.equal(w?.reason, 'slow');
  assert.match(w?.message ?? '', /too slow/);
  assert.equal(inbound.send(chunk), false);
  raw.socket.destroy();
});

test('dialing ourselves (same name and uid) fails with self on both ends', async (t) => {
  const server = await recordingListener({ self: { ...A, port: 0 } });
  t.after(() => server.listener.close());
  const e = await rejection(dialChannel('127.0.0.1', server.listener.port, channelOptions({ ...A, port: server.listener.port })));
  assert.equal(e.reason, 'self');
  await until('the server side', () => server.refused.length === 1);
  assert.equal(server.refused[0]!.why.reason, 'self');
  // Same name, other uid: not ours to judge; the channel is made and reports the identity.
  const twin = await dialChannel('127.0.0.1', server.listener.port, channelOptions({ ...A, uid: '0123456789abcdef' }));
  assert.equal(twin.remote.name, A.name);
  twin.close();
});

test('an invalid remote identity is refused', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => server.listener.close());
  const bad = [
    { ...A, name: 'has space' },
    { ...A, uid: 'xyz' },
    { ...A, nickname: 'n'.repeat(64) },
    { ...A, port: 0 },
  ];
  for (const id of bad) {
    const raw = await rawPlaintextPeer(server.listener.port, id);
    await until('the refusal', () => raw.ended());
  }
  await until('all refusals', () => server.refused.length === bad.length);
  assert.deepEqual(server.refused.map((r) => r.why.reason), bad.map(() => 'identity'));
  assert.equal(server.channels.length, 0);
});

test('close(reason) reaches the peer; the local listener gets undefined', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 }, psks: [Buffer.alloc(32, 7)] });
  t.after(() => server.listener.close());
  const client = await dialChannel('127.0.0.1', server.listener.port, channelOptions(A, { psks: [Buffer.alloc(32, 7)] }));
  await until('the inbound channel', () => server.channels.length === 1);
  const remoteWhy = closeWhy(server.channels[0]!);
  const localWhy = closeWhy(client);
  client.close('duplicate connection');
  assert.equal(await localWhy, undefined);
  const r = await remoteWhy;
  assert.equal(r?.reason, 'closed');
  assert.match(r?.message ?? '', /closed the connection: duplicate connection/);
  assert.equal(client.send(Buffer.from('late')), false);
  // A listener added after the close still hears about it, once.
  assert.equal(await closeWhy(client), undefined);
});

test('dial failures: refused port, abort signal, bad options', async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const freePort = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const e = await rejection(dialChannel('127.0.0.1', freePort, channelOptions(A)));
  assert.equal(e.reason, 'connect');

  const blackhole = net.createServer(() => {});
  await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
  const abort = new AbortController();
  const pending = dialChannel('127.0.0.1', (blackhole.address() as net.AddressInfo).port, { ...channelOptions(A), signal: abort.signal });
  setTimeout(() => abort.abort(), 50);
  assert.equal((await rejection(pending)).reason, 'aborted');
  blackhole.close();

  await assert.rejects(dialChannel('127.0.0.1', 1, channelOptions(A, { psks: [Buffer.alloc(5)] })), /every PSK is 32 bytes/);
  await assert.rejects(dialChannel('127.0.0.1', 1, channelOptions(A, { meshId: 'not hex' })), /meshId/);
  await assert.rejects(dialChannel('127.0.0.1', 1, channelOptions({ ...A, name: 'bad name' })), /self identity/);
});

test('messages that arrive with the identity, before any listener, are held and delivered in order', async (t) => {
  const server = await recordingListener({ self: { ...B, port: 0 } });
  t.after(() => server.listener.close());
  const raw = watch(await connect(server.listener.port));
  t.after(() => raw.socket.destroy());
  raw.socket.write(Buffer.concat([
    helloFrame(), plainIdentityFrame(A), encodeFrame(FRAME.message, Buffer.from('m1')), encodeFrame(FRAME.message, Buffer.from('m2')),
  ]));
  await until('the inbound channel', () => server.channels.length === 1);
  const got = collect(server.channels[0]!);
  await until('both messages', () => got.length === 2);
  assert.deepEqual(got.map(String), ['m1', 'm2']);
});
