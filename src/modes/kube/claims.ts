// Subnet claims: one coordination.k8s.io Lease per subnet, named after it, so that the API
// server's name uniqueness is the lock (a create that answers AlreadyExists means "taken"),
// owned by the Node that holds it, so that the garbage collector frees a deleted Node's subnet.
// Pure functions: building a claim, reading one back (untrusted: anyone with the Role can write
// Leases), and the order in which a node tries free subnets. docs/kube-store.md has the design.
import { createHash } from 'node:crypto';
import { cidrContainsCidr, formatCidr, tryParseIp, type Cidr } from '../../net/cidr.ts';
import type { SubnetRange } from '../../lease/network-config.ts';
import type { LeaseObject } from '../../kube/objects.ts';

export const CLAIM_LABEL = 'weft.dev/claim';
export const CLAIM_KIND = 'subnet';
export const NODE_LABEL = 'weft.dev/node';
export const SUBNET_ANNOTATION = 'weft.dev/subnet';
export const CLAIM_SELECTOR = `${CLAIM_LABEL}=${CLAIM_KIND}`;

export type { LeaseObject } from '../../kube/objects.ts';

export interface ClaimOwner {
  name: string;
  uid: string;
}

export interface Claim {
  /** The Lease's name. */
  name: string;
  /** The Lease's own uid (a delete precondition: never delete a re-created claim by mistake). */
  uid: string;
  subnet: Cidr;
  holder: string;
  /** The Node uid the claim belongs to; a re-created Node of the same name is another owner. */
  ownerUid: string;
}

/** The Lease name of a subnet's claim: "subnet-10-244-3-0-24". */
export function claimName(subnet: Cidr): string {
  return `subnet-${formatCidr(subnet).replace(/[./]/g, '-')}`;
}

export function claimLease(namespace: string, subnet: Cidr, owner: ClaimOwner): LeaseObject {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: claimName(subnet),
      namespace,
      labels: { [CLAIM_LABEL]: CLAIM_KIND, [NODE_LABEL]: owner.name },
      annotations: { [SUBNET_ANNOTATION]: formatCidr(subnet) },
      // blockOwnerDeletion false: deleting a Node must never wait for weft.
      ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: owner.name, uid: owner.uid, blockOwnerDeletion: false }],
    },
    spec: { holderIdentity: owner.name },
  };
}

/** A refusal is keyed by the Lease's name and the subnet it names, as status shows it. */
export type ClaimReading = { ok: true; claim: Claim } | { ok: false; key: string; reason: string };

/** A claim read back from the API, or why it is not one weft can trust. */
export function readClaim(lease: LeaseObject, range: SubnetRange): ClaimReading {
  const m = lease.metadata ?? {};
  const name = typeof m.name === 'string' ? m.name.slice(0, 253) : '(unnamed)';
  const text = m.annotations?.[SUBNET_ANNOTATION];
  const shownText = typeof text === 'string' ? ` (${text.slice(0, 64)})` : '';
  const refuse = (reason: string): ClaimReading => ({ ok: false, key: `${name}${shownText}`, reason });
  if (typeof text !== 'string' || text.length > 64) return refuse(`it has no ${SUBNET_ANNOTATION} annotation`);
  const subnet = parseSubnet(text);
  if (!subnet) return refuse(`its subnet ${JSON.stringify(text)} is not an IPv4 CIDR`);
  const shown = formatCidr(subnet);
  if (name !== claimName(subnet)) return refuse(`its name does not match its subnet ${shown} (a claim is named after its subnet: ${claimName(subnet)})`);
  if (!cidrContainsCidr(range.network, subnet)) return refuse(`its subnet ${shown} is outside the cluster Network ${formatCidr(range.network)}`);
  if (subnet.prefix !== range.subnetLen) return refuse(`its subnet ${shown} is not a /${range.subnetLen} (SubnetLen)`);
  const holder = lease.spec?.holderIdentity;
  const owner = (m.ownerReferences ?? []).find((r) => r.kind === 'Node' && r.apiVersion === 'v1');
  if (typeof holder !== 'string' || holder === '') return refuse(`claim of ${shown} has no holder`);
  if (!owner || owner.name !== holder || typeof owner.uid !== 'string') return refuse(`claim of ${shown} is not owned by its holder's Node ${holder}`);
  return { ok: true, claim: { name, uid: m.uid ?? '', subnet, holder, ownerUid: owner.uid } };
}

function parseSubnet(text: string): Cidr | undefined {
  const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(text);
  const ip = m ? tryParseIp(m[1]!) : undefined;
  const prefix = Number(m?.[2]);
  if (!ip || ip.family !== 4 || prefix > 32) return undefined;
  const mask = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
  if ((ip.value & mask) !== ip.value) return undefined; // host bits set: not a subnet's name
  return { family: 4, network: ip.value, prefix };
}

/**
 * The order in which a node tries free subnets: the one it held before first (a restart keeps
 * its pods' addresses), then the free list rotated by a hash of the node's name, so that nodes
 * starting together try different subnets instead of all racing for the first.
 */
export function candidateOrder(free: readonly Cidr[], nodeName: string, previous: Cidr | undefined): Cidr[] {
  if (free.length === 0) return [];
  const start = createHash('sha256').update(nodeName).digest().readUInt32BE(0) % free.length;
  const rotated = [...free.slice(start), ...free.slice(0, start)];
  if (!previous) return rotated;
  const again = rotated.findIndex((c) => c.network === previous.network && c.prefix === previous.prefix);
  return again < 0 ? rotated : [rotated[again]!, ...rotated.slice(0, again), ...rotated.slice(again + 1)];
}
