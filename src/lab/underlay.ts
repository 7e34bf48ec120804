// Builds the lab's "cloud": zone switches, the router, the outside host and the nodes'
// uplinks (see topology.ts for the picture). Every link is created directly inside lab
// namespaces (`ip -n <zone> link add … peer … netns <node>`), so nothing is ever created in,
// or moved through, the root namespace.
import { createNetns, execInNetnsOk, ipIn } from './netns.ts';
import type { EtcdPlan, NodePlan, Topology, Zone } from './topology.ts';
import { UNDERLAY_NETWORK, ZONE_BRIDGE, zonePlan } from './topology.ts';

/** Called after each namespace is created, so the state file can record it before anything else happens. */
export type OnNamespace = (ns: string) => Promise<void>;

export async function setupZones(t: Topology, onNs: OnNamespace): Promise<void> {
  for (const z of t.zones) {
    await createNetns(z.ns);
    await onNs(z.ns);
    // A plain learning bridge with STP off (the default): ports forward as soon as they are up.
    await ipIn(z.ns, ['link', 'add', ZONE_BRIDGE, 'type', 'bridge']);
    await ipIn(z.ns, ['link', 'set', ZONE_BRIDGE, 'up']);
  }
}

export async function setupRouter(t: Topology, onNs: OnNamespace): Promise<void> {
  const r = t.router.ns;
  await createNetns(r);
  await onNs(r);
  for (const z of t.zones) {
    const prefix = z.subnet.split('/')[1];
    await ipIn(z.ns, ['link', 'add', 'router', 'type', 'veth', 'peer', 'name', z.routerIf, 'netns', r]);
    await ipIn(z.ns, ['link', 'set', 'router', 'master', ZONE_BRIDGE, 'up']);
    await ipIn(r, ['addr', 'add', `${z.gateway}/${prefix}`, 'dev', z.routerIf]);
    await ipIn(r, ['link', 'set', z.routerIf, 'up']);
  }
  // The router is the only lab member that forwards by design (nodes get forwarding from
  // their CNI plugin, as on a real node). /proc/sys/net is per namespace of the writer.
  await execInNetnsOk(r, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

export async function setupOutside(t: Topology, onNs: OnNamespace): Promise<void> {
  const o = t.outside;
  const r = t.router;
  const prefix = o.subnet.split('/')[1];
  await createNetns(o.ns);
  await onNs(o.ns);
  await ipIn(r.ns, ['link', 'add', r.outsideIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', o.ns]);
  await ipIn(r.ns, ['addr', 'add', `${r.outsideAddress}/${prefix}`, 'dev', r.outsideIf]);
  await ipIn(r.ns, ['link', 'set', r.outsideIf, 'up']);
  await ipIn(o.ns, ['addr', 'add', `${o.address}/${prefix}`, 'dev', 'eth0']);
  await ipIn(o.ns, ['link', 'set', 'eth0', 'up']);
  // Replies to node addresses go back through the router; the cluster network is
  // deliberately unknown here, so pod traffic only comes back if a node masqueraded it.
  await ipIn(o.ns, ['route', 'add', UNDERLAY_NETWORK, 'via', r.outsideAddress]);
}

/** A host on a zone's segment: its namespace, eth0 on the zone bridge (the bridge port is named `port`), default route via the router. */
export interface ZoneHost {
  ns: string;
  port: string;
  zone: Zone;
  address: string;
  gateway: string;
}

export async function setupZoneHost(t: Topology, h: ZoneHost, onNs: OnNamespace): Promise<void> {
  const z = zonePlan(t, h.zone);
  const prefix = z.subnet.split('/')[1];
  await createNetns(h.ns);
  await onNs(h.ns);
  await ipIn(z.ns, ['link', 'add', h.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
  await ipIn(z.ns, ['link', 'set', h.port, 'master', ZONE_BRIDGE, 'up']);
  await ipIn(h.ns, ['addr', 'add', `${h.address}/${prefix}`, 'dev', 'eth0']);
  await ipIn(h.ns, ['link', 'set', 'eth0', 'up']);
  await ipIn(h.ns, ['route', 'add', 'default', 'via', h.gateway]);
}

export function setupNodeUplink(t: Topology, node: NodePlan, onNs: OnNamespace): Promise<void> {
  return setupZoneHost(t, { ns: node.ns, port: node.name, zone: node.zone, address: node.address, gateway: node.gateway }, onNs);
}

/** The etcd member (etcd store): a host on zone a's segment, like a control-plane machine. */
export function setupEtcdHost(t: Topology, etcd: EtcdPlan, onNs: OnNamespace): Promise<void> {
  return setupZoneHost(t, { ns: etcd.ns, port: 'etcd', zone: etcd.zone, address: etcd.address, gateway: etcd.gateway }, onNs);
}
