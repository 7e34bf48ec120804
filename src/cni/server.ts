// The CNI server: a long-lived process on each node that serves the weft-cni front end
// over a unix socket, so a pod ADD costs one small exec plus work on warm state instead of
// a Node.js start-up. It only serves root callers (SO_PEERCRED), since it changes the node.
//
// Every connection is untrusted input, so each one is bounded: a request may hold at most
// MAX_REQUEST_BYTES (wire.ts) and must arrive within requestTimeoutMs of the accept; at most
// maxConnections are still sending their request at once, and one more gets an immediate "try again later" (CNI
// code 11), which runtimes retry. Refusals are logged through a LogThrottle, so a flood of
// them writes a line per window, not a line each.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { lstat, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.ts';
import { LogThrottle, type Clock } from '../log/throttle.ts';
import { native } from '../native/native.ts';
import { WeftError, errnoCode } from '../errors.ts';
import { handleCni, type CniOperations } from './plugin.ts';
import { decodeRequest, encodeResponse, MAX_REQUEST_BYTES, type CniRequest, type CniResponse } from './wire.ts';
import { COMMANDS, CniErrorCodes } from './spec.ts';
import { DEFAULT_CNI_SOCKET } from './socket-address.ts';

export const DEFAULT_MAX_CONNECTIONS = 64;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** Repeats of one refusal within this window are summed up in one line. */
const LOG_WINDOW_MS = 60_000;
/** sun_path is 108 bytes; a path needs its NUL, an abstract name its leading NUL. */
const MAX_SOCKET_ADDRESS_BYTES = 107;

/** One finished connection, for metrics: verb is a CNI command or 'unknown' (refused, timed out, undecodable). */
export interface CniRequestInfo {
  verb: string;
  result: 'ok' | 'error';
  /** From accept to the answer (or to the connection's end, if it got none). */
  seconds: number;
}

export interface CniServerOptions {
  socket?: string;
  ops: CniOperations;
  log: Logger;
  /** Serve callers of any uid (tests); by default only root. */
  allowNonRoot?: boolean;
  /** Connections open at once; more get "try again later". Default 64. */
  maxConnections?: number;
  /** From accept to the end of the request; then the connection is dropped. Default 10 s. */
  requestTimeoutMs?: number;
  /** Called once per accepted connection when it is done: served, refused or dropped. */
  onRequest?: (info: CniRequestInfo) => void;
  /** How the user chooses the socket, for error messages ("--socket"); default "socket address". */
  socketSetting?: string;
  /** The log throttle's clock (tests). */
  clock?: Clock;
}

/** What the server holds right now, and the most any one request has held (tests, debugging). */
export interface CniServerStats {
  connections: number;
  bufferedBytes: number;
  largestRequestBytes: number;
}

const statsOf = new WeakMap<Server, () => CniServerStats>();

export function cniServerStats(server: Server): CniServerStats | undefined {
  return statsOf.get(server)?.();
}

function listenPath(socket: string): string {
  return socket.startsWith('@') ? `\0${socket.slice(1)}` : socket;
}

function callerUid(conn: Socket): number | undefined {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? native().peerCred(fd).uid : undefined;
}

function failure(code: number, msg: string): CniResponse {
  return { exitCode: 1, stdout: `${JSON.stringify({ code, msg })}\n`, stderr: '' };
}

const KNOWN_VERBS: readonly string[] = COMMANDS;
/** Only known commands become metric labels: CNI_COMMAND is the caller's to choose. */
function verbOf(req: CniRequest | undefined): string {
  const verb = req?.env.CNI_COMMAND;
  return verb !== undefined && KNOWN_VERBS.includes(verb) ? verb : 'unknown';
}

