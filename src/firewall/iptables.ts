// iptables backend (iptables-nft or iptables-legacy, whichever the `iptables` command is, or an
// explicit variant). One iptables-save per address family reads the state; when it differs,
// one iptables-restore --noflush per family rewrites the difference atomically. In sync, a
// check costs one process per family, so a resync every few seconds is cheap.
import { expectSuccess, localRunner, runChecked, type Runner } from './exec.ts';
import { parseIptablesSave, type SavedState } from './iptables-save.ts';
import { planEnsure, planRemove } from './iptables-plan.ts';
import { mergeChecks, type CheckResult, type EnsureResult, type FirewallBackend, type FirewallRules, type IpFamily, type IptablesRuleset } from './model.ts';

export type IptablesVariant = 'default' | 'nft' | 'legacy';

export interface IptablesBackendOptions {
  /** Where to run the tools; default: this process's network namespace. */
  runner?: Runner;
  /** 'default' runs iptables/ip6tables (the host's alternative); 'nft'/'legacy' pick that build. */
  variant?: IptablesVariant;
}

export type IptablesTool = '' | '-save' | '-restore';

/** The command for a family and build: iptables, ip6tables-save, iptables-legacy-restore, ... */
export function iptablesCommand(family: IpFamily, variant: IptablesVariant, tool: IptablesTool = ''): string {
  const base = family === 'ipv4' ? 'iptables' : 'ip6tables';
  return `${base}${variant === 'default' ? '' : `-${variant}`}${tool}`;
}

interface Capabilities {
  randomFully: boolean;
  wait: boolean;
}

/** "iptables v1.8.9 (nf_tables)" → [1, 8, 9]. */
export function parseIptablesVersion(text: string): [number, number, number] | undefined {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** --random-fully and iptables-restore --wait both arrived in iptables 1.6.2. */
export function versionAtLeast(v: readonly number[], min: readonly number[]): boolean {
  for (let i = 0; i < min.length; i++) {
    const a = v[i] ?? 0;
    const b = min[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

export class IptablesBackend implements FirewallBackend {
  readonly kind = 'iptables' as const;
  readonly #run: Runner;
  readonly #variant: IptablesVariant;
  #caps: Promise<Capabilities> | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: IptablesBackendOptions = {}) {
    this.#run = options.runner ?? localRunner;
    this.#variant = options.variant ?? 'default';
  }

  command(family: IpFamily, tool: IptablesTool = ''): string {
    return iptablesCommand(family, this.#variant, tool);
  }

  async #capabilities(): Promise<Capabilities> {
    this.#caps ??= (async () => {
      const r = await this.#run([this.command('ipv4'), '--version']);
      const v = r.code === 0 ? parseIptablesVersion(r.stdout) : undefined;
      const modern = v !== undefined && versionAtLeast(v, [1, 6, 2]);
      return { randomFully: modern, wait: modern };
    })();
    return this.#caps;
  }

  async supportsRandomFully(): Promise<boolean> {
    return (await this.#capabilities()).randomFully;
  }

  /**
   * One iptables-save for the tables the ruleset touches. Undefined only when `missingOk` and
   * the tool is not installed.
   */
  async #save(ruleset: IptablesRuleset, missingOk = false): Promise<SavedState | undefined> {
    const tables = new Set([...ruleset.chains.map((c) => c.table), ...ruleset.jumps.map((j) => j.table)]);
    // One table: ask for just that one. Several: one call without -t dumps them all (and,
    // unlike -t, never makes iptables-legacy load a table module that is not in use).
    const argv = [this.command(ruleset.family, '-save'), ...(tables.size === 1 ? ['-t', [...tables][0] as string] : [])];
    const what = `read the ${ruleset.family} firewall rules`;
    const r = await this.#run(argv);
    if (r.code === 127 && missingOk) return undefined;
    return parseIptablesSave(expectSuccess(r, argv, what));
  }

  async #mustSave(ruleset: IptablesRuleset): Promise<SavedState> {
    return (await this.#save(ruleset)) ?? new Map();
  }

  async #restore(family: IpFamily, script: string, what: string): Promise<void> {
    const wait = (await this.#capabilities()).wait ? ['--wait'] : [];
    await runChecked(this.#run, [this.command(family, '-restore'), '--noflush', ...wait], what, script);
  }

  async check(rules: FirewallRules): Promise<CheckResult> {
    const results = await Promise.all(rules.iptables.map(async (rs) => planEnsure(rs, await this.#mustSave(rs)).check));
    return mergeChecks(results);
  }

  async ensure(rules: FirewallRules): Promise<EnsureResult> {
    const results = await this.#serial(() => Promise.all(rules.iptables.map((rs) => this.#ensureFamily(rs))));
    return { ...mergeChecks(results), changed: results.some((r) => r.changed) };
  }

  async #ensureFamily(ruleset: IptablesRuleset): Promise<EnsureResult> {
    const first = planEnsure(ruleset, await this.#mustSave(ruleset));
    if (first.script === undefined) return { ...first.check, changed: false };
    try {
      await this.#restore(ruleset.family, first.script, `rebuild the ${ruleset.family} rules`);
    } catch {
      // Another writer (kube-proxy, an admin) may have changed the table between our save and
      // restore, making a "-D" miss. Plan again from a fresh read, once; a second failure is real.
      const again = planEnsure(ruleset, await this.#mustSave(ruleset));
      if (again.script !== undefined) await this.#restore(ruleset.family, again.script, `rebuild the ${ruleset.family} rules`);
    }
    return { ...first.check, changed: true };
  }

  async remove(rules: FirewallRules): Promise<void> {
    await this.#serial(() => Promise.all(rules.iptables.map((rs) => this.#removeFamily(rs))));
  }

  async #removeFamily(ruleset: IptablesRuleset): Promise<void> {
    // Without the tool nothing of this family can be installed (say, no ip6tables on an
    // IPv4-only host during a CNI teardown), so there is nothing to remove.
    const state = await this.#save(ruleset, true);
    if (state === undefined) return;
    const script = planRemove(ruleset, state);
    if (script === undefined) return;
    const what = `remove the ${ruleset.family} rules`;
    try {
      await this.#restore(ruleset.family, script, what);
    } catch {
      const again = planRemove(ruleset, await this.#mustSave(ruleset)); // raced with another writer: once more
      if (again !== undefined) await this.#restore(ruleset.family, again, what);
    }
  }

  /** ensure/remove of one backend never overlap (a slow resync and a shutdown, say). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
