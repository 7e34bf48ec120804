// Pure half of the nftables backend: render an owned table as `nft -f` input, read
// `nft -j list table` output back into the same model, and diff the two. Rules are compared
// as rendered text, so a rule we cannot model (a counter someone added, say) is simply foreign.
import { canonicalCidr, type IpFamily } from './cidr.ts';
import type { CheckResult, NftChain, NftMatch, NftRule, NftTable } from './model.ts';

export const nftFamily = (f: IpFamily): 'ip' | 'ip6' => (f === 'ipv4' ? 'ip' : 'ip6');

/** Numeric values of the named priorities we use (nft prints numbers in JSON). */
const PRIORITY: Record<NftChain['priority'], number> = { srcnat: 100, filter: 0 };

const quote = (s: string): string => `"${s.replace(/"/g, '')}"`;

export function renderRule(family: IpFamily, rule: NftRule): string {
  const parts = rule.matches.map((m) => {
    const left = m.key === 'mark' ? 'meta mark' : `${nftFamily(family)} ${m.key}`;
    return `${left} ${m.op === '!=' ? '!= ' : ''}${m.value}`;
  });
  parts.push(rule.verdict === 'masquerade' && rule.fullyRandom ? 'masquerade fully-random' : rule.verdict);
  return parts.join(' ');
}

/** A transaction that replaces the table atomically ("add" first so "delete" cannot fail). */
export function renderTableReplace(t: NftTable): string {
  const fam = nftFamily(t.family);
  const lines = [`add table ${fam} ${t.name}`, `delete table ${fam} ${t.name}`, `table ${fam} ${t.name} {`];
  if (t.comment !== undefined) lines.push(`\tcomment ${quote(t.comment)}`);
  for (const c of t.chains) {
    lines.push(`\tchain ${c.name} {`, `\t\ttype ${c.type} hook ${c.hook} priority ${c.priority}; policy accept;`);
    if (c.comment !== undefined) lines.push(`\t\tcomment ${quote(c.comment)}`);
    for (const r of c.rules) lines.push(`\t\t${renderRule(t.family, r)}`);
    lines.push('\t}');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Deleting a table that may not exist, in one transaction. */
export function renderTableDelete(t: NftTable): string {
  const fam = nftFamily(t.family);
  return `add table ${fam} ${t.name}\ndelete table ${fam} ${t.name}\n`;
}

export interface InstalledChain {
  type?: string;
  hook?: string;
  prio?: number;
  policy?: string;
  /** Rendered rules, or "<unrecognised: …>" for rules outside our model. */
  rules: string[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseValue(right: unknown): string | undefined {
  try {
    if (typeof right === 'string') return canonicalCidr(right);
    if (isObj(right) && isObj(right.prefix)) return canonicalCidr(`${String(right.prefix.addr)}/${String(right.prefix.len)}`);
  } catch {
    // a set reference ("@name") or anything else that is not an address: not one of ours
  }
  return undefined;
}

function parseExprs(family: IpFamily, exprs: unknown[]): NftRule | undefined {
  const matches: NftMatch[] = [];
  for (const [i, e] of exprs.entries()) {
    if (!isObj(e)) return undefined;
    const last = i === exprs.length - 1;
    if (last && 'return' in e) return { matches, verdict: 'return' };
    if (last && 'accept' in e) return { matches, verdict: 'accept' };
    if (last && 'masquerade' in e) {
      const flags = isObj(e.masquerade) ? e.masquerade.flags : undefined;
      const list = Array.isArray(flags) ? flags : flags === undefined ? [] : [flags];
      if (list.some((f) => f !== 'fully-random')) return undefined;
      return { matches, verdict: 'masquerade', fullyRandom: list.length > 0 };
    }
    const m = e.match;
    if (!isObj(m) || (m.op !== '==' && m.op !== '!=') || !isObj(m.left)) return undefined;
    const { payload, meta } = m.left;
    if (isObj(meta) && meta.key === 'mark' && typeof m.right === 'number') {
      matches.push({ key: 'mark', op: m.op, value: `0x${m.right.toString(16)}` });
    } else if (isObj(payload) && payload.protocol === nftFamily(family) && (payload.field === 'saddr' || payload.field === 'daddr')) {
      const value = parseValue(m.right);
      if (value === undefined) return undefined;
      matches.push({ key: payload.field, op: m.op, value });
    } else {
      return undefined;
    }
  }
  return undefined; // no verdict
}

/** `nft -j list table …` output → chains by name; undefined if the output holds no table. */
export function parseNftTable(family: IpFamily, json: string): Map<string, InstalledChain> | undefined {
  const doc: unknown = JSON.parse(json);
  const items = isObj(doc) && Array.isArray(doc.nftables) ? doc.nftables : [];
  let found = false;
  const chains = new Map<string, InstalledChain>();
  for (const item of items) {
    if (!isObj(item)) continue;
    if (isObj(item.table)) found = true;
    if (isObj(item.chain) && typeof item.chain.name === 'string') {
      const c = item.chain;
      chains.set(c.name as string, {
        type: c.type as string | undefined, hook: c.hook as string | undefined,
        prio: c.prio as number | undefined, policy: c.policy as string | undefined, rules: chains.get(c.name as string)?.rules ?? [],
      });
    }
    if (isObj(item.rule) && typeof item.rule.chain === 'string' && Array.isArray(item.rule.expr)) {
      const chain = chains.get(item.rule.chain) ?? { rules: [] };
      chains.set(item.rule.chain, chain);
      const rule = parseExprs(family, item.rule.expr);
      chain.rules.push(rule ? renderRule(family, rule) : `<unrecognised: ${JSON.stringify(item.rule.expr)}>`);
    }
  }
  return found ? chains : undefined;
}

/** Compares one owned table with what is installed (undefined: table absent). */
export function diffNftTable(t: NftTable, installed: Map<string, InstalledChain> | undefined): CheckResult {
  const missing: string[] = [];
  const unexpected: string[] = [];
  const where = (c: string): string => `${nftFamily(t.family)} ${t.name} ${c}`;
  for (const c of t.chains) {
    const have = installed?.get(c.name);
    const want = c.rules.map((r) => renderRule(t.family, r));
    if (have === undefined) {
      missing.push(...want.map((r) => `${where(c.name)}: ${r}`));
      continue;
    }
    if (have.type !== c.type || have.hook !== c.hook || have.prio !== PRIORITY[c.priority] || have.policy !== 'accept') {
      unexpected.push(`${where(c.name)} is "type ${have.type} hook ${have.hook} priority ${have.prio} policy ${have.policy}"` +
        `, not "type ${c.type} hook ${c.hook} priority ${c.priority} policy accept"`);
    }
    const before = missing.length + unexpected.length;
    for (const r of want) if (!have.rules.includes(r)) missing.push(`${where(c.name)}: ${r}`);
    for (const [i, r] of have.rules.entries()) {
      const wanted = want.filter((w) => w === r).length;
      if (wanted === 0) unexpected.push(`foreign rule in ${where(c.name)}: ${r}`);
      else if (have.rules.slice(0, i + 1).filter((h) => h === r).length > wanted) unexpected.push(`duplicate in ${where(c.name)}: ${r}`);
    }
    if (missing.length + unexpected.length === before && have.rules.join('\n') !== want.join('\n')) {
      unexpected.push(`rules of ${where(c.name)} are out of order`);
    }
  }
  for (const name of installed?.keys() ?? []) {
    if (!t.chains.some((c) => c.name === name)) unexpected.push(`foreign chain ${where(name)}`);
  }
  return { inSync: missing.length === 0 && unexpected.length === 0, missing, unexpected };
}
