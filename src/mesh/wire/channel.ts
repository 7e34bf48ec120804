// One mesh TCP connection, from the first byte to close: hello, optional Noise handshake,
// identity exchange, then messages with keepalive and idle detection.
//
// Sequence (each side sends its hello at once, and checks the other's before going on):
//   both        hello                      cleartext; version, mesh id, password flag, port
//   initiator   noise: e                   only with a password
//   responder   noise: e, one tag per PSK  (rotation, below)
//   initiator   identity                   sealed; the first transport frame
//   responder   identity                   sealed; sent only once the initiator's one opened
// Without a password, both send their identity right after the hellos (in plaintext).
//
// Rotation: the responder does not know which of its PSKs the initiator holds, and in NNpsk2
// the responder is the one who mixes the PSK in. So it runs one NNpsk2 state per PSK from the
// same ephemeral key and sends e followed by each state's 16-byte tag; the initiator accepts the
// message when any one tag verifies under its own PSK (psks[0]), and the responder keeps the
// state whose keys open the initiator's first frame. Each branch is plain NNpsk2; an active
// attacker gains one offline verifier per configured PSK, as it would with that many connections.
//
// Refusals: for a mismatch each side can see in the other's hello (version, mesh, password on
// one side only) both sides find it themselves and report it in their own words; a refuse frame
// still goes out first, so a peer that could not tell (wrong password, garbage, timeout) logs
// the same cause instead of "connection closed".
//
// Bounds: 4 KiB frames until established, maxFrameBytes after; one deadline for the whole
// handshake (data arriving does not extend it); after it, a frame must arrive every
// idleTimeoutMs. Writes go straight to the socket; when its unsent backlog would pass
// maxQueuedBytes the peer is not reading and the channel closes ("peer too slow"), so a stuck
// peer costs at most that much memory. A frame into an empty backlog is always taken.
import net from 'node:net';
import { WeftError } from '../../errors.ts';
import { MeshHandshakeError, type MeshErrorReason } from './errors.ts';
import { FRAME, FrameDecoder, frameHeader, frameTypeName, encodeFrame, PRE_AUTH_MAX_FRAME_BYTES, FRAME_HEADER_BYTES, type FrameType } from './frame.ts';
import {
  agree, agreeVersion, decodeHello, decodeIdentity, decodeRefuse, encodeHello, encodeIdentity, encodeRefuse, helloVersions,
  identityProblem, printable, type PeerIdentity,
} from './hello.ts';
import { generateKeyPair, NnPsk2Handshake, NoiseError, DH_LEN, PSK_LEN, TAG_LEN, type TransportKeys } from './noise.ts';

export const MESH_PROTOCOL = { min: 1, max: 1 } as const;

export interface ChannelOptions {
  self: PeerIdentity;
  /** hex string, e.g. sha256 of universe+blockPrefix; must match on both sides ("mesh mismatch"). */
  meshId: string;
  /** Shown in mesh-mismatch messages on both sides, e.g. "IPALLOC_RANGE 10.32.0.0/12, /26 blocks" (printable, ≤ 200 chars). */
  meshDescription?: string;
  /** null = plaintext; else PSKs (32 bytes each), [0] is used to initiate, all are tried when responding. */
  psks: readonly Buffer[] | null;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  keepaliveMs?: number;
  maxFrameBytes?: number;
  maxQueuedBytes?: number;
  /** The protocol versions we offer; default MESH_PROTOCOL. For tests and staged upgrades only. */
  protocol?: { min: number; max: number };
}

export interface ChannelStats {
  bytesIn: number;
  bytesOut: number;
  framesIn: number;
  framesOut: number;
}

export interface Channel {
  readonly remote: PeerIdentity;
  readonly outbound: boolean;
  readonly encrypted: boolean;
  /** "ip:port" of the other end, as TCP sees it. */
  readonly remoteAddress: string;
  /** The protocol version both ends agreed on. */
  readonly protocol: number;
  /** The Noise handshake hash (equal on both ends), or null without encryption. */
  readonly handshakeHash: Buffer | null;
  /** The largest message send() takes. */
  readonly maxMessageBytes: number;
  /** Queue one message (any bytes, ≤ maxMessageBytes). false = dropped because the channel is closed/over its queue bound. */
  send(message: Uint8Array): boolean;
  /** Attach at once when you get the channel: messages that arrive before the first listener are held (bounded), later ones with no listener are lost. */
  onMessage(listener: (message: Buffer) => void): void;
  /** Called once, with why (undefined for a local close()). */
  onClose(listener: (why: Error | undefined) => void): void;
  close(reason?: string): void;
  stats(): ChannelStats;
}

