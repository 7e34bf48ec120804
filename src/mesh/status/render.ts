// `weft status` in mesh mode, laid out as `weave status` is, because people and their scripts
// read and grep that layout: labels right-aligned so every colon is in column 16, a blank line
// before and after the body, and the same sub-views (connections, peers, ipam, targets).
// Where weft differs it says so: the data plane line (VXLAN, never encrypted here), the block
// counts, and connection attributes separated by spaces (Weave ran them together).
// Pure: MeshStatus in, text out. Names and nicknames come from other peers, so every string
// is stripped of control characters before it reaches a terminal.
import type { MeshConnectionStatus, MeshIpamOwner, MeshStatus, RmpeerAnswer } from './types.ts';

const LABEL_WIDTH = 15;
const ADDRESS_WIDTH = 21;
const STATE_WIDTH = 11;
const PEER_WIDTH = 37;
const COUNT_WIDTH = 8;
const OVERLAY_WIDTH = 6;
const ENCRYPTION_WIDTH = 11;
/** The data plane between peers: the kernel's VXLAN on the mesh's data port. */
const OVERLAY = 'vxlan';
const DATA_PLANE = 'vxlan (UDP 6784), not encrypted';

const CONNECTION_STATES = ['established', 'pending', 'retrying', 'failed', 'connecting'] as const;

/** Terminal controls (and bidi overrides) in a peer's name must not reach the screen. */
export function clean(text: string): string {
  return text.replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, '?');
}

function row(label: string, value: string): string {
  return `${label.padStart(LABEL_WIDTH)}: ${clean(value)}`;
}

function lines(list: readonly string[]): string {
  return list.map((l) => `${l}\n`).join('');
}

function peerLabel(p: { name: string; nickname: string }): string {
  return clean(`${p.name}(${p.nickname})`);
}

function arrow(direction: 'outbound' | 'inbound'): string {
  return direction === 'outbound' ? '->' : '<-';
}

