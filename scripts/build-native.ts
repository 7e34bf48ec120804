// Builds what weft ships, into build/:
//  - weft_native.node: the Node-API addon (netlink sockets, flock, SO_PEERCRED), with cc;
//  - weft-cni: the static CNI front end that container runtimes exec, with cc;
//  - weft_bpf.node: the BPF addon (libbpf: load, pin, tc attach, maps), with cc and -lbpf;
//    separate from weft_native.node so that a host without libbpf.so.1 loses only the fast path;
//  - fastpath.bpf.o: the fast path's tc programs, with clang -target bpf (Debian's clang and
//    libbpf-dev's bpf_helpers.h; no vmlinux.h, the programs declare the kernel types they read);
//  - weft.mjs (+ chunks/): the CLI bundled with esbuild, for the paths where start-up time
//    counts (the standalone CNI plugin); development runs the TypeScript sources directly.
// Node-API headers come from the node-api-headers package, so no Node source download
// is needed (this machine reaches only the npm and Debian registries).
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const out = join(root, 'build');
mkdirSync(out, { recursive: true });
const headers = dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json'));

const fallback = process.env.WEFT_CNI_BUILD_FALLBACK || join(root, 'bin', 'weft-cni-standalone');

interface Target { output: string; sources: string[]; flags: string[]; libs?: string[] }
const targets: Target[] = [
  {
    output: join(out, 'weft_native.node'),
    sources: [join(root, 'src/native/weft_native.c')],
    flags: ['-shared', '-fPIC', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=weft_native', '-I', join(headers, 'include')],
  },
  {
    output: join(out, 'weft-cni'),
    sources: [join(root, 'src/cni/shim/weft-cni.c')],
    // The standalone plugin this front end falls back to when no CNI server is running: the
    // checkout's, unless WEFT_CNI_BUILD_FALLBACK names another path or is "none" (the image's
    // front end, installed on hosts that have no checkout: no fallback, a CNI error instead).
    flags: ['-static', ...(fallback === 'none' ? [] : [`-DWEFT_FALLBACK="${fallback}"`])],
  },
  {
    output: join(out, 'weft_bpf.node'),
    sources: [join(root, 'src/native/weft_bpf.c')],
    flags: ['-shared', '-fPIC', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=weft_bpf', '-I', join(headers, 'include')],
    libs: ['-lbpf'],
  },
];

// Always rebuilt: it takes well under a second, and a stale binary built with other flags
// (such as another checkout's fallback path) would be worse than the wait.
for (const t of targets) {
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', ...t.flags, '-o', t.output, ...t.sources, ...(t.libs ?? [])], { stdio: 'inherit' });
  console.log(`built ${t.output}`);
}

// The BPF object. -g keeps the BTF that libbpf needs (map definitions, CO-RE relocations, the
// kfunc declarations); the UAPI headers include <asm/types.h>, which lives in the multiarch dir.
const multiarch = execFileSync('cc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
const bpfObject = join(out, 'fastpath.bpf.o');
execFileSync('clang', ['-O2', '-g', '-Wall', '-Werror', '-target', 'bpf', ...(multiarch ? ['-I', `/usr/include/${multiarch}`] : []),
  '-c', join(root, 'src/fastpath/bpf/fastpath.bpf.c'), '-o', bpfObject], { stdio: 'inherit' });
console.log(`built ${bpfObject}`);

// Bundled CJS dependencies (pino) call require(); give the ESM bundle one.
const banner = "import { createRequire as __weftCreateRequire } from 'node:module'; const require = __weftCreateRequire(import.meta.url);";
// Code behind a dynamic import() goes into chunks of its own, loaded only when reached: the
// Kubernetes client (~6 MB) is parsed only by kube-store and kube-peers agents, `weft check`
// and the lab, not by every etcd-mode agent (BENCHMARKS.md, agent memory). Old chunks go first.
rmSync(join(out, 'chunks'), { recursive: true, force: true });
await build({
  entryPoints: { weft: join(root, 'src/cli/main.ts') },
  outdir: out,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  // Without comments the client chunk is pure ASCII: a few non-ASCII characters in comments made
  // V8 keep the whole 5.7 MB source as a two-byte string (11 MB); licences go to .LEGAL.txt files.
  minifyWhitespace: true,
  legalComments: 'external',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  banner: { js: banner },
  logLevel: 'warning',
});
console.log(`built ${join(out, 'weft.mjs')}`);