export const CHANNEL_DEFAULTS = {
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 6_000,
  keepaliveMs: 2_000,
  maxFrameBytes: 1024 * 1024,
  maxQueuedBytes: 1024 * 1024,
} as const;

/** More PSKs than a two-step rotation needs only hands an attacker more verifiers per handshake. */
export const MAX_PSKS = 8;
const MAX_FRAME_LIMIT = 64 * 1024 * 1024;
/** After we end our side, how long the peer gets to read our last frame and close. */
const CLOSE_GRACE_MS = 1000;

export interface ResolvedOptions {
  self: PeerIdentity;
  meshId: string;
  meshDescription: string;
  psks: readonly Buffer[] | null;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  keepaliveMs: number;
  maxFrameBytes: number;
  maxQueuedBytes: number;
  protocol: { min: number; max: number };
}

function invalid(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `mesh channel options: ${message}`);
}

function positive(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0 || value > max) throw invalid(`${name} must be a positive number up to ${max}, not ${value}`);
  return value;
}

/** Checks our own options once; `portZero` lets a listener announce its port after binding. */
export function resolveOptions(o: ChannelOptions, portZero = false): ResolvedOptions {
  const problem = identityProblem(portZero && o.self.port === 0 ? { ...o.self, port: 1 } : o.self);
  if (problem) throw invalid(`self identity: ${problem}`);
  if (!/^[0-9a-f]{1,128}$/i.test(o.meshId)) throw invalid(`meshId must be 1-128 hex digits, not ${JSON.stringify(printable(o.meshId, 40))}`);
  const meshDescription = o.meshDescription ?? '';
  if (!/^[\x20-\x7e]{0,200}$/.test(meshDescription)) throw invalid('meshDescription must be at most 200 printable ASCII characters');
  if (o.psks !== null) {
    if (o.psks.length === 0 || o.psks.length > MAX_PSKS) throw invalid(`give 1-${MAX_PSKS} PSKs, or null for no encryption`);
    if (o.psks.some((k) => k.length !== PSK_LEN)) throw invalid(`every PSK is ${PSK_LEN} bytes (derivePsk makes one from a password)`);
  }
  const protocol = o.protocol ?? MESH_PROTOCOL;
  if (!Number.isInteger(protocol.min) || !Number.isInteger(protocol.max) || protocol.min < 1 || protocol.min > protocol.max || protocol.max > 0xffff) {
    throw invalid(`protocol range [${protocol.min},${protocol.max}] is not 1 <= min <= max <= 65535`);
  }
  const maxFrameBytes = positive('maxFrameBytes', o.maxFrameBytes, CHANNEL_DEFAULTS.maxFrameBytes, MAX_FRAME_LIMIT);
  if (maxFrameBytes < PRE_AUTH_MAX_FRAME_BYTES) throw invalid(`maxFrameBytes must be at least ${PRE_AUTH_MAX_FRAME_BYTES}`);
  return {
    self: { ...o.self },
    meshId: o.meshId.toLowerCase(),
    meshDescription,
    psks: o.psks === null ? null : o.psks.map((k) => Buffer.from(k)),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', o.handshakeTimeoutMs, CHANNEL_DEFAULTS.handshakeTimeoutMs),
    idleTimeoutMs: positive('idleTimeoutMs', o.idleTimeoutMs, CHANNEL_DEFAULTS.idleTimeoutMs),
    keepaliveMs: positive('keepaliveMs', o.keepaliveMs, CHANNEL_DEFAULTS.keepaliveMs),
    maxFrameBytes,
    maxQueuedBytes: positive('maxQueuedBytes', o.maxQueuedBytes, CHANNEL_DEFAULTS.maxQueuedBytes),
    protocol: { min: protocol.min, max: protocol.max },
  };
}

/** "ip:port", with IPv4-mapped IPv6 addresses shown as plain IPv4. */
export function formatAddress(host: string | undefined, port: number | undefined): string {
  const h = host?.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
  return `${h ?? 'unknown'}:${port ?? 0}`;
}

