// One netlink socket, used synchronously: every method sends, then blocks in nlRecv() until
// the kernel has answered every message it sent (rtnetlink answers within the send() call, so
// this is microseconds). Synchronous on purpose: no interleaving of callers on one socket, no
// per-request promises; an async caller can simply call these from an async function.
//
// Replies are matched by sequence number, and anything with a sequence number we are not
// waiting for (a late answer to a request that timed out) is dropped. One send buffer and one
// receive buffer live as long as the socket, so the CNI hot path allocates only small objects.
import { performance } from 'node:perf_hooks';
import { errnoCode, WeftError } from '../errors.ts';
import { native } from '../native/native.ts';
import {
  NETLINK_ROUTE, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP,
  NLM_F_DUMP_INTR, NLM_F_REQUEST,
} from './constants.ts';
import { decodeDone, decodeNlError, NlWriter, parseMessages, type NlError, type NlMessage } from './codec.ts';
import { NetlinkBatchError, NetlinkError, type BatchFailure } from './errors.ts';

/** One request: a message type, its flags, and a writer for its payload. */
export interface NetlinkRequest {
  /** Message type, e.g. RTM_NEWLINK. */
  readonly type: number;
  /** Flags besides NLM_F_REQUEST and NLM_F_ACK / NLM_F_DUMP (which the socket adds), e.g. NLM_F_CREATE. */
  readonly flags?: number;
  /** The operation and its object, for error messages: "create bridge cni0". */
  readonly what: string;
  /** Writes the family header (ifinfomsg, rtmsg...) and the attributes. */
  write(w: NlWriter): void;
}

/** The datagram socket underneath: the native addon's, or a fake in unit tests. */
export interface NetlinkTransport {
  send(data: Uint8Array): number;
  /** Waits up to timeoutMs for one datagram; returns its full length (> into.length if truncated), 0 on timeout. */
  recv(into: Uint8Array, timeoutMs: number): number;
  close(): void;
}

function nativeTransport(fd: number): NetlinkTransport {
  const addon = native();
  return {
    send: (data) => addon.nlSend(fd, data),
    recv: (into, timeoutMs) => addon.nlRecv(fd, into, timeoutMs),
    close: () => addon.close(fd),
  };
}

export interface NetlinkSocketOptions {
  /** How long to wait for the kernel's answers to one call (default 5000 ms). */
  timeoutMs?: number;
  /** Size of the reused receive buffer (default 64 KiB; the kernel sends at most 32 KiB per dump datagram). */
  receiveBufferSize?: number;
  /** Largest number of requests batch() puts in one send() (default 256); see MAX_PER_SEND. */
  maxPerSend?: number;
}

const DUMP_ATTEMPTS = 3;

// The kernel queues one ACK datagram per request before send() even returns, and drops ACKs
// once the socket's receive queue is full (each ACK costs ~800 bytes of it). The queue is at
// most 2 * net.core.rmem_max: 416 KiB on a default host. 256 ACKs fit that with room to spare,
// so bigger batches go out in several sends of 256.
const MAX_PER_SEND = 256;

type Mode = 'ack' | 'dump';

export class NetlinkSocket {
  private readonly transport: NetlinkTransport;
  readonly timeoutMs: number;
  private readonly maxPerSend: number;
  private readonly writer = new NlWriter();
  private readonly rbuf: Buffer;
  private seq = 0;
  private closed = false;

  private constructor(transport: NetlinkTransport, options: NetlinkSocketOptions) {
    this.transport = transport;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxPerSend = Math.max(1, options.maxPerSend ?? MAX_PER_SEND);
    this.rbuf = Buffer.alloc(options.receiveBufferSize ?? 64 * 1024);
  }

  /** Opens a socket, inside the network namespace at netnsPath (e.g. /run/netns/x) when given. */
  static open(protocol = NETLINK_ROUTE, netnsPath?: string, options: NetlinkSocketOptions = {}): NetlinkSocket {
    let fd: number;
    try {
      fd = native().nlOpen(protocol, netnsPath ?? null);
    } catch (e) {
      const where = netnsPath ? ` in network namespace ${netnsPath}` : '';
      throw new WeftError(netnsPath ? 'WEFT_NETNS' : 'WEFT_NETLINK',
        `cannot open a netlink socket${where}: ${(e as Error).message}`, { cause: e });
    }
    return new NetlinkSocket(nativeTransport(fd), options);
  }

