// The iptables-save / iptables-restore text format: parse what -save prints, and quote what
// -restore reads. Both use the same tokenizer rules (whitespace separates; double quotes group;
// inside quotes a backslash escapes the next character), so a spec read from -save can be fed
// back to -restore ("-D CHAIN <spec>") unchanged.
import type { IptablesSpec } from './model.ts';

/** Rules per chain, in kernel order. Declared chains without rules map to []. */
export type SavedTable = Map<string, IptablesSpec[]>;
export type SavedState = Map<string, SavedTable>;

export function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let cur = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      inToken = true;
    } else if (/\s/.test(ch)) {
      if (inToken) tokens.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += ch;
      inToken = true;
    }
  }
  if (inToken) tokens.push(cur);
  return tokens;
}

export function quoteToken(token: string): string {
  return /^[A-Za-z0-9_./:,=+@%!-]+$/.test(token) ? token : `"${token.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

export function formatSpec(spec: IptablesSpec): string {
  return spec.map(quoteToken).join(' ');
}

/** How reports name a rule: the iptables command line that would add it. */
export function describeRule(table: string, chain: string, spec: IptablesSpec): string {
  return `-t ${table} -A ${chain} ${formatSpec(spec)}`;
}

export function specKey(spec: IptablesSpec): string {
  return spec.join('\0');
}

export function parseIptablesSave(text: string): SavedState {
  const state: SavedState = new Map();
  let table: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      table = new Map();
      state.set(line.slice(1), table);
    } else if (line === 'COMMIT') {
      table = undefined;
    } else if (table !== undefined && line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0] ?? '';
      if (!table.has(name)) table.set(name, []);
    } else if (table !== undefined && line.startsWith('-A ')) {
      const [, chain, ...spec] = tokenize(line);
      if (chain === undefined) continue;
      const rules = table.get(chain) ?? [];
      rules.push(spec);
      table.set(chain, rules);
    }
  }
  return state;
}

/** The target chain of a rule (-j X or -g X), if any. */
export function ruleTarget(spec: IptablesSpec): string | undefined {
  for (let i = 0; i + 1 < spec.length; i++) {
    if (spec[i] === '-j' || spec[i] === '-g') return spec[i + 1];
  }
  return undefined;
}

/** An iptables-restore input: one *table … COMMIT block per table that has lines. */
export function restoreScript(tables: ReadonlyMap<string, readonly string[]>): string {
  let out = '';
  for (const [table, lines] of tables) {
    if (lines.length > 0) out += `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
  }
  return out;
}
