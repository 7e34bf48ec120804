// Statistics and the written report of the CNI benchmark: the table printed to stdout and the
// section of BENCHMARKS.md between the bench:cni markers.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { median } from '../stats.ts';

export { median, percentile } from '../stats.ts';

export const START_MARKER = '<!-- bench:cni:start -->';
export const END_MARKER = '<!-- bench:cni:end -->';


/** One variant's figures in one round, all in milliseconds. */
export interface Figures {
  addP50: number;
  addP99: number;
  delP50: number;
  delP99: number;
  burstAdd: number;
  burstDel: number;
  /** Exec + answer with no work (CNI VERSION), p50. */
  versionP50: number;
}

export const FIGURES: { key: keyof Figures; label: string; goal: boolean }[] = [
  { key: 'addP50', label: 'ADD p50', goal: true },
  { key: 'addP99', label: 'ADD p99', goal: false },
  { key: 'delP50', label: 'DEL p50', goal: false },
  { key: 'delP99', label: 'DEL p99', goal: false },
  { key: 'burstAdd', label: 'burst: {n} concurrent ADDs, wall', goal: true },
  { key: 'burstDel', label: 'burst: {n} concurrent DELs, wall', goal: true },
  { key: 'versionP50', label: 'exec + empty answer (VERSION) p50', goal: false },
];

export interface VariantSummary {
  name: string;
  label: string;
  rounds: Figures[];
  /** Median over rounds, per figure. */
  median: Figures;
}

export function summarise(name: string, label: string, rounds: Figures[]): VariantSummary {
  const m = {} as Figures;
  for (const { key } of FIGURES) m[key] = median(rounds.map((r) => r[key]));
  return { name, label, rounds, median: m };
}

export function ms(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function range(xs: number[]): string {
  return xs.length > 1 ? ` (${ms(Math.min(...xs))}–${ms(Math.max(...xs))})` : '';
}

function ratio(a: number, b: number, goal: boolean): string {
  const r = a / b;
  if (!Number.isFinite(r)) return 'n/a';
  return `${r.toFixed(2)}${goal ? (r <= 1 ? ' ✅' : ' ❌') : ''}`;
}

/**
 * The main table: one row per figure, one column per variant (median over rounds, with the
 * range over rounds), then the ratio of each weft variant to the reference.
 */
export function table(variants: VariantSummary[], referenceName: string, burst: number): string {
  const ref = variants.find((v) => v.name === referenceName);
  const weft = variants.filter((v) => v.name !== referenceName);
  const head = ['figure (ms)', ...variants.map((v) => v.label), ...(ref ? weft.map((v) => `${v.label} / reference`) : [])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const f of FIGURES) {
    const cells = variants.map((v) => `${ms(v.median[f.key])}${range(v.rounds.map((r) => r[f.key]))}`);
    const ratios = ref ? weft.map((v) => ratio(v.median[f.key], ref.median[f.key], f.goal && v.name === 'server')) : [];
    const label = f.label.replace('{n}', String(burst));
    lines.push(`| ${f.goal ? `**${label}**` : label} | ${[...cells, ...ratios].join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface RoundRow { round: number; position: number; label: string; load: number; figures: Figures }

/** Every variant in every round, in the order they ran, with the 1-min load average at its start. */
export function perRoundTable(rows: RoundRow[], burst: number): string {
  const head = ['round', 'variant (in run order)', 'load', ...FIGURES.map((f) => f.label.replace('{n}', String(burst)))];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) {
    lines.push(`| ${r.round} | ${r.position}. ${r.label} | ${r.load.toFixed(1)} | ${FIGURES.map((f) => ms(r.figures[f.key])).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Replaces the bench:cni section of file (or appends it; creates the file if missing). */
export function writeSection(file: string, body: string): void {
  const section = `${START_MARKER}\n${body.trim()}\n${END_MARKER}`;
  if (!existsSync(file)) {
    writeFileSync(file, `# Benchmarks\n\nGenerated sections are rewritten by their benchmark; edit outside the markers.\n\n${section}\n`);
    return;
  }
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(START_MARKER);
  const end = text.indexOf(END_MARKER);
  if (start >= 0 && end > start) {
    writeFileSync(file, `${text.slice(0, start)}${section}${text.slice(end + END_MARKER.length)}`);
  } else {
    writeFileSync(file, `${text.trimEnd()}\n\n${section}\n`);
  }
}
