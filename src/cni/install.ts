// `weft install-cni`: what the DaemonSet's init container does on every node. It puts the
// static CNI front end in the runtime's plugin dir as `weft`, the reference plugins the conflist
// chains (portmap) and the runtime itself needs (loopback) where the node has none (EKS AL2023
// images ship an empty /opt/cni/bin), and the conflist in the runtime's config dir.
// Every file is written atomically: a temp file in the same directory, fsync, rename (the
// runtime never runs a half-written plugin nor loads a half-written config, and a plugin being
// executed is replaced, not overwritten). A node's own plugin is never replaced. Everything is
// checked before the first write, so a refusal leaves the node as it was.
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { basename, join } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';
import { parsePluginConfig } from './config.ts';
import { ID_PATTERN } from './spec.ts';

export const DEFAULT_CONF_NAME = '05-weft.conflist';
export const DEFAULT_PLUGINS_DIR = '/usr/lib/cni';
export const DEFAULT_PLUGINS = ['portmap', 'loopback'] as const;
/** The name runtimes exec for `"type": "weft"`. */
export const FRONT_END_NAME = 'weft';
/** A conflist is a few hundred bytes; a ConfigMap value is at most 1 MiB anyway. */
export const MAX_CONFLIST_BYTES = 64 << 10;
/** A plugin binary is a few MB; refuse to copy anything absurd into memory. */
const MAX_BINARY_BYTES = 256 << 20;
/** The files containerd and CRI-O consider in a conf dir (podman: .conflist only). */
const CONFIG_EXTENSIONS = ['.conf', '.conflist', '.json'];
const PLUGIN_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

export interface InstallCniOptions {
  /** The conflist to install (the ConfigMap's cni-conf.json). */
  conflist: string;
  confDir: string;
  confName: string;
  binDir: string;
  /** The static front end (build/weft-cni), installed as <binDir>/weft. */
  frontEnd: string;
  /** Where the image keeps the reference plugins. */
  pluginsDir: string;
  /** Reference plugins to install where the node lacks them. */
  plugins: string[];
}

export type FileAction = 'installed' | 'updated' | 'unchanged';

export interface InstallReport {
  frontEnd: { path: string; action: FileAction };
  /** kept: the node has its own, which is never replaced. */
  plugins: { name: string; path: string; action: 'installed' | 'kept' }[];
  conflist: { path: string; action: FileAction };
  /** Config files in confDir that sort before ours: the runtime uses the first, so not weft's. */
  shadowedBy: string[];
}

const invalid = (message: string): WeftError => new WeftError('WEFT_INVALID_CONFIG', message);

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw new WeftError('WEFT_IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function readBounded(path: string, max: number, what: string): Buffer {
  const st = statOrUndefined(path);
  if (!st) throw invalid(`${what} ${path} does not exist`);
  if (!st.isFile()) throw invalid(`${what} ${path} is not a regular file`);
  if (st.size > max) throw invalid(`${what} ${path} is ${st.size} bytes, over the ${max}-byte limit`);
  try {
    const data = readFileSync(path);
    if (data.length > max) throw invalid(`${what} ${path} grew over the ${max}-byte limit while being read`);
    return data;
  } catch (e) {
    if (e instanceof WeftError) throw e;
    throw new WeftError('WEFT_IO', `cannot read ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The conflist's plugin types, after checking it is one the runtime and weft's plugin accept. */
export function checkConflist(text: string, source: string): string[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalid(`the conflist ${source} is not valid JSON: ${(e as Error).message}`);
  }
  const bad = (why: string): WeftError => invalid(`the conflist ${source} ${why}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be a JSON object');
  const list = raw as Record<string, unknown>;
  if (typeof list.cniVersion !== 'string' || list.cniVersion === '') throw bad('has no "cniVersion"');
  if (typeof list.name !== 'string' || !ID_PATTERN.test(list.name)) throw bad('needs a "name" of letters, digits, "_", "." and "-"');
  if (!Array.isArray(list.plugins) || list.plugins.length === 0) throw bad('needs a non-empty "plugins" list');
  const types: string[] = [];
  for (const [i, p] of (list.plugins as unknown[]).entries()) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) throw bad(`has plugins[${i}] that is not an object`);
    const type = (p as Record<string, unknown>).type;
    if (typeof type !== 'string' || !PLUGIN_NAME.test(type)) throw bad(`has plugins[${i}] without a plugin "type" (a file name in the plugin dir)`);
    // weft's own entry must be one the weft plugin accepts, exactly as the runtime will hand it over.
    if (type === FRONT_END_NAME) {
      try {
        parsePluginConfig({ ...(p as Record<string, unknown>), cniVersion: list.cniVersion, name: list.name });
      } catch (e) {
        throw bad(`has a weft plugin the plugin would refuse: ${(e as Error).message}`);
      }
    }
    types.push(type);
  }
  if (!types.includes(FRONT_END_NAME)) throw bad(`does not use the weft plugin (no "type": "${FRONT_END_NAME}"): pods would not get weft's network`);
  return types;
}

