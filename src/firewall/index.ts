// Public entry of the firewall module: choose a backend, then ensure/check/remove rule sets
// built by calcFlannelRules or calcContainerMasqRules. The agent calls ensure at start and
// check (or ensure, which checks first) every few seconds; both cost one process per family
// while the rules are in place.
import { detectBackend, type BackendChoice } from './detect.ts';
import { IptablesBackend, type IptablesVariant } from './iptables.ts';
import { NftablesBackend } from './nftables.ts';
import { calcContainerMasqRules, calcContainerMasqTeardown, type ContainerMasqOptions } from './container-masq.ts';
import type { BackendKind, FirewallBackend, FirewallRules } from './model.ts';
import { localRunner, type Runner } from './exec.ts';

export * from './model.ts';
export { calcFlannelRules, type FlannelRulesOptions } from './rules.ts';
export { calcContainerMasqRules, calcContainerMasqTeardown, containerMasqChainName, type ContainerMasqOptions } from './container-masq.ts';
export { detectBackend, type BackendChoice, type Detection } from './detect.ts';
export { IptablesBackend, type IptablesVariant } from './iptables.ts';
export { NftablesBackend } from './nftables.ts';
export { localRunner, netnsRunner, type Runner, type RunResult } from './exec.ts';

export interface FirewallOptions {
  /** Default 'auto' (see detect.ts for the rule). */
  backend?: BackendChoice;
  /** Run the tools elsewhere (a test or lab namespace: netnsRunner(name)); default: here. */
  runner?: Runner;
  /** iptables build for the iptables backend; default: whatever the `iptables` command is. */
  iptablesVariant?: IptablesVariant;
}

export interface Firewall extends FirewallBackend {
  /** Why this backend was chosen, for the startup log. */
  readonly reason: string;
  /**
   * Removes `rules` from the backend that was not chosen, if its tool is installed, as flanneld
   * does at startup: a node that switched modes must not keep both copies.
   */
  removeOtherBackend(rules: FirewallRules): Promise<void>;
}

export function createBackend(kind: BackendKind, o: Omit<FirewallOptions, 'backend'> = {}): FirewallBackend {
  const runner = o.runner;
  return kind === 'iptables'
    ? new IptablesBackend({ ...(runner ? { runner } : {}), variant: o.iptablesVariant ?? 'default' })
    : new NftablesBackend(runner ? { runner } : {});
}

export async function createFirewall(o: FirewallOptions = {}): Promise<Firewall> {
  const { kind, reason } = await detectBackend(o);
  const chosen = createBackend(kind, o);
  const other = createBackend(kind === 'iptables' ? 'nftables' : 'iptables', o);
  const otherCmd = kind === 'iptables' ? 'nft' : 'iptables';
  return {
    kind: chosen.kind,
    reason,
    supportsRandomFully: () => chosen.supportsRandomFully(),
    check: (rules) => chosen.check(rules),
    ensure: (rules) => chosen.ensure(rules),
    remove: (rules) => chosen.remove(rules),
    async removeOtherBackend(rules) {
      const run = o.runner ?? localRunner;
      if ((await run([otherCmd, '--version'])).code !== 0) return;
      await other.remove(rules);
    },
  };
}

export interface ContainerMasqIo {
  runner?: Runner;
  iptablesVariant?: IptablesVariant;
}

/** The bridge plugin's ipMasq for one container (iptables only, as bridge v1.1.1). Idempotent. */
export async function setupContainerMasq(o: ContainerMasqOptions & ContainerMasqIo): Promise<void> {
  await createBackend('iptables', o).ensure(calcContainerMasqRules(o));
}

/**
 * Removes the container's chain and every rule jumping to it, in both families; works without
 * the container's addresses (they are gone by DEL time). A missing chain is success.
 */
export async function teardownContainerMasq(o: { network: string; containerId: string } & ContainerMasqIo): Promise<void> {
  await createBackend('iptables', o).remove(calcContainerMasqTeardown(o.network, o.containerId));
}
export { removeAllFlannelRules, flannelRulesByName, type FirewallTeardownReport } from './teardown.ts';
