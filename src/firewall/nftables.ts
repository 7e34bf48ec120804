// nftables backend: weft owns whole tables (flannel-ipv4 / flannel-ipv6, as flanneld's
// nftables mode does), so repair is simple and atomic: one `nft -f -` transaction deletes and
// recreates every drifted table. A check is one `nft -j list table` per table (per family).
import { expectSuccess, localRunner, runChecked, type Runner } from './exec.ts';
import { diffNftTable, nftFamily, parseNftTable, renderTableDelete, renderTableReplace } from './nft-plan.ts';
import { mergeChecks, type CheckResult, type EnsureResult, type FirewallBackend, type FirewallRules, type NftTable } from './model.ts';

export interface NftablesBackendOptions {
  /** Where to run nft; default: this process's network namespace. */
  runner?: Runner;
}

/** A throwaway table, only ever used with `nft --check`, which never commits. */
const PROBE = `table ip weft-probe {
\tchain p {
\t\ttype nat hook postrouting priority srcnat;
\t\tip saddr != 127.0.0.1 masquerade fully-random
\t}
}
`;

export class NftablesBackend implements FirewallBackend {
  readonly kind = 'nftables' as const;
  readonly #run: Runner;
  #randomFully: Promise<boolean> | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: NftablesBackendOptions = {}) {
    this.#run = options.runner ?? localRunner;
  }

  /** Asks the kernel, through a dry run, whether fully-random masquerade is accepted. */
  supportsRandomFully(): Promise<boolean> {
    this.#randomFully ??= this.#run(['nft', '--check', '-f', '-'], PROBE).then((r) => r.code === 0);
    return this.#randomFully;
  }

  async #diff(t: NftTable): Promise<CheckResult> {
    const argv = ['nft', '-j', 'list', 'table', nftFamily(t.family), t.name];
    const r = await this.#run(argv);
    // nft reports a missing table as ENOENT ("No such file or directory"): that is "not installed".
    if (r.code !== 0 && /No such file or directory/.test(r.stderr)) return diffNftTable(t, undefined);
    const out = expectSuccess(r, argv, `read table ${nftFamily(t.family)} ${t.name}`);
    return diffNftTable(t, parseNftTable(t.family, out));
  }

  async check(rules: FirewallRules): Promise<CheckResult> {
    return mergeChecks(await Promise.all(rules.nftables.map((t) => this.#diff(t))));
  }

  ensure(rules: FirewallRules): Promise<EnsureResult> {
    return this.#serial(async () => {
      const diffs = await Promise.all(rules.nftables.map((t) => this.#diff(t)));
      const drifted = rules.nftables.filter((_, i) => diffs[i]?.inSync === false);
      if (drifted.length > 0) {
        const script = drifted.map(renderTableReplace).join('');
        await runChecked(this.#run, ['nft', '-f', '-'], `replace table(s) ${drifted.map((t) => t.name).join(', ')}`, script);
      }
      return { ...mergeChecks(diffs), changed: drifted.length > 0 };
    });
  }

  /** One transaction; "add" before "delete" makes it succeed whether or not the tables exist. */
  remove(rules: FirewallRules): Promise<void> {
    return this.#serial(async () => {
      if (rules.nftables.length === 0) return;
      const script = rules.nftables.map(renderTableDelete).join('');
      await runChecked(this.#run, ['nft', '-f', '-'], `delete table(s) ${rules.nftables.map((t) => t.name).join(', ')}`, script);
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
