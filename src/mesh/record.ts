// A peer's record: everything the mesh says about one peer, written only by that peer and
// versioned (incarnation, seq). The incarnation is bumped on every start, the seq on every
// change, so the newer record always wins a merge, whatever order copies arrive in. Records
// come from other peers and are untrusted: each one is validated on its own, and a bad one is
// refused without touching the rest.
import * as v from 'valibot';
import { PEER_NAME } from './identity.ts';

export interface Ballot {
  round: number;
  proposer: string;
}

export interface PaxosState {
  promise: Ballot | null;
  accepted: { ballot: Ballot; value: string[] } | null;
}

export interface PeerRecord {
  name: string;
  uid: string;
  nickname: string;
  incarnation: number;
  seq: number;
  /** Where its control plane listens ("10.0.0.2:6783"). */
  addr: string;
  /** The data plane: where to send its pods' packets, and the backend's own data (a VTEP MAC). */
  publicIp: string;
  backendType: string;
  backendData: unknown;
  /** The IPAM ring it belongs to, null before seeding. */
  ring: string | null;
  /** Whether it votes in the first seeding (IPALLOC_INIT consensus). */
  elector: boolean;
  paxos: PaxosState | null;
  /** Blocks it owns, and how many of those are free (not in use): donors are picked by this. */
  owned: number;
  free: number;
  /** Blocks it asks for; 0 when it has enough. */
  wants: number;
  /** It handed its blocks back and left the mesh. */
  left: boolean;
  /** Bumped periodically; propagates lazily, by anti-entropy, to tell the living from the dead. */
  heartbeat: number;
}

/** A record with a Paxos value names every seed (≈ 20 bytes each); after seeding it is a few hundred bytes. */
export const MAX_RECORD_BYTES = 64 * 1024;
export const MAX_BACKEND_DATA_BYTES = 1024;
export const MAX_SEED_NAMES = 4096;

const int = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
const name = v.pipe(v.string(), v.regex(PEER_NAME));
const ballot = v.object({ round: int, proposer: name });
const recordSchema = v.object({
  name,
  uid: v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/)),
  nickname: v.pipe(v.string(), v.maxLength(63), v.regex(/^[\x20-\x7e]*$/)),
  incarnation: int,
  seq: int,
  addr: v.pipe(v.string(), v.regex(/^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/)),
  publicIp: v.pipe(v.string(), v.maxLength(45)),
  backendType: v.pipe(v.string(), v.regex(/^[a-z0-9-]{0,32}$/)),
  backendData: v.unknown(),
  ring: v.nullable(v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/))),
  elector: v.boolean(),
  paxos: v.nullable(v.object({
    promise: v.nullable(ballot),
    accepted: v.nullable(v.object({ ballot, value: v.pipe(v.array(name), v.minLength(1), v.maxLength(MAX_SEED_NAMES)) })),
  })),
  owned: int,
  free: int,
  wants: v.pipe(int, v.maxValue(1024)),
  left: v.boolean(),
  heartbeat: int,
});

/** A record from the wire, or why it is refused. */
export function parseRecord(raw: unknown): { record: PeerRecord } | { error: string } {
  const r = v.safeParse(recordSchema, raw);
  if (!r.success) {
    const issue = r.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    return { error: `malformed peer record${path ? ` (${path})` : ''}: ${issue.message}` };
  }
  const record = r.output as PeerRecord;
  const size = JSON.stringify(record).length;
  if (size > MAX_RECORD_BYTES) return { error: `the record is ${size} bytes, over the ${MAX_RECORD_BYTES}-byte bound` };
  const data = JSON.stringify(record.backendData ?? null);
  if (data.length > MAX_BACKEND_DATA_BYTES) return { error: `its backend data is ${data.length} bytes, over the ${MAX_BACKEND_DATA_BYTES}-byte bound` };
  const port = Number(record.addr.split(':')[1]);
  if (port < 1 || port > 65535) return { error: `control address ${record.addr} has no valid port` };
  return { record };
}

/** >0 when a is newer than b. */
export function compareVersions(a: { incarnation: number; seq: number }, b: { incarnation: number; seq: number }): number {
  return a.incarnation - b.incarnation || a.seq - b.seq;
}

export function compareBallots(a: Ballot | null, b: Ballot | null): number {
  if (!a || !b) return a ? 1 : b ? -1 : 0;
  return a.round - b.round || (a.proposer < b.proposer ? -1 : a.proposer > b.proposer ? 1 : 0);
}

export function sameBallot(a: Ballot | null | undefined, b: Ballot | null | undefined): boolean {
  return !!a && !!b && a.round === b.round && a.proposer === b.proposer;
}
