// Pure diffing for the iptables backend: desired ruleset + parsed iptables-save → a report and
// the iptables-restore --noflush input that fixes the difference in one atomic transaction.
// Declaring ":CHAIN - [0:0]" under --noflush creates the chain or flushes it, which is how an
// owned chain is rebuilt in order. Rules in chains we do not own are deleted one copy per
// "-D" line, so the plan must know how many copies exist: hence plan from a fresh save.
import { describeRule, formatSpec, restoreScript, ruleTarget, specKey, type SavedState } from './iptables-save.ts';
import type { CheckResult, IptablesRuleset, IptablesSpec } from './model.ts';

export interface IptablesPlan {
  check: CheckResult;
  /** iptables-restore --noflush input, or undefined when nothing needs doing. */
  script: string | undefined;
}

function countIn(list: readonly IptablesSpec[], spec: IptablesSpec): number {
  const key = specKey(spec);
  return list.filter((s) => specKey(s) === key).length;
}

function addLine(lines: Map<string, string[]>, table: string, line: string): void {
  const l = lines.get(table) ?? [];
  l.push(line);
  lines.set(table, l);
}

function script(lines: Map<string, string[]>): string | undefined {
  const out = restoreScript(lines);
  return out === '' ? undefined : out;
}

export function planEnsure(ruleset: IptablesRuleset, state: SavedState): IptablesPlan {
  const missing: string[] = [];
  const unexpected: string[] = [];
  const lines = new Map<string, string[]>();
  for (const chain of ruleset.chains) {
    const actual = state.get(chain.table)?.get(chain.name);
    const desired = chain.rules;
    const same = actual !== undefined && actual.length === desired.length && actual.every((s, i) => specKey(s) === specKey(desired[i] ?? []));
    if (same) continue;
    const have = actual ?? [];
    const before = missing.length + unexpected.length;
    if (actual === undefined) missing.push(`chain: -t ${chain.table} -N ${chain.name}`);
    for (const spec of desired) {
      if (countIn(have, spec) === 0) missing.push(describeRule(chain.table, chain.name, spec));
    }
    for (const [i, spec] of have.entries()) {
      const wanted = countIn(desired, spec);
      const seen = countIn(have.slice(0, i + 1), spec);
      if (wanted === 0) unexpected.push(`foreign rule in ${chain.name}: ${describeRule(chain.table, chain.name, spec)}`);
      else if (seen > wanted) unexpected.push(`duplicate: ${describeRule(chain.table, chain.name, spec)}`);
    }
    if (actual !== undefined && missing.length + unexpected.length === before) {
      unexpected.push(`rules of ${chain.table} ${chain.name} are out of order`);
    }
    addLine(lines, chain.table, `:${chain.name} - [0:0]`);
    for (const spec of desired) addLine(lines, chain.table, `-A ${chain.name} ${formatSpec(spec)}`);
  }
  for (const jump of ruleset.jumps) {
    const copies = countIn(state.get(jump.table)?.get(jump.chain) ?? [], jump.spec);
    if (copies === 1) continue;
    if (copies === 0) missing.push(describeRule(jump.table, jump.chain, jump.spec));
    else unexpected.push(`${copies} copies of: ${describeRule(jump.table, jump.chain, jump.spec)}`);
    for (let i = 0; i < copies; i++) addLine(lines, jump.table, `-D ${jump.chain} ${formatSpec(jump.spec)}`);
    addLine(lines, jump.table, `-A ${jump.chain} ${formatSpec(jump.spec)}`);
  }
  const inSync = missing.length === 0 && unexpected.length === 0;
  return { check: { inSync, missing, unexpected }, script: inSync ? undefined : script(lines) };
}

/**
 * Deletes every copy of the ruleset's jumps, every rule anywhere in the table that jumps to a
 * chain we own (older flannel versions and the bridge plugin's comment-less rules included),
 * then flushes and deletes the owned chains. Returns undefined when nothing is installed.
 */
export function planRemove(ruleset: IptablesRuleset, state: SavedState): string | undefined {
  const lines = new Map<string, string[]>();
  const tables = new Set([...ruleset.chains.map((c) => c.table), ...ruleset.jumps.map((j) => j.table)]);
  for (const table of tables) {
    const saved = state.get(table);
    if (saved === undefined) continue;
    const owned = ruleset.chains.filter((c) => c.table === table && saved.has(c.name)).map((c) => c.name);
    const jumpKeys = new Set(ruleset.jumps.filter((j) => j.table === table).map((j) => `${j.chain}\0${specKey(j.spec)}`));
    for (const [chain, rules] of saved) {
      if (owned.includes(chain)) continue; // flushed below
      for (const spec of rules) {
        const target = ruleTarget(spec);
        if ((target !== undefined && owned.includes(target)) || jumpKeys.has(`${chain}\0${specKey(spec)}`)) {
          addLine(lines, table, `-D ${chain} ${formatSpec(spec)}`);
        }
      }
    }
    for (const name of owned) {
      addLine(lines, table, `-F ${name}`);
      addLine(lines, table, `-X ${name}`);
    }
  }
  return script(lines);
}
