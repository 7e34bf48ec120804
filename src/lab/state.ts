// The lab's record of what exists, /run/weft/lab/<name>/state.json. `up` rewrites it
// atomically after every step, so it is always a true (if partial) account; `down` uses it
// together with the namespace list, and does not need it to be complete or even present.
import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoCode, WeftError } from '../errors.ts';
import { writeFileAtomic } from './atomic-write.ts';
import type { LabDataPath } from './data-path.ts';
import type { CniKind } from './cni-config.ts';
import { stateFile } from './paths.ts';
import type { EtcdApi, LabBackend, StoreKind } from './store-kinds.ts';
import type { Topology } from './topology.ts';

export const STATE_VERSION = 1;

export type LabPhase = 'creating' | 'ready' | 'failed';

export interface PodState {
  containerId: string;
  /** ips[].address from the ADD result. */
  addresses: string[];
  /** The whole ADD result: DEL sends it back as prevResult, as libcni's cache does. */
  result: Record<string, unknown>;
}

export interface DaemonState {
  pid: number;
  ready: boolean;
  /** What it is; absent in labs made before agents: a cni-server. */
  kind?: 'cni-server' | 'agent' | 'etcd' | 'apiserver';
  /** The command it runs, as started (agents): `lab node restart` starts the same one again. */
  argv?: string[];
}

/** How the agents of a mesh lab were told to share the range, as `up` started them. */
export interface MeshStoreState {
  /** --ipalloc-range (the cluster network) and --ipalloc-block. */
  range: string;
  blockPrefix: number;
  /** --ipalloc-init as given (consensus[=N], seed=…, observer), or null: the agents' default. */
  init: string | null;
  /** The TCP port the agents mesh on (--mesh-port). */
  port: number;
  /** The 0600 file every agent gets as --password-file, or null: no password. */
  passwordFile: string | null;
}

/** The network config the lab wrote to etcd, and how. */
export interface EtcdStoreState {
  api: EtcdApi;
  backend: LabBackend;
  prefix: string;
  /** The value of `<prefix>/config`. */
  networkConfig: string;
  /** The agents' --subnet-lease-ttl. */
  leaseTtl: string;
}

/** store kube: the lab's API server (the stand-in) and what the lab wrote to it. */
export interface KubeStoreState {
  backend: LabBackend;
  /** net-conf.json in the ConfigMap. */
  networkConfig: string;
  /** The kubeconfig every agent gets (--kubeconfig-file). */
  kubeconfig: string;
}

/** What a node's agent reported once it was ready. */
export interface NodeLease {
  subnet: string;
  /** The subnet's first address: cni0's, the pods' gateway. */
  gateway: string;
  backend: string | null;
  publicIp: string | null;
}

export interface LabState {
  version: typeof STATE_VERSION;
  name: string;
  createdAt: string;
  phase: LabPhase;
  /** The `lab up` process building the lab: while phase is "creating" and it is gone, it crashed. */
  upPid: number;
  /** Why `up` stopped, when phase is "failed". */
  error?: string;
  cni: CniKind;
  /** The plugin executable the pods were attached with. */
  plugin: string;
  /** Whether one daemon runs per node: a `weft cni-server`, or with the etcd store a `weft agent`. */
  daemons: boolean;
  /** Absent in labs made before the etcd store: none. */
  store?: StoreKind;
  etcd?: EtcdStoreState;
  /** With the mesh store. */
  mesh?: MeshStoreState;
  /** With the kube store. */
  kube?: KubeStoreState;
  /** By node name, with an agent store: the lease each node's agent holds (as first reported; mesh: its first block). */
  leases?: Record<string, NodeLease>;
  /**
   * Nodes taken out with `lab node remove` (agent killed, namespaces deleted: a machine that
   * died); their pods are gone from `pods`. Absent: none.
   */
  removedNodes?: string[];
  /** The nodes `lab partition` cut off from the rest (TCP mesh port and UDP VXLAN port dropped); absent or null: none. */
  partition?: string[] | null;
  /** How pods meet their nodes and whether the agents run the fast path; absent in older labs: bridge, none. */
  dataPath?: LabDataPath;
  topology: Topology;
  /** Namespaces created so far, in order. */
  namespaces: string[];
  /** By node name; the etcd member's (or the kube store's API server's) under "etcd". */
  daemonPids: Record<string, DaemonState>;
  /** By pod name, once ADD succeeded. */
  pods: Record<string, PodState>;
}

export async function readState(labDirectory: string): Promise<LabState | undefined> {
  const path = stateFile(labDirectory);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw new WeftError('WEFT_LAB', `cannot read ${path}: ${String(e)}`, { cause: e });
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (e) {
    throw new WeftError('WEFT_LAB', `${path} is not valid JSON; \`weft lab down\` can still remove the lab`, { cause: e });
  }
  if (typeof state !== 'object' || state === null || (state as { version?: unknown }).version !== STATE_VERSION) {
    throw new WeftError('WEFT_LAB', `${path} is not a version ${STATE_VERSION} lab state; \`weft lab down\` can still remove the lab`);
  }
  return state as LabState;
}

/** Serialises writes, so concurrent steps cannot interleave and the last save wins. */
export class StateWriter {
  readonly #path: string;
  #chain: Promise<void> = Promise.resolve();

  constructor(labDirectory: string) {
    this.#path = stateFile(labDirectory);
  }

  save(state: LabState): Promise<void> {
    const text = `${JSON.stringify(state, null, 2)}\n`; // snapshot now, not when the write runs
    const next = this.#chain.then(() => writeFileAtomic(this.#path, text));
    this.#chain = next.catch(() => {});
    return next;
  }
}

const LOCK_WAIT_MS = 30_000;

/**
 * Read-modify-write of a finished lab's state by the commands that change it after `up`
 * (`lab node`, `lab pod add`, `lab partition`): `fn` gets the current state and changes it in
 * place; the result is written atomically. A lock file (`state.lock`, holding the holder's
 * PID) keeps two such commands, in one process or several, from losing each other's change;
 * a lock whose holder is gone is taken over.
 */
export async function updateState<T>(labDirectory: string, fn: (state: LabState) => T | Promise<T>): Promise<T> {
  const release = await lockState(labDirectory);
  try {
    const state = await readState(labDirectory);
    if (state === undefined) throw new WeftError('WEFT_LAB', `${stateFile(labDirectory)} is gone; was the lab removed?`);
    const result = await fn(state);
    await writeFileAtomic(stateFile(labDirectory), `${JSON.stringify(state, null, 2)}\n`);
    return result;
  } finally {
    await release();
  }
}

async function lockState(labDirectory: string): Promise<() => Promise<void>> {
  const path = `${labDirectory}/state.lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw new WeftError('WEFT_LAB', `cannot lock ${path}: ${String(e)}`, { cause: e });
    }
    const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    // No PID yet (the holder is between create and write) counts as held; a dead holder's lock is stale.
    if (Number.isInteger(holder) && holder > 0 && !processExists(holder)) await rm(path, { force: true });
    else if (Date.now() > deadline) throw new WeftError('WEFT_LAB', `${path} has been held by pid ${holder} for ${LOCK_WAIT_MS / 1000} s; if no lab command is running, remove it`);
    else await sleep(10);
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}
