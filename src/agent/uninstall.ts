// `weft uninstall`: the explicit removal of what the agent installed on this node — its
// masquerade/forward rules (both iptables and nftables), its VXLAN devices (flannel.<VNI>),
// the routes it added (protocol 0x57) and subnet.env. The agent never does this on its own:
// stopping or restarting it leaves the data plane working.
import { rmSync } from 'node:fs';
import type { Logger } from '../log/logger.ts';
import { Rtnetlink, routeRequest } from '../netlink/index.ts';
import { RTPROT_WEFT } from '../dataplane/index.ts';
import { formatCidr } from '../net/cidr.ts';
import { readSubnetEnv } from '../subnet/subnet-env.ts';
import { AgentFirewall } from './firewall.ts';

export interface UninstallReport {
  firewallRules: boolean;
  devices: string[];
  routes: number;
  subnetFile: boolean;
}

export async function uninstall(o: { subnetFile: string; log: Logger }): Promise<UninstallReport> {
  const report: UninstallReport = { firewallRules: false, devices: [], routes: 0, subnetFile: false };
  let env;
  try {
    env = readSubnetEnv(o.subnetFile);
  } catch (e) {
    o.log.warn({ err: (e as Error).message }, 'no readable subnet.env: the firewall rules cannot be named and stay');
  }
  if (env?.subnet && env.networks[0]) {
    const firewall = new AgentFirewall({ network: formatCidr(env.networks[0]), ipMasq: true, forwardRules: true, nftables: false, log: o.log });
    await firewall.remove(formatCidr(env.subnet));
    report.firewallRules = true;
  }
  using nl = Rtnetlink.open();
  const routes = nl.listRoutes().filter((r) => r.protocol === RTPROT_WEFT);
  if (routes.length > 0) {
    nl.batchSettled(routes.map((r) => routeRequest('delete', { dst: r.dst, table: r.table, protocol: RTPROT_WEFT, ...(r.oif !== undefined ? { oif: r.oif } : {}) })));
    report.routes = routes.length;
  }
  for (const link of nl.listLinks().filter((l) => l.kind === 'vxlan' && /^flannel\.\d+$/.test(l.name))) {
    nl.deleteLink(link.index);
    report.devices.push(link.name);
  }
  try {
    rmSync(o.subnetFile);
    report.subnetFile = true;
  } catch {
    report.subnetFile = false;
  }
  return report;
}
