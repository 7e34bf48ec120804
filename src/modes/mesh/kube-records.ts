// This peer's own record, and the cluster's ring record, kept true level-triggered: each call
// reads what is there and writes (create-by-name or CAS) only what differs.
// - Own record (mesh-peer-<name>): which Node (name + uid) this peer runs on. A claim a reclaimer
//   put on it while this peer is alive is cleared: the peer decides about its own record.
// - Ring record (mesh-ring): the seed list of the cluster's IPAM ring. The first agent creates it
//   (with its saved ring, or itself as the only seed); everyone else seeds from it, so the first
//   ring is never seeded twice, there is no quorum to wait for, and agents that restart keep it
//   present (an agent with a ring re-creates it if it was deleted).
import { WeftError } from '../../errors.ts';
import { PEER_NAME } from '../../mesh/identity.ts';
import {
  ANNOTATION, CLAIM_LABEL, NO_RECLAIMER, RING_CLAIM, RING_RECORD, newPeerRecord, parsePeerRecord, recordName, withAnnotations,
  type KubePeersApi, type LeaseLike,
} from './kube-objects.ts';

const MAX_SEEDS = 4096;
const ATTEMPTS = 3;

export type OwnRecordResult = 'unchanged' | 'created' | 'updated' | { collision: string };

/** Creates or corrects this peer's record; `known` is the cached copy, if any (saves a GET when it is already right). */
export async function ensureOwnRecord(
  api: Pick<KubePeersApi, 'getLease' | 'createLease' | 'replaceLease'>, namespace: string,
  self: { peer: string; node: string; nodeUid: string }, known?: LeaseLike | null,
): Promise<OwnRecordResult> {
  const name = recordName(self.peer);
  let lease = known === undefined ? await api.getLease(namespace, name) : known;
  for (let i = 0; i < ATTEMPTS; i++) {
    if (!lease) {
      const created = await api.createLease(namespace, newPeerRecord(namespace, self));
      if (created !== 'exists') return 'created';
    } else {
      const a = lease.metadata?.annotations ?? {};
      const holds = a[ANNOTATION.peer];
      if (holds !== undefined && holds !== self.peer) {
        return { collision: `Lease ${namespace}/${name} holds peer ${JSON.stringify(holds.slice(0, 64))}, not this peer ${self.peer}` };
      }
      const r = parsePeerRecord(lease);
      if (!('error' in r) && r.node === self.node && r.nodeUid === self.nodeUid && !r.reclaimer && a[ANNOTATION.reclaimer] === undefined) return 'unchanged';
      const fixed = withAnnotations(lease, { ...NO_RECLAIMER, [ANNOTATION.peer]: self.peer, [ANNOTATION.nodeUid]: self.nodeUid }, self.node);
      fixed.metadata = { ...fixed.metadata, labels: { ...fixed.metadata?.labels, [CLAIM_LABEL]: 'mesh-peer' } };
      const replaced = await api.replaceLease(namespace, fixed);
      if (replaced !== 'conflict') return 'updated';
    }
    lease = await api.getLease(namespace, name);
  }
  throw new WeftError('WEFT_NOT_READY', `the mesh peer record ${namespace}/${name} kept changing under this agent's writes; trying again later`);
}

export function parseRingRecord(lease: LeaseLike): string[] | { error: string } {
  const text = lease.metadata?.annotations?.[ANNOTATION.ringSeeds];
  if (typeof text !== 'string' || text.length > MAX_SEEDS * 64) return { error: `annotation ${ANNOTATION.ringSeeds} is missing or too long` };
  const seeds = [...new Set(text.split(',').map((s) => s.trim()).filter((s) => s !== ''))];
  if (seeds.length === 0 || seeds.length > MAX_SEEDS) return { error: `annotation ${ANNOTATION.ringSeeds} must list 1 to ${MAX_SEEDS} peer names` };
  const bad = seeds.find((s) => !PEER_NAME.test(s));
  if (bad !== undefined) return { error: `annotation ${ANNOTATION.ringSeeds}: ${JSON.stringify(bad.slice(0, 64))} is not a peer name` };
  return seeds.sort();
}

export function newRingRecord(namespace: string, seeds: readonly string[], node: string): LeaseLike {
  return {
    apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
    metadata: { name: RING_RECORD, namespace, labels: { [CLAIM_LABEL]: RING_CLAIM }, annotations: { [ANNOTATION.ringSeeds]: [...seeds].sort().join(',') } },
    spec: { holderIdentity: node },
  };
}

/**
 * The cluster's ring seeds: the record's, or `proposal` when there was none and ours was created.
 * A malformed record is an error naming it (the operator fixes or deletes it).
 */
export async function ringSeeds(api: Pick<KubePeersApi, 'getLease' | 'createLease'>, namespace: string, proposal: readonly string[], node: string): Promise<{ seeds: string[]; created: boolean }> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const lease = await api.getLease(namespace, RING_RECORD);
    if (lease) {
      const seeds = parseRingRecord(lease);
      if ('error' in seeds) {
        throw new WeftError('WEFT_MESH_STATE', `the ring record Lease ${namespace}/${RING_RECORD} is unusable: ${seeds.error}; fix it, or delete it if no node has a ring yet`);
      }
      return { seeds, created: false };
    }
    const created = await api.createLease(namespace, newRingRecord(namespace, proposal, node));
    if (created !== 'exists') return { seeds: [...proposal].sort(), created: true };
  }
  throw new WeftError('WEFT_NOT_READY', `the ring record Lease ${namespace}/${RING_RECORD} appeared and vanished ${ATTEMPTS} times; trying again later`);
}