/** "2 established, 1 failed": the categories in this order, and only those that occur. */
function counts(states: readonly string[], order: readonly string[]): string {
  return order
    .map((state) => [state, states.filter((s) => s === state).length] as const)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${n} ${state}`)
    .join(', ');
}

function protocol(p: MeshStatus['protocol']): string {
  return p.min === p.max ? `weft ${p.max}` : `weft ${p.min}..${p.max}`;
}

function connectionsLine(s: MeshStatus): string {
  const parts = counts(s.connections.map((c) => c.state), CONNECTION_STATES);
  return `${s.connections.length}${parts ? ` (${parts})` : ''}`;
}

/** Every peer's connections summed, so a 3-node full mesh shows 6. */
function peersLine(s: MeshStatus): string {
  const states = s.peers.flatMap((p) => p.connections.map((c) => c.state));
  const parts = counts(states, ['established', 'pending']);
  return `${s.peers.length}${parts ? ` (with ${parts} connections)` : ''}`;
}

export function renderStatus(s: MeshStatus): string {
  const body = [
    row('Version', `${s.version} (version check update disabled)`),
    '',
    row('Service', 'router'),
    row('Protocol', protocol(s.protocol)),
    row('Name', peerLabel(s)),
    row('Encryption', s.encryption ? 'enabled (control plane only)' : 'disabled (control plane in plaintext)'),
    row('DataPlane', DATA_PLANE),
    row('PeerDiscovery', s.peerDiscovery ? 'enabled' : 'disabled'),
    row('Targets', String(s.targets.length)),
    row('Connections', connectionsLine(s)),
    row('Peers', peersLine(s)),
    row('TrustedSubnets', s.trustedSubnets.length === 0 ? 'none' : s.trustedSubnets.join(', ')),
    '',
    row('Service', 'ipam'),
    row('Status', s.ipam.status),
    row('Range', s.ipam.range),
    row('DefaultSubnet', s.ipam.defaultSubnet),
    row('Blocks', `${s.ipam.blocksOwned} owned, ${s.ipam.blocksFree} free (/${s.ipam.blockPrefix})`),
  ];
  return `\n${lines(body)}\n`;
}

/** Live connections name the other end (and, with a password, whether this one is encrypted); failing targets say why. */
function connectionInfo(s: MeshStatus, c: MeshConnectionStatus): string {
  if ((c.state === 'established' || c.state === 'pending') && c.peer) {
    const overlay = `${OVERLAY.padEnd(OVERLAY_WIDTH)} ${peerLabel(c.peer)}`;
    return s.encryption ? `${(c.encrypted ? 'encrypted' : 'unencrypted').padEnd(ENCRYPTION_WIDTH)} ${overlay}` : overlay;
  }
  const info = clean(c.info ?? '');
  if (c.state !== 'failed' || c.retry === undefined) return info;
  const retry = `retry: ${c.retry === null ? 'never' : clean(c.retry)}`;
  return info ? `${info}, ${retry}` : retry;
}

function attributes(attrs: Record<string, string> | undefined): string {
  return Object.keys(attrs ?? {})
    .filter((k) => k !== 'name')
    .sort()
    .map((k) => clean(`${k}=${attrs![k]}`))
    .join(' ');
}

export function renderConnections(s: MeshStatus): string {
  return lines(s.connections.map((c) =>
    `${arrow(c.direction)} ${clean(c.address).padEnd(ADDRESS_WIDTH)} ${c.state.padEnd(STATE_WIDTH)} ${connectionInfo(s, c)} ${attributes(c.attrs)}`.trimEnd()));
}

/** Self first, the others in the order the node gave them. */
function selfFirst<T extends { self: boolean }>(list: readonly T[]): T[] {
  return [...list.filter((x) => x.self), ...list.filter((x) => !x.self)];
}

export function renderPeers(s: MeshStatus): string {
  return lines(selfFirst(s.peers).flatMap((p) => [
    peerLabel(p),
    ...p.connections.map((c) => `   ${arrow(c.direction)} ${clean(c.address).padEnd(ADDRESS_WIDTH)} ${peerLabel(c.peer).padEnd(PEER_WIDTH)} ${c.state}`),
  ]));
}

/** The number of addresses in an IPv4 CIDR, or undefined if it is not one. */
function cidrSize(cidr: string): number | undefined {
  const m = /^\d{1,3}(?:\.\d{1,3}){3}\/(\d{1,2})$/.exec(cidr);
  const prefix = m ? Number(m[1]) : NaN;
  return prefix >= 0 && prefix <= 32 ? 2 ** (32 - prefix) : undefined;
}

/**
 * part/total as a percentage the way Weave prints it (Go's %04.1f): one decimal, an exact half
 * rounded to even (6.25 -> "06.2"), zero-padded to four characters. Exact integer arithmetic,
 * so no floating-point error decides a digit.
 */
export function percentOf(part: number, total: number): string {
  if (!(total > 0)) return '00.0';
  const n = BigInt(Math.max(0, Math.trunc(part))) * 1000n;
  const d = BigInt(Math.trunc(total));
  let tenths = n / d;
  const twice = (n % d) * 2n;
  if (twice > d || (twice === d && tenths % 2n === 1n)) tenths += 1n;
  return `${tenths / 10n}.${tenths % 10n}`.padStart(4, '0');
}

function ownerLine(o: MeshIpamOwner, total: number): string {
  const info = o.self ? `(${o.active ?? 0} active)` : o.reachable ? '' : '- unreachable!';
  // Weave leaves the space before an empty info in place; so do we, for scripts that split on it.
  return `${peerLabel(o).padEnd(PEER_WIDTH)} ${String(o.addresses).padStart(COUNT_WIDTH)} IPs (${percentOf(o.addresses, total)}% of total) ${info}`;
}

/** Addresses per owner, self first; empty before the block map exists. */
export function renderIpam(s: MeshStatus): string {
  if (s.ipam.ringId === null) return '';
  const owners = selfFirst(s.ipam.owners);
  const total = cidrSize(s.ipam.range) ?? owners.reduce((sum, o) => sum + o.addresses, 0);
  return lines(owners.map((o) => ownerLine(o, total)));
}

export function renderTargets(s: MeshStatus): string {
  return lines(s.targets.map(clean));
}

/** `weft rmpeer`'s one line, as Weave words it. */
export function renderRmpeer(a: RmpeerAnswer): string {
  return `${a.addresses} IPs taken over from ${clean(a.peer)}\n`;
}
