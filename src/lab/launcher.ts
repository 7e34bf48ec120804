// How the lab runs `weft` for its long-lived daemons (each node's agent or cni-server): through
// bin/weft, which runs the agent from the bundle build/weft.mjs when it is newer than every
// source file and the lockfile (one file, parsed once: a faster start and less memory, as a
// shipped weft), else from the TypeScript sources. The lab makes the same test up front so it
// can say which one its agents run, and warn when that is the sources.
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, WEFT_BIN, WEFT_BUNDLE } from './paths.ts';

export interface WeftLauncher {
  /** The argv prefix that runs `weft`: the subcommand and its flags follow. */
  argv: string[];
  /** What `weft agent` runs through it: the bundle's path, or the sources' entry point. */
  agentScript: string;
  /** Set when the agent will run from the sources (no bundle, or a stale one). */
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
    if (!e.endsWith('.ts')) continue; // as bin/weft's test: any .ts file
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
  bin: string;
  /** The sources the bundle is built from, and the lockfile of its dependencies. */
  sources: string;
  lockfile: string;
}

const DEFAULT_PATHS: LauncherPaths = { bundle: WEFT_BUNDLE, bin: WEFT_BIN, sources: join(REPO_ROOT, 'src'), lockfile: join(REPO_ROOT, 'package-lock.json') };

const mtime = (path: string): number => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

export function weftLauncher(paths: LauncherPaths = DEFAULT_PATHS): WeftLauncher {
  const fromSources = (why: string): WeftLauncher => ({
    argv: [paths.bin],
    agentScript: join(paths.sources, 'cli', 'main.ts'),
    warning: `${paths.bundle} ${why} (npm run build:native): the lab's agents run from the TypeScript sources, which start slower and use more memory than a shipped weft`,
  });
  if (!readable(paths.bundle, constants.R_OK)) return fromSources('is not built');
  const built = mtime(paths.bundle);
  if (built < newestSourceMtime(paths.sources) || built < mtime(paths.lockfile)) return fromSources('is older than the sources');
  return { argv: [paths.bin], agentScript: paths.bundle };
}
