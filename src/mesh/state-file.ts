// The mesh's memory across restarts (<mesh-dir>/state.json): the ring and block map, this
// peer's Paxos vote (Paxos is only safe if a vote survives a crash), the blocks that hold pods
// (never given away), the incarnation and the last announcement (to keep the VTEP MAC). It is
// written atomically before anything that depends on it is told to others. State from another
// identity or another range is set aside, not used: it describes a different address plan.
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import * as v from 'valibot';
import type { Logger } from '../log/logger.ts';
import { writeFileAtomic } from './atomic-file.ts';
import type { RingInfo } from './messages.ts';
import type { PaxosState } from './record.ts';

export interface PersistedMesh {
  format: 1;
  name: string;
  incarnation: number;
  universe: string;
  blockPrefix: number;
  ring: RingInfo | null;
  /** Block-map runs, validated again by the block map on load. */
  runs: unknown[];
  paxos: PaxosState | null;
  active: number[];
  announcement: { publicIp: string; backendType: string; backendData: unknown } | null;
}

const MAX_STATE_BYTES = 16 * 1024 * 1024;
const int = v.pipe(v.number(), v.integer(), v.minValue(0));
const schema = v.object({
  format: v.literal(1),
  name: v.string(),
  incarnation: int,
  universe: v.string(),
  blockPrefix: int,
  ring: v.nullable(v.object({ id: v.string(), seeds: v.array(v.string()) })),
  runs: v.array(v.unknown()),
  paxos: v.nullable(v.any()),
  active: v.array(int),
  announcement: v.nullable(v.object({ publicIp: v.string(), backendType: v.string(), backendData: v.unknown() })),
});

export function stateFile(dir: string): string {
  return join(dir, 'state.json');
}

/** The saved state if it is ours and for this range; otherwise undefined (a mismatching file is moved aside). */
export function loadMeshState(dir: string, expect: { name: string; universe: string; blockPrefix: number }, log: Logger): PersistedMesh | undefined {
  const file = stateFile(dir);
  if (!existsSync(file)) return undefined;
  const setAside = (why: string): undefined => {
    const aside = `${file}.${Date.now()}.discarded`;
    renameSync(file, aside);
    log.warn({ file, aside, why }, `mesh state set aside: ${why}`);
    return undefined;
  };
  const text = readFileSync(file, 'utf8');
  if (text.length > MAX_STATE_BYTES) return setAside(`it is over ${MAX_STATE_BYTES} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return setAside('it is not JSON');
  }
  const r = v.safeParse(schema, raw);
  if (!r.success) return setAside(`it is malformed (${r.issues[0].message})`);
  const s = r.output as PersistedMesh;
  if (s.name !== expect.name) return setAside(`it belongs to peer ${s.name}, not ${expect.name}`);
  if (s.universe !== expect.universe || s.blockPrefix !== expect.blockPrefix) {
    return setAside(`it is for the range ${s.universe} in /${s.blockPrefix} blocks, and this node now uses ${expect.universe} in /${expect.blockPrefix}`);
  }
  return s;
}

export function saveMeshState(dir: string, state: PersistedMesh): void {
  writeFileAtomic(stateFile(dir), JSON.stringify(state));
}