type Phase = 'hello' | 'noise' | 'identity' | 'open' | 'closing' | 'closed';

const EXPECTED: Record<Phase, readonly number[]> = {
  hello: [FRAME.hello, FRAME.refuse],
  noise: [FRAME.noise, FRAME.refuse],
  identity: [FRAME.identity, FRAME.refuse],
  open: [FRAME.message, FRAME.keepalive, FRAME.bye],
  closing: [],
  closed: [],
};

/** Failures the peer gets no refuse/bye for: it closed, we could not reach it, or it is not reading anyway. */
const SILENT: readonly MeshErrorReason[] = ['closed', 'connect', 'aborted', 'slow'];

const WRONG_PASSWORD_FOR_PEER = 'the key exchange failed: the two peers have different passwords; set the same password on every peer';

interface Role {
  outbound: boolean;
  /** How messages name the peer: the dialed address, or the TCP source (its listen port once known). */
  peer: string;
}

export class MeshConnection implements Channel {
  readonly outbound: boolean;
  readonly encrypted: boolean;
  readonly maxMessageBytes: number;
  readonly ready: Promise<Channel>;
  protocol = 0;
  handshakeHash: Buffer | null = null;

  readonly #o: ResolvedOptions;
  readonly #socket: net.Socket;
  readonly #decoder: FrameDecoder;
  readonly #ourHello: Buffer;
  #phase: Phase = 'hello';
  #limit = PRE_AUTH_MAX_FRAME_BYTES;
  #peer: string;
  #remoteAddress: string;
  #remote: PeerIdentity | null = null;
  #initiator: NnPsk2Handshake | null = null;
  #responders: NnPsk2Handshake[] = [];
  #candidates: TransportKeys[] = [];
  #keys: TransportKeys | null = null;
  #settled = false;
  #connected: boolean;
  #resolve!: (ch: Channel) => void;
  #reject!: (e: Error) => void;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  readonly #messageListeners: ((m: Buffer) => void)[] = [];
  readonly #closeListeners: ((why: Error | undefined) => void)[] = [];
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #closeEmitted = false;
  #closeWhy: Error | undefined;
  readonly #stats: ChannelStats = { bytesIn: 0, bytesOut: 0, framesIn: 0, framesOut: 0 };

