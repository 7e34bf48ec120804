// The measuring half of the CNI benchmark. run.ts re-execs itself with --inner inside one
// variant's node namespace (nsenter --net, once), so every plugin below is spawned directly,
// the way a runtime on that node would exec it, and timed from spawn to exit.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { execPlugin, must, type CniCall, type RunResult } from './exec.ts';

export interface InnerSpec {
  variant: string;
  /** The executable a runtime would exec. */
  plugin: string;
  config: Record<string, unknown>;
  /** <dataDir>/<network>: the host-local style store both IPAM implementations write. */
  storeDir: string;
  bridge: string;
  warmup: number;
  /** /run/netns paths, one fresh namespace per sequential ADD/DEL cycle (warm-up included). */
  sequentialPods: string[];
  /** /run/netns paths for the concurrent burst. */
  burstPods: string[];
  containerIdPrefix: string;
  /** Inode of the network namespace run.ts started in; the inner process refuses to run there. */
  outerNetnsInode: number;
  /** Timed VERSION calls (after as many warm-up calls as `warmup`, capped at 5). */
  versionCalls: number;
  resultFile: string;
}

/** What one pod attachment looks like, normalised so variants can be compared. */
export interface AttachmentShape {
  podMtu: number;
  podAddresses: string[];
  podRoutes: string[];
  hostMtu: number;
  hostMaster: string;
  hairpin: boolean;
  bridgeMtu: number;
  bridgeAddresses: string[];
  ipForward: string;
}

export interface InnerResult {
  variant: string;
  addMs: number[];
  delMs: number[];
  burstAddMs: number;
  burstDelMs: number;
  /** Slowest single call inside each burst, for context. */
  burstAddSlowestMs: number;
  burstDelSlowestMs: number;
  burstDistinctAddresses: number;
  /** Exec + an answer that needs no work: the fixed cost of reaching the plugin. */
  versionMs: number[];
  shape: AttachmentShape;
}

const IP_FILE = /^[0-9a-f.:_]+$/i;

function fail(what: string, call: CniCall, r: RunResult): never {
  throw new Error(`${what}: ${call.command} ${call.containerId} (${call.netns}) exited ${r.signal ?? r.code}\n  stdout: ${r.stdout.trim()}\n  stderr: ${r.stderr.trim()}`);
}

/** IP address files in the IPAM store (lock and last_reserved_ip.* excluded). */
function storedAddresses(storeDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(storeDir);
  } catch {
    return [];
  }
  return names.filter((n) => IP_FILE.test(n) && statSync(`${storeDir}/${n}`).isFile());
}

async function veths(): Promise<string[]> {
  const links = JSON.parse(await must('ip', ['-j', 'link', 'show', 'type', 'veth'])) as { ifname: string }[];
  return links.map((l) => l.ifname);
}

async function expectClean(spec: InnerSpec, when: string): Promise<void> {
  const left = storedAddresses(spec.storeDir);
  const links = await veths();
  if (left.length > 0 || links.length > 0) {
    throw new Error(`${spec.variant}: leak after ${when}: IPAM store still holds [${left.join(', ')}], node still has veths [${links.join(', ')}]`);
  }
}

function podAddress(stdout: string): string {
  const result = JSON.parse(stdout) as { ips?: { address: string }[] };
  const address = result.ips?.[0]?.address;
  if (!address) throw new Error(`ADD result without an address: ${stdout}`);
  return address;
}

function netnsName(path: string): string {
  return path.slice('/run/netns/'.length);
}

interface IpAddr { ifname: string; mtu: number; master?: string; addr_info?: { family: string; local: string; prefixlen: number; scope: string }[]; linkinfo?: { info_slave_data?: { hairpin?: boolean } } }

