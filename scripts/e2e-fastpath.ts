// The end-to-end suite a second time with the fast path on (`npm run test:e2e:fastpath`): every
// agent the tests start, in labs or alone, runs with routed pod links and the tc-eBPF fast
// path (WEFT_POD_LINK=routed, WEFT_FAST_PATH=ebpf), so every lab, failure and runtime test
// proves the fast path breaks nothing. The BPF maps are pinned on a bpffs of this run's own,
// mounted in a temporary directory and unmounted at the end (also on failure or a signal),
// so the machine's /sys/fs/bpf is never touched.
//
// The fast path's own tests (fastpath-*.test.ts) set their flags themselves and ran in the
// first pass; they are not run again.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (process.getuid?.() !== 0) {
  console.error('test:e2e:fastpath needs root (namespaces, BPF); run it as root, as CI does');
  process.exit(1);
}
const dir = mkdtempSync(join(tmpdir(), 'weft-e2e-bpf-'));
const mount = spawnSync('mount', ['-t', 'bpf', 'bpf', dir], { encoding: 'utf8' });
if (mount.status !== 0) {
  rmSync(dir, { recursive: true, force: true });
  console.error(`cannot mount a bpffs at ${dir}: ${mount.stderr.trim()}`);
  process.exit(1);
}
let cleaned = false;
const cleanup = (): void => {
  if (cleaned) return;
  cleaned = true;
  spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
};

const files = readdirSync('test/e2e').filter((f) => f.endsWith('.test.ts') && !f.startsWith('fastpath-')).map((f) => join('test/e2e', f));
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { ...process.env, WEFT_POD_LINK: 'routed', WEFT_FAST_PATH: 'ebpf', WEFT_BPF_DIR: dir },
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
child.on('close', (code, signal) => {
  cleanup();
  process.exit(code ?? (signal ? 1 : 0));
});
