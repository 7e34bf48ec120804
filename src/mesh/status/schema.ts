// Checks for what crosses the status socket in mesh mode: the MeshStatus inside the agent's
// status answer (read by `weft status`), and rmpeer's request and answer. Loose on purpose:
// fields this version does not know are kept, not refused, so a newer agent's answer still
// renders; the fields the renderer uses must have the right types, so a malformed answer is
// one clear error instead of a crash halfway through a table.
import * as v from 'valibot';
import { WeftError } from '../../errors.ts';
import type { MeshStatus, RmpeerAnswer } from './types.ts';

const text = v.string();
const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const direction = v.picklist(['outbound', 'inbound']);
const peerRef = v.looseObject({ name: text, nickname: text });

const connection = v.looseObject({
  direction,
  address: text,
  state: v.picklist(['established', 'pending', 'retrying', 'failed', 'connecting']),
  peer: v.optional(peerRef),
  encrypted: v.optional(v.boolean()),
  info: v.optional(text),
  retry: v.optional(v.nullable(text)),
  attrs: v.optional(v.record(text, text)),
});

const peer = v.looseObject({
  name: text,
  nickname: text,
  self: v.boolean(),
  reachable: v.boolean(),
  connections: v.array(v.looseObject({ direction, address: text, peer: peerRef, state: v.picklist(['established', 'pending']) })),
});

const owner = v.looseObject({
  name: text,
  nickname: text,
  addresses: count,
  self: v.boolean(),
  reachable: v.boolean(),
  active: v.optional(count),
});

const meshStatus = v.looseObject({
  version: text,
  protocol: v.looseObject({ min: count, max: count }),
  name: text,
  nickname: text,
  encryption: v.boolean(),
  peerDiscovery: v.boolean(),
  targets: v.array(text),
  connections: v.array(connection),
  peers: v.array(peer),
  trustedSubnets: v.array(text),
  ipam: v.looseObject({
    status: text,
    range: text,
    defaultSubnet: text,
    blockPrefix: v.pipe(count, v.maxValue(32)),
    ringId: v.nullable(text),
    owners: v.array(owner),
    blocksOwned: count,
    blocksFree: count,
  }),
  dataPlaneEncrypted: v.literal(false),
});

/** A peer to remove, by name or nickname (a hostname is at most 253 characters). */
const rmpeerRequest = v.looseObject({ peer: v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(253)) });
const rmpeerAnswer = v.looseObject({ addresses: count, peer: text });

function firstIssue(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  return `${path ? `${path}: ` : ''}${issue.message}`;
}

/** The agent's store.details.mesh, checked; throws WEFT_DECODE naming the first bad field. */
export function parseMeshStatus(raw: unknown): MeshStatus {
  const r = v.safeParse(meshStatus, raw);
  if (!r.success) throw new WeftError('WEFT_DECODE', `the agent's mesh status is malformed (${firstIssue(r.issues)}); is this weft the same version as the agent?`);
  return r.output as MeshStatus;
}

/** The body of POST /command/rmpeer: the peer's name or nickname. Throws a WeftError the agent answers with 400. */
export function parseRmpeerRequest(raw: unknown): string {
  const r = v.safeParse(rmpeerRequest, raw);
  if (!r.success) throw new WeftError('WEFT_INVALID_CONFIG', `rmpeer wants {"peer": "<name or nickname>"} (${firstIssue(r.issues)})`);
  return r.output.peer;
}

export function parseRmpeerAnswer(raw: unknown): RmpeerAnswer {
  const r = v.safeParse(rmpeerAnswer, raw);
  if (!r.success) throw new WeftError('WEFT_DECODE', `the agent's rmpeer answer is malformed (${firstIssue(r.issues)})`);
  return r.output;
}