  constructor(socket: net.Socket, o: ResolvedOptions, role: Role) {
    this.#o = o;
    this.#socket = socket;
    this.outbound = role.outbound;
    this.encrypted = o.psks !== null;
    this.maxMessageBytes = o.maxFrameBytes - (this.encrypted ? TAG_LEN : 0);
    this.#peer = role.peer;
    this.#remoteAddress = role.outbound ? role.peer : formatAddress(socket.remoteAddress, socket.remotePort);
    this.ready = new Promise<Channel>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#decoder = new FrameDecoder({
      checkHeader: (type, length) => this.#checkHeader(type, length),
      onFrame: (type, body, header) => this.#onFrame(type, body, header),
    });
    socket.setNoDelay(true);
    this.#connected = !socket.connecting;
    socket.on('connect', () => {
      this.#connected = true;
      this.#remoteAddress = formatAddress(socket.remoteAddress, socket.remotePort);
    });
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (e) => this.#onError(e));
    socket.on('close', () => this.#onSocketClose());
    this.#handshakeTimer = setTimeout(() => this.#onHandshakeTimeout(), o.handshakeTimeoutMs);
    this.#ourHello = encodeFrame(FRAME.hello, encodeHello({
      min: o.protocol.min, max: o.protocol.max, password: this.encrypted, port: o.self.port,
      meshId: o.meshId, description: o.meshDescription,
    }));
    if (socket.destroyed) {
      queueMicrotask(() => this.#onSocketClose());
      return;
    }
    this.#writeRaw(this.#ourHello);
  }

  get remote(): PeerIdentity {
    if (!this.#remote) throw new WeftError('WEFT_INTERNAL', 'the mesh channel is not established yet');
    return this.#remote;
  }

  get remoteAddress(): string {
    return this.#remoteAddress;
  }

  /** Where the connection is, for tests and status. */
  get phase(): Phase {
    return this.#phase;
  }

  send(message: Uint8Array): boolean {
    if (this.#phase !== 'open') return false;
    if (message.length > this.maxMessageBytes) {
      throw new WeftError('WEFT_INTERNAL', `a mesh message of ${message.length} bytes is over the ${this.maxMessageBytes}-byte limit of one frame; split it`);
    }
    return this.#sendSealed(FRAME.message, message);
  }

  onMessage(listener: (message: Buffer) => void): void {
    this.#messageListeners.push(listener);
    if (this.#early.length === 0) return;
    const held = this.#early;
    this.#early = [];
    this.#earlyBytes = 0;
    queueMicrotask(() => {
      for (const m of held) for (const l of this.#messageListeners) l(m);
    });
  }

  onClose(listener: (why: Error | undefined) => void): void {
    if (this.#closeEmitted) {
      const why = this.#closeWhy;
      queueMicrotask(() => listener(why));
      return;
    }
    this.#closeListeners.push(listener);
  }

  close(reason?: string): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    const text = printable(reason ?? 'closed', 200);
    if (this.#phase === 'open') this.#sendSealed(FRAME.bye, Buffer.from(text), true);
    else this.#writeRaw(encodeFrame(FRAME.refuse, encodeRefuse('closed', text)));
    this.#shutdown(undefined, new MeshHandshakeError('closed', `the connection to ${this.#peer} was closed locally (${text})`), false);
  }

  /** Ends a dial or handshake in progress (the dial's signal). */
  abort(): void {
    this.#fail(new MeshHandshakeError('aborted', `the connection to ${this.#peer} was aborted`));
  }

  stats(): ChannelStats {
    return { ...this.#stats };
  }

  /** A method, not an inline test: TypeScript would keep the phase narrowed across calls that change it. */
  #alive(): boolean {
    return this.#phase !== 'closing' && this.#phase !== 'closed';
  }

  // --- receiving ---------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.#stats.bytesIn += chunk.length;
    if (this.#phase === 'closing' || this.#phase === 'closed') return; // read and dropped, so the peer's FIN still reaches us
    try {
      this.#decoder.push(chunk);
    } catch (e) {
      if (e instanceof MeshHandshakeError) this.#fail(e);
      else throw e; // a listener's own bug: not the peer's fault
    }
  }

  #checkHeader(type: number, length: number): void {
    if (!EXPECTED[this.#phase].includes(type)) {
      if (this.#phase === 'hello') {
        throw new MeshHandshakeError('garbage', `${this.#peer} is not a weft mesh peer (its first bytes are not a hello); check that the address is a weft agent's control port`);
      }
      throw new MeshHandshakeError('garbage', `peer ${this.#peer} sent an unexpected ${frameTypeName(type)} frame during ${this.#phase === 'open' ? 'the session' : `the ${this.#phase} step`}`);
    }
    if (length > this.#limit) {
      const when = this.#phase === 'open' ? '' : ' before authentication';
      throw new MeshHandshakeError('oversized', `peer ${this.#peer} announced a frame of ${length} bytes, over the ${this.#limit}-byte limit${when}`);
    }
  }

  #onFrame(type: number, body: Buffer, header: Buffer): boolean {
    this.#stats.framesIn++;
    if (type === FRAME.refuse) {
      this.#fail(decodeRefuse(body, this.#peer), false);
      return false;
    }
    switch (this.#phase) {
      case 'hello': this.#onHello(body, header); break;
      case 'noise': if (this.outbound) this.#onResponderNoise(body); else this.#onInitiatorNoise(body); break;
      case 'identity': this.#onIdentity(body, header); break;
      case 'open': this.#onSessionFrame(type, body, header); break;
      default: return false;
    }
    return this.#alive();
  }

  #ours() {
    return { min: this.#o.protocol.min, max: this.#o.protocol.max, password: this.encrypted, meshId: this.#o.meshId, description: this.#o.meshDescription };
  }

  #onHello(body: Buffer, header: Buffer): void {
    agreeVersion(this.#ours(), helloVersions(body, this.#peer), this.#peer);
    const hello = decodeHello(body, this.#peer);
    if (!this.outbound && hello.port > 0) this.#peer = formatAddress(this.#socket.remoteAddress, hello.port);
    this.protocol = agree(this.#ours(), hello, this.#peer);
    const theirs = Buffer.concat([header, body]);
    if (!this.encrypted) {
      this.#phase = 'identity';
      this.#sendSealed(FRAME.identity, encodeIdentity(this.#o.self));
      return;
    }
    // Both hellos, initiator's first, bind the handshake to what each side announced.
    const prologue = this.outbound ? Buffer.concat([this.#ourHello, theirs]) : Buffer.concat([theirs, this.#ourHello]);
    const psks = this.#o.psks!;
    this.#phase = 'noise';
    if (this.outbound) {
      this.#initiator = NnPsk2Handshake.initiator(prologue, psks[0]!);
      this.#writeRaw(encodeFrame(FRAME.noise, this.#initiator.writeMessage()));
    } else {
      const e = generateKeyPair();
      this.#responders = psks.map((psk) => NnPsk2Handshake.responder(prologue, psk, e));
    }
  }

  /** Responder: the initiator's e. */
  #onInitiatorNoise(body: Buffer): void {
    if (body.length !== DH_LEN + TAG_LEN) throw new MeshHandshakeError('garbage', `peer ${this.#peer} sent a malformed key exchange message (${body.length} bytes)`);
    const tags: Buffer[] = [];
    let e: Buffer | undefined;
    for (const r of this.#responders) {
      try {
        r.readMessage(body);
      } catch {
        // Its tag covers both hellos: a failure means one was changed on the way.
        throw new MeshHandshakeError('auth', `the key exchange with ${this.#peer} does not match the hellos (changed in transit?)`);
      }
      const m2 = r.writeMessage();
      e = m2.subarray(0, DH_LEN);
      tags.push(m2.subarray(DH_LEN));
    }
    this.#candidates = this.#responders.map((r) => r.split());
    this.#responders = [];
    this.#phase = 'identity';
    this.#writeRaw(encodeFrame(FRAME.noise, Buffer.concat([e!, ...tags])));
  }

  /** Initiator: the responder's e and one tag per PSK it holds; ours must verify one. */
  #onResponderNoise(body: Buffer): void {
    const slots = (body.length - DH_LEN) / TAG_LEN;
    if (!Number.isInteger(slots) || slots < 1 || slots > MAX_PSKS) {
      throw new MeshHandshakeError('garbage', `peer ${this.#peer} sent a malformed key exchange message (${body.length} bytes)`);
    }
    const e = body.subarray(0, DH_LEN);
    for (let i = 0; i < slots; i++) {
      const attempt = this.#initiator!.clone();
      try {
        attempt.readMessage(Buffer.concat([e, body.subarray(DH_LEN + i * TAG_LEN, DH_LEN + (i + 1) * TAG_LEN)]));
      } catch (err) {
        if (err instanceof NoiseError && err.kind === 'dh') throw new MeshHandshakeError('auth', `peer ${this.#peer} sent an unusable key exchange`);
        continue;
      }
      this.#keys = attempt.split();
      this.handshakeHash = this.#keys.handshakeHash;
      this.#initiator = null;
      this.#phase = 'identity';
      this.#sendSealed(FRAME.identity, encodeIdentity(this.#o.self));
      return;
    }
    throw new MeshHandshakeError('auth', `peer ${this.#peer} uses a different password (the key exchange failed); set the same password on every peer`, { peerText: WRONG_PASSWORD_FOR_PEER });
  }

  #onIdentity(body: Buffer, header: Buffer): void {
    let plain: Buffer | null;
    if (!this.encrypted) {
      plain = body;
    } else if (this.#keys) {
      plain = this.#keys.receive.open(header, body);
      if (!plain) throw new MeshHandshakeError('auth', `the identity frame from ${this.#peer} failed authentication`);
    } else {
      plain = null;
      for (const c of this.#candidates) {
        plain = c.receive.open(header, body);
        if (plain) {
          this.#keys = c;
          break;
        }
      }
      this.#candidates = [];
      if (!plain || !this.#keys) {
        throw new MeshHandshakeError('auth', `peer ${this.#peer} uses a different password (its first encrypted frame failed authentication); set the same password on every peer`, { peerText: WRONG_PASSWORD_FOR_PEER });
      }
      this.handshakeHash = this.#keys.handshakeHash;
    }
    const remote = decodeIdentity(plain, this.#peer);
    if (remote.name === this.#o.self.name && remote.uid === this.#o.self.uid) {
      throw new MeshHandshakeError('self', `cannot connect to ourself: ${this.#peer} is this node (${remote.name}); remove our own address from the peer list`);
    }
    this.#remote = remote;
    if (this.encrypted && !this.outbound) this.#sendSealed(FRAME.identity, encodeIdentity(this.#o.self));
    this.#establish();
  }

  #establish(): void {
    this.#phase = 'open';
    this.#limit = this.#o.maxFrameBytes;
    clearTimeout(this.#handshakeTimer);
    this.#idleTimer = setTimeout(() => this.#onIdle(), this.#o.idleTimeoutMs).unref();
    this.#keepaliveTimer = setTimeout(() => this.#onKeepalive(), this.#o.keepaliveMs).unref();
    this.#settled = true;
    this.#resolve(this);
  }

  #onSessionFrame(type: number, body: Buffer, header: Buffer): void {
    this.#idleTimer?.refresh();
    let plain: Buffer | null = body;
    if (this.#keys) {
      plain = this.#keys.receive.open(header, body);
      if (!plain) throw new MeshHandshakeError('auth', `a frame from peer ${this.#peer} failed authentication (modified, replayed, reordered or dropped); closing`);
    }
    if (type === FRAME.message) {
      this.#deliver(this.#keys ? plain : Buffer.from(plain)); // plaintext: copy, so a kept message does not pin the socket's chunk
    } else if (type === FRAME.keepalive) {
      if (plain.length !== 0) throw new MeshHandshakeError('garbage', `peer ${this.#peer} sent a keepalive with ${plain.length} bytes in it`);
    } else if (type === FRAME.bye) {
      const why = plain.length ? printable(plain.toString('utf8'), 200) : 'no reason given';
      this.#fail(new MeshHandshakeError('closed', `peer ${this.#peer} closed the connection: ${why}`), false);
    }
  }

  #deliver(message: Buffer): void {
    if (this.#messageListeners.length > 0) {
      for (const l of this.#messageListeners) l(message);
      return;
    }
    if (this.#earlyBytes + message.length > this.#o.maxQueuedBytes) return;
    this.#early.push(message);
    this.#earlyBytes += message.length;
  }

  // --- sending -----------------------------------------------------------------------------

  /** Seals when encrypted (the header is the AD); the plaintext otherwise. */
  #sendSealed(type: FrameType, plain: Uint8Array, closing = false): boolean {
    const header = frameHeader(type, plain.length + (this.#keys ? TAG_LEN : 0));
    const body = this.#keys ? this.#keys.send.seal(header, plain) : plain;
    return this.#write(Buffer.concat([header, body]), closing);
  }

  #write(frame: Buffer, closing = false): boolean {
    const queued = this.#socket.writableLength;
    if (!closing && queued > 0 && queued + frame.length > this.#o.maxQueuedBytes) {
      this.#fail(new MeshHandshakeError('slow', `peer ${this.#peer} too slow: over ${this.#o.maxQueuedBytes} bytes waiting to be sent to it; closing`));
      return false;
    }
    this.#writeRaw(frame);
    if (this.#phase === 'open') this.#keepaliveTimer?.refresh();
    return true;
  }

  #writeRaw(frame: Buffer): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    this.#socket.write(frame);
    this.#stats.bytesOut += frame.length;
    this.#stats.framesOut++;
  }

  // --- timers and socket events ------------------------------------------------------------

  #onHandshakeTimeout(): void {
    if (this.#settled) return;
    if (!this.#connected) {
      this.#fail(new MeshHandshakeError('connect', `cannot connect to ${this.#peer}: no answer within ${this.#o.handshakeTimeoutMs} ms`));
    } else {
      this.#fail(new MeshHandshakeError('timeout', `no complete handshake with ${this.#peer} within ${this.#o.handshakeTimeoutMs} ms (stuck in the ${this.#phase} step)`));
    }
  }

  #onIdle(): void {
    if (this.#phase !== 'open') return;
    this.#fail(new MeshHandshakeError('timeout', `nothing heard from peer ${this.#peer} for ${this.#o.idleTimeoutMs} ms; closing`));
  }

  #onKeepalive(): void {
    if (this.#phase !== 'open') return;
    this.#sendSealed(FRAME.keepalive, Buffer.alloc(0));
  }

  #onEnd(): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    const during = this.#phase === 'open' ? '' : ' during the handshake';
    if (this.#decoder.partial > 0) {
      this.#fail(new MeshHandshakeError('garbage', `peer ${this.#peer} closed the connection in the middle of a frame (${this.#decoder.partial} of ${this.#decoder.expected} bytes)${during}`), false);
    } else {
      this.#fail(new MeshHandshakeError('closed', `peer ${this.#peer} closed the connection${during}`), false);
    }
  }

  #onError(e: Error & { code?: string }): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    const detail = e.code ?? e.message;
    if (!this.#connected) {
      this.#fail(new MeshHandshakeError('connect', `cannot connect to ${this.#peer}: ${detail}`, { cause: e }));
    } else {
      this.#fail(new MeshHandshakeError('closed', `the connection to peer ${this.#peer} failed: ${detail}`, { cause: e }));
    }
    this.#socket.destroy();
  }

  #onSocketClose(): void {
    const wasOpen = this.#phase === 'open';
    this.#phase = 'closed';
    this.#clearTimers();
    const why = new MeshHandshakeError('closed', `the connection to ${this.#peer} closed`);
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(why);
    }
    if (wasOpen) this.#emitClose(why);
  }

  // --- closing -----------------------------------------------------------------------------

  /** Tells the peer why when that can help it (a refuse before establishment, a bye after), then closes. */
  #fail(err: MeshHandshakeError, notify = true): void {
    if (this.#phase === 'closing' || this.#phase === 'closed') return;
    if (notify && !SILENT.includes(err.reason) && !this.#socket.connecting) {
      if (this.#phase === 'open') this.#sendSealed(FRAME.bye, Buffer.from(printable(err.peerText, 300)), true);
      else this.#writeRaw(encodeFrame(FRAME.refuse, encodeRefuse(err.reason, err.peerText)));
    }
    this.#shutdown(err, err, SILENT.includes(err.reason) && err.reason !== 'closed');
  }

  #shutdown(emitWhy: Error | undefined, rejectWhy: Error, destroyNow: boolean): void {
    const wasOpen = this.#phase === 'open';
    this.#phase = 'closing';
    this.#decoder.stop();
    this.#clearTimers();
    this.#responders = [];
    this.#candidates = [];
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(rejectWhy);
    }
    if (wasOpen) this.#emitClose(emitWhy);
    if (destroyNow || this.#socket.connecting) {
      this.#socket.destroy();
      return;
    }
    // A graceful end lets our last frame arrive; we keep reading (and dropping) until the
    // peer's FIN, so unread input does not turn our close into a reset that loses that frame.
    this.#socket.end();
    this.#graceTimer = setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  #emitClose(why: Error | undefined): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.#closeWhy = why;
    this.#early = [];
    const listeners = this.#closeListeners.splice(0);
    queueMicrotask(() => {
      for (const l of listeners) l(why);
    });
  }

  #clearTimers(): void {
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#keepaliveTimer);
    if (this.#phase === 'closed') clearTimeout(this.#graceTimer);
  }
}

export function dialChannel(host: string, port: number, opts: ChannelOptions & { signal?: AbortSignal }): Promise<Channel> {
  let o: ResolvedOptions;
  try {
    o = resolveOptions(opts);
  } catch (e) {
    return Promise.reject(e);
  }
  const peer = formatAddress(host, port);
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(new MeshHandshakeError('aborted', `the connection to ${peer} was aborted`));
  const socket = net.connect({ host, port, noDelay: true });
  const conn = new MeshConnection(socket, o, { outbound: true, peer });
  if (!signal) return conn.ready;
  const onAbort = (): void => conn.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  return conn.ready.finally(() => signal.removeEventListener('abort', onAbort));
}

export function acceptChannel(socket: net.Socket, opts: ChannelOptions): Promise<Channel> {
  let o: ResolvedOptions;
  try {
    o = resolveOptions(opts);
  } catch (e) {
    socket.destroy();
    return Promise.reject(e);
  }
  return acceptResolved(socket, o);
}

/** For the listener, which has checked its options once already. */
export function acceptResolved(socket: net.Socket, o: ResolvedOptions): Promise<Channel> {
  return new MeshConnection(socket, o, { outbound: false, peer: formatAddress(socket.remoteAddress, socket.remotePort) }).ready;
}

/** The frame overhead a message carries on the wire, for callers sizing their messages. */
export function frameOverhead(encrypted: boolean): number {
  return FRAME_HEADER_BYTES + (encrypted ? TAG_LEN : 0);
}
