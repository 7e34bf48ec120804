// What the agent reports about itself: served as JSON on a unix socket only root can open
// (`weft status` reads it), and as flanneld-style /healthz and /readyz over TCP when
// --healthz-port is set. The same socket takes the operator's commands (`weft rmpeer`) as
// POST /command/<name>, when the mode has any.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';
import type { Problem } from './problems.ts';
import type { ReadinessView, Phase } from './readiness.ts';
import type { FastPathStatus } from '../fastpath/manager.ts';

/** A status answer bigger than this is not ours: refuse it rather than buffer it. */
const MAX_STATUS_BYTES = 8 << 20;
/** A command's JSON body: a peer's name is a few bytes; anything near this is not a command. */
export const MAX_COMMAND_BYTES = 16 << 10;
/** A command's answer is small too. */
const MAX_ANSWER_BYTES = 1 << 20;
/** Commands may wait on the mesh (a reclaim spreads by gossip): longer than a status read. */
const COMMAND_TIMEOUT_MS = 30_000;
const COMMAND_PATH = /^\/command\/([a-z][a-z0-9-]{0,62})$/;

export interface PeerStatus {
  /** The peer's identity in its control plane (etcd mode: its lease key). */
  id: string;
  /** Its first pod CIDR (the only one in etcd mode). */
  subnet: string;
  subnets: string[];
  publicIp: string;
  backendType: string;
  /** How traffic reaches it: a direct route, the vxlan device, or not at all (with why). */
  path: 'direct' | 'vxlan' | 'unreachable';
  error?: string;
}

/** Something on this node that is not weft's and is in its way (another CNI's leftover), with the commands that remove it. */
export interface NodeWarning {
  key: string;
  /** blocks-pods: pods here do not get weft's network (also a readiness reason); leftover: in the way, not yet harmful. */
  severity: 'blocks-pods' | 'leftover';
  message: string;
  fix: string[];
}

export interface AgentStatus {
  node: string;
  mode: string;
  phase: Phase;
  /** This node can start pods and reach its peers; `reasons` says why not. */
  ready: boolean;
  reasons: string[];
  publicIp: string | null;
  interface: string | null;
  backend: string | null;
  /** details: the mode's own report (mesh mode: `{ mesh: MeshStatus }`), rendered by the CLI. */
  store: { kind: string; endpoints: string[]; prefix: string; details?: unknown; summary?: string };
  lease: { subnet: string; subnets: string[]; expiresAt: string | null; reservation: boolean; held: boolean } | null;
  network: string | null;
  mtu: number | null;
  peers: PeerStatus[];
  /** Peer announcements refused as invalid, with why (the first 100). */
  rejected: { key: string; reason: string }[];
  rejectedCount: number;
  lastSync: string | null;
  /** One entry per distinct problem, most recently seen first. */
  errors: Problem[];
  /** What is in the way on this node now (src/agent/leftovers.ts); absent when nothing checks. */
  warnings?: NodeWarning[];
  /** The tc-eBPF fast path (--fast-path ebpf): whether it runs, why not, its counters; absent when not asked for. */
  fastPath?: FastPathStatus;
  /** What does not stop pods but should be known (the fast path fell back to the normal path). */
  notes?: string[];
}

/**
 * Runs an operator command: its answer is JSON; it rejects with a WeftError (answered 400 with
 * the message) when the request cannot be done, with an UnknownCommandError (404) for a name it
 * does not know, and with anything else for a failure of its own (500).
 */
export type CommandHandler = (name: string, body: unknown) => Promise<unknown>;

export class UnknownCommandError extends WeftError {
  constructor(name: string) {
    super('WEFT_INVALID_CONFIG', `the agent has no command ${JSON.stringify(name)}`);
    this.name = 'UnknownCommandError';
  }
}

/** A CommandHandler from one function per command name; other names are unknown commands. */
export function commandTable(handlers: Readonly<Record<string, (body: unknown) => Promise<unknown>>>): CommandHandler {
  return (name, body) => Object.hasOwn(handlers, name) ? handlers[name]!(body) : Promise.reject(new UnknownCommandError(name));
}

