// `weft lab status`: what a lab consists of, from its state file, checked against what is
// actually there (namespaces present, daemons alive).
import { readdir } from 'node:fs/promises';
import { WeftError } from '../errors.ts';
import { labNamesIn, validateLabName } from './names.ts';
import { listNetns } from './netns.ts';
import { LAB_STATE_ROOT, labDir } from './paths.ts';
import { isAlive } from './processes.ts';
import { readState, type LabPhase, type LabState } from './state.ts';

export interface LabStatus {
  name: string;
  dir: string;
  phase: LabPhase;
  /** True when phase is "creating" but the `lab up` that was building it is gone (crashed or killed). */
  interrupted: boolean;
  error?: string;
  createdAt: string;
  cni: string;
  plugin: string;
  daemons: boolean;
  clusterNetwork: string;
  zones: { name: string; ns: string; subnet: string; gateway: string }[];
  router: { name: 'router'; ns: string; addresses: string[] };
  outside: { name: 'outside'; ns: string; address: string };
  nodes: {
    name: string;
    ns: string;
    zone: string;
    address: string;
    podSubnet: string;
    dir: string;
    daemon: { pid: number; ready: boolean; alive: boolean } | null;
    pods: { name: string; ns: string; containerId: string; addresses: string[] }[];
  }[];
  /** Namespaces the state file records that no longer exist (a damaged lab). */
  missingNamespaces: string[];
}

/** Names of labs on this machine: those with a state directory or namespaces. */
export async function listLabs(stateRoot: string = LAB_STATE_ROOT): Promise<string[]> {
  const dirs = await readdir(stateRoot).catch(() => [] as string[]);
  return [...new Set([...dirs.filter((d) => /^[a-z0-9]{1,24}$/.test(d)), ...labNamesIn(await listNetns())])].sort();
}

/** The lab's state; a WeftError that says what to do when there is no such lab. */
export async function loadLab(name: string, stateRoot: string = LAB_STATE_ROOT): Promise<LabState> {
  validateLabName(name);
  const state = await readState(labDir(name, stateRoot));
  if (state === undefined) {
    const labs = await listLabs(stateRoot);
    const known = labs.length === 0 ? 'there are no labs' : `existing labs: ${labs.join(', ')}`;
    throw new WeftError('WEFT_LAB', `no lab named ${name} (${known}); create it with \`weft lab up --name ${name}\``);
  }
  return state;
}

export async function labStatus(name: string, stateRoot: string = LAB_STATE_ROOT): Promise<LabStatus> {
  const s = await loadLab(name, stateRoot);
  const t = s.topology;
  const present = new Set(await listNetns());
  const nodes = await Promise.all(
    t.nodes.map(async (n) => {
      const d = s.daemonPids[n.name];
      return {
        name: n.name,
        ns: n.ns,
        zone: n.zone,
        address: n.address,
        podSubnet: n.podSubnet,
        dir: n.dir,
        daemon: d === undefined ? null : { pid: d.pid, ready: d.ready, alive: await isAlive(d.pid) },
        pods: n.pods.flatMap((p) => {
          const ps = s.pods[p.name];
          return ps === undefined ? [] : [{ name: p.name, ns: p.ns, containerId: ps.containerId, addresses: ps.addresses }];
        }),
      };
    }),
  );
  return {
    name: s.name,
    dir: labDir(name, stateRoot),
    phase: s.phase,
    interrupted: s.phase === 'creating' && !(await isAlive(s.upPid)),
    ...(s.error === undefined ? {} : { error: s.error }),
    createdAt: s.createdAt,
    cni: s.cni,
    plugin: s.plugin,
    daemons: s.daemons,
    clusterNetwork: t.clusterNetwork,
    zones: t.zones.map((z) => ({ name: `az-${z.zone}`, ns: z.ns, subnet: z.subnet, gateway: z.gateway })),
    router: { name: 'router', ns: t.router.ns, addresses: [...t.zones.map((z) => z.gateway), t.router.outsideAddress] },
    outside: { name: 'outside', ns: t.outside.ns, address: t.outside.address },
    nodes,
    missingNamespaces: s.namespaces.filter((ns) => !present.has(ns)),
  };
}