export async function startCniServer(options: CniServerOptions): Promise<Server> {
  const socket = options.socket ?? DEFAULT_CNI_SOCKET;
  const setting = options.socketSetting ?? 'socket address';
  const { log, ops } = options;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const throttle = new LogThrottle(log, LOG_WINDOW_MS, options.clock);
  const buffered = new Set<{ size: number; chunks: Buffer[] }>();
  let connections = 0;
  let receiving = 0;
  let largestRequestBytes = 0;

  const report = (info: CniRequestInfo): void => {
    try {
      options.onRequest?.(info);
    } catch (e) {
      throttle.warn('onRequest', { err: (e as Error).message }, 'the CNI request observer failed');
    }
  };

  // allowHalfOpen: the front end shuts down its writing side to mark the end of the request,
  // and we still have to answer on ours.
  const server = createServer({ allowHalfOpen: true }, (conn) => {
    const started = process.hrtime.bigint();
    let reported = false;
    const done = (verb: string, result: 'ok' | 'error'): void => {
      if (reported) return;
      reported = true;
      report({ verb, result, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    };
    connections++;
    // Only connections still sending their request count against maxConnections: that is what
    // holds buffers. A request being served holds none, and a burst of DELs must overlap.
    receiving++;
    let received = false;
    const stopReceiving = (): void => {
      if (received) return;
      received = true;
      receiving--;
    };
    const request = { size: 0, chunks: [] as Buffer[] };
    let serving = false;
    const release = (): void => {
      request.chunks = [];
      buffered.delete(request);
    };
    const timer = setTimeout(() => {
      throttle.warn('timeout', { timeoutMs, received: request.size }, 'dropped a CNI connection that did not send its request in time');
      conn.destroy();
    }, timeoutMs);
    conn.once('close', () => {
      connections--;
      stopReceiving();
      release();
      clearTimeout(timer);
      // A request being served reports when it is done, even if its caller has gone.
      if (!serving) done('unknown', 'error');
    });
    conn.on('error', (e) => throttle.warn('client-error', { err: e.message }, 'CNI client connection error'));

    // Answers a request we will not serve, then drops the connection: whatever it still sends is not read.
    const refuse = (response: CniResponse): void => {
      release();
      conn.removeAllListeners('data');
      conn.removeAllListeners('end');
      done('unknown', 'error');
      conn.end(encodeResponse(response), () => conn.destroy());
    };

    if (receiving > maxConnections) {
      throttle.warn('busy', { maxConnections }, 'refused a CNI request: too many connections in progress');
      refuse(failure(CniErrorCodes.tryAgainLater, `the weft CNI server is busy (${maxConnections} requests in progress); try again later`));
      return;
    }
    const uid = options.allowNonRoot ? 0 : callerUid(conn);
    if (uid !== 0) {
      throttle.warn('non-root', { uid }, 'refused a CNI request from a non-root caller');
      refuse(failure(CniErrorCodes.invalidEnvironment, 'the weft CNI server serves root only'));
      return;
    }
    buffered.add(request);
    conn.on('data', (chunk: Buffer) => {
      request.size += chunk.length;
      largestRequestBytes = Math.max(largestRequestBytes, Math.min(request.size, MAX_REQUEST_BYTES));
      if (request.size <= MAX_REQUEST_BYTES) {
        request.chunks.push(chunk);
        return;
      }
      throttle.warn('oversized', { limit: MAX_REQUEST_BYTES }, 'refused a CNI request larger than the limit');
      refuse(failure(CniErrorCodes.decodeFailure, `CNI request is larger than ${MAX_REQUEST_BYTES >> 20} MiB (the CNI_* variables and the network config); a real one is a few KiB`));
    });
    conn.on('end', () => {
      clearTimeout(timer);
      stopReceiving();
      const frame = Buffer.concat(request.chunks);
      release();
      serving = true;
      void serve(frame).then(({ verb, response }) => {
        done(verb, response.exitCode === 0 ? 'ok' : 'error');
        conn.end(encodeResponse(response));
      });
    });
  });

  async function serve(frame: Buffer): Promise<{ verb: string; response: CniResponse }> {
    let req: CniRequest;
    try {
      req = decodeRequest(frame);
    } catch (e) {
      throttle.warn('undecodable', { err: (e as Error).message }, 'refused a CNI request that is not a weft-cni frame');
      return { verb: 'unknown', response: failure(CniErrorCodes.decodeFailure, (e as Error).message) };
    }
    try {
      return { verb: verbOf(req), response: await handleCni(req, ops, log) };
    } catch (e) {
      // handleCni answers every error itself; this is a bug, but the caller still gets an answer.
      log.error({ err: (e as Error).message, stack: (e as Error).stack }, 'CNI request failed unexpectedly');
      return { verb: verbOf(req), response: failure(CniErrorCodes.internal, `internal error: ${(e as Error).message}`) };
    }
  }

  await prepareAddress(socket, setting);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(listenError(socket, setting, e)));
    server.listen({ path: listenPath(socket), readableAll: false, writableAll: false }, () => resolve());
  });
  server.on('close', () => throttle.close());
  statsOf.set(server, () => ({
    connections,
    bufferedBytes: [...buffered].reduce((sum, r) => sum + r.chunks.reduce((n, c) => n + c.length, 0), 0),
    largestRequestBytes,
  }));
  log.info({ socket }, 'CNI server listening');
  return server;
}

