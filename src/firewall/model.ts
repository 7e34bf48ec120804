// The data model shared by rule generation and the two backends. Rules are plain data, so
// generation is pure and unit-testable, and a backend only has to diff data against the kernel.
import type { IpFamily } from './cidr.ts';

export type { IpFamily };

export type IptablesTable = 'nat' | 'filter';

/**
 * An iptables rule spec exactly as iptables-save prints it after "-A <chain>", split into
 * unquoted tokens. Generators must emit the canonical order iptables-save uses (addresses,
 * then matches in order, then -j and target options): that makes comparison a string compare
 * and makes weft's rules byte-identical to flanneld's.
 */
export type IptablesSpec = readonly string[];

/** A chain weft owns: it holds exactly `rules`, in order; anything else in it is drift. */
export interface IptablesChain {
  table: IptablesTable;
  name: string;
  rules: readonly IptablesSpec[];
}

/** A rule in a chain weft does not own (POSTROUTING, FORWARD): exactly one copy, appended. */
export interface IptablesJump {
  table: IptablesTable;
  chain: string;
  spec: IptablesSpec;
}

/** Everything for one address family (iptables vs ip6tables). */
export interface IptablesRuleset {
  family: IpFamily;
  chains: readonly IptablesChain[];
  jumps: readonly IptablesJump[];
}

export interface NftMatch {
  /** saddr/daddr match the family's payload (ip or ip6); mark is meta mark. */
  key: 'saddr' | 'daddr' | 'mark';
  op: '==' | '!=';
  /** A canonical CIDR (always with prefix) for addresses; "0x4000"-style hex for marks. */
  value: string;
}

export interface NftRule {
  matches: readonly NftMatch[];
  verdict: 'return' | 'accept' | 'masquerade';
  /** Only for masquerade. */
  fullyRandom?: boolean;
}

export interface NftChain {
  name: string;
  type: 'nat' | 'filter';
  hook: 'postrouting' | 'forward';
  priority: 'srcnat' | 'filter';
  comment?: string;
  rules: readonly NftRule[];
}

/** A table weft owns entirely: ensure replaces it as a whole, remove deletes it. */
export interface NftTable {
  family: IpFamily;
  name: string;
  comment?: string;
  chains: readonly NftChain[];
}

/** One desired state in both dialects; each backend uses its own half. */
export interface FirewallRules {
  iptables: readonly IptablesRuleset[];
  nftables: readonly NftTable[];
}

export interface CheckResult {
  /** True when the kernel holds exactly the desired rules, once each, in order. */
  inSync: boolean;
  /** Desired rules that are not installed, printed the way the tool prints them. */
  missing: string[];
  /** What is installed but should not be: duplicates, foreign rules in our chains, wrong order. */
  unexpected: string[];
}

export interface EnsureResult extends CheckResult {
  /** Whether ensure had to write to the kernel. `missing`/`unexpected` describe the state before. */
  changed: boolean;
}

export type BackendKind = 'iptables' | 'nftables';

export interface FirewallBackend {
  readonly kind: BackendKind;
  /** Whether the tool and kernel accept fully-random masquerade (probed once, then cached). */
  supportsRandomFully(): Promise<boolean>;
  /** Reads the kernel state (one process per address family) and compares. Never writes. */
  check(rules: FirewallRules): Promise<CheckResult>;
  /** check, then — only if out of sync — one atomic restore per backend that rebuilds the set. */
  ensure(rules: FirewallRules): Promise<EnsureResult>;
  /** Removes the rules and the chains/tables weft owns. Absent rules are not an error. */
  remove(rules: FirewallRules): Promise<void>;
}

export function mergeChecks(results: readonly CheckResult[]): CheckResult {
  const missing = results.flatMap((r) => r.missing);
  const unexpected = results.flatMap((r) => r.unexpected);
  return { inSync: missing.length === 0 && unexpected.length === 0, missing, unexpected };
}
