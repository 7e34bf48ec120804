// The agent's masquerade and forward rules (docs/flannel-compat.md §4): installed once the lease is known,
// re-checked every --iptables-resync seconds, rewritten whole when the lease changes. The
// backend is nftables when the network config says EnableNFTables (as flanneld), else
// whichever the host uses (src/firewall/detect.ts).
import { calcFlannelRules, createFirewall, type Firewall } from '../firewall/index.ts';
import type { Logger } from '../log/logger.ts';

export interface AgentFirewallOptions {
  network: string;
  ipMasq: boolean;
  forwardRules: boolean;
  nftables: boolean;
  log: Logger;
}

export class AgentFirewall {
  readonly #o: AgentFirewallOptions;
  #firewall: Promise<Firewall> | undefined;

  constructor(o: AgentFirewallOptions) {
    this.#o = o;
  }

  get #enabled(): boolean {
    return this.#o.ipMasq || this.#o.forwardRules;
  }

  async ensure(subnet: string): Promise<void> {
    if (!this.#enabled) return;
    const firewall = await this.#open();
    const rules = calcFlannelRules({
      network: this.#o.network, subnet, ipMasq: this.#o.ipMasq, forwardRules: this.#o.forwardRules,
      randomFully: await firewall.supportsRandomFully(),
    });
    const result = await firewall.ensure(rules);
    if (result.changed) this.#o.log.info({ backend: firewall.kind, missing: result.missing.length }, 'masquerade/forward rules (re)installed');
  }

  /** Explicit uninstall: removes the rules for `subnet` from both backends. */
  async remove(subnet: string): Promise<void> {
    const firewall = await this.#open();
    const rules = calcFlannelRules({ network: this.#o.network, subnet, ipMasq: true, forwardRules: true });
    await firewall.remove(rules);
    await firewall.removeOtherBackend(rules);
  }

  #open(): Promise<Firewall> {
    this.#firewall ??= createFirewall({ backend: this.#o.nftables ? 'nftables' : 'auto' }).then((f) => {
      this.#o.log.info({ backend: f.kind, why: f.reason }, 'firewall backend');
      return f;
    });
    return this.#firewall;
  }
}

/**
 * The runtime's firewall: the rules for (network, subnet) on the backend the config asks
 * for. When the config switches between iptables and nftables, or the subnet moves, the old
 * rules go once the new ones are in.
 */
export function nodeFirewall(o: { ipMasq: boolean; forwardRules: boolean; log: Logger }): { ensure(network: string, subnet: string, nftables: boolean): Promise<void> } {
  let current: { key: string; firewall: AgentFirewall; subnet: string } | undefined;
  return {
    async ensure(network, subnet, nftables) {
      const key = `${network} ${nftables}`;
      if (current && current.key === key) {
        await current.firewall.ensure(subnet);
        current.subnet = subnet;
        return;
      }
      const firewall = new AgentFirewall({ network, ipMasq: o.ipMasq, forwardRules: o.forwardRules, nftables, log: o.log });
      await firewall.ensure(subnet);
      const old = current;
      current = { key, firewall, subnet };
      if (old) await old.firewall.remove(old.subnet).catch((e: Error) => o.log.warn({ err: e.message }, 'removing the previous firewall rules failed'));
    },
  };
}
