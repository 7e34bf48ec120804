// The messages between bench:mesh's coordinator (run.ts) and its worker processes (worker.ts).
import type { IpallocInit, MeshTiming } from '../../src/mesh/node.ts';

export interface PeerSpec {
  idx: number;
  port: number;
  /** Bootstrap targets: ports of a few other peers on 127.0.0.1. */
  targets: number[];
  dir: string;
  /** A fixed peer name (a seed list must name the peers beforehand); else a random one. */
  name?: string;
}

/** What one peer sees, sent whenever it changes (t: the worker's Date.now()). */
export interface PeerView {
  idx: number;
  name: string;
  t: number;
  ring: string | null;
  owned: number;
  wants: number;
  digest: string | null;
  /** Hash and count of the peer names it has records of (itself included). */
  names: string;
  nameCount: number;
  /** Hash and count of the owners in its block map. */
  owners: string;
  ownerCount: number;
  reachable: number;
  connections: number;
}

export type LogCounts = Record<string, number>;

export interface WorkerStats {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  cpuMs: number;
  loopMaxMs: number;
  loopP99Ms: number;
  loopMeanMs: number;
  traffic: { idx: number; bytesIn: number; bytesOut: number; messagesIn: number; messagesOut: number }[];
  logs: LogCounts;
  peers: number;
  /** Messages and bytes sent by kind (digest, vector, state with records and/or blocks). */
  byKind: Record<string, { messages: number; bytes: number; max: number }>;
  /** send() calls a channel refused (closed, or over its queue bound). */
  refusedSends: number;
  /** Bytes the channels wrote, framing and keepalives included. */
  wireBytesOut: number;
  channels: number;
}

export interface VerifiedPeer {
  idx: number;
  name: string;
  dataPlanePeers: number;
  rejected: number;
  digest: string | null;
  owned: number;
  conflicts: number;
  ringConflicts: number;
}

export type ToWorker =
  | { op: 'start'; peers: PeerSpec[]; universe: string; blockPrefix: number; init: IpallocInit; timing: Partial<MeshTiming>; connLimit: number; psk: string | null }
  | { op: 'stats'; gc?: boolean }
  | { op: 'reset-loop' }
  | { op: 'verify' }
  | { op: 'stop' };

export type ToCoordinator =
  | ({ op: 'ready' } & WorkerStats)
  | ({ op: 'stats' } & WorkerStats)
  | { op: 'started'; at: number; names: { idx: number; name: string; port: number }[] }
  | { op: 'views'; views: PeerView[] }
  | { op: 'verified'; peers: VerifiedPeer[] }
  | { op: 'stopped' }
  | { op: 'error'; message: string };
