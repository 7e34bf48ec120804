// What another pod network (the AWS VPC CNI above all) left on this node that gets in weft's
// way, found by the agent (a warning in its log and status) and by `weft doctor`:
//   - CNI configs: containerd uses the first config file of its conf dir in byte order, so a
//     file that sorts before weft's own (05-weft.conflist) decides every new pod's network; and
//     the VPC CNI's 10-aws.conflist, which wins again as soon as weft's config is gone;
//   - iptables chains named AWS-SNAT-CHAIN-<n> / AWS-CONNMARK-CHAIN-<n>, the VPC CNI's SNAT of
//     traffic leaving the VPC and its connection marks, written for pods with VPC addresses.
// Each finding carries the exact commands that remove it. A config that sorts before weft's
// means pods here do not get weft's network, so it is the one finding that makes the node
// not ready; the others are warnings. The decisions are pure functions over what was read;
// the readers are small and bounded.
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoCode } from '../errors.ts';
import { localRunner, type Runner } from '../firewall/exec.ts';
import { iptablesCommand, type IptablesVariant } from '../firewall/iptables.ts';
import { parseIptablesSave, ruleTarget } from '../firewall/iptables-save.ts';
import type { Logger } from '../log/logger.ts';
import type { NodeWarning } from './status.ts';

/** What weft's manifests install: "05" sorts before 10-aws, 10-flannel and 10-weave. */
export const WEFT_CONFLIST = '05-weft.conflist';
/** The readiness condition a shadowing config fails. */
export const CNI_CONFIG_CONDITION = 'cni-config';
/** The VPC CNI's chains: AWS-SNAT-CHAIN-0/1 and AWS-CONNMARK-CHAIN-0/1 on its nodes. */
export const AWS_CHAIN = /^AWS-(?:SNAT|CONNMARK)-CHAIN-\d+$/;
const AWS_CONFLIST = '10-aws.conflist';
/** The plugin types whose config gives pods weft's network: weft, and flannel's (it reads the subnet.env weft writes). */
const WEFT_TYPES = new Set(['weft', 'flannel']);

/** Config files beyond this many are not read (a conf dir holds a handful). */
const MAX_CONF_FILES = 200;
/** A CNI config is a few hundred bytes; anything past this is not parsed. */
const MAX_CONF_BYTES = 64 << 10;

/** One config file the runtime would consider, as read. */
export interface ConfFile {
  name: string;
  /** Its plugins' types in order; undefined when it could not be read or parsed (`error` says why). */
  types: string[] | undefined;
  error?: string;
}

export interface LeftoverReport {
  /** Problems, each with its fix: severity "blocks-pods" (readiness) or "leftover" (a warning). */
  findings: NodeWarning[];
  /** Facts worth printing that are not problems (which config is weft's). */
  notes: string[];
  /** Checks that could not run, with why (a clean report is only clean if this is empty). */
  notChecked: string[];
}

/** containerd's rule (libcni ConfFiles): these extensions only. */
export function isConfFileName(name: string): boolean {
  return /\.(?:conf|conflist|json)$/.test(name);
}

