// The gossip messages, JSON inside the channel's frames (the frame bounds the size):
// - state:  records and/or block-map runs, as a delta (what changed) or in full (on connect,
//           in chunks; the last carries the sender's map digest, so a receiver that then
//           differs knows it holds something the sender lacks and sends it back);
// - digest: hashes of this peer's records and block map, sent to one neighbour now and then;
// - vector: every record's version, sent back when the record hashes differ, so each side
//           sends the other only the records it lacks (anti-entropy that costs the difference).
// Only the outer shape is checked here; records and runs are validated one by one by their
// owners (record.ts, the block map), so one bad entry is refused without the rest.
import * as v from 'valibot';
import { WeftError } from '../errors.ts';

export interface RingInfo {
  id: string;
  /** The seeding value (sorted peer names) the ring was built from. */
  seeds: string[];
}

export type MeshMessage =
  | { t: 'state'; records?: unknown[]; ring?: RingInfo; runs?: unknown[]; digest?: string }
  | { t: 'digest'; records: string; blocks: string | null; ring: string | null }
  | { t: 'vector'; versions: [string, number, number][]; reply: boolean };

export const MAX_RECORDS_PER_MESSAGE = 4096;
export const MAX_RUNS_PER_MESSAGE = 65536;

const hex = v.pipe(v.string(), v.regex(/^[0-9a-f]{1,64}$/));
const schema = v.variant('t', [
  v.object({
    t: v.literal('state'),
    records: v.optional(v.pipe(v.array(v.unknown()), v.maxLength(MAX_RECORDS_PER_MESSAGE))),
    ring: v.optional(v.object({ id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)), seeds: v.pipe(v.array(v.pipe(v.string(), v.maxLength(63))), v.minLength(1), v.maxLength(4096)) })),
    runs: v.optional(v.pipe(v.array(v.unknown()), v.maxLength(MAX_RUNS_PER_MESSAGE))),
    digest: v.optional(hex),
  }),
  v.object({ t: v.literal('digest'), records: hex, blocks: v.nullable(hex), ring: v.nullable(hex) }),
  v.object({
    t: v.literal('vector'),
    versions: v.pipe(v.array(v.tuple([v.pipe(v.string(), v.maxLength(63)), v.number(), v.number()])), v.maxLength(MAX_RECORDS_PER_MESSAGE)),
    reply: v.boolean(),
  }),
]);

export function encodeMessage(m: MeshMessage): Buffer {
  return Buffer.from(JSON.stringify(m));
}

export function decodeMessage(bytes: Buffer): MeshMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new WeftError('WEFT_DECODE', 'a mesh message is not JSON');
  }
  const r = v.safeParse(schema, raw);
  if (!r.success) {
    const issue = r.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
    throw new WeftError('WEFT_DECODE', `a malformed mesh message${path ? ` (${path})` : ''}: ${issue.message}`);
  }
  return r.output as MeshMessage;
}
