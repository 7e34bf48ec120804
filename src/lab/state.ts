// The lab's record of what exists, /run/weft/lab/<name>/state.json. `up` rewrites it
// atomically after every step, so it is always a true (if partial) account; `down` uses it
// together with the namespace list, and does not need it to be complete or even present.
import { readFile } from 'node:fs/promises';
import { errnoCode, WeftError } from '../errors.ts';
import { writeFileAtomic } from './atomic-write.ts';
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
  kind?: 'cni-server' | 'agent' | 'etcd';
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
  /** By node name, with the etcd store: the lease each node's agent holds (as first reported). */
  leases?: Record<string, NodeLease>;
  topology: Topology;
  /** Namespaces created so far, in order. */
  namespaces: string[];
  /** By node name; the etcd member's under "etcd". */
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
