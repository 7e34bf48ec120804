// Shared by every benchmark: nearest-rank statistics, and whether a process we started still runs.
import { readFileSync } from 'node:fs';

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** The median of the finite samples (a missed sample may be recorded as Infinity or NaN). */
export function median(xs: readonly number[]): number {
  return percentile(xs.filter(Number.isFinite), 50);
}

/** Running, and not a zombie (cleanups run synchronously, so exited children are not reaped yet). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** A command-line count: an integer from 1 to max, or an error naming the flag. */
export function positive(name: string, text: string | undefined, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max} (got ${text})`);
  return n;
}
