// Helpers for the wire tests: identities, a listener that records what happens, a raw client
// that speaks the plaintext protocol by hand, and a man in the middle that can edit frames.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { listenMesh, type ListenOptions, type MeshListener } from './listen.ts';
import type { Channel, ChannelOptions } from './channel.ts';
import { FRAME, FRAME_HEADER_BYTES, encodeFrame } from './frame.ts';
import { encodeHello, encodeIdentity, type PeerIdentity } from './hello.ts';

export const MESH_ID = 'ab'.repeat(32);

export function identity(name: string, port = 6783): PeerIdentity {
  return { name, uid: randomBytes(8).toString('hex'), nickname: `node-${name}`, port };
}

export function channelOptions(self: PeerIdentity, extra: Partial<ChannelOptions> = {}): ChannelOptions {
  return { self, meshId: MESH_ID, psks: null, ...extra };
}

/** Waits for a condition, with a generous deadline (no timing is asserted). */
export async function until(what: string, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Recorded {
  listener: MeshListener;
  channels: Channel[];
  refused: { address: string; why: Error & { reason?: string } }[];
}

export async function recordingListener(opts: Partial<ListenOptions> & { self: PeerIdentity }): Promise<Recorded> {
  const channels: Channel[] = [];
  const refused: Recorded['refused'] = [];
  const listener = await listenMesh('127.0.0.1', 0, {
    meshId: MESH_ID, psks: null, ...opts,
    onChannel: (ch) => channels.push(ch),
    onRefused: (address, why) => refused.push({ address, why }),
  });
  return { listener, channels, refused };
}

/** Splits a byte stream into frames (header + body), for clients and proxies written by hand. */
export class FrameSplitter {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= FRAME_HEADER_BYTES) {
      const total = FRAME_HEADER_BYTES + this.#buf.readUInt32BE(0);
      if (this.#buf.length < total) break;
      out.push(this.#buf.subarray(0, total));
      this.#buf = this.#buf.subarray(total);
    }
    return out;
  }
}

export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** A socket plus every frame it received and whether the other side closed. */
export interface RawPeer {
  socket: net.Socket;
  frames: Buffer[];
  ended: () => boolean;
}

export function watch(socket: net.Socket): RawPeer {
  const frames: Buffer[] = [];
  const split = new FrameSplitter();
  let ended = false;
  socket.on('data', (c: Buffer) => frames.push(...split.push(c)));
  socket.on('error', () => {});
  socket.on('close', () => {
    ended = true;
  });
  return { socket, frames, ended: () => ended };
}

export function helloFrame(o: { min?: number; max?: number; password?: boolean; port?: number; meshId?: string; description?: string } = {}): Buffer {
  return encodeFrame(FRAME.hello, encodeHello({
    min: o.min ?? 1, max: o.max ?? 1, password: o.password ?? false, port: o.port ?? 6783,
    meshId: o.meshId ?? MESH_ID, description: o.description ?? '',
  }));
}

/** A hand-written plaintext peer that completes the handshake with a real listener. */
export async function rawPlaintextPeer(port: number, id: PeerIdentity | Record<string, unknown> = identity('raw')): Promise<RawPeer> {
  const peer = watch(await connect(port));
  peer.socket.write(helloFrame());
  peer.socket.write(encodeFrame(FRAME.identity, Buffer.from(JSON.stringify(id))));
  return peer;
}

export function plainIdentityFrame(id: PeerIdentity): Buffer {
  return encodeFrame(FRAME.identity, encodeIdentity(id));
}

export type Direction = 'toServer' | 'toClient';

/**
 * A TCP proxy in front of `targetPort` that hands every frame to `edit`, which returns the
 * frames to forward instead (none = drop). It also records the raw client->server bytes.
 */
export async function frameProxy(targetPort: number, edit: (frame: Buffer, dir: Direction, index: number) => Buffer[] = (f) => [f]): Promise<{ port: number; recorded: Buffer[]; close(): Promise<void> }> {
  const recorded: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    const pipe = (from: net.Socket, to: net.Socket, dir: Direction): void => {
      const split = new FrameSplitter();
      let index = 0;
      from.on('data', (chunk: Buffer) => {
        if (dir === 'toServer') recorded.push(Buffer.from(chunk));
        for (const f of split.push(chunk)) for (const out of edit(f, dir, index++)) to.write(out);
      });
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream, 'toServer');
    pipe(upstream, client, 'toClient');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    recorded,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export function frameType(frame: Buffer): number {
  return frame[4]!;
}

export function refusalIn(frames: Buffer[]): { reason: string; message: string } | undefined {
  const f = frames.find((x) => frameType(x) === FRAME.refuse);
  return f ? (JSON.parse(f.subarray(FRAME_HEADER_BYTES).toString()) as { reason: string; message: string }) : undefined;
}

/** A promise's rejection, for assertions on its reason and text. */
export async function rejection(p: Promise<unknown>): Promise<Error & { reason?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { reason?: string };
  }
  throw new Error('expected a rejection');
}

export function closeWhy(ch: Channel): Promise<Error & { reason?: string } | undefined> {
  return new Promise((resolve) => ch.onClose((why) => resolve(why as (Error & { reason?: string }) | undefined)));
}
