// The proposed changes bench:kube measures without touching src/: each is a bundle built from
// the same sources with the same esbuild settings as scripts/build-native.ts, with one change
// applied at build time by an esbuild plugin, into a scratch directory (its own chunks, a copy
// of the addon). A change that no longer applies (the source moved on) is reported, not run.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';

/** scripts/build-native.ts's settings for weft.mjs; checked against the shipped build's size. */
function settings(root: string, outdir: string, plugins: Plugin[], ascii = false): Parameters<typeof build>[0] {
  return {
    ...(ascii ? { minifyWhitespace: true, legalComments: 'external' as const } : {}),
    entryPoints: { weft: join(root, 'src/cli/main.ts') },
    outdir,
    outExtension: { '.js': '.mjs' },
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    banner: { js: "import { createRequire as __weftCreateRequire } from 'node:module'; const require = __weftCreateRequire(import.meta.url);" },
    logLevel: 'silent',
    plugins,
  };
}

export type ChangeName = 'trim-client' | 'slim-nodes' | 'whole-nodes' | 'ascii-source';

/** What each change does, for the report. */
export const CHANGES: Record<ChangeName, string> = {
  'trim-client': "every value import of '@kubernetes/client-node' resolved to src/kube/client-node.ts, so that the chunk the agent loads holds only the parts weft names",
  'slim-nodes': 'the reflector on /api/v1/nodes keeps only metadata.name, uid, resourceVersion, annotations, spec.podCIDR(s) and status.addresses of each Node (a transform on its list and watch paths)',
  'whole-nodes': "the reflector's slimming undone (it caches whole Nodes, as before src/kube/slim.ts), to show what the slimming saves",
  'ascii-source': "esbuild's minifyWhitespace and legalComments: 'external' in scripts/build-native.ts: without comments the client chunk is pure ASCII (today a few non-ASCII characters in undici's comments and one licence comment make V8 hold the whole chunk's source as a two-byte string, twice its size) and half as long",
};

/** Thrown when a change does not apply to the tree as it is (already made, or the code moved on). */
export class NotApplicable extends Error {}

/** Redirects the package to weft's own re-export of the parts it uses; records who imported it. */
function trimClient(root: string, importers: Set<string>): Plugin {
  const own = join(root, 'src/kube/client-node.ts');
  return {
    name: 'bench-trim-client',
    setup(b) {
      b.onResolve({ filter: /^@kubernetes\/client-node$/ }, (args) => {
        if (args.importer === own) return undefined;
        importers.add(`${args.importer.slice(root.length)} (${args.kind})`);
        return { path: own };
      });
    },
  };
}

const SLIM = `
function __benchSlim(path: string, o: any): any {
  if (path !== '/api/v1/nodes' || typeof o !== 'object' || o === null) return o;
  const m = o.metadata ?? {};
  return {
    metadata: { name: m.name, uid: m.uid, resourceVersion: m.resourceVersion, annotations: m.annotations },
    spec: { podCIDR: o.spec?.podCIDR, podCIDRs: o.spec?.podCIDRs },
    status: { addresses: o.status?.addresses },
  };
}
`;

/** src/kube/reflector.ts with text edits, each of which must match exactly once. */
function editReflector(root: string, name: string, edits: [string, string][], append = ''): Plugin {
  const file = join(root, 'src/kube/reflector.ts');
  return {
    name,
    setup(b) {
      b.onLoad({ filter: /src\/kube\/reflector\.ts$/ }, (args) => {
        if (args.path !== file) return undefined;
        let text = readFileSync(file, 'utf8');
        for (const [from, to] of edits) {
          if (text.split(from).length !== 2) throw new NotApplicable(`src/kube/reflector.ts does not have exactly one "${from}"`);
          text = text.replace(from, to);
        }
        return { contents: text + append, loader: 'ts' };
      });
    },
  };
}

