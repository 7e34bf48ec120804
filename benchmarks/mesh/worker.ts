// One process of the bench:mesh harness (see run.ts): it hosts some MeshNodes on 127.0.0.1, does
// for each what the mesh-mode agent does around its node (announce; ask for blocks while it has a
// ring but none; activate its first block), and reports what each peer sees whenever that
// changes, with this process's clock. It takes orders from the coordinator over the fork IPC
// channel. The same file is the "single peer" child of the memory measurement: one peer, nothing
// else loaded but the mesh node and the logger.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createLogger } from '../../src/log/logger.ts';
import { INITIAL_WANT, MeshNode, type IpallocInit, type MeshTiming } from '../../src/mesh/node.ts';
import { MeshConnection } from '../../src/mesh/wire/channel.ts';
import type { LogCounts, PeerSpec, PeerView, ToCoordinator, ToWorker, WorkerStats } from './protocol.ts';

const send = (m: ToCoordinator): void => void process.send!(m);

interface Hosted {
  spec: PeerSpec;
  node: MeshNode;
  activated: boolean;
  last: string;
}

const hosted: Hosted[] = [];
const dirty = new Set<Hosted>();
let batch: NodeJS.Timeout | undefined;
let reporting = true;
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

// Log lines are counted by level and message (the peer and address fields dropped), so a storm of
// reconnects or refusals shows up in the report without printing anything.
const logCounts: LogCounts = {};
const log = createLogger({
  name: 'bench-mesh', level: 'info', format: 'json',
  destination: {
    write(line: string): void {
      try {
        const e = JSON.parse(line) as { level?: number; msg?: string; why?: string; reason?: string };
        const level = e.level === 30 ? 'info' : e.level === 40 ? 'warn' : e.level && e.level >= 50 ? 'error' : 'other';
        const msg = String(e.msg ?? '').replace(/\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b/g, '<peer>').replace(/\d+\.\d+\.\d+\.\d+(:\d+)?/g, '<addr>').replace(/\b\d+\b/g, '<n>').slice(0, 160);
        const why = e.why ?? e.reason;
        const key = `${level}: ${msg}${why ? ` (${String(why).replace(/\d+\.\d+\.\d+\.\d+(:\d+)?/g, '<addr>').slice(0, 100)})` : ''}`;
        logCounts[key] = (logCounts[key] ?? 0) + 1;
      } catch {
        logCounts['unparsed log line'] = (logCounts['unparsed log line'] ?? 0) + 1;
      }
    },
  },
});

// What the nodes send, by message kind, and what the channels refused: measured by wrapping the
// channel's send() (the node's own traffic() has only totals). Also every channel used, so the
// bytes on the wire (framing and keepalives included) can be summed.
const byKind: WorkerStats['byKind'] = {};
let refusedSends = 0;
const channels = new Set<MeshConnection>();
// Only the head of a message is looked at (its first keys), so the counting stays cheap even for
// messages of hundreds of kilobytes: a state message's records come first, its blocks after.
const HEAD_BYTES = 48;
function kindOf(message: Uint8Array): string {
  const head = Buffer.from(message.buffer, message.byteOffset, Math.min(message.byteLength, HEAD_BYTES)).toString('latin1');
  if (head.includes('"t":"digest"')) return 'digest';
  if (head.includes('"t":"vector"')) return 'vector';
  if (head.includes('"records":')) return 'state: records';
  if (head.includes('"ring":') || head.includes('"runs":')) return 'state: blocks';
  return 'state: other';
}
const originalSend = MeshConnection.prototype.send;
MeshConnection.prototype.send = function send(this: MeshConnection, message: Uint8Array): boolean {
  channels.add(this);
  const k = kindOf(message);
  const e = (byKind[k] ??= { messages: 0, bytes: 0, max: 0 });
  e.messages++;
  e.bytes += message.byteLength;
  e.max = Math.max(e.max, message.byteLength);
  const ok = originalSend.call(this, message);
  if (!ok) refusedSends++;
  return ok;
};

function wireBytesOut(): number {
  let n = 0;
  for (const ch of channels) n += ch.stats().bytesOut;
  return n;
}

function shortHash(items: readonly string[]): string {
  return createHash('sha256').update([...items].sort().join(',')).digest('hex').slice(0, 16);
}

/** What this peer sees now: cheap enough to compute on every change (no per-record block scans). */
function view(h: Hosted): PeerView {
  const n = h.node;
  const st = n.status();
  const names = st.peers.map((p) => p.name);
  const owners = n.map ? [...n.map.owners().keys()].filter((o): o is string => o !== null) : [];
  return {
    idx: h.spec.idx, name: n.name, t: Date.now(), ring: n.ring?.id ?? null, owned: st.ipam.blocksOwned, wants: n.wants,
    digest: n.map?.digest() ?? null, names: shortHash(names), nameCount: names.length, owners: shortHash(owners), ownerCount: owners.length,
    reachable: st.peers.filter((p) => p.reachable).length, connections: st.connections.filter((c) => c.state === 'established').length,
  };
}

