// The agent's masquerade and forward rules (flannel.md §4): installed once the lease is known,
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
