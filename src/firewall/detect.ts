/**
 * Choosing the firewall backend: "whichever of iptables or nftables the host uses".
 *
 * The rule, applied in this order (deterministic: it depends only on what the probes print):
 *  1. `backend: 'iptables'` or `'nftables'` is obeyed; it fails if that tool does not run.
 *  2. `backend: 'auto'` (the default) probes `iptables --version` and `nft --version`:
 *     a. neither runs → error;
 *     b. only one runs → that one;
 *     c. both run, and `iptables-save` (IPv4, whichever build the `iptables` command is) prints
 *        at least one rule → **iptables**. Someone already filters with iptables (kube-proxy in
 *        iptables mode, Docker, flanneld in iptables mode, or weft itself on an earlier start),
 *        and mixing both systems on one host makes the packet path hard to reason about;
 *     d. both run, no iptables rule, and `nft list tables` shows a table that iptables-nft does
 *        not own (any table other than filter/nat/mangle/raw/security/broute in the ip, ip6,
 *        arp or bridge family — e.g. kube-proxy's nftables mode, flanneld's flannel-ipv4,
 *        Debian's `inet filter`) → **nftables**;
 *     e. otherwise (a fresh host) → **iptables**, as flannel does by default
 *        (EnableNFTables=false) and kube-proxy does by default (iptables mode).
 * After choosing, callers should remove the other backend's copy of the rules, as flanneld does
 * at startup, so that a host that changed modes does not keep both (Firewall.removeOtherBackend).
 */
import { localRunner, type Runner } from './exec.ts';
import { WeftError } from '../errors.ts';
import { iptablesCommand, type IptablesVariant } from './iptables.ts';
import type { BackendKind } from './model.ts';

export type BackendChoice = BackendKind | 'auto';

export interface DetectOptions {
  backend?: BackendChoice;
  runner?: Runner;
  /** Which iptables build to probe (see IptablesBackendOptions.variant). */
  iptablesVariant?: IptablesVariant;
}

export interface Detection {
  kind: BackendKind;
  /** One sentence for the log: why this backend. */
  reason: string;
}

/** Tables iptables-nft, arptables-nft and ebtables-nft create; they mean "iptables", not "nftables". */
const XTABLES_FAMILIES = new Set(['ip', 'ip6', 'arp', 'bridge']);
const XTABLES_NAMES = new Set(['filter', 'nat', 'mangle', 'raw', 'security', 'broute']);

/** Tables in `nft -j list tables` output that iptables-nft does not own, as "family name". */
export function nativeNftTables(json: string): string[] {
  const doc: unknown = JSON.parse(json);
  const items = typeof doc === 'object' && doc !== null && 'nftables' in doc && Array.isArray(doc.nftables) ? doc.nftables : [];
  const out: string[] = [];
  for (const item of items as unknown[]) {
    if (typeof item !== 'object' || item === null || !('table' in item)) continue;
    const t = item.table as { family?: unknown; name?: unknown };
    const family = String(t.family);
    const name = String(t.name);
    if (!(XTABLES_FAMILIES.has(family) && XTABLES_NAMES.has(name))) out.push(`${family} ${name}`);
  }
  return out;
}

/** Number of rules ("-A" lines) in iptables-save output. */
export function countIptablesRules(save: string): number {
  return save.split('\n').filter((l) => l.startsWith('-A ')).length;
}

export async function detectBackend(o: DetectOptions = {}): Promise<Detection> {
  const run = o.runner ?? localRunner;
  const ipt = iptablesCommand('ipv4', o.iptablesVariant ?? 'default');
  const choice = o.backend ?? 'auto';
  const [hasIpt, hasNft] = await Promise.all([ipt, 'nft'].map(async (cmd) => (await run([cmd, '--version'])).code === 0));
  const missing = (cmd: string, why: string): WeftError =>
    new WeftError('WEFT_FIREWALL', `${why}, but "${cmd} --version" does not run; install it (Debian: apt-get install ${cmd === 'nft' ? 'nftables' : 'iptables'}) or choose another firewall backend`);

  if (choice === 'iptables') {
    if (!hasIpt) throw missing(ipt, 'the iptables firewall backend was requested');
    return { kind: 'iptables', reason: 'iptables backend requested' };
  }
  if (choice === 'nftables') {
    if (!hasNft) throw missing('nft', 'the nftables firewall backend was requested');
    return { kind: 'nftables', reason: 'nftables backend requested' };
  }
  if (!hasIpt && !hasNft) {
    throw new WeftError('WEFT_FIREWALL', `neither "${ipt}" nor "nft" runs, so weft cannot install masquerade/forward rules; install iptables or nftables`);
  }
  if (!hasNft) return { kind: 'iptables', reason: `auto: only ${ipt} is installed` };
  if (!hasIpt) return { kind: 'nftables', reason: 'auto: only nft is installed' };

  const save = await run([iptablesCommand('ipv4', o.iptablesVariant ?? 'default', '-save')]);
  const rules = save.code === 0 ? countIptablesRules(save.stdout) : 0;
  if (rules > 0) return { kind: 'iptables', reason: `auto: ${ipt}-save shows ${rules} rule(s) already in use` };
  const list = await run(['nft', '-j', 'list', 'tables']);
  const native = list.code === 0 ? nativeNftTables(list.stdout) : [];
  if (native.length > 0) return { kind: 'nftables', reason: `auto: no iptables rules, but nftables tables in use (${native.join(', ')})` };
  return { kind: 'iptables', reason: 'auto: neither iptables rules nor nftables tables in use; iptables is the default' };
}
