// Which addresses can be a node's tunnel endpoint or next hop (flannel's PublicIP). A lease is
// written by whoever can write to etcd, so its PublicIP is untrusted: "0.0.0.0" (flannel's "no
// IPv4"), loopback, link-local, multicast, broadcast or reserved space would have the kernel
// send peer traffic somewhere it must never go. Shared by the lease layer (which refuses such
// leases) and the data plane (which refuses to program them), neither importing the other.
import { cidrContains, parseCidr, type Cidr, type IpAddress } from './cidr.ts';

const UNUSABLE_V4: readonly [Cidr, string][] = [
  [parseCidr('0.0.0.0/8'), 'is in 0.0.0.0/8 ("this network"; flannel writes 0.0.0.0 for "no IPv4")'],
  [parseCidr('127.0.0.0/8'), 'is a loopback address'],
  [parseCidr('169.254.0.0/16'), 'is a link-local address'],
  [parseCidr('224.0.0.0/4'), 'is a multicast address'],
  [parseCidr('255.255.255.255/32'), 'is the broadcast address'],
  [parseCidr('240.0.0.0/4'), 'is in the reserved 240.0.0.0/4'],
];

const UNUSABLE_V6: readonly [Cidr, string][] = [
  [parseCidr('::/128'), 'is the unspecified address'],
  [parseCidr('::1/128'), 'is the loopback address'],
  [parseCidr('fe80::/10'), 'is a link-local address'],
  [parseCidr('ff00::/8'), 'is a multicast address'],
];

/** Why ip cannot be a node's public address ("is a loopback address"), or undefined when it can. */
export function unusablePublicIp(ip: IpAddress): string | undefined {
  for (const [net, why] of ip.family === 4 ? UNUSABLE_V4 : UNUSABLE_V6) if (cidrContains(net, ip)) return why;
  return undefined;
}
