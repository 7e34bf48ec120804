// What the agent reports about itself: served as JSON on a unix socket only root can open
// (`weft status` reads it), and as flanneld-style /healthz and /readyz over TCP when
// --healthz-port is set.
import { createServer, request, type Server } from 'node:http';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';
import type { Problem } from './problems.ts';
import type { ReadinessView, Phase } from './readiness.ts';

/** A status answer bigger than this is not ours: refuse it rather than buffer it. */
const MAX_STATUS_BYTES = 8 << 20;

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
  store: { kind: string; endpoints: string[]; prefix: string };
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
}

export async function startStatusServer(path: string, status: () => AgentStatus): Promise<Server> {
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
    req.on('error', (e) => {
      const why = errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ECONNREFUSED'
        ? 'no agent is listening there; is `weft agent` running on this node?'
        : errnoCode(e) === 'EACCES' ? 'permission denied: the status socket is for root only' : e.message;
      reject(new WeftError('WEFT_NOT_READY', `cannot read the agent's status from ${path}: ${why}`, { cause: e }));
    });
    req.end();
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
      const body = view.ready ? 'weft is ready\n' : `weft is not ready (${view.phase}): ${view.reasons.join('; ')}\n`;
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
