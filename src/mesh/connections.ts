// The mesh's TCP connections: a partial view, not a full mesh. Each peer keeps about
// `activeTarget` connections (dialing targets from the peer list first, then peers learned by
// gossip), accepts up to `connLimit`, retries failed addresses with a growing, jittered backoff,
// and keeps one connection per pair (the one the lower name dialed). Gossip floods over these
// links, so every peer hears everything in a few hops while each one holds O(1) connections.
import type { Logger } from '../log/logger.ts';
import { LogThrottle } from '../log/throttle.ts';
import type { MeshConnectionStatus } from './status/types.ts';
import { dialChannel, listenMesh, type Channel, type ChannelOptions, type PeerIdentity } from './wire/index.ts';

export interface Target {
  host: string;
  port: number;
}

interface Attempt {
  address: string;
  state: 'connecting' | 'retrying' | 'failed';
  lastError?: string;
  nextTry: number;
  interval: number;
  /** A name collision or ourselves: never tried again. */
  never?: boolean;
}

export interface ConnectionsOptions {
  self: PeerIdentity;
  channel: Omit<ChannelOptions, 'self'>;
  listenHost: string;
  listenPort: number;
  targets: readonly Target[];
  connLimit: number;
  activeTarget: number;
  log: Logger;
  onChannel(ch: Channel): void;
  onClosed(ch: Channel, why: Error | undefined): void;
  /** A peer using our name with another uid. */
  onCollision(remote: PeerIdentity, address: string): void;
  now?: () => number;
}

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

export function formatTarget(t: Target): string {
  return `${t.host}:${t.port}`;
}

export class Connections {
  readonly #o: ConnectionsOptions;
  readonly #now: () => number;
  readonly #byName = new Map<string, Channel>();
  readonly #attempts = new Map<string, Attempt>();
  readonly #throttle: LogThrottle;
  #listener: { port: number; close(): Promise<void> } | undefined;
  #stopped = false;
  readonly #aborts = new Set<AbortController>();

  constructor(o: ConnectionsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#throttle = new LogThrottle(o.log, 60_000);
  }

