// What the agent reports about itself: served as JSON on a unix socket only root can open
// (`weft status` reads it), and as flanneld-style /healthz and /readyz over TCP when
// --healthz-port is set.
import { createServer, request, type Server } from 'node:http';
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';

export interface PeerStatus {
  subnet: string;
  publicIp: string;
  backendType: string;
  /** How traffic reaches it: a direct route, the vxlan device, or not at all (with why). */
  path: 'direct' | 'vxlan' | 'unreachable';
  error?: string;
}

export interface AgentStatus {
  node: string;
  mode: 'etcd';
  ready: boolean;
  publicIp: string | null;
  interface: string | null;
  backend: string | null;
  store: { kind: string; endpoints: string[]; prefix: string };
  lease: { subnet: string; expiresAt: string | null; reservation: boolean } | null;
  mtu: number | null;
  peers: PeerStatus[];
  lastSync: string | null;
  errors: { at: string; message: string }[];
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
      res.on('data', (d: string) => (body += d));
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

/** flanneld's endpoints: /healthz once running, /readyz once the node is programmed. */
export async function startHealthz(ip: string, port: number, ready: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') res.writeHead(200).end('weft is running\n');
    else if (req.url === '/readyz') {
      if (ready()) res.writeHead(200).end('weft is ready\n');
      else res.writeHead(503).end('weft is not ready yet\n');
    } else res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, ip, () => resolve());
  });
  return server;
}
