// The byte layouts of the fast path's maps (src/fastpath/bpf/fastpath.bpf.c), as pure encoders
// and decoders. Integers are in the host's byte order, as the kernel stores them; addresses are
// in network order, as they are in packets. A layout change here is a change in the C, and the
// sizes are checked against the loaded object at open (kernel.ts).
import { endianness } from 'node:os';
import { WeftError } from '../errors.ts';
import { formatCidr, formatIp, parseCidr, parseIp, type Cidr } from '../net/cidr.ts';

const LE = endianness() === 'LE';

export const MAP_LAYOUTS = {
  weft_pods: { keySize: 4, valueSize: 16 },
  weft_uplinks: { keySize: 4, valueSize: 4 },
  weft_peers: { keySize: 8, valueSize: 4 },
  weft_config: { keySize: 4, valueSize: 8 },
  weft_stats: { keySize: 4, valueSize: 8 },
} as const;
export type MapName = keyof typeof MAP_LAYOUTS;

/** weft_stats' slots, in the order of the C enum. */
export const STAT_NAMES = ['rx_redirect', 'tx_local', 'tx_remote', 'tx_remote_neigh', 'pass_nat', 'pass_not_pod', 'pass_other'] as const;
export type StatName = (typeof STAT_NAMES)[number];

export interface PodValue { ipv4: string; podMac: string; hostMac: string }

function invalid(message: string): WeftError {
  return new WeftError('WEFT_FASTPATH', message);
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function expectSize(bytes: Uint8Array, size: number, what: string): void {
  if (bytes.length !== size) throw invalid(`${what} is ${bytes.length} bytes, expected ${size}`);
}

/** A u32 key or value (ifindex, slot), in host order. */
export function encodeU32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw invalid(`${n} is not an unsigned 32-bit integer`);
  const out = new Uint8Array(4);
  view(out).setUint32(0, n, LE);
  return out;
}

export function decodeU32(bytes: Uint8Array): number {
  expectSize(bytes, 4, 'a u32');
  return view(bytes).getUint32(0, LE);
}

/** An interface index as a key: a positive 32-bit integer. */
export function encodeIfindex(ifindex: number): Uint8Array {
  if (!Number.isInteger(ifindex) || ifindex < 1 || ifindex > 0x7fffffff) throw invalid(`${ifindex} is not an interface index`);
  return encodeU32(ifindex);
}

/** The address parser's WEFT_INVALID_CONFIG as this module's WEFT_FASTPATH, message kept. */
function parsed<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw e instanceof WeftError ? new WeftError('WEFT_FASTPATH', e.message, { cause: e }) : e;
  }
}

function ipv4Value(text: string): number {
  const ip = parsed(() => parseIp(text));
  if (ip.family !== 4) throw invalid(`${text} is not an IPv4 address: the fast path is IPv4 only`);
  return Number(ip.value);
}

function ipv4Cidr(text: string): Cidr {
  const cidr = parsed(() => parseCidr(text));
  if (cidr.family !== 4) throw invalid(`${text} is not an IPv4 network: the fast path is IPv4 only`);
  return cidr;
}

function formatIpv4(bytes: Uint8Array, offset: number): string {
  return formatIp({ family: 4, value: BigInt(view(bytes).getUint32(offset, false)) });
}

/** "aa:bb:cc:dd:ee:ff" (either case) as 6 bytes. */
export function parseMac(text: string): Uint8Array {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw invalid(`"${text}" is not a MAC address (aa:bb:cc:dd:ee:ff)`);
  return Uint8Array.from(text.split(':').map((h) => parseInt(h, 16)));
}

export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** struct pod_link { u32 ipv4 (network order); u8 pod_mac[6]; u8 host_mac[6] } */
export function encodePod(pod: PodValue): Uint8Array {
  const out = new Uint8Array(MAP_LAYOUTS.weft_pods.valueSize);
  view(out).setUint32(0, ipv4Value(pod.ipv4), false);
  out.set(parseMac(pod.podMac), 4);
  out.set(parseMac(pod.hostMac), 10);
  return out;
}

export function decodePod(bytes: Uint8Array): PodValue {
  expectSize(bytes, MAP_LAYOUTS.weft_pods.valueSize, 'a weft_pods value');
  return { ipv4: formatIpv4(bytes, 0), podMac: formatMac(bytes.subarray(4, 10)), hostMac: formatMac(bytes.subarray(10, 16)) };
}

/** struct peer_key { u32 prefixlen (host order); u32 addr (network order) }: the LPM trie's key. */
export function encodePeerKey(cidr: string): Uint8Array {
  const c = ipv4Cidr(cidr);
  const out = new Uint8Array(MAP_LAYOUTS.weft_peers.keySize);
  view(out).setUint32(0, c.prefix, LE);
  view(out).setUint32(4, Number(c.network), false);
  return out;
}

export function decodePeerKey(bytes: Uint8Array): string {
  expectSize(bytes, MAP_LAYOUTS.weft_peers.keySize, 'a weft_peers key');
  const prefix = view(bytes).getUint32(0, LE);
  if (prefix > 32) throw invalid(`a weft_peers key has prefix length ${prefix}`);
  return formatCidr({ family: 4, network: BigInt(view(bytes).getUint32(4, false)), prefix });
}

/** struct network { u32 addr; u32 mask } (both network order); a mask of 0 means "not set". */
export function encodeNetwork(cidr: string): Uint8Array {
  const c = ipv4Cidr(cidr);
  if (c.prefix === 0) throw invalid(`${cidr} is not a cluster Network: a /0 would put every address on the fast path`);
  const out = new Uint8Array(MAP_LAYOUTS.weft_config.valueSize);
  view(out).setUint32(0, Number(c.network), false);
  view(out).setUint32(4, Number((0xffffffffn << BigInt(32 - c.prefix)) & 0xffffffffn), false);
  return out;
}

export function decodeNetwork(bytes: Uint8Array): string | undefined {
  expectSize(bytes, MAP_LAYOUTS.weft_config.valueSize, 'a weft_config value');
  const mask = view(bytes).getUint32(4, false);
  if (mask === 0) return undefined;
  const prefix = Math.clz32(~mask); // the mask's leading ones
  return formatCidr({ family: 4, network: BigInt(view(bytes).getUint32(0, false)), prefix });
}

/** A PERCPU value read whole: one u64 per possible CPU (8-byte slots), summed. */
export function sumPerCpu(bytes: Uint8Array, cpus: number): number {
  expectSize(bytes, cpus * 8, `a per-CPU counter for ${cpus} CPUs`);
  let sum = 0n;
  for (let i = 0; i < cpus; i++) sum += view(bytes).getBigUint64(i * 8, LE);
  return Number(sum);
}
