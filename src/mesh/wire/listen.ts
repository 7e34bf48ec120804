// The mesh control port. Anyone who can reach it can open connections, so a handshake in
// progress is the unit of cost to bound: at most maxPending at once (and fewer from one source
// address), and accepts metered by a token bucket. Over either bound the socket is destroyed on
// the spot, before we send or allocate anything for it. Each pending handshake is itself
// bounded in time (handshakeTimeoutMs) and memory (4 KiB frames), so a flood costs at most
// maxPending small buffers, and once it stops the bucket refills and real peers get in again.
import net from 'node:net';
import { WeftError } from '../../errors.ts';
import { acceptResolved, formatAddress, resolveOptions, type Channel, type ChannelOptions } from './channel.ts';
import { MeshHandshakeError } from './errors.ts';

export interface ListenOptions extends ChannelOptions {
  /** Handshakes in progress at once (default 64). */
  maxPending?: number;
  /** Handshakes in progress from one source address (default 16). */
  maxPendingPerHost?: number;
  /** Token bucket: burst size (default 20) and one new token per refill interval (default 50 ms). */
  acceptBurst?: number;
  acceptRefillMs?: number;
  onChannel(ch: Channel): void;
  /** Each refused or failed inbound connection; `address` is "ip:port" as TCP sees it. Throttle logs per reason. */
  onRefused(address: string, why: Error): void;
  /** The listening socket itself failed (e.g. EMFILE on accept); default: reported through onRefused. */
  onError?(e: Error): void;
}

export interface MeshListener {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Handshakes in progress right now. */
  pending(): number;
  /** Stops accepting and ends handshakes in progress; established channels stay open (close them yourself). */
  close(): Promise<void>;
}

export const LISTEN_DEFAULTS = { maxPending: 64, maxPendingPerHost: 16, acceptBurst: 20, acceptRefillMs: 50 } as const;

export class TokenBucket {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(burst: number, refillMs: number, now: () => number = Date.now) {
    this.#burst = burst;
    this.#refillMs = refillMs;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, now - this.#last) / this.#refillMs);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new WeftError('WEFT_INVALID_CONFIG', `mesh listener: ${name} must be a positive integer, not ${value}`);
  return value;
}

/** A listener with accept bounds: at most maxPending handshakes at once, a token bucket for accepts. */
export async function listenMesh(host: string, port: number, opts: ListenOptions): Promise<MeshListener> {
  const base = resolveOptions(opts, true);
  const maxPending = count('maxPending', opts.maxPending, LISTEN_DEFAULTS.maxPending);
  const maxPerHost = count('maxPendingPerHost', opts.maxPendingPerHost, LISTEN_DEFAULTS.maxPendingPerHost);
  const bucket = new TokenBucket(
    count('acceptBurst', opts.acceptBurst, LISTEN_DEFAULTS.acceptBurst),
    count('acceptRefillMs', opts.acceptRefillMs, LISTEN_DEFAULTS.acceptRefillMs),
  );
  const pending = new Set<net.Socket>();
  const perHost = new Map<string, number>();
  let closed = false;
  const server = net.createServer({ noDelay: true });

  const release = (socket: net.Socket, ip: string): void => {
    if (!pending.delete(socket)) return;
    const n = (perHost.get(ip) ?? 1) - 1;
    if (n <= 0) perHost.delete(ip);
    else perHost.set(ip, n);
  };

  server.on('connection', (socket) => {
    const address = formatAddress(socket.remoteAddress, socket.remotePort);
    const ip = socket.remoteAddress ?? '';
    if (closed) {
      socket.destroy();
      return;
    }
    let refusal: string | undefined;
    if (pending.size >= maxPending) refusal = `too many mesh handshakes in progress (limit ${maxPending}); connection dropped`;
    else if ((perHost.get(ip) ?? 0) >= maxPerHost) refusal = `too many mesh handshakes in progress from this address (limit ${maxPerHost}); connection dropped`;
    else if (!bucket.take()) refusal = 'mesh accept rate limit reached; connection dropped';
    if (refusal) {
      socket.destroy();
      opts.onRefused(address, new MeshHandshakeError('busy', refusal));
      return;
    }
    pending.add(socket);
    perHost.set(ip, (perHost.get(ip) ?? 0) + 1);
    acceptResolved(socket, options).then(
      (ch) => {
        release(socket, ip);
        if (closed) ch.close('shutting down');
        else opts.onChannel(ch);
      },
      (e: Error) => {
        release(socket, ip);
        if (!closed) opts.onRefused(address, e);
      },
    );
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      reject(new WeftError('WEFT_IO', `cannot listen for mesh connections on ${host}:${port}: ${e.message}; is another agent running, or the port taken?`, { cause: e }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e) => {
    if (opts.onError) opts.onError(e);
    else opts.onRefused(`${host}:${port}`, e);
  });

  const bound = (server.address() as net.AddressInfo).port;
  // Port 0 (tests, ephemeral listeners): announce the port actually bound.
  const options = base.self.port === 0 ? { ...base, self: { ...base.self, port: bound } } : base;

  return {
    port: bound,
    pending: () => pending.size,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // 'close' fires only after every connection is gone, established ones included; those
      // belong to the caller, so we only stop the listening socket and wait a turn for it.
      server.close();
      for (const s of pending) s.destroy();
      pending.clear();
      perHost.clear();
      await new Promise((r) => setImmediate(r));
    },
  };
}