const invalid = (msg: string): WeftError => new WeftError('WEFT_INVALID_CONFIG', msg);

/** Checks the address, and for a path clears a stale socket file of an earlier run (never another kind of file). */
async function prepareAddress(socket: string, setting: string): Promise<void> {
  if (socket === '' || socket === '@') throw invalid(`the CNI ${setting} must not be empty`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_ADDRESS_BYTES) {
    throw invalid(`cannot listen on ${socket}: a unix socket address has at most ${MAX_SOCKET_ADDRESS_BYTES} bytes; choose a shorter ${setting}`);
  }
  if (socket.startsWith('@')) return;
  const dir = dirname(socket);
  try {
    if (!(await stat(dir)).isDirectory()) throw invalid(`cannot listen on ${socket}: ${dir} is not a directory; choose another ${setting}`);
  } catch (e) {
    if (e instanceof WeftError) throw e;
    if (errnoCode(e) === 'ENOENT') throw invalid(`cannot listen on ${socket}: directory ${dir} does not exist; create it or choose another ${setting}`);
    throw invalid(`cannot listen on ${socket}: cannot use directory ${dir} (${errnoCode(e) ?? String(e)}); choose another ${setting}`);
  }
  let existing;
  try {
    existing = await lstat(socket);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw invalid(`cannot listen on ${socket}: ${errnoCode(e) ?? String(e)}`);
  }
  if (!existing.isSocket()) throw invalid(`cannot listen on ${socket}: it exists and is not a socket; remove it or choose another ${setting}`);
  if (await answers(socket)) throw inUse(socket, setting);
  await unlink(socket).catch((e: unknown) => {
    if (errnoCode(e) !== 'ENOENT') throw invalid(`cannot remove the stale socket ${socket}: ${errnoCode(e) ?? String(e)}`);
  });
}

/** Whether something accepts connections on a socket file (a live server, not a leftover). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

const inUse = (socket: string, setting: string): WeftError => new WeftError('WEFT_NOT_READY',
  `cannot listen on ${socket}: another weft agent or cni-server is already serving it${socket.startsWith('@') ? ' in this network namespace' : ''}; stop that one, or choose another ${setting}`);

function listenError(socket: string, setting: string, e: unknown): WeftError {
  const code = errnoCode(e);
  if (code === 'EADDRINUSE') return inUse(socket, setting);
  if (code === 'ENOENT') return invalid(`cannot listen on ${socket}: directory ${dirname(socket)} does not exist; create it or choose another ${setting}`);
  if (code === 'EACCES' || code === 'EPERM') return invalid(`cannot listen on ${socket}: permission denied; run as root or choose another ${setting}`);
  return new WeftError('WEFT_IO', `cannot listen on ${socket}: ${code ?? String(e)}`, { cause: e });
}