/** Whether the tree's reflector already slims what it caches. */
export const treeSlims = (root: string): boolean => readFileSync(join(root, 'src/kube/reflector.ts'), 'utf8').includes('slim?:');

function slimNodes(root: string): Plugin {
  if (treeSlims(root)) throw new NotApplicable('the reflector already slims what it caches');
  return editReflector(root, 'bench-slim-nodes', [
    ['JSON.parse(JSON.stringify(item)) as T', '__benchSlim(this.o.path, JSON.parse(JSON.stringify(item))) as T'],
    ['this.objects.set(key, obj as T)', 'this.objects.set(key, __benchSlim(this.o.path, obj) as T)'],
  ], SLIM);
}

function wholeNodes(root: string): Plugin {
  if (!treeSlims(root)) throw new NotApplicable('the reflector caches whole objects already');
  return editReflector(root, 'bench-whole-nodes', [['this.o.slim === undefined ? obj : this.o.slim(obj)', 'obj']]);
}

export interface Variant {
  /** the bundle to run */
  bundle: string;
  /** bytes of weft.mjs and its chunks */
  bytes: number;
  /** size of the chunk holding the Kubernetes client (the largest) */
  largestChunk: number;
  /** who imported the whole package (trim-client) */
  importers: string[];
}

export function bundleBytes(dir: string): { bytes: number; largestChunk: number } {
  const chunks = readdirSync(join(dir, 'chunks')).filter((f) => f.endsWith('.mjs')).map((f) => statSync(join(dir, 'chunks', f)).size);
  return { bytes: statSync(join(dir, 'weft.mjs')).size + chunks.reduce((a, b) => a + b, 0), largestChunk: Math.max(0, ...chunks) };
}

/** Builds weft.mjs with the given changes into outdir (its own chunks and a copy of the addon). */
export async function buildVariant(root: string, outdir: string, changes: readonly ChangeName[]): Promise<Variant> {
  mkdirSync(outdir, { recursive: true });
  const importers = new Set<string>();
  const plugins = [
    ...(changes.includes('trim-client') ? [trimClient(root, importers)] : []),
    ...(changes.includes('slim-nodes') ? [slimNodes(root)] : []),
    ...(changes.includes('whole-nodes') ? [wholeNodes(root)] : []),
  ];
  if (changes.includes('ascii-source') && readFileSync(join(root, 'scripts/build-native.ts'), 'utf8').includes('minifyWhitespace')) {
    throw new NotApplicable('scripts/build-native.ts already sets minifyWhitespace');
  }
  try {
    await build(settings(root, outdir, plugins, changes.includes('ascii-source')));
  } catch (e) {
    // esbuild wraps a plugin's error; say plainly that the change does not apply
    const inner = (e as { errors?: { detail?: unknown }[] }).errors?.find((x) => x.detail instanceof NotApplicable)?.detail;
    throw inner ?? e;
  }
  if (changes.includes('trim-client') && importers.size === 0) throw new NotApplicable('nothing but src/kube/client-node.ts imports the package');
  copyFileSync(join(root, 'build', 'weft_native.node'), join(outdir, 'weft_native.node'));
  return { bundle: join(outdir, 'weft.mjs'), ...bundleBytes(outdir), importers: [...importers] };
}

/** Bundles of the client library alone: the parts weft names (src/kube/client-node.ts), and the whole package. */
export async function buildClientOnly(root: string, outdir: string): Promise<{ parts: string; whole: string }> {
  mkdirSync(outdir, { recursive: true });
  const s = settings(root, outdir, []);
  const whole = join(outdir, 'whole-package.mjs');
  writeFileSync(join(outdir, 'whole-package-entry.ts'), "export * from '@kubernetes/client-node';\n");
  await build({ ...s, entryPoints: { 'client-node': join(root, 'src/kube/client-node.ts'), 'whole-package': join(outdir, 'whole-package-entry.ts') }, splitting: false, nodePaths: [join(root, 'node_modules')] });
  return { parts: join(outdir, 'client-node.mjs'), whole };
}