/** Go's sort.Strings: by bytes, not by UTF-16 code units. */
export function sortByBytes(names: readonly string[]): string[] {
  return [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** The plugin types of a .conf (one `type`) or a .conflist (`plugins[].type`); undefined if it is neither. */
export function pluginTypes(text: string): string[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  if ('plugins' in doc && Array.isArray(doc.plugins)) {
    return doc.plugins.map((p: unknown) => (typeof p === 'object' && p !== null && 'type' in p && typeof p.type === 'string' ? p.type : '?'));
  }
  return 'type' in doc && typeof doc.type === 'string' ? [doc.type] : undefined;
}

/** A shell word: as is when plain, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:,=+@%-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

const isAws = (f: ConfFile): boolean => f.name === AWS_CONFLIST || (f.types?.includes('aws-cni') ?? false);
const isWeft = (f: ConfFile): boolean => f.types?.some((t) => WEFT_TYPES.has(t)) ?? false;

function describeConf(f: ConfFile): string {
  if (f.types === undefined) return `${f.name} (${f.error ?? 'not a CNI config'})`;
  return `${f.name} (${f.types.join(', ') || 'no plugins'}${isAws(f) ? ': the AWS VPC CNI\'s' : ''})`;
}

/** A foreign config out of the way: the VPC CNI's is deleted; anyone else's renamed, which keeps it. */
function moveAside(dir: string, f: ConfFile): string {
  const path = join(dir, f.name);
  return isAws(f) ? `rm ${shellWord(path)}` : `mv ${shellWord(path)} ${shellWord(`${path}.disabled`)}`;
}

/** The findings about one conf dir's files, given in the runtime's order (sortByBytes). */
export function confLeftovers(dir: string, files: readonly ConfFile[]): LeftoverReport {
  const report: LeftoverReport = { findings: [], notes: [], notChecked: [] };
  const oursAt = files.findIndex(isWeft);
  const ours = files[oursAt];
  const before = oursAt > 0 ? files.slice(0, oursAt) : [];
  if (ours === undefined) {
    report.notes.push(`no weft (or flannel) CNI config in ${dir}; on Kubernetes the DaemonSet's init container installs ${WEFT_CONFLIST} there`);
  } else if (before.length === 0) {
    report.notes.push(`weft's CNI config ${join(dir, ours.name)} is the one the container runtime reads (it sorts first)`);
  } else {
    report.findings.push({
      key: 'cni-config order',
      severity: 'blocks-pods',
      message: `${join(dir, before[0]!.name)} sorts before weft's ${ours.name}, so the container runtime gives every new pod on this node its network, not weft's` +
        ` (configs before weft's: ${before.map(describeConf).join('; ')})`,
      fix: before.map((f) => moveAside(dir, f)),
    });
  }
  for (const f of files.slice(Math.max(oursAt, 0))) {
    if (!isAws(f) || f === ours) continue;
    report.findings.push({
      key: `cni-config ${f.name}`,
      severity: 'leftover',
      message: `${join(dir, f.name)} is the AWS VPC CNI's config, left by aws-node; ` +
        (ours ? `weft's ${ours.name} sorts before it, so it is not used now, but it decides new pods' network as soon as weft's config is gone`
          : 'the container runtime gives new pods its network'),
      fix: [moveAside(dir, f)],
    });
  }
  return report;
}

/**
 * The VPC CNI's chains in one iptables build's `-save` output, as one finding whose fix removes
 * them in a working order: the jumps into them from other chains, then a flush of each (which
 * also drops their jumps to each other), then the chains. Empty chains alone are harmless and
 * not a finding (a flush, as Cilium's EKS guide does, is enough), but the fix removes them too.
 */
export function chainLeftovers(command: string, saveOutput: string): NodeWarning[] {
  const deletes: string[] = [];
  const flushes: string[] = [];
  const removes: string[] = [];
  const found: string[] = [];
  for (const [table, chains] of parseIptablesSave(saveOutput)) {
    const aws = [...chains.keys()].filter((c) => AWS_CHAIN.test(c));
    if (aws.length === 0) continue;
    for (const [chain, rules] of chains) {
      if (AWS_CHAIN.test(chain)) continue;
      for (const spec of rules) {
        const target = ruleTarget(spec);
        if (target !== undefined && AWS_CHAIN.test(target)) deletes.push(`${command} -t ${table} -D ${chain} ${spec.map(shellWord).join(' ')}`);
      }
    }
    for (const chain of aws) {
      const n = chains.get(chain)?.length ?? 0;
      if (n > 0) found.push(`${table} ${chain} (${n} rule${n === 1 ? '' : 's'})`);
      flushes.push(`${command} -t ${table} -F ${chain}`);
      removes.push(`${command} -t ${table} -X ${chain}`);
    }
  }
  if (found.length === 0) return [];
  return [{
    key: `iptables ${command}`,
    severity: 'leftover',
    message: `${command} holds the AWS VPC CNI's chains ${found.join(', ')}, left by aws-node: its SNAT of traffic leaving the VPC and its connection marks, written for pods with VPC addresses; weft's own masquerade rules are all this node needs`,
    fix: [...deletes, ...flushes, ...removes],
  }];
}

/** Reads the conf dir the runtime reads: names in its order, each file bounded. */
export async function readConfDir(dir: string): Promise<{ files: ConfFile[]; notes: string[] } | { error: string }> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { files: [], notes: [`${dir} does not exist on this node`] };
    return { error: `cannot list ${dir}: ${(e as Error).message}` };
  }
  const names = sortByBytes(entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && isConfFileName(e.name)).map((e) => e.name));
  const notes = names.length > MAX_CONF_FILES ? [`${dir} holds ${names.length} config files; only the first ${MAX_CONF_FILES} were read`] : [];
  const files: ConfFile[] = [];
  for (const name of names.slice(0, MAX_CONF_FILES)) files.push(await readConfFile(dir, name));
  return { files, notes };
}

async function readConfFile(dir: string, name: string): Promise<ConfFile> {
  let handle;
  try {
    handle = await open(join(dir, name), 'r');
    const buffer = Buffer.alloc(MAX_CONF_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_CONF_BYTES) return { name, types: undefined, error: `over ${MAX_CONF_BYTES >> 10} KiB, not read` };
    const types = pluginTypes(buffer.subarray(0, bytesRead).toString('utf8'));
    return types === undefined ? { name, types, error: 'not a CNI config: not JSON with a type or plugins' } : { name, types };
  } catch (e) {
    return { name, types: undefined, error: `unreadable: ${errnoCode(e) ?? (e as Error).message}` };
  } finally {
    await handle?.close();
  }
}

