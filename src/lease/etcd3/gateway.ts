// A lean client for etcd's v3 JSON gateway (grpc-gateway, served by etcd itself on the client
// port under /v3/): POST a JSON request, get a JSON answer. Keys and values are base64; int64s
// are strings; zero values (false, 0, "") are left out of answers. Errors come back as a
// non-200 status with {"error": "...", "message": "...", "code": <gRPC status>}.
//
// What this adds to a plain POST: keep-alive connections (node:http/https agents, TLS with
// ca/cert/key), endpoint failover (the endpoint that answered last goes first; only transport
// failures move on), a deadline per call, answers read through ElidingJsonScanner (bounded in
// memory, oversized values left out), and username/password auth: a token from
// /v3/auth/authenticate in the Authorization header, fetched once and again after etcd refuses it.
import http from 'node:http';
import type https from 'node:https';
import { describeNetError, loadHttps } from '../http.ts';
import { BodyTooLargeError, ElidingJsonScanner, scanBody } from '../bounded-json.ts';

/**
 * node:https, loaded on first use: with it come node:tls and crypto's TLS parts, about 5 MB of
 * RSS that an agent talking to http:// endpoints never needs.
 */

export interface GatewayTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export interface GatewayOptions {
  /** Client URLs, all http:// or all https://. */
  endpoints: readonly string[];
  tls?: GatewayTls;
  username?: string;
  password?: string;
  /** Deadline of each unary call. */
  timeoutMs: number;
  /** Connections kept per endpoint (unary calls; each watch has its own). */
  maxSockets?: number;
}

export interface CallBounds {
  /** Most bytes kept of the answer; default 1 MiB. */
  maxBytes?: number;
  /** "value" strings longer than this are left out (see bounded-json.ts); default: never. */
  elideValuesOver?: number;
}

/** etcd answered with an error status: its gRPC code and message. */
export class GatewayError extends Error {
  readonly status: number;
  /** The gRPC status code (5 not found, 7 permission denied, 11 out of range/compacted, 16 unauthenticated). */
  readonly code: number;
  constructor(status: number, code: number, message: string) {
    super(message);
    this.name = 'GatewayError';
    this.status = status;
    this.code = code;
  }
}

/** No endpoint could be reached; each one's failure is in the message. */
export class GatewayUnreachableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GatewayUnreachableError';
  }
}

export const GRPC_INVALID_ARGUMENT = 3;
export const GRPC_NOT_FOUND = 5;
export const GRPC_PERMISSION_DENIED = 7;
export const GRPC_OUT_OF_RANGE = 11;
export const GRPC_UNAUTHENTICATED = 16;

const DEFAULT_MAX_BYTES = 1024 * 1024;
/** An error answer is short; more than this of one is not read. */
const ERROR_MAX_BYTES = 64 * 1024;

/** Whether etcd refused the token (expired, or issued before a restart): fetch a new one. */
export function isTokenRefused(e: unknown): boolean {
  return e instanceof GatewayError && (e.code === GRPC_UNAUTHENTICATED || /invalid auth token/.test(e.message));
}

export interface StreamHandlers {
  /** One newline-delimited JSON document, already parsed. */
  onMessage(doc: unknown): void;
  /** The stream ended (error is undefined when etcd closed it cleanly). Called once. */
  onEnd(error?: Error): void;
}

export interface GatewayStream {
  close(): void;
}

