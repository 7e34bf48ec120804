// A lean client for the one etcd v3 call a cold listing makes thousands of times:
// Lease/LeaseTimeToLive. etcd has no batch form of it. Over the JSON gateway each call is an
// HTTP/1.1 request that etcd turns into a gRPC call to itself; straight gRPC over node:http2
// (one multiplexed connection, a hand-coded protobuf message, nothing to load) costs etcd less
// and finished 5000 lookups in about half the wall time here. Everything else goes through the
// gateway (gateway.ts), and so does this call whenever the lean path fails (see Etcd3LeaseStore).
//
// Wire format (gRPC over HTTP/2): POST /etcdserverpb.Lease/LeaseTimeToLive, content-type
// application/grpc, body = 1 byte compressed flag (0) + 4 byte big-endian length + message.
// LeaseTimeToLiveRequest { int64 ID = 1; bool keys = 2; }
// LeaseTimeToLiveResponse { ResponseHeader header = 1; int64 ID = 2; int64 TTL = 3;
//                           int64 grantedTTL = 4; repeated bytes keys = 5; }
// Status comes in the trailers (or, for an immediate error, in the headers): grpc-status,
// grpc-message. etcd answers NotFound ("requested lease not found") for an unknown lease.
import http2 from 'node:http2';

export interface LeanTtlOptions {
  endpoints: readonly string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** The auth token for the `token` header, when etcd auth is on. */
  token?: () => Promise<string | undefined>;
  /** Called when the token was refused, before one retry with a fresh token. */
  invalidateToken?: () => void;
  timeoutMs: number;
}

export class GrpcStatusError extends Error {
  readonly grpcStatus: number;
  constructor(status: number, message: string) {
    super(`gRPC status ${status}: ${message}`);
    this.name = 'GrpcStatusError';
    this.grpcStatus = status;
  }
}

const GRPC_NOT_FOUND = 5;
const GRPC_UNAUTHENTICATED = 16;

/** Remaining TTL in seconds of an etcd lease; -1 when etcd does not know the lease. */
export class LeanLeaseTtlClient {
  readonly #o: LeanTtlOptions;
  #session: http2.ClientHttp2Session | undefined;
  #endpoint = 0;
  #inflight = 0;

  constructor(options: LeanTtlOptions) {
    this.#o = options;
  }

  async timeToLive(id: string): Promise<number> {
    try {
      return await this.#call(id);
    } catch (e) {
      if (e instanceof GrpcStatusError && e.grpcStatus === GRPC_UNAUTHENTICATED && this.#o.invalidateToken) {
        this.#o.invalidateToken();
        return this.#call(id);
      }
      throw e;
    }
  }

  close(): void {
    this.#session?.close();
    this.#session = undefined;
  }

