// The fast path's kernel side: the BPF object (build/fastpath.bpf.o, from
// src/fastpath/bpf/fastpath.bpf.c) loaded through weft's BPF addon (build/weft_bpf.node, from
// src/native/weft_bpf.c, linked with libbpf), its programs attached with tc, its maps pinned
// under pinDir. Everything runs in the calling process's network namespace.
//
// Policy (which packets the programs touch) is in the C; what to attach where and what the maps
// hold is the fast path manager's (manager.ts). This module validates and encodes (maps.ts).
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoCode, WeftError } from '../errors.ts';
import {
  decodePeerKey, decodeU32, decodePod, encodeIfindex, encodeNetwork, encodePeerKey, encodePod, encodeU32,
  MAP_LAYOUTS, STAT_NAMES, sumPerCpu, type MapName, type StatName,
} from './maps.ts';

export type FastPathStat = StatName;
export interface PodLinkEntry { ifindex: number; ipv4: string; podMac: string; hostMac: string }

export interface FastPathKernel {
  /** tc ingress, weft's handle and priority; replaces what weft attached there before. */
  attachUplink(ifindex: number): void;
  attachPod(ifindex: number): void;
  /** weft's filter only; quiet when absent or when the interface is gone. */
  detach(ifindex: number): void;
  /** 'uplink' | 'pod' when weft's filter there runs THIS load's program, 'stale' when an older weft program, undefined when none. */
  attached(ifindex: number): 'uplink' | 'pod' | 'stale' | undefined;
  setNetwork(cidr: string): void;
  setPod(e: PodLinkEntry): void;
  deletePod(ifindex: number): void;
  listPods(): PodLinkEntry[];
  setUplink(ifindex: number): void;
  deleteUplink(ifindex: number): void;
  listUplinks(): number[];
  setPeer(cidr: string): void;
  deletePeer(cidr: string): void;
  listPeers(): string[];
  /** Summed over CPUs, since the maps were created. */
  stats(): Record<FastPathStat, number>;
  /** fds only; pins and attachments stay. */
  close(): void;
}

/** weft's tc filter on ingress: one fixed slot, so attach replaces it and detach removes only it. */
export const TC_HANDLE = 0x7765; // "we"
export const TC_PRIORITY = 21;
const BPF_FS_MAGIC = 0xcafe4a11;

interface MapInfo { fd: number; keySize: number; valueSize: number; maxEntries: number }
interface LoadedObject {
  handle: unknown;
  programs: Record<string, { fd: number; id: number } | undefined>;
  maps: Record<string, MapInfo | undefined>;
}
interface BpfAddon {
  open(objectPath: string, pinRoot: string): LoadedObject;
  close(handle: unknown): void;
  tcAttach(ifindex: number, handle: number, priority: number, progFd: number): void;
  tcDetach(ifindex: number, handle: number, priority: number): boolean;
  tcQuery(ifindex: number, handle: number, priority: number): number;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array): void;
  mapDelete(fd: number, key: Uint8Array): boolean;
  mapLookup(fd: number, key: Uint8Array, into: Uint8Array): boolean;
  mapNextKey(fd: number, key: Uint8Array | null, into: Uint8Array): boolean;
  mountBpffs(path: string): void;
  possibleCpus(): number;
}

/**
 * A build output: `env` if set, else beside the bundle when this module runs bundled
 * (build/weft.mjs, or a chunk of it in build/chunks/), else in the checkout's build/.
 */
function buildFile(name: string, env: string): string {
  const fromEnv = process.env[env];
  if (fromEnv) return fromEnv;
  for (const beside of [`./${name}`, `../${name}`]) {
    const path = fileURLToPath(new URL(beside, import.meta.url));
    if (existsSync(path)) return path;
  }
  return join(fileURLToPath(new URL('../../', import.meta.url)), 'build', name);
}

export const bpfAddonPath = (): string => buildFile('weft_bpf.node', 'WEFT_BPF_NATIVE');
export const fastPathObjectPath = (): string => buildFile('fastpath.bpf.o', 'WEFT_BPF_OBJECT');