  async start(): Promise<number> {
    this.#listener = await listenMesh(this.#o.listenHost, this.#o.listenPort, {
      ...this.#o.channel, self: this.#o.self,
      onChannel: (ch) => {
        try {
          this.#adopt(ch);
        } catch (e) {
          this.#o.log.error({ peer: ch.remoteAddress, err: (e as Error).message }, 'adopting an inbound mesh connection failed');
          ch.close('internal error');
        }
      },
      onRefused: (address, why) => this.#throttle.warn(`refused ${address.split(':')[0]} ${why.message}`, { peer: address }, `mesh connection from ${address} refused: ${why.message}`),
    });
    return this.#listener.port;
  }

  established(): Channel[] {
    return [...this.#byName.values()];
  }

  channelTo(name: string): Channel | undefined {
    return this.#byName.get(name);
  }

  /** Dials more peers while below the target: the peer list first, then known peers (random order). */
  tick(known: readonly string[]): void {
    if (this.#stopped) return;
    const connected = this.#connectedAddresses();
    const want = this.#o.activeTarget - this.#byName.size - this.#connecting();
    if (want <= 0) return;
    const fromList = this.#o.targets.map(formatTarget);
    const others = shuffle(known.filter((a) => !fromList.includes(a)));
    let started = 0;
    for (const address of [...fromList, ...others]) {
      if (started >= want) break;
      if (connected.has(address) || !this.#due(address)) continue;
      this.dial(address);
      started++;
    }
  }

  /** Dials an address now unless it is connected, being dialed or backing off (healing a partition, a space request). */
  dial(address: string): void {
    if (this.#stopped || this.#connectedAddresses().has(address) || !this.#due(address)) return;
    if (this.#byName.size >= this.#o.connLimit) return;
    const [host, port] = splitAddress(address);
    const attempt = this.#attempts.get(address) ?? { address, state: 'connecting', nextTry: 0, interval: FIRST_RETRY_MS };
    attempt.state = 'connecting';
    this.#attempts.set(address, attempt);
    const abort = new AbortController();
    this.#aborts.add(abort);
    dialChannel(host, port, { ...this.#o.channel, self: this.#o.self, signal: abort.signal })
      .then((ch) => {
        if (this.#stopped) return ch.close('stopping');
        if (ch.remote.name === this.#o.self.name) {
          attempt.never = true;
          this.#fail(attempt, `local "${this.#o.self.name}" and remote "${ch.remote.name}(${ch.remote.nickname})" peer names collision`);
          this.#o.onCollision(ch.remote, address);
          return ch.close('peer name collision');
        }
        this.#attempts.delete(address);
        this.#adopt(ch);
      }, (e: Error & { reason?: string }) => {
        if (e.reason === 'self') attempt.never = true;
        this.#fail(attempt, e.message);
      })
      .catch((e: Error) => this.#o.log.error({ peer: address, err: e.message }, `adopting the mesh connection to ${address} failed`))
      .finally(() => this.#aborts.delete(abort));
  }

  #fail(a: Attempt, message: string): void {
    a.state = a.never ? 'failed' : 'retrying';
    a.lastError = message;
    const jitter = 0.5 + Math.random();
    a.nextTry = a.never ? Infinity : this.#now() + a.interval * jitter;
    a.interval = Math.min(MAX_RETRY_MS, a.interval * 1.5);
    this.#throttle.info(`dial ${a.address} ${message}`, { peer: a.address }, `mesh connection to ${a.address} failed: ${message}`);
  }

  #adopt(ch: Channel): void {
    const name = ch.remote.name;
    if (name === this.#o.self.name) {
      this.#o.onCollision(ch.remote, ch.remoteAddress);
      ch.close('peer name collision');
      return;
    }
    const existing = this.#byName.get(name);
    if (existing) {
      // Both ends keep the connection the lower name dialed, so a simultaneous dial settles the same way on both.
      const keepOutbound = this.#o.self.name < name;
      const keep = existing.outbound === keepOutbound ? existing : ch;
      const drop = keep === existing ? ch : existing;
      if (drop === existing) this.#byName.set(name, ch);
      drop.close('duplicate connection');
      if (keep !== ch) return;
    } else if (!ch.outbound && this.#byName.size >= this.#o.connLimit) {
      ch.close(`connection limit reached (${this.#o.connLimit})`);
      return;
    }
    this.#byName.set(name, ch);
    ch.onClose((why) => {
      if (this.#byName.get(name) === ch) this.#byName.delete(name);
      if (!this.#stopped) this.#o.onClosed(ch, why);
    });
    this.#o.onChannel(ch);
  }

  #due(address: string): boolean {
    const a = this.#attempts.get(address);
    return !a || (a.state !== 'connecting' && !a.never && a.nextTry <= this.#now());
  }

  #connecting(): number {
    let n = 0;
    for (const a of this.#attempts.values()) if (a.state === 'connecting') n++;
    return n;
  }

  /** The control addresses we are connected to: outbound as dialed, inbound as the peer's listen port. */
  #connectedAddresses(): Set<string> {
    const s = new Set<string>();
    for (const ch of this.#byName.values()) s.add(controlAddress(ch));
    return s;
  }

  /** The weave-style connection list: live connections, then targets that are connecting or failing. */
  status(): MeshConnectionStatus[] {
    const out: MeshConnectionStatus[] = [];
    for (const ch of this.#byName.values()) {
      out.push({
        direction: ch.outbound ? 'outbound' : 'inbound', address: ch.remoteAddress, state: 'established',
        peer: { name: ch.remote.name, nickname: ch.remote.nickname }, encrypted: ch.encrypted,
      });
    }
    const connected = this.#connectedAddresses();
    for (const a of this.#attempts.values()) {
      if (connected.has(a.address)) continue;
      out.push({
        direction: 'outbound', address: a.address, state: a.state,
        ...(a.lastError ? { info: a.lastError } : {}),
        ...(a.state === 'failed' ? { retry: null } : a.state === 'retrying' ? { retry: new Date(a.nextTry).toISOString() } : {}),
      });
    }
    return out;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const a of this.#aborts) a.abort();
    for (const ch of this.#byName.values()) ch.close('stopping');
    this.#byName.clear();
    await this.#listener?.close();
  }
}

/** The address a channel's peer listens on. */
export function controlAddress(ch: Channel): string {
  if (ch.outbound) return ch.remoteAddress;
  return `${ch.remoteAddress.split(':')[0]}:${ch.remote.port}`;
}

export function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