  async #call(id: string): Promise<number> {
    const token = await this.#o.token?.();
    const session = this.#connect();
    const msg = Buffer.from([0x08, ...encodeVarint(BigInt.asUintN(64, BigInt(id)))]);
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': '/etcdserverpb.Lease/LeaseTimeToLive',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(token ? { token } : {}),
    };
    // An idle session must not keep the process alive, a busy one must.
    if (this.#inflight++ === 0) session.ref();
    const settle = (): void => {
      if (--this.#inflight === 0 && !session.destroyed) session.unref();
    };
    return new Promise<number>((resolve, reject) => {
      const stream = session.request(headers);
      const chunks: Buffer[] = [];
      let status: { code: number; message: string } | undefined;
      let failure: Error | undefined;
      const takeStatus = (h: http2.IncomingHttpHeaders): void => {
        const code = h['grpc-status'];
        if (code !== undefined) status = { code: Number(code), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
      };
      stream.setTimeout(this.#o.timeoutMs, () => {
        failure = new Error(`LeaseTimeToLive: no answer within ${this.#o.timeoutMs} ms`);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on('response', takeStatus);
      stream.on('trailers', takeStatus);
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', (e) => {
        failure ??= e;
        this.#drop(session);
      });
      // 'close' comes last, after the trailers, an error or a reset: settle here, once.
      stream.on('close', () => {
        settle();
        if (failure) return reject(failure);
        if (!status) return reject(new Error(`LeaseTimeToLive: no gRPC status (stream reset with code ${stream.rstCode})`));
        if (status.code === GRPC_NOT_FOUND) return resolve(-1);
        if (status.code !== 0) return reject(new GrpcStatusError(status.code, status.message));
        try {
          resolve(decodeTtl(Buffer.concat(chunks)));
        } catch (e) {
          reject(e as Error);
        }
      });
      stream.end(frame);
    });
  }

  #connect(): http2.ClientHttp2Session {
    if (this.#session && !this.#session.closed && !this.#session.destroyed) return this.#session;
    const endpoint = this.#o.endpoints[this.#endpoint % this.#o.endpoints.length]!;
    const tls = this.#o.tls ?? {};
    const clientCert = tls.cert !== undefined && tls.key !== undefined;
    const session = http2.connect(endpoint, {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(clientCert ? { cert: tls.cert, key: tls.key } : {}),
      minVersion: 'TLSv1.2',
    });
    session.on('error', () => this.#drop(session));
    session.on('goaway', () => this.#drop(session));
    session.on('close', () => this.#drop(session));
    session.unref();
    this.#session = session;
    return session;
  }

  /** Forgets a broken session; the next call connects again, to the next endpoint. */
  #drop(session: http2.ClientHttp2Session): void {
    if (this.#session !== session) return;
    this.#session = undefined;
    this.#endpoint++;
    session.destroy();
  }
}

function encodeVarint(n: bigint): number[] {
  const out: number[] = [];
  while (n > 127n) {
    out.push(Number(n & 127n) | 128);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

function readVarint(b: Buffer, at: number): [bigint, number] {
  let value = 0n;
  let shift = 0n;
  for (let i = at; i < b.length && shift < 70n; i++) {
    const byte = b[i]!;
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if (byte < 0x80) return [value, i + 1];
  }
  throw new Error('LeaseTimeToLive: truncated varint');
}

/** The TTL field of a framed LeaseTimeToLiveResponse (int64, so -1 is ten 0xff-ish bytes). */
export function decodeTtl(body: Buffer): number {
  if (body.length < 5) throw new Error('LeaseTimeToLive: short reply');
  if (body[0] !== 0) throw new Error('LeaseTimeToLive: compressed reply');
  const len = body.readUInt32BE(1);
  if (body.length < 5 + len) throw new Error('LeaseTimeToLive: truncated reply');
  const msg = body.subarray(5, 5 + len);
  let ttl = 0n; // proto3: an absent field is zero
  for (let at = 0; at < msg.length;) {
    const [tag, next] = readVarint(msg, at);
    at = next;
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, after] = readVarint(msg, at);
      at = after;
      if (field === 3) ttl = BigInt.asIntN(64, v);
    } else if (wire === 2) {
      const [len2, after] = readVarint(msg, at);
      at = after + Number(len2);
    } else if (wire === 1) {
      at += 8;
    } else if (wire === 5) {
      at += 4;
    } else {
      throw new Error(`LeaseTimeToLive: unexpected wire type ${wire}`);
    }
    if (at > msg.length) throw new Error('LeaseTimeToLive: truncated field');
  }
  return Number(ttl);
}

/** A framed LeaseTimeToLiveResponse (for tests). */
export function encodeTtlReply(id: bigint, ttl: bigint, grantedTtl: bigint): Buffer {
  const header = [0x0a, 0x00]; // an empty ResponseHeader
  const msg = Buffer.from([
    ...header,
    0x10, ...encodeVarint(BigInt.asUintN(64, id)),
    0x18, ...encodeVarint(BigInt.asUintN(64, ttl)),
    0x20, ...encodeVarint(BigInt.asUintN(64, grantedTtl)),
  ]);
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}