const fail = (message: string, cause?: unknown): WeftError => new WeftError('WEFT_FASTPATH', message, { cause });

let addon: BpfAddon | undefined;

function loadAddon(): BpfAddon {
  if (addon) return addon;
  const path = bpfAddonPath();
  if (!existsSync(path)) throw fail(`weft's BPF addon is missing at ${path}: run \`npm run build:native\` (needs clang and libbpf-dev)`);
  try {
    addon = createRequire(import.meta.url)(path) as BpfAddon;
  } catch (e) {
    // Typically "libbpf.so.1: cannot open shared object file".
    throw fail(`weft's BPF addon ${path} does not load: ${(e as Error).message}; install libbpf1 (Debian) or run without the fast path`, e);
  }
  return addon;
}

/** The last lines libbpf printed: the verifier's or the loader's reason. */
function lastLines(log: unknown, n = 12): string {
  if (typeof log !== 'string' || log.trim() === '') return '';
  const lines = log.trimEnd().split('\n');
  return (lines.length > n ? ['...', ...lines.slice(-n)] : lines).join('\n');
}

function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * pinDir's parent on a bpffs, and pinDir in it. When the parent is not on one, a bpffs is
 * mounted: at /sys/fs/bpf for a path under it (where the kernel expects one, and where a plain
 * sysfs directory takes no mkdir), else at the parent itself. A parent already inside a
 * mounted bpffs (the usual /sys/fs/bpf) is only created, never mounted over.
 */
function preparePinDir(a: BpfAddon, pinDir: string): void {
  const parent = dirname(pinDir);
  if (!onBpffs(parent)) {
    const at = parent === SYS_FS_BPF || parent.startsWith(`${SYS_FS_BPF}/`) ? SYS_FS_BPF : parent;
    try {
      mkdirSync(at, { recursive: true });
      a.mountBpffs(at);
    } catch (e) {
      throw fail(`cannot mount bpffs at ${at} for the fast path's maps: ${(e as Error).message}; mount it (mount -t bpf bpf ${at}) or choose another --bpf-dir`, e);
    }
  }
  try {
    mkdirSync(pinDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw fail(`cannot create ${pinDir} on bpffs: ${(e as Error).message}`, e);
  }
}

const SYS_FS_BPF = '/sys/fs/bpf';

/** Whether path, or the nearest of its ancestors that exists, is on a bpffs. */
function onBpffs(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    if (existsSync(p)) return isBpffs(p);
    if (p === dirname(p)) return false;
  }
}

/**
 * weft uninstall: takes weft's tc filter (its handle and priority) off each of these interfaces,
 * returning those it was on. Needs the addon (libbpf's tc calls) but no loaded object.
 */
export function detachFastPath(ifindexes: readonly number[]): number[] {
  const a = loadAddon();
  return ifindexes.filter((i) => {
    try {
      return a.tcDetach(i, TC_HANDLE, TC_PRIORITY);
    } catch {
      return false; // gone meanwhile, or no clsact: nothing of weft's there
    }
  });
}

function load(a: BpfAddon, objectPath: string, pinDir: string): LoadedObject {
  if (!existsSync(objectPath)) throw fail(`the fast path's BPF object is missing at ${objectPath}: run \`npm run build:native\` (needs clang)`);
  try {
    return a.open(objectPath, pinDir);
  } catch (e) {
    const log = lastLines((e as { log?: unknown }).log);
    const reused = /pinned map|reuse/i.test(log)
      ? `; maps pinned under ${pinDir} by another weft version do not fit: remove them (weft uninstall) and restart`
      : '; the node runs on the normal path (needs a kernel with BTF, tc BPF, bpf_redirect_peer and the conntrack kfuncs)';
    throw fail(`cannot load the fast path's BPF programs from ${objectPath}: ${(e as Error).message}${reused}${log ? `\n${log}` : ''}`, e);
  }
}