export class EtcdGateway {
  readonly endpoints: readonly string[];
  readonly #urls: URL[];
  readonly #agent: http.Agent;
  readonly #streamAgent: http.Agent;
  readonly #secure: boolean;
  readonly #o: GatewayOptions;
  #preferred = 0;
  #token: Promise<string> | undefined;

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.endpoints = [...options.endpoints];
    this.#urls = this.endpoints.map((e) => new URL(e));
    this.#secure = this.#urls.some((u) => u.protocol === 'https:');
    const maxSockets = options.maxSockets ?? 16;
    if (this.#secure) {
      const tls = options.tls ?? {};
      const clientCert = tls.cert !== undefined && tls.key !== undefined;
      const tlsOptions = { minVersion: 'TLSv1.2' as const, ...(tls.ca ? { ca: tls.ca } : {}), ...(clientCert ? { cert: tls.cert, key: tls.key } : {}) };
      const { Agent } = loadHttps();
      this.#agent = new Agent({ keepAlive: true, maxSockets, ...tlsOptions });
      this.#streamAgent = new Agent({ keepAlive: false, ...tlsOptions });
    } else {
      this.#agent = new http.Agent({ keepAlive: true, maxSockets });
      this.#streamAgent = new http.Agent({ keepAlive: false });
    }
  }

  /** POSTs body to path (e.g. /v3/kv/range) and returns the parsed answer; GatewayError for an error status. */
  async call(path: string, body: unknown, bounds: CallBounds = {}): Promise<unknown> {
    const token = await this.#currentToken();
    try {
      return await this.#callAnywhere(path, body, bounds, token);
    } catch (e) {
      if (token === undefined || !isTokenRefused(e)) throw e;
      this.#token = undefined;
      return this.#callAnywhere(path, body, bounds, await this.#currentToken());
    }
  }

  /**
   * Opens a streaming call (/v3/watch): writes body, then hands each newline-delimited answer
   * to onMessage until the stream ends. One endpoint per stream (the preferred one); the caller
   * reconnects, and a failure moves the preference on.
   */
  async stream(path: string, body: unknown, handlers: StreamHandlers, bounds: CallBounds & { maxBytes: number }): Promise<GatewayStream> {
    const token = await this.#currentToken();
    const at = this.#preferred;
    const url = new URL(path, this.#urls[at]);
    const data = JSON.stringify(body);
    let ended = false;
    const finish = (e?: Error): void => {
      if (ended) return;
      ended = true;
      if (e) this.#preferred = (at + 1) % this.#urls.length;
      handlers.onEnd(e);
    };
    const req = this.#module().request(url, { method: 'POST', agent: this.#streamAgent, headers: this.#headers(data, token) }, (res) => {
      if (res.statusCode !== 200) {
        readAll(res, ERROR_MAX_BYTES).then((b) => finish(errorFromAnswer(res.statusCode ?? 0, b)), (e: Error) => finish(e));
        return;
      }
      const scanner = new ElidingJsonScanner({
        maxBytes: bounds.maxBytes,
        elideValuesOver: bounds.elideValuesOver ?? Number.MAX_SAFE_INTEGER,
        onDocument: (doc) => {
          if (ended) return;
          let parsed: unknown;
          try {
            parsed = JSON.parse(doc.toString('utf8'));
          } catch {
            throw new Error(`etcd sent a watch message that is not JSON: ${doc.subarray(0, 120).toString('utf8')}`);
          }
          handlers.onMessage(parsed);
        },
      });
      res.on('data', (chunk: Buffer) => {
        if (ended) return;
        try {
          scanner.push(chunk);
        } catch (e) {
          finish(e as Error);
          req.destroy();
        }
      });
      res.on('end', () => finish());
      res.on('error', (e) => finish(e));
      res.on('aborted', () => finish(new Error('etcd cut the watch stream off')));
    });
    req.on('socket', (s) => s.setKeepAlive(true, 30_000));
    req.on('error', (e) => finish(e));
    req.end(data);
    return {
      close: () => {
        ended = true;
        req.destroy();
      },
    };
  }

  /** Forgets a token etcd refused; the next call authenticates again. */
  invalidateToken(): void {
    this.#token = undefined;
  }

  close(): void {
    this.#agent.destroy();
    this.#streamAgent.destroy();
  }

  /** The auth token (undefined without a username), fetched once and shared. */
  #currentToken(): Promise<string | undefined> {
    if (this.#o.username === undefined) return Promise.resolve(undefined);
    if (!this.#token) {
      const p = this.#callAnywhere('/v3/auth/authenticate', { name: this.#o.username, password: this.#o.password ?? '' }, {}, undefined)
        .then((answer) => {
          const token = (answer as { token?: unknown }).token;
          if (typeof token !== 'string' || token === '') throw new GatewayError(200, GRPC_UNAUTHENTICATED, 'etcd answered the authentication without a token');
          return token;
        });
      // A failed authentication is not kept: the next call asks again.
      p.catch(() => { if (this.#token === p) this.#token = undefined; });
      this.#token = p;
    }
    return this.#token;
  }

  async #callAnywhere(path: string, body: unknown, bounds: CallBounds, token: string | undefined): Promise<unknown> {
    const data = JSON.stringify(body);
    const failures: string[] = [];
    let last: unknown;
    for (let i = 0; i < this.#urls.length; i++) {
      const at = (this.#preferred + i) % this.#urls.length;
      try {
        const answer = await this.#send(new URL(path, this.#urls[at]), data, token, bounds);
        this.#preferred = at;
        return answer;
      } catch (e) {
        if (e instanceof GatewayError || e instanceof BodyTooLargeError) throw e;
        last = e;
        failures.push(`${this.endpoints[at]}: ${describeNetError(e)}`);
      }
    }
    throw new GatewayUnreachableError(failures.join('; '), { cause: last });
  }

  #send(url: URL, data: string, token: string | undefined, bounds: CallBounds): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#o.timeoutMs);
    return new Promise<unknown>((resolve, reject) => {
      const req = this.#module().request(url, { method: 'POST', agent: this.#agent, headers: this.#headers(data, token), signal }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          readAll(res, ERROR_MAX_BYTES).then((b) => reject(errorFromAnswer(status, b)), reject);
          return;
        }
        const scanner = new ElidingJsonScanner({ maxBytes: bounds.maxBytes ?? DEFAULT_MAX_BYTES, elideValuesOver: bounds.elideValuesOver ?? Number.MAX_SAFE_INTEGER });
        scanBody(res, req, scanner).then((kept) => {
          try {
            resolve(JSON.parse(kept.toString('utf8')));
          } catch {
            reject(new GatewayError(status, -1, `etcd answered ${url.pathname} with something that is not JSON`));
          }
        }, reject);
      });
      req.on('error', reject);
      req.end(data);
    });
  }

  #headers(data: string, token: string | undefined): http.OutgoingHttpHeaders {
    return {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(data),
      ...(token ? { authorization: token } : {}),
    };
  }

  #module(): typeof http | typeof https {
    return this.#secure ? loadHttps() : http;
  }
}

/** An error answer as GatewayError; a body that is not the gateway's error JSON keeps its first bytes. */
function errorFromAnswer(status: number, body: Buffer): GatewayError {
  const text = body.toString('utf8');
  try {
    const e = JSON.parse(text) as { error?: unknown; message?: unknown; code?: unknown };
    const message = typeof e.message === 'string' ? e.message : typeof e.error === 'string' ? e.error : text.slice(0, 200);
    return new GatewayError(status, typeof e.code === 'number' ? e.code : -1, message);
  } catch {
    return new GatewayError(status, -1, `HTTP ${status}: ${text.trim().slice(0, 200)}`);
  }
}

function readAll(res: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size < max) chunks.push(c.subarray(0, max - size));
      size += c.length;
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
  });
}

