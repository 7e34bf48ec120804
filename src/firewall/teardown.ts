// Removing every flannel/weft masquerade and forward rule on a node without knowing its
// network or subnet (`weft uninstall` when subnet.env is gone). The rules are found by what
// weft (and flanneld ≥ 0.20) owns by name, not by their addresses:
//   iptables/ip6tables: the chains FLANNEL-POSTRTG (nat) and FLANNEL-FWD (filter), and every
//     rule anywhere in those tables that jumps to them;
//   nftables: the tables ip flannel-ipv4 and ip6 flannel-ipv6.
// Both iptables builds are looked at (iptables-nft and iptables-legacy keep separate rule
// sets, and a node may have switched between them). Older flanneld (< 0.20) put its rules
// straight into POSTROUTING without a chain or comment; those can only be told apart from an
// operator's by their addresses, so they are not touched here.
import { localRunner, type Runner } from './exec.ts';
import { IptablesBackend, iptablesCommand, type IptablesVariant } from './iptables.ts';
import { parseIptablesSave } from './iptables-save.ts';
import { planRemove } from './iptables-plan.ts';
import { NftablesBackend } from './nftables.ts';
import { FLANNEL_FWD_CHAIN, FLANNEL_POSTRTG_CHAIN, NFT_TABLE } from './rules.ts';
import type { FirewallRules, IpFamily, IptablesRuleset, NftTable } from './model.ts';

const FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];

/** The owned chains and tables by name alone: what planRemove and the nft delete need. */
export function flannelRulesByName(): FirewallRules {
  const ruleset = (family: IpFamily): IptablesRuleset => ({
    family,
    chains: [{ table: 'nat', name: FLANNEL_POSTRTG_CHAIN, rules: [] }, { table: 'filter', name: FLANNEL_FWD_CHAIN, rules: [] }],
    jumps: [],
  });
  const table = (family: IpFamily): NftTable => ({ family, name: NFT_TABLE[family], chains: [] });
  return { iptables: FAMILIES.map(ruleset), nftables: FAMILIES.map(table) };
}

export interface FirewallTeardownReport {
  /** What was found and removed, e.g. "iptables-nft ipv4: nat FLANNEL-POSTRTG", "nft: table ip flannel-ipv4". */
  removed: string[];
  /** Tools that failed (not ones that are not installed), each with its message. */
  errors: string[];
}

/** `nft list tables` output ("table ip flannel-ipv4" lines) → the flannel tables present. */
export function flannelNftTables(listing: string): NftTable[] {
  const present = new Set(listing.split('\n').map((l) => l.trim()));
  return FAMILIES.map((family): NftTable => ({ family, name: NFT_TABLE[family], chains: [] }))
    .filter((t) => present.has(`table ${t.family === 'ipv4' ? 'ip' : 'ip6'} ${t.name}`));
}

/** The owned chains present in one iptables-save output, as "nat FLANNEL-POSTRTG" (empty when none). */
export function flannelChainsIn(saveOutput: string, ruleset: IptablesRuleset): string[] {
  const state = parseIptablesSave(saveOutput);
  if (planRemove(ruleset, state) === undefined) return [];
  const found = ruleset.chains.filter((c) => state.get(c.table)?.has(c.name)).map((c) => `${c.table} ${c.name}`);
  return found.length > 0 ? found : ['jumps to FLANNEL chains'];
}

async function teardownIptables(run: Runner, report: FirewallTeardownReport): Promise<void> {
  const rules = flannelRulesByName();
  let seenAny = false;
  const variants: IptablesVariant[] = ['nft', 'legacy', 'default'];
  for (const variant of variants) {
    if (variant === 'default' && seenAny) break; // `iptables` is one of the two builds already seen
    for (const ruleset of rules.iptables) {
      const cmd = iptablesCommand(ruleset.family, variant, '-save');
      const r = await run([cmd]);
      if (r.code === 127) continue;
      seenAny = true;
      if (r.code !== 0) {
        report.errors.push(`${cmd} failed (exit ${r.code}): ${r.stderr.trim() || '(no output)'}`);
        continue;
      }
      const found = flannelChainsIn(r.stdout, ruleset);
      if (found.length === 0) continue;
      try {
        await new IptablesBackend({ runner: run, variant }).remove({ iptables: [ruleset], nftables: [] });
        report.removed.push(`${iptablesCommand(ruleset.family, variant)} ${ruleset.family}: ${found.join(', ')}`);
      } catch (e) {
        report.errors.push((e as Error).message);
      }
    }
  }
}

async function teardownNftables(run: Runner, report: FirewallTeardownReport): Promise<void> {
  const r = await run(['nft', 'list', 'tables']);
  if (r.code === 127) return;
  if (r.code !== 0) {
    report.errors.push(`nft list tables failed (exit ${r.code}): ${r.stderr.trim() || '(no output)'}`);
    return;
  }
  const tables = flannelNftTables(r.stdout);
  if (tables.length === 0) return;
  try {
    await new NftablesBackend({ runner: run }).remove({ iptables: [], nftables: tables });
    for (const t of tables) report.removed.push(`nft: table ${t.family === 'ipv4' ? 'ip' : 'ip6'} ${t.name}`);
  } catch (e) {
    report.errors.push((e as Error).message);
  }
}

/** Removes every flannel/weft chain and table (see the top of this file); absent ones are not an error. */
export async function removeAllFlannelRules(o: { runner?: Runner } = {}): Promise<FirewallTeardownReport> {
  const run = o.runner ?? localRunner;
  const report: FirewallTeardownReport = { removed: [], errors: [] };
  await teardownIptables(run, report);
  await teardownNftables(run, report);
  return report;
}