/** Config file names in dir that the runtime would pick before `ours` (byte order, as containerd sorts). */
export function configsBefore(dir: string, ours: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw new WeftError('WEFT_IO', `cannot list ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const mine = Buffer.from(ours);
  return names
    .filter((n) => n !== ours && CONFIG_EXTENSIONS.some((ext) => n.endsWith(ext)))
    .filter((n) => Buffer.compare(Buffer.from(n), mine) < 0)
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes data to path atomically with the given mode. With noReplace, an existing path is
 * left alone (a hard link of the temp file fails on it) and false is returned.
 */
export function writeAtomic(path: string, data: Buffer, mode: number, o: { noReplace?: boolean } = {}): boolean {
  const dir = join(path, '..');
  // Not a config or plugin name the runtime would pick up: a leading dot and a .tmp suffix.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  let placed = true;
  try {
    rmSync(tmp, { force: true });
    const fd = openSync(tmp, 'wx', mode);
    try {
      for (let off = 0; off < data.length;) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (o.noReplace) {
      // link(2) never replaces: a file that appeared since the check stays the node's.
      try {
        linkSync(tmp, path);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') throw e;
        placed = false;
      }
      rmSync(tmp, { force: true });
    } else {
      renameSync(tmp, path);
    }
    fsyncDir(dir);
    return placed;
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new WeftError('WEFT_IO', `cannot write ${path}: ${(e as Error).message}; ${dir} must be a writable directory (the DaemonSet mounts the node's directory there)`, { cause: e });
  }
}

/** Installs data at path unless it is already there with that content; mode is applied on write. */
function installFile(path: string, data: Buffer, mode: number, max: number): FileAction {
  const st = statOrUndefined(path);
  if (st?.isFile() && st.size === data.length && (st.mode & 0o777) === mode && readBounded(path, max, 'file').equals(data)) return 'unchanged';
  writeAtomic(path, data, mode);
  return st ? 'updated' : 'installed';
}

function checkOptions(o: InstallCniOptions): void {
  if (!/^[^/\0]+\.conflist$/.test(o.confName) || o.confName.startsWith('.')) {
    throw invalid(`--conf-name ${JSON.stringify(o.confName)}: expected a file name ending in .conflist (podman reads only those), e.g. ${DEFAULT_CONF_NAME}`);
  }
  for (const p of o.plugins) {
    if (!PLUGIN_NAME.test(p)) throw invalid(`--plugins: ${JSON.stringify(p)} is not a plugin name (a file name in ${o.pluginsDir})`);
    if (p === FRONT_END_NAME) throw invalid(`--plugins: "${FRONT_END_NAME}" is the front end, installed from --front-end`);
  }
}

export function installCni(o: InstallCniOptions): InstallReport {
  checkOptions(o);
  // Everything is read and checked first: a refusal leaves the node as it was.
  const conflistText = readBounded(o.conflist, MAX_CONFLIST_BYTES, 'conflist');
  const types = checkConflist(conflistText.toString('utf8'), o.conflist);
  const frontEnd = readBounded(o.frontEnd, MAX_BINARY_BYTES, 'CNI front end (--front-end)');
  const plugins = [...new Set(o.plugins)].map((name) => {
    const path = join(o.binDir, name);
    const hostHas = statOrUndefined(path) !== undefined;
    const source = join(o.pluginsDir, name);
    return { name, path, data: hostHas ? undefined : readBounded(source, MAX_BINARY_BYTES, `plugin ${name} (--plugins-dir)`) };
  });
  for (const type of types) {
    if (type === FRONT_END_NAME || o.plugins.includes(type)) continue;
    if (statOrUndefined(join(o.binDir, type)) === undefined) {
      throw invalid(`the conflist chains "${type}", but ${join(o.binDir, type)} does not exist and --plugins does not list it: pods would fail to start; add it to --plugins (from ${o.pluginsDir}) or remove it from the conflist`);
    }
  }
  for (const dir of [o.binDir, o.confDir]) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (e) {
      throw new WeftError('WEFT_IO', `cannot create ${dir}: ${(e as Error).message}`, { cause: e });
    }
  }

  const frontEndPath = join(o.binDir, FRONT_END_NAME);
  const report: InstallReport = {
    frontEnd: { path: frontEndPath, action: installFile(frontEndPath, frontEnd, 0o755, MAX_BINARY_BYTES) },
    plugins: plugins.map((p) => ({
      name: p.name, path: p.path,
      action: p.data !== undefined && writeAtomic(p.path, p.data, 0o755, { noReplace: true }) ? 'installed' as const : 'kept' as const,
    })),
    // Written last: the runtime starts using weft once the config is there, and by then every plugin it names is.
    conflist: { path: join(o.confDir, o.confName), action: installFile(join(o.confDir, o.confName), conflistText, 0o644, MAX_CONFLIST_BYTES) },
    shadowedBy: configsBefore(o.confDir, o.confName),
  };
  return report;
}

export function renderInstallReport(r: InstallReport): string {
  const lines = [`${r.frontEnd.action} ${r.frontEnd.path} (the weft CNI front end)`];
  for (const p of r.plugins) lines.push(p.action === 'kept' ? `kept ${p.path} (the node's own)` : `installed ${p.path}`);
  lines.push(`${r.conflist.action} ${r.conflist.path}`);
  return `${lines.join('\n')}\n`;
}

/** The one-line warning when another config wins over ours, or undefined. */
export function shadowWarning(r: InstallReport, confDir: string, confName: string): string | undefined {
  if (r.shadowedBy.length === 0) return undefined;
  return `weft install-cni: warning: ${r.shadowedBy.map((n) => join(confDir, n)).join(', ')} sort${r.shadowedBy.length === 1 ? 's' : ''} before ${confName}, so the container runtime uses ${r.shadowedBy.length === 1 ? 'it' : 'the first'}, not weft: remove ${r.shadowedBy.length === 1 ? 'it' : 'them'} (the AWS VPC CNI leaves 10-aws.conflist; weft doctor shows how) or choose a --conf-name that sorts first`;
}
