// How the lab runs `weft` for its long-lived daemons (each node's agent or cni-server): from
// the bundle build/weft.mjs when it is built, as a node would run a shipped weft (one file,
// parsed once, a faster start), else from the TypeScript sources through bin/weft, with a
// warning, so a checkout without a build still works. A bundle older than any source file
// is not used either: it would run yesterday's code (flags it does not know, fixes it lacks).
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_NODE, REPO_ROOT, WEFT_BIN, WEFT_BUNDLE } from './paths.ts';

export interface WeftLauncher {
  /** The argv prefix that runs `weft`: the subcommand and its flags follow. */
  argv: string[];
  /** Set when the bundle is missing and the sources are used instead. */
  warning?: string;
}

const readable = (path: string, mode: number): boolean => {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
};

/** The newest modification time of a .ts file under dir (0 when there is none). */
export function newestSourceMtime(dir: string): number {
  let newest = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!e.endsWith('.ts') || e.endsWith('.test.ts')) continue;
    try {
      newest = Math.max(newest, statSync(join(dir, e)).mtimeMs);
    } catch {
      // vanished while we looked
    }
  }
  return newest;
}

export interface LauncherPaths {
  bundle: string;
  node: string;
  bin: string;
  /** The sources the bundle is built from. */
  sources: string;
}

const DEFAULT_PATHS: LauncherPaths = { bundle: WEFT_BUNDLE, node: PROJECT_NODE, bin: WEFT_BIN, sources: join(REPO_ROOT, 'src') };

export function weftLauncher(paths: LauncherPaths = DEFAULT_PATHS): WeftLauncher {
  const fromSources = (why: string): WeftLauncher => ({
    argv: [paths.bin],
    warning: `${paths.bundle} ${why} (npm run build:native): the lab's daemons run from the TypeScript sources, which start slower than a shipped weft`,
  });
  if (!readable(paths.bundle, constants.R_OK)) return fromSources('is not built');
  if (statSync(paths.bundle).mtimeMs < newestSourceMtime(paths.sources)) return fromSources('is older than the sources');
  const node = readable(paths.node, constants.X_OK) ? paths.node : process.execPath;
  return { argv: [node, paths.bundle] };
}