function answer(res: ServerResponse, code: number, value: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(value)}\n`; // first: it throws on a value that is not JSON
  res.writeHead(code, { 'content-type': 'application/json', ...headers }).end(text);
}

/** The request body up to MAX_COMMAND_BYTES, or undefined (then a 413 went out) when it is bigger. */
function readCommandBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer | undefined> {
  const tooBig = (): void => {
    // Drain what is still coming without keeping it, so the client reads our answer instead of a reset.
    req.resume();
    answer(res, 413, { error: `a command body is at most ${MAX_COMMAND_BYTES} bytes` }, { connection: 'close' });
  };
  return new Promise((resolve) => {
    if (Number(req.headers['content-length'] ?? 0) > MAX_COMMAND_BYTES) {
      tooBig();
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_COMMAND_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData);
      tooBig();
      resolve(undefined);
    };
    req.on('data', onData);
    req.on('end', () => resolve(size <= MAX_COMMAND_BYTES ? Buffer.concat(chunks) : undefined));
    req.on('error', () => resolve(undefined));
  });
}

async function serveCommand(req: IncomingMessage, res: ServerResponse, url: string, commands: CommandHandler | undefined): Promise<void> {
  if (!commands) {
    answer(res, 404, { error: 'this agent takes no commands' });
    return;
  }
  if (req.method !== 'POST') {
    answer(res, 405, { error: 'commands are POSTed' }, { allow: 'POST' });
    return;
  }
  const name = COMMAND_PATH.exec(url)?.[1];
  if (name === undefined) {
    answer(res, 404, { error: 'a command name is lower-case letters, digits and dashes' });
    return;
  }
  const raw = await readCommandBody(req, res);
  if (raw === undefined) return;
  let body: unknown = null;
  try {
    if (raw.length > 0) body = JSON.parse(raw.toString('utf8'));
  } catch {
    answer(res, 400, { error: 'the command body is not JSON' });
    return;
  }
  let result: unknown;
  try {
    result = await commands(name, body);
  } catch (e) {
    if (e instanceof UnknownCommandError) answer(res, 404, { error: e.message });
    else if (e instanceof WeftError) answer(res, 400, { error: e.message });
    else answer(res, 500, { error: `${name} failed inside the agent: ${e instanceof Error ? e.message : String(e)}` });
    return;
  }
  try {
    answer(res, 200, result ?? null);
  } catch (e) {
    answer(res, 500, { error: `${name} answered something that is not JSON: ${e instanceof Error ? e.message : String(e)}` });
  }
}

export async function startStatusServer(path: string, status: () => AgentStatus, commands?: CommandHandler): Promise<Server> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    unlinkSync(path); // left by a previous run
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
  const server = createServer((req, res) => {
    if (req.url === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status()));
    } else if (req.url?.startsWith('/command/')) {
      serveCommand(req, res, req.url, commands).catch((e: unknown) => answer(res, 500, { error: `the command failed: ${String(e)}` }));
    } else {
      res.writeHead(404).end();
    }
  });
  // Root only, but still bounded: a stuck client must not hold a connection forever.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

export function fetchStatus(path: string): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, path: '/status', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.length > MAX_STATUS_BYTES) req.destroy(new Error(`the answer is over ${MAX_STATUS_BYTES} bytes`));
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as AgentStatus);
        } catch {
          reject(new WeftError('WEFT_DECODE', `the agent at ${path} answered something that is not status JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => reject(new WeftError('WEFT_NOT_READY', `cannot read the agent's status from ${path}: ${socketTrouble(e)}`, { cause: e })));
    req.end();
  });
}

/** Why the status socket cannot be used, in the operator's terms. */
function socketTrouble(e: Error): string {
  return errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ECONNREFUSED'
    ? 'no agent is listening there; is `weft agent` running on this node?'
    : errnoCode(e) === 'EACCES' ? 'permission denied: the status socket is for root only' : e.message;
}

/** The agent's answer to a command: the HTTP status and the JSON body (a result, or {error}). */
export interface CommandAnswer {
  status: number;
  body: unknown;
}

/** POSTs a command to the agent's status socket. Rejects only when there is no answer, or one that is not JSON. */
export function postCommand(path: string, name: string, body: unknown): Promise<CommandAnswer> {
  const payload = Buffer.from(JSON.stringify(body ?? null));
  if (payload.length > MAX_COMMAND_BYTES) {
    return Promise.reject(new WeftError('WEFT_INVALID_CONFIG', `the ${name} request is ${payload.length} bytes; the agent takes at most ${MAX_COMMAND_BYTES}`));
  }
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath: path, path: `/command/${encodeURIComponent(name)}`, method: 'POST', timeout: COMMAND_TIMEOUT_MS,
      headers: { 'content-type': 'application/json', 'content-length': payload.length },
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`the answer is over ${MAX_ANSWER_BYTES} bytes`));
        else chunks.push(d);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: text.trim() === '' ? null : JSON.parse(text) });
        } catch {
          reject(new WeftError('WEFT_DECODE', `the agent at ${path} answered ${name} with something that is not JSON (HTTP ${res.statusCode})`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${COMMAND_TIMEOUT_MS / 1000}s`)));
    req.on('error', (e) => reject(new WeftError('WEFT_NOT_READY', `cannot send ${name} to the agent at ${path}: ${socketTrouble(e)}`, { cause: e })));
    req.end(payload);
  });
}

export interface HealthSources {
  readiness: () => ReadinessView;
  /** Prometheus exposition for /metrics. */
  metrics?: { text(): Promise<string>; readonly contentType: string };
}

/**
 * flanneld's endpoints, plus /metrics: /healthz while the process runs (from the first second,
 * also while it waits for its store), /readyz once the node can start pods and reach its peers,
 * with the phase and the reasons in the body either way.
 */
export async function startHealthz(ip: string, port: number, sources: HealthSources): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`weft is running (${sources.readiness().phase})\n`);
    } else if (path === '/readyz') {
      const view = sources.readiness();
      const notes = (view.notes ?? []).map((n) => `note: ${n}\n`).join('');
      const body = `${view.ready ? 'weft is ready\n' : `weft is not ready (${view.phase}): ${view.reasons.join('; ')}\n`}${notes}`;
      res.writeHead(view.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
    } else if (path === '/metrics' && sources.metrics) {
      const m = sources.metrics;
      m.text().then((text) => res.writeHead(200, { 'content-type': m.contentType }).end(text), () => res.writeHead(500).end());
    } else res.writeHead(404).end();
  });
  // Probes are tiny: nobody gets to hold a connection open or send a big request.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.maxHeadersCount = 50;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return server;
}