/** Reads back what ADD built, outside any timed section. */
async function describeAttachment(spec: InnerSpec, pod: string, result: string): Promise<AttachmentShape> {
  // The host veth: the interface that is not in the pod's sandbox and is not the bridge (a routed attachment has no bridge).
  const interfaces = (JSON.parse(result) as { interfaces: { name: string; sandbox?: string }[] }).interfaces;
  const hostName = interfaces.find((i) => i.sandbox === undefined && i.name !== spec.bridge)?.name ?? '';
  const ns = netnsName(pod);
  const [podLink] = JSON.parse(await must('ip', ['-j', '-n', ns, 'addr', 'show', 'dev', 'eth0'])) as IpAddr[];
  const routes = JSON.parse(await must('ip', ['-j', '-n', ns, 'route', 'show'])) as { dst: string; gateway?: string }[];
  const [host] = JSON.parse(await must('ip', ['-j', '-d', 'link', 'show', 'dev', hostName])) as IpAddr[];
  const [bridge] = interfaces.some((i) => i.name === spec.bridge)
    ? JSON.parse(await must('ip', ['-j', 'addr', 'show', 'dev', spec.bridge])) as IpAddr[]
    : [];
  const global = (l: IpAddr | undefined): string[] =>
    (l?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
  return {
    podMtu: podLink?.mtu ?? 0,
    podAddresses: global(podLink),
    podRoutes: routes.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}`).sort(),
    hostMtu: host?.mtu ?? 0,
    hostMaster: host?.master ?? '',
    hairpin: host?.linkinfo?.info_slave_data?.hairpin ?? false,
    bridgeMtu: bridge?.mtu ?? 0,
    bridgeAddresses: global(bridge),
    // /proc/sys/net answers for the reader's network namespace: this is the node's.
    ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
  };
}

/** Safety: never run plugins in the namespace the benchmark was started from. */
function refuseOuterNamespace(outer: number): void {
  if (statSync('/proc/self/ns/net').ino === outer) {
    throw new Error('the inner benchmark must run inside a benchmark node namespace, not the one it was started from');
  }
}

export async function runInner(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as InnerSpec;
  refuseOuterNamespace(spec.outerNetnsInode);
  const call = (command: 'ADD' | 'DEL', containerId: string, netns: string, prevResult?: unknown): CniCall => ({
    plugin: spec.plugin,
    command,
    containerId,
    netns,
    // libcni hands DEL the cached ADD result as prevResult (cniVersion >= 0.4.0).
    config: prevResult === undefined ? spec.config : { ...spec.config, prevResult },
  });
  const progress = (msg: string): void => {
    process.stderr.write(`  [${spec.variant}] ${msg}\n`);
  };

  // 1. Sequential ADD/DEL cycles, each on its own fresh pod namespace.
  const addMs: number[] = [];
  const delMs: number[] = [];
  let shape: AttachmentShape | undefined;
  for (const [i, pod] of spec.sequentialPods.entries()) {
    const id = `${spec.containerIdPrefix}-s${i}`;
    const add = call('ADD', id, pod);
    const a = await execPlugin(add);
    if (a.code !== 0) fail('sequential ADD failed', add, a);
    podAddress(a.stdout);
    shape ??= await describeAttachment(spec, pod, a.stdout);
    const del = call('DEL', id, pod, JSON.parse(a.stdout));
    const d = await execPlugin(del);
    if (d.code !== 0) fail('sequential DEL failed', del, d);
    if (i >= spec.warmup) {
      addMs.push(a.ms);
      delMs.push(d.ms);
    }
    if ((i + 1) % 50 === 0) progress(`${i + 1}/${spec.sequentialPods.length} cycles`);
  }
  await expectClean(spec, 'the sequential cycles');

  // 2. Burst: every ADD at once, then every DEL at once.
  const ids = spec.burstPods.map((_, i) => `${spec.containerIdPrefix}-b${i}`);
  const adds = spec.burstPods.map((pod, i) => call('ADD', ids[i]!, pod));
  let started = process.hrtime.bigint();
  const added = await Promise.all(adds.map((c) => execPlugin(c)));
  const burstAddMs = Number(process.hrtime.bigint() - started) / 1e6;
  const failed = added.map((r, i) => ({ r, c: adds[i]! })).filter(({ r }) => r.code !== 0);
  if (failed.length > 0) {
    const first = failed[0]!;
    fail(`BURST ADD FAILED for ${failed.length} of ${adds.length} pods; first failure`, first.c, first.r);
  }
  const addresses = new Set(added.map((r) => podAddress(r.stdout)));
  if (addresses.size !== adds.length) throw new Error(`burst ADD handed out ${addresses.size} distinct addresses to ${adds.length} pods`);
  const stored = storedAddresses(spec.storeDir).length;
  const links = (await veths()).length;
  if (stored !== adds.length || links !== adds.length) {
    throw new Error(`after the burst ADD the IPAM store holds ${stored} addresses and the node ${links} veths, expected ${adds.length} of each`);
  }
  progress(`burst ADD of ${adds.length}: ${burstAddMs.toFixed(0)} ms, ${addresses.size} distinct addresses`);

  const dels = spec.burstPods.map((pod, i) => call('DEL', ids[i]!, pod, JSON.parse(added[i]!.stdout)));
  started = process.hrtime.bigint();
  const deleted = await Promise.all(dels.map((c) => execPlugin(c)));
  const burstDelMs = Number(process.hrtime.bigint() - started) / 1e6;
  const delFailed = deleted.map((r, i) => ({ r, c: dels[i]! })).filter(({ r }) => r.code !== 0);
  if (delFailed.length > 0) {
    const first = delFailed[0]!;
    fail(`BURST DEL FAILED for ${delFailed.length} of ${dels.length} pods; first failure`, first.c, first.r);
  }
  await expectClean(spec, 'the burst DEL');
  progress(`burst DEL of ${dels.length}: ${burstDelMs.toFixed(0)} ms, store empty, no veths left`);

  // 3. The fixed cost of one call: exec, and for weft's server path the socket round trip.
  const versionMs: number[] = [];
  const versionWarmup = Math.min(spec.warmup, 5);
  for (let i = 0; i < versionWarmup + spec.versionCalls; i++) {
    const version: CniCall = { plugin: spec.plugin, command: 'VERSION', containerId: `${spec.containerIdPrefix}-v`, netns: '', config: { cniVersion: spec.config.cniVersion } };
    const r = await execPlugin(version);
    if (r.code !== 0) fail('VERSION failed', version, r);
    if (i >= versionWarmup) versionMs.push(r.ms);
  }

  if (!shape) throw new Error('no sequential cycle ran');
  const result: InnerResult = {
    variant: spec.variant,
    addMs,
    delMs,
    burstAddMs,
    burstDelMs,
    burstAddSlowestMs: Math.max(...added.map((r) => r.ms)),
    burstDelSlowestMs: Math.max(...deleted.map((r) => r.ms)),
    burstDistinctAddresses: addresses.size,
    versionMs,
    shape,
  };
  writeFileSync(spec.resultFile, JSON.stringify(result));
}