/** The agent's part (MeshControlPlane.acquire): ask for blocks while the ring gave none; keep the first block. */
function agentStep(h: Hosted): void {
  const n = h.node;
  if (!n.ring) return;
  const owned = n.ownBlocks();
  if (owned.length === 0) {
    if (n.wants === 0) n.requestBlocks(INITIAL_WANT);
    return;
  }
  if (!h.activated) {
    h.activated = true;
    n.activate(n.activeBlocks()[0] ?? owned[0]!);
  }
}

function flush(): void {
  batch = undefined;
  const views: PeerView[] = [];
  for (const h of dirty) {
    agentStep(h);
    if (!reporting) continue;
    const v = view(h);
    const key = JSON.stringify({ ...v, t: 0 });
    if (key === h.last) continue;
    h.last = key;
    views.push(v);
  }
  dirty.clear();
  if (views.length > 0) send({ op: 'views', views });
}

function markDirty(h: Hosted): void {
  dirty.add(h);
  batch ??= setTimeout(flush, 20);
}

async function startPeer(spec: PeerSpec, o: { universe: string; blockPrefix: number; init: IpallocInit; timing: Partial<MeshTiming>; connLimit: number; psk: string | null }): Promise<number> {
  const node = new MeshNode({
    dir: spec.dir, nickname: `p${spec.idx}`, ...(spec.name ? { name: spec.name } : {}), listenHost: '127.0.0.1', port: spec.port,
    targets: spec.targets.map((port) => ({ host: '127.0.0.1', port })), psks: o.psk ? [Buffer.from(o.psk, 'hex')] : null,
    universe: o.universe, blockPrefix: o.blockPrefix, init: o.init, connLimit: o.connLimit, version: 'bench', log, timing: o.timing,
  });
  const h: Hosted = { spec, node, activated: false, last: '' };
  hosted.push(h);
  const t = Date.now();
  await node.start();
  node.onChange(() => markDirty(h));
  const hex = (x: number): string => (x & 255).toString(16).padStart(2, '0');
  node.announce({ publicIp: '127.0.0.1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: `02:00:00:${hex(spec.idx >> 16)}:${hex(spec.idx >> 8)}:${hex(spec.idx)}` } });
  markDirty(h);
  return t;
}

// Peers the agent loop looks at even when nothing changed (MeshControlPlane polls once a second too).
setInterval(() => {
  for (const h of hosted) markDirty(h);
}, 1000).unref();

function stats(): WorkerStats {
  const m = process.memoryUsage();
  const c = process.cpuUsage();
  return {
    rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers,
    cpuMs: (c.user + c.system) / 1000, loopMaxMs: loop.max / 1e6, loopP99Ms: loop.percentile(99) / 1e6, loopMeanMs: loop.mean / 1e6,
    traffic: hosted.map((h) => ({ idx: h.spec.idx, ...h.node.traffic() })), logs: { ...logCounts }, peers: hosted.length,
    byKind: structuredClone(byKind), refusedSends, wireBytesOut: wireBytesOut(), channels: channels.size,
  };
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.op) {
    case 'start': {
      const started = await Promise.all(m.peers.map((p) => startPeer(p, m)));
      send({ op: 'started', at: Math.min(...started), names: hosted.slice(-m.peers.length).map((h) => ({ idx: h.spec.idx, name: h.node.name, port: h.node.port })) });
      return;
    }
    case 'stats':
      // A full collection first when asked (the process runs with --expose-gc): live heap, not garbage.
      if (m.gc) (globalThis as { gc?: () => void }).gc?.();
      send({ op: 'stats', ...stats() });
      return;
    case 'reset-loop':
      loop.reset();
      return;
    case 'verify': {
      // The full check, once: dataPlanePeers() scans the block map per record, too costly to poll.
      const peers = hosted.map((h) => {
        const dp = h.node.dataPlanePeers();
        return { idx: h.spec.idx, name: h.node.name, dataPlanePeers: dp.peers.length, rejected: dp.rejected.length, digest: h.node.map?.digest() ?? null, owned: h.node.ownBlocks().length, conflicts: h.node.conflicts, ringConflicts: h.node.ringConflicts().length };
      });
      send({ op: 'verified', peers });
      return;
    }
    case 'stop': {
      reporting = false;
      await Promise.all(hosted.map((h) => h.node.stop()));
      for (const h of hosted) rmSync(join(h.spec.dir), { recursive: true, force: true });
      send({ op: 'stopped' });
      process.disconnect();
      return;
    }
  }
}

process.on('message', (m: ToWorker) => {
  handle(m).catch((e: Error) => send({ op: 'error', message: e.stack ?? e.message }));
});
process.on('uncaughtException', (e) => {
  send({ op: 'error', message: `uncaught: ${e.stack ?? e.message}` });
});
send({ op: 'ready', ...stats() });
