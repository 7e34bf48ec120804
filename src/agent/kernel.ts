// The runtime's kernel, on rtnetlink and the backend registry: the external interface, the
// backend, and the clean-ups that keep an older config or a bad peer from outliving a restart.
import type { Logger } from '../log/logger.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import { cidrContains, maskToNetwork, parseAddressWithPrefix, parseCidr } from '../net/cidr.ts';
import { backendDevices, createBackend, removeRoutesOutside, removeUnusedBackendDevices } from '../dataplane/index.ts';
import { selectExternalInterface, type ExternalInterface, type InterfaceCriteria } from './interface.ts';
import type { NodeKernel } from './runtime.ts';

export function rtnetlinkKernel(nl: Rtnetlink, criteria: InterfaceCriteria, log: Logger): NodeKernel {
  return {
    externalInterface: () => selectExternalInterface({ links: nl.listLinks(), addresses: nl.listAddresses(), routes: nl.listRoutes() }, criteria),
    createBackend: (section, ext: ExternalInterface, network) => createBackend(nl,
      { underlayInterface: ext.name, underlayIndex: ext.index, underlayMtu: ext.mtu, publicIp: ext.publicIp }, section, { network, log }),
    removeRoutesOutside: (networks) => removeRoutesOutside(nl, networks, log),
    removeUnusedDevices: (section) => removeUnusedBackendDevices(nl, section, log),
    backendDevices: (section) => backendDevices(section),
    removeStaleBridgeAddress(previousNetworks, subnets) {
      const bridge = nl.getLink('cni0');
      if (!bridge) return [];
      const current = subnets.map((s) => parseCidr(s));
      const previous = previousNetworks.map((n) => parseCidr(n));
      const removed: string[] = [];
      for (const a of nl.listAddresses({ link: bridge.index })) {
        if (a.family !== 4 || a.scope !== 0) continue;
        const net = maskToNetwork(parseAddressWithPrefix(a.cidr));
        const addr = { family: net.family, value: net.network };
        // Only an address weft put there for an older Network goes; anything else is the operator's.
        if (current.some((c) => cidrContains(c, addr)) || !previous.some((p) => cidrContains(p, addr))) continue;
        nl.deleteAddress(bridge.index, a.cidr);
        removed.push(a.cidr);
      }
      return removed;
    },
    close: () => nl.close(),
  };
}
