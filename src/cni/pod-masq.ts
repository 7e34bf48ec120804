// Per-pod masquerade, as the bridge plugin's ipMasq does it: used only when the node agent
// does not masquerade (FLANNEL_IPMASQ=false). An interface, so the verbs can be tested with a
// recording double while the real one runs iptables.
import { setupContainerMasq, teardownContainerMasq, type Runner } from '../firewall/index.ts';

export interface PodMasqueradeTarget { network: string; containerId: string }

export interface PodMasquerade {
  setup(o: PodMasqueradeTarget & { ips: string[] }): Promise<void>;
  teardown(o: PodMasqueradeTarget): Promise<void>;
}

export function iptablesPodMasquerade(runner?: Runner): PodMasquerade {
  const io = runner ? { runner } : {};
  return {
    setup: (o) => setupContainerMasq({ ...o, ...io }),
    teardown: (o) => teardownContainerMasq({ ...o, ...io }),
  };
}
