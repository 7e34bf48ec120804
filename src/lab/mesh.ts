// The mesh store: no etcd. Each node's `weft agent --store mesh` meshes with the other nodes
// over TCP 6783 on the underlay and carries pods over VXLAN (UDP 6784); between them the agents
// share the IPALLOC range in blocks (default /26), and each node's subnet.env names its first
// block. The lab's part is the agents' command lines, the password file, and reading the mesh
// view of their status.
import { chmod, writeFile } from 'node:fs/promises';
import type { AgentStatus } from '../agent/status.ts';
import { WeftError } from '../errors.ts';
import { parseCidr } from '../net/cidr.ts';
import type { NodeFiles } from './paths.ts';
import { DEFAULT_IPALLOC_BLOCK, DEFAULT_IPALLOC_RANGE, MESH_PORT } from './store-kinds.ts';

export interface MeshAgentArgs {
  /** The argv prefix that runs weft (weftLauncher().argv). */
  weft: readonly string[];
  files: NodeFiles;
  /** The node's name: the agent's nickname, as Weave's is the host name. */
  nickname: string;
  /** The other nodes' underlay addresses (the agent's --peers). */
  peers: readonly string[];
  range: string;
  blockPrefix: number;
  /** --ipalloc-init, or null for the agent's default. */
  init: string | null;
  port: number;
  /** --password-file, or null: no password. */
  passwordFile: string | null;
}

export function meshAgentArgv(a: MeshAgentArgs): string[] {
  return [
    ...a.weft, 'agent',
    '--store', 'mesh',
    '--peers', a.peers.join(','),
    '--nickname', a.nickname,
    '--ipalloc-range', a.range,
    '--ipalloc-block', String(a.blockPrefix),
    ...(a.init === null ? [] : ['--ipalloc-init', a.init]),
    ...(a.passwordFile === null ? [] : ['--password-file', a.passwordFile]),
    '--mesh-dir', a.files.meshDir,
    '--mesh-port', String(a.port),
    // A short window, so failure drills (rmpeer of a removed node) take seconds, not minutes.
    '--mesh-dead-after', '20s',
    '--subnet-file', a.files.subnetEnv,
    '--status-socket', a.files.agentSocket,
    '--lock-file', a.files.agentLock,
    '--ip-masq',
  ];
}

/**
 * Variables the mesh agent would read instead of (or on top of) its flags: Weave's names, and
 * weft's WEFT_<FLAG> forms. The lab's agents get their whole configuration from their command
 * line, so a password or peer list in the caller's environment never leaks into a lab node.
 */
const MESH_ENV = /^(?:WEAVE_\w*|KUBE_PEERS|IPALLOC_\w*|CONN_LIMIT|WEFT_(?!LOG_LEVEL$|LOG_FORMAT$)\w*)$/;

/** The mesh agent's environment: the caller's without MESH_ENV, plus its node name (NODE_NAME). */
export function meshAgentEnv(nodeName: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) if (!MESH_ENV.test(k)) out[k] = v;
  out.NODE_NAME = nodeName;
  return out;
}

/** Checks the lab's mesh options; returns them normalised. */
export function validateMeshOptions(o: { range?: string; blockPrefix?: number; init?: string; password?: string }): { range: string; blockPrefix: number; init: string | null } {
  const range = o.range ?? DEFAULT_IPALLOC_RANGE;
  let prefix: number;
  try {
    const c = parseCidr(range);
    if (c.family !== 4) throw new Error('not IPv4');
    prefix = c.prefix;
  } catch (e) {
    const why = e instanceof WeftError ? ` (${e.message})` : '';
    throw new WeftError('WEFT_LAB', `--ipalloc-range must be an IPv4 network such as ${DEFAULT_IPALLOC_RANGE}, got ${JSON.stringify(range)}${why}`);
  }
  const blockPrefix = o.blockPrefix ?? DEFAULT_IPALLOC_BLOCK;
  if (!Number.isInteger(blockPrefix) || blockPrefix < prefix || blockPrefix > 30) {
    throw new WeftError('WEFT_LAB', `--ipalloc-block must be a prefix length from the range's /${prefix} to /30, got ${blockPrefix}`);
  }
  const init = o.init ?? null;
  if (init !== null && !/^(?:consensus(?:=[1-9]\d{0,3})?|observer|seed=[0-9a-f:]+(?:,[0-9a-f:]+)*)$/.test(init)) {
    throw new WeftError('WEFT_LAB', `--ipalloc-init must be consensus, consensus=<peer count>, observer or seed=<peer name>,<peer name>…, got ${JSON.stringify(init)}`);
  }
  if (o.password !== undefined && (o.password === '' || o.password.includes('\n'))) {
    throw new WeftError('WEFT_LAB', '--password must be a non-empty line');
  }
  return { range, blockPrefix, init };
}

/** Writes a password file readable by root only (the agent refuses others, as it should). */
export async function writePasswordFile(path: string, password: string): Promise<void> {
  await writeFile(path, password, { mode: 0o600 });
  await chmod(path, 0o600); // the mode above only applies to a new file, and through the umask
}

/** What the lab reads of an agent's mesh status (`store.details.mesh`); every field checked, since it is another process's JSON. */
export interface MeshView {
  /** The peer name (aa:bb:cc:dd:ee:ff) and nickname. */
  name: string | null;
  nickname: string | null;
  encryption: boolean | null;
  /** The IPAM status line, e.g. "ready", "awaiting consensus (…)". */
  ipamStatus: string | null;
  ringId: string | null;
  /** Peers known, this one included. */
  peers: number;
  /** Its own connections by state. */
  connections: { address: string; state: string; peer: string | null; info: string | null }[];
  established: number;
  /** Block owners as the IPAM view lists them. */
  owners: { name: string; nickname: string; addresses: number; self: boolean; reachable: boolean }[];
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const obj = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The mesh report in an agent's status (`store.details.mesh`, as src/mesh/status documents it), or undefined. */
export function rawMeshStatus(status: AgentStatus | undefined): Record<string, unknown> | undefined {
  const details = obj(obj(obj(status).store).details);
  return typeof details.mesh === 'object' && details.mesh !== null ? obj(details.mesh) : undefined;
}

/** The mesh part of an agent's status, or undefined when it has none (not a mesh agent, or not yet). */
export function meshView(status: AgentStatus | undefined): MeshView | undefined {
  const m = rawMeshStatus(status);
  if (m === undefined) return undefined;
  const ipam = obj(m.ipam);
  const connections = list(m.connections).map((c) => {
    const o = obj(c);
    const peer = obj(o.peer);
    return { address: str(o.address) ?? '?', state: str(o.state) ?? '?', peer: str(peer.nickname) ?? str(peer.name), info: str(o.info) };
  });
  return {
    name: str(m.name),
    nickname: str(m.nickname),
    encryption: typeof m.encryption === 'boolean' ? m.encryption : null,
    ipamStatus: str(ipam.status),
    ringId: str(ipam.ringId),
    peers: list(m.peers).length,
    connections,
    established: connections.filter((c) => c.state === 'established').length,
    owners: list(ipam.owners).map((x) => {
      const o = obj(x);
      return { name: str(o.name) ?? '?', nickname: str(o.nickname) ?? '?', addresses: num(o.addresses), self: o.self === true, reachable: o.reachable === true };
    }),
  };
}

export { MESH_PORT };
