// Summarises a V8 .cpuprofile (node --cpu-prof): self time up to a cut-off, by source file
// (weft's own modules by path, dependencies by package) and the top functions.

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function where(url: string): string {
  if (url === '') return '(native/V8)';
  if (url.startsWith('wasm://')) return 'wasm (Node\'s built-in TypeScript stripper, amaro/SWC)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return `npm:${pkg[1]}`;
  const src = /\/(src|benchmarks)\/(.+)$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith('node:')) return url.replace(/^node:internal\//, 'node:');
  return url.replace(/^file:\/\//, '');
}

/** One paragraph: where the CPU went in the first `cutoffMs` of the profile. */
export function summariseProfile(p: CpuProfile, cutoffMs: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  let t = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += (p.timeDeltas[i] ?? 0) / 1000;
    if (t > cutoffMs) break;
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? 0) / 1000);
  }
  const byFile = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const fn = n.callFrame.functionName;
    if (fn === '(idle)') {
      idle += ms;
      continue;
    }
    total += ms;
    const file = fn === '(garbage collector)' ? '(garbage collector)' : fn === '(program)' ? '(program: V8/Node outside JS)' : where(n.callFrame.url);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
    const label = `${fn || '(anonymous)'} ${where(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    byFn.set(label, (byFn.get(label) ?? 0) + ms);
  }
  const top = (m: Map<string, number>, k: number): string =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, ms]) => `${name} ${ms.toFixed(0)} ms (${((100 * ms) / total).toFixed(0)} %)`).join('; ');
  return `in the first ${cutoffMs.toFixed(0)} ms the main thread was busy ${total.toFixed(0)} ms (idle ${idle.toFixed(0)} ms). Self time by file: ${top(byFile, 8)}. Top functions: ${top(byFn, 8)}.`;
}