/** Every iptables build on this node (iptables-nft and iptables-legacy keep separate rules), read with its -save. */
export async function readIptablesChains(run: Runner = localRunner): Promise<{ findings: NodeWarning[]; notChecked: string[] }> {
  const out = { findings: [] as NodeWarning[], notChecked: [] as string[] };
  let seenAny = false;
  for (const variant of ['nft', 'legacy', 'default'] as IptablesVariant[]) {
    if (variant === 'default' && seenAny) break; // `iptables` is one of the two builds already read
    const save = iptablesCommand('ipv4', variant, '-save');
    const r = await run([save]);
    if (r.code === 127) continue;
    seenAny = true;
    if (r.code !== 0) out.notChecked.push(`${save} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] || '(no output)'}`);
    else out.findings.push(...chainLeftovers(iptablesCommand('ipv4', variant), r.stdout));
  }
  return out;
}

export interface FindLeftoversOptions {
  /** The container runtime's CNI conf dir; "" skips it. */
  cniConfDir: string;
  /** Where iptables runs (a test's namespace); default here. */
  runner?: Runner;
}

/** All the checks, on this node. Never rejects: what could not be checked is in notChecked. */
export async function findLeftovers(o: FindLeftoversOptions): Promise<LeftoverReport> {
  const report: LeftoverReport = { findings: [], notes: [], notChecked: [] };
  if (o.cniConfDir !== '') {
    const conf = await readConfDir(o.cniConfDir);
    if ('error' in conf) report.notChecked.push(conf.error);
    else {
      const r = confLeftovers(o.cniConfDir, conf.files);
      report.findings.push(...r.findings);
      report.notes.push(...conf.notes, ...r.notes);
    }
  }
  try {
    const chains = await readIptablesChains(o.runner);
    report.findings.push(...chains.findings);
    report.notChecked.push(...chains.notChecked);
  } catch (e) {
    report.notChecked.push(`iptables could not be read: ${(e as Error).message}`);
  }
  return report;
}

export interface LeftoverWatchOptions {
  check: () => Promise<LeftoverReport>;
  log: Logger;
  /** Between checks: the conf dir can change under a running agent (aws-node still running rewrites its file). */
  everyMs: number;
  /** The reason pods here do not get weft's network, or undefined once they do. */
  onBlocking: (reason: string | undefined) => void;
}

export interface LeftoverWatch {
  /** What is in the way now. */
  warnings(): NodeWarning[];
  /** One check now (the timer runs them too). */
  check(): Promise<void>;
  stop(): void;
}

/** How a finding reads in one log line: the problem, then what to run. */
export function withFix(w: NodeWarning): string {
  return `${w.message}; to remove it, run: ${w.fix.join(' && ')}`;
}

/**
 * The agent's side: checks now and every `everyMs`, logs each finding once when it appears
 * (and once when it is gone), and each check that cannot run once per distinct reason.
 */
export function watchLeftovers(o: LeftoverWatchOptions): LeftoverWatch {
  let current: NodeWarning[] = [];
  const unchecked = new Set<string>();
  let running: Promise<void> | undefined;
  let stopped = false;
  const once = async (): Promise<void> => {
    const report = await o.check();
    if (stopped) return;
    const before = new Map(current.map((w) => [`${w.key}\n${w.message}`, w]));
    for (const w of report.findings) {
      if (!before.delete(`${w.key}\n${w.message}`)) o.log.warn({ about: w.key, severity: w.severity, fix: w.fix }, withFix(w));
    }
    for (const gone of before.values()) if (!report.findings.some((w) => w.key === gone.key)) o.log.info({ about: gone.key }, `resolved: ${gone.message}`);
    for (const why of report.notChecked) {
      if (!unchecked.has(why)) o.log.warn({ about: 'leftovers' }, `could not check this node for another CNI's leftovers: ${why}`);
    }
    unchecked.clear();
    for (const why of report.notChecked) unchecked.add(why);
    current = report.findings;
    const blocking = current.find((w) => w.severity === 'blocks-pods');
    o.onBlocking(blocking ? `${blocking.message}; fix: ${blocking.fix.join(' && ')}` : undefined);
  };
  const check = (): Promise<void> => {
    // One check at a time; a call during one waits for it rather than starting another.
    running ??= once().catch((e: unknown) => o.log.warn({ err: String(e) }, 'checking for leftovers failed')).finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void check(), o.everyMs);
  timer.unref();
  void check();
  return {
    warnings: () => current.map((w) => ({ ...w, fix: [...w.fix] })),
    check,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