/** Every map the object must have, with the layout maps.ts encodes. */
function checkedMaps(obj: LoadedObject, objectPath: string): Record<MapName, MapInfo> {
  const out: Partial<Record<MapName, MapInfo>> = {};
  for (const [name, layout] of Object.entries(MAP_LAYOUTS) as [MapName, (typeof MAP_LAYOUTS)[MapName]][]) {
    const m = obj.maps[name];
    if (!m || m.keySize !== layout.keySize || m.valueSize !== layout.valueSize) {
      throw fail(`${objectPath} is not this weft's fast path object: map ${name} is ${m ? `${m.keySize}/${m.valueSize} bytes` : 'missing'}, expected ${layout.keySize}/${layout.valueSize}; rebuild it (npm run build:native)`);
    }
    out[name] = m;
  }
  return out as Record<MapName, MapInfo>;
}

function program(obj: LoadedObject, name: string, objectPath: string): { fd: number; id: number } {
  const p = obj.programs[name];
  if (!p) throw fail(`${objectPath} has no program ${name}; rebuild it (npm run build:native)`);
  return p;
}

/** Mounts bpffs at pinDir's parent when it is not one, loads the object, pins/reuses maps. Throws WeftError('WEFT_FASTPATH', reason + what to do). */
export function openFastPathKernel(o: { pinDir: string; objectPath?: string }): FastPathKernel {
  const a = loadAddon();
  const objectPath = o.objectPath ?? fastPathObjectPath();
  preparePinDir(a, o.pinDir);
  const obj = load(a, objectPath, o.pinDir);
  try {
    const maps = checkedMaps(obj, objectPath);
    const uplink = program(obj, 'weft_from_uplink', objectPath);
    const pod = program(obj, 'weft_from_pod', objectPath);
    return new Kernel(a, obj.handle, maps, uplink, pod);
  } catch (e) {
    a.close(obj.handle);
    throw e;
  }
}

/** weft uninstall: unpins every map under pinDir and removes it; quiet when absent. */
export function removeFastPathPins(pinDir: string): void {
  if (!existsSync(pinDir)) return;
  // Only ever unlink on a bpffs: a mistyped --bpf-dir must not delete a real directory's files.
  if (!isBpffs(pinDir)) throw fail(`${pinDir} is not on a BPF file system; not removing anything there (check --bpf-dir)`);
  for (const name of readdirSync(pinDir)) {
    try {
      unlinkSync(join(pinDir, name));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw fail(`cannot unpin ${join(pinDir, name)}: ${(e as Error).message}`, e);
    }
  }
  try {
    rmdirSync(pinDir);
  } catch (e) {
    if (errnoCode(e) !== 'ENOENT') throw fail(`cannot remove ${pinDir}: ${(e as Error).message}`, e);
  }
}

class Kernel implements FastPathKernel {
  readonly #a: BpfAddon;
  #handle: unknown;
  readonly #maps: Record<MapName, MapInfo>;
  readonly #uplink: { fd: number; id: number };
  readonly #pod: { fd: number; id: number };
  readonly #cpus: number;

  constructor(a: BpfAddon, handle: unknown, maps: Record<MapName, MapInfo>, uplink: { fd: number; id: number }, pod: { fd: number; id: number }) {
    this.#a = a;
    this.#handle = handle;
    this.#maps = maps;
    this.#uplink = uplink;
    this.#pod = pod;
    this.#cpus = a.possibleCpus();
  }

  #open(): void {
    if (this.#handle === undefined) throw fail('the fast path kernel was closed');
  }

