// Builds weft's two native pieces with the system C compiler:
//  - build/weft_native.node: the Node-API addon (netlink sockets, flock, SO_PEERCRED);
//  - build/weft-cni: the static CNI front end that container runtimes exec.
// Node-API headers come from the node-api-headers package, so no Node source download
// is needed (this machine reaches only the npm and Debian registries).
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const out = join(root, 'build');
mkdirSync(out, { recursive: true });
const headers = dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json'));

interface Target { output: string; sources: string[]; flags: string[] }
const targets: Target[] = [
  {
    output: join(out, 'weft_native.node'),
    sources: [join(root, 'src/native/weft_native.c')],
    flags: ['-shared', '-fPIC', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=weft_native', '-I', join(headers, 'include')],
  },
  {
    output: join(out, 'weft-cni'),
    sources: [join(root, 'src/cni/shim/weft-cni.c')],
    // The standalone plugin this front end falls back to when no CNI server is running.
    flags: ['-static', `-DWEFT_FALLBACK="${join(root, 'bin', 'weft')}"`],
  },
];

const newest = (files: string[]): number => Math.max(...files.map((f) => statSync(f).mtimeMs));
for (const t of targets) {
  if (existsSync(t.output) && statSync(t.output).mtimeMs >= newest(t.sources)) continue;
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', ...t.flags, '-o', t.output, ...t.sources], { stdio: 'inherit' });
  console.log(`built ${t.output}`);
}