  /** A socket over another transport (unit tests drive the protocol logic with a fake kernel). */
  static over(transport: NetlinkTransport, options: NetlinkSocketOptions = {}): NetlinkSocket {
    return new NetlinkSocket(transport, options);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Sends one request with NLM_F_ACK and waits for its ACK; throws NetlinkError on refusal. */
  request(req: NetlinkRequest): void {
    const [error] = this.exchange([req], 'ack');
    if (error) throw new NetlinkError(req.what, error);
  }

  /** A request whose answer carries data (e.g. RTM_GETLINK for one link): decodes each reply. */
  query<T>(req: NetlinkRequest, decode: (msg: NlMessage) => T | undefined): T[] {
    const out: T[] = [];
    const [error] = this.exchange([req], 'ack', (_i, msg) => {
      const v = decode(msg);
      if (v !== undefined) out.push(v);
    });
    if (error) throw new NetlinkError(req.what, error);
    return out;
  }

  /**
   * Sends a dump request (NLM_F_DUMP) and returns every message of the multipart reply up to
   * NLMSG_DONE. decode sees views into the receive buffer and must copy what it keeps; without
   * it the messages are copied. A dump the kernel marks inconsistent (NLM_F_DUMP_INTR, the
   * table changed meanwhile) is retried.
   */
  dump(req: NetlinkRequest): NlMessage[];
  dump<T>(req: NetlinkRequest, decode: (msg: NlMessage) => T | undefined): T[];
  dump<T>(req: NetlinkRequest, decode?: (msg: NlMessage) => T | undefined): (T | NlMessage)[] {
    const keep = decode ?? ((m: NlMessage): NlMessage => ({ ...m, data: Buffer.from(m.data) }));
    for (let attempt = 1; ; attempt++) {
      const out: (T | NlMessage)[] = [];
      let interrupted = false;
      const [error] = this.exchange([req], 'dump', (_i, msg) => {
        if (msg.flags & NLM_F_DUMP_INTR) interrupted = true;
        const v = keep(msg);
        if (v !== undefined) out.push(v);
      });
      if (error) throw new NetlinkError(req.what, error);
      if (!interrupted) return out;
      if (attempt === DUMP_ATTEMPTS) {
        throw new WeftError('WEFT_NETLINK', `${req.what}: the kernel's dump was interrupted by changes ${DUMP_ATTEMPTS} times in a row`);
      }
    }
  }

  /**
   * Sends all requests in ONE send() (up to maxPerSend; larger batches take a few) and waits
   * for every ACK. The kernel applies them in order and does not stop at a failure, so each
   * request succeeds or fails on its own; when any failed this throws NetlinkBatchError
   * listing each failure with its index.
   */
  batch(reqs: readonly NetlinkRequest[]): void {
    const failures: BatchFailure[] = [];
    this.batchSettled(reqs).forEach((error, index) => {
      if (error) failures.push({ index, error });
    });
    if (failures.length > 0) throw new NetlinkBatchError(failures, reqs.length);
  }

  /** Like batch(), but returns each request's outcome (undefined = done) instead of throwing. */
  batchSettled(reqs: readonly NetlinkRequest[]): (NetlinkError | undefined)[] {
    const out: (NetlinkError | undefined)[] = [];
    for (let at = 0; at < reqs.length; at += this.maxPerSend) {
      const chunk = reqs.slice(at, at + this.maxPerSend);
      this.exchange(chunk, 'ack').forEach((e, i) => out.push(e ? new NetlinkError((chunk[i] as NetlinkRequest).what, e) : undefined));
    }
    return out;
  }

  private exchange(reqs: readonly NetlinkRequest[], mode: Mode, onMessage?: (index: number, msg: NlMessage) => void): (NlError | undefined)[] {
    if (this.closed) throw new WeftError('WEFT_INTERNAL', `${(reqs[0] as NetlinkRequest).what}: the netlink socket is closed`);
    const first = this.send(reqs, mode);
    return this.collect(reqs, first, mode, onMessage);
  }

  /** Encodes all requests back to back into the reused writer and sends them at once. */
  private send(reqs: readonly NetlinkRequest[], mode: Mode): number {
    const first = (this.seq + 1) >>> 0;
    this.seq = (this.seq + reqs.length) >>> 0;
    const w = this.writer;
    w.reset();
    const kind = mode === 'dump' ? NLM_F_DUMP : NLM_F_ACK;
    reqs.forEach((req, i) => {
      const start = w.beginMessage(req.type, NLM_F_REQUEST | kind | (req.flags ?? 0), (first + i) >>> 0);
      req.write(w);
      w.endMessage(start);
    });
    const bytes = w.bytes();
    try {
      const sent = this.transport.send(bytes);
      if (sent !== bytes.length) throw new Error(`sent ${sent} of ${bytes.length} bytes`);
    } catch (e) {
      throw new WeftError('WEFT_NETLINK', `${describe(reqs)}: netlink send failed: ${(e as Error).message}`, { cause: e });
    }
    return first;
  }

  /** Reads datagrams until every request has its ACK/error (or, for a dump, its NLMSG_DONE). */
  private collect(reqs: readonly NetlinkRequest[], first: number, mode: Mode,
    onMessage?: (index: number, msg: NlMessage) => void): (NlError | undefined)[] {
    const count = reqs.length;
    const results: (NlError | undefined)[] = new Array<NlError | undefined>(count).fill(undefined);
    const done = new Uint8Array(count);
    let pending = count;
    const deadline = performance.now() + this.timeoutMs;
    while (pending > 0) {
      const n = this.receive(reqs, Math.max(0, Math.ceil(deadline - performance.now())), pending);
      for (const msg of parseMessages(this.rbuf, n)) {
        const index = (msg.seq - first) >>> 0;
        if (index >= count || done[index]) continue; // not ours, or late
        if (msg.type === NLMSG_NOOP) continue;
        if (msg.type === NLMSG_OVERRUN) {
          throw new WeftError('WEFT_NETLINK', `${describe(reqs)}: the kernel reported NLMSG_OVERRUN (data lost)`);
        }
        if (msg.type === NLMSG_ERROR || (msg.type === NLMSG_DONE && mode === 'dump')) {
          const reply = msg.type === NLMSG_ERROR ? decodeNlError(msg) : decodeDone(msg);
          if (reply.errno !== 0) results[index] = reply;
          done[index] = 1;
          pending--;
        } else {
          onMessage?.(index, msg);
        }
      }
    }
    return results;
  }

  private receive(reqs: readonly NetlinkRequest[], waitMs: number, pending: number): number {
    let n: number;
    try {
      n = this.transport.recv(this.rbuf, waitMs);
    } catch (e) {
      const overflow = errnoCode(e) === 'ENOBUFS';
      // After an overflow the kernel drops every new reply until the queue is empty: empty it,
      // so that the next call on this socket works again.
      if (overflow) this.drain();
      const why = overflow ? "the socket's receive queue overflowed and replies were lost" : (e as Error).message;
      throw new WeftError('WEFT_NETLINK', `${describe(reqs)}: netlink receive failed: ${why}`, { cause: e });
    }
    if (n === 0) {
      throw new WeftError('WEFT_NETLINK',
        `${describe(reqs)}: no answer from the kernel within ${this.timeoutMs} ms (${pending} of ${reqs.length} replies missing)`);
    }
    if (n > this.rbuf.length) {
      throw new WeftError('WEFT_NETLINK',
        `${describe(reqs)}: a reply of ${n} bytes did not fit the ${this.rbuf.length}-byte receive buffer`);
    }
    return n;
  }

  private drain(): void {
    for (let i = 0; i < 1_000_000; i++) {
      try {
        if (this.transport.recv(this.rbuf, 0) === 0) return;
      } catch {
        // another ENOBUFS: keep reading
      }
    }
  }
}

function describe(reqs: readonly NetlinkRequest[]): string {
  const first = (reqs[0] as NetlinkRequest).what;
  return reqs.length === 1 ? first : `batch of ${reqs.length} (first: ${first})`;
}