  #call<T>(what: string, fn: () => T): T {
    this.#open();
    try {
      return fn();
    } catch (e) {
      if (e instanceof WeftError) throw e;
      const full = errnoCode(e) === 'E2BIG' ? ' (the map is full)' : '';
      throw fail(`${what}: ${(e as Error).message}${full}`, e);
    }
  }

  #attach(ifindex: number, prog: { fd: number }, what: string): void {
    encodeIfindex(ifindex);
    this.#call(`attaching the fast path (${what}) to interface ${ifindex}`, () => this.#a.tcAttach(ifindex, TC_HANDLE, TC_PRIORITY, prog.fd));
  }

  attachUplink(ifindex: number): void {
    this.#attach(ifindex, this.#uplink, 'uplink');
  }

  attachPod(ifindex: number): void {
    this.#attach(ifindex, this.#pod, 'pod');
  }

  detach(ifindex: number): void {
    encodeIfindex(ifindex);
    this.#call(`detaching the fast path from interface ${ifindex}`, () => this.#a.tcDetach(ifindex, TC_HANDLE, TC_PRIORITY));
  }

  attached(ifindex: number): 'uplink' | 'pod' | 'stale' | undefined {
    encodeIfindex(ifindex);
    const id = this.#call(`querying interface ${ifindex}'s tc filters`, () => this.#a.tcQuery(ifindex, TC_HANDLE, TC_PRIORITY));
    if (id === 0) return undefined;
    if (id === this.#uplink.id) return 'uplink';
    if (id === this.#pod.id) return 'pod';
    return 'stale';
  }

  #update(map: MapName, key: Uint8Array, value: Uint8Array): void {
    this.#call(`writing ${map}`, () => this.#a.mapUpdate(this.#maps[map].fd, key, value));
  }

  #delete(map: MapName, key: Uint8Array): void {
    this.#call(`deleting from ${map}`, () => this.#a.mapDelete(this.#maps[map].fd, key));
  }

  #lookup(map: MapName, key: Uint8Array, size: number = MAP_LAYOUTS[map].valueSize): Uint8Array | undefined {
    const into = new Uint8Array(size);
    return this.#call(`reading ${map}`, () => this.#a.mapLookup(this.#maps[map].fd, key, into)) ? into : undefined;
  }

  /** Every key; bounded by the map's size, so a map changing under the walk cannot loop it forever. */
  #keys(map: MapName): Uint8Array[] {
    const m = this.#maps[map];
    const keys: Uint8Array[] = [];
    let prev: Uint8Array | null = null;
    while (keys.length < m.maxEntries) {
      const next = new Uint8Array(m.keySize);
      if (!this.#call(`listing ${map}`, () => this.#a.mapNextKey(m.fd, prev, next))) break;
      keys.push(next);
      prev = next;
    }
    return keys;
  }

  setNetwork(cidr: string): void {
    this.#update('weft_config', encodeU32(0), encodeNetwork(cidr));
  }

  setPod(e: PodLinkEntry): void {
    this.#update('weft_pods', encodeIfindex(e.ifindex), encodePod(e));
  }

  deletePod(ifindex: number): void {
    this.#delete('weft_pods', encodeIfindex(ifindex));
  }

  listPods(): PodLinkEntry[] {
    const out: PodLinkEntry[] = [];
    for (const key of this.#keys('weft_pods')) {
      const value = this.#lookup('weft_pods', key);
      if (value) out.push({ ifindex: decodeU32(key), ...decodePod(value) });
    }
    return out;
  }

  setUplink(ifindex: number): void {
    this.#update('weft_uplinks', encodeIfindex(ifindex), encodeU32(1));
  }

  deleteUplink(ifindex: number): void {
    this.#delete('weft_uplinks', encodeIfindex(ifindex));
  }

  listUplinks(): number[] {
    return this.#keys('weft_uplinks').map(decodeU32);
  }

  setPeer(cidr: string): void {
    this.#update('weft_peers', encodePeerKey(cidr), encodeU32(1));
  }

  deletePeer(cidr: string): void {
    this.#delete('weft_peers', encodePeerKey(cidr));
  }

  listPeers(): string[] {
    return this.#keys('weft_peers').map(decodePeerKey);
  }

  stats(): Record<FastPathStat, number> {
    const out = {} as Record<FastPathStat, number>;
    STAT_NAMES.forEach((name, slot) => {
      const value = this.#lookup('weft_stats', encodeU32(slot), this.#cpus * 8);
      out[name] = value ? sumPerCpu(value, this.#cpus) : 0;
    });
    return out;
  }

  close(): void {
    if (this.#handle === undefined) return;
    this.#a.close(this.#handle);
    this.#handle = undefined;
  }
}
