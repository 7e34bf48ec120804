// What mesh mode reads from and writes to the Kubernetes API, and how it validates it: the
// Node addresses peers are dialed at, and the Lease records that say which mesh peer ran on
// which Node (so that a deleted Node's address blocks can be reclaimed by exactly one peer).
// Structural types only: this file never loads @kubernetes/client-node, and src/kube's
// KubeClient satisfies KubePeersApi as it is.
import { createHash } from 'node:crypto';
import { PEER_NAME } from '../../mesh/identity.ts';
import { tryParseIp } from '../../net/cidr.ts';

import type { NodeObject as NodeLike, LeaseObject as LeaseLike } from '../../kube/objects.ts';

// The object shapes are src/kube's, shared with the kube store.
export type { ObjectMeta as ObjectMetaLike, NodeObject as NodeLike, LeaseObject as LeaseLike } from '../../kube/objects.ts';

export interface ListLike<T> {
  items: T[];
  resourceVersion: string;
}

/** The part of src/kube's KubeClient that mesh mode uses. */
export interface KubePeersApi {
  readonly server: string;
  getNode(name: string): Promise<NodeLike | null>;
  listNodes(): Promise<ListLike<NodeLike>>;
  getLease(namespace: string, name: string): Promise<LeaseLike | null>;
  listLeases(namespace: string, labelSelector: string): Promise<ListLike<LeaseLike>>;
  createLease(namespace: string, lease: LeaseLike): Promise<LeaseLike | 'exists'>;
  replaceLease(namespace: string, lease: LeaseLike): Promise<LeaseLike | 'conflict'>;
  deleteLease(namespace: string, name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<'deleted' | 'gone' | 'conflict'>;
}

export const CLAIM_LABEL = 'weft.dev/claim';
export const PEER_CLAIM = 'mesh-peer';
export const RING_CLAIM = 'mesh-ring';
/** One watch covers both kinds of record. */
export const RECORDS_SELECTOR = `${CLAIM_LABEL} in (${PEER_CLAIM},${RING_CLAIM})`;
export const RING_RECORD = 'mesh-ring';

export const ANNOTATION = {
  nodeUid: 'weft.dev/node-uid',
  peer: 'weft.dev/mesh-peer',
  reclaimer: 'weft.dev/reclaimer',
  reclaimerNode: 'weft.dev/reclaimer-node',
  reclaimerNodeUid: 'weft.dev/reclaimer-node-uid',
  reclaimStarted: 'weft.dev/reclaim-started',
  reclaimRenewed: 'weft.dev/reclaim-renewed',
  ringSeeds: 'weft.dev/ring-seeds',
} as const;

const MAC_NAME = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
/** A Node name (a DNS subdomain); anything else in a record is refused. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const UID = /^[A-Za-z0-9-]{1,64}$/;
/** Most addresses read per Node: a real one has a handful. */
const MAX_NODE_ADDRESSES = 32;

/**
 * The record's object name. Peer names are MAC-like (aa:bb:...) or set with --name, and object
 * names allow neither ':' nor capitals: a MAC name becomes aa-bb-..., any other name is
 * sanitized and suffixed with a hash of itself, so two peers never share a record. The peer
 * name itself is kept in an annotation and checked on every read.
 */
export function recordName(peer: string): string {
  if (MAC_NAME.test(peer)) return `mesh-peer-${peer.replaceAll(':', '-')}`;
  const safe = peer.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40);
  const hash = createHash('sha256').update(peer).digest('hex').slice(0, 8);
  return `mesh-peer-${safe}${safe ? '-' : ''}${hash}`;
}

/** A peer record as read from its Lease, validated. */
export interface PeerRecordLease {
  name: string;
  resourceVersion: string;
  peer: string;
  node: string;
  nodeUid: string;
  reclaimer?: { peer: string; node: string; nodeUid: string; started: string };
  lease: LeaseLike;
}

