// How a lab's pods meet their nodes (`lab up --pod-link`, `--fast-path`): every agent of the lab
// gets the same flags. WEFT_POD_LINK and WEFT_FAST_PATH in the environment set the defaults, so a
// whole test suite can run its labs with the fast path on without each test asking for it.
//
// The fast path pins its BPF maps on a bpffs. The lab mounts one bpffs of its own in the lab
// directory (each agent pins under it by its network namespace), so no lab touches the host's
// /sys/fs/bpf, a restarted agent finds its maps again, and `lab down` unmounts it.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError } from '../errors.ts';
import { envValue } from '../agent/options.ts';
import { run } from './run.ts';

export type LabPodLink = 'bridge' | 'routed';
export type LabFastPath = 'none' | 'ebpf';
export const LAB_POD_LINKS: readonly LabPodLink[] = ['bridge', 'routed'];
export const LAB_FAST_PATHS: readonly LabFastPath[] = ['none', 'ebpf'];

export interface LabDataPath {
  podLink: LabPodLink;
  fastPath: LabFastPath;
  /** The lab's bpffs (fast path only). */
  bpfDir: string | null;
}


/**
 * The lab's choice: the options, else the environment, else bridge without a fast path. The
 * fast path is the agents': from the environment it applies only to a lab that runs agents,
 * and routed links only to labs whose pods the weft plugin attaches.
 */
export function resolveDataPath(o: { podLink?: string; fastPath?: string }, labDirectory: string, agents: boolean, env: NodeJS.ProcessEnv = process.env, weftPlugin = true): LabDataPath {
  // Routed links are the weft plugin's: Debian's bridge plugin (--cni bridge) ignores WEFT_POD_LINK.
  // The agent's own reading of its environment (WEFT_POD_LINK or FLANNELD_POD_LINK), so lab and agents agree.
  const podLink = o.podLink ?? (weftPlugin ? envValue('pod-link', env) : undefined) ?? 'bridge';
  if (podLink === 'routed' && !weftPlugin) throw new WeftError('WEFT_LAB', '--pod-link routed needs --cni weft: the reference bridge plugin only bridges');
  const fastPath = o.fastPath ?? (agents ? envValue('fast-path', env) : undefined) ?? 'none';
  if (fastPath !== 'none' && !agents) throw new WeftError('WEFT_LAB', '--fast-path is the agents\': add --store etcd, kube or mesh');
  if (!(LAB_POD_LINKS as readonly string[]).includes(podLink)) throw new WeftError('WEFT_LAB', `--pod-link must be one of ${LAB_POD_LINKS.join(', ')}, got ${JSON.stringify(podLink)}`);
  if (!(LAB_FAST_PATHS as readonly string[]).includes(fastPath)) throw new WeftError('WEFT_LAB', `--fast-path must be one of ${LAB_FAST_PATHS.join(', ')}, got ${JSON.stringify(fastPath)}`);
  if (fastPath === 'ebpf' && podLink !== 'routed') throw new WeftError('WEFT_LAB', '--fast-path ebpf needs --pod-link routed (the fast path redirects into routed pod veths)');
  return { podLink: podLink as LabPodLink, fastPath: fastPath as LabFastPath, bpfDir: fastPath === 'ebpf' ? join(labDirectory, 'bpf') : null };
}

/** The agent flags for it; none for the defaults, so a default lab's command lines stay as they were. */
export function dataPathArgs(d: LabDataPath | undefined): string[] {
  if (d === undefined) return [];
  return [
    ...(d.podLink === 'bridge' ? [] : ['--pod-link', d.podLink]),
    ...(d.fastPath === 'none' ? [] : ['--fast-path', d.fastPath]),
    ...(d.bpfDir === null ? [] : ['--bpf-dir', d.bpfDir]),
  ];
}

/** Mounts the lab's bpffs (once; a mount that is already there is kept). */
export async function mountLabBpffs(d: LabDataPath): Promise<void> {
  if (d.bpfDir === null) return;
  await mkdir(d.bpfDir, { recursive: true, mode: 0o700 });
  if ((await mountsUnder(d.bpfDir)).includes(d.bpfDir)) return;
  const r = await run(['mount', '-t', 'bpf', 'bpf', d.bpfDir]);
  if (r.code !== 0) throw new WeftError('WEFT_LAB', `cannot mount a bpffs at ${d.bpfDir} for the fast path: ${r.stderr.trim()}`);
}

/** Unmounts every mount inside the lab directory (its bpffs), deepest first; `lab down` runs it before removing the directory. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const mounts = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    const r = await run(['umount', m]);
    if (r.code !== 0) throw new WeftError('WEFT_LAB', `cannot unmount ${m}: ${r.stderr.trim()}`);
  }
  return mounts;
}

async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return text.split('\n').map((line) => line.split(' ')[4]).filter((m): m is string => m !== undefined && (m === dir || m.startsWith(prefix)))
    .map((m) => m.replace(/\\040/g, ' '));
}
