// Calls a CNI plugin exactly as a container runtime does (docs/cni-spec-notes.md §1.2–§1.3): exec the binary
// in the "host" namespace (here: the node's namespace), parameters in CNI_* variables, the
// derived plugin config on stdin, the result or an error object on stdout.
import { appendFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WeftError } from '../errors.ts';
import { execInNetns, netnsPath } from './netns.ts';

export interface CniInvocation {
  /** Absolute path of the plugin executable. */
  plugin: string;
  /** The namespace the runtime runs in: the node's. */
  hostNs: string;
  /** The pod's namespace name (under /run/netns). */
  podNs: string;
  containerId: string;
  podName: string;
  podNamespace?: string;
  ifname?: string;
  /** Where to append the plugin's stderr; runtimes copy it to their own logs. */
  logFile?: string;
  timeoutMs?: number;
}

export interface CniAddResult {
  /** The plugin's result object, kept whole: DEL sends it back as prevResult. */
  raw: Record<string, unknown>;
  /** ips[].address, e.g. "10.16.1.2/24". */
  addresses: string[];
}

export function cniEnv(command: 'ADD' | 'DEL' | 'CHECK', inv: CniInvocation): NodeJS.ProcessEnv {
  // libcni appends CNI_* to its own environment, so a plugin also sees PATH, HOME, …
  return {
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: inv.containerId,
    CNI_NETNS: netnsPath(inv.podNs),
    CNI_IFNAME: inv.ifname ?? 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${inv.podNamespace ?? 'default'};K8S_POD_NAME=${inv.podName}`,
    CNI_PATH: dirname(inv.plugin),
  };
}

async function invoke(command: 'ADD' | 'DEL' | 'CHECK', inv: CniInvocation, config: unknown): Promise<string> {
  const r = await execInNetns(inv.hostNs, [inv.plugin], {
    env: cniEnv(command, inv),
    input: JSON.stringify(config),
    timeoutMs: inv.timeoutMs ?? 60_000,
  });
  if (inv.logFile !== undefined && r.stderr !== '') {
    await appendFile(inv.logFile, `--- ${command} ${inv.containerId}\n${r.stderr}`).catch(() => {});
  }
  if (r.code === 0) return r.stdout;
  const why = r.signal !== null ? `was killed by ${r.signal}` : `exited ${r.code}`;
  const cniError = parseCniError(r.stdout);
  const detail = cniError ?? gist(r.stderr) ?? gist(r.stdout) ?? 'no output';
  const logHint = inv.logFile === undefined ? '' : ` (plugin stderr is in ${inv.logFile})`;
  throw new WeftError('WEFT_LAB', `CNI ${command} of ${inv.podName} with ${inv.plugin} ${why}: ${detail}${logHint}`);
}

export async function cniAdd(inv: CniInvocation, config: unknown): Promise<CniAddResult> {
  const out = await invoke('ADD', inv, config);
  try {
    return parseCniResult(out);
  } catch (e) {
    throw new WeftError('WEFT_LAB', `CNI ADD of ${inv.podName}: ${(e as Error).message}`, { cause: e });
  }
}

export async function cniDel(inv: CniInvocation, config: unknown): Promise<void> {
  await invoke('DEL', inv, config);
}

/** One telling line of free-form output (a stack trace's error line, else the last line), capped. */
function gist(text: string): string | undefined {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const line = lines.find((l) => /error/i.test(l)) ?? lines.at(-1);
  return line === undefined ? undefined : line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

/** Parses an ADD result and checks the parts the lab relies on. */
export function parseCniResult(stdout: string): CniAddResult {
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch {
    throw new Error(`the plugin's result is not JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('the plugin result is not a JSON object');
  const ips = (raw as { ips?: unknown }).ips;
  if (!Array.isArray(ips) || ips.length === 0) throw new Error('the plugin result has no ips[]');
  const addresses = ips.map((ip: unknown, i) => {
    const address = typeof ip === 'object' && ip !== null ? (ip as { address?: unknown }).address : undefined;
    if (typeof address !== 'string' || !/^[0-9a-f.:]+\/\d{1,3}$/i.test(address)) {
      throw new Error(`the plugin result's ips[${i}].address is not a CIDR address: ${JSON.stringify(address)}`);
    }
    return address;
  });
  return { raw: raw as Record<string, unknown>, addresses };
}

/** `code: msg (details)` from a CNI error object on stdout, or undefined when stdout is not one. */
export function parseCniError(stdout: string): string | undefined {
  try {
    const e = JSON.parse(stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code !== 'number' || typeof e.msg !== 'string') return undefined;
    return `CNI error ${e.code}: ${e.msg}${typeof e.details === 'string' && e.details !== '' ? ` (${e.details})` : ''}`;
  } catch {
    return undefined;
  }
}

/** The IPv4 address (no prefix) among a result's addresses: what probes ping. */
export function firstIPv4(addresses: readonly string[]): string | undefined {
  return addresses.map((a) => a.split('/')[0] ?? '').find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
}