export function parsePeerRecord(lease: LeaseLike): PeerRecordLease | { error: string } {
  const m = lease.metadata ?? {};
  const a = m.annotations ?? {};
  const name = m.name ?? '';
  const peer = a[ANNOTATION.peer];
  const node = lease.spec?.holderIdentity;
  const nodeUid = a[ANNOTATION.nodeUid];
  if (typeof peer !== 'string' || !PEER_NAME.test(peer)) return { error: `annotation ${ANNOTATION.peer} is not a peer name` };
  if (recordName(peer) !== name) return { error: `it is named ${name} but holds peer ${peer} (whose record is ${recordName(peer)})` };
  if (typeof node !== 'string' || !NODE_NAME.test(node)) return { error: 'spec.holderIdentity is not a Node name' };
  if (typeof nodeUid !== 'string' || !UID.test(nodeUid)) return { error: `annotation ${ANNOTATION.nodeUid} is not a uid` };
  if (!m.resourceVersion) return { error: 'it has no resourceVersion' };
  const out: PeerRecordLease = { name, resourceVersion: m.resourceVersion, peer, node, nodeUid, lease };
  const r = a[ANNOTATION.reclaimer];
  if (r !== undefined) {
    const rNode = a[ANNOTATION.reclaimerNode] ?? '';
    const rUid = a[ANNOTATION.reclaimerNodeUid] ?? '';
    // A malformed claim counts as no claim: anyone may take it over (by CAS, so still only one).
    if (PEER_NAME.test(r) && NODE_NAME.test(rNode) && UID.test(rUid)) out.reclaimer = { peer: r, node: rNode, nodeUid: rUid, started: a[ANNOTATION.reclaimStarted] ?? '' };
  }
  return out;
}

export function newPeerRecord(namespace: string, self: { peer: string; node: string; nodeUid: string }): LeaseLike {
  return {
    apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
    metadata: {
      name: recordName(self.peer), namespace, labels: { [CLAIM_LABEL]: PEER_CLAIM },
      annotations: { [ANNOTATION.peer]: self.peer, [ANNOTATION.nodeUid]: self.nodeUid },
    },
    spec: { holderIdentity: self.node },
  };
}

/** The same Lease (its resourceVersion kept, for a CAS update) with its annotations changed; null removes one. */
export function withAnnotations(lease: LeaseLike, changes: Record<string, string | null>, holder?: string): LeaseLike {
  const annotations = { ...(lease.metadata?.annotations ?? {}) };
  for (const [k, v] of Object.entries(changes)) {
    if (v === null) delete annotations[k];
    else annotations[k] = v;
  }
  return { ...lease, metadata: { ...lease.metadata, annotations }, spec: { ...lease.spec, ...(holder !== undefined ? { holderIdentity: holder } : {}) } };
}

export const NO_RECLAIMER: Record<string, null> = { [ANNOTATION.reclaimer]: null, [ANNOTATION.reclaimerNode]: null, [ANNOTATION.reclaimerNodeUid]: null, [ANNOTATION.reclaimStarted]: null, [ANNOTATION.reclaimRenewed]: null };

/** Why an address may not be dialed as a peer, or undefined when it may (IPv4 unicast, not this host's own loopback or link-local). */
export function refuseAddress(address: string): string | undefined {
  if (address.length > 15 || address.includes(':')) return 'not an IPv4 address';
  const ip = tryParseIp(address);
  if (!ip || ip.family !== 4) return 'not an IPv4 address';
  const first = Number(ip.value >> 24n);
  const second = Number((ip.value >> 16n) & 0xffn);
  if (first === 0) return 'an unspecified (0.0.0.0/8) address';
  if (first === 127) return 'a loopback address';
  if (first === 169 && second === 254) return 'a link-local address';
  if (first >= 224) return 'a multicast or reserved address';
  return undefined;
}

export interface NodeAddress {
  node: string;
  uid: string;
  address: string;
}

/** A Node's mesh address: its InternalIP, else its ExternalIP (as Weave's kube-peers took them). */
export function nodeAddress(n: NodeLike, refuse: (address: string) => string | undefined = refuseAddress): NodeAddress | { node: string; error: string } {
  const node = n.metadata?.name ?? '';
  const uid = n.metadata?.uid ?? '';
  if (!NODE_NAME.test(node)) return { node: node.slice(0, 64) || '(unnamed)', error: 'the Node name is not a DNS subdomain' };
  if (!UID.test(uid)) return { node, error: 'the Node has no valid uid' };
  const addresses = Array.isArray(n.status?.addresses) ? n.status.addresses.slice(0, MAX_NODE_ADDRESSES) : [];
  const reasons: string[] = [];
  for (const type of ['InternalIP', 'ExternalIP']) {
    for (const a of addresses) {
      if (a?.type !== type || typeof a.address !== 'string') continue;
      const why = refuse(a.address);
      if (!why) return { node, uid, address: a.address };
      reasons.push(`${type} ${JSON.stringify(a.address.slice(0, 64))} is ${why}`);
    }
  }
  return { node, error: reasons.length ? reasons.join('; ') : 'it has no InternalIP or ExternalIP address yet' };
}
