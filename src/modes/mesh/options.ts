// Mesh mode's settings from the agent's options (flags and Weave's env vars): the peer list,
// how the first ring is seeded, the password, and the Backend section every node shares.
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { WeftError } from '../../errors.ts';
import type { AgentOptions } from '../../agent/options.ts';
import type { Target } from '../../mesh/connections.ts';
import { PEER_NAME } from '../../mesh/identity.ts';
import type { IpallocInit } from '../../mesh/node.ts';
import { parseCidr, formatCidr, tryParseIp } from '../../net/cidr.ts';

const MAX_PASSWORD_FILE_BYTES = 4096;
/** Weave's data-plane port: the VXLAN UDP port is the control port + 1. */
export const MESH_VXLAN_PORT = 6784;
const VXLAN_OVERHEAD = 50;

const invalid = (message: string): WeftError => new WeftError('WEFT_INVALID_CONFIG', message);

export function parseTargets(peers: readonly string[], defaultPort: number): Target[] {
  const out = new Map<string, Target>();
  for (const p of peers) {
    const m = /^([^:\s]+)(?::(\d{1,5}))?$/.exec(p);
    const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
    if (!m || !tryParseIp(m[1]!) || m[1]!.includes(':') || port < 1 || port > 65535) throw invalid(`--peers: ${JSON.stringify(p)} is not an IPv4 address or address:port`);
    out.set(`${m[1]}:${port}`, { host: m[1]!, port });
  }
  return [...out.values()];
}

/** This host's own IPv4 addresses: a peer list that names us (KUBE_PEERS lists every node) must not make us dial ourselves. */
function ownAddresses(): Set<string> {
  const s = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') s.add(a.address);
  return s;
}

export function parseIpallocInit(text: string | undefined, initialPeers: number): IpallocInit {
  if (text === undefined || text === '' || text === 'consensus') return { mode: 'consensus', peers: initialPeers };
  if (text === 'observer') return { mode: 'observer' };
  const consensus = /^consensus=(\d{1,5})$/.exec(text);
  if (consensus) {
    const n = Number(consensus[1]);
    if (n < 1) throw invalid(`--ipalloc-init=${text}: the number of initial peers must be at least 1`);
    return { mode: 'consensus', peers: n };
  }
  const seed = /^seed=(.+)$/.exec(text);
  if (seed) {
    const names = seed[1]!.split(',').map((s) => s.trim()).filter((s) => s !== '');
    for (const n of names) if (!PEER_NAME.test(n)) throw invalid(`--ipalloc-init=${text}: ${JSON.stringify(n)} is not a peer name (set the same names with --name on those peers)`);
    if (names.length === 0) throw invalid(`--ipalloc-init=${text}: the seed list is empty`);
    return { mode: 'seed', names };
  }
  throw invalid(`--ipalloc-init=${text}: expected consensus, consensus=<N>, seed=<name>,<name>... or observer`);
}

/** The passwords (one per line; the first is used to connect, all are accepted: rotation), or null. */
export function readPasswords(opts: AgentOptions, env: Record<string, string | undefined> = process.env): string[] | null {
  let text: string | undefined;
  if (opts.passwordFile) {
    try {
      const buf = readFileSync(opts.passwordFile);
      if (buf.length > MAX_PASSWORD_FILE_BYTES) throw invalid(`--password-file ${opts.passwordFile} is over ${MAX_PASSWORD_FILE_BYTES} bytes; it should hold one password per line`);
      text = buf.toString('utf8');
    } catch (e) {
      if (e instanceof WeftError) throw e;
      throw invalid(`--password-file ${opts.passwordFile} cannot be read: ${(e as Error).message}`);
    }
  } else text = env.WEAVE_PASSWORD ?? env.WEFT_PASSWORD;
  if (text === undefined) return null;
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) throw invalid('the mesh password is empty; set a long random secret, or unset it to run unencrypted');
  return lines;
}

export function meshBackendSection(opts: AgentOptions): Record<string, unknown> {
  const section: Record<string, unknown> = { Type: opts.meshBackend };
  if (opts.meshBackend !== 'host-gw') section.Port = MESH_VXLAN_PORT;
  if (opts.mtu !== undefined && opts.meshBackend !== 'host-gw') section.MTU = opts.mtu + VXLAN_OVERHEAD;
  return section;
}

export function meshNodeSettings(opts: AgentOptions): { targets: Target[]; init: IpallocInit; universe: string; nickname: string } {
  let universe: string;
  try {
    universe = formatCidr(parseCidr(opts.ipallocRange));
  } catch (e) {
    throw invalid(`--ipalloc-range=${opts.ipallocRange}: ${(e as Error).message}`);
  }
  if (universe !== opts.ipallocRange || universe.includes(':')) throw invalid(`--ipalloc-range=${opts.ipallocRange}: expected an IPv4 network without host bits, e.g. ${universe}`);
  const prefix = Number(universe.split('/')[1]);
  if (opts.ipallocBlock < prefix || opts.ipallocBlock - prefix > 16) throw invalid(`--ipalloc-block=${opts.ipallocBlock}: blocks must lie inside ${universe} and number at most 65536 (a prefix from /${prefix} to /${Math.min(30, prefix + 16)})`);
  const own = ownAddresses();
  const all = parseTargets(opts.peers, opts.meshPort);
  const targets = all.filter((t) => !own.has(t.host));
  // Weave's default seeded among "the other nodes seen at start", which gave a 2-node cluster a
  // quorum of 1 and so two rings; weft counts the whole initial cluster: the list plus this node.
  const initialPeers = targets.length + 1;
  return { targets, init: parseIpallocInit(opts.ipallocInit, initialPeers), universe, nickname: opts.nickname ?? (process.env.NODE_NAME || hostname()) };
}
